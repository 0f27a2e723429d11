/* prep.c - builds the VM's prepared code (fused.h) when a module is loaded: a copy of every
 * function's code with dispatch ids in `pad` and superinstructions chosen by a peephole pass that
 * never fuses across a jump or handler target. The module itself is never changed. */
#include <string.h>

#include "vm.h"
#include "fused.h"

/* Operator index of the opcodes that fuse, -1 for the others. */
enum { OPI_ADD, OPI_SUB, OPI_MUL, OPI_DIV, OPI_MOD, OPI_LT, OPI_LE, OPI_GT, OPI_GE, OPI_EQ,
       OPI_NE, OPI_N };

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
static int tail_at(const nvm_insn *in, const uint8_t *target, uint32_t n, uint32_t t, int opi,
                   uint32_t *operand)
{
    if (t >= n || target[t])
        return NVM_FXT_P;
    bool cmp = opi >= OPI_LT;
    if (!cmp && in[t].op == NVM_OP_STORE) {
        *operand = in[t].a;
        return NVM_FXT_S;
    }
    if (cmp && (in[t].op == NVM_OP_JZ || in[t].op == NVM_OP_JNZ)) {
        *operand = in[t].a;
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
        if (d->op == NVM_OP_LOAD && FREE(i + 2) && (opi = op_index(in[i + 2].op)) >= 0) {
            form = NVM_FXF_LL;
            lo = d->a;
            len = 3;
        } else if (d->op == NVM_OP_LOAD && FREE(i + 2) && in[i + 2].op == NVM_OP_ARR_GET) {
            out[i].pad = NVM_FX_LLGET;
            out[i].k.i = nvm_fx_pack(d->a, 0);
            return 3;
        } else if (d->op == NVM_OP_PUSH && d->k.i >= INT32_MIN && d->k.i <= INT32_MAX && FREE(i + 2) &&
                   (opi = op_index(in[i + 2].op)) >= 0) {
            form = NVM_FXF_LK;
            lo = (uint32_t)(int32_t)d->k.i;
            len = 3;
        } else if ((opi = op_index(d->op)) >= 0) {
            form = NVM_FXF_L;
            len = 2;
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
    } else if (c->op == NVM_OP_STORE && FREE(i + 1) && in[i + 1].op == NVM_OP_LOAD &&
               in[i + 1].a == c->a) {
        out[i].pad = NVM_FX_TEE;
        return 2;
    }
    if (form < 0 || opi < 0)
        return 1;
    tail = (uint32_t)tail_at(in, target, n, i + len, opi, &operand);
    if (form == NVM_FXF_S && tail == NVM_FXT_P)
        return 1;
    uint16_t id = fx_table[form][opi][tail];
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
    st = nvm_mem_alloc(vm, sizeof(nvm_insn *) * m->nfuncs, false, &p);
    if (st != NVM_OK)
        goto fail;
    vm->pcode = p;
    vm->npcode = m->nfuncs;
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
        vm->pcode[f] = vm->pcode_all + at;
        prepare(&m->funcs[f], vm->pcode_all + at, target);
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
    if (vm->pcode != NULL)
        nvm_mem_free(vm, vm->pcode, sizeof(nvm_insn *) * vm->npcode);
    vm->pcode_all = NULL;
    vm->pcode_total = 0;
    vm->pcode = NULL;
    vm->npcode = 0;
}
