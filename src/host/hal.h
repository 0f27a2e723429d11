/* hal.h - the host layer's internal contract: the per-run host context (grants, deny rules,
 * audit hook, per-run limits and counters, open handles) shared by every capability
 * implementation in src/host/. The public face is the nvm_host_* API in include/nanovm.h.
 *
 * Invariants:
 *   - every capability function checks its grant on every call, before any side effect;
 *   - a denial writes an audit record and returns nvm_cap_fail(vm, NVM_E_DENIED, ...) (catchable,
 *     exit 6 when uncaught); it leaves no side effect (no file created, no byte sent);
 *   - every allowed side-effecting call writes an audit record (capability, matched scope, the
 *     argument it was checked against) before it acts; allowed pure calls are audited only when
 *     cfg.audit_pure_calls is set;
 *   - handles[] slots are 0-based; a program sees handle numbers i + 1; a closed slot has kind
 *     NVM_HANDLE_FREE; every open handle is closed by nvm_host_free.
 */
#ifndef NVM_HAL_H
#define NVM_HAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"

typedef struct nvm_capgrant {
    char capname[64]; /* "type.action" */
    char scope[512];  /* "" = any scope */
    int dirfd;        /* fs grants: directory opened at grant time (-1 otherwise) */
    char root[512];   /* fs grants: the literal directory prefix of the pattern */
} nvm_capgrant;

enum nvm_handle_kind { NVM_HANDLE_FREE = 0, NVM_HANDLE_SOCKET = 1, NVM_HANDLE_LISTENER = 2 };

typedef struct nvm_handle {
    int kind;
    int fd;
    char label[128]; /* "127.0.0.1:8080", for audit records */
} nvm_handle;

struct nvm_kv; /* kv.c: the SQLite store */

struct nvm_host {
    nvm_host_config cfg; /* copied; strings owned by the host */
    nvm_capgrant *grants;
    size_t ngrants;
    char **denies; /* deny patterns ("type.action" or "type.action:scope-pattern") */
    size_t ndenies;
    int64_t bytes_read;
    int64_t bytes_written;
    int64_t connections;
    int64_t deadline_ms; /* monotonic ms, or -1 */
    nvm_handle *handles;
    size_t nhandles;
    struct nvm_kv *kv;
};

/* Grants for capname ("fs.read"); returns how many, *out points into h->grants (consecutive
 * is not guaranteed: iterate with nvm_host_grant_at). */
size_t nvm_host_grant_count(const nvm_host *h);
const nvm_capgrant *nvm_host_grant_at(const nvm_host *h, size_t i);
/* True when a deny rule matches capname with the given argument (scope text). */
bool nvm_host_denied_by_rule(const nvm_host *h, const char *capname, const char *arg);
/* Glob match used for env/kv scopes and host names: '*' matches within one label/segment
 * (not '.' for hosts, not '/' for paths), '**' across; the rest literal. */
bool nvm_glob_match(const char *pattern, const char *text, char sep);

/* Audit + refuse: returns nvm_cap_fail(vm, NVM_E_DENIED, "<capname>: <why>") after writing
 * a "cap.denied" record. */
nvm_status nvm_host_deny(nvm_host *h, nvm_vm *vm, const char *capname, const char *arg,
                         const char *why);
/* Audit an allowed call ("cap.call": capability, scope, argument). Pure calls pass pure=true
 * and are written only when audit_pure_calls is set. Returns NVM_E_IO when the audit hook fails
 * (the call must then not act). */
nvm_status nvm_host_audit_call(nvm_host *h, const char *capname, const char *scope, const char *arg,
                               bool pure);
/* One audit record (event + NULL-terminated key/value fields) through the host's hook; NVM_OK
 * when h is NULL or has no hook (broker.c: events of isolated runs). */
nvm_status nvm_host_audit_event(nvm_host *h, const char *event, const char *const *fields);
/* Per-run host limits (bytes read/written, handles, connections, wall time): exceeding one ends
 * the run with NVM_E_HOSTLIMIT or NVM_E_TIME (exit 5, not catchable). */
nvm_status nvm_host_account(nvm_host *h, nvm_vm *vm, int64_t nread, int64_t nwritten);
nvm_status nvm_host_check_deadline(nvm_host *h, nvm_vm *vm);
/* Handles: add returns the program-visible number (>= 1) or a limit status; get with kind
 * NVM_HANDLE_FREE accepts an open handle of any kind (NULL when not open / other kind). */
nvm_status nvm_host_handle_add(nvm_host *h, nvm_vm *vm, int kind, int fd, const char *label,
                               int64_t *out_number);
nvm_handle *nvm_host_handle_get(nvm_host *h, int64_t number, int kind);
void nvm_host_handle_close(nvm_host *h, int64_t number);

/* ---- helpers shared by the capability files ---- */
/* The first grant of h that admits a call of capname with argument arg (the scope matched with
 * nvm_scope_match from src/trust/policy.h), or NULL. Grants may be "type.action[:scope]",
 * "type.*" or "*". */
const nvm_capgrant *nvm_host_find_grant(const nvm_host *h, const char *capname, const char *arg);
/* Why a call found no grant: "not granted" or "outside the granted scope". */
const char *nvm_host_why_not(const nvm_host *h, const char *capname);
/* The whole per-call gate, in order: wall-time deadline; grant (unless NVM_GATE_NOGRANT); deny
 * rules; audit record (pure calls only when audit_pure_calls). On NVM_OK *out (may be NULL) is
 * the matching grant (NULL for NVM_GATE_NOGRANT). `arg` is the checked argument or NULL. */
#define NVM_GATE_PURE 1u    /* no side effect: audited only when audit_pure_calls is set */
#define NVM_GATE_NOGRANT 2u /* needs no grant (pure helpers); deny rules still apply */
nvm_status nvm_host_gate(nvm_host *h, nvm_vm *vm, const char *capname, const char *arg,
                         unsigned flags, const nvm_capgrant **out);
/* Printable text of a program-given argument for messages and audit records: bytes outside
 * 0x20..0x7e become \xNN, and the text is cut at outlen - 1 bytes with "..." at the end. */
void nvm_host_arg_text(const char *s, size_t len, char *out, size_t outlen);
/* Monotonic milliseconds (the clock deadlines use). */
int64_t nvm_host_now_ms(void);

/* Registration of each family (each file registers its own capabilities with `h` as ud). */
nvm_status nvm_host_install_io(nvm_host *h, nvm_vm *vm);   /* io.c: io.print io.eprint io.read */
nvm_status nvm_host_install_fs(nvm_host *h, nvm_vm *vm);   /* fs.c */
nvm_status nvm_host_install_sys(nvm_host *h, nvm_vm *vm);  /* sys.c: env args time random */
nvm_status nvm_host_install_pure(nvm_host *h, nvm_vm *vm); /* pure.c: crypto.* json.* */
nvm_status nvm_host_install_net(nvm_host *h, nvm_vm *vm);  /* net.c */
nvm_status nvm_host_install_kv(nvm_host *h, nvm_vm *vm);   /* kv.c */
void nvm_host_kv_close(nvm_host *h);                       /* kv.c */
/* net.c: true when scope is a well-formed net.connect / net.listen scope ("host:port"). */
bool nvm_net_scope_valid(const char *scope);

#endif
