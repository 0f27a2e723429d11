/* prep.c - builds the VM's prepared functions (vm.h nvm_pfunc) and code (fused.h) when a module
 * is loaded: a copy of every function's code with dispatch ids in `pad` and superinstructions
 * chosen by a peephole pass that never fuses across a jump or handler target. The module itself
 * is never changed.
 *
 * Operands that differ from the module's code (the interpreter relies on them):
 *   - JMP, JZ, JNZ and the JZ/JNZ tails of superinstructions: `a` (or the tail operand) is the
 *     target relative to the instruction holding it, as an int32 (ENTER_TRY stays absolute);
 *   - RET: `a` is the verified stack height before it above the frame's lowest value
 *     (consumed + height), so the interpreter finds the frame's base without storing it;
 *   - CALL: `k.i` is the calling function's slot count (the callee's slots follow the caller's). */
#include <string.h>

#include "vm.h"
#include "fused.h"

/* Operator index of the opcodes that fuse, -1 for the others. */
enum {
    OPI_ADD,
    OPI_SUB,
    OPI_MUL,
    OPI_DIV,
    OPI_MOD,
    OPI_LT,
    OPI_LE,
    OPI_GT,
    OPI_GE,
    OPI_EQ,
    OPI_NE,
    OPI_N
};

static int op_index(uint8_t op)
{
    switch (op) {
    case NVM_OP_ADD: return OPI_ADD;
    case NVM_OP_SUB: return OPI_SUB;
    case NVM_OP_MUL: return OPI_MUL;
    case NVM_OP_DIV: return OPI_DIV;
    case NVM_OP_MOD: return OPI_MOD;
    case NVM_OP_LT: return OPI_LT;
    case NVM_OP_LE: return OPI_LE;
    case NVM_OP_GT: return OPI_GT;
    case NVM_OP_GE: return OPI_GE;
    case NVM_OP_EQ: return OPI_EQ;
    case NVM_OP_NE: return OPI_NE;
    default: return -1;
    }
}

/* (form, operator, tail) -> fused id; 0 where no such superinstruction exists. */
static const uint16_t fx_table[NVM_FXF_N][OPI_N][NVM_FXT_N] = {
#define FX_ENTRY(F, O, T) [NVM_FXF_##F][OPI_##O][NVM_FXT_##T] = NVM_FX_##F##_##O##_##T,
    NVM_FX_LIST(FX_ENTRY)
#undef FX_ENTRY
};

/* Tail of a sequence whose operator is at index t-1: the instruction at t when it can join. */
static int tail_at(const nvm_insn *in, const uint8_t *target, uint32_t n, uint32_t head, uint32_t t,
                   int opi, uint32_t *operand)
{
    if (t >= n || target[t])
        return NVM_FXT_P;
    bool cmp = opi >= OPI_LT;
    if (!cmp && in[t].op == NVM_OP_STORE) {
        *operand = in[t].a;
        return NVM_FXT_S;
    }
    if (!cmp && in[t].op == NVM_OP_ADD)
        return NVM_FXT_XADD;
    if (!cmp && in[t].op == NVM_OP_SUB)
        return NVM_FXT_XSUB;
    if (!cmp && in[t].op == NVM_OP_MUL)
        return NVM_FXT_XMUL;
    if (cmp && (in[t].op == NVM_OP_JZ || in[t].op == NVM_OP_JNZ)) {
        *operand = in[t].a - head; /* relative to the superinstruction (wraps like int32) */
        return in[t].op == NVM_OP_JZ ? NVM_FXT_JZ : NVM_FXT_JNZ;
    }
    return NVM_FXT_P;
}

/* Chooses the superinstruction starting at i (out[i] is a copy of in[i]); returns the number of
 * original instructions it covers (1 when nothing fuses). */
static uint32_t fuse_at(const nvm_insn *in, nvm_insn *out, const uint8_t *target, uint32_t n,
                        uint32_t i)
{
    /* `free(j)`: j exists and may be the interior of a sequence. */
#define FREE(j) ((j) < n && !target[(j)])
    const nvm_insn *c = &in[i];
    int form = -1, opi = -1;
    uint32_t len = 0, operand = 0, tail = NVM_FXT_P;
    uint32_t lo = 0;

    if (c->op == NVM_OP_LOAD && FREE(i + 1)) {
        const nvm_insn *d = &in[i + 1];
        const nvm_insn *e = FREE(i + 2) ? &in[i + 2] : NULL;
        bool ev = e != NULL && (e->op == NVM_OP_LOAD || e->op == NVM_OP_PUSH_BOOL);
        if (d->op == NVM_OP_LOAD && ev && FREE(i + 3) && in[i + 3].op == NVM_OP_ARR_SET &&
            FREE(i + 4) && in[i + 4].op == NVM_OP_POP) {
            out[i].pad = e->op == NVM_OP_LOAD ? NVM_FX_ASETL : NVM_FX_ASETB;
            out[i].k.i = nvm_fx_pack(d->a, e->op == NVM_OP_LOAD ? e->a : e->b);
            return 5;
        }
        if ((d->op == NVM_OP_LOAD || d->op == NVM_OP_PUSH_BOOL) && e != NULL &&
            e->op == NVM_OP_ARR_PUSH && FREE(i + 3) && in[i + 3].op == NVM_OP_POP) {
            out[i].pad = d->op == NVM_OP_LOAD ? NVM_FX_APUSHL : NVM_FX_APUSHB;
            out[i].k.i = nvm_fx_pack(d->op == NVM_OP_LOAD ? d->a : d->b, 0);
            return 4;
        }
        if (d->op == NVM_OP_GET_FIELD) {
            out[i].pad = NVM_FX_LGETF;
            return 2;
        }
        if (d->op == NVM_OP_LOAD && e != NULL && e->op == NVM_OP_ARR_GET && FREE(i + 3) &&
            in[i + 3].op == NVM_OP_LOAD && FREE(i + 4) && FREE(i + 5) && d->a < 65536 &&
            in[i + 3].a < 65536 && (in[i + 5].op == NVM_OP_JZ || in[i + 5].op == NVM_OP_JNZ)) {
            bool jz = in[i + 5].op == NVM_OP_JZ;
            uint16_t id = 0;
            switch (in[i + 4].op) {
#define FX_GCASE(F, O, T)                                                                          \
    case NVM_OP_##O: id = jz ? NVM_FX_G_##O##_JZ : NVM_FX_G_##O##_JNZ; break;
                FX_GCASE(G, LT, JZ)
                FX_GCASE(G, LE, JZ)
                FX_GCASE(G, GT, JZ)
                FX_GCASE(G, GE, JZ)
                FX_GCASE(G, EQ, JZ)
                FX_GCASE(G, NE, JZ)
#undef FX_GCASE
            default: break;
            }
            if (id != 0) {
                out[i].pad = id;
                out[i].k.i = nvm_fx_pack(d->a | in[i + 3].a << 16, in[i + 5].a - i);
                return 6;
            }
        }
        if (d->op == NVM_OP_LOAD && FREE(i + 2) && (opi = op_index(in[i + 2].op)) >= 0) {
            form = NVM_FXF_LL;
            lo = d->a;
            len = 3;
        } else if (d->op == NVM_OP_LOAD && FREE(i + 2) && in[i + 2].op == NVM_OP_ARR_GET) {
            out[i].pad = NVM_FX_LLGET;
            out[i].k.i = nvm_fx_pack(d->a, 0);
            return 3;
        } else if (d->op == NVM_OP_PUSH && d->k.i >= INT32_MIN && d->k.i <= INT32_MAX &&
                   FREE(i + 2) && (opi = op_index(in[i + 2].op)) >= 0) {
            form = NVM_FXF_LK;
            lo = (uint32_t)(int32_t)d->k.i;
            len = 3;
        } else if ((opi = op_index(d->op)) >= 0) {
            form = NVM_FXF_L;
            len = 2;
        } else if (d->op == NVM_OP_LOAD && FREE(i + 2) && in[i + 2].op == NVM_OP_LOAD &&
                   FREE(i + 3) && op_index(in[i + 3].op) >= 0) {
            return 1; /* LOAD a; then LOAD b; LOAD c; OP fuses at i + 1 */
        } else if (d->op == NVM_OP_LOAD || d->op == NVM_OP_STORE) {
            out[i].pad = d->op == NVM_OP_LOAD ? NVM_FX_PUSH2 : NVM_FX_MOV;
            out[i].k.i = nvm_fx_pack(d->a, 0);
            return 2;
        }
    } else if ((c->op == NVM_OP_PUSH || c->op == NVM_OP_PUSH_F64) && FREE(i + 1) &&
               (opi = op_index(in[i + 1].op)) >= 0) {
        form = c->op == NVM_OP_PUSH ? NVM_FXF_K : NVM_FXF_F;
        len = 2;
    } else if ((opi = op_index(c->op)) >= 0) {
        form = NVM_FXF_S;
        len = 1;
    } else if ((c->op == NVM_OP_ARR_SET || c->op == NVM_OP_ARR_PUSH) && FREE(i + 1) &&
               in[i + 1].op == NVM_OP_POP) {
        out[i].pad = c->op == NVM_OP_ARR_SET ? NVM_FX_SETPOP : NVM_FX_PUSHPOP;
        return 2;
    } else if (c->op == NVM_OP_SET_FIELD && FREE(i + 1) && in[i + 1].op == NVM_OP_POP) {
        out[i].pad = NVM_FX_SETFPOP;
        return 2;
    } else if (c->op == NVM_OP_STORE && FREE(i + 1) && in[i + 1].op == NVM_OP_LOAD &&
               in[i + 1].a == c->a) {
        out[i].pad = NVM_FX_TEE;
        return 2;
    }
    if (form < 0 || opi < 0)
        return 1;
    tail = (uint32_t)tail_at(in, target, n, i, i + len, opi, &operand);
    if (form == NVM_FXF_S && (tail == NVM_FXT_P || tail >= NVM_FXT_XADD))
        return 1;
    uint16_t id = fx_table[form][opi][tail];
    if (id == 0 && tail >= NVM_FXT_XADD) { /* X tails exist for form LL only */
        tail = NVM_FXT_P;
        id = fx_table[form][opi][tail];
    }
    if (id == 0)
        return 1;
    out[i].pad = id;
    switch (form) {
    case NVM_FXF_LL:
    case NVM_FXF_LK: out[i].k.i = nvm_fx_pack(lo, operand); break;
    case NVM_FXF_L: out[i].k.i = nvm_fx_pack(0, operand); break;
    default: out[i].a = operand; break;
    }
    return len + (tail != NVM_FXT_P ? 1 : 0);
#undef FREE
}

static void prepare(const nvm_func *fn, nvm_insn *out, uint8_t *target)
{
    uint32_t n = fn->ninsn;
    memset(target, 0, n + 1);
    for (uint32_t i = 0; i < n; i++) {
        out[i] = fn->code[i];
        out[i].pad = fn->code[i].op;
        uint8_t op = fn->code[i].op;
        if ((op == NVM_OP_JMP || op == NVM_OP_JZ || op == NVM_OP_JNZ || op == NVM_OP_ENTER_TRY) &&
            fn->code[i].a <= n)
            target[fn->code[i].a] = 1;
    }
    for (uint32_t i = 0; i < n;)
        i += fuse_at(fn->code, out, target, n, i);
    for (uint32_t i = 0; i < n; i++) {
        switch (out[i].op) {
        case NVM_OP_JMP:
        case NVM_OP_JZ:
        case NVM_OP_JNZ: out[i].a = fn->code[i].a - i; break;
        case NVM_OP_RET:
            out[i].a = fn->heights[i] == INT32_MIN ? 1 : fn->consumed + (uint32_t)fn->heights[i];
            break;
        case NVM_OP_CALL: out[i].k.i = fn->nslots; break;
        default: break;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (out[i].pad != NVM_OP_JMP || fn->code[i].a >= n)
            continue;
        switch (out[fn->code[i].a].pad) {
#define FX_JCASE(F, O, T)                                                                          \
    case NVM_FX_##F##_##O##_##T: out[i].pad = NVM_FX_J_##F##_##O##_##T; break;
            NVM_FX_JLIST(FX_JCASE)
#undef FX_JCASE
        default: break;
        }
    }
}

nvm_status nvm_prep_build(nvm_vm *vm, const nvm_module *m)
{
    nvm_status st = NVM_OK;
    void *p = NULL;
    uint8_t *target = NULL;
    size_t total = 0, maxn = 0;

    for (uint32_t f = 0; f < m->nfuncs; f++) {
        total += m->funcs[f].ninsn;
        if (m->funcs[f].ninsn > maxn)
            maxn = m->funcs[f].ninsn;
    }
    if (m->nfuncs == 0)
        return NVM_OK;
    st = nvm_mem_alloc(vm, sizeof(nvm_pfunc) * m->nfuncs, false, &p);
    if (st != NVM_OK)
        goto fail;
    vm->pfuncs = p;
    vm->npfuncs = m->nfuncs;
    if (total > 0) {
        p = NULL;
        st = nvm_mem_alloc(vm, sizeof(nvm_insn) * total, false, &p);
        if (st != NVM_OK)
            goto fail;
        vm->pcode_all = p;
        vm->pcode_total = total;
    }
    p = NULL;
    st = nvm_mem_alloc(vm, maxn + 1, false, &p);
    if (st != NVM_OK)
        goto fail;
    target = p;
    size_t at = 0;
    for (uint32_t f = 0; f < m->nfuncs; f++) {
        const nvm_func *fn = &m->funcs[f];
        nvm_pfunc *pf = &vm->pfuncs[f];
        pf->code = vm->pcode_all + at;
        pf->fn = fn;
        pf->nslots = fn->nslots;
        pf->need = fn->max_height - fn->consumed + 1;
        prepare(fn, vm->pcode_all + at, target);
        at += m->funcs[f].ninsn;
    }
    nvm_mem_free(vm, target, maxn + 1);
    return NVM_OK;
fail:
    nvm_prep_free(vm);
    return st;
}

void nvm_prep_free(nvm_vm *vm)
{
    if (vm->pcode_all != NULL)
        nvm_mem_free(vm, vm->pcode_all, sizeof(nvm_insn) * vm->pcode_total);
    if (vm->pfuncs != NULL)
        nvm_mem_free(vm, vm->pfuncs, sizeof(nvm_pfunc) * vm->npfuncs);
    vm->pcode_all = NULL;
    vm->pcode_total = 0;
    vm->pfuncs = NULL;
    vm->npfuncs = 0;
}
