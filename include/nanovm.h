/* nanovm.h - the one public header of NanoVM.
 *
 * Ownership rules, everywhere in this API:
 *   - A pointer passed *in* is borrowed for the duration of the call unless said otherwise.
 *   - An object returned through an `out` parameter belongs to the caller, who frees it with the
 *     matching nvm_*_free function.
 *   - A `const` pointer returned by a getter is owned by the object it came from and stays valid
 *     until that object is freed or the next call that the getter's comment names.
 * Every fallible function returns an nvm_status; details are in the error record of the VM
 * (nvm_vm_error) or, for functions that take no VM, in the nvm_error the caller passes.
 * Library code never prints, exits or aborts.
 */
#ifndef NANOVM_H
#define NANOVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NVM_VERSION_STRING "0.1.0"

/* ---- status codes (nanovm_status.def) ---- */
typedef enum nvm_status {
#define X(name, exit_status, meaning) NVM_##name,
#include "nanovm_status.def"
#undef X
    NVM_STATUS_COUNT
} nvm_status;

/* Process exit status the CLI uses for a status (0, 1, 2, 3, 4, 5, 6 or 70). */
int nvm_status_exit_code(nvm_status s);
/* Stable upper-case name ("E_VERIFY") and one-line meaning of a status. Never NULL. */
const char *nvm_status_name(nvm_status s);
const char *nvm_status_meaning(nvm_status s);

/* ---- error record ----
 * Filled by every failing call. `message` is one line without a trailing newline. For source
 * errors `file`, `line` and `col` locate the problem (line/col are 1-based, 0 when unknown).
 * `backtrace` holds one line per call frame, innermost first ("  at fn (file:line)"), for
 * runtime errors; it is empty otherwise. */
#define NVM_ERROR_MESSAGE_MAX 512
#define NVM_ERROR_BACKTRACE_MAX 4096
typedef struct nvm_error {
    nvm_status status;
    char message[NVM_ERROR_MESSAGE_MAX];
    char file[256];
    uint32_t line;
    uint32_t col;
    char backtrace[NVM_ERROR_BACKTRACE_MAX];
} nvm_error;

/* ---- allocation ----
 * One allocator hook with Lua's lua_Alloc contract: nsize == 0 frees ptr and returns NULL;
 * otherwise it (re)allocates ptr from osize to nsize bytes and returns NULL on failure, in which
 * case ptr is untouched. osize is the size of the block when ptr != NULL. */
typedef void *(*nvm_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);
/* The default hook (the C library's realloc/free), used when nvm_config.alloc is NULL. */
void *nvm_default_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* ---- values ----
 * A value is a small struct passed by value. Strings, arrays and maps are handles into the arena
 * of the VM they came from and are only meaningful with that VM; they stay alive while reachable
 * from the running program, or for the duration of the capability call that received them. */
typedef enum nvm_type {
    NVM_T_NULL = 0,
    NVM_T_BOOL,
    NVM_T_INT,
    NVM_T_FLOAT,
    NVM_T_STR,
    NVM_T_ARRAY,
    NVM_T_MAP,
    NVM_T_UNDEF /* internal: a frame slot never written; never seen by a capability */
} nvm_type;

typedef struct nvm_value {
    union {
        int64_t i;
        double f;
        uint32_t h; /* arena handle for str/array/map */
        int b;
    } as;
    uint32_t type; /* nvm_type */
} nvm_value;

static inline nvm_value nvm_null(void)
{
    nvm_value v;
    v.as.i = 0;
    v.type = NVM_T_NULL;
    return v;
}
static inline nvm_value nvm_bool(bool b)
{
    nvm_value v;
    v.as.i = 0;
    v.as.b = b ? 1 : 0;
    v.type = NVM_T_BOOL;
    return v;
}
static inline nvm_value nvm_int(int64_t i)
{
    nvm_value v;
    v.as.i = i;
    v.type = NVM_T_INT;
    return v;
}
static inline nvm_value nvm_float(double f)
{
    nvm_value v;
    v.as.f = f;
    v.type = NVM_T_FLOAT;
    return v;
}

/* ---- configuration: a struct with defaults ---- */
typedef struct nvm_config {
    nvm_alloc_fn alloc; /* NULL: malloc/realloc/free */
    void *alloc_ud;
    int64_t gas;            /* instructions a run may execute; < 0 means unlimited (default) */
    size_t max_memory;      /* arena + VM stacks, bytes; default 1 GiB */
    uint32_t max_stack;     /* operand stack values; default 1,048,576 */
    uint32_t max_depth;     /* call frames; default 100,000 */
    bool gc_stress;         /* collect at every allocation (tests) */
    uint64_t fail_alloc_at; /* make the Nth allocation fail, 1-based; 0 = never (tests) */
    /* Called by the interpreter about every 65,536 executed instructions (NULL: never); a
     * non-OK return (e.g. NVM_E_TIME for a wall-time limit) ends the run with that status. */
    nvm_status (*interrupt)(void *ud);
    void *interrupt_ud;
    /* Native code shared by the runs of this configuration (the JIT tier): modules are compiled
     * once per cache, keyed by their bytecode. NULL: each run compiles for itself. */
    struct nvm_code_cache *code_cache;
    /* No gas metering in native code where a tier can leave it out (the AOT tier compiles a
     * variant without gas checks): honoured only when gas is unlimited and `interrupt` is NULL;
     * gas used is then not counted (a trusted capsule whose policy turns metering off). */
    bool unmetered;
} nvm_config;

/* Fills *cfg with the documented defaults. */
void nvm_config_init(nvm_config *cfg);

/* ---- modules ----
 * A module is verified, immutable bytecode. It can be shared by several VMs (not concurrently
 * modified: it is never modified after loading). */
typedef struct nvm_module nvm_module;

/* Assemble CASM text. `name` is the file name used in messages. */
nvm_status nvm_module_from_casm(const nvm_config *cfg, const char *src, size_t len,
                                const char *name, nvm_module **out, nvm_error *err);
/* Load the upstream JSON IR (major version 1). */
nvm_status nvm_module_from_json(const nvm_config *cfg, const char *src, size_t len,
                                const char *name, nvm_module **out, nvm_error *err);
/* Load a bytecode module (.nvmb). Every count, offset and index is checked. */
nvm_status nvm_module_from_bytecode(const nvm_config *cfg, const uint8_t *data, size_t len,
                                    const char *name, nvm_module **out, nvm_error *err);
/* Pick the loader by content: "NVMB" magic -> bytecode, leading '{' -> JSON, else CASM text. */
nvm_status nvm_module_load(const nvm_config *cfg, const uint8_t *data, size_t len, const char *name,
                           nvm_module **out, nvm_error *err);
/* Run the verifier. Loading functions above already verify; this is idempotent. */
nvm_status nvm_module_verify(nvm_module *m, nvm_error *err);
/* Serialize to the bytecode format. *out_data is allocated with the module's allocator hook
 * and released with nvm_module_free_buffer. */
nvm_status nvm_module_to_bytecode(const nvm_module *m, uint8_t **out_data, size_t *out_len,
                                  nvm_error *err);
void nvm_module_free_buffer(const nvm_module *m, uint8_t *data, size_t len);
/* Disassemble into CASM text that assembles back to identical bytecode. NUL-terminated;
 * released with nvm_module_free_buffer(m, (uint8_t *)text, len + 1). */
nvm_status nvm_module_disasm(const nvm_module *m, char **out_text, size_t *out_len, nvm_error *err);
/* Drop the debug information (source line per instruction) so that the module serializes
 * without it: asm -> disasm -> asm gives identical bytes for stripped modules. Runtime errors
 * then report no source lines. */
void nvm_module_strip_debug(nvm_module *m);
/* Make the function `name` the module's entry function and verify the module again with it.
 * NVM_E_LINK when no function has that name; a verifier status (module unchanged) when the
 * function cannot be an entry (e.g. it takes arguments). */
nvm_status nvm_module_set_entry(nvm_module *m, const char *name, nvm_error *err);
/* Capability names the module calls, in table order (borrowed from the module). */
uint32_t nvm_module_cap_count(const nvm_module *m);
const char *nvm_module_cap_name(const nvm_module *m, uint32_t i);
void nvm_module_free(nvm_module *m);

/* ---- VM ---- */
typedef struct nvm_vm nvm_vm;

nvm_status nvm_vm_new(const nvm_config *cfg, nvm_vm **out);
void nvm_vm_free(nvm_vm *vm);
/* The error record of the last failing call on this VM (owned by the VM). */
const nvm_error *nvm_vm_error(const nvm_vm *vm);

/* ---- capabilities ----
 * A capability is a host function the program reaches with CAP_CALL "name" argc. `args` holds
 * the argc arguments, first pushed first; they are valid during the call. The function stores
 * its result in *result (null by default) and returns NVM_OK, or fails with
 * nvm_cap_fail(), which records the message. NVM_E_PROGRAM and NVM_E_DENIED failures are
 * catchable program errors; any other status ends the run with that status. */
typedef nvm_status (*nvm_cap_fn)(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                                 nvm_value *result);
#define NVM_VARIADIC UINT32_MAX
/* Register before nvm_vm_load. `argc` is the exact argument count or NVM_VARIADIC. The name is
 * copied. Registering an existing name replaces it. */
nvm_status nvm_vm_register_cap(nvm_vm *vm, const char *name, uint32_t argc, nvm_cap_fn fn,
                               void *ud);
nvm_status nvm_cap_fail(nvm_vm *vm, nvm_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Bind a verified module to the VM: every CAP_CALL name must be registered (else NVM_E_LINK).
 * The module is borrowed and must outlive the VM's use of it. */
nvm_status nvm_vm_load(nvm_vm *vm, const nvm_module *m);
/* Run the entry function to completion. Returns NVM_OK on RET from the entry function or HALT. */
nvm_status nvm_vm_run(nvm_vm *vm);
/* Gas used by the last run (instructions executed). */
int64_t nvm_vm_gas_used(const nvm_vm *vm);

/* ---- working with values inside a capability call ---- */
/* Type name as TYPEOF prints it. */
const char *nvm_type_name(nvm_type t);
/* Borrow a string's bytes (not NUL-terminated); NULL when v is not a string. Valid until the
 * next allocation on the VM. */
const char *nvm_value_str(nvm_vm *vm, nvm_value v, size_t *len);
/* Make a string value (copies the bytes). */
nvm_status nvm_value_new_str(nvm_vm *vm, const char *s, size_t len, nvm_value *out);
/* Append the printed form of v (as io.print shows it) to a growable buffer: *buf, *len and *cap
 * describe a block from the VM allocator; free it with nvm_vm_free_buffer. */
nvm_status nvm_value_format(nvm_vm *vm, nvm_value v, char **buf, size_t *len, size_t *cap);
void nvm_vm_free_buffer(nvm_vm *vm, char *buf, size_t cap);

/* ---- building and reading arrays and maps inside a capability call ----
 * A value created here is not reachable from the program until the capability returns it (or
 * stores it in a reachable container): any later allocation may collect it. Either insert it
 * into a rooted container right away, or keep it with nvm_value_root and release it with
 * nvm_value_unroot (roots are a stack: unroot pops the n most recent). Map keys are str or int.
 * Failures are NVM_E_MEMORY, or NVM_E_PROGRAM for a wrong type (recorded on the VM). */
nvm_status nvm_value_new_array(nvm_vm *vm, nvm_value *out);
nvm_status nvm_array_push_value(nvm_vm *vm, nvm_value arr, nvm_value v);
nvm_status nvm_value_new_map(nvm_vm *vm, nvm_value *out);
nvm_status nvm_map_set_value(nvm_vm *vm, nvm_value map, nvm_value key, nvm_value v);
nvm_status nvm_value_root(nvm_vm *vm, nvm_value v);
void nvm_value_unroot(nvm_vm *vm, uint32_t n);
/* Readers: 0 / null for a value of another type or an index out of range. */
uint32_t nvm_value_array_len(nvm_vm *vm, nvm_value arr);
nvm_value nvm_value_array_get(nvm_vm *vm, nvm_value arr, uint32_t i);
uint32_t nvm_value_map_len(nvm_vm *vm, nvm_value map);
/* Live entries in insertion order: start with *pos = 0; false when there are no more. */
bool nvm_value_map_entry(nvm_vm *vm, nvm_value map, uint32_t *pos, nvm_value *key, nvm_value *val);

/* ---- the host layer: capabilities mediated by grants (docs/capabilities.md) ----
 * An nvm_host holds the effective grant of one run (capability strings "type.action" or
 * "type.action:scope", e.g. "fs.read:/srv/data/report.txt"), deny rules, per-run limits, the audit
 * hook and open handles. nvm_host_install registers every host capability on a VM; each call is
 * checked against the grant, audited, and denied calls fail with NVM_E_DENIED (catchable). */
typedef struct nvm_host nvm_host;

/* Audit hook: one record per security event. `fields` is a NULL-terminated list of key, value
 * strings. Return NVM_OK, or a failure status, in which case the action does not happen. */
typedef nvm_status (*nvm_audit_fn)(void *ud, const char *event, const char *const *fields);

typedef struct nvm_host_config {
    const char *const *args; /* the program's own arguments (args.get), borrowed during new */
    uint32_t nargs;
    int64_t max_read_bytes; /* per run, < 0 unlimited (default) */
    int64_t max_write_bytes;
    int64_t max_handles;
    int64_t max_connections;
    int64_t wall_ms;       /* wall-time limit of the run, < 0 unlimited */
    const char *state_dir; /* kv.* storage lives here (kv.sqlite); NULL: kv unavailable */
    const char *identity;  /* kv namespace owner: capsule name + signer */
    bool audit_pure_calls; /* also audit allowed calls without side effects */
    nvm_audit_fn audit;    /* may be NULL */
    void *audit_ud;
} nvm_host_config;

void nvm_host_config_init(nvm_host_config *cfg);
nvm_status nvm_host_new(const nvm_host_config *cfg, nvm_host **out, nvm_error *err);
/* Grant one capability string; fs grants open their directory now (NVM_E_FORMAT for a malformed
 * string, NVM_E_IO when the directory cannot be opened). */
nvm_status nvm_host_grant(nvm_host *h, const char *capability, nvm_error *err);
/* A deny rule overrides any grant. */
nvm_status nvm_host_deny_rule(nvm_host *h, const char *pattern, nvm_error *err);
/* Register every host capability (io, fs, env, args, time, random, crypto, json, net, kv) on vm.
 * The host must outlive the VM's runs. */
nvm_status nvm_host_install(nvm_host *h, nvm_vm *vm);
void nvm_host_free(nvm_host *h);

/* ---- execution tiers ----
 * nvm_execute runs a verified module with a host's capabilities on one tier: a fresh VM is made
 * from cfg, the host's capabilities are installed, the module is loaded and run. `isolate` runs
 * it in a separate child process whose capability calls are performed by this process (the
 * broker). The VM's error record (message, backtrace) is copied to *err on failure; *gas_used
 * (may be NULL) receives the instructions executed. NVM_E_USAGE when the tier is not available
 * in this build. */
typedef enum nvm_tier {
    NVM_TIER_INTERP = 0,
    NVM_TIER_WASM = 1,
    NVM_TIER_JIT = 2,
    NVM_TIER_AOT = 3 /* C compiled by the system compiler, cached (docs/aot.md); a run whose
                        object cannot be had falls back to the JIT or the interpreter, with an
                        "aot.fallback" audit record */
} nvm_tier;
const char *nvm_tier_name(nvm_tier t); /* "interp", "wasm", "jit", "aot" */
int nvm_tier_lookup(const char *name); /* -1 when unknown */
bool nvm_tier_available(nvm_tier t);
bool nvm_isolation_available(void);

/* A process-local cache of JIT-compiled modules (x86-64 only), shared by every VM whose
 * configuration names it; not thread-safe (one cache per thread). Compiled code is mapped
 * read+execute only after it is written (never writable and executable at once). */
typedef struct nvm_code_cache nvm_code_cache;
nvm_status nvm_code_cache_new(nvm_code_cache **out);
void nvm_code_cache_free(nvm_code_cache *c); /* after every VM using it is done */
typedef struct nvm_code_stats {
    uint64_t modules;    /* modules compiled into this cache */
    uint64_t hits;       /* runs that found their module already compiled */
    uint64_t functions;  /* functions compiled */
    uint64_t insns;      /* bytecode instructions compiled */
    uint64_t code_bytes; /* machine code bytes */
    uint64_t compile_ns; /* time spent compiling */
} nvm_code_stats;
void nvm_code_cache_stats(const nvm_code_cache *c, nvm_code_stats *out);

/* The AOT tier's on-disk cache (docs/aot.md): $NVM_CACHE_DIR, else $XDG_CACHE_HOME/nanovm/aot,
 * else ~/.cache/nanovm/aot. nvm_aot_compile translates the verified module m to C and writes it
 * to `emit_c_path`, or (NULL) compiles it into the cache unless an entry is already there; on
 * NVM_OK *out_text (may be NULL; nvm_free_text) says what was done. */
nvm_status nvm_aot_compile(const nvm_module *m, const char *emit_c_path, char **out_text,
                           nvm_error *err);
/* The same with options: NVM_AOT_UNMETERED, the variant without gas metering that runs whose
 * configuration is `unmetered` use (a separate cache entry). */
#define NVM_AOT_UNMETERED 1u
nvm_status nvm_aot_compile_ex(const nvm_module *m, unsigned flags, const char *emit_c_path,
                              char **out_text, nvm_error *err);
nvm_status nvm_aot_cache_list(char **out_text, nvm_error *err);
nvm_status nvm_aot_cache_clear(uint64_t *removed, nvm_error *err);
nvm_status nvm_execute(const nvm_config *cfg, const nvm_module *m, nvm_host *h, nvm_tier tier,
                       bool isolate, int64_t *gas_used, nvm_error *err);

/* ---- capsules and trust (docs/capsule-format.md, docs/policy.md, docs/capabilities.md) ----
 * File-level operations on keys, capsules, policies and audit logs; the trust decision for a
 * capsule; running a capsule or a bare program under the policy, with its audit trail.
 * Failures: err->status is the returned status, err->file names the file at fault ("" when none)
 * and err->message says why in one line; the text a command line prints is
 * "FILE: MESSAGE" (or "MESSAGE" when file is ""). Report text returned through `out_text` is
 * NUL-terminated, belongs to the caller and is released with nvm_free_text. */
void nvm_free_text(char *text);

#define NVM_FINGERPRINT_LEN 65 /* SHA-256 as lower-case hex, with its NUL */

/* Diagnostics of the trust session and of nvm_run_program, one call per diagnostic, in the order
 * they happen (a refused capability is reported before the program starts; an audit failure in
 * the middle of a run as it happens). `text` is "FILE: MESSAGE" or "MESSAGE" without a trailing
 * newline; for a runtime error of a bare program it is "FILE:LINE:COL: MESSAGE" followed by the
 * backtrace lines. `text` is borrowed for the call. The last diagnostic of a failing call is also
 * in its nvm_error. */
typedef void (*nvm_message_fn)(void *ud, const char *text);

/* True when `path` starts with the capsule magic (false when it cannot be read). */
bool nvm_capsule_is_file(const char *path);
/* NVM_OK when `capability` is a well-formed capability string ("type.action[:scope]"), else
 * NVM_E_FORMAT with the reason. */
nvm_status nvm_capability_check(const char *capability, nvm_error *err);

/* Generate an Ed25519 signing key and write it to `path` (PKCS#8 PEM, mode 0600).
 * `fingerprint` receives the SHA-256 of the raw public key. */
nvm_status nvm_keygen_file(const char *path, char fingerprint[NVM_FINGERPRINT_LEN], nvm_error *err);

/* What nvm_capsule_pack_file built. */
typedef struct nvm_pack_info {
    char name[129];   /* manifest name */
    char version[96]; /* manifest version as written */
    size_t size;      /* bytes written */
} nvm_pack_info;
/* Build an unsigned capsule from a manifest (JSON), a program (.casm, .json or .nvmb; its
 * manifest entry must exist) and asset files (named by their base names), and write it to
 * `out_path` atomically (temporary file + rename). `info` may be NULL. An input file that cannot
 * be read is NVM_E_FORMAT; a failure to write the output is NVM_E_IO. */
nvm_status nvm_capsule_pack_file(const char *manifest_path, const char *program_path,
                                 const char *const *asset_paths, size_t nassets,
                                 const char *out_path, nvm_pack_info *info, nvm_error *err);

/* What nvm_capsule_sign_file did. */
typedef struct nvm_sign_info {
    char fingerprint[NVM_FINGERPRINT_LEN]; /* the signing key's */
    size_t ncerts;                         /* certificates in the signature block */
    /* The leaf certificate is not for the signing key (verification will reject the chain).
     * Set as soon as known, also when the call fails afterwards. */
    bool cert_mismatch;
} nvm_sign_info;
/* Sign the capsule `in_path` with the key in `key_pem`, optionally carrying the leaf certificate
 * `cert_pem` and intermediates `chain_pem` (either may be NULL; chain needs cert). Writes
 * `out_path` atomically; NULL means in place, keeping the file's permission bits. `info` may be
 * NULL. Unreadable inputs are NVM_E_FORMAT; a failure to write is NVM_E_IO. */
nvm_status nvm_capsule_sign_file(const char *in_path, const char *key_pem, const char *cert_pem,
                                 const char *chain_pem, const char *out_path, nvm_sign_info *info,
                                 nvm_error *err);

/* What a capsule contains: sections, manifest, hashes, signature and chain, as text or as JSON
 * (docs/capsule-format.md). It does not decide trust (see nvm_trust_open). *out_text is set on
 * NVM_OK, and also on NVM_E_FORMAT when a certificate of the signature block does not parse
 * (the report marks it); NULL otherwise. */
nvm_status nvm_capsule_inspect_file(const char *path, bool json, char **out_text, nvm_error *err);

/* Check a policy file; on NVM_OK *out_text explains it (roots, pins, revocations, levels). */
nvm_status nvm_policy_check_file(const char *path, char **out_text, nvm_error *err);

/* Check an audit log's hash chain (docs/policy.md). `log_path` and `state_dir` default (NULL) to
 * the policy's; the policy (`policy_path`, NULL: the default location or the built-in default) is
 * read only when one of them is NULL or `policy_path` is given. NVM_E_USAGE when no log is named
 * anywhere; NVM_E_TRUST when the chain is broken (err->message names the first bad line). On
 * NVM_OK *nrecords (may be NULL) is the number of records and *out_text the one-line verdict. */
nvm_status nvm_audit_verify_file(const char *log_path, const char *policy_path,
                                 const char *state_dir, uint64_t *nrecords, char **out_text,
                                 nvm_error *err);

/* The tier a run asks for. DEFAULT: for a capsule, the tier its trust level's policy names; for a
 * bare program, the interpreter. AUTO follows the trust level (docs/policy.md). A request other
 * than DEFAULT replaces the policy's tier only when the policy allows tier overrides. */
typedef enum nvm_tier_request {
    NVM_TIER_REQ_DEFAULT = 0,
    NVM_TIER_REQ_INTERP,
    NVM_TIER_REQ_AUTO,
    NVM_TIER_REQ_WASM,
    NVM_TIER_REQ_JIT,
    NVM_TIER_REQ_AOT
} nvm_tier_request;

/* How to run: borrowed for the call. */
typedef struct nvm_run_options {
    const nvm_config *cfg;   /* VM configuration (NULL: defaults); a capsule's level limits and
                                manifest limits apply, these may only lower them */
    const char *const *args; /* the program's own arguments (args.get) */
    uint32_t nargs;
    nvm_tier_request tier;
    bool isolate;      /* run in a separate process too (always honoured; needs
                          nvm_isolation_available()) */
    int64_t *gas_used; /* may be NULL: receives the instructions the run executed (0 when the
                          program did not start) */
} nvm_run_options;

/* A trust session: one capsule assessed under one policy, with its audit log open. */
typedef struct nvm_trust nvm_trust;

/* Load the policy (`policy_path`, NULL: the default location or the built-in default), open the
 * audit log (`audit_path`, NULL: the policy's), open and parse the capsule, assess it and audit
 * "load", "trust" (and "reject" when it may not run). NVM_OK means a decision was made, whether or
 * not the capsule may run; *out then belongs to the caller (nvm_trust_free). On failure *out is
 * NULL: malformed capsule or policy (NVM_E_FORMAT), audit failure (NVM_E_IO), ...
 * `message`/`message_ud` (may be NULL) receive this session's diagnostics until it is freed. */
nvm_status nvm_trust_open(const char *capsule_path, const char *policy_path, const char *audit_path,
                          nvm_message_fn message, void *message_ud, nvm_trust **out,
                          nvm_error *err);
bool nvm_trust_may_run(const nvm_trust *t);
/* "trusted", "verified", "sandboxed", "restricted" or "rejected" (static string). */
const char *nvm_trust_level_name(const nvm_trust *t);
/* The decision as `nanovm verify` prints it: text, or JSON with the keys of docs/policy.md. */
nvm_status nvm_trust_report(const nvm_trust *t, bool json, char **out_text, nvm_error *err);
/* Run the capsule: NVM_E_TRUST when it may not run; else pick the tier, apply the limits, audit
 * "tier", record the rollback state, grant the manifest's capabilities that the level allows
 * (each refused one is a diagnostic and a "cap.refused" record), audit "run.start", run on
 * nvm_execute, audit "limit" and "run.end". Returns the program's status (NVM_OK, a runtime
 * error, a limit, ...) or the failure that stopped it earlier. Call at most once per session;
 * afterwards nvm_trust_report shows the tier the run used. */
nvm_status nvm_trust_run(nvm_trust *t, const nvm_run_options *opt, nvm_error *err);
/* Compile the capsule for the AOT tier (into the cache, or its C to `emit_c_path`) after the
 * trust decision: NVM_E_TRUST unless it may run and its level's tier under the policy is "aot";
 * audits "aot.compile" (or "aot.emit"). *out_text (may be NULL) says what was done. */
nvm_status nvm_trust_aot(nvm_trust *t, const char *emit_c_path, char **out_text, nvm_error *err);
void nvm_trust_free(nvm_trust *t);

/* A bare program (not a capsule): unsigned, so it runs at the sandboxed level. */
typedef struct nvm_run_request {
    const char *file;         /* name used in diagnostics and audit records */
    const nvm_module *module; /* verified; borrowed */
    const char *policy_path;  /* NULL: the default location or the built-in default */
    const char *audit_path;   /* NULL: the policy's audit log */
    /* Grants on top of the ambient part of the sandboxed ceiling (io, args, time, random); each
     * must lie within that ceiling, else NVM_E_TRUST and a "cap.refused" record. */
    const char *const *allows;
    size_t nallow;
    nvm_run_options run;    /* the VM limits come from here only */
    nvm_message_fn message; /* may be NULL */
    void *message_ud;
} nvm_run_request;
/* Load the policy, open the audit log, build the host (sandboxed host limits and wall_ms, the
 * grants above, the level's deny rules), audit "run.start", run on nvm_execute, audit "run.end".
 * A malformed --allow string is NVM_E_USAGE. Returns the program's status or the failure that
 * stopped it earlier. */
nvm_status nvm_run_program(const nvm_run_request *req, nvm_error *err);

/* Standard streams capabilities for a host that wants them: io.print (stdout, joins its
 * arguments and adds a newline, written as produced) and io.read (one line from stdin without
 * its newline, "" at end of input). Implemented in the host layer, outside the portable core. */
nvm_status nvm_host_register_stdio(nvm_vm *vm);

#ifdef __cplusplus
}
#endif
#endif
