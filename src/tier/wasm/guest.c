/* guest.c - the VM core's entry points inside the WebAssembly sandbox. Compiled with clang for
 * wasm32-wasi (a reactor: no main, no WASI start-up) and linked with the portable core; its only
 * imports are the linear memory and the "nanovm" functions of abi.h. The C library's stdio
 * back ends are replaced below so that no WASI file-descriptor import is linked in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "nanovm.h"
#include "isa/operand.h"
#include "tier/wasm/abi.h"
#include "vm/marshal.h"

#define IMPORT(name) __attribute__((import_module("nanovm"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("cap_call")
uint32_t nvm_import_cap_call(uint32_t cap, const uint8_t *args, uint32_t args_len, uint8_t *out,
                             uint32_t out_cap);
IMPORT("cap_reply") uint32_t nvm_import_cap_reply(uint8_t *out, uint32_t out_len);
IMPORT("interrupt") uint32_t nvm_import_interrupt(void);

/* musl's stdio back ends: the sandbox has no file descriptors, every stream is a sink. */
size_t __stdio_write(FILE *f, const unsigned char *buf, size_t len);
off_t __stdio_seek(FILE *f, off_t off, int whence);
int __stdio_close(FILE *f);
size_t __stdio_write(FILE *f, const unsigned char *buf, size_t len)
{
    (void)f;
    (void)buf;
    (void)len;
    return 0;
}
off_t __stdio_seek(FILE *f, off_t off, int whence)
{
    (void)f;
    (void)off;
    (void)whence;
    return -1;
}
int __stdio_close(FILE *f)
{
    (void)f;
    return 0;
}

EXPORT("nvm_guest_alloc") void *nvm_guest_alloc(uint32_t len)
{
    return malloc(len != 0 ? len : 1);
}

EXPORT("nvm_guest_free") void nvm_guest_free(void *p)
{
    free(p);
}

EXPORT("nvm_guest_forge")
uint32_t nvm_guest_forge(uint32_t cap, uint32_t ptr, uint32_t len, uint32_t out, uint32_t out_cap)
{
    return nvm_import_cap_call(cap, (const uint8_t *)(uintptr_t)ptr, len, (uint8_t *)(uintptr_t)out,
                               out_cap);
}

static nvm_status guest_interrupt(void *ud)
{
    (void)ud;
    uint32_t st = nvm_import_interrupt();
    return st < NVM_STATUS_COUNT ? (nvm_status)st : NVM_E_INTERNAL;
}

/* Decodes a cap_call reply into *result (or the failure into vm's error record). */
static nvm_status take_reply(nvm_vm *vm, const uint8_t *r, uint32_t len, nvm_value *result)
{
    if (len < 4)
        return nvm_cap_fail(vm, NVM_E_INTERNAL, "sandbox: short capability reply");
    uint32_t st = nvm_get_u32(r);
    if (st == NVM_OK) {
        uint32_t n = 0;
        nvm_status ds = nvm_marshal_decode(vm, r + 4, len - 4, result, 1, &n);
        if (ds != NVM_OK)
            return ds;
        /* the interpreter stores the result before its next allocation */
        nvm_value_unroot(vm, n);
        if (n != 1)
            *result = nvm_null();
        return NVM_OK;
    }
    if (st >= NVM_STATUS_COUNT || len < 8 || nvm_get_u32(r + 4) > len - 8)
        return nvm_cap_fail(vm, NVM_E_INTERNAL, "sandbox: malformed capability reply");
    return nvm_cap_fail(vm, (nvm_status)st, "%.*s", (int)nvm_get_u32(r + 4), (const char *)r + 8);
}

/* Every capability of the host is registered with this forwarder; ud is its registry index. */
static nvm_status forward(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    void *aud;
    nvm_alloc_fn alloc = nvm_vm_alloc_hook(vm, &aud);
    nvm_mbuf b;
    uint8_t scratch[NVM_SB_REPLY_SCRATCH];
    uint8_t *big = NULL;
    nvm_mbuf_init(&b, alloc, aud, 0);
    nvm_status st = nvm_marshal_encode(vm, args, argc, &b);
    if (st != NVM_OK)
        goto done;
    uint32_t n = nvm_import_cap_call((uint32_t)(uintptr_t)ud, b.data, (uint32_t)b.len, scratch,
                                     sizeof scratch);
    nvm_mbuf_free(&b);
    if (n <= sizeof scratch) {
        st = take_reply(vm, scratch, n, result);
        goto done;
    }
    big = alloc(aud, NULL, 0, n);
    if (big == NULL || nvm_import_cap_reply(big, n) != n) {
        st = nvm_cap_fail(vm, NVM_E_MEMORY, "memory limit exceeded (capability result of %u bytes)",
                          n);
        goto done;
    }
    st = take_reply(vm, big, n, result);
done:
    nvm_mbuf_free(&b);
    if (big != NULL)
        alloc(aud, big, n, 0);
    return st;
}

static void put_text(uint8_t *res, int len_off, int data_off, size_t max, const char *s)
{
    size_t n = 0;
    while (n < max - 1 && s[n] != '\0')
        n++;
    memcpy(res + data_off, s, n);
    nvm_put_u32(res + len_off, (uint32_t)n);
}

static void report(uint8_t *res, nvm_status st, const nvm_error *e, int64_t gas)
{
    memset(res, 0, NVM_SB_RES_SIZE);
    nvm_put_u32(res + NVM_SB_RES_STATUS, (uint32_t)st);
    nvm_put_u64(res + NVM_SB_RES_GAS, (uint64_t)gas);
    if (e == NULL)
        return;
    nvm_put_u32(res + NVM_SB_RES_LINE, e->line);
    nvm_put_u32(res + NVM_SB_RES_COL, e->col);
    put_text(res, NVM_SB_RES_MSG_LEN, NVM_SB_RES_MSG, sizeof e->message, e->message);
    put_text(res, NVM_SB_RES_FILE_LEN, NVM_SB_RES_FILE, sizeof e->file, e->file);
    put_text(res, NVM_SB_RES_BT_LEN, NVM_SB_RES_BT, sizeof e->backtrace, e->backtrace);
}

static void report_msg(uint8_t *res, nvm_status st, const char *msg)
{
    nvm_error e;
    memset(&e, 0, sizeof e);
    e.status = st;
    snprintf(e.message, sizeof e.message, "%s", msg);
    report(res, st, &e, 0);
}

EXPORT("nvm_guest_run")
uint32_t nvm_guest_run(const uint8_t *req, uint32_t req_len, uint8_t *res)
{
    nvm_module *m = NULL;
    nvm_vm *vm = NULL;
    nvm_error err;
    nvm_status st;
    memset(&err, 0, sizeof err);
    if (req_len < NVM_SB_REQ_HEADER || nvm_get_u32(req) != NVM_SB_ABI_VERSION) {
        report_msg(res, NVM_E_INTERNAL, "sandbox: bad request");
        return NVM_E_INTERNAL;
    }
    nvm_config cfg;
    nvm_config_init(&cfg);
    uint32_t flags = nvm_get_u32(req + NVM_SB_REQ_FLAGS);
    cfg.gas = (int64_t)nvm_get_u64(req + NVM_SB_REQ_GAS);
    cfg.max_memory = (size_t)nvm_get_u64(req + NVM_SB_REQ_MAX_MEMORY);
    cfg.fail_alloc_at = nvm_get_u64(req + NVM_SB_REQ_FAIL_ALLOC);
    cfg.max_stack = nvm_get_u32(req + NVM_SB_REQ_MAX_STACK);
    cfg.max_depth = nvm_get_u32(req + NVM_SB_REQ_MAX_DEPTH);
    cfg.gc_stress = (flags & NVM_SB_F_GC_STRESS) != 0;
    if (flags & NVM_SB_F_INTERRUPT)
        cfg.interrupt = guest_interrupt;
    uint32_t name_len = nvm_get_u32(req + NVM_SB_REQ_NAME_LEN);
    uint32_t bc_len = nvm_get_u32(req + NVM_SB_REQ_BC_LEN);
    uint32_t ncaps = nvm_get_u32(req + NVM_SB_REQ_NCAPS);
    size_t pos = NVM_SB_REQ_HEADER;
    char name[256];
    if (name_len >= sizeof name || (size_t)name_len + bc_len > req_len - pos) {
        report_msg(res, NVM_E_INTERNAL, "sandbox: bad request");
        return NVM_E_INTERNAL;
    }
    memcpy(name, req + pos, name_len);
    name[name_len] = '\0';
    pos += name_len;
    const uint8_t *bc = req + pos;
    pos += bc_len;

    st = nvm_module_from_bytecode(&cfg, bc, bc_len, name, &m, &err);
    if (st != NVM_OK) {
        report(res, st, &err, 0);
        return st;
    }
    st = nvm_vm_new(&cfg, &vm);
    if (st != NVM_OK) {
        char msg[128];
        snprintf(msg, sizeof msg, "cannot create a VM: %s", nvm_status_meaning(st));
        report_msg(res, st, msg);
        goto done;
    }
    for (uint32_t i = 0; i < ncaps && st == NVM_OK; i++) {
        char capname[256];
        uint32_t len = req_len - pos >= 8 ? nvm_get_u32(req + pos + 4) : UINT32_MAX;
        if (len >= sizeof capname || len > req_len - pos - 8) {
            st = NVM_E_INTERNAL;
            report_msg(res, st, "sandbox: bad request");
            goto done;
        }
        uint32_t argc = nvm_get_u32(req + pos);
        memcpy(capname, req + pos + 8, len);
        capname[len] = '\0';
        pos += 8 + (size_t)len;
        st = nvm_vm_register_cap(vm, capname, argc, forward, (void *)(uintptr_t)i);
    }
    if (st == NVM_OK)
        st = nvm_vm_load(vm, m);
    if (st == NVM_OK)
        st = nvm_vm_run(vm);
    report(res, st, st != NVM_OK ? nvm_vm_error(vm) : NULL, nvm_vm_gas_used(vm));
done:
    nvm_vm_free(vm);
    nvm_module_free(m);
    return st;
}
