/* jit.c - the x86-64 template compiler of the JIT tier.
 *
 * Each verified function is compiled from its bytecode and the verifier's stack heights:
 *   1. Analysis. Basic blocks (leaders: entry, jump and handler targets, the instruction after a
 *      jump, call or terminator) and a forward type analysis to a fixed point: for every stack
 *      position and slot, the set of types (tmask) it may hold at each block entry. Handler
 *      entries assume nothing. Exact where it matters: int op int is int (or an error), float
 *      with a number is float, comparisons are bools.
 *   2. Code generation per block with a virtual operand stack: an entry is a value still in its
 *      slot (LOAD not yet copied), a constant, a register (known int/bool in a GPR, float in an
 *      XMM register), a value GET_FIELD read and left in its map entry, or memory (its stack
 *      cell, r13 + 16 * (position - consumed)). Entries are written to their cells
 *      ("materialized") at block ends, before calls and helpers, and in the cold stubs of slow
 *      paths, so that the interpreter's view of the stack is exact whenever C code runs. Block
 *      entry: every stack entry in memory. Slots are written through to memory at every STORE;
 *      the slots a version uses most inside loops also have a home register (plan_homes) that
 *      carries their value across blocks and back edges, and arrays and maps read through a slot
 *      keep their object's address in a register for the rest of the block.
 *   3. Gas: each block charges its instruction count at entry (sub r15, n; js stub). The stub
 *      refills the countdown from the rest (interrupt hook) or, when the run's gas cannot cover
 *      the block, hands the frame to the interpreter, which stops at the exact instruction.
 *      A faulting instruction refunds the rest of its block, so gas used matches the
 *      interpreter on every path.
 *   4. Slow paths step the instruction in the interpreter (nvm_rt_step): one implementation of
 *      every semantic rule, error message and capability call.
 * Hardening: no constant of the program reaches executable memory. Values that do not fit in a
 * signed byte live in the module's constant pool, a separate read-only (never executable)
 * mapping addressed through RBX; the code is written to a private read+write mapping that
 * becomes read+execute before it runs, so no page is ever writable and executable at once.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "jit.h"
#include "x64.h"
#include "../native/analysis.h"
#include "../native/nrt.h"

#define VOFF(f) ((int32_t)offsetof(nvm_vm, f))
#define TAG 8 /* offsetof(nvm_value, type) */

/* ---- the compiler's state ---- */
/* V_FLD: a value read by GET_FIELD and not yet copied: reg holds the address of the map entry
 * (the value at [reg + FLD]); after C code ran, the address of the entry's own cell less FLD. */
enum { V_MEM, V_SLOT, V_CONST, V_REG, V_XREG, V_FLD };
#define FLD ((int32_t)offsetof(nvm_mapentry, value))
/* an array's element storage (enum nvm_arr_kind, the low byte of hdr.sub) */
#define ARR_KIND ((int32_t)(offsetof(nvm_array, hdr) + offsetof(nvm_gchdr, sub)))
typedef struct vent {
    uint8_t kind;
    tmask m;
    uint8_t reg;
    uint8_t home; /* V_REG/V_XREG: reg is the home register of `slot` (borrowed, not owned) */
    uint32_t slot;
    int64_t k; /* V_CONST payload (float bits for floats) */
} vent;

/* Allocatable registers. RBP is last: it is the first home register (C calls preserve it). */
static const int gpr_pool[] = {RSI, RDI, R8, R9, R10, R11, RBP};
#define NGPR 7
static const int xmm_pool[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
#define NXMM 14

/* Home registers: a few slots of a version of a function, chosen for their uses inside loops,
 * each get a register of their own (taken out of the pool for the whole version) that holds
 * the slot's payload while it is "valid". Slots stay written through to memory, so memory is
 * always exact (the interpreter, the collector, handlers and deoptimization read it) and a
 * home can be (re)loaded from memory at any point. At each block entry, the homes in the
 * block's entry mask are valid: every edge into the block loads the ones it has not got.
 * A GPR home holds the payload of an int or str slot (HK_VAL) or the address of the array or
 * map a slot holds (HK_PTR, objs[handle]: objects do not move); an XMM home a float. */
#define NHOME 16
#define NGHOME 4 /* GPR homes at most (the pool keeps 3 registers for temporaries) */
#define NXHOME 8 /* XMM homes at most */
enum { HK_VAL, HK_FLT, HK_PTR }; /* an int or str payload; a float; an array's or map's address */
typedef struct hplan {
    uint32_t nh;
    uint32_t slot[NHOME];
    uint8_t reg[NHOME];
    bool x[NHOME]; /* an XMM register (HK_FLT) */
    uint8_t kind[NHOME];
    int8_t *of;      /* slot -> home index, -1 when none */
    uint32_t *emask; /* block -> homes valid at its entry (bit k: home k) */
} hplan;

typedef struct jc {
    x64_asm a;
    const nvm_module *m;
    uint32_t fi;
    const nvm_func *fn;
    uint32_t consumed, W, S;
    vent *vs;
    uint32_t H;
    tmask *sl;
    uint32_t gused, xused; /* pool bits in use (by entries and by the slot cache) */
    /* slot cache: slots whose current value is also in a pool register (stored in this block;
     * the slot in memory is always up to date): cached[0..ncached) with their registers; an
     * entry with cptr set holds instead the address of the slot's array or map (objs[handle]) */
    uint32_t cached[32];
    int8_t creg[32];
    bool cxmm[32];
    bool cptr[32];
    uint32_t ncached;
    uint32_t *flabel; /* function index -> entry label */
    tmask *tmp;       /* W + S scratch masks */
    vent *cslot;      /* slot -> the constant every STORE writes (kind V_CONST), or V_SLOT: none */
    uint32_t ilabel0; /* label of instruction i = ilabel0 + i */
    uint32_t unw;     /* this function's unwind label */
    uint32_t blk_end; /* end (exclusive) of the block being compiled */
    uint32_t blk_extra;      /* gas charged at its entry for the block its JMP enters (0: none) */
    uint32_t post0;          /* label of block b's code after its gas check = post0 + b */
    const nvm_fninfo *f;     /* the version being compiled */
    hplan *hp;               /* its home registers */
    hplan *hpg;              /* the generic version's (the targets of failed speculation) */
    const uint32_t *gblk_of; /* the generic version's blocks */
    uint32_t hvalid;         /* homes holding their slot now */
    uint32_t hkeep;          /* homes whose register C calls preserve (RBP) */
    uint32_t gres, xres;     /* pool bits reserved as home registers */
    uint64_t *pool;          /* constant pool (module-wide) */
    uint32_t npool, pool_cap;
    uint32_t *pool_ix; /* open-addressing index of pool entries + 1 */
    uint32_t pool_ix_cap;
    bool has_try;
} jc;

/* ---- the constant pool ---- */
static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Displacement from RBX of the pool entry holding v (added once per module). */
static int32_t pool_disp(jc *c, int64_t v)
{
    uint64_t u = (uint64_t)v;
    if (c->npool * 2 >= c->pool_ix_cap) {
        uint32_t nc = c->pool_ix_cap ? c->pool_ix_cap * 2 : 256;
        uint32_t *ix = calloc(nc, sizeof *ix);
        if (ix == NULL) {
            c->a.oom = true;
            return 0;
        }
        for (uint32_t k = 0; k < c->npool; k++) {
            uint32_t h = (uint32_t)mix64(c->pool[k]) & (nc - 1);
            while (ix[h] != 0)
                h = (h + 1) & (nc - 1);
            ix[h] = k + 1;
        }
        free(c->pool_ix);
        c->pool_ix = ix;
        c->pool_ix_cap = nc;
    }
    uint32_t h = (uint32_t)mix64(u) & (c->pool_ix_cap - 1);
    while (c->pool_ix[h] != 0) {
        if (c->pool[c->pool_ix[h] - 1] == u)
            return (int32_t)(8 * (c->pool_ix[h] - 1));
        h = (h + 1) & (c->pool_ix_cap - 1);
    }
    if (c->npool == c->pool_cap) {
        uint32_t nc = c->pool_cap ? c->pool_cap * 2 : 64;
        uint64_t *q = realloc(c->pool, sizeof *q * nc);
        if (q == NULL) {
            c->a.oom = true;
            return 0;
        }
        c->pool = q;
        c->pool_cap = nc;
    }
    c->pool[c->npool] = u;
    c->pool_ix[h] = ++c->npool;
    return (int32_t)(8 * (c->npool - 1));
}
static bool small(int64_t v)
{
    return v >= -128 && v <= 127;
}
/* Loads a program constant into r: a signed byte as an immediate, anything else from the pool. */
static void ld_const(jc *c, int r, int64_t v)
{
    if (small(v))
        mov_ri(&c->a, r, v);
    else
        mov_rm(&c->a, r, RBX, pool_disp(c, v));
}

static int32_t cell(const jc *c, uint32_t q)
{
    return (int32_t)(16 * ((int64_t)q - (int64_t)c->consumed));
}
static int32_t slotd(uint32_t n)
{
    return (int32_t)(16 * (int64_t)n);
}

/* ---- registers ---- */
static void mat(jc *c, uint32_t q);
static void release(jc *c, int reg, bool xmm)
{
    if (xmm) {
        for (int i = 0; i < NXMM; i++)
            if (xmm_pool[i] == reg)
                c->xused &= ~(1u << i) | c->xres;
    } else {
        for (int i = 0; i < NGPR; i++)
            if (gpr_pool[i] == reg)
                c->gused &= ~(1u << i) | c->gres;
    }
}
/* Forgets cache entry k (its register returns to the pool). */
static void cache_forget(jc *c, uint32_t k)
{
    release(c, c->creg[k], c->cxmm[k]);
    c->ncached--;
    c->cached[k] = c->cached[c->ncached];
    c->creg[k] = c->creg[c->ncached];
    c->cxmm[k] = c->cxmm[c->ncached];
    c->cptr[k] = c->cptr[c->ncached];
}
static int cache_find_kind(const jc *c, uint32_t slot, bool ptr)
{
    for (uint32_t k = 0; k < c->ncached; k++)
        if (c->cached[k] == slot && c->cptr[k] == ptr)
            return (int)k;
    return -1;
}
static int cache_find(const jc *c, uint32_t slot)
{
    return cache_find_kind(c, slot, false);
}
/* A STORE to `slot`: its cached value and object address are stale. */
static void cache_drop(jc *c, uint32_t slot)
{
    for (uint32_t k = 0; k < c->ncached;) {
        if (c->cached[k] == slot)
            cache_forget(c, k);
        else
            k++;
    }
}
/* reg = objs[the handle in slot]: the address of the slot's array, map or string. */
static void load_objaddr(jc *c, int reg, uint32_t slot)
{
    mov32_rm(&c->a, reg, R14, (int32_t)(16 * slot)); /* the 32-bit handle, zero-extended */
    shift_ri(&c->a, 4, reg, 3);
    alu_rm(&c->a, ALU_ADD, reg, R12, (int32_t)offsetof(nvm_vm, heap.objs));
    mov_rm(&c->a, reg, reg, 0);
}

/* ---- home registers ---- */
static void home_load_plan(jc *c, const hplan *p, uint32_t k)
{
    if (p->kind[k] == HK_FLT)
        movsd_xm(&c->a, p->reg[k], R14, slotd(p->slot[k]));
    else if (p->kind[k] == HK_PTR)
        load_objaddr(c, p->reg[k], p->slot[k]);
    else
        mov_rm(&c->a, p->reg[k], R14, slotd(p->slot[k]));
}
static void home_load(jc *c, uint32_t k)
{
    home_load_plan(c, c->hp, k);
}
/* Makes the homes of `mask` valid (loads the ones that are not). */
static void home_ensure(jc *c, uint32_t mask)
{
    uint32_t need = mask & ~c->hvalid;
    for (uint32_t k = 0; k < c->hp->nh; k++)
        if (need & (1u << k))
            home_load(c, k);
    c->hvalid |= mask;
}
/* The homes valid at the entry of the block starting at instruction i. */
static uint32_t home_entry(const jc *c, uint32_t i)
{
    uint32_t b = c->f->blk_of[i];
    return b == UINT32_MAX ? 0 : c->hp->emask[b];
}
static int home_of(const jc *c, uint32_t slot)
{
    return c->hp->of[slot];
}
static void ld(jc *c, const vent *e, uint32_t q, int r);
/* After a STORE of entry v (position q) to home k's slot: the home holds the stored value. */
static void ldf(jc *c, const vent *e, uint32_t q, int x);
static void home_set(jc *c, uint32_t k, const vent *v, uint32_t q)
{
    int h = c->hp->reg[k];
    uint32_t bit = 1u << k;
    if (v->home && v->slot == c->hp->slot[k])
        return;
    if (c->hp->kind[k] == HK_PTR) {
        if (v->m != TM_ARR && v->m != TM_MAP) {
            c->hvalid &= ~bit;
            return;
        }
        int t = v->kind == V_SLOT ? home_of(c, v->slot) : -1;
        if (t >= 0 && c->hp->kind[t] == HK_PTR && (c->hvalid & (1u << t))) {
            mov_rr(&c->a, h, c->hp->reg[t]);
        } else {
            ld(c, v, q, h);
            x64_op_rr(&c->a, 0, 0x89, h, h); /* the 32-bit handle */
            shift_ri(&c->a, 4, h, 3);
            alu_rm(&c->a, ALU_ADD, h, R12, (int32_t)offsetof(nvm_vm, heap.objs));
            mov_rm(&c->a, h, h, 0);
        }
    } else if (c->hp->kind[k] == HK_VAL) {
        ld(c, v, q, h);
    } else if (v->m != TM_FLOAT) {
        c->hvalid &= ~bit;
        return;
    } else {
        ldf(c, v, q, h);
    }
    c->hvalid |= bit;
}

/* After C code ran (caller-saved registers lost): nothing is cached any more. */
static void cache_clear(jc *c)
{
    while (c->ncached > 0)
        cache_forget(c, 0);
    c->hvalid &= c->hkeep;
}
/* In a cold path that returns to the hot code after calling C: reload the cached registers. */
static void cache_reload(jc *c)
{
    for (uint32_t k = 0; k < c->ncached; k++) {
        if (c->cptr[k])
            load_objaddr(c, c->creg[k], c->cached[k]);
        else if (c->cxmm[k])
            movsd_xm(&c->a, c->creg[k], R14, (int32_t)(16 * c->cached[k]));
        else
            mov_rm(&c->a, c->creg[k], R14, (int32_t)(16 * c->cached[k]));
    }
    for (uint32_t k = 0; k < c->hp->nh; k++)
        if ((c->hvalid & ~c->hkeep) & (1u << k))
            home_load(c, k);
}
/* A free register of the pool: else a cached slot's (other than `keep`), else an entry's,
 * which goes to memory. */
static int alloc_reg(jc *c, bool xmm, int keep)
{
    for (;;) {
        uint32_t used = xmm ? c->xused : c->gused;
        int n = xmm ? NXMM : NGPR;
        for (int i = 0; i < n; i++)
            if (!(used & (1u << i))) {
                if (xmm)
                    c->xused |= 1u << i;
                else
                    c->gused |= 1u << i;
                return xmm ? xmm_pool[i] : gpr_pool[i];
            }
        bool done = false;
        for (uint32_t k = 0; k < c->ncached && !done; k++)
            if (c->cxmm[k] == xmm && c->creg[k] != keep) {
                cache_forget(c, k);
                done = true;
            }
        for (uint32_t q = 0; q < c->H && !done; q++)
            if (c->vs[q].kind == (xmm ? V_XREG : V_REG) && !c->vs[q].home) {
                mat(c, q);
                done = true;
            }
    }
}
static int alloc_gpr(jc *c)
{
    return alloc_reg(c, false, -1);
}
static int alloc_xmm(jc *c)
{
    return alloc_reg(c, true, -1);
}
static void free_reg(jc *c, const vent *e)
{
    if (e->home)
        return;
    if (e->kind == V_REG || e->kind == V_FLD) {
        for (int i = 0; i < NGPR; i++)
            if (gpr_pool[i] == e->reg)
                c->gused &= ~(1u << i);
    } else if (e->kind == V_XREG) {
        for (int i = 0; i < NXMM; i++)
            if (xmm_pool[i] == e->reg)
                c->xused &= ~(1u << i);
    }
}

/* ---- moving entries ---- */
/* Payload of e into GPR r (r is RAX, RCX or RDX, or a fresh pool register). */
static void ld(jc *c, const vent *e, uint32_t q, int r)
{
    switch (e->kind) {
    case V_MEM: mov_rm(&c->a, r, R13, cell(c, q)); break;
    case V_SLOT: mov_rm(&c->a, r, R14, slotd(e->slot)); break;
    case V_CONST: ld_const(c, r, e->k); break;
    case V_REG: mov_rr(&c->a, r, e->reg); break;
    case V_FLD: mov_rm(&c->a, r, e->reg, FLD); break;
    default: movq_rx(&c->a, r, e->reg); break;
    }
}
/* the bool at position q as the byte 0 or 1 in AL (RAX) */
static void bool_byte(jc *c, uint32_t q)
{
    ld(c, &c->vs[q], q, RAX);
    test32_rr(&c->a, RAX, RAX);
    setcc(&c->a, CC_NE, RAX);
}
/* e (a number) as a double in XMM x; ints are converted (through RAX). */
static void ldf(jc *c, const vent *e, uint32_t q, int x)
{
    if (e->m == TM_INT && e->kind == V_CONST) {
        double d = (double)e->k;
        int64_t bits;
        memcpy(&bits, &d, 8);
        movsd_xm(&c->a, x, RBX, pool_disp(c, bits));
        return;
    }
    if (e->m == TM_INT) {
        ld(c, e, q, RAX);
        cvtsi2sd_xr(&c->a, x, RAX);
        return;
    }
    switch (e->kind) {
    case V_MEM: movsd_xm(&c->a, x, R13, cell(c, q)); break;
    case V_SLOT: movsd_xm(&c->a, x, R14, slotd(e->slot)); break;
    case V_CONST: movsd_xm(&c->a, x, RBX, pool_disp(c, e->k)); break;
    case V_REG: movq_xr(&c->a, x, e->reg); break;
    case V_FLD: movsd_xm(&c->a, x, e->reg, FLD); break;
    default: movapd_rr(&c->a, x, e->reg); break;
    }
}
/* Writes e to the value at [base + d] (payload and, unless `tag_known`, the tag). */
static void store_to(jc *c, const vent *e, uint32_t q, int base, int32_t d, bool tag_known)
{
    int t = nvm_tm_single(e->m);
    switch (e->kind) {
    case V_MEM:
        if (base == R13 && d == cell(c, q))
            return;
        mov_rm(&c->a, RAX, R13, cell(c, q));
        mov_mr(&c->a, base, d, RAX);
        if (!tag_known) {
            mov_rm(&c->a, RAX, R13, cell(c, q) + TAG);
            mov_mr(&c->a, base, d + TAG, RAX);
        }
        return;
    case V_FLD:
        mov_rm(&c->a, RAX, e->reg, FLD);
        mov_mr(&c->a, base, d, RAX);
        if (!tag_known) {
            if (t >= 0) {
                mov64_mi(&c->a, base, d + TAG, (int32_t)(uint32_t)t);
            } else {
                mov_rm(&c->a, RAX, e->reg, FLD + TAG);
                mov_mr(&c->a, base, d + TAG, RAX);
            }
        }
        return;
    case V_SLOT:
        if (base == R14 && d == slotd(e->slot))
            return;
        mov_rm(&c->a, RAX, R14, slotd(e->slot));
        mov_mr(&c->a, base, d, RAX);
        if (!tag_known) {
            if (t >= 0) {
                mov64_mi(&c->a, base, d + TAG, (int32_t)(uint32_t)t);
            } else {
                mov_rm(&c->a, RAX, R14, slotd(e->slot) + TAG);
                mov_mr(&c->a, base, d + TAG, RAX);
            }
        }
        return;
    case V_CONST:
        if (small(e->k)) {
            mov64_mi(&c->a, base, d, (int32_t)e->k);
        } else {
            ld_const(c, RAX, e->k);
            mov_mr(&c->a, base, d, RAX);
        }
        break;
    case V_REG: mov_mr(&c->a, base, d, e->reg); break;
    default: movsd_mx(&c->a, base, d, e->reg); break;
    }
    if (!tag_known)
        mov64_mi(&c->a, base, d + TAG, (int32_t)(uint32_t)t);
}
/* Emits the write of entry q to its cell without changing the compile-time state. */
static void emit_mat(jc *c, uint32_t q)
{
    const vent *e = &c->vs[q];
    if (e->kind != V_MEM)
        store_to(c, e, q, R13, cell(c, q), false);
}
static void mat(jc *c, uint32_t q)
{
    vent *e = &c->vs[q];
    if (e->kind == V_MEM)
        return;
    emit_mat(c, q);
    free_reg(c, e);
    e->kind = V_MEM;
    e->home = 0;
}
static void flush_all(jc *c)
{
    for (uint32_t q = 0; q < c->H; q++)
        mat(c, q);
}
static void flush_below(jc *c, uint32_t top)
{
    for (uint32_t q = 0; q < top && q < c->H; q++)
        mat(c, q);
}
static void push(jc *c, vent e)
{
    c->vs[c->H++] = e;
}
static void pop_n(jc *c, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free_reg(c, &c->vs[--c->H]);
}
static vent mk(int kind, tmask m)
{
    vent e;
    memset(&e, 0, sizeof e);
    e.kind = (uint8_t)kind;
    e.m = m;
    return e;
}

/* tag check: jumps to `fail` unless entry q has type t (nothing when statically known) */
static void check_tag(jc *c, uint32_t q, int t, uint32_t fail)
{
    const vent *e = &c->vs[q];
    if (e->m == TM(t))
        return;
    if (e->kind == V_MEM)
        alu32_mi(&c->a, ALU_CMP, R13, cell(c, q) + TAG, t);
    else if (e->kind == V_SLOT)
        alu32_mi(&c->a, ALU_CMP, R14, slotd(e->slot) + TAG, t);
    else if (e->kind == V_FLD)
        alu32_mi(&c->a, ALU_CMP, e->reg, FLD + TAG, t);
    else {
        jmp(&c->a, fail); /* a constant or register of another type */
        return;
    }
    jcc(&c->a, CC_NE, fail);
}

/* ---- calls to helpers ---- */
static void helper_args_step(jc *c, uint32_t i, uint32_t top)
{
    mov_rr(&c->a, RDI, R12);
    mov_ri(&c->a, RSI, i);
    lea(&c->a, RDX, R13, cell(c, top));
    mov_rr(&c->a, RCX, R14);
    mov_rr(&c->a, R8, R15);
}
static void unwind_refund(jc *c, uint32_t i)
{
    uint32_t refund = c->blk_end - (i + 1) + c->blk_extra;
    if (refund > 0)
        alu_ri(&c->a, ALU_ADD, R15, (int32_t)refund);
    jmp(&c->a, c->unw);
}
/* After a helper returned eax: nonzero goes to the unwind path (refunding the block's rest). */
static void check_helper(jc *c, uint32_t i)
{
    uint32_t ok = x64_label(&c->a);
    test32_rr(&c->a, RAX, RAX);
    if (c->blk_end == i + 1 && c->blk_extra == 0) {
        jcc(&c->a, CC_NE, c->unw);
        return;
    }
    jcc(&c->a, CC_E, ok);
    unwind_refund(c, i);
    x64_bind(&c->a, ok);
}

/* In cold code: writes the state to memory, has nvm_rt_fast execute instruction i (a fault
 * unwinds) and reloads the registers the hot code expects: the slot cache and the entries below
 * position `keep`. */
static void cold_step(jc *c, uint32_t i, uint32_t keep)
{
    for (uint32_t q = 0; q < c->H; q++)
        emit_mat(c, q);
    helper_args_step(c, i, c->H);
    call_abs(&c->a, X64_FN(nvm_rt_fast));
    check_helper(c, i);
    cache_reload(c);
    for (uint32_t q = 0; q < keep && q < c->H; q++) {
        const vent *e = &c->vs[q];
        if (e->kind == V_REG)
            mov_rm(&c->a, e->reg, R13, cell(c, q));
        else if (e->kind == V_XREG)
            movsd_xm(&c->a, e->reg, R13, cell(c, q));
        else if (e->kind == V_FLD) /* the map may be gone: the copy in the cell */
            lea(&c->a, e->reg, R13, cell(c, q) - FLD);
    }
}

/* Cold slow path of instruction i (state: before i, operands at the top, H = height before):
 * materializes everything, steps i in the interpreter, and resumes at `resume` with the
 * registers of the entries below position `keep` reloaded and, when res_kind is V_REG/V_XREG,
 * the result (at position keep) reloaded into res_reg. Returns the stub's label. */
static uint32_t slow_stub(jc *c, uint32_t i, uint32_t keep, int res_kind, int res_reg,
                          uint32_t resume)
{
    uint32_t l = x64_label(&c->a);
    int saved = c->a.cur;
    c->a.cur = 1;
    x64_bind(&c->a, l);
    cold_step(c, i, keep);
    if (res_kind == V_REG)
        mov_rm(&c->a, res_reg, R13, cell(c, keep));
    else if (res_kind == V_FLD)
        lea(&c->a, res_reg, R13, cell(c, keep) - FLD);
    else if (res_kind == V_XREG)
        movsd_xm(&c->a, res_reg, R13, cell(c, keep));
    jmp(&c->a, resume);
    c->a.cur = saved;
    return l;
}

/* Executes instruction i in the interpreter on the hot path (after a flush). */
static void step_inline(jc *c, uint32_t i)
{
    flush_all(c);
    helper_args_step(c, i, c->H);
    call_abs(&c->a, X64_FN(nvm_rt_fast));
    check_helper(c, i);
    cache_clear(c);
}

/* ---- instruction templates ---- */
/* condition for "x OP y" after cmp x, y (ints) */
static int int_cc(uint8_t op)
{
    switch (op) {
    case NVM_OP_EQ: return CC_E;
    case NVM_OP_NE: return CC_NE;
    case NVM_OP_LT: return CC_L;
    case NVM_OP_LE: return CC_LE;
    case NVM_OP_GT: return CC_G;
    default: return CC_GE;
    }
}

/* Result of a binary op into a fresh register entry at position H-2 (operands popped). */
/* Pushes a known int or bool held in a scratch register as a fresh register entry. */
static void push_gpr(jc *c, int src_scratch, tmask t)
{
    vent e = mk(V_REG, t);
    e.reg = (uint8_t)alloc_gpr(c);
    mov_rr(&c->a, e.reg, src_scratch);
    push(c, e);
}

static void bin_result_reg(jc *c, int src_scratch, tmask t)
{
    pop_n(c, 2);
    push_gpr(c, src_scratch, t);
}

/* Signed division by a constant d >= 2 as a multiply (Hacker's Delight, 10-1): q = the high
 * half of M * n, plus n when M is negative, shifted right by s, plus 1 when n is negative. */
static void div_magic(int64_t d, int64_t *M, int *s)
{
    const uint64_t two63 = 1ull << 63;
    uint64_t ad = (uint64_t)d;
    uint64_t anc = two63 - 1 - two63 % ad;
    int p = 63;
    uint64_t q1 = two63 / anc, r1 = two63 - q1 * anc;
    uint64_t q2 = two63 / ad, r2 = two63 - q2 * ad;
    uint64_t delta;
    do {
        p++;
        q1 *= 2;
        r1 *= 2;
        if (r1 >= anc) {
            q1++;
            r1 -= anc;
        }
        q2 *= 2;
        r2 *= 2;
        if (r2 >= ad) {
            q2++;
            r2 -= ad;
        }
        delta = ad - r2;
    } while (q1 < delta || (q1 == delta && r1 == 0));
    *M = (int64_t)(q2 + 1);
    *s = p - 64;
}

/* floor(2^e / d) for d >= 2 when it is below 2^64 (long division); *rem the remainder. */
static uint64_t pow2_div(int e, uint64_t d, uint64_t *rem)
{
    uint64_t q = 0, r = 0;
    for (int b = e; b >= 0; b--) {
        r = 2 * r + (b == e);
        q *= 2;
        if (r >= d) {
            r -= d;
            q |= 1;
        }
    }
    *rem = r;
    return q;
}

/* Unsigned division of 0 <= n < 2^63 by a constant d >= 2 that is not a power of two as a
 * multiply (Granlund-Montgomery, N = 63): with l = ceil(log2 d) and m = ceil(2^(63+l) / d)
 * (below 2^64), n / d is the high half of m * n shifted right by l - 1. */
static void udiv_magic(uint64_t d, uint64_t *m, int *sh)
{
    int l = 0;
    while (l < 63 && ((uint64_t)1 << l) < d)
        l++;
    uint64_t r;
    uint64_t q = pow2_div(63 + l, d, &r);
    *m = q + (r != 0);
    *sh = l - 1;
}

/* RAX = RAX / RCX (DIV) or RAX % RCX (MOD), both ints; a zero divisor and -1 (whose only
 * overflowing case the interpreter reports) go to stub */
static void int_divmod_rcx(jc *c, uint8_t op, uint32_t stub)
{
    test_rr(&c->a, RCX, RCX);
    jcc(&c->a, CC_E, stub);
    alu_ri(&c->a, ALU_CMP, RCX, -1);
    jcc(&c->a, CC_E, stub);
    cqo(&c->a);
    unary_r(&c->a, 7, RCX); /* idiv rcx */
    if (op == NVM_OP_MOD)
        mov_rr(&c->a, RAX, RDX);
}

/* From the quotient q in RDX of the dividend x in RCX by the constant d: RAX = q (DIV) or
 * x - q * d (MOD). */
static void divmod_result(jc *c, uint8_t op, int64_t d)
{
    if (op == NVM_OP_DIV) {
        mov_rr(&c->a, RAX, RDX);
        return;
    }
    if (d <= INT32_MAX)
        imul_rri(&c->a, RDX, RDX, (int32_t)d);
    else
        imul_rm(&c->a, RDX, RBX, pool_disp(c, d));
    mov_rr(&c->a, RAX, RCX);
    alu_rr(&c->a, ALU_SUB, RAX, RDX);
}

/* RAX = x / d or x % d (truncating, as DIV/MOD) for a constant d >= 2: cannot fault. A
 * non-negative x takes the unsigned sequence (a shift or mask for a power of two), a negative
 * one the signed sequence in cold code. */
static void int_divmod_signed(jc *c, uint8_t op, int64_t d);
static void int_divmod_const(jc *c, uint8_t op, int64_t d)
{
    uint32_t neg = x64_label(&c->a), back = x64_label(&c->a);
    test_rr(&c->a, RAX, RAX);
    jcc(&c->a, CC_S, neg);
    if ((d & (d - 1)) == 0) {
        int k = 0;
        while (((int64_t)1 << k) != d)
            k++;
        if (op == NVM_OP_DIV) {
            shift_ri(&c->a, 5, RAX, (uint8_t)k);
        } else if (d - 1 <= INT32_MAX) {
            alu_ri(&c->a, ALU_AND, RAX, (int32_t)(d - 1));
        } else {
            ld_const(c, RDX, d - 1);
            alu_rr(&c->a, ALU_AND, RAX, RDX);
        }
    } else {
        uint64_t m;
        int sh;
        udiv_magic((uint64_t)d, &m, &sh);
        mov_rr(&c->a, RCX, RAX);
        ld_const(c, RAX, (int64_t)m);
        unary_r(&c->a, 4, RCX); /* mul rcx: RDX:RAX = m * n (unsigned) */
        if (sh > 0)
            shift_ri(&c->a, 5, RDX, (uint8_t)sh);
        divmod_result(c, op, d);
    }
    x64_bind(&c->a, back);
    int saved = c->a.cur;
    c->a.cur = 1;
    x64_bind(&c->a, neg);
    int_divmod_signed(c, op, d);
    jmp(&c->a, back);
    c->a.cur = saved;
}

static void int_divmod_signed(jc *c, uint8_t op, int64_t d)
{
    int64_t M;
    int sh;
    div_magic(d, &M, &sh);
    mov_rr(&c->a, RCX, RAX);
    ld_const(c, RAX, M);
    unary_r(&c->a, 5, RCX); /* imul rcx: RDX:RAX = M * n */
    if (M < 0)
        alu_rr(&c->a, ALU_ADD, RDX, RCX);
    if (sh > 0)
        shift_ri(&c->a, 7, RDX, (uint8_t)sh);
    mov_rr(&c->a, RAX, RCX);
    shift_ri(&c->a, 5, RAX, 63);
    alu_rr(&c->a, ALU_ADD, RDX, RAX); /* q */
    divmod_result(c, op, d);
}

/* x OP y for statically known ints; RAX = result. Slow path only for faults. */
static void int_arith(jc *c, uint32_t i, uint8_t op)
{
    uint32_t qx = c->H - 2, qy = c->H - 1;
    vent *x = &c->vs[qx], *y = &c->vs[qy];
    uint32_t after = x64_label(&c->a);
    if ((op == NVM_OP_DIV || op == NVM_OP_MOD) && y->kind == V_CONST && y->k >= 2) {
        ld(c, x, qx, RAX);
        int_divmod_const(c, op, y->k);
        bin_result_reg(c, RAX, TM_INT);
        return;
    }
    if (op == NVM_OP_DIV || op == NVM_OP_MOD) {
        ld(c, y, qy, RCX);
        ld(c, x, qx, RAX);
        int_divmod_rcx(c, op, slow_stub(c, i, qx, V_REG, RAX, after));
    } else {
        ld(c, x, qx, RAX);
        uint32_t stub = slow_stub(c, i, qx, V_REG, RAX, after);
        bool imm = y->kind == V_CONST && y->k >= -128 && y->k <= 127;
        if (op == NVM_OP_MUL) {
            if (y->kind == V_CONST)
                imul_rm(&c->a, RAX, RBX, pool_disp(c, y->k));
            else if (y->kind == V_MEM)
                imul_rm(&c->a, RAX, R13, cell(c, qy));
            else if (y->kind == V_SLOT)
                imul_rm(&c->a, RAX, R14, slotd(y->slot));
            else {
                ld(c, y, qy, RCX);
                imul_rr(&c->a, RAX, RCX);
            }
        } else {
            int alu = op == NVM_OP_ADD ? ALU_ADD : ALU_SUB;
            if (imm)
                alu_ri(&c->a, alu, RAX, (int32_t)y->k);
            else if (y->kind == V_CONST)
                alu_rm(&c->a, alu, RAX, RBX, pool_disp(c, y->k));
            else if (y->kind == V_MEM)
                alu_rm(&c->a, alu, RAX, R13, cell(c, qy));
            else if (y->kind == V_SLOT)
                alu_rm(&c->a, alu, RAX, R14, slotd(y->slot));
            else {
                ld(c, y, qy, RCX);
                alu_rr(&c->a, alu, RAX, RCX);
            }
        }
        jcc(&c->a, CC_O, stub);
    }
    /* the stub continues at `after` with the result reloaded into RAX */
    x64_bind(&c->a, after);
    bin_result_reg(c, RAX, TM_INT);
}

static void float_arith(jc *c, uint32_t i, uint8_t op)
{
    uint32_t qx = c->H - 2, qy = c->H - 1;
    /* the result register: x's own when x is a float register (it dies here), else a fresh one
     * (allocating may spill an operand to memory, so the entries are read afterwards) */
    bool inplace = c->vs[qx].kind == V_XREG && !c->vs[qx].home;
    int r = inplace ? c->vs[qx].reg : alloc_xmm(c);
    vent *x = &c->vs[qx], *y = &c->vs[qy];
    if (!inplace)
        ldf(c, x, qx, r);
    uint8_t sop = op == NVM_OP_ADD   ? SD_ADD
                  : op == NVM_OP_SUB ? SD_SUB
                  : op == NVM_OP_MUL ? SD_MUL
                                     : SD_DIV;
    if (y->m == TM_FLOAT && y->kind == V_CONST && op != NVM_OP_DIV) {
        sd_rm(&c->a, sop, r, RBX, pool_disp(c, y->k));
    } else if (y->m == TM_FLOAT && y->kind == V_MEM && op != NVM_OP_DIV) {
        sd_rm(&c->a, sop, r, R13, cell(c, qy));
    } else if (y->m == TM_FLOAT && y->kind == V_SLOT && op != NVM_OP_DIV) {
        sd_rm(&c->a, sop, r, R14, slotd(y->slot));
    } else if (y->m == TM_FLOAT && y->kind == V_FLD && op != NVM_OP_DIV) {
        sd_rm(&c->a, sop, r, y->reg, FLD);
    } else if (y->m == TM_FLOAT && y->kind == V_XREG && op != NVM_OP_DIV) {
        sd_rr(&c->a, sop, r, y->reg);
    } else {
        ldf(c, y, qy, XMM1);
        if (op == NVM_OP_DIV) {
            uint32_t after = x64_label(&c->a);
            uint32_t stub = slow_stub(c, i, qx, V_XREG, r, after);
            movq_rx(&c->a, RAX, XMM1);
            alu_rr(&c->a, ALU_ADD, RAX, RAX); /* drops the sign: zero for +0.0 and -0.0 */
            jcc(&c->a, CC_E, stub);
            sd_rr(&c->a, sop, r, XMM1);
            x64_bind(&c->a, after);
        } else {
            sd_rr(&c->a, sop, r, XMM1);
        }
    }
    /* pop both operands, keeping r */
    free_reg(c, &c->vs[qy]);
    if (!inplace)
        free_reg(c, &c->vs[qx]);
    c->H -= 2;
    vent e = mk(V_XREG, TM_FLOAT);
    e.reg = (uint8_t)r;
    push(c, e);
}

/* Arithmetic on operands of unknown type: int fast path, float fast path, else a step. The
 * result is left in its cell. */
static void guarded_arith(jc *c, uint32_t i, uint8_t op, tmask res)
{
    uint32_t qx = c->H - 2, qy = c->H - 1;
    vent *x = &c->vs[qx], *y = &c->vs[qy];
    uint32_t done = x64_label(&c->a);
    uint32_t stub = slow_stub(c, i, qx, V_MEM, 0, done);
    bool can_int = (x->m & TM_INT) && (y->m & TM_INT);
    bool can_flt = (x->m & TM_FLOAT) && (y->m & TM_FLOAT) && op != NVM_OP_MOD;
    uint32_t not_int = x64_label(&c->a);
    if (can_int) {
        check_tag(c, qx, NVM_T_INT, not_int);
        check_tag(c, qy, NVM_T_INT, not_int);
        ld(c, x, qx, RAX);
        if ((op == NVM_OP_DIV || op == NVM_OP_MOD) && y->kind == V_CONST && y->k >= 2) {
            int_divmod_const(c, op, y->k);
        } else if (op == NVM_OP_DIV || op == NVM_OP_MOD) {
            ld(c, y, qy, RCX);
            int_divmod_rcx(c, op, stub);
        } else {
            ld(c, y, qy, RCX);
            if (op == NVM_OP_MUL)
                imul_rr(&c->a, RAX, RCX);
            else
                alu_rr(&c->a, op == NVM_OP_ADD ? ALU_ADD : ALU_SUB, RAX, RCX);
            jcc(&c->a, CC_O, stub);
        }
        mov_mr(&c->a, R13, cell(c, qx), RAX);
        mov64_mi(&c->a, R13, cell(c, qx) + TAG, (int32_t)NVM_T_INT);
        jmp(&c->a, done);
    }
    x64_bind(&c->a, not_int);
    if (can_flt) {
        check_tag(c, qx, NVM_T_FLOAT, stub);
        check_tag(c, qy, NVM_T_FLOAT, stub);
        ldf(c, x, qx, XMM0);
        ldf(c, y, qy, XMM1);
        uint8_t sop = op == NVM_OP_ADD   ? SD_ADD
                      : op == NVM_OP_SUB ? SD_SUB
                      : op == NVM_OP_MUL ? SD_MUL
                                         : SD_DIV;
        if (op == NVM_OP_DIV) {
            movq_rx(&c->a, RAX, XMM1);
            alu_rr(&c->a, ALU_ADD, RAX, RAX);
            jcc(&c->a, CC_E, stub);
        }
        sd_rr(&c->a, sop, XMM0, XMM1);
        movsd_mx(&c->a, R13, cell(c, qx), XMM0);
        mov64_mi(&c->a, R13, cell(c, qx) + TAG, (int32_t)NVM_T_FLOAT);
        jmp(&c->a, done);
    } else {
        jmp(&c->a, stub);
    }
    x64_bind(&c->a, done);
    pop_n(c, 2);
    push(c, mk(V_MEM, res));
}

/* Comparison producing EAX = 0/1 (or flags for a fused branch when `fused_cc` is non-NULL).
 * Returns true when the result is in flags with condition *cc, false when in EAX. */
/* fuse_target: the label of a fused JZ/JNZ (jump when the result is `fuse_when`), or UINT32_MAX.
 * Returns 1 when the result is in flags (condition *cc), 0 when in EAX, 2 when the fused branch
 * has been emitted. */
static int compare(jc *c, uint32_t i, uint8_t op, int *cc, uint32_t fuse_target, bool fuse_when)
{
    uint32_t qx = c->H - 2, qy = c->H - 1;
    vent *x = &c->vs[qx], *y = &c->vs[qy];
    if (x->m == TM_INT && y->m == TM_INT) {
        int xr = RAX; /* a register operand is compared in place */
        if (x->kind == V_REG)
            xr = x->reg;
        else
            ld(c, x, qx, RAX);
        if (y->kind == V_CONST && small(y->k))
            alu_ri(&c->a, ALU_CMP, xr, (int32_t)y->k);
        else if (y->kind == V_CONST)
            alu_rm(&c->a, ALU_CMP, xr, RBX, pool_disp(c, y->k));
        else if (y->kind == V_MEM)
            alu_rm(&c->a, ALU_CMP, xr, R13, cell(c, qy));
        else if (y->kind == V_SLOT)
            alu_rm(&c->a, ALU_CMP, xr, R14, slotd(y->slot));
        else if (y->kind == V_REG)
            alu_rr(&c->a, ALU_CMP, xr, y->reg);
        else {
            ld(c, y, qy, RCX);
            alu_rr(&c->a, ALU_CMP, xr, RCX);
        }
        *cc = int_cc(op);
        return 1;
    }
    if (x->m == TM_BOOL && y->m == TM_BOOL && (op == NVM_OP_EQ || op == NVM_OP_NE)) {
        ld(c, x, qx, RAX);
        ld(c, y, qy, RCX);
        alu_rr(&c->a, ALU_CMP, RAX, RCX);
        *cc = int_cc(op);
        return 1;
    }
    bool nums = (x->m | y->m) == ((x->m | y->m) & TM_NUM) && (x->m == TM_FLOAT || y->m == TM_FLOAT);
    if (nums && nvm_tm_single(x->m) >= 0 && nvm_tm_single(y->m) >= 0 && op != NVM_OP_EQ &&
        op != NVM_OP_NE) {
        ldf(c, x, qx, XMM0);
        ldf(c, y, qy, XMM1);
        /* NaN compares false: ucomisd sets CF/ZF/PF on unordered, so use above/above-equal */
        if (op == NVM_OP_LT || op == NVM_OP_LE)
            ucomisd_rr(&c->a, XMM1, XMM0);
        else
            ucomisd_rr(&c->a, XMM0, XMM1);
        *cc = (op == NVM_OP_LT || op == NVM_OP_GT) ? CC_A : CC_AE;
        return 1;
    }
    /* unknown types: int fast path, else the interpreter; the bool lands in EAX */
    uint32_t done = x64_label(&c->a);
    uint32_t slow = x64_label(&c->a);
    {
        int saved = c->a.cur;
        c->a.cur = 1;
        x64_bind(&c->a, slow);
        cold_step(c, i, qx);
        mov32_rm(&c->a, RAX, R13, cell(c, qx));
        if (fuse_target != UINT32_MAX) {
            test32_rr(&c->a, RAX, RAX);
            jcc(&c->a, fuse_when ? CC_NE : CC_E, fuse_target);
        }
        jmp(&c->a, done);
        c->a.cur = saved;
    }
    if ((x->m & TM_INT) && (y->m & TM_INT)) {
        check_tag(c, qx, NVM_T_INT, slow);
        check_tag(c, qy, NVM_T_INT, slow);
        ld(c, x, qx, RCX);
        ld(c, y, qy, RDX);
        alu_rr(&c->a, ALU_CMP, RCX, RDX);
        if (fuse_target != UINT32_MAX)
            jcc(&c->a, fuse_when ? int_cc(op) : (int_cc(op) ^ 1), fuse_target);
        else
            setcc(&c->a, int_cc(op), RAX);
    } else {
        jmp(&c->a, slow);
    }
    x64_bind(&c->a, done);
    return fuse_target != UINT32_MAX ? 2 : 0;
}

/* JZ/JNZ on the top entry (already the only entry left unflushed). */
static void branch_on_top(jc *c, uint32_t i, bool jump_if_true, uint32_t target)
{
    uint32_t q = c->H - 1;
    vent *e = &c->vs[q];
    (void)i;
    if (e->m == TM_BOOL || e->m == TM_INT) {
        bool w = e->m == TM_INT; /* a bool's payload is its 32-bit `b` */
        if (e->kind == V_MEM) {
            if (w)
                alu64_mi(&c->a, ALU_CMP, R13, cell(c, q), 0);
            else
                alu32_mi(&c->a, ALU_CMP, R13, cell(c, q), 0);
        } else if (e->kind == V_SLOT) {
            if (w)
                alu64_mi(&c->a, ALU_CMP, R14, slotd(e->slot), 0);
            else
                alu32_mi(&c->a, ALU_CMP, R14, slotd(e->slot), 0);
        } else {
            ld(c, e, q, RAX);
            if (w)
                test_rr(&c->a, RAX, RAX);
            else
                test32_rr(&c->a, RAX, RAX);
        }
        jcc(&c->a, jump_if_true ? CC_NE : CC_E, target);
        pop_n(c, 1);
        return;
    }
    /* unknown: bools inline, anything else through nvm_rt_truthy */
    mat(c, q);
    uint32_t slow = x64_label(&c->a), test = x64_label(&c->a), notbool = x64_label(&c->a);
    alu32_mi(&c->a, ALU_CMP, R13, cell(c, q) + TAG, NVM_T_BOOL);
    jcc(&c->a, CC_NE, notbool);
    mov32_rm(&c->a, RAX, R13, cell(c, q));
    x64_bind(&c->a, test);
    test32_rr(&c->a, RAX, RAX);
    jcc(&c->a, jump_if_true ? CC_NE : CC_E, target);
    {
        int saved = c->a.cur;
        uint32_t back = x64_label(&c->a);
        c->a.cur = 1;
        x64_bind(&c->a, notbool);
        alu32_mi(&c->a, ALU_CMP, R13, cell(c, q) + TAG, NVM_T_INT);
        jcc(&c->a, CC_NE, slow);
        mov_rm(&c->a, RAX, R13, cell(c, q));
        test_rr(&c->a, RAX, RAX);
        setcc(&c->a, CC_NE, RAX);
        jmp(&c->a, test);
        x64_bind(&c->a, slow);
        mov_rr(&c->a, RDI, R12);
        lea(&c->a, RSI, R13, cell(c, q));
        call_abs(&c->a, X64_FN(nvm_rt_truthy));
        cache_reload(c);
        jmp(&c->a, test);
        c->a.cur = saved;
        (void)back;
    }
    pop_n(c, 1);
}

/* ---- whole functions ---- */
/* Native entry of a function left to the interpreter. */
static void emit_interp_entry(jc *c)
{
    alu_ri(&c->a, ALU_SUB, RSP, 8);
    mov_mr(&c->a, R12, VOFF(jit_gas), R15);
    mov_rr(&c->a, RDI, R12);
    mov_rr(&c->a, RSI, R13);
    mov_rr(&c->a, RDX, R14);
    call_abs(&c->a, X64_FN(nvm_rt_interp_call));
    mov_rm(&c->a, R15, R12, VOFF(jit_gas));
    alu_ri(&c->a, ALU_ADD, RSP, 8);
    ret(&c->a);
}

static void emit_epilogue(jc *c, int code)
{
    alu_ri(&c->a, ALU_ADD, RSP, 8);
    if (code == 0)
        x64_op_rr(&c->a, 0, 0x31, RAX, RAX); /* xor eax, eax */
    else
        mov_ri(&c->a, RAX, code);
    ret(&c->a);
}

/* Gas check at the entry of block bi = [s, e), charging `extra` more for the block its JMP
 * enters after that block's own check. */
static void emit_gas(jc *c, uint32_t bi, uint32_t s, uint32_t e, uint32_t extra)
{
    uint32_t L = e - s + extra;
    uint32_t again = x64_label(&c->a), stub = x64_label(&c->a);
    x64_bind(&c->a, again);
    alu_ri(&c->a, ALU_SUB, R15, (int32_t)L);
    jcc(&c->a, CC_S, stub);
    x64_bind(&c->a, c->post0 + bi);
    int saved = c->a.cur;
    c->a.cur = 1;
    x64_bind(&c->a, stub);
    alu_ri(&c->a, ALU_ADD, R15, (int32_t)L);
    mov_mr(&c->a, R12, VOFF(jit_gas), R15);
    mov_rr(&c->a, RDI, R12);
    mov_ri(&c->a, RSI, L);
    mov_ri(&c->a, RDX, s);
    lea(&c->a, RCX, R13, cell(c, c->H));
    call_abs(&c->a, X64_FN(nvm_rt_gas));
    mov_rm(&c->a, R15, R12, VOFF(jit_gas));
    {
        uint32_t reload = x64_label(&c->a), no = x64_label(&c->a);
        test32_rr(&c->a, RAX, RAX);
        jcc(&c->a, CC_NE, no);
        x64_bind(&c->a, reload);
        for (uint32_t k = 0; k < c->hp->nh; k++)
            if ((c->hvalid & ~c->hkeep) & (1u << k))
                home_load(c, k);
        jmp(&c->a, again);
        x64_bind(&c->a, no);
    }
    alu_ri(&c->a, ALU_CMP, RAX, NVM_RT_DEOPT);
    jcc(&c->a, CC_NE, c->unw);
    /* the rest of this frame runs in the interpreter */
    mov_rr(&c->a, RDI, R12);
    mov_ri(&c->a, RSI, s);
    lea(&c->a, RDX, R13, cell(c, c->H));
    mov_rr(&c->a, RCX, R14);
    call_abs(&c->a, X64_FN(nvm_rt_deopt));
    mov_rm(&c->a, R15, R12, VOFF(jit_gas));
    alu_ri(&c->a, ALU_ADD, RSP, 8);
    ret(&c->a);
    c->a.cur = saved;
}

/* The slot whose current value entry q is (a LOAD not yet copied, or its home), else -1. */
static int64_t entry_slot(const jc *c, uint32_t q)
{
    const vent *e = &c->vs[q];
    return e->kind == V_SLOT || e->home ? (int64_t)e->slot : -1;
}

/* Before an array or map operation on entry q (before its slow stub, so that the stub restores
 * it): when q is a slot's value statically known to be an array or a map, keep the object's
 * address in a free pool register for the rest of the block (until a STORE to the slot). */
static void obj_prepare(jc *c, uint32_t q)
{
    int64_t s = entry_slot(c, q);
    tmask m = c->vs[q].m;
    if (s < 0 || (m != TM_ARR && m != TM_MAP))
        return;
    int hk = home_of(c, (uint32_t)s);
    if (hk >= 0 && c->hp->kind[hk] == HK_PTR) {
        home_ensure(c, 1u << hk);
        return;
    }
    if (cache_find_kind(c, (uint32_t)s, true) >= 0 || c->ncached >= 32)
        return;
    for (int i = 0; i < NGPR; i++) {
        if (c->gused & (1u << i))
            continue;
        c->gused |= 1u << i;
        int r = gpr_pool[i];
        load_objaddr(c, r, (uint32_t)s);
        c->cached[c->ncached] = (uint32_t)s;
        c->creg[c->ncached] = (int8_t)r;
        c->cxmm[c->ncached] = false;
        c->cptr[c->ncached] = true;
        c->ncached++;
        return;
    }
}

/* After an operation that raises unless entry q is a `t` (a map or an array): the entry, and the
 * slot it is the value of, are known to hold one for the rest of the block. */
static void refine_obj(jc *c, uint32_t q, tmask t)
{
    int64_t s = entry_slot(c, q);
    c->vs[q].m = t;
    if (s < 0)
        return;
    c->sl[s] = t;
    for (uint32_t k = 0; k < c->H; k++)
        if (c->vs[k].kind == V_SLOT && c->vs[k].slot == (uint32_t)s)
            c->vs[k].m = t;
}

/* The register holding the address of the map/array object of entry q (handle in its payload):
 * its cached address, or RCX. */
static int obj_of(jc *c, uint32_t q)
{
    int64_t s = entry_slot(c, q);
    if (s >= 0) {
        int hk = home_of(c, (uint32_t)s);
        if (hk >= 0 && c->hp->kind[hk] == HK_PTR && (c->hvalid & (1u << hk)))
            return c->hp->reg[hk];
        int k = cache_find_kind(c, (uint32_t)s, true);
        if (k >= 0)
            return c->creg[k];
    }
    ld(c, &c->vs[q], q, RAX);
    mov_rm(&c->a, RCX, R12, VOFF(heap.objs));
    /* mov rcx, [rcx + rax*8] (handle is 32-bit, zero-extended by the 32-bit move below) */
    x64_op_rr(&c->a, 0, 0x89, RAX, RAX); /* mov eax, eax */
    x64_rex(&c->a, 1, RCX, RAX, false);
    x64_byte(&c->a, 0x8B);
    x64_byte(&c->a, (uint8_t)(0x04 | ((RCX & 7) << 3)));
    x64_byte(&c->a, (uint8_t)(0xC0 | ((RAX & 7) << 3) | (RCX & 7)));
    return RCX;
}

/* RDX = &pfuncs[fi].code[i] (the VM's prepared copy of instruction i) */
static void pinsn(jc *c, int r, uint32_t i)
{
    mov_rm(&c->a, r, R12, VOFF(pfuncs));
    mov_rm(&c->a, r, r, (int32_t)(c->fi * sizeof(nvm_pfunc) + offsetof(nvm_pfunc, code)));
    if (i != 0)
        alu_ri(&c->a, ALU_ADD, r, (int32_t)(i * sizeof(nvm_insn)));
}

/* Compiles one function; false on a bound (the function then runs interpreted). */
/* GET_FIELD/SET_FIELD at i on the map at position q: RDX = the entry the prepared instruction's
 * inline cache names, checked to hold the very key string; any miss jumps to `stub`. */
_Static_assert(sizeof(nvm_mapentry) == 40, "field_ic multiplies by 40");
static void field_ic(jc *c, uint32_t i, uint32_t q, uint32_t stub)
{
    check_tag(c, q, NVM_T_MAP, stub);
    int mr = obj_of(c, q);
    /* the cached position: pfuncs[fi].code[i].k */
    mov_rm(&c->a, RDX, R12, VOFF(pfuncs));
    mov_rm(&c->a, RDX, RDX, (int32_t)(c->fi * sizeof(nvm_pfunc) + offsetof(nvm_pfunc, code)));
    mov32_rm(&c->a, RDX, RDX, (int32_t)(i * sizeof(nvm_insn) + offsetof(nvm_insn, k)));
    alu32_rm(&c->a, ALU_CMP, RDX, mr, (int32_t)offsetof(nvm_map, nentries));
    jcc(&c->a, CC_AE, stub);
    lea_x5(&c->a, RDX);         /* pos * 5 */
    shift_ri(&c->a, 4, RDX, 3); /* pos * 40 = sizeof(nvm_mapentry) */
    alu_rm(&c->a, ALU_ADD, RDX, mr, (int32_t)offsetof(nvm_map, entries));
    alu32_mi(&c->a, ALU_CMP, RDX, (int32_t)offsetof(nvm_mapentry, key) + TAG, NVM_T_STR);
    jcc(&c->a, CC_NE, stub);
    mov_rm(&c->a, RAX, R12, VOFF(consts));
    mov32_rm(&c->a, RAX, RAX, (int32_t)(16 * c->fn->code[i].a));
    alu32_rm(&c->a, ALU_CMP, RAX, RDX, (int32_t)offsetof(nvm_mapentry, key));
    jcc(&c->a, CC_NE, stub);
}

/* A failed speculation at instruction i: everything goes to memory and the generic version of
 * the function continues at instruction i (after refunding the rest of this block: the generic
 * block at i charges its own). Returns the cold stub's label. */
static uint32_t spec_exit(jc *c, uint32_t i, uint32_t gen0)
{
    uint32_t stub = x64_label(&c->a);
    int saved = c->a.cur;
    c->a.cur = 1;
    x64_bind(&c->a, stub);
    for (uint32_t q = 0; q < c->H; q++)
        emit_mat(c, q);
    alu_ri(&c->a, ALU_ADD, R15, (int32_t)(c->blk_end - i + c->blk_extra));
    if (c->hpg != NULL) {
        const hplan *g = c->hpg;
        uint32_t gb = c->gblk_of[i];
        uint32_t em = gb == UINT32_MAX ? 0 : g->emask[gb];
        for (uint32_t k = 0; k < g->nh; k++)
            if (em & (1u << k))
                home_load_plan(c, g, k);
    }
    jmp(&c->a, gen0 + i);
    c->a.cur = saved;
    return stub;
}

/* Slots that only ever hold one constant: every STORE is preceded, in its block, by the same
 * PUSH / PUSH_F64. cs[slot]: that constant (V_CONST), V_SLOT (not a constant) or V_MEM (never
 * stored). */
static void const_slots(const nvm_func *fn, const nvm_fninfo *f, uint32_t S, vent *cslot)
{
    for (uint32_t s = 0; s < S; s++)
        cslot[s] = mk(V_MEM, 0); /* no STORE seen yet */
    for (uint32_t i = 0; i < fn->ninsn; i++) {
        const nvm_insn *in = &fn->code[i];
        if (in->op != NVM_OP_STORE || f->blk_of[i] == UINT32_MAX)
            continue;
        vent *cs = &cslot[in->a];
        const nvm_insn *pv = i > 0 ? &fn->code[i - 1] : NULL;
        bool ok = pv != NULL && f->blk_of[i - 1] == f->blk_of[i] &&
                  (pv->op == NVM_OP_PUSH || pv->op == NVM_OP_PUSH_F64);
        vent k = mk(V_CONST, pv != NULL && pv->op == NVM_OP_PUSH ? TM_INT : TM_FLOAT);
        if (ok) {
            if (pv->op == NVM_OP_PUSH)
                k.k = pv->k.i;
            else
                memcpy(&k.k, &pv->k.f, 8);
        }
        if (!ok || cs->kind == V_SLOT || (cs->kind == V_CONST && (cs->k != k.k || cs->m != k.m))) {
            cs->kind = V_SLOT;
            continue;
        }
        *cs = k;
    }
}

static bool val_home_type(tmask m)
{
    return m == TM_INT || m == TM_STR;
}
static bool ptr_home_type(tmask m)
{
    return m == TM_ARR || m == TM_MAP;
}
/* The kind of home a slot of type m at a LOAD would use (-1: none). */
static int home_kind(tmask m)
{
    return m == TM_FLOAT ? HK_FLT : val_home_type(m) ? HK_VAL : ptr_home_type(m) ? HK_PTR : -1;
}

static void hplan_free(hplan *p)
{
    free(p->of);
    free(p->emask);
    p->of = NULL;
    p->emask = NULL;
    p->nh = 0;
}

typedef struct lrange {
    uint32_t t, j; /* a loop: the back edge at j jumps to t <= j */
} lrange;
static int lrange_cmp(const void *x, const void *y)
{
    const lrange *a = x, *b = y;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    return a->j > b->j ? -1 : a->j < b->j;
}

/* Chooses the home registers of a version (analysis f) and the homes valid at each block entry.
 * Loops are the ranges [t, j] of backward jumps; a slot's weight is the sum over its LOADs that
 * read a value from before their block (8^depth each, depth >= 1), voted by the slot's type at
 * that block's entry. The heaviest int/str/array/map slots get RBP, R11, R10, R9; the heaviest
 * float slots XMM15 down to XMM8. A home is valid at the entry of a block inside a loop when its
 * slot has that type there and is used in the innermost loop around the block; never at the
 * function entry or a handler. false: out of memory. */
static bool plan_homes(const nvm_func *fn, const nvm_fninfo *f, uint32_t W, uint32_t S, hplan *p)
{
    uint32_t n = fn->ninsn, nb = f->nblk;
    bool ok = false;
    memset(p, 0, sizeof *p);
    p->of = malloc(S + 1);
    p->emask = calloc(nb + 1, sizeof(uint32_t));
    lrange *rg = malloc(sizeof(lrange) * (nb + 1));
    int32_t *depth = calloc(n + 2, sizeof(int32_t));
    /* weights per slot and kind of home */
    uint64_t *wk = calloc(3 * ((size_t)S + 1), sizeof(uint64_t));
    uint32_t *seen = calloc(S + 1, sizeof(uint32_t));
    vent *cs = malloc(sizeof(vent) * (S + 1));
    uint32_t *refs = NULL, *rstart = NULL, *stk = NULL;
    bool *handler = calloc(n + 1, 1);
    if (p->of == NULL || p->emask == NULL || rg == NULL || depth == NULL || wk == NULL ||
        seen == NULL || cs == NULL || handler == NULL)
        goto done;
    memset(p->of, -1, S + 1);
    uint32_t nr = 0;
    for (uint32_t bi = 0; bi < nb; bi++) {
        uint32_t j = f->bend[bi] - 1;
        uint8_t op = fn->code[j].op;
        if ((op == NVM_OP_JMP || op == NVM_OP_JZ || op == NVM_OP_JNZ) && fn->code[j].a <= j &&
            f->seen[bi]) {
            rg[nr++] = (lrange){fn->code[j].a, j};
            depth[fn->code[j].a]++;
            depth[j + 1]--;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (fn->code[i].op == NVM_OP_ENTER_TRY)
            handler[fn->code[i].a] = true;
        if (i > 0)
            depth[i] += depth[i - 1];
    }
    if (nr == 0 || S == 0) {
        ok = true;
        goto done;
    }
    const_slots(fn, f, S, cs);
    /* weights */
    for (uint32_t bi = 0; bi < nb; bi++) {
        if (!f->seen[bi])
            continue;
        const tmask *st = f->state + (size_t)bi * (W + S) + W;
        for (uint32_t i = f->bstart[bi]; i < f->bend[bi]; i++) {
            const nvm_insn *in = &fn->code[i];
            if (in->op == NVM_OP_STORE)
                seen[in->a] = bi + 1;
            if (in->op != NVM_OP_LOAD || seen[in->a] == bi + 1 || depth[i] <= 0)
                continue;
            uint64_t w = 1ull << (3 * (depth[i] < 5 ? depth[i] : 5));
            tmask m = (tmask)(st[in->a] & TM_ANY);
            if (st[in->a] != m)
                continue; /* may be unset here */
            int hk = home_kind(m);
            if (hk >= 0)
                wk[3 * (size_t)in->a + (size_t)hk] += w;
        }
    }
    /* the heaviest slots of each class */
    static const uint8_t gregs[NGHOME] = {RBP, R11, R10, R9};
    static const uint8_t xregs[NXHOME] = {15, 14, 13, 12, 11, 10, 9, 8};
    uint32_t ng = 0, nx = 0;
    for (;;) {
        uint64_t best = 7;
        uint32_t bs = UINT32_MAX;
        int bk = 0;
        for (uint32_t sl = 0; sl < S; sl++) {
            if (p->of[sl] >= 0 || cs[sl].kind == V_CONST)
                continue;
            const uint64_t *w = wk + 3 * (size_t)sl;
            int kd = w[HK_FLT] > w[HK_VAL] ? HK_FLT : HK_VAL;
            if (w[HK_PTR] > w[kd])
                kd = HK_PTR;
            if (w[kd] > best && (kd == HK_FLT ? nx < NXHOME : ng < NGHOME)) {
                best = w[kd];
                bs = sl;
                bk = kd;
            }
        }
        if (bs == UINT32_MAX)
            break;
        uint32_t k = p->nh++;
        p->slot[k] = bs;
        p->kind[k] = (uint8_t)bk;
        p->x[k] = bk == HK_FLT;
        p->reg[k] = bk == HK_FLT ? xregs[nx++] : gregs[ng++];
        p->of[bs] = (int8_t)k;
    }
    if (p->nh == 0) {
        ok = true;
        goto done;
    }
    /* the references of each home, in instruction order (refs[rstart[k] .. rstart[k + 1])) */
    rstart = calloc(p->nh + 1, sizeof(uint32_t));
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        const nvm_insn *in = &fn->code[i];
        if ((in->op == NVM_OP_LOAD || in->op == NVM_OP_STORE) && p->of[in->a] >= 0)
            total++;
    }
    refs = malloc(sizeof(uint32_t) * (total + 1));
    stk = malloc(sizeof(uint32_t) * (nr + 1));
    if (rstart == NULL || refs == NULL || stk == NULL)
        goto done;
    for (uint32_t i = 0; i < n; i++) {
        const nvm_insn *in = &fn->code[i];
        if ((in->op == NVM_OP_LOAD || in->op == NVM_OP_STORE) && p->of[in->a] >= 0)
            rstart[p->of[in->a] + 1]++;
    }
    for (uint32_t k = 0; k < p->nh; k++)
        rstart[k + 1] += rstart[k];
    memset(seen, 0, sizeof(uint32_t) * (p->nh + 1));
    for (uint32_t i = 0; i < n; i++) {
        const nvm_insn *in = &fn->code[i];
        if ((in->op == NVM_OP_LOAD || in->op == NVM_OP_STORE) && p->of[in->a] >= 0) {
            uint32_t k = (uint32_t)p->of[in->a];
            refs[rstart[k] + seen[k]++] = i;
        }
    }
    /* entry masks: the innermost loop around each block (a stack of the open ranges) */
    qsort(rg, nr, sizeof *rg, lrange_cmp);
    uint32_t ri = 0, ns = 0;
    for (uint32_t bi = 0; bi < nb; bi++) {
        uint32_t s0 = f->bstart[bi];
        while (ri < nr && rg[ri].t <= s0)
            stk[ns++] = ri++;
        while (ns > 0 && rg[stk[ns - 1]].j < s0)
            ns--;
        if (ns == 0 || bi == 0 || !f->seen[bi] || handler[s0])
            continue;
        const tmask *st = f->state + (size_t)bi * (W + S) + W;
        for (uint32_t k = 0; k < p->nh; k++) {
            if (home_kind(st[p->slot[k]]) != p->kind[k])
                continue;
            /* used in a loop around the block: a reference in [r->t, r->j] (the 16 innermost
             * loops are looked at, which bounds the work on deeply nested code) */
            for (uint32_t e = ns; e-- > 0 && ns - e <= 16;) {
                const lrange *r = &rg[stk[e]];
                if (r->j < s0)
                    continue;
                uint32_t lo = rstart[k], hi = rstart[k + 1];
                while (lo < hi) {
                    uint32_t mid = lo + (hi - lo) / 2;
                    if (refs[mid] < r->t)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                if (lo < rstart[k + 1] && refs[lo] <= r->j) {
                    p->emask[bi] |= 1u << k;
                    break;
                }
            }
        }
    }
    ok = true;
done:
    free(rg);
    free(depth);
    free(wk);
    free(seen);
    free(cs);
    free(refs);
    free(rstart);
    free(stk);
    free(handler);
    if (!ok)
        hplan_free(p);
    return ok;
}

/* Float speculation at site i: both operands must be floats. */
static void spec_float(jc *c, uint32_t i, uint32_t gen0)
{
    uint32_t stub = spec_exit(c, i, gen0);
    for (uint32_t q = c->H - 2; q < c->H; q++) {
        check_tag(c, q, NVM_T_FLOAT, stub);
        c->vs[q].m = TM_FLOAT;
    }
}

/* Compiles one version of a function. ilabel0: its instruction labels (allocated by the caller);
 * entry: emit the prologue (the version calls enter); spec/argspec/gen0: speculation sites,
 * argument types assumed on entry and the generic version's instruction labels (a failed guard
 * continues there). */
static bool compile_fn(jc *c, const nvm_fninfo *f, uint32_t ilabel0, bool entry,
                       const uint8_t *spec, const tmask *argspec, uint32_t gen0)
{
    const nvm_func *fn = c->fn;
    uint32_t W = c->W, S = c->S;
    c->f = f;
    c->gres = c->xres = c->hkeep = 0;
    for (uint32_t k = 0; k < c->hp->nh; k++) {
        int r = c->hp->reg[k];
        if (r == RBP && !c->hp->x[k])
            c->hkeep |= 1u << k;
        for (int q = 0; q < (c->hp->x[k] ? NXMM : NGPR); q++) {
            if (c->hp->x[k] && xmm_pool[q] == r)
                c->xres |= 1u << q;
            if (!c->hp->x[k] && gpr_pool[q] == r)
                c->gres |= 1u << q;
        }
    }
    c->has_try = false;
    for (uint32_t i = 0; i < fn->ninsn; i++)
        c->has_try |= fn->code[i].op == NVM_OP_ENTER_TRY;
    c->unw = x64_label(&c->a);
    c->ilabel0 = ilabel0;
    const_slots(fn, f, S, c->cslot);
    /* prologue */
    if (!entry)
        goto body;
    alu_ri(&c->a, ALU_SUB, RSP, 8);
    if (c->has_try) {
        mov32_rm(&c->a, RAX, R12, VOFF(depth));
        alu_ri(&c->a, ALU_SUB, RAX, 1);
        mov_mr(&c->a, RSP, 0, RAX);
    }
    for (uint32_t s = 0; s < S; s++)
        mov64_mi(&c->a, R14, slotd(s) + TAG, (int32_t)NVM_T_UNDEF);
    /* speculative version: arguments of the assumed types, else the generic version */
    for (uint32_t q = 0; argspec != NULL && q < c->consumed; q++) {
        int t = nvm_tm_single(argspec[q]);
        if (t < 0)
            continue;
        alu32_mi(&c->a, ALU_CMP, R13, cell(c, q) + TAG, t);
        jcc(&c->a, CC_NE, gen0);
    }

body:
    c->post0 = c->a.nlabels;
    for (uint32_t bi = 0; bi < f->nblk; bi++)
        (void)x64_label(&c->a);
    for (uint32_t bi = 0; bi < f->nblk; bi++) {
        uint32_t s = f->bstart[bi], e = f->bend[bi];
        c->blk_end = e;
        /* A block ending in a JMP to another block that does not itself end in a JMP (a loop
         * body going back to its test) also pays for that block and enters it after its check:
         * one check per round. The interpreter's exhaustion point is kept: when the run's gas
         * cannot cover both, this block already hands the frame to the interpreter; a fault
         * refunds the rest of both. */
        c->blk_extra = 0;
        if (fn->code[e - 1].op == NVM_OP_JMP) {
            uint32_t t = fn->code[e - 1].a, tb = f->blk_of[t];
            if (tb != UINT32_MAX && tb != bi && f->bstart[tb] == t && f->seen[tb] &&
                fn->code[f->bend[tb] - 1].op != NVM_OP_JMP)
                c->blk_extra = f->bend[tb] - t;
        }
        /* block entry: everything in memory, masks from the analysis */
        const tmask *st = f->state + (size_t)bi * (W + S);
        c->H = (uint32_t)(fn->heights[s] + (int32_t)c->consumed);
        c->gused = c->gres;
        c->xused = c->xres;
        c->hvalid = f->seen[bi] ? c->hp->emask[bi] : 0;
        c->ncached = 0;
        for (uint32_t q = 0; q < c->H; q++)
            c->vs[q] = mk(V_MEM, f->seen[bi] ? st[q] : TM_ANY);
        memcpy(c->sl, st + W, S);
        x64_bind(&c->a, c->ilabel0 + s);
        emit_gas(c, bi, s, e, c->blk_extra);
        for (uint32_t i = s; i < e; i++) {
            const nvm_insn *in = &fn->code[i];
            if (i != s)
                x64_bind(&c->a, c->ilabel0 + i);
            uint32_t H = c->H;
            switch (in->op) {
            case NVM_OP_NOP: break;
            case NVM_OP_PUSH: {
                vent v = mk(V_CONST, TM_INT);
                v.k = in->k.i;
                push(c, v);
                break;
            }
            case NVM_OP_PUSH_F64: {
                vent v = mk(V_CONST, TM_FLOAT);
                memcpy(&v.k, &in->k.f, 8);
                push(c, v);
                break;
            }
            case NVM_OP_PUSH_BOOL: {
                vent v = mk(V_CONST, TM_BOOL);
                v.k = in->b != 0;
                push(c, v);
                break;
            }
            case NVM_OP_PUSH_NULL: push(c, mk(V_CONST, TM_NULL)); break;
            case NVM_OP_PUSH_STR:
                mov_rm(&c->a, RAX, R12, VOFF(consts));
                mov_rm(&c->a, RCX, RAX, (int32_t)(16 * in->a));
                mov_mr(&c->a, R13, cell(c, H), RCX);
                mov64_mi(&c->a, R13, cell(c, H) + TAG, (int32_t)NVM_T_STR);
                push(c, mk(V_MEM, TM_STR));
                break;
            case NVM_OP_POP: pop_n(c, 1); break;
            case NVM_OP_DUP:
            case NVM_OP_PICK: {
                uint32_t src = H - 1 - (in->op == NVM_OP_PICK ? in->a : 0);
                vent v = c->vs[src];
                if (v.home) {
                    /* another use of the same home register */
                } else if (v.kind == V_REG || v.kind == V_FLD) {
                    v.reg = (uint8_t)alloc_gpr(c);
                    mov_rr(&c->a, v.reg, c->vs[src].reg);
                } else if (v.kind == V_XREG) {
                    v.reg = (uint8_t)alloc_xmm(c);
                    movapd_rr(&c->a, v.reg, c->vs[src].reg);
                } else if (v.kind == V_MEM) {
                    store_to(c, &c->vs[src], src, R13, cell(c, H), false);
                }
                push(c, v);
                break;
            }
            case NVM_OP_SWAP:
            case NVM_OP_ROT:
            case NVM_OP_ROLL: {
                uint32_t n = in->op == NVM_OP_SWAP ? 1 : in->op == NVM_OP_ROT ? 2 : in->a;
                uint32_t lo = H - 1 - n;
                bool mem = false;
                /* a V_FLD may read its own cell (after C code ran): it must not move either */
                for (uint32_t q = lo; q < H; q++)
                    mem |= c->vs[q].kind == V_MEM || c->vs[q].kind == V_FLD;
                if (!mem) { /* permute descriptors */
                    vent t = c->vs[lo];
                    memmove(&c->vs[lo], &c->vs[lo + 1], sizeof(vent) * n);
                    c->vs[H - 1] = t;
                    break;
                }
                for (uint32_t q = lo; q < H; q++)
                    mat(c, q);
                /* rotate cells lo..H-1 left by one through RDX:ECX (the saved bottom) */
                mov_rm(&c->a, RDX, R13, cell(c, lo));
                mov_rm(&c->a, RCX, R13, cell(c, lo) + TAG);
                for (uint32_t q = lo; q + 1 < H; q++) {
                    mov_rm(&c->a, RAX, R13, cell(c, q + 1));
                    mov_mr(&c->a, R13, cell(c, q), RAX);
                    mov_rm(&c->a, RAX, R13, cell(c, q + 1) + TAG);
                    mov_mr(&c->a, R13, cell(c, q) + TAG, RAX);
                }
                mov_mr(&c->a, R13, cell(c, H - 1), RDX);
                mov_mr(&c->a, R13, cell(c, H - 1) + TAG, RCX);
                tmask t = c->vs[lo].m;
                for (uint32_t q = lo; q + 1 < H; q++)
                    c->vs[q].m = c->vs[q + 1].m;
                c->vs[H - 1].m = t;
                break;
            }
            case NVM_OP_LOAD: {
                tmask sm = c->sl[in->a];
                if (sm & TM_UNDEF) {
                    uint32_t after = x64_label(&c->a);
                    uint32_t stub = slow_stub(c, i, H, V_MEM, 0, after);
                    alu32_mi(&c->a, ALU_CMP, R14, slotd(in->a) + TAG, NVM_T_UNDEF);
                    jcc(&c->a, CC_E, stub);
                    x64_bind(&c->a, after);
                    /* after a (never-taken) stub return the value is in its cell; keep the
                     * slot view, which holds the same value */
                }
                if (c->cslot[in->a].kind == V_CONST) {
                    push(c, c->cslot[in->a]);
                    break;
                }
                int hk = home_of(c, in->a);
                if (hk >= 0) {
                    tmask tm = (tmask)(sm & TM_ANY);
                    bool x = c->hp->x[hk];
                    if (c->hp->kind[hk] != HK_PTR && home_kind(tm) == c->hp->kind[hk]) {
                        home_ensure(c, 1u << hk);
                        vent v = mk(x ? V_XREG : V_REG, tm);
                        v.reg = c->hp->reg[hk];
                        v.home = 1;
                        v.slot = in->a;
                        push(c, v);
                        break;
                    }
                }
                int ck = cache_find(c, in->a);
                if (ck >= 0) {
                    /* stored in this block: copy the register instead of reloading memory */
                    bool xmm = c->cxmm[ck];
                    int from = c->creg[ck];
                    int r = alloc_reg(c, xmm, from);
                    vent v = mk(xmm ? V_XREG : V_REG, (tmask)(sm & TM_ANY));
                    v.reg = (uint8_t)r;
                    if (xmm)
                        movapd_rr(&c->a, r, from);
                    else
                        mov_rr(&c->a, r, from);
                    push(c, v);
                    break;
                }
                vent v = mk(V_SLOT, (tmask)(sm & TM_ANY) ? (tmask)(sm & TM_ANY) : TM_ANY);
                v.slot = in->a;
                push(c, v);
                break;
            }
            case NVM_OP_STORE: {
                uint32_t n = in->a;
                for (uint32_t q = 0; q + 1 < H; q++)
                    if ((c->vs[q].kind == V_SLOT || c->vs[q].home) && c->vs[q].slot == n)
                        mat(c, q);
                vent *v = &c->vs[H - 1];
                int t = nvm_tm_single(v->m);
                bool known = t >= 0 && c->sl[n] == v->m;
                int hk = home_of(c, n);
                if (hk >= 0) {
                    /* written through to memory, and kept in the home register */
                    cache_drop(c, n);
                    if (!(v->kind == V_SLOT && v->slot == n) && !(v->home && v->slot == n))
                        store_to(c, v, H - 1, R14, slotd(n), known);
                    home_set(c, (uint32_t)hk, v, H - 1);
                    c->sl[n] = v->m;
                    pop_n(c, 1);
                    break;
                }
                if (!(v->kind == V_SLOT && v->slot == n)) {
                    cache_drop(c, n);
                    store_to(c, v, H - 1, R14, slotd(n), known);
                }
                c->sl[n] = v->m;
                if ((v->kind == V_REG || v->kind == V_XREG) && c->ncached < 32) {
                    /* the register now caches the slot (it stays allocated) */
                    c->cached[c->ncached] = n;
                    c->creg[c->ncached] = (int8_t)v->reg;
                    c->cxmm[c->ncached] = v->kind == V_XREG;
                    c->cptr[c->ncached] = false;
                    c->ncached++;
                    c->H--;
                } else {
                    pop_n(c, 1);
                }
                break;
            }
            case NVM_OP_ADD:
            case NVM_OP_SUB:
            case NVM_OP_MUL:
            case NVM_OP_DIV:
            case NVM_OP_MOD: {
                tmask xm = c->vs[H - 2].m, ym = c->vs[H - 1].m;
                if (spec != NULL && spec[i]) {
                    spec_float(c, i, gen0);
                    float_arith(c, i, in->op);
                } else if (xm == TM_INT && ym == TM_INT) {
                    int_arith(c, i, in->op);
                } else if (in->op != NVM_OP_MOD && nvm_tm_single(xm) >= 0 &&
                           nvm_tm_single(ym) >= 0 && ((xm | ym) & ~TM_NUM) == 0) {
                    float_arith(c, i, in->op);
                } else {
                    guarded_arith(c, i, in->op, nvm_arith_mask(xm, ym, in->op == NVM_OP_ADD));
                }
                break;
            }
            case NVM_OP_NEG: {
                vent *x = &c->vs[H - 1];
                if (x->m == TM_INT) {
                    uint32_t after = x64_label(&c->a);
                    ld(c, x, H - 1, RAX);
                    uint32_t stub = slow_stub(c, i, H - 1, V_REG, RAX, after);
                    unary_r(&c->a, 3, RAX);
                    jcc(&c->a, CC_O, stub);
                    x64_bind(&c->a, after);
                    pop_n(c, 1);
                    push_gpr(c, RAX, TM_INT);
                } else if (x->m == TM_FLOAT) {
                    ld(c, x, H - 1, RAX);
                    mov_ri(&c->a, RCX, INT64_MIN);
                    alu_rr(&c->a, ALU_XOR, RAX, RCX);
                    pop_n(c, 1);
                    vent r = mk(V_XREG, TM_FLOAT);
                    r.reg = (uint8_t)alloc_xmm(c);
                    movq_xr(&c->a, r.reg, RAX);
                    push(c, r);
                } else {
                    step_inline(c, i);
                    pop_n(c, 1);
                    push(c, mk(V_MEM, TM_NUM));
                }
                break;
            }
            case NVM_OP_EQ:
            case NVM_OP_NE:
            case NVM_OP_LT:
            case NVM_OP_LE:
            case NVM_OP_GT:
            case NVM_OP_GE: {
                const nvm_insn *nx = i + 1 < e ? &fn->code[i + 1] : NULL;
                bool fuse = nx != NULL && (nx->op == NVM_OP_JZ || nx->op == NVM_OP_JNZ);
                if (fuse) {
                    flush_below(c, H - 2);
                    home_ensure(c, home_entry(c, nx->a) |
                                       (i + 2 < fn->ninsn ? home_entry(c, i + 2) : 0));
                }
                int cc = 0;
                uint32_t target = fuse ? c->ilabel0 + nx->a : UINT32_MAX;
                int flags = compare(c, i, in->op, &cc, target, fuse && nx->op == NVM_OP_JNZ);
                if (fuse) {
                    /* charge of the JZ/JNZ is in this block; the branch ends it */
                    pop_n(c, 2);
                    if (flags == 2) {
                        /* emitted by compare */
                    } else if (flags) {
                        jcc(&c->a, nx->op == NVM_OP_JNZ ? cc : (cc ^ 1), target);
                    } else {
                        test32_rr(&c->a, RAX, RAX);
                        jcc(&c->a, nx->op == NVM_OP_JNZ ? CC_NE : CC_E, target);
                    }
                    x64_bind(&c->a, c->ilabel0 + i + 1);
                    i++;
                    break;
                }
                if (flags)
                    setcc(&c->a, cc, RAX);
                pop_n(c, 2);
                push_gpr(c, RAX, TM_BOOL);
                break;
            }
            case NVM_OP_NOT:
                if (c->vs[H - 1].m == TM_BOOL) {
                    ld(c, &c->vs[H - 1], H - 1, RAX);
                    alu_ri(&c->a, ALU_XOR, RAX, 1);
                    pop_n(c, 1);
                    push_gpr(c, RAX, TM_BOOL);
                } else {
                    step_inline(c, i);
                    pop_n(c, 1);
                    push(c, mk(V_MEM, TM_BOOL));
                }
                break;
            case NVM_OP_JMP:
                flush_all(c);
                home_ensure(c, home_entry(c, in->a));
                if (c->blk_extra > 0) /* charged already: past the target's check */
                    jmp(&c->a, c->post0 + f->blk_of[in->a]);
                else
                    jmp(&c->a, c->ilabel0 + in->a);
                break;
            case NVM_OP_JZ:
            case NVM_OP_JNZ:
                flush_below(c, H - 1);
                home_ensure(c,
                            home_entry(c, in->a) | (i + 1 < fn->ninsn ? home_entry(c, i + 1) : 0));
                branch_on_top(c, i, in->op == NVM_OP_JNZ, c->ilabel0 + in->a);
                break;
            case NVM_OP_CALL: {
                const nvm_func *cf = &c->m->funcs[in->a];
                flush_all(c);
                uint32_t h = H; /* top position: the callee's entry */
                uint32_t top = x64_label(&c->a), slow = x64_label(&c->a);
                uint32_t need = cf->max_height - cf->consumed + 1; /* as prep.c */
                x64_bind(&c->a, top);
                mov32_rm(&c->a, RAX, R12, VOFF(depth));
                shift_ri(&c->a, 4, RAX, 4);                     /* * sizeof(nvm_frame) */
                alu_rm(&c->a, ALU_ADD, RAX, R12, VOFF(frames)); /* &frames[depth] */
                alu_rm(&c->a, ALU_CMP, RAX, R12, VOFF(frames_end));
                jcc(&c->a, CC_AE, slow);
                lea(&c->a, RDX, R13, cell(c, h) + (int32_t)(16 * need));
                alu_rm(&c->a, ALU_CMP, RDX, R12, VOFF(stack_end));
                jcc(&c->a, CC_A, slow);
                lea(&c->a, RDX, R14, slotd(S + cf->nslots));
                alu_rm(&c->a, ALU_CMP, RDX, R12, VOFF(slots_end));
                jcc(&c->a, CC_A, slow);
                /* caller's resume point, callee's record, depth + 1 */
                pinsn(c, RDX, i + 1);
                mov_mr(&c->a, RAX, (int32_t)offsetof(nvm_frame, ip) - 16, RDX);
                mov_rm(&c->a, RDX, R12, VOFF(pfuncs));
                alu_ri(&c->a, ALU_ADD, RDX, (int32_t)(in->a * sizeof(nvm_pfunc)));
                mov_mr(&c->a, RAX, (int32_t)offsetof(nvm_frame, pf), RDX);
                alu32_mi(&c->a, ALU_ADD, R12, VOFF(depth), 1);
                /* save the frame's bases as offsets (the callee may move the stacks) */
                mov_rr(&c->a, RAX, R13);
                alu_rm(&c->a, ALU_SUB, RAX, R12, VOFF(stack));
                push_r(&c->a, RAX);
                mov_rr(&c->a, RAX, R14);
                alu_rm(&c->a, ALU_SUB, RAX, R12, VOFF(slots));
                push_r(&c->a, RAX);
                lea(&c->a, R13, R13, cell(c, h));
                lea(&c->a, R14, R14, slotd(S));
                call_label(&c->a, c->flabel[in->a]);
                pop_r(&c->a, RCX);
                pop_r(&c->a, RDX);
                mov_rm(&c->a, R14, R12, VOFF(slots));
                alu_rr(&c->a, ALU_ADD, R14, RCX);
                mov_rm(&c->a, R13, R12, VOFF(stack));
                alu_rr(&c->a, ALU_ADD, R13, RDX);
                test32_rr(&c->a, RAX, RAX);
                jcc(&c->a, CC_NE, c->unw);
                {
                    int saved = c->a.cur;
                    c->a.cur = 1;
                    x64_bind(&c->a, slow);
                    mov_rr(&c->a, RAX, R13);
                    alu_rm(&c->a, ALU_SUB, RAX, R12, VOFF(stack));
                    push_r(&c->a, RAX);
                    mov_rr(&c->a, RAX, R14);
                    alu_rm(&c->a, ALU_SUB, RAX, R12, VOFF(slots));
                    push_r(&c->a, RAX);
                    mov_rr(&c->a, RDI, R12);
                    mov_ri(&c->a, RSI, in->a);
                    lea(&c->a, RDX, R13, cell(c, h));
                    lea(&c->a, RCX, R14, slotd(S));
                    mov_ri(&c->a, R8, i);
                    call_abs(&c->a, X64_FN(nvm_rt_call_space));
                    pop_r(&c->a, RCX);
                    pop_r(&c->a, RDX);
                    mov_rm(&c->a, R14, R12, VOFF(slots));
                    alu_rr(&c->a, ALU_ADD, R14, RCX);
                    mov_rm(&c->a, R13, R12, VOFF(stack));
                    alu_rr(&c->a, ALU_ADD, R13, RDX);
                    test32_rr(&c->a, RAX, RAX);
                    jcc(&c->a, CC_E, top);
                    jmp(&c->a, c->unw);
                    c->a.cur = saved;
                }
                cache_clear(c);
                c->hvalid = 0; /* the callee has its own homes */
                pop_n(c, cf->consumed);
                if (cf->returns)
                    push(c, mk(V_MEM, TM_ANY));
                break;
            }
            case NVM_OP_RET: {
                vent *v = &c->vs[H - 1];
                uint32_t slow = x64_label(&c->a), back = x64_label(&c->a);
                store_to(c, v, H - 1, R13, -(int32_t)(16 * c->consumed), false);
                alu32_mi(&c->a, ALU_CMP, R12, VOFF(nhandlers), 0);
                jcc(&c->a, CC_NE, slow);
                x64_bind(&c->a, back);
                alu32_mi(&c->a, ALU_SUB, R12, VOFF(depth), 1);
                emit_epilogue(c, 0);
                {
                    int saved = c->a.cur;
                    c->a.cur = 1;
                    x64_bind(&c->a, slow);
                    mov_rr(&c->a, RDI, R12);
                    call_abs(&c->a, X64_FN(nvm_rt_drop_handlers));
                    jmp(&c->a, back);
                    c->a.cur = saved;
                }
                pop_n(c, 1);
                break;
            }
            case NVM_OP_HALT: emit_epilogue(c, NVM_RT_END); break;
            case NVM_OP_GET_FIELD: {
                uint32_t done = x64_label(&c->a);
                /* the value stays in the map entry (V_FLD) while a register is free and few
                 * such entries are pending (they are never spilled), else it is copied */
                int fr = -1;
                uint32_t nfld = 0;
                for (uint32_t q = 0; q < H; q++)
                    nfld += c->vs[q].kind == V_FLD;
                for (int k = 0; k < NGPR && nfld < 2 && fr < 0; k++)
                    if (!(c->gused & (1u << k))) {
                        c->gused |= 1u << k;
                        fr = gpr_pool[k];
                    }
                obj_prepare(c, H - 1);
                uint32_t stub = slow_stub(c, i, H - 1, fr >= 0 ? V_FLD : V_MEM, fr, done);
                field_ic(c, i, H - 1, stub);
                if (fr >= 0) {
                    mov_rr(&c->a, fr, RDX);
                } else {
                    mov_rm(&c->a, RAX, RDX, FLD);
                    mov_mr(&c->a, R13, cell(c, H - 1), RAX);
                    mov_rm(&c->a, RAX, RDX, FLD + TAG);
                    mov_mr(&c->a, R13, cell(c, H - 1) + TAG, RAX);
                }
                x64_bind(&c->a, done);
                refine_obj(c, H - 1, TM_MAP);
                pop_n(c, 1);
                vent v = mk(fr >= 0 ? V_FLD : V_MEM, TM_ANY);
                v.reg = (uint8_t)(fr >= 0 ? fr : 0);
                push(c, v);
                break;
            }
            case NVM_OP_SET_FIELD: {
                uint32_t done = x64_label(&c->a);
                /* the entry written may be one a pending GET_FIELD value still reads */
                for (uint32_t q = 0; q + 1 < H; q++)
                    if (c->vs[q].kind == V_FLD)
                        mat(c, q);
                obj_prepare(c, H - 2);
                uint32_t stub = slow_stub(c, i, H - 1, V_MEM, 0, done);
                field_ic(c, i, H - 2, stub);
                /* the entry pointer is in RDX; store_to uses RAX only */
                store_to(c, &c->vs[H - 1], H - 1, RDX, (int32_t)offsetof(nvm_mapentry, value),
                         false);
                x64_bind(&c->a, done);
                pop_n(c, 1); /* the map stays where it was */
                refine_obj(c, H - 2, TM_MAP);
                break;
            }
            case NVM_OP_ARR_GET:
            case NVM_OP_ARR_SET: {
                bool set = in->op == NVM_OP_ARR_SET;
                uint32_t qa = set ? H - 3 : H - 2, qi = qa + 1;
                uint32_t done = x64_label(&c->a);
                /* speculative int element: every failure continues in the generic version */
                bool sint = !set && spec != NULL && spec[i] == 2;
                obj_prepare(c, qa);
                uint32_t stub = sint ? spec_exit(c, i, gen0)
                                     : slow_stub(c, i, set ? qa + 1 : qa, V_MEM, 0, done);
                check_tag(c, qa, NVM_T_ARRAY, stub);
                check_tag(c, qi, NVM_T_INT, stub);
                int ar = obj_of(c, qa);
                ld(c, &c->vs[qi], qi, RDX);
                /* negative index counts from the end */
                mov32_rm(&c->a, RAX, ar, (int32_t)offsetof(nvm_array, len));
                {
                    uint32_t pos = x64_label(&c->a);
                    test_rr(&c->a, RDX, RDX);
                    jcc(&c->a, CC_NS, pos);
                    alu_rr(&c->a, ALU_ADD, RDX, RAX);
                    x64_bind(&c->a, pos);
                }
                alu_rr(&c->a, ALU_CMP, RDX, RAX);
                jcc(&c->a, CC_AE, stub); /* unsigned: negative after the fix-up is out too */
                /* a bool array (heap.h): bytes, read as bools; written with a known bool */
                uint32_t bools = x64_label(&c->a);
                bool inl = !sint && (!set || c->vs[H - 1].m == TM_BOOL);
                cmp8_mi(&c->a, ar, ARR_KIND, NVM_ARR_VALUES);
                jcc(&c->a, CC_NE, inl ? bools : stub);
                if (inl) {
                    uint32_t vals = x64_label(&c->a);
                    jmp(&c->a, vals);
                    x64_bind(&c->a, bools);
                    alu_rm(&c->a, ALU_ADD, RDX, ar, (int32_t)offsetof(nvm_array, items));
                    if (set) {
                        bool_byte(c, H - 1);
                        mov8_mr(&c->a, RDX, 0, RAX);
                    } else {
                        movzx8_rm(&c->a, RAX, RDX, 0);
                        mov_mr(&c->a, R13, cell(c, qa), RAX);
                        mov32_mi(&c->a, R13, cell(c, qa) + TAG, NVM_T_BOOL);
                    }
                    jmp(&c->a, done);
                    x64_bind(&c->a, vals);
                }
                shift_ri(&c->a, 4, RDX, 4);
                alu_rm(&c->a, ALU_ADD, RDX, ar, (int32_t)offsetof(nvm_array, items));
                if (sint) {
                    alu32_mi(&c->a, ALU_CMP, RDX, TAG, NVM_T_INT);
                    jcc(&c->a, CC_NE, stub);
                    refine_obj(c, qa, TM_ARR); /* any failure left this version */
                    pop_n(c, 2);
                    vent r = mk(V_REG, TM_INT);
                    r.reg = (uint8_t)alloc_gpr(c);
                    mov_rm(&c->a, r.reg, RDX, 0);
                    push(c, r);
                    break;
                }
                if (set) {
                    store_to(c, &c->vs[H - 1], H - 1, RDX, 0, false);
                } else {
                    mov_rm(&c->a, RAX, RDX, 0);
                    mov_mr(&c->a, R13, cell(c, qa), RAX);
                    mov_rm(&c->a, RAX, RDX, TAG);
                    mov_mr(&c->a, R13, cell(c, qa) + TAG, RAX);
                }
                x64_bind(&c->a, done);
                if (set) {
                    pop_n(c, 2); /* the array stays */
                    refine_obj(c, qa, TM_ARR);
                } else {
                    pop_n(c, 2);
                    push(c, mk(V_MEM, TM_ANY));
                }
                break;
            }
            case NVM_OP_MATH_SQRT: {
                vent *x = &c->vs[H - 1];
                uint32_t after = x64_label(&c->a);
                int r = -1;
                if (x->m == TM_FLOAT || x->m == TM_INT) {
                    ldf(c, x, H - 1, XMM0);
                } else {
                    uint32_t stub = slow_stub(c, i, H - 1, V_XREG, XMM0, after);
                    uint32_t isint = x64_label(&c->a), go = x64_label(&c->a);
                    mat(c, H - 1);
                    alu32_mi(&c->a, ALU_CMP, R13, cell(c, H - 1) + TAG, NVM_T_FLOAT);
                    jcc(&c->a, CC_NE, isint);
                    movsd_xm(&c->a, XMM0, R13, cell(c, H - 1));
                    jmp(&c->a, go);
                    x64_bind(&c->a, isint);
                    alu32_mi(&c->a, ALU_CMP, R13, cell(c, H - 1) + TAG, NVM_T_INT);
                    jcc(&c->a, CC_NE, stub);
                    mov_rm(&c->a, RAX, R13, cell(c, H - 1));
                    cvtsi2sd_xr(&c->a, XMM0, RAX);
                    x64_bind(&c->a, go);
                }
                sd_rr(&c->a, SD_SQRT, XMM0, XMM0);
                x64_bind(&c->a, after);
                pop_n(c, 1);
                vent v = mk(V_XREG, TM_FLOAT);
                r = alloc_xmm(c);
                v.reg = (uint8_t)r;
                movapd_rr(&c->a, r, XMM0);
                push(c, v);
                break;
            }
            case NVM_OP_ARR_PUSH: {
                /* append in place while there is capacity; the helper grows the array */
                uint32_t done = x64_label(&c->a);
                obj_prepare(c, H - 2);
                uint32_t stub = slow_stub(c, i, H - 1, V_MEM, 0, done);
                check_tag(c, H - 2, NVM_T_ARRAY, stub);
                int ar = obj_of(c, H - 2);
                mov32_rm(&c->a, RDX, ar, (int32_t)offsetof(nvm_array, len));
                alu32_rm(&c->a, ALU_CMP, RDX, ar, (int32_t)offsetof(nvm_array, cap));
                jcc(&c->a, CC_AE, stub);
                cmp8_mi(&c->a, ar, ARR_KIND, NVM_ARR_VALUES);
                if (c->vs[H - 1].m == TM_BOOL) {
                    /* a bool array (heap.h): the bool as a byte */
                    uint32_t vals = x64_label(&c->a);
                    jcc(&c->a, CC_E, vals);
                    alu32_mi(&c->a, ALU_ADD, ar, (int32_t)offsetof(nvm_array, len), 1);
                    alu_rm(&c->a, ALU_ADD, RDX, ar, (int32_t)offsetof(nvm_array, items));
                    bool_byte(c, H - 1);
                    mov8_mr(&c->a, RDX, 0, RAX);
                    jmp(&c->a, done);
                    x64_bind(&c->a, vals);
                } else {
                    jcc(&c->a, CC_NE, stub); /* a bool array: the helper converts it */
                }
                alu32_mi(&c->a, ALU_ADD, ar, (int32_t)offsetof(nvm_array, len), 1);
                shift_ri(&c->a, 4, RDX, 4);
                alu_rm(&c->a, ALU_ADD, RDX, ar, (int32_t)offsetof(nvm_array, items));
                store_to(c, &c->vs[H - 1], H - 1, RDX, 0, false);
                x64_bind(&c->a, done);
                pop_n(c, 1); /* the array stays */
                refine_obj(c, H - 2, TM_ARR);
                break;
            }
            case NVM_OP_ARR_LEN:
            case NVM_OP_LEN: {
                uint32_t after = x64_label(&c->a), done = x64_label(&c->a);
                obj_prepare(c, H - 1);
                int r = alloc_gpr(c);
                uint32_t stub = slow_stub(c, i, H - 1, V_REG, r, after);
                check_tag(c, H - 1, NVM_T_ARRAY, stub);
                int ar = obj_of(c, H - 1);
                mov32_rm(&c->a, r, ar, (int32_t)offsetof(nvm_array, len));
                x64_bind(&c->a, after);
                x64_bind(&c->a, done);
                pop_n(c, 1);
                vent v = mk(V_REG, TM_INT);
                v.reg = (uint8_t)r;
                push(c, v);
                break;
            }
            default: {
                /* everything else: the interpreter executes it */
                step_inline(c, i);
                if (in->op == NVM_OP_THROW)
                    break;
                for (uint32_t q = 0; q < H; q++)
                    c->tmp[q] = c->vs[q].m;
                memcpy(c->tmp + W, c->sl, S);
                uint32_t hh = H;
                nvm_xfer(c->m, fn, i, c->tmp, &hh, c->tmp + W);
                c->H = hh < H ? hh : H; /* all in memory after the step: no registers */
                while (c->H < hh)
                    push(c, mk(V_MEM, 0));
                for (uint32_t q = 0; q < hh; q++)
                    c->vs[q].m = c->tmp[q];
                memcpy(c->sl, c->tmp + W, S);
                break;
            }
            }
        }
        /* falling into the next block: everything to memory */
        uint8_t last = fn->code[e - 1].op;
        if (!(last == NVM_OP_JMP || last == NVM_OP_RET || last == NVM_OP_HALT ||
              last == NVM_OP_THROW)) {
            flush_all(c);
            if (e < fn->ninsn)
                home_ensure(c, home_entry(c, e));
        }
        if (last == NVM_OP_THROW) {
            mov_ri(&c->a, RAX, NVM_RT_ERR);
            jmp(&c->a, c->unw);
        }
    }
    /* unwind: eax = 1 or 2 */
    x64_bind(&c->a, c->unw);
    {
        uint32_t out = x64_label(&c->a);
        alu_ri(&c->a, ALU_CMP, RAX, NVM_RT_END);
        jcc(&c->a, CC_E, out);
        if (c->has_try) {
            mov_rr(&c->a, RDI, R12);
            mov32_rm(&c->a, RSI, RSP, 0);
            call_abs(&c->a, X64_FN(nvm_rt_catch));
            test32_rr(&c->a, RAX, RAX);
            uint32_t none = x64_label(&c->a);
            jcc(&c->a, CC_S, none);
            for (uint32_t i = 0; i < fn->ninsn; i++) {
                const nvm_insn *in = &fn->code[i];
                if (in->op != NVM_OP_ENTER_TRY || f->blk_of[in->a] == UINT32_MAX)
                    continue;
                alu_ri(&c->a, ALU_CMP, RAX, (int32_t)in->a);
                jcc(&c->a, CC_E, c->ilabel0 + in->a);
            }
            x64_bind(&c->a, none);
            mov_ri(&c->a, RAX, NVM_RT_ERR);
        }
        x64_bind(&c->a, out);
        alu_ri(&c->a, ALU_ADD, RSP, 8);
        ret(&c->a);
    }
    return true;
}

/* The entry trampoline: int tramp(vm, fn, r13, r14, int64_t *gas, void *stack_top). Saves the
 * callee-saved registers, switches to the run's stack (the C stack pointer saved on it), calls
 * the function and hands back the countdown. */
static void emit_trampoline(x64_asm *a)
{
    push_r(a, RBX);
    push_r(a, RBP);
    push_r(a, R12);
    push_r(a, R13);
    push_r(a, R14);
    push_r(a, R15);
    push_r(a, R8);
    /* the C stack pointer, twice (16-byte alignment), at the top of the run's stack */
    mov_rr(a, RAX, RSP);
    mov_rr(a, RSP, R9);
    push_r(a, RAX);
    push_r(a, RAX);
    mov_rr(a, R12, RDI);
    mov_rm(a, RBX, RDI, VOFF(jit_pool));
    mov_rr(a, R13, RDX);
    mov_rr(a, R14, RCX);
    mov_rm(a, R15, R8, 0);
    call_r(a, RSI);
    pop_r(a, RCX);
    pop_r(a, RCX);
    mov_rr(a, RSP, RCX);
    pop_r(a, R8);
    mov_mr(a, R8, 0, R15);
    pop_r(a, R15);
    pop_r(a, R14);
    pop_r(a, R13);
    pop_r(a, R12);
    pop_r(a, RBP);
    pop_r(a, RBX);
    ret(a);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void asm_free(x64_asm *a)
{
    free(a->b[0].p);
    free(a->b[1].p);
    free(a->labels);
    free(a->fix);
}

bool nvm_jit_supported(void)
{
    return true;
}

void nvm_jit_blob_free(nvm_jit_blob *b)
{
    if (b == NULL)
        return;
    if (b->code != NULL)
        munmap(b->code, b->map_size);
    if (b->pool != NULL)
        munmap(b->pool, b->pool_map_size);
    free(b->entry);
    free(b);
}

nvm_status nvm_jit_compile(const nvm_module *m, nvm_jit_blob **out, nvm_error *err)
{
    *out = NULL;
    uint64_t t0 = now_ns();
    if (m == NULL || !m->verified)
        return nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0, "the JIT needs a verified module");
    uint64_t total = 0;
    for (uint32_t f = 0; f < m->nfuncs; f++)
        total += m->funcs[f].ninsn;
    if (total > NVM_JIT_MAX_INSNS) {
        return nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0,
                             "module too large for the JIT (%llu instructions, at most %u)",
                             (unsigned long long)total, NVM_JIT_MAX_INSNS);
    }
    nvm_status st = NVM_OK;
    jc c;
    memset(&c, 0, sizeof c);
    c.m = m;
    nvm_jit_blob *blob = calloc(1, sizeof *blob);
    c.flabel = malloc(sizeof(uint32_t) * (m->nfuncs + 1));
    if (blob == NULL || c.flabel == NULL)
        goto oom;
    blob->entry = calloc(m->nfuncs + 1, sizeof(uint32_t));
    if (blob->entry == NULL)
        goto oom;
    blob->nfuncs = m->nfuncs;
    for (uint32_t f = 0; f < m->nfuncs; f++)
        c.flabel[f] = x64_label(&c.a);
    blob->tramp = 0;
    emit_trampoline(&c.a);
    for (uint32_t f = 0; f < m->nfuncs && !c.a.oom; f++) {
        const nvm_func *fn = &m->funcs[f];
        /* 16-byte aligned entries */
        while (c.a.b[0].len % 16 != 0)
            x64_byte(&c.a, 0x90);
        x64_bind(&c.a, c.flabel[f]);
        nvm_fninfo fi, fs, fg;
        memset(&fs, 0, sizeof fs);
        memset(&fg, 0, sizeof fg);
        if (!nvm_analyse(m, fn, &fi, NULL, NULL, NULL)) {
            emit_interp_entry(&c);
            blob->ninterp++;
            continue;
        }
        uint8_t *site = calloc(fn->ninsn + 1, 1);
        tmask *scratch = malloc(fn->max_height + 1 + fn->nslots + 1);
        tmask *argspec = calloc(fn->consumed + 1, 1);
        bool spec = site != NULL && scratch != NULL && argspec != NULL &&
                    nvm_spec_sites(m, fn, &fi, site, scratch);
        spec |= argspec != NULL && site != NULL && nvm_spec_args(fn, argspec);
        free(scratch);
        if (spec && (!nvm_analyse(m, fn, &fs, NULL, site, argspec) ||
                     !nvm_analyse(m, fn, &fg, site, NULL, NULL))) {
            nvm_fninfo_free(&fs);
            nvm_fninfo_free(&fg);
            spec = false;
        }
        c.fn = fn;
        c.fi = f;
        c.consumed = fn->consumed;
        c.W = fn->max_height + 1;
        c.S = fn->nslots;
        c.vs = malloc(sizeof(vent) * (c.W + 1));
        c.sl = malloc(c.S + 1);
        c.tmp = malloc(c.W + c.S + 1);
        c.cslot = malloc(sizeof(vent) * (c.S + 1));
        if (c.vs == NULL || c.sl == NULL || c.tmp == NULL || c.cslot == NULL) {
            c.a.oom = true;
        } else {
            uint32_t l0 = c.a.nlabels;
            for (uint32_t i = 0; i < fn->ninsn; i++)
                (void)x64_label(&c.a);
            hplan hs, hg;
            memset(&hs, 0, sizeof hs);
            memset(&hg, 0, sizeof hg);
            if (!spec) {
                if (!plan_homes(fn, &fi, c.W, c.S, &hs))
                    c.a.oom = true;
                c.hp = &hs;
                c.hpg = NULL;
                compile_fn(&c, &fi, l0, true, NULL, NULL, 0);
            } else {
                uint32_t g0 = c.a.nlabels;
                for (uint32_t i = 0; i < fn->ninsn; i++)
                    (void)x64_label(&c.a);
                if (!plan_homes(fn, &fs, c.W, c.S, &hs) || !plan_homes(fn, &fg, c.W, c.S, &hg))
                    c.a.oom = true;
                c.hp = &hs;
                c.hpg = &hg;
                c.gblk_of = fg.blk_of;
                compile_fn(&c, &fs, l0, true, site, argspec, g0);
                c.hp = &hg;
                c.hpg = NULL;
                compile_fn(&c, &fg, g0, false, NULL, NULL, 0);
            }
            hplan_free(&hs);
            hplan_free(&hg);
            c.hp = c.hpg = NULL;
        }
        free(site);
        free(argspec);
        if (spec) {
            nvm_fninfo_free(&fs);
            nvm_fninfo_free(&fg);
        }
        free(c.vs);
        free(c.sl);
        free(c.tmp);
        free(c.cslot);
        c.cslot = NULL;
        c.vs = NULL;
        c.sl = NULL;
        c.tmp = NULL;
        nvm_fninfo_free(&fi);
    }
    if (c.a.oom)
        goto oom;
    {
        size_t hot = c.a.b[0].len, cold = c.a.b[1].len, size = hot + cold;
        if (size > NVM_JIT_MAX_CODE) {
            st = nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0,
                               "module too large for the JIT (%zu bytes of code)", size);
            goto done;
        }
        size_t page = 4096, msize = (size + page - 1) / page * page;
        void *mem = mmap(NULL, msize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
            goto oom;
        uint8_t *code = mem;
        memcpy(code, c.a.b[0].p, hot);
        if (cold > 0)
            memcpy(code + hot, c.a.b[1].p, cold);
        for (uint32_t k = 0; k < c.a.nfix; k++) {
            const x64_fix *fx = &c.a.fix[k];
            int64_t lv = c.a.labels[fx->label];
            size_t pos = (fx->buf ? hot : 0) + fx->pos;
            if (lv < 0) {
                munmap(mem, msize);
                st = nvm_error_set(err, NVM_E_INTERNAL, NULL, 0, 0, "JIT: unbound label");
                goto done;
            }
            size_t tgt = ((lv >> 40) ? hot : 0) + (size_t)(lv & ((1ll << 40) - 1));
            int32_t rel = (int32_t)((int64_t)tgt - (int64_t)(pos + 4));
            memcpy(code + pos, &rel, 4);
        }
        for (uint32_t f = 0; f < m->nfuncs; f++) {
            int64_t lv = c.a.labels[c.flabel[f]];
            blob->entry[f] = (uint32_t)(lv & ((1ll << 40) - 1));
        }
        if (mprotect(mem, msize, PROT_READ | PROT_EXEC) != 0) {
            munmap(mem, msize);
            st = nvm_error_set(err, NVM_E_IO, NULL, 0, 0, "JIT: cannot map code executable");
            goto done;
        }
        /* the constant pool: read-only, never executable */
        size_t psize = ((size_t)c.npool * 8 + page) / page * page;
        void *pm = mmap(NULL, psize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (pm == MAP_FAILED) {
            munmap(mem, msize);
            goto oom;
        }
        if (c.npool > 0)
            memcpy(pm, c.pool, (size_t)c.npool * 8);
        if (mprotect(pm, psize, PROT_READ) != 0) {
            munmap(mem, msize);
            munmap(pm, psize);
            st = nvm_error_set(err, NVM_E_IO, NULL, 0, 0, "JIT: cannot protect the constant pool");
            goto done;
        }
        blob->pool = pm;
        blob->pool_map_size = psize;
        blob->code = code;
        blob->size = size;
        blob->map_size = msize;
        blob->insns = total;
        blob->compile_ns = now_ns() - t0;
        *out = blob;
        blob = NULL;
    }
    goto done;
oom:
    st = nvm_error_set(err, NVM_E_MEMORY, NULL, 0, 0, "JIT: out of memory");
done:
    asm_free(&c.a);
    free(c.flabel);
    free(c.pool);
    free(c.pool_ix);
    nvm_jit_blob_free(blob);
    return st;
}
