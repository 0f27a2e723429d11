/* sandbox.h - the WASM sandbox tier's host side (sandbox.c): runs a module on the VM core
 * compiled to WebAssembly and translated to C by wasm2c, with capability calls performed on a
 * proxy VM of this process. Built only when clang, wasm2c and wasi-libc are present
 * (NVM_HAVE_WASM_SANDBOX). */
#ifndef NVM_WASM_SANDBOX_H
#define NVM_WASM_SANDBOX_H

#include <stdint.h>

#include "nanovm.h"
#include "tier/wasm/abi.h"

/* Runs m inside a fresh sandbox instance with cfg's limits. `proxy` is a VM made from cfg with
 * the host's capabilities registered (nvm_host_install): the guest registers the same names and
 * signatures, and each of its capability calls is decoded into the proxy's arena and performed
 * there. `h` (may be NULL) receives an audit record when the guest breaks the import contract.
 * Status, error record and gas are those the core reports from inside the sandbox; a trap
 * (out-of-bounds access, stack exhaustion) or a contract violation ends the run with
 * NVM_E_INTERNAL. */
nvm_status nvm_sandbox_run(const nvm_config *cfg, const nvm_module *m, nvm_vm *proxy, nvm_host *h,
                           int64_t *gas_used, nvm_error *err);

/* One-time set-up of the wasm2c runtime (fault handler, alternate signal stack, function types);
 * done by the first run otherwise. A process that restricts its system calls calls it first.
 * Each run then needs mmap/mprotect/munmap (its memory) and, in guard-page mode, rt_sigaction
 * (the fault handler is in force only while guest code runs). */
void nvm_sandbox_preinit(void);
/* Address space one sandboxed run reserves without committing it (its guard-page region), so
 * that a process limiting RLIMIT_AS can leave room for it. */
uint64_t nvm_sandbox_address_space(void);

/* Tests of the import checks: instantiates a sandbox and makes the guest call its cap_call import
 * with exactly these raw values, as a compromised guest could. NVM_OK when the host accepted the
 * call; NVM_E_INTERNAL (message in *err) when it refused it. */
nvm_status nvm_sandbox_forge_call(const nvm_config *cfg, nvm_vm *proxy, uint32_t cap, uint32_t ptr,
                                  uint32_t len, uint32_t out, uint32_t out_cap, nvm_error *err);

/* Linear memory pages (64 KiB) a run with this memory limit may grow to: twice the limit (the
 * arena's limit counts live bytes; the allocator's slack and reallocation copies come on top)
 * plus NVM_SB_FIXED_BYTES for the core's code data, stack and module, at most 65,536 (4 GiB). */
#define NVM_SB_FIXED_BYTES ((uint64_t)16 << 20)
uint32_t nvm_sandbox_max_pages(uint64_t max_memory, uint64_t module_bytes);

#endif
