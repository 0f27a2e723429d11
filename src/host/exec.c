/* exec.c - running a verified module on an execution tier with a host's capabilities
 * (nvm_execute). The interpreter runs in this process; other tiers and process isolation plug
 * in here. */
#include <stdio.h>
#include <string.h>

#include "nanovm.h"
#include "host/hal.h"
#include "isa/module.h"
#include "host/isolate.h"
#ifdef NVM_HAVE_WASM_SANDBOX
#include "tier/wasm/sandbox.h"
#endif
#ifdef NVM_HAVE_JIT
#include "tier/jit/jit.h"
#endif
#ifdef NVM_HAVE_AOT
#include "tier/aot/aot.h"
#endif

static const char *const tier_names[] = {"interp", "wasm", "jit", "aot"};

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

bool nvm_tier_available(nvm_tier t)
{
#ifdef NVM_HAVE_AOT
    if (t == NVM_TIER_AOT)
        return true; /* without a compiler or cache, runs fall back (run_on) */
#endif
#ifdef NVM_HAVE_JIT
    if (t == NVM_TIER_JIT)
        return nvm_jit_supported();
#endif
#ifdef NVM_HAVE_WASM_SANDBOX
    if (t == NVM_TIER_WASM)
        return true;
#endif
    return t == NVM_TIER_INTERP;
}

bool nvm_isolation_available(void)
{
    return nvm_isolate_supported();
}

/* Runs the loaded VM on the interpreter or the JIT (compiled through cfg's code cache; a module
 * over the JIT's bounds runs on the interpreter). */
static nvm_status run_on(nvm_vm *vm, const nvm_config *cfg, const nvm_module *m, nvm_tier tier,
                         nvm_host *h, nvm_error *err)
{
#ifdef NVM_HAVE_AOT
    /* AOT: the cached object, compiled when missing; otherwise the JIT (or the interpreter),
     * with an "aot.fallback" audit record saying why */
    if (tier == NVM_TIER_AOT) {
        nvm_aot_lib *lib = NULL;
        char why[512];
        unsigned flags =
            cfg->unmetered && cfg->gas < 0 && cfg->interrupt == NULL ? NVM_AOT_UNMETERED : 0;
        if (nvm_aot_get(m, flags, true, &lib, why, sizeof why) == NVM_OK) {
            nvm_status st = nvm_aot_run(vm, lib);
            nvm_aot_lib_free(lib);
            return st;
        }
        const char *f[] = {"tier", "aot", "reason", why, NULL};
        nvm_status ast = nvm_host_audit_event(h, "aot.fallback", f);
        if (ast != NVM_OK)
            return ast;
        tier = nvm_tier_available(NVM_TIER_JIT) ? NVM_TIER_JIT : NVM_TIER_INTERP;
    }
#else
    (void)h;
#endif
#ifdef NVM_HAVE_JIT
    if (tier == NVM_TIER_JIT) {
        const nvm_jit_blob *blob = NULL;
        nvm_jit_blob *owned = NULL;
        nvm_error cerr;
        memset(&cerr, 0, sizeof cerr);
        nvm_status st = nvm_jit_get(cfg->code_cache, m, &blob, &owned, &cerr);
        if (st == NVM_E_USAGE) /* over the bounds */
            return nvm_vm_run(vm);
        if (st != NVM_OK) {
            if (err != NULL)
                *err = cerr;
            return st;
        }
        st = nvm_jit_run(vm, blob);
        nvm_jit_blob_free(owned);
        return st;
    }
#else
    (void)cfg;
    (void)m;
    (void)err;
#endif
    (void)tier;
    return nvm_vm_run(vm);
}

static nvm_status install_host(void *ud, nvm_vm *vm);

/* Runs m on the interpreter, the JIT or the AOT tier in this process; `install` registers its
 * capabilities (the host's, or an isolated child's forwarding stubs). */
static nvm_status run_interp(const nvm_config *cfg, const nvm_module *m, nvm_tier tier,
                             nvm_cap_installer install, void *install_ud, int64_t *gas_used,
                             nvm_error *err)
{
    nvm_vm *vm = NULL;
    nvm_status st = nvm_vm_new(cfg, &vm);
    if (st != NVM_OK) {
        return nvm_error_set(err, st, NULL, 0, 0, "cannot create a VM: %s", nvm_status_meaning(st));
    }
    st = install != NULL ? install(install_ud, vm) : NVM_OK;
    if (st == NVM_OK)
        st = nvm_vm_load(vm, m);
    if (st == NVM_OK)
        st = run_on(vm, cfg, m, tier, install == install_host ? install_ud : NULL, err);
    if (gas_used != NULL)
        *gas_used = nvm_vm_gas_used(vm);
    if (st != NVM_OK && err != NULL)
        *err = *nvm_vm_error(vm);
    nvm_vm_free(vm);
    return st;
}

static nvm_status install_host(void *ud, nvm_vm *vm)
{
    return ud != NULL ? nvm_host_install(ud, vm) : NVM_OK;
}

#ifdef NVM_HAVE_WASM_SANDBOX
/* Runs m on the WASM sandbox tier: the capabilities are installed on a proxy VM of this process
 * (same configuration, used only as the arena of marshalled values) on which the sandbox
 * performs the guest's capability calls. */
static nvm_status run_wasm(const nvm_config *cfg, const nvm_module *m, nvm_cap_installer install,
                           void *install_ud, int64_t *gas_used, nvm_error *err)
{
    nvm_config pc = *cfg;
    pc.interrupt = NULL;
    pc.interrupt_ud = NULL;
    pc.fail_alloc_at = 0;
    nvm_vm *proxy = NULL;
    nvm_status st = nvm_vm_new(&pc, &proxy);
    if (st != NVM_OK) {
        return nvm_error_set(err, st, NULL, 0, 0, "cannot create a VM: %s", nvm_status_meaning(st));
    }
    st = install != NULL ? install(install_ud, proxy) : NVM_OK;
    if (st == NVM_OK)
        st = nvm_sandbox_run(cfg, m, proxy, install == install_host ? install_ud : NULL, gas_used,
                             err);
    else if (err != NULL)
        *err = *nvm_vm_error(proxy);
    nvm_vm_free(proxy);
    return st;
}
#endif

nvm_status nvm_exec_local(const nvm_config *cfg, const nvm_module *m, nvm_tier tier,
                          nvm_cap_installer install, void *install_ud, int64_t *gas_used,
                          nvm_error *err)
{
#ifdef NVM_HAVE_WASM_SANDBOX
    if (tier == NVM_TIER_WASM)
        return run_wasm(cfg, m, install, install_ud, gas_used, err);
#endif
    if (tier != NVM_TIER_INTERP &&
        !((tier == NVM_TIER_JIT || tier == NVM_TIER_AOT) && nvm_tier_available(tier))) {
        return nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0, "tier %s is not available in this build",
                             nvm_tier_name(tier));
    }
    return run_interp(cfg, m, tier, install, install_ud, gas_used, err);
}

typedef struct exec_tick {
    nvm_host *h;
    nvm_status (*inner)(void *ud);
    void *inner_ud;
} exec_tick;

static nvm_status exec_tick_fn(void *ud)
{
    exec_tick *t = ud;
    if (t->inner != NULL) {
        nvm_status st = t->inner(t->inner_ud);
        if (st != NVM_OK)
            return st;
    }
    if (nvm_host_now_ms() <= t->h->deadline_ms)
        return NVM_OK;
    char max[32];
    snprintf(max, sizeof max, "%lld", (long long)t->h->cfg.wall_ms);
    const char *f[] = {"limit", "wall_ms", "max", max, NULL};
    (void)nvm_host_audit_event(t->h, "limit", f);
    return NVM_E_TIME;
}

/* An isolated run. The child may not map executable memory, so JIT code is compiled here, into a
 * code cache the child inherits when it forks. */
static nvm_status run_isolated(const nvm_config *cfg, const nvm_module *m, nvm_host *h,
                               nvm_tier tier, int64_t *gas_used, nvm_error *err)
{
#ifdef NVM_HAVE_JIT
    if (tier == NVM_TIER_JIT) {
        nvm_config jc = *cfg;
        nvm_code_cache *own = NULL;
        if (jc.code_cache == NULL) {
            if (nvm_code_cache_new(&own) != NVM_OK)
                return nvm_error_set(err, NVM_E_MEMORY, NULL, 0, 0, "JIT: out of memory");
            jc.code_cache = own;
        }
        const nvm_jit_blob *blob = NULL;
        nvm_jit_blob *unused = NULL;
        nvm_status st = nvm_jit_get(jc.code_cache, m, &blob, &unused, err);
        if (st == NVM_OK || st == NVM_E_USAGE) /* over the JIT's bounds: the interpreter runs */
            st = nvm_isolate_run(&jc, m, h, tier, NULL, gas_used, err);
        nvm_code_cache_free(own);
        return st;
    }
#endif
    return nvm_isolate_run(cfg, m, h, tier, NULL, gas_used, err);
}

nvm_status nvm_execute(const nvm_config *cfg, const nvm_module *m, nvm_host *h, nvm_tier tier,
                       bool isolate, int64_t *gas_used, nvm_error *err)
{
    if (gas_used != NULL)
        *gas_used = 0;
    if (!nvm_tier_available(tier) || (isolate && !nvm_isolation_available())) {
        return nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0, "%s%s is not available in this build",
                             isolate ? "isolation of tier " : "tier ", nvm_tier_name(tier));
    }
    if (isolate)
        return run_isolated(cfg, m, h, tier, gas_used, err);
    if (h == NULL || h->deadline_ms < 0)
        return nvm_exec_local(cfg, m, tier, install_host, h, gas_used, err);
    /* A wall-time limit: the interpreter's interrupt hook (every 65,536 instructions) checks the
     * host's deadline, after the embedder's own hook if there is one. */
    exec_tick tick = {h, cfg->interrupt, cfg->interrupt_ud};
    nvm_config tc = *cfg;
    tc.interrupt = exec_tick_fn;
    tc.interrupt_ud = &tick;
    return nvm_exec_local(&tc, m, tier, install_host, h, gas_used, err);
}
