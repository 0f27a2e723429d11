/* jitrt.c - the JIT tier's runtime: the helpers compiled code calls (each a thin layer over the
 * interpreter's own entry points, so that slow paths, errors and capability calls are the
 * interpreter's), the run driver (a private native stack, the trampoline) and the code cache.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "jit.h"

/* ---- helpers (jit.h) ---- */
int nvm_jit_step(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots, int64_t gas)
{
    nvm_frame *fr = &vm->frames[vm->depth - 1];
    fr->ip = fr->pf->code + idx;
    vm->sp = (uint32_t)(top - vm->stack);
    bool ended;
    int64_t g = gas;
    nvm_status st =
        nvm_interp_resume(vm, NVM_INTERP_STEP, (uint32_t)(slots - vm->slots), &g, &ended);
    if (st != NVM_OK) {
        vm->jit_status = st;
        return NVM_JIT_ERR;
    }
    return NVM_JIT_OK;
}

/* The common non-inline operations called directly, with the interpreter's exact semantics:
 * the operands stay on the stack (rooted) during the call and the same arena functions raise the
 * same errors; anything else (wrong operand types, the rarer forms) is stepped. */
int nvm_jit_fast(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots, int64_t gas)
{
    nvm_frame *fr = &vm->frames[vm->depth - 1];
    const nvm_insn *in = fr->pf->code + idx;
    nvm_value out;
    nvm_status st;
    fr->ip = in;
    vm->sp = (uint32_t)(top - vm->stack);
    switch (in->op) {
    case NVM_OP_ADD:
        if (top[-2].type == NVM_T_STR || top[-1].type == NVM_T_STR) {
            if ((top[-2].type == NVM_T_INT || top[-2].type == NVM_T_FLOAT) &&
                (top[-1].type == NVM_T_INT || top[-1].type == NVM_T_FLOAT))
                break;
            st = nvm_str_concat(vm, top[-2], top[-1], &out);
            goto two;
        }
        break;
    case NVM_OP_EQ:
    case NVM_OP_NE: {
        bool r = nvm_equal(vm, top[-2], top[-1]);
        top[-2] = nvm_bool(in->op == NVM_OP_EQ ? r : !r);
        return NVM_JIT_OK;
    }
    case NVM_OP_MAP_GET:
        if (top[-2].type != NVM_T_MAP)
            break;
        st = nvm_map_get(vm, top[-2], top[-1], &out, NULL);
        goto two;
    case NVM_OP_MAP_HAS: {
        if (top[-2].type != NVM_T_MAP)
            break;
        bool found = false;
        st = nvm_map_get(vm, top[-2], top[-1], &out, &found);
        out = nvm_bool(found);
        goto two;
    }
    case NVM_OP_MAP_SET:
        if (top[-3].type != NVM_T_MAP)
            break;
        st = nvm_map_set(vm, top[-3], top[-2], top[-1]);
        goto done;
    case NVM_OP_MAP_DEL:
        if (top[-2].type != NVM_T_MAP)
            break;
        st = nvm_map_del(vm, top[-2], top[-1]);
        goto done;
    case NVM_OP_MAP_KEYS:
        if (top[-1].type != NVM_T_MAP)
            break;
        st = nvm_map_keys(vm, top[-1], &out);
        goto one;
    case NVM_OP_NEW_OBJ:
        st = nvm_map_new(vm, &out);
        if (st == NVM_OK)
            top[0] = out;
        goto done;
    case NVM_OP_ARR_PUSH:
        if (top[-2].type != NVM_T_ARRAY)
            break;
        st = nvm_array_push(vm, top[-2], top[-1]);
        goto done;
    case NVM_OP_ARR_POP:
        if (top[-1].type != NVM_T_ARRAY)
            break;
        st = nvm_array_pop(vm, top[-1], &out);
        goto one;
    case NVM_OP_LEN:
    case NVM_OP_ARR_LEN: st = nvm_len(vm, top[-1], &out); goto one;
    case NVM_OP_TYPEOF: st = nvm_typeof(vm, top[-1], &out); goto one;
    case NVM_OP_CAST: st = nvm_cast(vm, top[-1], in->b, &out); goto one;
    case NVM_OP_STR_CONTAINS: st = nvm_str_contains(vm, top[-2], top[-1], &out); goto two;
    case NVM_OP_STR_SPLIT: st = nvm_str_split(vm, top[-2], top[-1], &out); goto two;
    case NVM_OP_STR_JOIN: st = nvm_str_join(vm, top[-2], top[-1], &out); goto two;
    case NVM_OP_STR_STARTS_WITH: st = nvm_str_starts_with(vm, top[-2], top[-1], &out); goto two;
    case NVM_OP_STR_ENDS_WITH: st = nvm_str_ends_with(vm, top[-2], top[-1], &out); goto two;
    case NVM_OP_STR_TO_UPPER: st = nvm_str_to_upper(vm, top[-1], &out); goto one;
    case NVM_OP_STR_TO_LOWER: st = nvm_str_to_lower(vm, top[-1], &out); goto one;
    case NVM_OP_STR_TRIM: st = nvm_str_trim(vm, top[-1], &out); goto one;
    case NVM_OP_STR_FIND: st = nvm_str_find(vm, top[-2], top[-1], &out); goto two;
    case NVM_OP_STR_ORD: st = nvm_str_ord(vm, top[-2], top[-1], &out); goto two;
    case NVM_OP_STR_CHR: st = nvm_str_chr(vm, top[-1], &out); goto one;
    case NVM_OP_STR_FMT_FIXED: st = nvm_str_fmt_fixed(vm, top[-2], top[-1], &out); goto two;
    case NVM_OP_STR_REPLACE:
        st = nvm_str_replace(vm, top[-3], top[-2], top[-1], &out);
        if (st == NVM_OK)
            top[-3] = out;
        goto done;
    case NVM_OP_STR_SUB:
        st = nvm_str_sub(vm, top[-3], top[-2], top[-1], &out);
        if (st == NVM_OK)
            top[-3] = out;
        goto done;
    default: break;
    }
    return nvm_jit_step(vm, idx, top, slots, gas);
one:
    if (st == NVM_OK)
        top[-1] = out;
    goto done;
two:
    if (st == NVM_OK)
        top[-2] = out;
done:
    if (st != NVM_OK) {
        vm->jit_status = st;
        return NVM_JIT_ERR;
    }
    return NVM_JIT_OK;
}

int nvm_jit_truthy(nvm_vm *vm, const nvm_value *v)
{
    return nvm_truthy(vm, *v) ? 1 : 0;
}

int nvm_jit_gas(nvm_vm *vm, uint32_t need, uint32_t idx, nvm_value *top)
{
    while (vm->jit_gas < (int64_t)need && vm->gas_rest > 0) {
        int64_t chunk = vm->gas_rest < NVM_GAS_CHUNK ? vm->gas_rest : NVM_GAS_CHUNK;
        vm->gas_rest -= chunk;
        vm->jit_gas += chunk;
        if (vm->cfg.interrupt == NULL)
            continue;
        nvm_frame *fr = &vm->frames[vm->depth - 1];
        fr->ip = fr->pf->code + idx;
        vm->sp = (uint32_t)(top - vm->stack);
        vm->gas_used = vm->gas_start - vm->gas_rest - vm->jit_gas;
        vm->err.status = NVM_OK;
        nvm_status st = vm->cfg.interrupt(vm->cfg.interrupt_ud);
        if (st != NVM_OK) {
            if (vm->err.status != st)
                nvm_vm_raise(vm, st, "%s after %lld instructions", nvm_status_meaning(st),
                             (long long)vm->gas_used);
            vm->jit_status = st;
            return NVM_JIT_ERR;
        }
    }
    return vm->jit_gas >= (int64_t)need ? NVM_JIT_OK : NVM_JIT_DEOPT;
}

static int run_frame(nvm_vm *vm, uint32_t slot_base)
{
    bool ended = false;
    nvm_status st = nvm_interp_resume(vm, NVM_INTERP_RUN, slot_base, &vm->jit_gas, &ended);
    if (st != NVM_OK) {
        vm->jit_status = st;
        return NVM_JIT_ERR;
    }
    return ended ? NVM_JIT_END : NVM_JIT_OK;
}

int nvm_jit_deopt(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots)
{
    nvm_frame *fr = &vm->frames[vm->depth - 1];
    fr->ip = fr->pf->code + idx;
    vm->sp = (uint32_t)(top - vm->stack);
    return run_frame(vm, (uint32_t)(slots - vm->slots));
}

int nvm_jit_interp_call(nvm_vm *vm, nvm_value *base, nvm_value *slots)
{
    nvm_frame *fr = &vm->frames[vm->depth - 1];
    fr->ip = fr->pf->code;
    for (uint32_t i = 0; i < fr->pf->nslots; i++)
        slots[i].type = NVM_T_UNDEF;
    vm->sp = (uint32_t)(base - vm->stack);
    return run_frame(vm, (uint32_t)(slots - vm->slots));
}

int nvm_jit_call_space(nvm_vm *vm, uint32_t callee, nvm_value *top, nvm_value *cslots, uint32_t idx)
{
    nvm_frame *fr = &vm->frames[vm->depth - 1];
    fr->ip = fr->pf->code + idx;
    vm->sp = (uint32_t)(top - vm->stack);
    nvm_status st =
        nvm_vm_call_space(vm, &vm->pfuncs[callee], vm->sp, (uint32_t)(cslots - vm->slots));
    if (st != NVM_OK) {
        vm->jit_status = st;
        return NVM_JIT_ERR;
    }
    return NVM_JIT_OK;
}

int nvm_jit_catch(nvm_vm *vm, uint32_t frame)
{
    nvm_status st = vm->jit_status;
    uint32_t n = vm->nhandlers;
    if ((st != NVM_E_PROGRAM && st != NVM_E_DENIED) || n == 0 || vm->handlers[n - 1].frame != frame)
        return -1;
    nvm_handler h = vm->handlers[n - 1];
    vm->nhandlers = n - 1;
    vm->depth = h.frame + 1;
    nvm_value v;
    if (vm->thrown_pending) {
        v = vm->thrown;
        vm->thrown_pending = false;
    } else {
        vm->sp = h.sp;
        st = nvm_str_new(vm, vm->err.message, strlen(vm->err.message), &v);
        if (st != NVM_OK) {
            vm->jit_status = st;
            return -1;
        }
    }
    vm->stack[h.sp] = v;
    vm->sp = h.sp + 1;
    vm->jit_status = NVM_OK;
    return (int)h.target;
}

void nvm_jit_drop_handlers(nvm_vm *vm)
{
    uint32_t n = vm->nhandlers;
    while (n > 0 && vm->handlers[n - 1].frame == vm->depth - 1)
        n--;
    vm->nhandlers = n;
}

/* ---- the run driver ---- */
typedef int (*nvm_tramp_fn)(nvm_vm *vm, const void *fn, nvm_value *base, nvm_value *slots,
                            int64_t *gas, void *stack_top);

/* The native stack of a run: frames of compiled calls (32 bytes per call level) plus room for
 * the C code they call (capabilities, the interpreter), with an inaccessible guard page below. */
#define NVM_JIT_C_STACK (8u << 20)

static nvm_status jit_runner(nvm_vm *vm, void *ud)
{
    const nvm_jit_blob *blob = ud;
    const nvm_pfunc *entry = &vm->pfuncs[vm->mod->entry];
    vm->gas_start = vm->gas_limit < 0 ? INT64_MAX : vm->gas_limit;
    int64_t gas = vm->gas_start < NVM_GAS_CHUNK ? vm->gas_start : NVM_GAS_CHUNK;
    vm->gas_rest = vm->gas_start - gas;
    vm->sp = 0;
    vm->depth = 0;
    vm->nhandlers = 0;
    vm->gas_used = 0;
    vm->jit_status = NVM_OK;
    nvm_vm_set_limits(vm);
    nvm_status st = nvm_vm_call_space(vm, entry, 0, 0);
    if (st != NVM_OK)
        return st;
    vm->frames[0].pf = entry;
    vm->frames[0].ip = entry->code;
    vm->depth = 1;
    for (uint32_t i = 0; i < entry->nslots; i++)
        vm->slots[i].type = NVM_T_UNDEF;

    size_t page = 4096;
    size_t size = ((size_t)vm->cfg.max_depth * 64 + NVM_JIT_C_STACK + page - 1) / page * page;
    uint8_t *stk = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stk == MAP_FAILED)
        return nvm_vm_raise(vm, NVM_E_MEMORY, "cannot map the JIT's native stack");
    if (mprotect(stk, page, PROT_NONE) != 0) {
        munmap(stk, size + page);
        return nvm_vm_raise(vm, NVM_E_MEMORY, "cannot map the JIT's native stack");
    }
    nvm_tramp_fn tramp;
    const void *tp = blob->code + blob->tramp;
    memcpy(&tramp, &tp, sizeof tramp);
    const void *fn = blob->code + blob->entry[vm->mod->entry];
    vm->jit_pool = blob->pool;
    int rc = tramp(vm, fn, vm->stack, vm->slots, &gas, stk + page + size);
    munmap(stk, size + page);
    vm->gas_used = vm->gas_start - vm->gas_rest - gas;
    if (rc == NVM_JIT_ERR)
        return vm->jit_status != NVM_OK ? vm->jit_status : NVM_E_INTERNAL;
    return NVM_OK;
}

nvm_status nvm_jit_run(nvm_vm *vm, const nvm_jit_blob *blob)
{
    return nvm_vm_run_with(vm, jit_runner, (void *)blob);
}

/* ---- the code cache: modules keyed by their exact bytecode ---- */
typedef struct cache_entry {
    uint8_t *key;
    size_t key_len;
    nvm_jit_blob *blob;
} cache_entry;

struct nvm_code_cache {
    cache_entry *e;
    size_t n, cap;
    nvm_code_stats stats;
};

nvm_status nvm_code_cache_new(nvm_code_cache **out)
{
    if (out == NULL)
        return NVM_E_USAGE;
    *out = calloc(1, sizeof **out);
    return *out != NULL ? NVM_OK : NVM_E_MEMORY;
}

void nvm_code_cache_free(nvm_code_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->e[i].key);
        nvm_jit_blob_free(c->e[i].blob);
    }
    free(c->e);
    free(c);
}

void nvm_code_cache_stats(const nvm_code_cache *c, nvm_code_stats *out)
{
    if (out == NULL)
        return;
    if (c == NULL)
        memset(out, 0, sizeof *out);
    else
        *out = c->stats;
}

static void count(nvm_code_cache *c, const nvm_jit_blob *b, const nvm_module *m)
{
    c->stats.modules++;
    c->stats.functions += m->nfuncs;
    c->stats.insns += b->insns;
    c->stats.code_bytes += b->size;
    c->stats.compile_ns += b->compile_ns;
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
    for (size_t i = 0; i < c->n; i++) {
        if (c->e[i].key_len == len && memcmp(c->e[i].key, data, len) == 0) {
            nvm_module_free_buffer(m, data, len);
            c->stats.hits++;
            *out = c->e[i].blob;
            return NVM_OK;
        }
    }
    nvm_jit_blob *b = NULL;
    uint8_t *key = malloc(len + 1);
    if (key == NULL || (c->n == c->cap && c->cap > SIZE_MAX / 2 / sizeof(cache_entry))) {
        free(key);
        nvm_module_free_buffer(m, data, len);
        return nvm_error_set(err, NVM_E_MEMORY, NULL, 0, 0, "JIT cache: out of memory");
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        cache_entry *q = realloc(c->e, sizeof *q * nc);
        if (q == NULL) {
            free(key);
            nvm_module_free_buffer(m, data, len);
            return nvm_error_set(err, NVM_E_MEMORY, NULL, 0, 0, "JIT cache: out of memory");
        }
        c->e = q;
        c->cap = nc;
    }
    memcpy(key, data, len);
    nvm_module_free_buffer(m, data, len);
    st = nvm_jit_compile(m, &b, err);
    if (st != NVM_OK) {
        free(key);
        return st;
    }
    c->e[c->n++] = (cache_entry){key, len, b};
    count(c, b, m);
    *out = b;
    return NVM_OK;
}
