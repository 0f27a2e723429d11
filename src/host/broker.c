/* broker.c - the parent side of an isolated run (isolate.h): the value codec and frame I/O both
 * ends share, and the broker loop that performs the child's capability calls through the real
 * host capabilities. The child is never trusted: every length is checked against what is left
 * of the frame, frames are bounded, nesting is bounded, only capabilities the module imports may
 * be called, and any violation ends the child. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/hal.h"
#include "host/isolate.h"
#include "vm/capcall.h"

/* ---- buffers ---- */

void nvm_iso_buf_init(nvm_mbuf *b, size_t limit)
{
    nvm_mbuf_init(b, nvm_default_alloc, NULL, limit);
}

bool nvm_iso_begin(nvm_mbuf *b, uint8_t kind)
{
    b->len = 0;
    return nvm_mbuf_put_u32(b, 0) == NVM_OK && nvm_mbuf_put(b, &kind, 1) == NVM_OK;
}

bool nvm_iso_put_u32(nvm_mbuf *b, uint32_t v)
{
    return nvm_mbuf_put(b, &v, 4) == NVM_OK;
}
bool nvm_iso_put_i64(nvm_mbuf *b, int64_t v)
{
    return nvm_mbuf_put(b, &v, 8) == NVM_OK;
}

bool nvm_iso_put_str(nvm_mbuf *b, const char *s, size_t n)
{
    return n <= UINT32_MAX && nvm_iso_put_u32(b, (uint32_t)n) && nvm_mbuf_put(b, s, n) == NVM_OK;
}

static bool get(nvm_iso_reader *r, void *out, size_t n)
{
    if (r->left < n)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

bool nvm_iso_get_u32(nvm_iso_reader *r, uint32_t *v)
{
    return get(r, v, 4);
}
bool nvm_iso_get_i64(nvm_iso_reader *r, int64_t *v)
{
    return get(r, v, 8);
}

bool nvm_iso_get_str(nvm_iso_reader *r, const char **s, uint32_t *len)
{
    if (!nvm_iso_get_u32(r, len) || r->left < *len)
        return false;
    *s = (const char *)r->p;
    r->p += *len;
    r->left -= *len;
    return true;
}

/* ---- frames ---- */

bool nvm_iso_send(int fd, nvm_mbuf *b)
{
    if (b->len < 5 || b->len - 4 > UINT32_MAX)
        return false;
    uint32_t body = (uint32_t)(b->len - 4);
    memcpy(b->data, &body, 4);
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    return true;
}

/* Waits until fd is readable: 1, or 0 on error, -2 at the deadline, -3 when the tick fails. */
static int wait_readable(int fd, int64_t deadline_ms, nvm_status (*tick)(void *), void *tick_ud,
                         nvm_status *tick_status)
{
    for (;;) {
        int timeout = -1;
        if (tick != NULL)
            timeout = 20;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - nvm_host_now_ms();
            if (left < 0)
                return -2;
            if (timeout < 0 || left < timeout)
                timeout = (int)left + 1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, timeout);
        if (n < 0 && errno != EINTR)
            return 0;
        if (n > 0)
            return 1;
        if (tick != NULL && (*tick_status = tick(tick_ud)) != NVM_OK)
            return -3;
    }
}

/* Reads exactly n bytes: 1, 0 at end of stream before any byte, -1 on error/short stream. */
static int read_exact(int fd, uint8_t *p, size_t n, int64_t deadline_ms, nvm_status (*tick)(void *),
                      void *tick_ud, nvm_status *tick_status)
{
    size_t off = 0;
    while (off < n) {
        if (deadline_ms >= 0 || tick != NULL) {
            int w = wait_readable(fd, deadline_ms, tick, tick_ud, tick_status);
            if (w != 1)
                return w == 0 ? -1 : w;
        }
        ssize_t got = recv(fd, p + off, n - off, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            return off == 0 ? 0 : -1;
        off += (size_t)got;
    }
    return 1;
}

int nvm_iso_recv(int fd, nvm_mbuf *b, size_t max, int64_t deadline_ms, nvm_status (*tick)(void *),
                 void *tick_ud, nvm_status *tick_status)
{
    uint32_t body;
    int r = read_exact(fd, (uint8_t *)&body, 4, deadline_ms, tick, tick_ud, tick_status);
    if (r != 1)
        return r;
    if (body == 0 || body > max)
        return -1;
    b->len = 0;
    if (b->cap < body) {
        uint8_t *d = b->alloc(b->alloc_ud, b->data, b->cap, body);
        if (d == NULL)
            return -1;
        b->data = d;
        b->cap = body;
    }
    r = read_exact(fd, b->data, body, deadline_ms, tick, tick_ud, tick_status);
    if (r != 1)
        return r == 0 ? -1 : r;
    b->len = body;
    return 1;
}

/* ---- the broker ---- */

nvm_status nvm_host_audit_event(nvm_host *h, const char *event, const char *const *fields)
{
    if (h == NULL || h->cfg.audit == NULL)
        return NVM_OK;
    return h->cfg.audit(h->cfg.audit_ud, event, fields);
}

static void set_err(nvm_error *err, nvm_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void set_err(nvm_error *err, nvm_status st, const char *fmt, ...)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof *err);
    err->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static const char *signal_text(int sig, char *buf, size_t len)
{
    switch (sig) {
    case SIGSYS: return "SIGSYS (forbidden system call)";
    case SIGXCPU: return "SIGXCPU (CPU time limit)";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV (crash)";
    case SIGBUS: return "SIGBUS (crash)";
    case SIGABRT: return "SIGABRT (crash)";
    case SIGILL: return "SIGILL (crash)";
    case SIGFPE: return "SIGFPE (crash)";
    case SIGXFSZ: return "SIGXFSZ (file size limit)";
    default: snprintf(buf, len, "signal %d", sig); return buf;
    }
}

/* Copies a string of the message into a fixed field, NUL-terminated and cut to fit. */
static bool get_field(nvm_iso_reader *r, char *out, size_t outlen)
{
    const char *s;
    uint32_t n;
    if (!nvm_iso_get_str(r, &s, &n))
        return false;
    size_t k = n < outlen - 1 ? n : outlen - 1;
    memcpy(out, s, k);
    out[k] = '\0';
    return true;
}

typedef struct broker {
    const nvm_module *m;
    nvm_host *h;
    nvm_vm *bvm;
    int fd;
    nvm_mbuf out;
    nvm_iso_options *opts;
    bool hello;
} broker;

static bool module_imports(const nvm_module *m, const char *name, uint32_t len)
{
    for (uint32_t i = 0; i < nvm_module_cap_count(m); i++) {
        const char *c = nvm_module_cap_name(m, i);
        if (strlen(c) == len && memcmp(c, name, len) == 0)
            return true;
    }
    return false;
}

/* Performs one CALL frame and sends the reply. Returns NULL, or why the frame is a violation. */
static const char *serve_call(broker *b, nvm_iso_reader *r)
{
    const char *name;
    uint32_t nlen, argc = 0;
    nvm_value *args = NULL;
    const char *why = NULL;
    if (!nvm_iso_get_str(r, &name, &nlen) || nlen == 0 || nlen > NVM_ISO_MAX_NAME)
        return "malformed capability name";
    if (!module_imports(b->m, name, nlen))
        return "call of a capability the module does not import";
    /* every argument takes at least one byte: the count cannot exceed what is left */
    uint32_t maxargs = r->left < 4 ? 0 : (uint32_t)(r->left - 4 < 65536 ? r->left - 4 : 65536);
    if (maxargs > 0 && (args = calloc(maxargs, sizeof *args)) == NULL)
        return "out of memory";
    nvm_status st = nvm_marshal_decode(b->bvm, r->p, r->left, args, maxargs, &argc);
    nvm_value result = nvm_null();
    if (st == NVM_E_FORMAT) {
        why = "malformed arguments";
        goto done;
    }
    if (st == NVM_OK) {
        char cname[NVM_ISO_MAX_NAME + 1];
        memcpy(cname, name, nlen);
        cname[nlen] = '\0';
        st = nvm_vm_call_cap(b->bvm, cname, args, argc, &result);
    }
    bool ok = nvm_iso_begin(&b->out, NVM_ISO_REPLY) && nvm_iso_put_u32(&b->out, (uint32_t)st);
    if (ok && st == NVM_OK) {
        nvm_status est = nvm_marshal_encode(b->bvm, &result, 1, &b->out);
        if (est != NVM_OK) {
            const char *msg = nvm_vm_error(b->bvm)->message;
            ok = nvm_iso_begin(&b->out, NVM_ISO_REPLY) && nvm_iso_put_u32(&b->out, est) &&
                 nvm_iso_put_str(&b->out, msg, strlen(msg));
        }
    } else if (ok) {
        const char *msg = nvm_vm_error(b->bvm)->message;
        ok = nvm_iso_put_str(&b->out, msg, strlen(msg));
    }
    if (!ok)
        why = "out of memory";
    else
        (void)nvm_iso_send(b->fd, &b->out); /* a vanished child shows as end of stream */
    nvm_value_unroot(b->bvm, argc);
done:
    free(args);
    return why;
}

/* Reaps the child; fills the outcome of a child that ended without a DONE frame. */
static nvm_status classify(broker *b, int pid, int64_t cpu_s, nvm_error *err)
{
    int ws = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &ws, 0, &ru) < 0) {
        if (errno != EINTR) {
            set_err(err, NVM_E_INTERNAL, "cannot reap the isolated child: %s", strerror(errno));
            return NVM_E_INTERNAL;
        }
    }
    char pidtext[24], sigbuf[32], stext[32];
    snprintf(pidtext, sizeof pidtext, "%d", pid);
    nvm_status st;
    const char *reason;
    if (WIFSIGNALED(ws)) {
        int sig = WTERMSIG(ws);
        reason = signal_text(sig, sigbuf, sizeof sigbuf);
        int64_t cpu = (int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec;
        if (sig == SIGXCPU || (sig == SIGKILL && cpu >= cpu_s)) {
            st = NVM_E_TIME;
            set_err(err, st, "isolated child killed by %s: CPU time limit of %" PRId64 " s", reason,
                    cpu_s);
        } else if (sig == SIGKILL) {
            st = NVM_E_MEMORY;
            set_err(err, st,
                    "isolated child killed by SIGKILL (out of memory, or killed from outside)");
        } else {
            st = sig == SIGXFSZ ? NVM_E_HOSTLIMIT : NVM_E_PROGRAM;
            set_err(err, st, "isolated child killed by %s", reason);
        }
    } else {
        reason = "exited without finishing the run";
        st = NVM_E_INTERNAL;
        set_err(err, st, "isolated child exited with status %d without finishing the run",
                WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    }
    snprintf(stext, sizeof stext, "%s", nvm_status_name(st));
    const char *f[] = {"pid", pidtext, "reason", reason, "status", stext, NULL};
    (void)nvm_host_audit_event(b->h, "isolate.killed", f);
    return st;
}

static void reap_killed(int pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static nvm_status violation(broker *b, int pid, const char *why, nvm_error *err)
{
    reap_killed(pid);
    char pidtext[24];
    snprintf(pidtext, sizeof pidtext, "%d", pid);
    const char *f[] = {"pid", pidtext, "reason", why, NULL};
    (void)nvm_host_audit_event(b->h, "isolate.violation", f);
    set_err(err, NVM_E_PROGRAM, "isolated child broke the broker protocol (%s) and was killed",
            why);
    return NVM_E_PROGRAM;
}

static nvm_status done_frame(nvm_iso_reader *r, int64_t *gas_used, nvm_error *err)
{
    uint32_t st, line, col;
    int64_t gas;
    nvm_error e;
    memset(&e, 0, sizeof e);
    if (!nvm_iso_get_u32(r, &st) || st >= NVM_STATUS_COUNT || !nvm_iso_get_i64(r, &gas) ||
        !nvm_iso_get_u32(r, &line) || !nvm_iso_get_u32(r, &col) ||
        !get_field(r, e.message, sizeof e.message) || !get_field(r, e.file, sizeof e.file) ||
        !get_field(r, e.backtrace, sizeof e.backtrace) || r->left != 0)
        return NVM_STATUS_COUNT;
    e.status = (nvm_status)st;
    e.line = line;
    e.col = col;
    if (gas_used != NULL)
        *gas_used = gas;
    if (st != NVM_OK && err != NULL)
        *err = e;
    return (nvm_status)st;
}

nvm_status nvm_iso_broker(const nvm_config *cfg, const nvm_module *m, nvm_host *h, nvm_vm *bvm,
                          int fd, int pid, int64_t cpu_s, nvm_iso_options *opts, int64_t *gas_used,
                          nvm_error *err)
{
    broker b = {.m = m, .h = h, .bvm = bvm, .fd = fd, .opts = opts};
    nvm_mbuf in;
    /* No legitimate frame is larger than the child's whole memory allowance. */
    size_t max = cfg->max_memory > (UINT32_MAX - (1u << 20)) / 2 ? UINT32_MAX
                                                                 : cfg->max_memory * 2 + (1u << 20);
    nvm_iso_buf_init(&in, max);
    nvm_iso_buf_init(&b.out, 0);
    int64_t deadline = h != NULL ? h->deadline_ms : -1;
    nvm_status st, tick_st = NVM_OK;
    char pidtext[24];
    snprintf(pidtext, sizeof pidtext, "%d", pid);
    for (;;) {
        int r = nvm_iso_recv(fd, &in, max, deadline, cfg->interrupt, cfg->interrupt_ud, &tick_st);
        if (r == 0) {
            st = classify(&b, pid, cpu_s, err);
            break;
        }
        if (r == -2 || r == -3) {
            reap_killed(pid);
            st = r == -2 ? NVM_E_TIME : tick_st;
            if (r == -2) {
                char mx[24];
                snprintf(mx, sizeof mx, "%" PRId64, h->cfg.wall_ms);
                const char *f[] = {"limit", "wall_ms", "max", mx, "pid", pidtext, NULL};
                (void)nvm_host_audit_event(h, "limit", f);
                set_err(err, st, "host limit wall_ms (%s) exceeded", mx);
            } else {
                set_err(err, st, "%s (the isolated run was stopped)", nvm_status_meaning(st));
            }
            break;
        }
        if (r < 0) {
            st = violation(&b, pid, "oversized or truncated frame", err);
            break;
        }
        nvm_iso_reader rd = {in.data + 1, in.len - 1};
        uint8_t kind = in.data[0];
        if (kind == NVM_ISO_HELLO && !b.hello) {
            uint32_t ns, flags;
            if (!nvm_iso_get_u32(&rd, &ns) || !nvm_iso_get_u32(&rd, &flags) || rd.left != 0 ||
                !(flags & NVM_ISO_SECCOMP)) {
                st = violation(&b, pid, "malformed hello", err);
                break;
            }
            b.hello = true;
            if (opts != NULL) {
                opts->namespaces = ns;
                opts->flags = flags;
            }
            char nstext[16];
            snprintf(nstext, sizeof nstext, "0x%x", ns);
            const char *f[] = {
                "pid",     pidtext, "namespaces", nstext,
                "seccomp", "on",    "rlimit_as",  flags & NVM_ISO_RLIMIT_AS ? "on" : "off",
                NULL};
            if (nvm_host_audit_event(h, "isolate.start", f) != NVM_OK) {
                reap_killed(pid);
                st = NVM_E_IO;
                set_err(err, st, "cannot write the audit log");
                break;
            }
        } else if (kind == NVM_ISO_CALL && b.hello) {
            const char *why = serve_call(&b, &rd);
            if (why != NULL) {
                st = violation(&b, pid, why, err);
                break;
            }
        } else if (kind == NVM_ISO_DONE) {
            /* before HELLO only a failure to build the sandbox may be reported */
            st = done_frame(&rd, gas_used, err);
            if (!b.hello && st != NVM_STATUS_COUNT && st != NVM_OK && err != NULL)
                err->status = st = NVM_E_INTERNAL;
            if (st == NVM_STATUS_COUNT || (!b.hello && st == NVM_OK)) {
                st = violation(&b, pid, "malformed final record", err);
                break;
            }
            reap_killed(pid);
            break;
        } else {
            st = violation(&b, pid, "unexpected frame", err);
            break;
        }
    }
    nvm_mbuf_free(&in);
    nvm_mbuf_free(&b.out);
    return st;
}
