/* exec.c - running a verified module on an execution tier with a host's capabilities
 * (nvm_execute). The interpreter runs in this process; other tiers and process isolation plug
 * in here. */
#include <stdio.h>
#include <string.h>

#include "nanovm.h"

static const char *const tier_names[] = {"interp", "wasm"};

const char *nvm_tier_name(nvm_tier t)
{
    return (unsigned)t < sizeof tier_names / sizeof tier_names[0] ? tier_names[t] : "?";
}

int nvm_tier_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof tier_names / sizeof tier_names[0]; i++)
        if (strcmp(tier_names[i], name) == 0)
            return (int)i;
    return -1;
}

bool nvm_tier_available(nvm_tier t) { return t == NVM_TIER_INTERP; }

bool nvm_isolation_available(void) { return false; }

static nvm_status run_interp(const nvm_config *cfg, const nvm_module *m, nvm_host *h,
                             int64_t *gas_used, nvm_error *err)
{
    nvm_vm *vm = NULL;
    nvm_status st = nvm_vm_new(cfg, &vm);
    if (st != NVM_OK) {
        if (err != NULL) {
            memset(err, 0, sizeof *err);
            err->status = st;
            snprintf(err->message, sizeof err->message, "cannot create a VM: %s",
                     nvm_status_meaning(st));
        }
        return st;
    }
    st = h != NULL ? nvm_host_install(h, vm) : NVM_OK;
    if (st == NVM_OK)
        st = nvm_vm_load(vm, m);
    if (st == NVM_OK)
        st = nvm_vm_run(vm);
    if (gas_used != NULL)
        *gas_used = nvm_vm_gas_used(vm);
    if (st != NVM_OK && err != NULL)
        *err = *nvm_vm_error(vm);
    nvm_vm_free(vm);
    return st;
}

nvm_status nvm_execute(const nvm_config *cfg, const nvm_module *m, nvm_host *h, nvm_tier tier,
                       bool isolate, int64_t *gas_used, nvm_error *err)
{
    if (gas_used != NULL)
        *gas_used = 0;
    if (!nvm_tier_available(tier) || (isolate && !nvm_isolation_available())) {
        if (err != NULL) {
            memset(err, 0, sizeof *err);
            err->status = NVM_E_USAGE;
            snprintf(err->message, sizeof err->message, "%s%s is not available in this build",
                     isolate ? "isolation of tier " : "tier ", nvm_tier_name(tier));
        }
        return NVM_E_USAGE;
    }
    return run_interp(cfg, m, h, gas_used, err);
}
