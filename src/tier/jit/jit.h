/* jit.h - the x86-64 JIT tier: compiler (jit.c), runtime helpers, code blobs, the code cache
 * and the run driver (jitrt.c).
 *
 * Compiled code keeps the interpreter's state layout (vm.h): the operand stack, frame records,
 * slots and handlers are the interpreter's, so any instruction can be handed to the interpreter
 * (nvm_interp_resume): slow paths step one instruction, a block whose gas cannot be charged in
 * full resumes the frame in the interpreter (exact exhaustion point), and functions the compiler
 * refuses (size bounds) run interpreted behind a native entry.
 *
 * Native calling convention between compiled functions (internal):
 *   r12 = vm, r13 = &stack[entry height] of the running frame, r14 = its slots, r15 = the gas
 *   countdown (interp.c's gas_left), rbx = the module's constant pool. rbp is allocatable (a
 *   callee may change it; the trampoline keeps the C stack pointer on the run's stack).
 *   A function returns eax = 0 (returned; its result is stored at the caller's top), 1 (error:
 *   status in vm->jit_status, frames left in place for the backtrace) or 2 (program ended).
 *   At entry rsp is 8 mod 16, as after a call.
 */
#ifndef NVM_JIT_H
#define NVM_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"
#include "../../vm/vm.h"

/* Bounds per module: instructions compiled and machine code size. A module over them runs on
 * the interpreter; a function whose analysis would need more than NVM_NATIVE_MAX_STATE bytes
 * (analysis.h) runs interpreted behind a native entry. */
#define NVM_JIT_MAX_INSNS 2000000u
#define NVM_JIT_MAX_CODE (256u << 20)

/* A compiled module: one executable mapping. */
typedef struct nvm_jit_blob {
    uint8_t *code; /* mapped read+execute */
    size_t size;
    size_t map_size;
    void *pool; /* the constant pool, mapped read-only (RBX in compiled code) */
    size_t pool_map_size;
    uint32_t nfuncs;
    uint32_t *entry;  /* function index -> offset of its native entry */
    uint32_t tramp;   /* offset of the trampoline */
    uint32_t ninterp; /* functions left to the interpreter */
    uint64_t insns;
    uint64_t compile_ns;
} nvm_jit_blob;

/* Compiles every function of the verified module m. */
nvm_status nvm_jit_compile(const nvm_module *m, nvm_jit_blob **out, nvm_error *err);
void nvm_jit_blob_free(nvm_jit_blob *b);

/* Runs vm's loaded module on blob (vm.c's run protocol: error record, backtrace). */
nvm_status nvm_jit_run(nvm_vm *vm, const nvm_jit_blob *blob);

/* Finds or compiles m in cache c (NULL cache: *owned receives a blob the caller frees). */
nvm_status nvm_jit_get(nvm_code_cache *c, const nvm_module *m, const nvm_jit_blob **out,
                       nvm_jit_blob **owned, nvm_error *err);

bool nvm_jit_supported(void);

#endif
