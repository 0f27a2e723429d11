/* capcall.c - the capability registry seen from C (capcall.h): lookups and direct calls on a
 * VM that is not running a program. */
#include <string.h>

#include "capcall.h"
#include "vm.h"

uint32_t nvm_vm_cap_count(const nvm_vm *vm)
{
    return vm->ncaps;
}

const char *nvm_vm_cap_info(const nvm_vm *vm, uint32_t i, uint32_t *argc)
{
    if (i >= vm->ncaps)
        return NULL;
    if (argc != NULL)
        *argc = vm->caps[i].argc;
    return vm->caps[i].name;
}

int nvm_vm_cap_find(const nvm_vm *vm, const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = 0; i < vm->ncaps; i++)
        if (vm->caps[i].name_len == len && memcmp(vm->caps[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

nvm_status nvm_vm_call_cap_index(nvm_vm *vm, uint32_t i, const nvm_value *args, uint32_t argc,
                                 nvm_value *result)
{
    *result = nvm_null();
    if (i >= vm->ncaps)
        return nvm_vm_raise(vm, NVM_E_LINK, "no capability with index %u", i);
    const nvm_capentry *ce = &vm->caps[i];
    if (ce->argc != NVM_VARIADIC && ce->argc != argc)
        return nvm_vm_raise(vm, NVM_E_LINK, "capability \"%s\" takes %u argument%s, called with %u",
                            ce->name, ce->argc, ce->argc == 1 ? "" : "s", argc);
    vm->err.status = NVM_OK;
    nvm_status st = ce->fn(vm, ce->ud, args, argc, result);
    if (st != NVM_OK && vm->err.status != st)
        nvm_vm_raise(vm, st, "capability \"%s\" failed", ce->name);
    return st;
}

nvm_status nvm_vm_call_cap(nvm_vm *vm, const char *name, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    int i = nvm_vm_cap_find(vm, name);
    if (i < 0) {
        *result = nvm_null();
        return nvm_vm_raise(vm, NVM_E_LINK, "unknown capability \"%s\"", name);
    }
    return nvm_vm_call_cap_index(vm, (uint32_t)i, args, argc, result);
}
