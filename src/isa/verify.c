/* verify.c - the bytecode verifier, the gate before any tier.
 *
 * Three steps:
 *   1. structure: every field of the module is checked as if hostile (opcode bytes assigned,
 *      operand indices in range, counts bounded);
 *   2. stack effects: the arguments each function consumes and whether it returns are inferred
 *      for all functions together by a monotone fixpoint (consumed only grows, returns only flips
 *      false -> true), callees before callers, re-analysing the callers of a function whose effect
 *      changed. These passes are lenient: they only compute effects;
 *   3. a strict pass over every function with the final effects, which records the stack height
 *      before every instruction and rejects underflow, height mismatches at merge points and
 *      control falling past the last instruction.
 *
 * Why the lenient passes are sound: with callee effects that are still too small (consumed lower,
 * returns false), every path's heights are >= its final heights and fewer paths are reachable, so
 * each pass under-estimates the final effects and the iteration climbs to the least fixpoint.
 * Heights stay within [-VERIFY_MAX_CONSUMED, VERIFY_MAX_HEIGHT], so int32 never overflows.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "module.h"
#include "capcat.h"

#define VERIFY_MAX_CONSUMED 4096      /* arguments a function may take from its caller */
#define VERIFY_MAX_HEIGHT (1 << 24)   /* operand stack height above the function's entry */
#define VERIFY_MAX_SLOTS (1u << 16)   /* frame slots of one function */
#define VERIFY_MAX_INSN 0x7FFFFFF0u   /* instructions of one function */
#define VERIFY_BUDGET_PER_INSN 32u    /* fixpoint work allowed per instruction of the module */
#define VERIFY_BUDGET_BASE (1u << 20) /* ... plus this much, for small modules */
#define UNREACHED INT32_MIN

/* Scratch state of one verification. Every array is owned here and freed at the end. */
typedef struct vctx {
    nvm_module *m;
    nvm_error *err;
    uint32_t *work; /* instruction worklist of one function (max ninsn entries) */
    size_t work_n;
    uint32_t *queue; /* function worklist, ring buffer of nfuncs entries */
    uint8_t *inq;    /* inq[f]: f is in queue (also DFS marks while seeding) */
    size_t *rev_off; /* callers of g: rev[rev_off[g] .. rev_off[g + 1]) (nfuncs + 1 entries) */
    uint32_t *rev;   /* one entry per CALL instruction of the module */
    size_t ncalls;
    uint32_t *dfs_fn; /* DFS stack while seeding the queue in call-graph post-order */
    uint32_t *dfs_pos;
    size_t total_insn; /* sum of ninsn + 1 */
} vctx;

/* Result of analysing one function. */
typedef struct flow {
    int64_t min;     /* lowest height any instruction reaches down to (<= 0) */
    uint32_t min_at; /* instruction where min was reached */
    bool returns;    /* some reachable RET */
    int64_t maxh;    /* highest recorded height (strict pass only) */
} flow;

static void set_err(const vctx *c, nvm_status st, uint32_t line, const char *msg)
{
    nvm_error *err = c->err;
    if (err == NULL)
        return;
    err->status = st;
    snprintf(err->message, sizeof err->message, "%s", msg);
    snprintf(err->file, sizeof err->file, "%s", c->m != NULL && c->m->name ? c->m->name : "");
    err->line = line;
    err->col = 0;
    err->backtrace[0] = '\0';
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static nvm_status
verr(const vctx *c, const char *fmt, ...)
{
    char msg[NVM_ERROR_MESSAGE_MAX];
    int n = snprintf(msg, sizeof msg, "verify: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    set_err(c, NVM_E_VERIFY, 0, msg);
    return NVM_E_VERIFY;
}

/* "verify: <rule>: function <name>, instruction <i> (<MNEMONIC>) <detail>" */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static nvm_status
verr_at(const vctx *c, const nvm_func *f, uint32_t i, const char *rule, const char *fmt, ...)
{
    char msg[NVM_ERROR_MESSAGE_MAX];
    char mnem[32];
    if (i < f->ninsn && f->code != NULL) {
        const char *name = nvm_opinfo_table[f->code[i].op].name;
        if (name != NULL)
            snprintf(mnem, sizeof mnem, "%s", name);
        else
            snprintf(mnem, sizeof mnem, "opcode 0x%02X", (unsigned)f->code[i].op);
    } else {
        snprintf(mnem, sizeof mnem, "end of function");
    }
    int n = snprintf(msg, sizeof msg, "verify: %s: function %.200s, instruction %" PRIu32 " (%s) ",
                     rule, f->name ? f->name : "?", i, mnem);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = (int)strlen(msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    uint32_t line = (f->lines != NULL && i < f->ninsn) ? f->lines[i] : 0;
    set_err(c, NVM_E_VERIFY, line, msg);
    return NVM_E_VERIFY;
}

static bool is_fixed(const nvm_module *m, uint32_t fi)
{
    return fi == m->entry || m->funcs[fi].declared_argc >= 0;
}

/* ---- step 1: structure and operands ---- */

static nvm_status check_insn(vctx *c, const nvm_func *f, uint32_t i)
{
    const nvm_module *m = c->m;
    const nvm_insn *in = &f->code[i];
    const nvm_opinfo *info = &nvm_opinfo_table[in->op];
    if (info->name == NULL)
        return verr_at(c, f, i, "bad opcode", "byte 0x%02X is not an assigned opcode",
                       (unsigned)in->op);
    switch (info->operand) {
    case NVM_OPK_NONE:
    case NVM_OPK_I64:
    case NVM_OPK_F64:
    case NVM_OPK_COUNT: /* bounded by the height checks */ break;
    case NVM_OPK_STR:
        if (in->a >= m->nstrs)
            return verr_at(c, f, i, "bad operand",
                           "string index %" PRIu32 " out of range (%" PRIu32 " strings)", in->a,
                           m->nstrs);
        break;
    case NVM_OPK_BOOL:
        if (in->b > 1)
            return verr_at(c, f, i, "bad operand", "boolean %u is neither 0 nor 1",
                           (unsigned)in->b);
        break;
    case NVM_OPK_SLOT:
        if (in->a >= f->nslots)
            return verr_at(c, f, i, "bad operand",
                           "slot %" PRIu32 " out of range (%" PRIu32 " slots)", in->a, f->nslots);
        break;
    case NVM_OPK_LABEL:
        if (in->a > f->ninsn)
            return verr_at(c, f, i, "bad jump target",
                           "target %" PRIu32 " is outside the function (%" PRIu32 " instructions)",
                           in->a, f->ninsn);
        break;
    case NVM_OPK_FUNC:
        if (in->a >= m->nfuncs)
            return verr_at(c, f, i, "bad operand",
                           "function index %" PRIu32 " out of range (%" PRIu32 " functions)", in->a,
                           m->nfuncs);
        c->ncalls++;
        break;
    case NVM_OPK_CAP:
        if (in->a >= m->ncaps)
            return verr_at(c, f, i, "bad operand",
                           "capability index %" PRIu32 " out of range (%" PRIu32 " capabilities)",
                           in->a, m->ncaps);
        break;
    case NVM_OPK_CAST:
        if (in->b > NVM_CAST_BOOL)
            return verr_at(c, f, i, "bad operand", "cast type %u is not 0..3", (unsigned)in->b);
        break;
    default: return verr_at(c, f, i, "bad opcode", "unknown operand kind");
    }
    return NVM_OK;
}

static nvm_status check_structure(vctx *c)
{
    const nvm_module *m = c->m;
    if (m->nfuncs == 0 || m->funcs == NULL)
        return verr(c, "module has no functions");
    if (m->entry >= m->nfuncs)
        return verr(c, "bad entry function: index %" PRIu32 " out of range (%" PRIu32 " functions)",
                    m->entry, m->nfuncs);
    if (m->nstrs > 0 && m->strs == NULL)
        return verr(c, "string table missing");
    for (uint32_t s = 0; s < m->nstrs; s++)
        if (m->strs[s].bytes == NULL)
            return verr(c, "string constant %" PRIu32 " missing", s);
    if (m->ncaps > 0 && m->caps == NULL)
        return verr(c, "capability table missing");
    for (uint32_t k = 0; k < m->ncaps; k++)
        if (m->caps[k] == NULL)
            return verr(c, "capability name %" PRIu32 " missing", k);

    size_t max_ninsn = 1;
    c->total_insn = 0;
    c->ncalls = 0;
    for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
        const nvm_func *f = &m->funcs[fi];
        const char *name = f->name ? f->name : "?";
        if (f->ninsn > VERIFY_MAX_INSN)
            return verr(c, "function %.200s is too large (%" PRIu32 " instructions)", name,
                        f->ninsn);
        if (f->ninsn > 0 && f->code == NULL)
            return verr(c, "function %.200s has no code", name);
        if (f->nslots > VERIFY_MAX_SLOTS)
            return verr(c, "function %.200s uses too many slots (%" PRIu32 ", at most %u)", name,
                        f->nslots, VERIFY_MAX_SLOTS);
        if (f->declared_argc < -1 || f->declared_argc > VERIFY_MAX_CONSUMED)
            return verr(c, "function %.200s declares a bad argument count (%" PRId32 ")", name,
                        f->declared_argc);
        if (fi == m->entry && f->declared_argc > 0)
            return verr(c,
                        "entry function takes arguments: function %.200s declares %" PRId32
                        " but starts on an empty stack",
                        name, f->declared_argc);
        for (uint32_t i = 0; i < f->ninsn; i++) {
            nvm_status st = check_insn(c, f, i);
            if (st != NVM_OK)
                return st;
        }
        if (f->ninsn > max_ninsn)
            max_ninsn = f->ninsn;
        c->total_insn += (size_t)f->ninsn + 1;
    }
    c->work_n = max_ninsn;
    return NVM_OK;
}

/* ---- steps 2 and 3: stack heights ---- */

/* Control reaches instruction t of f from src with height th. */
static nvm_status edge(const vctx *c, const nvm_func *f, uint32_t src, uint32_t t, int64_t th,
                       bool strict, uint32_t *top)
{
    if (t >= f->ninsn) {
        if (!strict)
            return NVM_OK;
        if (t == src + 1)
            return verr_at(c, f, src, "control falls off the end of the function",
                           "is the last instruction and does not end the function");
        return verr_at(c, f, src, "control falls off the end of the function",
                       "jumps to the end of the function (target %" PRIu32 ")", t);
    }
    if (th > VERIFY_MAX_HEIGHT) {
        if (!strict)
            return NVM_OK;
        return verr_at(c, f, src, "stack height limit", "leaves more than %d values on the stack",
                       VERIFY_MAX_HEIGHT);
    }
    int32_t *h = f->heights;
    if (h[t] == UNREACHED) {
        h[t] = (int32_t)th;
        c->work[(*top)++] = t;
    } else if (h[t] != th && strict) {
        return verr_at(c, f, t, "stack height mismatch",
                       "is reached with height %" PRId64 " from instruction %" PRIu32
                       " but with height %" PRId32 " from another path",
                       th, src, h[t]);
    }
    return NVM_OK;
}

/* Walk function fi from its entry with the current effects of all functions. Lenient mode only
 * computes the effect (it fails only when consumption is certainly unbounded); strict mode
 * rejects every violation and leaves the final heights in f->heights. */
static nvm_status analyse(const vctx *c, uint32_t fi, bool strict, flow *out)
{
    const nvm_module *m = c->m;
    const nvm_func *f = &m->funcs[fi];
    const uint32_t n = f->ninsn;
    int32_t *heights = f->heights;
    const bool fixed = is_fixed(m, fi);
    const int64_t floor = -(int64_t)f->consumed;
    uint32_t top = 0;
    nvm_status st;

    out->min = 0;
    out->min_at = 0;
    out->returns = false;
    out->maxh = 0;
    for (uint32_t i = 0; i <= n; i++)
        heights[i] = UNREACHED;
    if (n == 0) {
        if (strict)
            return verr_at(c, f, 0, "control falls off the end of the function",
                           "the function has no instructions");
        return NVM_OK;
    }
    heights[0] = 0;
    c->work[top++] = 0;
    while (top > 0) {
        const uint32_t i = c->work[--top];
        const nvm_insn *in = &f->code[i];
        const nvm_opinfo *info = &nvm_opinfo_table[in->op];
        const int64_t h = heights[i];
        int64_t need, pops, pushes;
        bool next = (info->flags & NVM_OPF_TERM) == 0;
        switch (in->op) {
        case NVM_OP_PICK:
            need = (int64_t)in->a + 1;
            pops = 0;
            pushes = 1;
            break;
        case NVM_OP_ROLL:
            need = (int64_t)in->a + 1;
            pops = 0;
            pushes = 0;
            break;
        case NVM_OP_CALL:
            need = pops = m->funcs[in->a].consumed;
            pushes = 1;
            next = m->funcs[in->a].returns;
            break;
        case NVM_OP_CAP_CALL:
            need = pops = in->b;
            pushes = nvm_cap_results(m->caps[in->a]);
            break;
        case NVM_OP_NEW_ARRAY:
            need = pops = in->a;
            pushes = 1;
            break;
        default:
            need = pops = info->pops;
            pushes = info->pushes;
            break;
        }
        const int64_t low = h - need;
        if (low < out->min) {
            out->min = low;
            out->min_at = i;
        }
        if (strict && low < floor) {
            const char *why = "";
            if (fi == m->entry)
                why = " (the entry function starts on an empty stack)";
            else if (f->declared_argc >= 0)
                why = " (the function declares its argument count)";
            return verr_at(c, f, i, "stack underflow",
                           "needs %" PRId64 " values, %" PRId64 " available%s", need, h - floor,
                           why);
        }
        if (low < -(int64_t)VERIFY_MAX_CONSUMED) {
            if (!fixed)
                return verr_at(c, f, i, "unbounded stack consumption",
                               "takes more than %d values from the caller's stack",
                               VERIFY_MAX_CONSUMED);
            continue; /* a fixed function underflows here: the strict pass rejects it */
        }
        if (in->op == NVM_OP_RET)
            out->returns = true;
        const int64_t nh = h - pops + pushes;
        if (info->flags & NVM_OPF_JUMP) {
            const int64_t th = in->op == NVM_OP_ENTER_TRY ? h + 1 : nh;
            st = edge(c, f, i, in->a, th, strict, &top);
            if (st != NVM_OK)
                return st;
        }
        if (next) {
            st = edge(c, f, i, i + 1, nh, strict, &top);
            if (st != NVM_OK)
                return st;
        }
    }
    if (strict)
        for (uint32_t i = 0; i < n; i++)
            if (heights[i] != UNREACHED && heights[i] > out->maxh)
                out->maxh = heights[i];
    return NVM_OK;
}

/* ---- call graph ---- */

static nvm_status build_callers(vctx *c)
{
    const nvm_module *m = c->m;
    for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
        const nvm_func *f = &m->funcs[fi];
        for (uint32_t i = 0; i < f->ninsn; i++)
            if (f->code[i].op == NVM_OP_CALL)
                c->rev_off[f->code[i].a + 1]++;
    }
    for (uint32_t g = 0; g < m->nfuncs; g++)
        c->rev_off[g + 1] += c->rev_off[g];
    /* fill using dfs_pos as per-callee cursors (reset afterwards by the seeding) */
    for (uint32_t g = 0; g < m->nfuncs; g++)
        c->dfs_pos[g] = 0;
    for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
        const nvm_func *f = &m->funcs[fi];
        for (uint32_t i = 0; i < f->ninsn; i++)
            if (f->code[i].op == NVM_OP_CALL) {
                uint32_t g = f->code[i].a;
                c->rev[c->rev_off[g] + c->dfs_pos[g]++] = fi;
            }
    }
    return NVM_OK;
}

/* Fill the queue with every function in call-graph post-order (callees first). */
static uint32_t seed_queue(vctx *c)
{
    const nvm_module *m = c->m;
    uint32_t nq = 0;
    for (uint32_t k = 0; k <= m->nfuncs; k++) {
        uint32_t root = k == 0 ? m->entry : k - 1;
        if (c->inq[root])
            continue;
        uint32_t sp = 0;
        c->inq[root] = 1; /* visited */
        c->dfs_fn[sp] = root;
        c->dfs_pos[sp++] = 0;
        while (sp > 0) {
            const nvm_func *f = &m->funcs[c->dfs_fn[sp - 1]];
            uint32_t *pos = &c->dfs_pos[sp - 1];
            bool pushed = false;
            while (*pos < f->ninsn) {
                const nvm_insn *in = &f->code[(*pos)++];
                if (in->op == NVM_OP_CALL && !c->inq[in->a]) {
                    c->inq[in->a] = 1;
                    c->dfs_fn[sp] = in->a;
                    c->dfs_pos[sp++] = 0;
                    pushed = true;
                    break;
                }
            }
            if (!pushed)
                c->queue[nq++] = c->dfs_fn[--sp];
        }
    }
    return nq;
}

/* ---- allocation of scratch and output arrays ---- */

static void *alloc_array(const nvm_module *m, size_t n, size_t elem)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / elem)
        return NULL;
    return nvm_mod_alloc(m, n * elem);
}

static void free_array(const nvm_module *m, void *p, size_t n, size_t elem)
{
    if (p != NULL)
        nvm_mod_free(m, p, (n == 0 ? 1 : n) * elem);
}

static void free_scratch(vctx *c)
{
    const nvm_module *m = c->m;
    size_t nf = m->nfuncs;
    free_array(m, c->work, c->work_n, sizeof *c->work);
    free_array(m, c->queue, nf, sizeof *c->queue);
    free_array(m, c->inq, nf, sizeof *c->inq);
    free_array(m, c->rev_off, nf + 1, sizeof *c->rev_off);
    free_array(m, c->rev, c->ncalls, sizeof *c->rev);
    free_array(m, c->dfs_fn, nf, sizeof *c->dfs_fn);
    free_array(m, c->dfs_pos, nf, sizeof *c->dfs_pos);
}

static nvm_status out_of_memory(const vctx *c)
{
    set_err(c, NVM_E_MEMORY, 0, "verify: out of memory");
    return NVM_E_MEMORY;
}

nvm_status nvm_verify(nvm_module *m, nvm_error *err)
{
    vctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.err = err;
    nvm_status st;
    if (m == NULL) {
        set_err(&c, NVM_E_USAGE, 0, "verify: no module");
        return NVM_E_USAGE;
    }
    m->verified = false;
    st = check_structure(&c);
    if (st != NVM_OK)
        return st;

    const size_t nf = m->nfuncs;
    for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
        nvm_func *f = &m->funcs[fi];
        if (f->heights == NULL) {
            /* sized (ninsn + 1) * sizeof(int32_t): nvm_module_free relies on it */
            f->heights = nvm_mod_alloc(m, ((size_t)f->ninsn + 1) * sizeof(int32_t));
            if (f->heights == NULL) {
                st = out_of_memory(&c);
                goto fail;
            }
        }
        f->consumed = is_fixed(m, fi) && fi != m->entry ? (uint32_t)f->declared_argc : 0;
        f->returns = false;
        f->max_height = 0;
    }
    c.work = alloc_array(m, c.work_n, sizeof *c.work);
    c.queue = alloc_array(m, nf, sizeof *c.queue);
    c.inq = alloc_array(m, nf, sizeof *c.inq);
    c.rev_off = alloc_array(m, nf + 1, sizeof *c.rev_off);
    c.rev = alloc_array(m, c.ncalls, sizeof *c.rev);
    c.dfs_fn = alloc_array(m, nf, sizeof *c.dfs_fn);
    c.dfs_pos = alloc_array(m, nf, sizeof *c.dfs_pos);
    if (!c.work || !c.queue || !c.inq || !c.rev_off || !c.rev || !c.dfs_fn || !c.dfs_pos) {
        st = out_of_memory(&c);
        goto fail;
    }
    build_callers(&c);

    /* step 2: effects by fixpoint over a function worklist seeded callees-first */
    uint32_t qhead = 0, qlen = seed_queue(&c);
    const uint64_t budget =
        (uint64_t)c.total_insn * VERIFY_BUDGET_PER_INSN + (uint64_t)VERIFY_BUDGET_BASE;
    uint64_t work_done = 0;
    while (qlen > 0) {
        const uint32_t fi = c.queue[qhead];
        qhead = (uint32_t)((qhead + 1) % nf);
        qlen--;
        c.inq[fi] = 0;
        nvm_func *f = &m->funcs[fi];
        flow r;
        st = analyse(&c, fi, false, &r);
        if (st != NVM_OK)
            goto fail;
        work_done += (uint64_t)f->ninsn + 1;
        bool changed = false;
        if (!is_fixed(m, fi) && -r.min > (int64_t)f->consumed) {
            f->consumed = (uint32_t)-r.min; /* <= VERIFY_MAX_CONSUMED: analyse checked */
            changed = true;
        }
        if (r.returns && !f->returns) {
            f->returns = true;
            changed = true;
        }
        if (!changed)
            continue;
        if (work_done > budget) {
            st = verr_at(&c, f, r.min_at, "unbounded stack consumption",
                         "stack effects do not converge");
            goto fail;
        }
        for (size_t e = c.rev_off[fi]; e < c.rev_off[fi + 1]; e++) {
            const uint32_t g = c.rev[e];
            if (!c.inq[g]) {
                c.inq[g] = 1;
                c.queue[(qhead + qlen) % nf] = g;
                qlen++;
            }
        }
    }

    /* step 3: strict pass with the final effects */
    for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
        nvm_func *f = &m->funcs[fi];
        flow r;
        st = analyse(&c, fi, true, &r);
        if (st != NVM_OK)
            goto fail;
        f->max_height = (uint32_t)(r.maxh + (int64_t)f->consumed);
    }
    m->verified = true;
    st = NVM_OK;
fail:
    free_scratch(&c);
    return st;
}
