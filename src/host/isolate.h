/* isolate.h - process isolation of a run (the Restricted tier's outer wall): a forked child runs
 * the module under no-new-privs, rlimits, new namespaces where the kernel allows them and a
 * seccomp allow-list; every capability call crosses a socketpair to this process, the broker,
 * which decodes it, performs it through the real host capability (grants, scope checks, audit)
 * and sends the result back. docs/security.md describes the protocol and the allow-list.
 *
 * Wire format (both ends are the same binary, so integers are in host byte order):
 *   frame   := u32 body_len, body (body_len bytes, at most the receiver's bound)
 *   body    := u8 kind, payload
 *   HELLO   (child -> broker, once, after the sandbox is in place): u32 namespaces (CLONE_* bits
 *           applied), u32 flags (NVM_ISO_SECCOMP, NVM_ISO_RLIMIT_AS)
 *   CALL    (child -> broker): str name, values (the arguments)
 *   REPLY   (broker -> child): u32 status; OK: values (the result); else str message
 *   DONE    (child -> broker, last): u32 status, i64 gas used, u32 line, u32 col, str message,
 *           str file, str backtrace
 *   str     := u32 len, len bytes
 *   values  := a value list in the codec of src/vm/marshal.h (depth, cycle and size checked)
 * CALL's argument list is everything after the name; REPLY's result is a list of one value.
 */
#ifndef NVM_ISOLATE_H
#define NVM_ISOLATE_H

#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"
#include "vm/marshal.h"

enum { NVM_ISO_HELLO = 1, NVM_ISO_CALL = 2, NVM_ISO_REPLY = 3, NVM_ISO_DONE = 4 };
#define NVM_ISO_SECCOMP 1u
#define NVM_ISO_RLIMIT_AS 2u
#define NVM_ISO_MAX_NAME 255
/* RLIMIT_CPU of a child whose host has no wall-time limit, in seconds. */
#define NVM_ISO_DEFAULT_CPU_S 600

/* A capability registered directly in the child, not brokered (tests: code that must be stopped
 * by the sandbox runs here). */
typedef struct nvm_iso_local_cap {
    const char *name;
    uint32_t argc;
    nvm_cap_fn fn;
    void *ud;
} nvm_iso_local_cap;

typedef struct nvm_iso_options {
    const nvm_iso_local_cap *locals;
    size_t nlocals;
    uint32_t namespaces; /* out: CLONE_* bits the child reported applied */
    uint32_t flags;      /* out: NVM_ISO_* bits the child reported */
} nvm_iso_options;

/* Registers the capabilities a run may call on a fresh VM (the in-process runners' hook). */
typedef nvm_status (*nvm_cap_installer)(void *ud, nvm_vm *vm);

/* Runs m on `tier` in this process with the capabilities `install` registers (exec.c). */
nvm_status nvm_exec_local(const nvm_config *cfg, const nvm_module *m, nvm_tier tier,
                          nvm_cap_installer install, void *install_ud, int64_t *gas_used,
                          nvm_error *err);

/* True when this kernel and libseccomp can build the child's sandbox (isolate.c). */
bool nvm_isolate_supported(void);
/* Runs m in an isolated child (isolate.c). opts may be NULL. */
nvm_status nvm_isolate_run(const nvm_config *cfg, const nvm_module *m, nvm_host *h, nvm_tier tier,
                           nvm_iso_options *opts, int64_t *gas_used, nvm_error *err);

/* ---- shared by both ends (broker.c) ---- */
/* Frame building on a marshal buffer (marshal.h): begin reserves the length word and writes the
 * kind; the put helpers return false when the buffer cannot grow. */
void nvm_iso_buf_init(nvm_mbuf *b, size_t limit);
bool nvm_iso_begin(nvm_mbuf *b, uint8_t kind);
bool nvm_iso_put_u32(nvm_mbuf *b, uint32_t v);
bool nvm_iso_put_i64(nvm_mbuf *b, int64_t v);
bool nvm_iso_put_str(nvm_mbuf *b, const char *s, size_t n);

typedef struct nvm_iso_reader {
    const uint8_t *p;
    size_t left;
} nvm_iso_reader;

bool nvm_iso_get_u32(nvm_iso_reader *r, uint32_t *v);
bool nvm_iso_get_i64(nvm_iso_reader *r, int64_t *v);
/* Borrows len bytes of the message. */
bool nvm_iso_get_str(nvm_iso_reader *r, const char **s, uint32_t *len);

/* Frame I/O on a stream socket. send: false when the peer is gone (never raises SIGPIPE).
 * recv: reads one frame whose body is at most `max` bytes into b (b->len = body length); returns
 * 1 on success, 0 on end of stream, -1 on error or a frame over the bound. deadline_ms >= 0 is a
 * monotonic deadline (nvm_host_now_ms) and gives -2 when it passes; `tick`, when not NULL, runs
 * about every 20 ms of waiting and its non-OK return gives -3 (its status in *tick_status).
 * Without deadline and tick, recv makes no system call but recvfrom. */
bool nvm_iso_send(int fd, nvm_mbuf *b);
int nvm_iso_recv(int fd, nvm_mbuf *b, size_t max, int64_t deadline_ms, nvm_status (*tick)(void *),
                 void *tick_ud, nvm_status *tick_status);

/* The broker (broker.c): serves the child on fd until its DONE frame, a protocol violation, its
 * death, the host deadline or a failing interrupt hook; reaps it; fills err/gas_used. */
nvm_status nvm_iso_broker(const nvm_config *cfg, const nvm_module *m, nvm_host *h, nvm_vm *bvm,
                          int fd, int pid, int64_t cpu_s, nvm_iso_options *opts, int64_t *gas_used,
                          nvm_error *err);

#endif
