/* analysis.c - blocks and the type analysis of a verified function (analysis.h), shared by the
 * native tiers. */
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

int nvm_tm_single(tmask m)
{
    for (int t = 0; t < 7; t++)
        if (m == TM(t))
            return t;
    return -1;
}

/* ---- analysis ---- */
/* Result of ADD (add) or SUB/MUL/DIV/MOD when it does not raise: int op int is an int, a float
 * with a number is a float, a string on either side of ADD concatenates. */
tmask nvm_arith_mask(tmask a, tmask b, bool add)
{
    if (a == TM_INT && b == TM_INT)
        return TM_INT;
    if (!add && (a == TM_FLOAT || b == TM_FLOAT))
        return TM_FLOAT;
    if (add && (a | b) == ((a | b) & TM_NUM) && (a == TM_FLOAT || b == TM_FLOAT))
        return TM_FLOAT;
    if (add && ((a | b) & TM_STR))
        return (tmask)(TM_NUM | TM_STR);
    if (add && (a == TM_FLOAT || b == TM_FLOAT))
        return (tmask)(TM_FLOAT | TM_STR);
    return TM_NUM;
}

tmask nvm_cast_mask(int t)
{
    switch (t) {
    case NVM_CAST_INT: return TM_INT;
    case NVM_CAST_FLOAT: return TM_FLOAT;
    case NVM_CAST_STR: return TM_STR;
    default: return TM_BOOL;
    }
}

/* The type effect of instruction i on (stk[0..*H), sl). */
void nvm_xfer(const nvm_module *m, const nvm_func *fn, uint32_t i, tmask *stk, uint32_t *H,
              tmask *sl)
{
    const nvm_insn *in = &fn->code[i];
    uint32_t h = *H;
    tmask a = h >= 2 ? stk[h - 2] : 0, b = h >= 1 ? stk[h - 1] : 0;
    switch (in->op) {
    case NVM_OP_NOP:
    case NVM_OP_JMP:
    case NVM_OP_ENTER_TRY:
    case NVM_OP_EXIT_TRY:
    case NVM_OP_RET:
    case NVM_OP_HALT:
    case NVM_OP_THROW: break;
    case NVM_OP_PUSH: stk[h++] = TM_INT; break;
    case NVM_OP_PUSH_F64: stk[h++] = TM_FLOAT; break;
    case NVM_OP_PUSH_STR: stk[h++] = TM_STR; break;
    case NVM_OP_PUSH_BOOL: stk[h++] = TM_BOOL; break;
    case NVM_OP_PUSH_NULL: stk[h++] = TM_NULL; break;
    case NVM_OP_POP: h--; break;
    case NVM_OP_DUP:
        stk[h] = b;
        h++;
        break;
    case NVM_OP_SWAP:
        stk[h - 2] = b;
        stk[h - 1] = a;
        break;
    case NVM_OP_ROT: {
        tmask t = stk[h - 3];
        stk[h - 3] = a;
        stk[h - 2] = b;
        stk[h - 1] = t;
        break;
    }
    case NVM_OP_PICK:
        stk[h] = stk[h - 1 - in->a];
        h++;
        break;
    case NVM_OP_ROLL: {
        tmask t = stk[h - 1 - in->a];
        memmove(stk + h - 1 - in->a, stk + h - in->a, in->a);
        stk[h - 1] = t;
        break;
    }
    case NVM_OP_LOAD: {
        tmask v = sl[in->a] & TM_ANY;
        stk[h++] = v != 0 ? v : TM_ANY;
        break;
    }
    case NVM_OP_STORE: sl[in->a] = stk[--h]; break;
    case NVM_OP_ADD:
        h--;
        stk[h - 1] = nvm_arith_mask(a, b, true);
        break;
    case NVM_OP_SUB:
    case NVM_OP_MUL:
    case NVM_OP_DIV:
    case NVM_OP_MOD:
        h--;
        stk[h - 1] = nvm_arith_mask(a, b, false);
        break;
    case NVM_OP_NEG: stk[h - 1] = (b == TM_INT || b == TM_FLOAT) ? b : TM_NUM; break;
    case NVM_OP_EQ:
    case NVM_OP_NE:
    case NVM_OP_LT:
    case NVM_OP_LE:
    case NVM_OP_GT:
    case NVM_OP_GE:
    case NVM_OP_AND:
    case NVM_OP_OR:
    case NVM_OP_STR_CONTAINS:
    case NVM_OP_STR_STARTS_WITH:
    case NVM_OP_STR_ENDS_WITH:
    case NVM_OP_MAP_HAS:
        h--;
        stk[h - 1] = TM_BOOL;
        break;
    case NVM_OP_NOT: stk[h - 1] = TM_BOOL; break;
    case NVM_OP_BITAND:
    case NVM_OP_BITOR:
    case NVM_OP_BITXOR:
    case NVM_OP_SHL:
    case NVM_OP_SHR:
    case NVM_OP_STR_FIND:
    case NVM_OP_STR_ORD:
        h--;
        stk[h - 1] = TM_INT;
        break;
    case NVM_OP_BITNOT:
    case NVM_OP_ARR_LEN:
    case NVM_OP_LEN: stk[h - 1] = TM_INT; break;
    case NVM_OP_JZ:
    case NVM_OP_JNZ: h--; break;
    case NVM_OP_CALL: {
        const nvm_func *cf = &m->funcs[in->a];
        h -= cf->consumed;
        if (cf->returns)
            stk[h++] = TM_ANY;
        break;
    }
    case NVM_OP_CAP_CALL: {
        uint32_t after = (uint32_t)(fn->heights[i + 1] + (int32_t)fn->consumed);
        h -= in->b;
        if (after > h)
            stk[h++] = TM_ANY;
        break;
    }
    case NVM_OP_TYPEOF: stk[h - 1] = TM_STR; break;
    case NVM_OP_CAST: stk[h - 1] = nvm_cast_mask(in->b); break;
    case NVM_OP_NEW_ARRAY:
        h -= in->a;
        stk[h++] = TM_ARR;
        break;
    case NVM_OP_ARR_GET:
    case NVM_OP_MAP_GET:
        h--;
        stk[h - 1] = TM_ANY;
        break;
    case NVM_OP_ARR_SET:
        h -= 2;
        stk[h - 1] = TM_ARR;
        break;
    case NVM_OP_ARR_PUSH:
    case NVM_OP_MAKE_RANGE:
    case NVM_OP_STR_SPLIT:
        h--;
        stk[h - 1] = TM_ARR;
        break;
    case NVM_OP_ARR_POP:
    case NVM_OP_GET_FIELD: stk[h - 1] = TM_ANY; break;
    case NVM_OP_NEW_OBJ: stk[h++] = TM_MAP; break;
    case NVM_OP_SET_FIELD:
    case NVM_OP_MAP_DEL:
        h--;
        stk[h - 1] = TM_MAP;
        break;
    case NVM_OP_MAP_SET:
        h -= 2;
        stk[h - 1] = TM_MAP;
        break;
    case NVM_OP_MAP_KEYS: stk[h - 1] = TM_ARR; break;
    case NVM_OP_STR_REPLACE:
    case NVM_OP_STR_SUB:
        h -= 2;
        stk[h - 1] = TM_STR;
        break;
    case NVM_OP_STR_JOIN:
    case NVM_OP_STR_FMT_FIXED:
        h--;
        stk[h - 1] = TM_STR;
        break;
    case NVM_OP_STR_TO_UPPER:
    case NVM_OP_STR_TO_LOWER:
    case NVM_OP_STR_TRIM:
    case NVM_OP_STR_CHR: stk[h - 1] = TM_STR; break;
    case NVM_OP_MATH_POW:
        h--;
        stk[h - 1] = TM_FLOAT;
        break;
    default: /* one-operand math */ stk[h - 1] = TM_FLOAT; break;
    }
    *H = h;
}

bool nvm_op_is_branch(uint8_t op)
{
    return op == NVM_OP_JMP || op == NVM_OP_JZ || op == NVM_OP_JNZ;
}
bool nvm_op_ends_block(uint8_t op)
{
    return nvm_op_is_branch(op) || op == NVM_OP_CALL || op == NVM_OP_RET || op == NVM_OP_HALT ||
           op == NVM_OP_THROW;
}

void nvm_fninfo_free(nvm_fninfo *f)
{
    free(f->blk_of);
    free(f->bstart);
    free(f->bend);
    free(f->state);
    free(f->seen);
}

/* Blocks and the type analysis. false: the function is over the bounds (or out of memory). */
/* extra: more leaders (the speculation sites, in the generic version of a function with a
 * speculative one); spec: sites whose result is assumed to be a float (speculative version). */
/* Joins the state `from` (NULL: a handler entry, which assumes nothing) into the block starting at
 * instruction `to`, queueing it when its state grew. */
static void flow(nvm_fninfo *f, uint32_t to, const tmask *from, uint32_t n, uint32_t W,
                 bool *queued, uint32_t *work, uint32_t *nw)
{
    uint32_t tb = f->blk_of[to];
    if (tb == UINT32_MAX)
        return;
    tmask *ts = f->state + (size_t)tb * n;
    bool changed = !f->seen[tb];
    for (uint32_t q = 0; q < n; q++) {
        tmask nm =
            from != NULL ? (tmask)(ts[q] | from[q]) : (q < W ? TM_ANY : (tmask)(TM_ANY | TM_UNDEF));
        changed |= nm != ts[q];
        ts[q] = nm;
    }
    f->seen[tb] = true;
    if (changed && !queued[tb]) {
        queued[tb] = true;
        work[(*nw)++] = tb;
    }
}

bool nvm_analyse(const nvm_module *m, const nvm_func *fn, nvm_fninfo *f, const uint8_t *extra,
                 const uint8_t *spec, const tmask *argspec)
{
    uint32_t n = fn->ninsn, W = fn->max_height + 1, S = fn->nslots;
    memset(f, 0, sizeof *f);
    bool *lead = calloc(n + 1, 1);
    f->blk_of = malloc(sizeof(uint32_t) * (n + 1));
    if (lead == NULL || f->blk_of == NULL)
        goto fail;
    lead[0] = true;
    for (uint32_t i = 0; i < n; i++) {
        const nvm_insn *in = &fn->code[i];
        if (extra != NULL && extra[i])
            lead[i] = true;
        if (nvm_op_is_branch(in->op) || in->op == NVM_OP_ENTER_TRY)
            lead[in->a] = true;
        if (nvm_op_ends_block(in->op) && i + 1 < n)
            lead[i + 1] = true;
    }
    uint32_t nb = 0;
    for (uint32_t i = 0; i < n; i++)
        if (lead[i] && fn->heights[i] != INT32_MIN)
            nb++;
    if ((uint64_t)nb * (W + S) > NVM_NATIVE_MAX_STATE)
        goto fail;
    f->bstart = malloc(sizeof(uint32_t) * (nb + 1));
    f->bend = malloc(sizeof(uint32_t) * (nb + 1));
    f->state = calloc((size_t)nb * (W + S) + 1, 1);
    f->seen = calloc(nb + 1, 1);
    if (f->bstart == NULL || f->bend == NULL || f->state == NULL || f->seen == NULL)
        goto fail;
    uint32_t b = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        if (fn->heights[i] == INT32_MIN) {
            f->blk_of[i] = UINT32_MAX;
            continue;
        }
        if (lead[i] || b == UINT32_MAX || nvm_op_ends_block(fn->code[i - 1].op)) {
            b = f->nblk++;
            f->bstart[b] = i;
        }
        f->blk_of[i] = b;
        f->bend[b] = i + 1;
    }
    free(lead);
    lead = NULL;
    /* fixed point: the join of the states flowing into each block (masks only grow) */
    tmask *cur = malloc(W + S + 1);
    uint32_t *work = malloc(sizeof(uint32_t) * (f->nblk + 1));
    bool *queued = calloc(f->nblk + 1, 1);
    if (cur == NULL || work == NULL || queued == NULL) {
        free(cur);
        free(work);
        free(queued);
        goto fail;
    }
    uint32_t nw = 0;
    if (f->nblk > 0) {
        tmask *s0 = f->state;
        for (uint32_t q = 0; q < fn->consumed; q++)
            s0[q] = argspec != NULL && argspec[q] != 0 ? argspec[q] : TM_ANY;
        memset(s0 + W, TM_UNDEF, S);
        f->seen[0] = true;
        work[nw++] = 0;
        queued[0] = true;
    }
    while (nw > 0) {
        uint32_t bi = work[--nw];
        queued[bi] = false;
        memcpy(cur, f->state + (size_t)bi * (W + S), W + S);
        uint32_t H = (uint32_t)(fn->heights[f->bstart[bi]] + (int32_t)fn->consumed);
        for (uint32_t i = f->bstart[bi]; i < f->bend[bi]; i++) {
            const nvm_insn *in = &fn->code[i];
            uint32_t succ[2];
            int ns = 0;
            bool handler = false;
            if (in->op == NVM_OP_ENTER_TRY) {
                succ[ns++] = in->a;
                handler = true;
            }
            nvm_xfer(m, fn, i, cur, &H, cur + W);
            if (spec != NULL && spec[i])
                cur[H - 1] = spec[i] == 2 ? TM_INT : TM_FLOAT;
            /* the type model's stack effect must agree with the verifier's heights */
            if (!nvm_op_ends_block(in->op) || in->op == NVM_OP_JZ || in->op == NVM_OP_JNZ ||
                in->op == NVM_OP_CALL) {
                if (i + 1 >= n || fn->heights[i + 1] == INT32_MIN ||
                    (int64_t)H != (int64_t)fn->heights[i + 1] + fn->consumed || H > W) {
                    if (!(i + 1 < n && fn->heights[i + 1] == INT32_MIN)) {
                        free(cur);
                        free(work);
                        free(queued);
                        goto fail;
                    }
                }
            }
            if (nvm_op_is_branch(in->op))
                succ[ns++] = in->a;
            for (int k = 0; k < ns; k++) {
                flow(f, succ[k], handler && k == 0 ? NULL : cur, W + S, W, queued, work, &nw);
            }
            if (i + 1 == f->bend[bi] && i + 1 < n && in->op != NVM_OP_JMP && in->op != NVM_OP_RET &&
                in->op != NVM_OP_HALT && in->op != NVM_OP_THROW) {
                flow(f, i + 1, cur, W + S, W, queued, work, &nw);
            }
        }
    }
    free(cur);
    free(work);
    free(queued);
    return true;
fail:
    free(lead);
    nvm_fninfo_free(f);
    return false;
}

/* Arithmetic worth speculating on in a function that computes with floats (has float constants
 * or math): operands that may be floats but are not known to be. Returns whether any. */
bool nvm_spec_sites(const nvm_module *m, const nvm_func *fn, const nvm_fninfo *f, uint8_t *site,
                    tmask *cur)
{
    bool floaty = false, any = false;
    for (uint32_t i = 0; i < fn->ninsn; i++)
        floaty |= fn->code[i].op == NVM_OP_PUSH_F64 || fn->code[i].op >= NVM_OP_MATH_POW;
    uint32_t W = fn->max_height + 1, S = fn->nslots;
    for (uint32_t bi = 0; bi < f->nblk; bi++) {
        memcpy(cur, f->state + (size_t)bi * (W + S), W + S);
        uint32_t H = (uint32_t)(fn->heights[f->bstart[bi]] + (int32_t)fn->consumed);
        for (uint32_t i = f->bstart[bi]; i < f->bend[bi]; i++) {
            uint8_t op = fn->code[i].op;
            uint8_t next = i + 1 < fn->ninsn ? fn->code[i + 1].op : NVM_OP_NOP;
            if (!floaty && op == NVM_OP_ARR_GET && next != NVM_OP_JZ && next != NVM_OP_JNZ &&
                next != NVM_OP_NOT) {
                site[i] = 2; /* an int element (not when only its truth is used: a bool) */
                any = true;
            }
            if (floaty &&
                (op == NVM_OP_ADD || op == NVM_OP_SUB || op == NVM_OP_MUL || op == NVM_OP_DIV) &&
                H >= 2) {
                tmask x = cur[H - 2], y = cur[H - 1];
                if ((x & TM_FLOAT) && (y & TM_FLOAT) && !(x == TM_FLOAT && y == TM_FLOAT)) {
                    site[i] = 1;
                    any = true;
                }
            }
            nvm_xfer(m, fn, i, cur, &H, cur + W);
        }
    }
    return any;
}

bool nvm_spec_fields(const nvm_module *m, const nvm_func *fn, const nvm_fninfo *f, uint8_t *site,
                     tmask *cur)
{
    uint32_t W = fn->max_height + 1, S = fn->nslots;
    uint32_t *prod = malloc(sizeof(uint32_t) * (W + 1));
    bool any = false;
    if (prod == NULL)
        return false;
    for (uint32_t bi = 0; bi < f->nblk; bi++) {
        memcpy(cur, f->state + (size_t)bi * (W + S), W + S);
        uint32_t H = (uint32_t)(fn->heights[f->bstart[bi]] + (int32_t)fn->consumed);
        /* prod[q]: the GET_FIELD whose value position q holds, UINT32_MAX: none */
        for (uint32_t q = 0; q < W; q++)
            prod[q] = UINT32_MAX;
        for (uint32_t i = f->bstart[bi]; i < f->bend[bi]; i++) {
            uint8_t op = fn->code[i].op;
            if (site[i] == 1 && H >= 2)
                for (uint32_t q = H - 2; q < H; q++)
                    if (prod[q] != UINT32_MAX) {
                        site[prod[q]] = 3;
                        any = true;
                    }
            uint32_t H0 = H;
            nvm_xfer(m, fn, i, cur, &H, cur + W);
            int pu = nvm_opinfo_table[op].pushes;
            uint32_t lo = pu < 0 || (uint32_t)pu > H ? 0 : H - (uint32_t)pu;
            lo = lo < H0 ? lo : H0;
            for (uint32_t q = lo; q < W; q++)
                prod[q] = UINT32_MAX;
            if (op == NVM_OP_GET_FIELD && H >= 1)
                prod[H - 1] = i;
        }
    }
    free(prod);
    return any;
}

static bool binary_num_op(uint8_t op)
{
    return (op >= NVM_OP_ADD && op <= NVM_OP_MOD) || (op >= NVM_OP_EQ && op <= NVM_OP_GE);
}

bool nvm_spec_args(const nvm_func *fn, tmask *argspec)
{
    uint32_t n = fn->ninsn, S = fn->nslots, cons = fn->consumed;
    bool any = false;
    if (cons == 0 || S == 0)
        return false;
    uint8_t *vote = calloc(S, 1);
    int64_t *arg_slot = malloc(sizeof(int64_t) * cons);
    if (vote == NULL || arg_slot == NULL)
        goto done;
    for (uint32_t p = 0; p < cons; p++)
        arg_slot[p] = -1;
    /* the leading STOREs take the arguments, the top (the last pushed) first */
    for (uint32_t k = 0; k < cons && k < n; k++) {
        if (fn->code[k].op != NVM_OP_STORE || fn->heights[k] != -(int32_t)k)
            break;
        arg_slot[cons - 1 - k] = fn->code[k].a;
    }
    /* a LOAD next to an int (float) constant in arithmetic or a comparison votes int (float) */
    for (uint32_t j = 0; j + 1 < n; j++) {
        if (fn->code[j].op != NVM_OP_LOAD)
            continue;
        uint32_t sl = fn->code[j].a;
        uint8_t nx = fn->code[j + 1].op;
        uint8_t nx2 = j + 2 < n ? fn->code[j + 2].op : NVM_OP_NOP;
        uint8_t pv = j > 0 ? fn->code[j - 1].op : NVM_OP_NOP;
        if ((nx == NVM_OP_PUSH && binary_num_op(nx2)) || (pv == NVM_OP_PUSH && binary_num_op(nx)))
            vote[sl] |= 1;
        if ((nx == NVM_OP_PUSH_F64 && binary_num_op(nx2)) ||
            (pv == NVM_OP_PUSH_F64 && binary_num_op(nx)))
            vote[sl] |= 2;
    }
    /* a slot given an int (float) constant votes int (float) */
    for (uint32_t j = 0; j + 1 < n; j++)
        if (fn->code[j + 1].op == NVM_OP_STORE && fn->code[j].op == NVM_OP_PUSH)
            vote[fn->code[j + 1].a] |= 1;
        else if (fn->code[j + 1].op == NVM_OP_STORE && fn->code[j].op == NVM_OP_PUSH_F64)
            vote[fn->code[j + 1].a] |= 2;
    /* copies (LOAD a; STORE b) pass b's votes to a; two slots in arithmetic or an ordering
     * (LOAD a; LOAD b; op) pass their votes to each other (a loop bound compared with a counter
     * takes the counter's type) */
    for (int pass = 0; pass < 3; pass++)
        for (uint32_t j = 0; j + 1 < n; j++) {
            if (fn->code[j].op != NVM_OP_LOAD)
                continue;
            uint32_t a = fn->code[j].a;
            if (fn->code[j + 1].op == NVM_OP_STORE)
                vote[a] |= vote[fn->code[j + 1].a];
            uint8_t op2 = j + 2 < n ? fn->code[j + 2].op : NVM_OP_NOP;
            if (fn->code[j + 1].op == NVM_OP_LOAD && binary_num_op(op2) && op2 != NVM_OP_EQ &&
                op2 != NVM_OP_NE) {
                uint32_t b = fn->code[j + 1].a;
                uint8_t both = (uint8_t)(vote[a] | vote[b]);
                vote[a] = vote[b] = both;
            }
        }
    for (uint32_t p = 0; p < cons; p++) {
        argspec[p] = 0;
        if (arg_slot[p] < 0)
            continue;
        uint8_t v = vote[arg_slot[p]];
        if (v == 1 || v == 2) {
            argspec[p] = v == 1 ? TM_INT : TM_FLOAT;
            any = true;
        }
    }
done:
    free(vote);
    free(arg_slot);
    return any;
}
