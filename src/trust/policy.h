/* policy.h - the trust policy (JSON via jansson; docs/policy.md).
 * Paths in the file are relative to the policy file's directory. Without a policy file the
 * built-in default applies (documented in docs/policy.md): no roots, no pins, min_level
 * "restricted", on_invalid_signature "reject", every level with tier "auto" and the
 * VM's default limits, tier overrides allowed, no state dir, no audit log. Unknown keys are an
 * error. */
#ifndef NVM_POLICY_H
#define NVM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"
#include "crypto.h"
#include "manifest.h"

typedef enum nvm_trust_level {
    NVM_LEVEL_REJECTED = 0,
    NVM_LEVEL_RESTRICTED = 1,
    NVM_LEVEL_SANDBOXED = 2,
    NVM_LEVEL_VERIFIED = 3,
    NVM_LEVEL_TRUSTED = 4
} nvm_trust_level;
#define NVM_LEVEL_COUNT 5

const char *nvm_level_name(nvm_trust_level l); /* "trusted" ... "rejected" */
int nvm_level_lookup(const char *s);           /* -1 when unknown */

/* Host-side per-run limits (docs/policy.md, docs/capabilities.md); -1: unlimited. */
typedef struct nvm_host_limits {
    int64_t read_bytes;
    int64_t write_bytes;
    int64_t handles;
    int64_t connections;
} nvm_host_limits;

typedef struct nvm_level_policy {
    char **caps; /* ceiling: capability patterns allowed at this level */
    size_t ncaps;
    char **deny; /* deny patterns (override any allow) */
    size_t ndeny;
    nvm_limits limits;    /* -1 fields: the VM defaults */
    nvm_host_limits host; /* -1 fields: unlimited */
    char tier[16];        /* "auto", "interp", ... */
    bool unmetered;       /* "gas_metering": false (trusted only, without gas and wall_ms limits) */
} nvm_level_policy;

typedef struct nvm_policy {
    char *path;         /* file it came from, NULL for the built-in default */
    char *dir;          /* base for relative paths */
    nvm_certs *roots;   /* trust_roots, decoded in `crypto` */
    nvm_crypto *crypto; /* verification context (NULL: OpenSSL's default context); made when
                           the policy has trust roots, freed after them */
    uint8_t (*pinned)[NVM_ED25519_PUB_LEN];
    size_t npinned;
    char **revoked_keys; /* SHA-256 of raw public keys, lower-case hex */
    size_t nrevoked_keys;
    char **revoked_serials; /* lower-case hex, no leading zeros stripped: compared as written */
    size_t nrevoked_serials;
    char **revoked_capsules; /* SHA-256 of capsule files, lower-case hex */
    size_t nrevoked_capsules;
    nvm_trust_level min_level;
    bool invalid_signature_sandbox; /* on_invalid_signature: "sandbox" */
    char *state_dir;                /* absolute or NULL (no rollback protection) */
    char *audit_log;                /* absolute or NULL */
    bool allow_tier_override;
    bool audit_pure_calls;                    /* also audit allowed calls without side effects */
    nvm_level_policy levels[NVM_LEVEL_COUNT]; /* indexed by level (REJECTED unused) */
} nvm_policy;

/* Load from a file (NULL path: the default location NVM_POLICY_DEFAULT_PATH if it exists, else
 * the built-in default). Errors: NVM_E_FORMAT with a message naming the key. */
#define NVM_POLICY_DEFAULT_PATH "/etc/nanovm/policy.json"
nvm_status nvm_policy_load(const char *path, nvm_policy *out, nvm_error *err);
void nvm_policy_default(nvm_policy *out);
void nvm_policy_free(nvm_policy *p);

/* ---- capability scopes: the one implementation of scope semantics (docs/capabilities.md),
 * shared by the policy (ceilings, deny rules) and the host (every call) ----
 * Glob: '*' matches a run of characters other than `sep` ('\0': any run), '**' any run
 * including `sep`; everything else is literal and case-sensitive. Linear time in the text. */
bool nvm_glob_match_sep(const char *pattern, const char *text, char sep);
/* Does `scope` (of a capability of `type`) admit the concrete argument `arg`?
 *   fs   arg is an absolute, normalized path; segments separated by '/'; a pattern ending in a
 *        "**" segment also admits the directory itself (the directory "/srv" matches the
 *        pattern "/srv" + "/" + "**");
 *   net  arg is "host:port" ("[v6]:port"); host labels separated by '.', port literal or '*';
 *   env, kv and any other type: '*' and '**' match any run of characters.
 * An empty scope admits everything. */
bool nvm_scope_match(const char *type, const char *scope, const char *arg);
/* Does `outer` admit every argument `inner` admits? Conservative: false when unsure. A '*' or
 * '**' inside `inner` is only covered by a wildcard of `outer` at least as wide. */
bool nvm_scope_covers(const char *type, const char *outer, const char *inner);
/* A rule or grant pattern ("*", "type.*", "type.action", "type.action:scope") against one call
 * of capability `capname` ("type.action") with argument `arg` (NULL: the call has no argument
 * to check; then a scoped pattern does not apply). */
bool nvm_cap_call_match(const char *pattern, const char *capname, const char *arg);

/* Capability patterns against a requested capability: "*" covers everything, "type.*" every
 * action of a type, "type.action" every scope of that type.action, "type.action:scope" the
 * requests of that type.action whose scope it covers (nvm_scope_covers). */
bool nvm_cap_pattern_match(const char *pattern, const nvm_capreq *c);
/* A capability is allowed at a level when a `capabilities` pattern covers it and no `deny`
 * pattern does (a deny rule that covers only part of it applies per call, at run time).
 * Nothing is allowed at NVM_LEVEL_REJECTED. */
bool nvm_level_allows(const nvm_policy *p, nvm_trust_level l, const nvm_capreq *c);

#endif
