/* nrt.c - the runtime of the native tiers (JIT, AOT): the helpers compiled code calls, each a thin
 * layer over the interpreter's own entry points (nvm_interp_resume), so that slow paths, errors,
 * capability calls and the exact gas exhaustion point are the interpreter's. Portable C. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "nrt.h"

/* ---- helpers ---- */
/* Stores a result field by field: the arena functions write their result with separate stores,
 * and reading it back as one 16-byte block would stall on store forwarding (as interp.c's
 * vcopy). */
static inline void put(nvm_value *dst, const nvm_value *src)
{
    int64_t i = src->as.i;
    uint32_t t = src->type;
    dst->as.i = i;
    dst->type = t;
}

int nvm_rt_step(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots, int64_t gas)
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
        return NVM_RT_ERR;
    }
    return NVM_RT_OK;
}

/* ---- the last map lookup ----
 * A program that reads a key and then writes it (counts[w] = (counts[w] or 0) + 1) looks it up
 * twice. The position found by a lookup is remembered (vm->jit_find_*) and reused by the next
 * lookup or MAP_SET of the same map with the same key value (same int, or same string handle)
 * while no collection has run: without a collection no handle is reused, so the same handle is
 * the same (immutable) string; the entry at the position is checked to still hold the very key
 * found there (a deletion leaves a tombstone, a compaction moves entries). */
static bool same_key(nvm_value a, nvm_value b)
{
    if (a.type != b.type)
        return false;
    return a.type == NVM_T_INT ? a.as.i == b.as.i : a.as.h == b.as.h;
}

/* The entries[] position of key in map (a map value, key a str or int): -1 when absent. */
static int64_t find(nvm_vm *vm, nvm_value map, nvm_value key)
{
    const nvm_map *m = nvm_heap_obj(&vm->heap, map);
    if (vm->jit_find_map == map.as.h && vm->jit_find_gc == vm->heap.ncollections &&
        same_key(vm->jit_find_key, key) && vm->jit_find_pos < m->nentries &&
        same_key(m->entries[vm->jit_find_pos].key, vm->jit_find_hit))
        return vm->jit_find_pos;
    int64_t pos = nvm_map_find(&vm->heap, m, key);
    if (pos >= 0) {
        vm->jit_find_map = map.as.h;
        vm->jit_find_pos = (uint32_t)pos;
        vm->jit_find_key = key;
        vm->jit_find_hit = m->entries[pos].key;
        vm->jit_find_gc = vm->heap.ncollections;
    }
    return pos;
}

static bool map_key(nvm_value v)
{
    return v.type == NVM_T_STR || v.type == NVM_T_INT;
}

/* The common non-inline operations called directly, with the interpreter's exact semantics:
 * the operands stay on the stack (rooted) during the call and the same arena functions raise the
 * same errors; anything else (wrong operand types, the rarer forms) is stepped. */
int nvm_rt_fast(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots, int64_t gas)
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
        return NVM_RT_OK;
    }
    case NVM_OP_MAP_GET:
    case NVM_OP_MAP_HAS: {
        /* as nvm_map_get (a key of another type raises there) */
        if (top[-2].type != NVM_T_MAP)
            break;
        if (!map_key(top[-1])) {
            st = nvm_map_get(vm, top[-2], top[-1], &out, NULL);
            goto two;
        }
        int64_t pos = find(vm, top[-2], top[-1]);
        if (in->op == NVM_OP_MAP_HAS)
            out = nvm_bool(pos >= 0);
        else if (pos >= 0)
            out = ((const nvm_map *)nvm_heap_obj(&vm->heap, top[-2]))->entries[pos].value;
        else
            out = nvm_null();
        put(&top[-2], &out);
        return NVM_RT_OK;
    }
    case NVM_OP_MAP_SET:
        if (top[-3].type != NVM_T_MAP)
            break;
        if (map_key(top[-2])) {
            /* an existing key: as nvm_map_set, the value replaced in place */
            int64_t pos = find(vm, top[-3], top[-2]);
            if (pos >= 0) {
                ((nvm_map *)nvm_heap_obj(&vm->heap, top[-3]))->entries[pos].value = top[-1];
                return NVM_RT_OK;
            }
        }
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
            put(&top[0], &out);
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
            put(&top[-3], &out);
        goto done;
    case NVM_OP_STR_SUB:
        st = nvm_str_sub(vm, top[-3], top[-2], top[-1], &out);
        if (st == NVM_OK)
            put(&top[-3], &out);
        goto done;
    default: break;
    }
    return nvm_rt_step(vm, idx, top, slots, gas);
one:
    if (st == NVM_OK)
        put(&top[-1], &out);
    goto done;
two:
    if (st == NVM_OK)
        put(&top[-2], &out);
done:
    if (st != NVM_OK) {
        vm->jit_status = st;
        return NVM_RT_ERR;
    }
    return NVM_RT_OK;
}

int nvm_rt_truthy(nvm_vm *vm, const nvm_value *v)
{
    return nvm_truthy(vm, *v) ? 1 : 0;
}

int nvm_rt_gas(nvm_vm *vm, uint32_t need, uint32_t idx, nvm_value *top)
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
            return NVM_RT_ERR;
        }
    }
    return vm->jit_gas >= (int64_t)need ? NVM_RT_OK : NVM_RT_DEOPT;
}

int64_t nvm_rt_prefill(nvm_vm *vm, int64_t gas, uint32_t need)
{
    while (gas < (int64_t)need && vm->gas_rest > 0) {
        int64_t chunk = vm->gas_rest < NVM_GAS_CHUNK ? vm->gas_rest : NVM_GAS_CHUNK;
        vm->gas_rest -= chunk;
        gas += chunk;
        if (vm->cfg.interrupt == NULL)
            continue;
        vm->gas_used = vm->gas_start - vm->gas_rest - gas;
        vm->err.status = NVM_OK;
        if (vm->cfg.interrupt(vm->cfg.interrupt_ud) != NVM_OK) {
            vm->err.status = NVM_OK;
            return -1;
        }
    }
    return gas >= (int64_t)need ? gas : -1;
}

static int run_frame(nvm_vm *vm, uint32_t slot_base)
{
    bool ended = false;
    nvm_status st = nvm_interp_resume(vm, NVM_INTERP_RUN, slot_base, &vm->jit_gas, &ended);
    if (st != NVM_OK) {
        vm->jit_status = st;
        return NVM_RT_ERR;
    }
    return ended ? NVM_RT_END : NVM_RT_OK;
}

int nvm_rt_deopt(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots)
{
    nvm_frame *fr = &vm->frames[vm->depth - 1];
    fr->ip = fr->pf->code + idx;
    vm->sp = (uint32_t)(top - vm->stack);
    return run_frame(vm, (uint32_t)(slots - vm->slots));
}

int nvm_rt_interp_call(nvm_vm *vm, nvm_value *base, nvm_value *slots)
{
    nvm_frame *fr = &vm->frames[vm->depth - 1];
    fr->ip = fr->pf->code;
    for (uint32_t i = 0; i < fr->pf->nslots; i++)
        slots[i].type = NVM_T_UNDEF;
    vm->sp = (uint32_t)(base - vm->stack);
    return run_frame(vm, (uint32_t)(slots - vm->slots));
}

int nvm_rt_call_space(nvm_vm *vm, uint32_t callee, nvm_value *top, nvm_value *cslots, uint32_t idx)
{
    nvm_frame *fr = &vm->frames[vm->depth - 1];
    fr->ip = fr->pf->code + idx;
    vm->sp = (uint32_t)(top - vm->stack);
    nvm_status st =
        nvm_vm_call_space(vm, &vm->pfuncs[callee], vm->sp, (uint32_t)(cslots - vm->slots));
    if (st != NVM_OK) {
        vm->jit_status = st;
        return NVM_RT_ERR;
    }
    return NVM_RT_OK;
}

int nvm_rt_catch(nvm_vm *vm, uint32_t frame)
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

void nvm_rt_drop_handlers(nvm_vm *vm)
{
    uint32_t n = vm->nhandlers;
    while (n > 0 && vm->handlers[n - 1].frame == vm->depth - 1)
        n--;
    vm->nhandlers = n;
}

uint8_t *nvm_rt_stack_new(nvm_vm *vm, size_t bytes, size_t *size)
{
    size_t page = 4096;
    *size = (bytes + page - 1) / page * page;
    uint8_t *m = mmap(NULL, *size + page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        nvm_vm_raise(vm, NVM_E_MEMORY, "cannot map a native stack of %zu bytes", *size);
        return NULL;
    }
    if (mprotect(m, page, PROT_NONE) != 0) {
        munmap(m, *size + page);
        nvm_vm_raise(vm, NVM_E_MEMORY, "cannot map a native stack of %zu bytes", *size);
        return NULL;
    }
    return m + page;
}

void nvm_rt_stack_free(uint8_t *low, size_t size)
{
    if (low != NULL)
        munmap(low - 4096, size + 4096);
}
