/* jitrt.c - the JIT tier's runtime: the helpers compiled code calls (each a thin layer over the
 * interpreter's own entry points, so that slow paths, errors and capability calls are the
 * interpreter's), the run driver (a private native stack, the trampoline) and compiling through
 * the code cache.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "jit.h"
#include "../native/codecache.h"
#include "../native/nrt.h"

/* ---- the run driver ---- */
typedef int (*nvm_tramp_fn)(nvm_vm *vm, const void *fn, nvm_value *base, nvm_value *slots,
                            int64_t *gas, void *stack_top);

/* The native stack of a run: frames of compiled calls (32 bytes per call level) plus room for
 * the C code they call (capabilities, the interpreter), with an inaccessible guard page below. */
#define NVM_JIT_C_STACK (8u << 20)

static nvm_status jit_runner(nvm_vm *vm, void *ud)
{
    const nvm_jit_blob *blob = ud;
    int64_t gas;
    nvm_status st = nvm_vm_start(vm, &gas);
    if (st != NVM_OK)
        return st;

    size_t size;
    uint8_t *stk = nvm_rt_stack_new(vm, (size_t)vm->cfg.max_depth * 64 + NVM_JIT_C_STACK, &size);
    if (stk == NULL)
        return vm->err.status;
    nvm_tramp_fn tramp;
    const void *tp = blob->code + blob->tramp;
    memcpy(&tramp, &tp, sizeof tramp);
    const void *fn = blob->code + blob->entry[vm->mod->entry];
    vm->jit_pool = blob->pool;
    int rc = tramp(vm, fn, vm->stack, vm->slots, &gas, stk + size);
    nvm_rt_stack_free(stk, size);
    vm->gas_used = vm->gas_start - vm->gas_rest - gas;
    if (rc == NVM_RT_ERR)
        return vm->jit_status != NVM_OK ? vm->jit_status : NVM_E_INTERNAL;
    return NVM_OK;
}

nvm_status nvm_jit_run(nvm_vm *vm, const nvm_jit_blob *blob)
{
    return nvm_vm_run_with(vm, jit_runner, (void *)blob);
}

/* ---- through the code cache (src/tier/native/codecache.c) ---- */
static void blob_free(void *b)
{
    nvm_jit_blob_free(b);
}

nvm_status nvm_jit_get(nvm_code_cache *c, const nvm_module *m, const nvm_jit_blob **out,
                       nvm_jit_blob **owned, nvm_error *err)
{
    *out = NULL;
    *owned = NULL;
    if (c == NULL) {
        nvm_jit_blob *b = NULL;
        nvm_status st = nvm_jit_compile(m, &b, err);
        *owned = b;
        *out = b;
        return st;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    nvm_status st = nvm_module_to_bytecode(m, &data, &len, err);
    if (st != NVM_OK)
        return st;
    void *hit = nvm_code_cache_find(c, data, len);
    if (hit != NULL) {
        nvm_module_free_buffer(m, data, len);
        *out = hit;
        return NVM_OK;
    }
    nvm_jit_blob *b = NULL;
    st = nvm_jit_compile(m, &b, err);
    if (st == NVM_OK) {
        st = nvm_code_cache_add(c, data, len, b, blob_free);
        if (st != NVM_OK) {
            nvm_jit_blob_free(b);
            b = NULL;
            nvm_error_set(err, st, NULL, 0, 0, "JIT cache: out of memory");
        }
    }
    nvm_module_free_buffer(m, data, len);
    if (st != NVM_OK)
        return st;
    nvm_code_stats *k = nvm_code_cache_counters(c);
    k->modules++;
    k->functions += m->nfuncs;
    k->insns += b->insns;
    k->code_bytes += b->size;
    k->compile_ns += b->compile_ns;
    *out = b;
    return NVM_OK;
}
