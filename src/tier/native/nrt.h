/* nrt.h - the runtime shared by the native tiers (JIT, AOT; nrt.c).
 *
 * Native code keeps the interpreter's state layout (vm.h): operand stack, frame records, slots
 * and handlers are the interpreter's. A compiled function runs with `base` = &stack[its entry
 * height] and `slots` = its slots; it returns NVM_RT_OK (returned: its result stored at the
 * caller's top), NVM_RT_ERR (status in vm->jit_status, frames left in place for the backtrace)
 * or NVM_RT_END (the program ended). The gas countdown is interp.c's gas_left; helpers that
 * consume or refill it read and write vm->jit_gas.
 */
#ifndef NVM_NRT_H
#define NVM_NRT_H

#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"
#include "../../vm/vm.h"

enum { NVM_RT_OK = 0, NVM_RT_ERR = 1, NVM_RT_END = 2, NVM_RT_DEOPT = 3 };

/* Executes instruction idx of the running frame in the interpreter (top: one past its operands). */
int nvm_rt_step(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots, int64_t gas);
/* The same for the common heap operations without entering the interpreter (else a step). */
int nvm_rt_fast(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots, int64_t gas);
int nvm_rt_truthy(nvm_vm *vm, const nvm_value *v);
/* Makes vm->jit_gas >= need by refilling from vm->gas_rest (the interrupt hook runs at each
 * refill): NVM_RT_OK, NVM_RT_ERR (the hook stopped the run) or NVM_RT_DEOPT (not enough gas
 * left: the caller resumes the frame in the interpreter, which stops at the exact instruction). */
int nvm_rt_gas(nvm_vm *vm, uint32_t need, uint32_t idx, nvm_value *top);
/* Runs the rest of the running frame in the interpreter from instruction idx. */
int nvm_rt_deopt(nvm_vm *vm, uint32_t idx, nvm_value *top, nvm_value *slots);
/* The refill of a frameless (side-effect free) call's gas countdown `gas`: chunks move from
 * vm->gas_rest (the caller restores it if the call is abandoned) and the interrupt hook runs as
 * in nvm_rt_gas. Returns the new countdown (>= need), or -1: the call must be abandoned and
 * redone with frames (the run's gas cannot cover `need`, or the hook asked to stop; the frame
 * path then stops at the exact instruction, calling the hook again). */
int64_t nvm_rt_prefill(nvm_vm *vm, int64_t gas, uint32_t need);
/* Runs a whole call (frame already pushed by the caller) in the interpreter. */
int nvm_rt_interp_call(nvm_vm *vm, nvm_value *base, nvm_value *slots);
/* CALL's slow path (depth limit, stack, frames, slots). */
int nvm_rt_call_space(nvm_vm *vm, uint32_t callee, nvm_value *top, nvm_value *cslots, uint32_t idx);
/* Catch in frame `frame`: the handler's target instruction with the value pushed, or -1. */
int nvm_rt_catch(nvm_vm *vm, uint32_t frame);
/* RET with handlers installed: drops the returning frame's. */
void nvm_rt_drop_handlers(nvm_vm *vm);

/* A native stack for a run: `bytes` (rounded up to pages) from the returned lowest address, with
 * an inaccessible guard page below it; NULL (error raised on vm) when it cannot be mapped. */
uint8_t *nvm_rt_stack_new(nvm_vm *vm, size_t bytes, size_t *size);
void nvm_rt_stack_free(uint8_t *low, size_t size);

#endif
