/* api_values.c - the public functions that build and read arrays and maps from C (nanovm.h,
 * "building and reading values"), for hosts whose capabilities return structured values.
 * Thin checked wrappers over the arena (array.c, map.c) and its temporary root stack. */
#include "vm.h"

nvm_status nvm_value_new_array(nvm_vm *vm, nvm_value *out)
{
    if (vm == NULL || out == NULL)
        return NVM_E_USAGE;
    return nvm_array_new(vm, 0, out);
}

nvm_status nvm_array_push_value(nvm_vm *vm, nvm_value arr, nvm_value v)
{
    if (vm == NULL)
        return NVM_E_USAGE;
    return nvm_array_push(vm, arr, v);
}

nvm_status nvm_value_new_map(nvm_vm *vm, nvm_value *out)
{
    if (vm == NULL || out == NULL)
        return NVM_E_USAGE;
    return nvm_map_new(vm, out);
}

nvm_status nvm_map_set_value(nvm_vm *vm, nvm_value map, nvm_value key, nvm_value v)
{
    if (vm == NULL)
        return NVM_E_USAGE;
    return nvm_map_set(vm, map, key, v);
}

uint32_t nvm_value_array_len(nvm_vm *vm, nvm_value arr)
{
    if (vm == NULL || arr.type != NVM_T_ARRAY)
        return 0;
    const nvm_array *a = nvm_heap_obj(&vm->heap, arr);
    return a->len;
}

nvm_value nvm_value_array_get(nvm_vm *vm, nvm_value arr, uint32_t i)
{
    if (vm == NULL || arr.type != NVM_T_ARRAY)
        return nvm_null();
    const nvm_array *a = nvm_heap_obj(&vm->heap, arr);
    return i < a->len ? nvm_arr_at(a, i) : nvm_null();
}

uint32_t nvm_value_map_len(nvm_vm *vm, nvm_value map)
{
    if (vm == NULL || map.type != NVM_T_MAP)
        return 0;
    const nvm_map *m = nvm_heap_obj(&vm->heap, map);
    return m->count;
}

bool nvm_value_map_entry(nvm_vm *vm, nvm_value map, uint32_t *pos, nvm_value *key, nvm_value *val)
{
    if (vm == NULL || pos == NULL || map.type != NVM_T_MAP)
        return false;
    const nvm_map *m = nvm_heap_obj(&vm->heap, map);
    while (*pos < m->nentries) {
        const nvm_mapentry *e = &m->entries[(*pos)++];
        if (e->key.type == NVM_T_UNDEF)
            continue;
        if (key != NULL)
            *key = e->key;
        if (val != NULL)
            *val = e->value;
        return true;
    }
    return false;
}

nvm_status nvm_value_root(nvm_vm *vm, nvm_value v)
{
    if (vm == NULL)
        return NVM_E_USAGE;
    return nvm_troot_push(vm, v);
}

void nvm_value_unroot(nvm_vm *vm, uint32_t n)
{
    if (vm != NULL)
        nvm_troot_pop(vm, n);
}
