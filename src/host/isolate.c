/* isolate.c - the child side of an isolated run (isolate.h): fork over a socketpair, build the
 * sandbox (descriptors, no-new-privs, rlimits, namespaces, seccomp allow-list), then run the
 * module with capability stubs that forward every call to the broker (broker.c).
 *
 * Invariants of the child once HELLO is sent: its only descriptor is NVM_ISO_FD (plus stderr in
 * sanitizer builds, for their reports); the seccomp filter admits read/write/send/recv on that
 * descriptor, non-executable memory management, futex, rt_sigreturn and exit, and kills the
 * process on anything else; it leaves with _exit (no stdio flush, no atexit handlers). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host/hal.h"
#include "host/isolate.h"
#include "vm/capcall.h"
#ifdef NVM_HAVE_WASM_SANDBOX
#include "tier/wasm/sandbox.h"
#endif

/* AddressSanitizer reserves terabytes of shadow address space: RLIMIT_AS and RLIMIT_DATA would
 * make every allocation fail, so sanitizer builds run the child without them (the VM's own
 * memory limit still applies) and keep stderr for the sanitizer's reports. */
#if defined(__SANITIZE_ADDRESS__)
#define NVM_ISO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NVM_ISO_ASAN 1
#endif
#endif
#ifndef NVM_ISO_ASAN
#define NVM_ISO_ASAN 0
#endif

#define NVM_ISO_FD 3
/* Address space and data beyond what the child inherits: twice the VM's memory limit (a growing
 * block briefly exists twice during realloc) plus room for the allocator and the stack. */
#define NVM_ISO_HEADROOM ((rlim_t)64 << 20)

typedef struct iso_limits {
    rlim_t as, data; /* RLIM_INFINITY: not set */
    rlim_t cpu_s;
} iso_limits;

/* One forwarding capability of the child: the broker performs `name`. */
typedef struct iso_stub {
    struct iso_child *child;
    const char *name; /* owned by the broker VM's registry (a copy made by fork) */
    bool preformat;   /* io.print / io.eprint: containers travel as their printed form */
} iso_stub;

typedef struct iso_child {
    int fd;
    nvm_mbuf out, in;
    nvm_vm *bvm;
    iso_stub *stubs;
    const nvm_iso_options *opts;
} iso_child;

/* ---- in the child: forwarding ---- */

/* The printing capabilities print each argument's printed form, which for a string is its text:
 * sending arrays and maps already formatted gives the same output and lets cyclic values (which
 * print as [...] / {...} but cannot be encoded) cross the boundary. */
static nvm_status preformat(nvm_vm *vm, const nvm_value *args, uint32_t argc, nvm_value *out,
                            uint32_t *nroots)
{
    nvm_status st = NVM_OK;
    for (uint32_t i = 0; i < argc && st == NVM_OK; i++) {
        out[i] = args[i];
        if (args[i].type != NVM_T_ARRAY && args[i].type != NVM_T_MAP)
            continue;
        char *buf = NULL;
        size_t len = 0, cap = 0;
        st = nvm_value_format(vm, args[i], &buf, &len, &cap);
        if (st == NVM_OK)
            st = nvm_value_new_str(vm, buf != NULL ? buf : "", len, &out[i]);
        if (buf != NULL)
            nvm_vm_free_buffer(vm, buf, cap);
        if (st == NVM_OK && (st = nvm_value_root(vm, out[i])) == NVM_OK)
            (*nroots)++;
    }
    return st;
}

static nvm_status forward(nvm_vm *vm, iso_stub *s, const nvm_value *args, uint32_t argc,
                          nvm_value *result);

static nvm_status stub_call(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    iso_stub *s = ud;
    if (!s->preformat || argc == 0)
        return forward(vm, s, args, argc, result);
    nvm_value *pa = malloc(sizeof *pa * argc);
    uint32_t nroots = 0;
    if (pa == NULL)
        return nvm_cap_fail(vm, NVM_E_MEMORY, "%s: out of memory", s->name);
    nvm_status st = preformat(vm, args, argc, pa, &nroots);
    if (st == NVM_OK)
        st = forward(vm, s, pa, argc, result);
    nvm_value_unroot(vm, nroots);
    free(pa);
    return st;
}

static nvm_status forward(nvm_vm *vm, iso_stub *s, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    iso_child *c = s->child;
    nvm_status st;
    if (!nvm_iso_begin(&c->out, NVM_ISO_CALL) ||
        !nvm_iso_put_str(&c->out, s->name, strlen(s->name)))
        return nvm_cap_fail(vm, NVM_E_MEMORY, "%s: out of memory encoding the call", s->name);
    if ((st = nvm_marshal_encode(vm, args, argc, &c->out)) != NVM_OK)
        return st;
    if (!nvm_iso_send(c->fd, &c->out))
        return nvm_cap_fail(vm, NVM_E_IO, "%s: the broker is gone", s->name);
    if (nvm_iso_recv(c->fd, &c->in, UINT32_MAX, -1, NULL, NULL, NULL) != 1 || c->in.len < 5 ||
        c->in.data[0] != NVM_ISO_REPLY)
        return nvm_cap_fail(vm, NVM_E_IO, "%s: no reply from the broker", s->name);
    nvm_iso_reader r = {c->in.data + 1, c->in.len - 1};
    uint32_t status, n = 0;
    if (!nvm_iso_get_u32(&r, &status) || status >= NVM_STATUS_COUNT)
        return nvm_cap_fail(vm, NVM_E_IO, "%s: malformed reply from the broker", s->name);
    if (status != NVM_OK) {
        const char *msg;
        uint32_t len;
        if (!nvm_iso_get_str(&r, &msg, &len))
            return nvm_cap_fail(vm, NVM_E_IO, "%s: malformed reply from the broker", s->name);
        return nvm_cap_fail(vm, (nvm_status)status, "%.*s", (int)(len > 4096 ? 4096 : len), msg);
    }
    nvm_value v = nvm_null();
    if ((st = nvm_marshal_decode(vm, r.p, r.left, &v, 1, &n)) != NVM_OK)
        return st;
    nvm_value_unroot(vm, n);
    *result = v; /* the interpreter pushes it before anything can allocate */
    return NVM_OK;
}

static nvm_status install_stubs(void *ud, nvm_vm *vm)
{
    iso_child *c = ud;
    nvm_status st = NVM_OK;
    uint32_t n = c->bvm != NULL ? nvm_vm_cap_count(c->bvm) : 0;
    for (uint32_t i = 0; i < n && st == NVM_OK; i++) {
        uint32_t argc = 0;
        c->stubs[i].child = c;
        c->stubs[i].name = nvm_vm_cap_info(c->bvm, i, &argc);
        c->stubs[i].preformat =
            strcmp(c->stubs[i].name, "io.print") == 0 || strcmp(c->stubs[i].name, "io.eprint") == 0;
        st = nvm_vm_register_cap(vm, c->stubs[i].name, argc, stub_call, &c->stubs[i]);
    }
    for (size_t i = 0; c->opts != NULL && i < c->opts->nlocals && st == NVM_OK; i++) {
        const nvm_iso_local_cap *l = &c->opts->locals[i];
        st = nvm_vm_register_cap(vm, l->name, l->argc, l->fn, l->ud);
    }
    return st;
}

/* ---- in the child: the sandbox ---- */

static void close_others(void)
{
    unsigned keep_low = NVM_ISO_ASAN ? 2u : 0u; /* sanitizer builds keep stderr */
    if (keep_low == 0)
        keep_low = (unsigned)-1;
    for (int fd = 0; fd < NVM_ISO_FD; fd++)
        if ((unsigned)fd != keep_low)
            close(fd);
    if (syscall(SYS_close_range, NVM_ISO_FD + 1, ~0u, 0) != 0) {
        struct rlimit rl;
        long top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
                           rl.rlim_cur < 1048576
                       ? (long)rl.rlim_cur
                       : 1048576;
        for (long fd = NVM_ISO_FD + 1; fd < top; fd++)
            close((int)fd);
    }
}

/* New namespaces, each where the kernel lets this process have it: a user namespace first,
 * which lets an unprivileged process create the others inside it. Returns the bits applied. */
static uint32_t enter_namespaces(void)
{
    static const int others[] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNS,
                                 CLONE_NEWCGROUP};
    uint32_t applied = 0;
    if (unshare(CLONE_NEWUSER) == 0)
        applied |= CLONE_NEWUSER;
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (unshare(others[i]) == 0)
            applied |= (uint32_t)others[i];
    return applied;
}

static int set_limit(int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {soft, hard};
    return setrlimit(resource, &rl);
}

static const char *apply_rlimits(const iso_limits *lim, uint32_t *flags)
{
    if (set_limit(RLIMIT_CPU, lim->cpu_s, lim->cpu_s + 1) != 0)
        return "RLIMIT_CPU";
    if (!NVM_ISO_ASAN && lim->as != RLIM_INFINITY) {
        if (set_limit(RLIMIT_AS, lim->as, lim->as) != 0)
            return "RLIMIT_AS";
        *flags |= NVM_ISO_RLIMIT_AS;
    }
    if (!NVM_ISO_ASAN && lim->data != RLIM_INFINITY && set_limit(RLIMIT_DATA, lim->data, lim->data))
        return "RLIMIT_DATA";
    if (set_limit(RLIMIT_NOFILE, NVM_ISO_FD + 1, NVM_ISO_FD + 1) != 0)
        return "RLIMIT_NOFILE";
    if (set_limit(RLIMIT_NPROC, 0, 0) != 0 || set_limit(RLIMIT_FSIZE, 0, 0) != 0 ||
        set_limit(RLIMIT_CORE, 0, 0) != 0 || set_limit(RLIMIT_MEMLOCK, 0, 0) != 0 ||
        set_limit(RLIMIT_MSGQUEUE, 0, 0) != 0)
        return "RLIMIT_NPROC/FSIZE/CORE/MEMLOCK/MSGQUEUE";
    return NULL;
}

static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, scmp_datum_t a,
                                   scmp_datum_t b)
{
    struct scmp_arg_cmp c = {arg, op, a, b};
    return c;
}

/* The allow-list (docs/security.md). */
static const char *install_seccomp(void)
{
    static const int on_fd[] = {SCMP_SYS(read),     SCMP_SYS(write),   SCMP_SYS(sendto),
                                SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg)};
    static const int plain[] = {
        SCMP_SYS(munmap),         SCMP_SYS(mremap),     SCMP_SYS(brk),
        SCMP_SYS(madvise),        SCMP_SYS(futex),      SCMP_SYS(rt_sigreturn),
        SCMP_SYS(rt_sigprocmask), SCMP_SYS(exit_group), SCMP_SYS(exit)};
    const char *why = NULL;
    scmp_filter_ctx ctx =
        seccomp_init(seccomp_api_get() >= 3 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_KILL);
    if (ctx == NULL)
        return "seccomp_init failed";
    int rc = 0;
    for (size_t i = 0; i < sizeof on_fd / sizeof on_fd[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, on_fd[i], 1,
                              arg_cmp(0, SCMP_CMP_EQ, NVM_ISO_FD, 0));
    if (NVM_ISO_ASAN && rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(write), 1,
                              arg_cmp(0, SCMP_CMP_EQ, 2, 0));
    for (size_t i = 0; i < sizeof plain / sizeof plain[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, plain[i], 0);
    /* memory may be mapped and re-protected, never made executable */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                              arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                              arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* the wasm tier's guard pages: its fault handler is swapped in and out around each run */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
                              arg_cmp(0, SCMP_CMP_EQ, SIGSEGV, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1,
                              arg_cmp(0, SCMP_CMP_EQ, SIGBUS, 0));
    if (rc != 0)
        why = "cannot build the seccomp filter";
    else if (seccomp_load(ctx) != 0)
        why = "cannot load the seccomp filter";
    seccomp_release(ctx);
    return why;
}

static void send_done(iso_child *c, nvm_status st, int64_t gas, const nvm_error *e)
{
    if (nvm_iso_begin(&c->out, NVM_ISO_DONE) && nvm_iso_put_u32(&c->out, (uint32_t)st) &&
        nvm_iso_put_i64(&c->out, gas) && nvm_iso_put_u32(&c->out, e->line) &&
        nvm_iso_put_u32(&c->out, e->col) &&
        nvm_iso_put_str(&c->out, e->message, strnlen(e->message, sizeof e->message)) &&
        nvm_iso_put_str(&c->out, e->file, strnlen(e->file, sizeof e->file)) &&
        nvm_iso_put_str(&c->out, e->backtrace, strnlen(e->backtrace, sizeof e->backtrace)))
        (void)nvm_iso_send(c->fd, &c->out);
}

static void setup_failed(iso_child *c, const char *what)
{
    nvm_error e;
    memset(&e, 0, sizeof e);
    snprintf(e.message, sizeof e.message, "cannot isolate the run: %s: %s", what, strerror(errno));
    send_done(c, NVM_E_INTERNAL, 0, &e);
    _exit(70);
}

static _Noreturn void child_main(const nvm_config *cfg, const nvm_module *m, nvm_tier tier,
                                 iso_child *c, int sock, pid_t parent, const iso_limits *lim)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(70);
    if (sock != NVM_ISO_FD && dup2(sock, NVM_ISO_FD) != NVM_ISO_FD)
        _exit(70);
    c->fd = NVM_ISO_FD;
    close_others();
    uint32_t flags = NVM_ISO_SECCOMP;
    uint32_t ns = enter_namespaces();
    const char *why = apply_rlimits(lim, &flags);
    if (why != NULL)
        setup_failed(c, why);
    if (prctl(PR_SET_DUMPABLE, 0) != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        setup_failed(c, "prctl");
#ifdef NVM_HAVE_WASM_SANDBOX
    if (tier == NVM_TIER_WASM)
        nvm_sandbox_preinit(); /* the runtime's one-time set-up needs calls the filter forbids */
#endif
    if ((why = install_seccomp()) != NULL)
        setup_failed(c, why);
    if (!nvm_iso_begin(&c->out, NVM_ISO_HELLO) || !nvm_iso_put_u32(&c->out, ns) ||
        !nvm_iso_put_u32(&c->out, flags) || !nvm_iso_send(c->fd, &c->out))
        _exit(70);
    /* The interrupt hook belongs to the embedder's process: the broker runs it. */
    nvm_config ccfg = *cfg;
    ccfg.interrupt = NULL;
    ccfg.interrupt_ud = NULL;
    nvm_error e;
    memset(&e, 0, sizeof e);
    int64_t gas = 0;
    nvm_status st = nvm_exec_local(&ccfg, m, tier, install_stubs, c, &gas, &e);
    send_done(c, st, gas, &e);
    _exit(0);
}

/* ---- in the parent ---- */

/* Address space and data segment now (the child starts with a copy), from /proc/self/statm. */
static void current_usage(rlim_t *as, rlim_t *data)
{
    unsigned long size = 0, res, shared, text, lib, dat = 0;
    *as = *data = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f == NULL)
        return;
    if (fscanf(f, "%lu %lu %lu %lu %lu %lu", &size, &res, &shared, &text, &lib, &dat) == 6) {
        long page = sysconf(_SC_PAGESIZE);
        *as = (rlim_t)size * (rlim_t)page;
        *data = (rlim_t)dat * (rlim_t)page;
    }
    fclose(f);
}

static rlim_t add_sat(rlim_t a, rlim_t b)
{
    return a == 0 || b == RLIM_INFINITY || a > RLIM_INFINITY - 1 - b ? RLIM_INFINITY : a + b;
}

static void compute_limits(const nvm_config *cfg, const nvm_host *h, iso_limits *lim)
{
    rlim_t as_now, data_now;
    current_usage(&as_now, &data_now);
    rlim_t extra = cfg->max_memory > (RLIM_INFINITY - NVM_ISO_HEADROOM) / 2
                       ? RLIM_INFINITY
                       : (rlim_t)cfg->max_memory * 2 + NVM_ISO_HEADROOM;
    lim->as = add_sat(as_now, extra);
    lim->data = add_sat(data_now, extra);
    int64_t wall = h != NULL ? h->cfg.wall_ms : -1;
    lim->cpu_s = wall >= 0 ? (rlim_t)(wall / 1000 + 1) : NVM_ISO_DEFAULT_CPU_S;
}

bool nvm_isolate_supported(void)
{
    return seccomp_api_get() >= 1;
}

nvm_status nvm_isolate_run(const nvm_config *cfg, const nvm_module *m, nvm_host *h, nvm_tier tier,
                           nvm_iso_options *opts, int64_t *gas_used, nvm_error *err)
{
    nvm_vm *bvm = NULL;
    iso_child c;
    int sv[2] = {-1, -1};
    nvm_status st;
    memset(&c, 0, sizeof c);
    nvm_iso_buf_init(&c.out, 0);
    nvm_iso_buf_init(&c.in, 0);
    c.opts = opts;
    if (gas_used != NULL)
        *gas_used = 0;
    if (err != NULL)
        memset(err, 0, sizeof *err);
    /* The broker's VM: the real capabilities, and the arena their arguments are decoded into. */
    nvm_config bcfg;
    nvm_config_init(&bcfg);
    bcfg.alloc = cfg->alloc;
    bcfg.alloc_ud = cfg->alloc_ud;
    bcfg.max_memory = cfg->max_memory;
    if ((st = nvm_vm_new(&bcfg, &bvm)) != NVM_OK)
        goto fail_msg;
    if (h != NULL && (st = nvm_host_install(h, bvm)) != NVM_OK) {
        if (err != NULL)
            *err = *nvm_vm_error(bvm);
        goto fail;
    }
    c.bvm = bvm;
    uint32_t ncaps = nvm_vm_cap_count(bvm);
    if (ncaps > 0 && (c.stubs = calloc(ncaps, sizeof *c.stubs)) == NULL) {
        st = NVM_E_MEMORY;
        goto fail_msg;
    }
    iso_limits lim;
    compute_limits(cfg, h, &lim);
#ifdef NVM_HAVE_WASM_SANDBOX
    /* the sandbox reserves address space it never commits; RLIMIT_DATA still caps real use */
    if (tier == NVM_TIER_WASM)
        lim.as = add_sat(lim.as, (rlim_t)nvm_sandbox_address_space());
#endif
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        st = NVM_E_INTERNAL;
        goto fail_msg;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        st = NVM_E_INTERNAL;
        goto fail_msg;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(cfg, m, tier, &c, sv[1], parent, &lim);
    }
    close(sv[1]);
    sv[1] = -1;
    st = nvm_iso_broker(cfg, m, h, bvm, sv[0], (int)pid, (int64_t)lim.cpu_s, opts, gas_used, err);
    goto fail;
fail_msg:
    if (err != NULL) {
        err->status = st;
        snprintf(err->message, sizeof err->message, "cannot start an isolated run: %s%s%s",
                 nvm_status_meaning(st), errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
    }
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    free(c.stubs);
    nvm_mbuf_free(&c.out);
    nvm_mbuf_free(&c.in);
    nvm_vm_free(bvm);
    return st;
}
