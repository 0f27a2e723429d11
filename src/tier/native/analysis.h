/* analysis.h - what every native tier (JIT, AOT) knows about a verified function before it
 * compiles it: basic blocks and a forward type analysis to a fixed point (analysis.c).
 *
 * A type mask (tmask) is the set of value types a stack position or slot may hold; UNDEF is a
 * slot never written. The analysis is sound: whenever an instruction runs, each operand's type is
 * in its mask (handler entries assume nothing).
 */
#ifndef NVM_ANALYSIS_H
#define NVM_ANALYSIS_H

#include <stdbool.h>
#include <stdint.h>

#include "nanovm.h"
#include "../../isa/module.h"

typedef uint8_t tmask;
#define TM(t) ((tmask)(1u << (t)))
#define TM_NULL TM(NVM_T_NULL)
#define TM_BOOL TM(NVM_T_BOOL)
#define TM_INT TM(NVM_T_INT)
#define TM_FLOAT TM(NVM_T_FLOAT)
#define TM_STR TM(NVM_T_STR)
#define TM_ARR TM(NVM_T_ARRAY)
#define TM_MAP TM(NVM_T_MAP)
#define TM_UNDEF TM(NVM_T_UNDEF)
#define TM_ANY ((tmask)0x7F)
#define TM_NUM ((tmask)(TM_INT | TM_FLOAT))

int nvm_tm_single(tmask m);

typedef struct nvm_fninfo {
    uint32_t *blk_of; /* instruction -> block index, UINT32_MAX when unreachable */
    uint32_t *bstart; /* block -> first instruction */
    uint32_t *bend;   /* block -> end (exclusive) */
    uint32_t nblk;
    tmask *state; /* block -> W + S masks at its entry (stack positions, then slots) */
    bool *seen;   /* block -> state valid */
} nvm_fninfo;

/* Result mask of ADD (add) or SUB/MUL/DIV/MOD when it does not raise. */
tmask nvm_arith_mask(tmask a, tmask b, bool add);
tmask nvm_cast_mask(int t);
/* The type effect of instruction i on (stk[0..*H), sl): stack positions count from the
 * function's lowest value (entry height - consumed). */
void nvm_xfer(const nvm_module *m, const nvm_func *fn, uint32_t i, tmask *stk, uint32_t *H,
              tmask *sl);
bool nvm_op_is_branch(uint8_t op);
bool nvm_op_ends_block(uint8_t op);
/* Blocks and types; extra: more leaders; spec: sites whose result is assumed (1 float, 2 int);
 * argspec: argument types assumed on entry (speculative version, guarded at entry).
 * false: over NVM_NATIVE_MAX_STATE, out of memory, or a stack effect the model does not follow. */
bool nvm_analyse(const nvm_module *m, const nvm_func *fn, nvm_fninfo *f, const uint8_t *extra,
                 const uint8_t *spec, const tmask *argspec);
void nvm_fninfo_free(nvm_fninfo *f);
/* Speculation sites: in a function that computes with floats (float constants or math),
 * arithmetic on operands that may be floats is assumed to give a float (site 1); elsewhere an
 * array element read is assumed to be an int (site 2), unless only its truth is used (a JZ, JNZ
 * or NOT next: the element of a bool array, say). */
bool nvm_spec_sites(const nvm_module *m, const nvm_func *fn, const nvm_fninfo *f, uint8_t *site,
                    tmask *scratch);

/* Field speculation (the AOT tier): a GET_FIELD whose value is an operand of a site-1
 * arithmetic instruction of the same block is assumed to read a float (site 3). Call after
 * nvm_spec_sites; returns whether any. */
bool nvm_spec_fields(const nvm_module *m, const nvm_func *fn, const nvm_fninfo *f, uint8_t *site,
                     tmask *scratch);

/* Argument speculation: the type each argument (stack position from the lowest) is assumed to
 * have on entry (0: none), from how the slots it is stored into are used next to constants. */
bool nvm_spec_args(const nvm_func *fn, tmask *argspec);

#define NVM_NATIVE_MAX_STATE (64u << 20)

#endif
