/* aot.h - the AOT tier: verified bytecode translated to C (aot.c), compiled by the system C
 * compiler into a shared object kept in an owner-only cache, loaded with dlopen and run on the
 * native protocol of nrt.h (aotrt.c).
 *
 * Generated code is self-contained C (no NanoVM header): it declares a value type identical to
 * nvm_value (checked by _Static_assert), reaches nvm_vm fields through byte offsets baked in at
 * generation time, and reaches the runtime (the nvm_rt_* helpers) through a table the run driver
 * hands over in vm->jit_pool (an nvm_aot_ctx). The object exports one function,
 * nvm_aot_describe, whose descriptor carries the ABI fingerprint the loader checks before it
 * runs anything.
 */
#ifndef NVM_AOT_H
#define NVM_AOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"
#include "../../vm/vm.h"

#define NVM_AOT_ABI 2u
#define NVM_AOT_FP_LEN 64 /* hex digits of the layout fingerprint */

/* The runtime table (same member order as the generated declaration). */
typedef struct nvm_aot_rt {
    int (*fast)(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots, int64_t gas);
    int (*truthy)(nvm_vm *vm, const nvm_value *v);
    int (*gas)(nvm_vm *vm, uint32_t need, uint32_t idx, nvm_value *top);
    int (*deopt)(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots);
    int (*interp_call)(nvm_vm *vm, nvm_value *base, nvm_value *slots);
    int (*call_space)(nvm_vm *vm, uint32_t callee, nvm_value *top, nvm_value *cslots, uint32_t idx);
    int (*catch_)(nvm_vm *vm, uint32_t frame);
    void (*drop_handlers)(nvm_vm *vm);
    int64_t (*prefill)(nvm_vm *vm, int64_t gas, uint32_t need);
} nvm_aot_rt;

/* What vm->jit_pool points to while generated code runs. stack_limit: below this native stack
 * address a CALL runs its callee in the interpreter instead of recursing natively. */
typedef struct nvm_aot_ctx {
    const nvm_aot_rt *rt;
    const char *stack_limit;
} nvm_aot_ctx;

typedef int (*nvm_aot_fn)(nvm_vm *vm, nvm_value *base, nvm_value *slots);

/* What nvm_aot_describe returns. */
typedef struct nvm_aot_desc {
    uint32_t abi;
    uint32_t nfuncs;
    const char *fingerprint; /* NVM_AOT_FP_LEN hex digits */
    const nvm_aot_fn *fns;   /* function index -> entry */
    uint64_t insns;
} nvm_aot_desc;

/* The layout fingerprint: SHA-256 (hex) over the ABI, the NanoVM version and every offset and
 * size the generated code depends on. */
void nvm_aot_fingerprint(char out[NVM_AOT_FP_LEN + 1]);

/* Translates the verified module m to C; *out (NUL-terminated, *len bytes) is the caller's
 * (free). flags: NVM_AOT_UNMETERED (nanovm.h) leaves out every gas check (the interrupt hook then
 * never runs inside generated code). */
nvm_status nvm_aot_emit(const nvm_module *m, unsigned flags, char **out, size_t *len,
                        nvm_error *err);

/* ---- the cache and the run driver (aotrt.c) ---- */
typedef struct nvm_aot_lib nvm_aot_lib;

/* Finds m (compiled with the NVM_AOT_* flags) in the cache (checking the entry's recorded hash
 * before dlopen) or compiles it (compile: allowed to run the compiler). NVM_OK: *out is ready to
 * run. Otherwise *out is NULL and `why` says why the tier cannot be used (the caller falls back).
 */
nvm_status nvm_aot_get(const nvm_module *m, unsigned flags, bool compile, nvm_aot_lib **out,
                       char *why, size_t whylen);
void nvm_aot_lib_free(nvm_aot_lib *lib);
/* Runs vm's loaded module (the module lib was built from) on lib. */
nvm_status nvm_aot_run(nvm_vm *vm, const nvm_aot_lib *lib);
/* The C compiler the tier would use (resolved path), false when there is none. */
bool nvm_aot_compiler(char *path, size_t n);

#endif
