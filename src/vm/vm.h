/* vm.h - the VM instance: configuration, error record, capability registry, the operand stack,
 * frame slots, call frames and exception handlers, and the interpreter entry point.
 *
 * Invariants while a program runs:
 *   - stack[0..sp) are live values (GC roots); the interpreter stores its cached stack pointer
 *     back into vm->sp before any operation that may allocate or raise;
 *   - frames[0..depth) are live; frame d's slots follow frame d-1's in slots[] (frame 0's start
 *     at slots[0]), pf->nslots of them (UNDEF until written); the slots of all live frames are
 *     GC roots;
 *   - handlers[0..nhandlers) are installed handlers, innermost last, their frame indices
 *     non-decreasing; each belongs to a frame and is dropped when that frame returns or is unwound;
 *   - stack_cap >= sp + max_height of the running function: checked (and grown) at CALL, so
 *     instructions inside a function never check for stack overflow;
 *   - stack_end, frames_end and slots_end are the limits CALL compares against: stack + stack_cap,
 *     frames + min(frames_cap, max_depth), slots + slots_cap (updated whenever those change).
 */
#ifndef NVM_VM_H
#define NVM_VM_H

#include <stdarg.h>

#include "nanovm.h"
#include "../isa/module.h"
#include "heap.h"

/* A function as the interpreter calls it (built by prep.c at load). */
typedef struct nvm_pfunc {
    const nvm_insn *code; /* prepared code (fused.h) */
    const nvm_func *fn;
    uint32_t nslots;
    uint32_t need; /* values a call needs above the caller's sp: max_height - consumed + 1 */
} nvm_pfunc;

/* A call frame. Its slot base and the stack index of its lowest value are not stored: the slots
 * follow the caller's, and RET knows its verified stack height (prep.c puts it in the operand). */
typedef struct nvm_frame {
    const nvm_pfunc *pf;
    const nvm_insn *ip; /* saved position: the instruction to resume at (callers), the current
                           one (innermost frame, whenever control leaves the interpreter) */
} nvm_frame;

typedef struct nvm_handler {
    uint32_t frame;     /* index of the owning frame */
    uint32_t sp;        /* operand stack height at ENTER_TRY */
    uint32_t target;    /* instruction index of the handler */
    uint32_t slot_base; /* index in slots[] of the owning frame's first slot */
} nvm_handler;

typedef struct nvm_capentry {
    char *name;
    size_t name_len;
    uint32_t argc; /* or NVM_VARIADIC */
    nvm_cap_fn fn;
    void *ud;
} nvm_capentry;

struct nvm_vm {
    nvm_config cfg;
    nvm_error err;
    nvm_heap heap;

    const nvm_module *mod;
    nvm_value *consts;    /* module string constants as arena strings (roots) */
    uint32_t nconsts;     /* constants created so far (consts[0..nconsts) are roots) */
    uint32_t nconsts_cap; /* allocated entries of consts */
    uint32_t *capbind;    /* module capability index -> registry index */
    uint8_t *capresults;  /* module capability index -> values its CAP_CALL pushes (0 or 1) */
    uint32_t ncapbind;    /* entries of capbind and capresults */
    nvm_pfunc *pfuncs;    /* function index -> prepared function (prep.c) */
    uint32_t npfuncs;     /* entries of pfuncs */
    nvm_insn *pcode_all;  /* one block holding every function's prepared code */
    size_t pcode_total;   /* instructions in pcode_all */

    nvm_capentry *caps;
    uint32_t ncaps;
    uint32_t caps_cap;

    nvm_value *stack;
    uint32_t sp;
    uint32_t stack_cap;
    const nvm_value *stack_end;

    nvm_value *slots;
    uint32_t slots_cap;
    const nvm_value *slots_end;

    nvm_frame *frames;
    uint32_t depth;
    uint32_t frames_cap;
    const nvm_frame *frames_end;

    nvm_handler *handlers;
    uint32_t nhandlers;
    uint32_t handlers_cap;

    int64_t gas_limit; /* < 0: unlimited */
    int64_t gas_used;
    int64_t gas_rest;  /* while running: gas not yet moved into the interpreter's countdown */
    int64_t gas_start; /* while running: the run's whole budget (INT64_MAX when unlimited) */
    bool running;
    /* A THROW whose handler belongs to a frame of a native tier: the value, until it is caught
     * (a GC root while pending). */
    bool thrown_pending;
    nvm_value thrown;
    /* native tiers: the gas countdown while a helper runs, and the status of a failed helper */
    int64_t jit_gas;
    nvm_status jit_status;
    const void *jit_pool; /* the running blob's constant pool */
    /* the native tiers' last successful map lookup (nrt.c): entries[jit_find_pos] of map
     * jit_find_map held a key equal to jit_find_key, and was the key jit_find_hit, when the
     * collector had run jit_find_gc times (a handle is not reused without a collection) */
    uint32_t jit_find_map;
    uint32_t jit_find_pos;
    nvm_value jit_find_key;
    nvm_value jit_find_hit;
    uint64_t jit_find_gc;
};

/* Raise a program-level error: fills vm->err (status, message) and returns `st`. The interpreter
 * turns NVM_E_PROGRAM and NVM_E_DENIED into a catchable throw of the message string; other
 * statuses end the run. */
nvm_status nvm_vm_raise(struct nvm_vm *vm, nvm_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
nvm_status nvm_vm_vraise(struct nvm_vm *vm, nvm_status st, const char *fmt, va_list ap);

/* Marks every root (called by the collector). */
void nvm_vm_mark_roots(struct nvm_vm *vm);

/* Sets up a run from the entry function (gas budget, countdown in *gas_left and vm->jit_gas,
 * frame 0 with its slots unwritten, the stack limits); shared by every tier's runner. */
nvm_status nvm_vm_start(struct nvm_vm *vm, int64_t *gas_left);
/* nvm_vm_run with another executor (a native tier): same set-up, error record and backtrace;
 * runner NULL is the interpreter. */
nvm_status nvm_vm_run_with(struct nvm_vm *vm, nvm_status (*runner)(struct nvm_vm *vm, void *ud),
                           void *ud);
/* Sets the stack limits CALL compares against from the capacities (interp.c). */
void nvm_vm_set_limits(struct nvm_vm *vm);

/* The interpreter (interp.c): runs vm->mod from its entry function. */
nvm_status nvm_interp_run(struct nvm_vm *vm);

/* Interpreter entry points for native tiers, which keep the interpreter's frames, operand stack
 * and slots. The innermost frame (vm->depth - 1) resumes at frames[depth - 1].ip with the
 * operand stack at vm->sp and its slots at vm->slots + slot_base; *gas_left is the countdown
 * (the rest in vm->gas_rest, the budget in vm->gas_start).
 *   NVM_INTERP_RUN: run until that frame returns (its result pushed on the caller's stack,
 *     vm->depth one less) or the program ends (*ended: HALT, or RET from frame 0). An error
 *     whose handler belongs to an older frame is returned (a THROW leaves its value in
 *     vm->thrown, thrown_pending set).
 *   NVM_INTERP_STEP: execute the one (unfused) instruction at ip and return with ip at the next
 *     one; never a jump, CALL, RET or HALT. Errors are returned without searching handlers (a
 *     THROW sets thrown_pending); gas is not charged (the caller did). */
enum { NVM_INTERP_RUN = 0, NVM_INTERP_STEP = 1 };
nvm_status nvm_interp_resume(struct nvm_vm *vm, int mode, uint32_t slot_base, int64_t *gas_left,
                             bool *ended);
/* CALL's slow path: depth limit, room on the operand stack, frames and slots (raises on
 * failure). */
nvm_status nvm_vm_call_space(struct nvm_vm *vm, const nvm_pfunc *pf, uint32_t spi,
                             uint32_t slot_base);
#define NVM_GAS_CHUNK 65536

#endif
