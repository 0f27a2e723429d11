/* capcall.h - reading a VM's capability registry and calling a registered capability from C,
 * for hosts that run the program elsewhere (the WASM sandbox, the isolated child's broker) and
 * perform its capability calls on a proxy VM. */
#ifndef NVM_CAPCALL_H
#define NVM_CAPCALL_H

#include <stdint.h>

#include "nanovm.h"

/* Registered capabilities, in registration order. */
uint32_t nvm_vm_cap_count(const nvm_vm *vm);
/* Name and argc (or NVM_VARIADIC) of registry entry i < nvm_vm_cap_count(vm). */
const char *nvm_vm_cap_info(const nvm_vm *vm, uint32_t i, uint32_t *argc);
/* Registry index of `name`, or -1. */
int nvm_vm_cap_find(const nvm_vm *vm, const char *name);

/* Calls registry entry i with args[0..argc) (values of vm, rooted by the caller) the way
 * CAP_CALL does: argc must match the registration (NVM_E_LINK otherwise); *result is null unless
 * the capability stores one; a failure leaves its status and message in vm's error record
 * ("capability \"NAME\" failed" when the capability set none). */
nvm_status nvm_vm_call_cap_index(nvm_vm *vm, uint32_t i, const nvm_value *args, uint32_t argc,
                                 nvm_value *result);
/* The same by name (NVM_E_LINK when no capability has that name). */
nvm_status nvm_vm_call_cap(nvm_vm *vm, const char *name, const nvm_value *args, uint32_t argc,
                           nvm_value *result);

#endif
