/* sandbox.c - the host side of the WASM sandbox tier (sandbox.h): one wasm2c instance of the
 * guest (guest.c) per run, its linear memory sized from the run's memory limit, and the imports
 * that are the guest's only way out. Every pointer and length the guest passes is checked
 * against the current size of its linear memory before the host reads or writes there; a call
 * that fails a check, names no capability, or carries a malformed encoding ends the run
 * (NVM_E_INTERNAL, "sandbox violation") with a "sandbox.violation" audit record. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, strnlen */
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if WASM_RT_MEMCHECK_SIGNAL_HANDLER
#include <signal.h>
#include <sys/mman.h>
#endif

#include "guest_w2c.h"
#include "wasm-rt-impl.h"

#include "host/hal.h"
#include "isa/module.h"
#include "isa/operand.h"
#include "tier/wasm/abi.h"
#include "tier/wasm/sandbox.h"
#include "vm/capcall.h"
#include "vm/marshal.h"

#define PAGE ((uint64_t)65536)
#define MAX_CAP_ARGS 256u /* CAP_CALL's argument count is one byte */

_Static_assert(NVM_SB_RES_FILE - NVM_SB_RES_MSG == NVM_ERROR_MESSAGE_MAX, "result layout");
_Static_assert(NVM_SB_RES_SIZE - NVM_SB_RES_BT == NVM_ERROR_BACKTRACE_MAX, "result layout");

/* The imported memory ("env" "memory"). */
struct Z_env_instance_t {
    wasm_rt_memory_t memory;
};

/* One sandbox instance: the wasm2c instance, its memory, and the state of its imports.
 * Invariant: reply.data[0..reply.len) is a kept cap_call reply when reply_kept is set. */
struct Z_nanovm_instance_t {
    struct Z_env_instance_t env;
    Z_guest_instance_t inst;
    bool memory_ok;
    bool instantiated;
    const nvm_config *cfg;
    nvm_vm *proxy;
    nvm_host *host;
    uint32_t ncaps;
    nvm_mbuf reply;
    bool reply_kept;
    bool violated;
    char violation[256];
};
typedef struct Z_nanovm_instance_t sandbox;

wasm_rt_memory_t *Z_envZ_memory(struct Z_env_instance_t *env)
{
    return &env->memory;
}

static pthread_once_t runtime_once = PTHREAD_ONCE_INIT;

#if WASM_RT_MEMCHECK_SIGNAL_HANDLER
/* Guard-page mode: the runtime's SIGSEGV/SIGBUS handler turns a fault into a trap. It is in
 * force only while guest code runs (sandbox_enter swaps it in and out), so that faults of the
 * rest of the process keep their own handling. Written once under runtime_once, then read. */
static struct sigaction wasm_segv, wasm_bus;
#endif

static void runtime_init(void)
{
#if WASM_RT_MEMCHECK_SIGNAL_HANDLER
    struct sigaction old_segv, old_bus;
    sigaction(SIGSEGV, NULL, &old_segv);
    sigaction(SIGBUS, NULL, &old_bus);
    wasm_rt_init();
    sigaction(SIGSEGV, &old_segv, &wasm_segv);
    sigaction(SIGBUS, &old_bus, &wasm_bus);
#else
    wasm_rt_init();
#endif
    Z_guest_init_module();
}

void nvm_sandbox_preinit(void)
{
    pthread_once(&runtime_once, runtime_init);
}

uint64_t nvm_sandbox_address_space(void)
{
#if WASM_RT_MEMCHECK_SIGNAL_HANDLER
    return ((uint64_t)8 << 30) + ((uint64_t)1 << 30);
#else
    return 0;
#endif
}

uint32_t nvm_sandbox_max_pages(uint64_t max_memory, uint64_t module_bytes)
{
    uint64_t limit = (uint64_t)1 << 32;
    uint64_t want = NVM_SB_FIXED_BYTES + 4 * module_bytes;
    want += max_memory < limit ? 2 * max_memory : limit;
    if (want > limit)
        want = limit;
    return (uint32_t)((want + PAGE - 1) / PAGE);
}

/* ---- the imports ---- */

/* Records the violation and unwinds out of the guest (never returns). */
static void violation(sandbox *sb, const char *fmt, uint32_t a, uint32_t b)
{
    sb->violated = true;
    snprintf(sb->violation, sizeof sb->violation, fmt, a, b);
    if (sb->host != NULL && sb->host->cfg.audit != NULL) {
        const char *fields[] = {"reason", sb->violation, NULL};
        sb->host->cfg.audit(sb->host->cfg.audit_ud, "sandbox.violation", fields);
    }
    wasm_rt_trap(WASM_RT_TRAP_OOB);
}

static bool in_guest(const sandbox *sb, uint32_t ptr, uint32_t len)
{
    return (uint64_t)ptr + len <= sb->env.memory.size;
}

/* Builds the reply for a failed call from the proxy's error record. */
static void reply_error(sandbox *sb, nvm_status st)
{
    const char *msg = nvm_vm_error(sb->proxy)->message;
    size_t n = strnlen(msg, NVM_ERROR_MESSAGE_MAX - 1);
    sb->reply.len = 0;
    if (nvm_mbuf_put_u32(&sb->reply, (uint32_t)st) != NVM_OK ||
        nvm_mbuf_put_u32(&sb->reply, (uint32_t)n) != NVM_OK ||
        nvm_mbuf_put(&sb->reply, msg, n) != NVM_OK)
        sb->reply.len = 0;
}

u32 Z_nanovmZ_cap_call(sandbox *sb, u32 cap, u32 args, u32 args_len, u32 out, u32 out_cap)
{
    nvm_vm *pv = sb->proxy;
    nvm_value vals[MAX_CAP_ARGS];
    uint32_t n = 0;
    sb->reply_kept = false;
    if (cap >= sb->ncaps)
        violation(sb, "sandbox violation: call of capability %u of %u", cap, sb->ncaps);
    if (!in_guest(sb, args, args_len))
        violation(sb,
                  "sandbox violation: capability arguments at %#x, %u bytes, outside the "
                  "linear memory",
                  args, args_len);
    if (!in_guest(sb, out, out_cap))
        violation(sb,
                  "sandbox violation: capability reply buffer at %#x, %u bytes, outside the "
                  "linear memory",
                  out, out_cap);
    nvm_status st =
        nvm_marshal_decode(pv, sb->env.memory.data + args, args_len, vals, MAX_CAP_ARGS, &n);
    if (st == NVM_E_FORMAT)
        violation(sb, "sandbox violation: malformed capability arguments (%u bytes at %#x)",
                  args_len, args);
    if (st == NVM_OK) {
        nvm_value result;
        st = nvm_vm_call_cap_index(pv, cap, vals, n, &result);
        if (st == NVM_OK) {
            sb->reply.len = 0;
            if (nvm_mbuf_put_u32(&sb->reply, NVM_OK) != NVM_OK ||
                nvm_marshal_encode(pv, &result, 1, &sb->reply) != NVM_OK) {
                st = nvm_vm_error(pv)->status != NVM_OK ? nvm_vm_error(pv)->status : NVM_E_MEMORY;
                if (nvm_vm_error(pv)->status == NVM_OK)
                    nvm_cap_fail(pv, st, "memory limit exceeded (capability result)");
            }
        }
        nvm_value_unroot(pv, n);
    }
    if (st != NVM_OK)
        reply_error(sb, st);
    if (sb->reply.len == 0)
        return 0; /* the guest reports a short reply */
    if (sb->reply.len <= out_cap) {
        memcpy(sb->env.memory.data + out, sb->reply.data, sb->reply.len);
    } else {
        sb->reply_kept = true;
    }
    return (u32)sb->reply.len;
}

u32 Z_nanovmZ_cap_reply(sandbox *sb, u32 out, u32 out_len)
{
    if (!sb->reply_kept || out_len != sb->reply.len)
        return 0;
    if (!in_guest(sb, out, out_len))
        violation(sb,
                  "sandbox violation: capability reply buffer at %#x, %u bytes, outside the "
                  "linear memory",
                  out, out_len);
    memcpy(sb->env.memory.data + out, sb->reply.data, out_len);
    sb->reply_kept = false;
    return out_len;
}

u32 Z_nanovmZ_interrupt(sandbox *sb)
{
    if (sb->cfg->interrupt == NULL)
        return NVM_OK;
    return (u32)sb->cfg->interrupt(sb->cfg->interrupt_ud);
}

/* ---- instances ---- */

static void set_err(nvm_error *err, nvm_status st, const char *msg)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof *err);
    err->status = st;
    snprintf(err->message, sizeof err->message, "%s", msg);
}

static nvm_status sandbox_new(const nvm_config *cfg, nvm_vm *proxy, nvm_host *h,
                              uint64_t module_bytes, sandbox **out, nvm_error *err)
{
    *out = NULL;
    pthread_once(&runtime_once, runtime_init);
    sandbox *sb = calloc(1, sizeof *sb);
    if (sb == NULL) {
        set_err(err, NVM_E_MEMORY, "cannot create a sandbox: out of memory");
        return NVM_E_MEMORY;
    }
    void *aud;
    nvm_alloc_fn alloc = nvm_vm_alloc_hook(proxy, &aud);
    nvm_mbuf_init(&sb->reply, alloc, aud, cfg->max_memory);
    sb->cfg = cfg;
    sb->proxy = proxy;
    sb->host = h;
    sb->ncaps = nvm_vm_cap_count(proxy);
    uint64_t max_memory = cfg->max_memory != 0 ? cfg->max_memory : (uint64_t)1 << 30;
#if WASM_RT_MEMCHECK_SIGNAL_HANDLER
    /* the runtime aborts when it cannot reserve its 8 GiB: find out first */
    void *probe = mmap(NULL, (size_t)8 << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe == MAP_FAILED) {
        nvm_mbuf_free(&sb->reply);
        free(sb);
        set_err(err, NVM_E_MEMORY, "cannot create a sandbox: no address space for its memory");
        return NVM_E_MEMORY;
    }
    munmap(probe, (size_t)8 << 30);
#endif
    wasm_rt_allocate_memory(&sb->env.memory, NVM_SB_INITIAL_PAGES,
                            nvm_sandbox_max_pages(max_memory, module_bytes));
    if (sb->env.memory.data == NULL) {
        nvm_mbuf_free(&sb->reply);
        free(sb);
        set_err(err, NVM_E_MEMORY, "cannot create a sandbox: out of memory");
        return NVM_E_MEMORY;
    }
    sb->memory_ok = true;
    *out = sb;
    return NVM_OK;
}

static void sandbox_free(sandbox *sb)
{
    if (sb == NULL)
        return;
    if (sb->instantiated)
        Z_guest_free(&sb->inst);
    if (sb->memory_ok) {
#if WASM_RT_MEMCHECK_SIGNAL_HANDLER
        /* the runtime reserved 8 GiB of address space and unmaps only the committed part */
        uint8_t *base = sb->env.memory.data;
        size_t size = sb->env.memory.size;
        wasm_rt_free_memory(&sb->env.memory);
        munmap(base + size, ((size_t)8 << 30) - size);
#else
        wasm_rt_free_memory(&sb->env.memory);
#endif
    }
    nvm_mbuf_free(&sb->reply);
    free(sb);
}

/* What the guest is asked to do inside the trap handler's scope. */
typedef struct job {
    const uint8_t *req; /* run: the request (copied into the guest) */
    size_t req_len;
    bool forge;
    uint32_t forge_args[5];
    uint32_t status;  /* the guest's return value */
    uint32_t res_ptr; /* run: the result block in guest memory */
} job;

/* Instantiates the guest and runs the job; returns the trap code (0 when none). The runtime's
 * trap target is a global: the caller's is saved and restored so that a capability may itself
 * run a sandbox. */
static wasm_rt_trap_t sandbox_enter(sandbox *sb, job *jb)
{
    jmp_buf saved;
    memcpy(saved, wasm_rt_jmp_buf, sizeof saved);
#if WASM_RT_MEMCHECK_SIGNAL_HANDLER
    struct sigaction old_segv, old_bus;
    sigaction(SIGSEGV, &wasm_segv, &old_segv);
    sigaction(SIGBUS, &wasm_bus, &old_bus);
#endif
    wasm_rt_trap_t trap = (wasm_rt_trap_t)wasm_rt_impl_try();
    if (trap == WASM_RT_TRAP_NONE) {
        Z_guest_instantiate(&sb->inst, &sb->env, sb);
        sb->instantiated = true;
        Z_guestZ__initialize(&sb->inst);
        if (jb->forge) {
            const uint32_t *a = jb->forge_args;
            jb->status = Z_guestZ_nvm_guest_forge(&sb->inst, a[0], a[1], a[2], a[3], a[4]);
        } else {
            uint32_t req = Z_guestZ_nvm_guest_alloc(&sb->inst, (u32)jb->req_len);
            jb->res_ptr = Z_guestZ_nvm_guest_alloc(&sb->inst, NVM_SB_RES_SIZE);
            if (req == 0 || jb->res_ptr == 0 || !in_guest(sb, req, (u32)jb->req_len) ||
                !in_guest(sb, jb->res_ptr, NVM_SB_RES_SIZE)) {
                jb->status = NVM_E_MEMORY;
                jb->res_ptr = 0;
            } else {
                memcpy(sb->env.memory.data + req, jb->req, jb->req_len);
                jb->status = Z_guestZ_nvm_guest_run(&sb->inst, req, (u32)jb->req_len, jb->res_ptr);
            }
        }
    }
#if WASM_RT_MEMCHECK_SIGNAL_HANDLER
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
#endif
    memcpy(wasm_rt_jmp_buf, saved, sizeof saved);
    return trap;
}

static void trap_error(const sandbox *sb, wasm_rt_trap_t trap, nvm_error *err)
{
    char msg[320];
    if (sb->violated)
        snprintf(msg, sizeof msg, "%s", sb->violation);
    else
        snprintf(msg, sizeof msg, "sandbox trap: %s", wasm_rt_strerror(trap));
    set_err(err, NVM_E_INTERNAL, msg);
}

/* Copies a text field of the result block (length clipped to the field). */
static void get_text(const uint8_t *res, int len_off, int data_off, char *dst, size_t max)
{
    size_t n = nvm_get_u32(res + len_off);
    if (n > max - 1)
        n = max - 1;
    memcpy(dst, res + data_off, n);
    dst[n] = '\0';
}

static nvm_status build_request(const nvm_config *cfg, const nvm_module *m, nvm_vm *proxy,
                                const uint8_t *bc, size_t bc_len, nvm_mbuf *b)
{
    const char *name = m->name != NULL ? m->name : "";
    size_t name_len = strnlen(name, 255);
    uint8_t hdr[NVM_SB_REQ_HEADER];
    uint32_t flags = (cfg->gc_stress ? NVM_SB_F_GC_STRESS : 0) |
                     (cfg->interrupt != NULL ? NVM_SB_F_INTERRUPT : 0);
    memset(hdr, 0, sizeof hdr);
    nvm_put_u32(hdr + NVM_SB_REQ_VERSION, NVM_SB_ABI_VERSION);
    nvm_put_u32(hdr + NVM_SB_REQ_FLAGS, flags);
    nvm_put_u64(hdr + NVM_SB_REQ_GAS, (uint64_t)cfg->gas);
    nvm_put_u64(hdr + NVM_SB_REQ_MAX_MEMORY, cfg->max_memory);
    nvm_put_u64(hdr + NVM_SB_REQ_FAIL_ALLOC, cfg->fail_alloc_at);
    nvm_put_u32(hdr + NVM_SB_REQ_MAX_STACK, cfg->max_stack);
    nvm_put_u32(hdr + NVM_SB_REQ_MAX_DEPTH, cfg->max_depth);
    nvm_put_u32(hdr + NVM_SB_REQ_NAME_LEN, (uint32_t)name_len);
    nvm_put_u32(hdr + NVM_SB_REQ_BC_LEN, (uint32_t)bc_len);
    nvm_put_u32(hdr + NVM_SB_REQ_NCAPS, nvm_vm_cap_count(proxy));
    nvm_status st = nvm_mbuf_put(b, hdr, sizeof hdr);
    if (st == NVM_OK)
        st = nvm_mbuf_put(b, name, name_len);
    if (st == NVM_OK)
        st = nvm_mbuf_put(b, bc, bc_len);
    for (uint32_t i = 0; st == NVM_OK && i < nvm_vm_cap_count(proxy); i++) {
        uint32_t argc;
        const char *cname = nvm_vm_cap_info(proxy, i, &argc);
        size_t n = strlen(cname);
        st = nvm_mbuf_put_u32(b, argc);
        if (st == NVM_OK)
            st = nvm_mbuf_put_u32(b, (uint32_t)n);
        if (st == NVM_OK)
            st = nvm_mbuf_put(b, cname, n);
    }
    return st;
}

nvm_status nvm_sandbox_run(const nvm_config *cfg, const nvm_module *m, nvm_vm *proxy, nvm_host *h,
                           int64_t *gas_used, nvm_error *err)
{
    sandbox *sb = NULL;
    uint8_t *bc = NULL;
    size_t bc_len = 0;
    nvm_mbuf req;
    void *aud;
    nvm_alloc_fn alloc = nvm_vm_alloc_hook(proxy, &aud);
    nvm_mbuf_init(&req, alloc, aud, 0);
    if (gas_used != NULL)
        *gas_used = 0;
    nvm_status st = nvm_module_to_bytecode(m, &bc, &bc_len, err);
    if (st != NVM_OK)
        goto fail;
    if (build_request(cfg, m, proxy, bc, bc_len, &req) != NVM_OK) {
        st = NVM_E_MEMORY;
        set_err(err, st, "cannot create a sandbox: out of memory");
        goto fail;
    }
    st = sandbox_new(cfg, proxy, h, req.len, &sb, err);
    if (st != NVM_OK)
        goto fail;
    job jb;
    memset(&jb, 0, sizeof jb);
    jb.req = req.data;
    jb.req_len = req.len;
    wasm_rt_trap_t trap = sandbox_enter(sb, &jb);
    if (trap != WASM_RT_TRAP_NONE) {
        st = NVM_E_INTERNAL;
        trap_error(sb, trap, err);
        goto fail;
    }
    if (jb.res_ptr == 0 || !in_guest(sb, jb.res_ptr, NVM_SB_RES_SIZE)) {
        st = NVM_E_MEMORY;
        set_err(err, st, "memory limit exceeded (sandbox set-up)");
        goto fail;
    }
    const uint8_t *res = sb->env.memory.data + jb.res_ptr;
    uint32_t rs = nvm_get_u32(res + NVM_SB_RES_STATUS);
    st = rs < NVM_STATUS_COUNT ? (nvm_status)rs : NVM_E_INTERNAL;
    if (gas_used != NULL)
        *gas_used = (int64_t)nvm_get_u64(res + NVM_SB_RES_GAS);
    if (st != NVM_OK && err != NULL) {
        memset(err, 0, sizeof *err);
        err->status = st;
        err->line = nvm_get_u32(res + NVM_SB_RES_LINE);
        err->col = nvm_get_u32(res + NVM_SB_RES_COL);
        get_text(res, NVM_SB_RES_MSG_LEN, NVM_SB_RES_MSG, err->message, sizeof err->message);
        get_text(res, NVM_SB_RES_FILE_LEN, NVM_SB_RES_FILE, err->file, sizeof err->file);
        get_text(res, NVM_SB_RES_BT_LEN, NVM_SB_RES_BT, err->backtrace, sizeof err->backtrace);
    }
fail:
    sandbox_free(sb);
    nvm_mbuf_free(&req);
    if (bc != NULL)
        nvm_module_free_buffer(m, bc, bc_len);
    return st;
}

nvm_status nvm_sandbox_forge_call(const nvm_config *cfg, nvm_vm *proxy, uint32_t cap, uint32_t ptr,
                                  uint32_t len, uint32_t out, uint32_t out_cap, nvm_error *err)
{
    sandbox *sb = NULL;
    nvm_status st = sandbox_new(cfg, proxy, NULL, 0, &sb, err);
    if (st != NVM_OK)
        return st;
    job jb;
    memset(&jb, 0, sizeof jb);
    jb.forge = true;
    jb.forge_args[0] = cap;
    jb.forge_args[1] = ptr;
    jb.forge_args[2] = len;
    jb.forge_args[3] = out;
    jb.forge_args[4] = out_cap;
    wasm_rt_trap_t trap = sandbox_enter(sb, &jb);
    if (trap != WASM_RT_TRAP_NONE) {
        st = NVM_E_INTERNAL;
        trap_error(sb, trap, err);
    }
    sandbox_free(sb);
    return st;
}
