/* fused.h - the VM's prepared code: superinstructions built at nvm_vm_load (prep.c) and run by the
 * interpreter (interp.c).
 *
 * Prepared code is a per-VM copy of each verified function's code, index for index, in which
 * `pad` holds the dispatch id: the opcode byte for an ordinary instruction, or a fused id
 * (>= NVM_FX_FIRST) for an instruction that starts a fused sequence of k original instructions.
 * Invariants of a fused instruction at index i:
 *   - `op` and the operand fields the first original instruction uses (`a` of LOAD, `k` of
 *     PUSH/PUSH_F64) are those of code[i], so running the handler of `op` executes exactly the
 *     first original instruction (the fallback for slow paths and for a gas limit that falls
 *     inside the sequence);
 *   - indices i+1 .. i+k-1 hold the original instructions unchanged and none of them is a jump
 *     or handler target;
 *   - the other operands live in the fields the form names:
 *       form LL  LOAD a; LOAD b; OP [tail]       a = a, k.lo = b, k.hi = tail operand
 *       form LK  LOAD a; PUSH n; OP [tail]       a = a, k.lo = n (fits int32), k.hi = tail
 *       form L   LOAD b; OP [tail]  (x = top)    a = b, k.hi = tail
 *       form K   PUSH n; OP [tail]  (x = top)    k = n, a = tail
 *       form F   PUSH_F64 d; OP [tail]           k = d, a = tail
 *       form S   OP tail            (x y = top)  a = tail
 *     tails: P (push the result), S (STORE c: tail operand c), JZ/JNZ (tail operand: the
 *     target relative to index i, as an int32), XADD/XSUB/XMUL (form LL only: ADD, SUB or MUL of
 *     the value below and the result, i.e. top = top OP2 result);
 *   - J_<form>_<op>_<tail> (NVM_FX_JLIST) at a JMP: the JMP is unchanged; its target starts the
 *     superinstruction <form>_<op>_<tail>, which the handler runs from there;
 *   - PUSH2 (LOAD a; LOAD b: a, k.lo = b), MOV (LOAD a; STORE b: a, k.lo = b), TEE
 *     (STORE a; LOAD a: a), LLGET (LOAD a; LOAD b; ARR_GET: a, k.lo = b), SETPOP (ARR_SET; POP),
 *     PUSHPOP (ARR_PUSH; POP), ASETL / ASETB (LOAD a; LOAD b; LOAD c / PUSH_BOOL c; ARR_SET; POP:
 *     a, k.lo = b, k.hi = c) and APUSHL / APUSHB (LOAD a; LOAD c / PUSH_BOOL c; ARR_PUSH; POP:
 *     a, k.lo = c), LGETF (LOAD a; GET_FIELD: a; the GET_FIELD
 *     keeps its key and inline cache) and SETFPOP (SET_FIELD; POP).
 */
#ifndef NVM_FUSED_H
#define NVM_FUSED_H

/* Arithmetic: result stored or pushed. Comparisons: result pushed or branched on. */
#define NVM_FX_ARITH(FX, O)                                                                        \
    FX(LL, O, P)                                                                                   \
    FX(LL, O, S)                                                                                   \
    FX(LL, O, XADD) FX(LL, O, XSUB) FX(LL, O, XMUL) FX(LK, O, P) FX(LK, O, S) FX(L, O, P)          \
        FX(L, O, S) FX(K, O, P) FX(K, O, S) FX(F, O, P) FX(F, O, S) FX(S, O, S)
#define NVM_FX_CMP(FX, O)                                                                          \
    FX(LL, O, P)                                                                                   \
    FX(LL, O, JZ)                                                                                  \
    FX(LL, O, JNZ) FX(LK, O, P) FX(LK, O, JZ) FX(LK, O, JNZ) FX(L, O, P) FX(L, O, JZ)              \
        FX(L, O, JNZ) FX(K, O, P) FX(K, O, JZ) FX(K, O, JNZ) FX(F, O, P) FX(F, O, JZ)              \
            FX(F, O, JNZ) FX(S, O, JZ) FX(S, O, JNZ)
#define NVM_FX_LIST(FX)                                                                            \
    NVM_FX_ARITH(FX, ADD)                                                                          \
    NVM_FX_ARITH(FX, SUB)                                                                          \
    NVM_FX_ARITH(FX, MUL) NVM_FX_ARITH(FX, DIV) NVM_FX_ARITH(FX, MOD) NVM_FX_CMP(FX, LT)           \
        NVM_FX_CMP(FX, LE) NVM_FX_CMP(FX, GT) NVM_FX_CMP(FX, GE) NVM_FX_CMP(FX, EQ)                \
            NVM_FX_CMP(FX, NE)

/* JMP whose target starts a compare-and-branch superinstruction of form LL or LK: one dispatch
 * runs the jump and the target's sequence (its operands are read from the target). */
#define NVM_FX_JCMP1(FX, O) FX(LL, O, JZ) FX(LL, O, JNZ) FX(LK, O, JZ) FX(LK, O, JNZ)
#define NVM_FX_JLIST(FX)                                                                           \
    NVM_FX_JCMP1(FX, LT)                                                                           \
    NVM_FX_JCMP1(FX, LE)                                                                           \
    NVM_FX_JCMP1(FX, GT) NVM_FX_JCMP1(FX, GE) NVM_FX_JCMP1(FX, EQ) NVM_FX_JCMP1(FX, NE)

/* LOAD a; LOAD b; ARR_GET; LOAD c; <cmp>; JZ/JNZ: a, k.lo = b | c << 16 (b, c < 65536),
 * k.hi = the target relative to the superinstruction. */
#define NVM_FX_GLIST(FX)                                                                           \
    FX(G, LT, JZ)                                                                                  \
    FX(G, LT, JNZ)                                                                                 \
    FX(G, LE, JZ) FX(G, LE, JNZ) FX(G, GT, JZ) FX(G, GT, JNZ) FX(G, GE, JZ) FX(G, GE, JNZ)         \
        FX(G, EQ, JZ) FX(G, EQ, JNZ) FX(G, NE, JZ) FX(G, NE, JNZ)

enum nvm_fx_id {
    NVM_FX_BEFORE_FIRST = 255,
#define NVM_FX_ENUM(F, O, T) NVM_FX_##F##_##O##_##T,
    NVM_FX_LIST(NVM_FX_ENUM)
#define NVM_FX_JENUM(F, O, T) NVM_FX_J_##F##_##O##_##T,
        NVM_FX_JLIST(NVM_FX_JENUM)
#undef NVM_FX_JENUM
            NVM_FX_GLIST(NVM_FX_ENUM)
#undef NVM_FX_ENUM
                NVM_FX_PUSH2,
    NVM_FX_MOV,
    NVM_FX_TEE,
    NVM_FX_LLGET,
    NVM_FX_SETPOP,
    NVM_FX_PUSHPOP,
    NVM_FX_ASETL,
    NVM_FX_ASETB,
    NVM_FX_APUSHL,
    NVM_FX_APUSHB,
    NVM_FX_LGETF,
    NVM_FX_SETFPOP,
    NVM_FX_END
};
#define NVM_FX_FIRST 256

/* Forms and tails, as used by prep.c's lookup table. */
enum nvm_fx_form { NVM_FXF_LL, NVM_FXF_LK, NVM_FXF_L, NVM_FXF_K, NVM_FXF_F, NVM_FXF_S, NVM_FXF_N };
enum nvm_fx_tail {
    NVM_FXT_P,
    NVM_FXT_S,
    NVM_FXT_JZ,
    NVM_FXT_JNZ,
    NVM_FXT_XADD,
    NVM_FXT_XSUB,
    NVM_FXT_XMUL,
    NVM_FXT_N
};

static inline uint32_t nvm_fx_lo(int64_t k)
{
    return (uint32_t)(uint64_t)k;
}
static inline uint32_t nvm_fx_hi(int64_t k)
{
    return (uint32_t)((uint64_t)k >> 32);
}
static inline int64_t nvm_fx_pack(uint32_t lo, uint32_t hi)
{
    return (int64_t)(((uint64_t)hi << 32) | lo);
}

struct nvm_vm;
struct nvm_module;
/* Builds vm->pcode for every function of m (called by nvm_vm_load); frees it. */
nvm_status nvm_prep_build(struct nvm_vm *vm, const struct nvm_module *m);
void nvm_prep_free(struct nvm_vm *vm);

#endif
