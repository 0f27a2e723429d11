/* array.c - arena arrays: growable vectors of values (items[0..len) live, cap slots allocated),
 * or of bools as bytes until another value is stored (see heap.h), with negative-from-the-end
 * indexing and MAKE_RANGE. */
#include <string.h>

#include "vm.h"

static nvm_array *A(nvm_vm *vm, nvm_value v)
{
    return nvm_heap_obj(&vm->heap, v);
}

static nvm_status too_big(nvm_vm *vm)
{
    return nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded (%zu bytes)", vm->cfg.max_memory);
}

nvm_status nvm_array_new(nvm_vm *vm, uint32_t cap, nvm_value *out)
{
    void *items = NULL, *o = NULL;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)cap, sizeof(nvm_value), &bytes))
        return too_big(vm);
    /* the items block first: it is not an object, so a collection during the object's
     * allocation cannot touch it */
    nvm_status st = nvm_mem_alloc(vm, bytes, true, &items);
    if (st != NVM_OK)
        return st;
    st = nvm_obj_new(vm, NVM_OBJ_ARRAY, sizeof(nvm_array), &o, out);
    if (st != NVM_OK) {
        nvm_mem_free(vm, items, sizeof(nvm_value) * cap);
        return st;
    }
    nvm_array *a = o;
    a->hdr.sub = NVM_ARR_VALUES;
    a->items = items;
    a->cap = cap;
    a->len = 0;
    return NVM_OK;
}

nvm_status nvm_array_new_bools(nvm_vm *vm, nvm_value *out)
{
    nvm_status st = nvm_array_new(vm, 0, out);
    if (st == NVM_OK)
        A(vm, *out)->hdr.sub = NVM_ARR_BOOLS;
    return st;
}

/* a bool array's elements as values (may collect: the array must be reachable) */
static nvm_status to_values(nvm_vm *vm, nvm_array *a)
{
    if (a->hdr.sub != NVM_ARR_BOOLS)
        return NVM_OK;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)a->cap, sizeof(nvm_value), &bytes))
        return too_big(vm);
    void *p = NULL;
    /* not an object: a collection during the allocation sees the array unchanged */
    nvm_status st = nvm_mem_alloc(vm, bytes, true, &p);
    if (st != NVM_OK)
        return st;
    nvm_value *items = p;
    for (uint32_t k = 0; k < a->len; k++)
        items[k] = nvm_bool(a->bools[k] != 0);
    nvm_mem_free(vm, a->bools, a->cap);
    a->items = items;
    a->hdr.sub = NVM_ARR_VALUES;
    return NVM_OK;
}

/* a bool array about to hold v, not a bool: converted first, v kept alive across it */
static nvm_status make_room_for(nvm_vm *vm, nvm_array *a, nvm_value v)
{
    if (a->hdr.sub != NVM_ARR_BOOLS || v.type == NVM_T_BOOL)
        return NVM_OK;
    bool rooted = NVM_IS_OBJ(v);
    if (rooted) {
        nvm_status st = nvm_troot_push(vm, v);
        if (st != NVM_OK)
            return st;
    }
    nvm_status st = to_values(vm, a);
    if (rooted)
        nvm_troot_pop(vm, 1);
    return st;
}

/* Index rules shared by ARR_GET and ARR_SET: int only, negative counts from the end. */
static nvm_status resolve_index(nvm_vm *vm, const char *op, nvm_value i, uint32_t len,
                                uint32_t *out)
{
    if (i.type != NVM_T_INT)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: %s expects an int index, got %s", op,
                            nvm_type_name((nvm_type)i.type));
    int64_t k = i.as.i;
    if (k < 0)
        k += len;
    if (k < 0 || k >= (int64_t)len)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "index %lld out of range (length %u)",
                            (long long)i.as.i, len);
    *out = (uint32_t)k;
    return NVM_OK;
}

nvm_status nvm_array_push(nvm_vm *vm, nvm_value arr, nvm_value v)
{
    if (arr.type != NVM_T_ARRAY)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: ARR_PUSH expects an array, got %s",
                            nvm_type_name((nvm_type)arr.type));
    nvm_array *a = A(vm, arr);
    nvm_status cs = make_room_for(vm, a, v);
    if (cs != NVM_OK)
        return cs;
    if (a->len == a->cap) {
        if (a->cap == UINT32_MAX)
            return too_big(vm);
        uint32_t ncap = a->cap < 4 ? 4 : a->cap > UINT32_MAX / 2 ? UINT32_MAX : a->cap * 2;
        size_t esize = nvm_arr_esize(a), bytes;
        if (__builtin_mul_overflow((size_t)ncap, esize, &bytes))
            return too_big(vm);
        /* v may be a fresh value held nowhere else: keep it alive across a collection */
        bool rooted = NVM_IS_OBJ(v);
        if (rooted) {
            nvm_status st = nvm_troot_push(vm, v);
            if (st != NVM_OK)
                return st;
        }
        void *p = a->items;
        nvm_status st = nvm_mem_realloc(vm, &p, esize * a->cap, bytes, true);
        if (rooted)
            nvm_troot_pop(vm, 1);
        if (st != NVM_OK)
            return st;
        a->items = p;
        a->cap = ncap;
    }
    if (a->hdr.sub == NVM_ARR_BOOLS)
        a->bools[a->len++] = (uint8_t)(v.as.b != 0);
    else
        a->items[a->len++] = v;
    return NVM_OK;
}

nvm_status nvm_array_get(nvm_vm *vm, nvm_value arr_or_str, nvm_value i, nvm_value *out)
{
    uint32_t k = 0;
    nvm_status st;
    if (arr_or_str.type == NVM_T_ARRAY) {
        const nvm_array *a = A(vm, arr_or_str);
        st = resolve_index(vm, "ARR_GET", i, a->len, &k);
        if (st != NVM_OK)
            return st;
        *out = nvm_arr_at(a, k);
        return NVM_OK;
    }
    if (arr_or_str.type == NVM_T_STR) {
        const nvm_str *s = nvm_heap_obj(&vm->heap, arr_or_str);
        st = resolve_index(vm, "ARR_GET", i, s->len, &k);
        if (st != NVM_OK)
            return st;
        return nvm_str_new(vm, s->data + k, 1, out);
    }
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: ARR_GET expects an array or str, got %s",
                        nvm_type_name((nvm_type)arr_or_str.type));
}

nvm_status nvm_array_set(nvm_vm *vm, nvm_value arr, nvm_value i, nvm_value v)
{
    uint32_t k = 0;
    if (arr.type != NVM_T_ARRAY)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: ARR_SET expects an array, got %s",
                            nvm_type_name((nvm_type)arr.type));
    nvm_array *a = A(vm, arr);
    nvm_status st = resolve_index(vm, "ARR_SET", i, a->len, &k);
    if (st == NVM_OK)
        st = make_room_for(vm, a, v);
    if (st != NVM_OK)
        return st;
    if (a->hdr.sub == NVM_ARR_BOOLS)
        a->bools[k] = (uint8_t)(v.as.b != 0);
    else
        a->items[k] = v;
    return NVM_OK;
}

nvm_status nvm_array_pop(nvm_vm *vm, nvm_value arr, nvm_value *out)
{
    if (arr.type != NVM_T_ARRAY)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: ARR_POP expects an array, got %s",
                            nvm_type_name((nvm_type)arr.type));
    nvm_array *a = A(vm, arr);
    if (a->len == 0)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "ARR_POP on an empty array");
    *out = nvm_arr_at(a, --a->len);
    return NVM_OK;
}

nvm_status nvm_array_range(nvm_vm *vm, nvm_value a, nvm_value b, nvm_value *out)
{
    if (a.type != NVM_T_INT || b.type != NVM_T_INT)
        return nvm_vm_raise(vm, NVM_E_PROGRAM,
                            "type error: MAKE_RANGE expects int and int, got %s and %s",
                            nvm_type_name((nvm_type)a.type), nvm_type_name((nvm_type)b.type));
    uint64_t n = b.as.i > a.as.i ? (uint64_t)b.as.i - (uint64_t)a.as.i : 0;
    if (n > UINT32_MAX || n > vm->cfg.max_memory / sizeof(nvm_value))
        return too_big(vm);
    nvm_status st = nvm_array_new(vm, (uint32_t)n, out);
    if (st != NVM_OK)
        return st;
    nvm_array *arr = A(vm, *out);
    for (uint64_t k = 0; k < n; k++)
        arr->items[k] = nvm_int((int64_t)((uint64_t)a.as.i + k));
    arr->len = (uint32_t)n;
    return NVM_OK;
}
