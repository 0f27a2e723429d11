/* aot.c - the AOT tier's generator: a verified module translated to one self-contained C file.
 *
 * One C function per bytecode function, on the native protocol of nrt.h: `base` = &stack[entry
 * height], `slots` = the frame's slots; it returns NVM_RT_OK / ERR / END. Every operand stack
 * value lives in its interpreter cell (base[position - consumed]), so the interpreter's view of
 * the stack is exact whenever C code of the runtime runs; the C compiler keeps what it can in
 * registers. The block structure and the type masks of the native analysis (analysis.h) decide
 * which tag checks are needed: known ints and floats are computed inline (overflow through
 * __builtin_*_overflow), everything else is handed to the interpreter one instruction at a time
 * (nvm_rt_fast), which owns every error message and capability call.
 *
 * Gas, as the JIT: each block charges its instruction count at entry; when the countdown runs
 * out the runtime refills it or, when the run's gas cannot cover the block, the rest of the frame
 * runs in the interpreter (exact exhaustion point). A faulting instruction refunds the rest of
 * its block. Calls between generated functions are direct C calls after the interpreter's frame
 * record is pushed; a handler of the frame is found by nvm_rt_catch and entered by a switch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aot.h"
#include "../native/analysis.h"
#include "../../trust/api_util.h"
#include "../../isa/isa.h"
#include "../../trust/crypto.h"

/* ---- the layout the generated code depends on ---- */
typedef struct layout {
    const char *name;
    size_t value;
} layout;

#define VO(f)                                                                                      \
    {                                                                                              \
        "O_" #f, offsetof(nvm_vm, f)                                                               \
    }
static const layout layouts[] = {
    VO(stack),
    VO(slots),
    VO(frames),
    VO(depth),
    VO(frames_end),
    VO(stack_end),
    VO(slots_end),
    VO(pfuncs),
    VO(nhandlers),
    VO(consts),
    VO(jit_gas),
    VO(jit_pool),
    VO(gas_rest),
    {"O_heap_objs", offsetof(nvm_vm, heap) + offsetof(nvm_heap, objs)},
    {"SZ_frame", sizeof(nvm_frame)},
    {"O_frame_pf", offsetof(nvm_frame, pf)},
    {"O_frame_ip", offsetof(nvm_frame, ip)},
    {"SZ_pfunc", sizeof(nvm_pfunc)},
    {"O_pfunc_code", offsetof(nvm_pfunc, code)},
    {"SZ_insn", sizeof(nvm_insn)},
    {"O_array_len", offsetof(nvm_array, len)},
    {"O_array_items", offsetof(nvm_array, items)},
    {"O_array_cap", offsetof(nvm_array, cap)},
    {"O_array_kind", offsetof(nvm_array, hdr) + offsetof(nvm_gchdr, sub)},
    {"O_map_nentries", offsetof(nvm_map, nentries)},
    {"O_map_entries", offsetof(nvm_map, entries)},
    {"O_map_shape", offsetof(nvm_map, hdr) + offsetof(nvm_gchdr, sub)},
    {"SZ_mapentry", sizeof(nvm_mapentry)},
    {"O_me_key", offsetof(nvm_mapentry, key)},
    {"O_me_value", offsetof(nvm_mapentry, value)},
    {"O_insn_k", offsetof(nvm_insn, k)},
    {"SZ_value", sizeof(nvm_value)},
    {"O_value_type", offsetof(nvm_value, type)},
};

void nvm_aot_fingerprint(char out[NVM_AOT_FP_LEN + 1])
{
    char buf[2048];
    size_t n = (size_t)snprintf(buf, sizeof buf, "nanovm-aot abi=%u version=%s", NVM_AOT_ABI,
                                NVM_VERSION_STRING);
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0] && n < sizeof buf; i++)
        n +=
            (size_t)snprintf(buf + n, sizeof buf - n, " %s=%zu", layouts[i].name, layouts[i].value);
    uint8_t h[NVM_SHA256_LEN];
    nvm_sha256(buf, n < sizeof buf ? n : sizeof buf - 1, h);
    nvm_hex(h, sizeof h, out);
}

static const char *const prelude[] = {
    "#include <stddef.h>\n"
    "#include <stdint.h>\n"
    "struct nvm_vm;\n"
    "typedef struct nvm_value {\n"
    "    union {\n"
    "        int64_t i;\n"
    "        double f;\n"
    "        uint32_t h;\n"
    "        int b;\n"
    "    } as;\n"
    "    uint32_t type;\n"
    "} nvm_value;\n"
    "_Static_assert(sizeof(nvm_value) == SZ_value, \"value size\");\n"
    "_Static_assert(offsetof(nvm_value, type) == O_value_type, \"value tag\");\n"
    "typedef struct nvm_aot_rt {\n"
    "    int (*fast)(struct nvm_vm *, uint32_t, nvm_value *, nvm_value *, int64_t);\n"
    "    int (*truthy)(struct nvm_vm *, const nvm_value *);\n"
    "    int (*gas)(struct nvm_vm *, uint32_t, uint32_t, nvm_value *);\n"
    "    int (*deopt)(struct nvm_vm *, uint32_t, nvm_value *, nvm_value *);\n"
    "    int (*interp_call)(struct nvm_vm *, nvm_value *, nvm_value *);\n"
    "    int (*call_space)(struct nvm_vm *, uint32_t, nvm_value *, nvm_value *, uint32_t);\n"
    "    int (*catch_)(struct nvm_vm *, uint32_t);\n"
    "    void (*drop_handlers)(struct nvm_vm *);\n"
    "    int64_t (*prefill)(struct nvm_vm *, int64_t, uint32_t);\n"
    "} nvm_aot_rt;\n"
    "typedef struct nvm_aot_ctx {\n"
    "    const nvm_aot_rt *rt;\n"
    "    const char *stack_limit;\n"
    "} nvm_aot_ctx;\n"
    "typedef int (*nvm_aot_fn)(struct nvm_vm *, nvm_value *, nvm_value *);\n"
    "typedef struct nvm_aot_desc {\n"
    "    uint32_t abi;\n"
    "    uint32_t nfuncs;\n"
    "    const char *fingerprint;\n"
    "    const nvm_aot_fn *fns;\n"
    "    uint64_t insns;\n"
    "} nvm_aot_desc;\n"
    "#define F(T, o) (*(T *)((char *)vm + (o)))\n"
    "#define CTX F(const nvm_aot_ctx *, O_jit_pool)\n"
    "#define RT (CTX->rt)\n"
    "#define U(x) __builtin_expect(!!(x), 0)\n"
    "#define SYNC() (F(int64_t, O_jit_gas) = gas)\n"
    "#define L(x) __builtin_expect(!!(x), 1)\n"
    "static inline double BD(int64_t i)\n{\n    union { int64_t i; double f; } u;\n"
    "    u.i = i;\n    return u.f;\n}\n"
    "static inline int64_t DB(double f)\n{\n    union { int64_t i; double f; } u;\n"
    "    u.f = f;\n    return u.i;\n}\n"
    "#define FV(t, i) ((t) == 3 ? BD(i) : (double)(i))\n"
    "/* the array object o stores values (not bools as bytes) */\n"
    "#define ARRV(o) (*(const uint16_t *)((o) + O_array_kind) == 0)\n"
    "/* a negative index k counts from the end of n elements (k + n wraps into [0, n) exactly\n"
    " * when -n <= k < 0); the empty asm keeps this a branch, taken rarely, not a select */\n"
    "#define KNEG(k, n) do { (k) += (n); __asm__ volatile(\"\" : \"+r\"(k)); } while (0)\n"
    "/* entry p of the map entries en has the string constant a as its key */\n"
    "#define KEYIS(en, p, a) (((const nvm_value *)((en) + (p) * SZ_mapentry + O_me_key))->type == "
    "4 "
    "&& \\\n        ((const nvm_value *)((en) + (p) * SZ_mapentry + O_me_key))->as.h == "
    "ks_[a].as.h)\n"
    "/* truthiness of a value with payload i and tag t (c: its cell) */\n"
    "static inline int TRUTHY(struct nvm_vm *vm, nvm_value *c, int64_t i, uint32_t t)\n{\n"
    "    if (t == 1)\n        return (int)i != 0;\n    if (t == 2)\n        return i != 0;\n"
    "    if (t == 0)\n        return 0;\n    c->as.i = i;\n    c->type = t;\n"
    "    return RT->truthy(vm, c);\n}\n"
    "/* a frameless call's result: the value's payload, and the gas countdown with the value's "
    "tag\n"
    " * in bits 56-63; g < 0: abandoned (redo the call with frames) */\n"
    "typedef struct PR {\n    int64_t v;\n    int64_t g;\n} PR;\n"
    "#define PBAIL ((PR){0, -1})\n"
    "#define GMASK ((INT64_C(1) << 56) - 1)\n"
    "#define PTRUTH(i, t) ((t) == 1 ? (int)(i) != 0 : (t) == 2 ? (i) != 0 : 0)\n",
    "#define PFCODE(fi) (*(const char **)(F(char *, O_pfuncs) + (fi) * SZ_pfunc + O_pfunc_code))\n"
    "/* CALL: pushes callee ci's frame (the caller resumes at instruction i + 1 of fi), calls fn\n"
    " * with the callee's base at height h and its slots after the caller's S */\n"
    "#define CALL(fi, i, ci, fn, h, S, need, cns)                                  \\\n"
    "    {                                                                         \\\n"
    "        ptrdiff_t bo = base - F(nvm_value *, O_stack);                        \\\n"
    "        ptrdiff_t so = slots - F(nvm_value *, O_slots);                       \\\n"
    "        uint32_t d = F(uint32_t, O_depth);                                    \\\n"
    "        if (U(F(char *, O_frames) + (size_t)d * SZ_frame >= F(char *, O_frames_end) || \\\n"
    "              base + (h) + (need) > F(nvm_value *, O_stack_end) ||             \\\n"
    "              slots + (S) + (cns) > F(nvm_value *, O_slots_end))) {           \\\n"
    "            rc = RT->call_space(vm, (ci), base + (h), slots + (S), (i));      \\\n"
    "            base = F(nvm_value *, O_stack) + bo;                              \\\n"
    "            slots = F(nvm_value *, O_slots) + so;                             \\\n"
    "            if (rc != 0)                                                      \\\n"
    "                goto unwind;                                                  \\\n"
    "            d = F(uint32_t, O_depth);                                         \\\n"
    "        }                                                                     \\\n"
    "        char *fr = F(char *, O_frames) + (size_t)d * SZ_frame;                \\\n"
    "        *(const char **)(fr - SZ_frame + O_frame_ip) = PFCODE(fi) + ((i) + 1) * SZ_insn; \\\n"
    "        *(const char **)(fr + O_frame_pf) = F(char *, O_pfuncs) + (ci) * SZ_pfunc; \\\n"
    "        F(uint32_t, O_depth) = d + 1;                                         \\\n"
    "        SYNC();                                                               \\\n"
    "        if (U((const char *)__builtin_frame_address(0) < CTX->stack_limit))   \\\n"
    "            rc = RT->interp_call(vm, base + (h), slots + (S));                \\\n"
    "        else                                                                  \\\n"
    "            rc = fn(vm, base + (h), slots + (S));                             \\\n"
    "        gas = F(int64_t, O_jit_gas);                                          \\\n"
    "        base = F(nvm_value *, O_stack) + bo;                                  \\\n"
    "        slots = F(nvm_value *, O_slots) + so;                                 \\\n"
    "        if (rc != 0)                                                          \\\n"
    "            goto unwind;                                                      \\\n"
    "    }\n"};

/* ---- per function ---- */
/* Where a value lives while generated code runs: in C locals named after its stack position
 * (pI3 pD3 pT3) or slot (sI3 sD3 sT3). Representation R_G: payload bits in xI, tag in xT; R_F: a
 * float in xD; any other r (a type): the tag is the constant r and the payload is in xI. A value's
 * interpreter cell is written from its locals (flush) before any runtime call that can observe it
 * and read back where the runtime changed it. Index v < W is stack position v, else slot v - W. */
enum { R_G = -1, R_F = NVM_T_FLOAT };
#define NVM_AOT_FC_MAX 16u /* field pointers cached per C function */
#define NVM_AOT_FO_MAX 8u  /* maps whose entries are cached per C function */
#define NVM_AOT_KS_MAX 32u /* field names given a shape and position per C function */
#define NVM_AOT_GS_MAX 8u  /* slots with a guard per C function */
#define NVM_AOT_GK_MAX 16u /* field names a slot's guard checks */

/* per block of one version: the facts (gen.held_*) it ends with when it starts with none, those
 * it kills, and those it starts with (flow_solve) */
typedef struct flowtab {
    uint32_t nblk;
    uint32_t *gen_g, *gen_a, *kill_g, *kill_a, *in_g, *in_a;
} flowtab;

typedef struct gen {
    nvm_tb *b;
    const nvm_module *m;
    const nvm_func *fn;
    uint32_t fi;
    int64_t consumed;
    uint32_t W, S;
    tmask *stk, *sl; /* masks before the current instruction (stk[0..H), sl[0..S)) */
    tmask *post;     /* W + S masks after it */
    int8_t *rep;     /* W + S representations */
    bool *dirty;     /* W + S: the locals are newer than the cell */
    uint32_t H, blk_end;
    uint32_t blk_extra;     /* gas charged at the block's entry for the block its JMP enters */
    char pre;               /* label prefix of the version being emitted */
    const nvm_fninfo *f;    /* its analysis */
    const uint8_t *spec;    /* its float speculation sites, NULL: none */
    const nvm_fninfo *gf;   /* the generic version (speculating version only) */
    bool pure;              /* emitting the frameless version (see emit_pure) */
    uint32_t twin;          /* emitting its copy p<f>_<twin> (0: p<f> itself; pure_copies) */
    const uint8_t *pok;     /* function -> has a frameless version */
    tmask *const *pspec;    /* function -> the argument types its frameless version assumes */
    const int8_t *prt;      /* function -> the type its frameless version returns, -1: any */
    bool metered;           /* gas is counted (else NVM_AOT_UNMETERED: no gas code at all) */
    uint32_t psmax, plmax;  /* most operand stack and slot cells a frameless call level takes */
    const uint32_t *pcost;  /* metered: gas charged at each block's check (gas_plan) */
    const uint32_t *pentry; /* function -> gas its frameless version's caller charges for it */
    const bool *callpaid;   /* frameless, metered: block -> entered only from the CALL before it,
                             * which charges its check (see gas_plan) */
    int32_t *org;           /* W: the slot a stack position was loaded from and still equals, -1 */
    /* Field cache of the C function: fc<k> (a C local) points at the value of field fc_key[k]
     * of the map in slot fc_slot[k], found by an earlier lookup, or is 0. It is set to 0 at
     * every store to the slot and after every runtime call (which may add or remove keys and so
     * move or reuse entries), on every path; a use looks it up again when it is 0. fo<k>/fn<k>
     * likewise keep the entries array and entry count of the map in slot fo_slot[k]. Each C
     * function is generated three times (fc_pass): the first pass only collects these tables, so
     * that a store or call also clears entries that later code (a loop's body, say) fills. */
    uint32_t nfc;
    uint32_t fc_slot[NVM_AOT_FC_MAX], fc_key[NVM_AOT_FC_MAX];
    uint32_t nfo;
    uint32_t fo_slot[NVM_AOT_FO_MAX];
    /* Shapes (heap.h): kS<j>/kP<j> (C locals) are a map shape and the byte offset in the entries
     * of the value at the position where maps of that shape hold the field named by string
     * constant ks_key[j], learned from a lookup that
     * found the constant's own handle there; kS is 0xFFFFFFFE (no shape) until then. A fact
     * about a shape never changes, so they are never cleared. fs<k> is the shape of the map
     * whose entries fo<k> holds (0xFFFFFFFF: not a map). */
    uint32_t nks;
    uint32_t ks_key[NVM_AOT_KS_MAX];
    /* Facts about slots, kept in C locals over a region of code, for slots whose value is a map
     * or an array that field or element accesses use:
     * - Guard j (slot gs_slot[j]): e<j> is the entries array of the map in the slot when that
     *   map holds every name gs_key[j][..] at its predicted position (predict_positions), else 0.
     *   gS<j> is a shape whose maps passed the check: all maps of one shape hold the same names
     *   in the same places, so the next map of that shape costs one compare.
     * - Array fact k (slot as_slot[k]): an<k>/ai<k>/ak<k> are the length, items and storage
     *   kind of the array in the slot; an<k> is 0 when the slot holds no array, so that every
     *   access takes the cold path.
     * A fact is set up at a store to its slot and at an access where it is not held, and held
     * (held_g/held_a bits) until the slot is stored to or a runtime call is made on the main
     * path (both kill it). A runtime call on a side path that rejoins (a cold path, a gas
     * refill) sets the held facts up again after the call (fc_drop); an inline ARR_PUSH kills
     * the other array facts, whose arrays it may have grown. Facts flow between blocks: a block
     * starts with those every predecessor ends with (flow_solve), so a fact set up before a loop
     * holds in its body. */
    const int32_t *kpos;
    uint32_t ngs, nas;
    uint32_t gs_slot[NVM_AOT_GS_MAX], gs_nk[NVM_AOT_GS_MAX];
    uint32_t gs_key[NVM_AOT_GS_MAX][NVM_AOT_GK_MAX];
    uint32_t as_slot[NVM_AOT_GS_MAX];
    uint32_t held_g, held_a, kill_g, kill_a;
    int flow;             /* pass: 0 collects the tables, 1 each block's facts, 2 emits */
    flowtab ft[3];        /* per version: the speculating one (L), the generic one (G), P */
    flowtab *fv;          /* the version being emitted */
    const uint8_t *gsite; /* the speculation sites (entries into the generic version) */
    const uint64_t *live; /* slot liveness (slot_liveness), NULL: all live */
    uint32_t flush_at;    /* the instruction of the last flush (slot_live) */
    bool fc_fixed;        /* passes 1 and 2: the tables are complete */
} gen;

typedef struct nm {
    char s[112];
} nm;

/* cell of stack position q, relative to base */
static long long cl(const gen *g, uint32_t q)
{
    return (long long)q - g->consumed;
}

static nm N(const gen *g, uint32_t v, char c)
{
    nm n;
    if (v < g->W)
        snprintf(n.s, sizeof n.s, "p%c%" PRIu32, c, v);
    else
        snprintf(n.s, sizeof n.s, "s%c%" PRIu32, c, v - g->W);
    return n;
}

static nm cell(const gen *g, uint32_t v)
{
    nm n;
    if (v < g->W)
        snprintf(n.s, sizeof n.s, "base[%lld]", cl(g, v));
    else
        snprintf(n.s, sizeof n.s, "slots[%" PRIu32 "]", v - g->W);
    return n;
}

static int rep_of(tmask m)
{
    int t = nvm_tm_single(m);
    return t < 0 ? R_G : t;
}

static void put_i64(nvm_tb *b, int64_t v)
{
    if (v == INT64_MIN)
        nvm_tb_printf(b, "INT64_MIN");
    else
        nvm_tb_printf(b, "INT64_C(%" PRId64 ")", v);
}

/* dst (an nvm_value lvalue) = the value of v */
static void store_val(gen *g, uint32_t v, const char *dst)
{
    int r = g->rep[v];
    if (r == R_F)
        nvm_tb_printf(g->b, "    %s.as.f = %s; %s.type = 3;\n", dst, N(g, v, 'D').s, dst);
    else if (r == R_G)
        nvm_tb_printf(g->b, "    %s.as.i = %s; %s.type = %s;\n", dst, N(g, v, 'I').s, dst,
                      N(g, v, 'T').s);
    else
        nvm_tb_printf(g->b, "    %s.as.i = %s; %s.type = %d;\n", dst, N(g, v, 'I').s, dst, r);
}

/* the locals of v in representation r = src (an nvm_value lvalue) */
static void load_val(gen *g, uint32_t v, const char *src, int r)
{
    if (r == R_F)
        nvm_tb_printf(g->b, "    %s = %s.as.f;\n", N(g, v, 'D').s, src);
    else if (r == R_G)
        nvm_tb_printf(g->b, "    %s = %s.as.i; %s = %s.type;\n", N(g, v, 'I').s, src,
                      N(g, v, 'T').s, src);
    else if (r == NVM_T_BOOL)
        nvm_tb_printf(g->b, "    %s = %s.as.b;\n", N(g, v, 'I').s, src);
    else if (r == NVM_T_INT)
        nvm_tb_printf(g->b, "    %s = %s.as.i;\n", N(g, v, 'I').s, src);
    else if (r == NVM_T_STR || r == NVM_T_ARRAY || r == NVM_T_MAP)
        nvm_tb_printf(g->b, "    %s = %s.as.h;\n", N(g, v, 'I').s, src);
}

/* writes every value the cells do not hold yet (no state change: may be in a branch) */
/* whether slot s may be read before it is written from instruction `at` on (live), where the
 * runtime is about to run instruction `at` or resume the frame there */
static bool slot_live(const gen *g, uint32_t at, uint32_t s)
{
    if (g->live == NULL || at == UINT32_MAX)
        return true;
    size_t bit = (size_t)at * g->S + s;
    return (g->live[bit / 64] >> (bit % 64)) & 1u;
}

/* writes every value the cells do not hold yet and the runtime may read: the operand stack and
 * the slots live at instruction `at` (no state change: may be in a branch). A slot written
 * before it is read again needs no cell: the interpreter resuming there writes it first, and the
 * generated code does not read it either (its facts are not set up again after the call). Its
 * cell may hold an older value, even one a frame before left there: the collector ignores a
 * handle it does not know, and at worst keeps one more object alive until the slot is written
 * or the frame returns. A slot that may be read before it is written (a LOAD that fails when it
 * never was) is live, so its cell gets the undefined value. */
static void flush(gen *g, uint32_t at)
{
    g->flush_at = at;
    for (uint32_t v = 0; v < g->W + g->S; v++)
        if ((v < g->H || (v >= g->W && slot_live(g, at, v - g->W))) && g->dirty[v])
            store_val(g, v, cell(g, v).s);
}

/* after flush(g, at) on the main path */
static void mark_clean(gen *g, uint32_t at)
{
    for (uint32_t v = 0; v < g->W + g->S; v++)
        if (v < g->W || slot_live(g, at, v - g->W))
            g->dirty[v] = false;
}

/* Slot liveness of fn, one bit per (instruction, slot): live before instruction i when some path
 * from i reads it (LOAD) before writing it (STORE). NULL: every slot counts as live (a function
 * with handlers, whose entries read every slot from the cells, or too large a table). */
static uint64_t *slot_liveness(const nvm_func *fn)
{
    uint32_t n = fn->ninsn, S = fn->nslots;
    if (S == 0 || (uint64_t)(n + 1) * S > (UINT64_C(1) << 24))
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        if (fn->code[i].op == NVM_OP_ENTER_TRY)
            return NULL;
    size_t words = ((size_t)(n + 1) * S + 63) / 64;
    uint64_t *lv = calloc(words + 1, sizeof *lv);
    if (lv == NULL)
        return NULL;
#define LIVE(i, s) ((lv[((size_t)(i)*S + (s)) / 64] >> (((size_t)(i)*S + (s)) % 64)) & 1u)
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t i = n; i-- > 0;) {
            const nvm_insn *in = &fn->code[i];
            bool next = !(in->op == NVM_OP_JMP || in->op == NVM_OP_RET || in->op == NVM_OP_HALT ||
                          in->op == NVM_OP_THROW);
            bool br = nvm_op_is_branch(in->op) && in->a < n;
            for (uint32_t sl = 0; sl < S; sl++) {
                bool l = (next && i + 1 < n && LIVE(i + 1, sl)) || (br && LIVE(in->a, sl));
                if (in->op == NVM_OP_STORE && in->a == sl)
                    l = false;
                if (in->op == NVM_OP_LOAD && in->a == sl)
                    l = true;
                size_t bit = (size_t)i * S + sl;
                if (l && !LIVE(i, sl)) {
                    lv[bit / 64] |= UINT64_C(1) << (bit % 64);
                    changed = true;
                }
            }
        }
    }
#undef LIVE
    return lv;
}

/* same value, representation from -> to */
static void coerce(gen *g, uint32_t v, int from, int to)
{
    if (from == to)
        return;
    if (to == R_F)
        nvm_tb_printf(g->b, "    %s = BD(%s);\n", N(g, v, 'D').s, N(g, v, 'I').s);
    else if (from == R_F)
        nvm_tb_printf(g->b, "    %s = DB(%s);%s%s%s\n", N(g, v, 'I').s, N(g, v, 'D').s,
                      to == R_G ? " " : "", to == R_G ? N(g, v, 'T').s : "",
                      to == R_G ? " = 3;" : "");
    else if (to == R_G)
        nvm_tb_printf(g->b, "    %s = %d;\n", N(g, v, 'T').s, from);
}

/* the entry mask of v at the block of instruction t in analysis f */
static tmask entry_mask(const gen *g, const nvm_fninfo *f, uint32_t t, uint32_t v)
{
    uint32_t bi = f->blk_of[t];
    if (bi == UINT32_MAX || !f->seen[bi])
        return v < g->W ? TM_ANY : (tmask)(TM_ANY | TM_UNDEF);
    return f->state[(size_t)bi * (g->W + g->S) + v];
}

/* goto the block at t of the version (pre, f), converting representations; past_check: to
 * its label after the gas check (pre<t>_) */
static void jump_to_ex(gen *g, char pre, const nvm_fninfo *f, uint32_t t, bool past_check)
{
    for (uint32_t v = 0; v < g->W + g->S; v++)
        if (v < g->H || v >= g->W)
            coerce(g, v, g->rep[v], rep_of(entry_mask(g, f, t, v)));
    nvm_tb_printf(g->b, "    goto %c%" PRIu32 "%s;\n", pre, t, past_check ? "_" : "");
}
static void jump_to(gen *g, char pre, const nvm_fninfo *f, uint32_t t)
{
    jump_to_ex(g, pre, f, t, false);
}

/* C expressions for the value at position q */
static nm xi(const gen *g, uint32_t q)
{
    return N(g, q, 'I');
}
static nm xf(const gen *g, uint32_t q)
{
    nm n;
    tmask m = g->stk[q];
    if (g->rep[q] == R_F)
        return N(g, q, 'D');
    if (m == TM_FLOAT)
        snprintf(n.s, sizeof n.s, "BD(pI%" PRIu32 ")", q);
    else if (m == TM_INT)
        snprintf(n.s, sizeof n.s, "(double)pI%" PRIu32, q);
    else
        snprintf(n.s, sizeof n.s, "FV(pT%" PRIu32 ", pI%" PRIu32 ")", q, q);
    return n;
}
/* "position q holds type t", folded with its mask and representation */
/* "the value with mask m and representation r, tag local <c>T<k>, has type t", folded */
static nm is_typed(tmask m, int r, int t, char c, uint32_t k)
{
    nm n;
    if (m == TM(t) || r == t)
        snprintf(n.s, sizeof n.s, "1");
    else if (!(m & TM(t)) || r != R_G)
        snprintf(n.s, sizeof n.s, "0");
    else
        snprintf(n.s, sizeof n.s, "(%cT%" PRIu32 " == %d)", c, k, t);
    return n;
}
static nm is(const gen *g, uint32_t q, int t)
{
    return is_typed(g->stk[q], g->rep[q], t, 'p', q);
}
static nm isnum(const gen *g, uint32_t q)
{
    nm n;
    tmask m = g->stk[q];
    int r = g->rep[q];
    if ((m != 0 && (m & ~TM_NUM) == 0) || r == NVM_T_INT || r == R_F)
        snprintf(n.s, sizeof n.s, "1");
    else if (!(m & TM_NUM) || r != R_G)
        snprintf(n.s, sizeof n.s, "0");
    else
        snprintf(n.s, sizeof n.s, "(pT%" PRIu32 " - 2u <= 1u)", q);
    return n;
}

/* locals of v (representation r) = expr, a value of type vt */
static void assign(gen *g, uint32_t v, int r, int vt, const char *expr)
{
    if (r == R_F)
        nvm_tb_printf(g->b, "    %s = %s;\n", N(g, v, 'D').s, expr);
    else if (vt == NVM_T_FLOAT)
        nvm_tb_printf(g->b, "    %s = DB(%s);%s%s%s\n", N(g, v, 'I').s, expr, r == R_G ? " " : "",
                      r == R_G ? N(g, v, 'T').s : "", r == R_G ? " = 3;" : "");
    else if (r == R_G)
        nvm_tb_printf(g->b, "    %s = %s; %s = %d;\n", N(g, v, 'I').s, expr, N(g, v, 'T').s, vt);
    else
        nvm_tb_printf(g->b, "    %s = %s;\n", N(g, v, 'I').s, expr);
}

static void set_res(gen *g, uint32_t v, int r)
{
    g->rep[v] = (int8_t)r;
    g->dirty[v] = true;
    if (v < g->W)
        g->org[v] = -1;
}

/* "slot s holds type t", folded with its mask m and representation */
static nm slot_is(const gen *g, uint32_t s, tmask m, int t)
{
    return is_typed(m, g->rep[g->W + s], t, 's', s);
}

/* sets up guard j (full: with the check of the names, else only the learned shape) or array
 * fact j (guard false) from the slot's locals; m: the slot's mask */
static void fact_setup(gen *g, bool guard, uint32_t j, tmask m, bool full)
{
    nvm_tb *b = g->b;
    uint32_t s = guard ? g->gs_slot[j] : g->as_slot[j];
    nvm_tb_printf(b, guard ? "    e%" PRIu32 " = 0;\n" : "    an%" PRIu32 " = 0;\n", j);
    nvm_tb_printf(b,
                  "    if (%s) {\n    char *o_ = ob%" PRIu32 ";\n"
                  "    if (U(o_ == 0)) ob%" PRIu32
                  " = o_ = F(char **, O_heap_objs)[(uint32_t)sI%" PRIu32 "];\n",
                  slot_is(g, s, m, guard ? NVM_T_MAP : NVM_T_ARRAY).s, s, s, s);
    if (!guard) {
        nvm_tb_printf(b,
                      "    an%" PRIu32 " = *(uint32_t *)(o_ + O_array_len);\n"
                      "    ai%" PRIu32 " = *(char **)(o_ + O_array_items);\n"
                      "    ak%" PRIu32 " = *(const uint16_t *)(o_ + O_array_kind);\n    }\n",
                      j, j, j);
        return;
    }
    nvm_tb_printf(b,
                  "    char *en_ = *(char **)(o_ + O_map_entries);\n"
                  "    uint32_t sh_ = *(const uint16_t *)(o_ + O_map_shape);\n"
                  "    if (L(sh_ == gS%" PRIu32 ")) e%" PRIu32 " = en_;\n",
                  j, j);
    if (full) {
        /* the entry count first: an empty map has no entries array */
        uint32_t maxp = 0;
        for (uint32_t k = 0; k < g->gs_nk[j]; k++) {
            uint32_t p = (uint32_t)g->kpos[g->gs_key[j][k]];
            maxp = p > maxp ? p : maxp;
        }
        nvm_tb_printf(b, "    else if (*(uint32_t *)(o_ + O_map_nentries) > %" PRIu32 "u", maxp);
        for (uint32_t k = 0; k < g->gs_nk[j]; k++)
            nvm_tb_printf(b, " && KEYIS(en_, %" PRId32 ", %" PRIu32 ")", g->kpos[g->gs_key[j][k]],
                          g->gs_key[j][k]);
        nvm_tb_printf(
            b, ") {\n    e%" PRIu32 " = en_;\n    if (sh_ < %uu) gS%" PRIu32 " = sh_;\n    }\n", j,
            NVM_SHAPE_NONE, j);
    }
    nvm_tb_printf(b, "    }\n");
}

/* the facts about slot s (m: its mask) are set up: it has been stored to */
static void facts_of_slot(gen *g, uint32_t s, tmask m)
{
    for (uint32_t j = 0; j < g->ngs; j++)
        if (g->gs_slot[j] == s) {
            fact_setup(g, true, j, m, true);
            g->held_g |= 1u << j;
        }
    for (uint32_t j = 0; j < g->nas; j++)
        if (g->as_slot[j] == s) {
            fact_setup(g, false, j, m, true);
            g->held_a |= 1u << j;
        }
}

/* a runtime call on the main path: no fact holds after it */
static void kill_all(gen *g)
{
    g->kill_g = g->kill_a = UINT32_MAX;
    g->held_g = g->held_a = 0;
}

/* after a runtime call (all < 0) or a store to slot `all`: the cached field pointers and
 * entries concerned are looked up again; after a call, the facts held are set up again */
static void fc_drop_slot(gen *g, int32_t all)
{
    for (uint32_t k = 0; k < g->nfc; k++)
        if (all < 0 || g->fc_slot[k] == (uint32_t)all)
            nvm_tb_printf(g->b, "    fc%" PRIu32 " = 0;\n", k);
    for (uint32_t k = 0; k < g->nfo; k++)
        if (all < 0 || g->fo_slot[k] == (uint32_t)all)
            nvm_tb_printf(g->b, "    fo%" PRIu32 " = 0;\n", k);
    for (uint32_t j = 0; j < g->ngs; j++) {
        if (all < 0 && (g->held_g >> j & 1u) && slot_live(g, g->flush_at, g->gs_slot[j]))
            fact_setup(g, true, j, g->sl[g->gs_slot[j]], false);
        else if (all >= 0 && g->gs_slot[j] == (uint32_t)all) {
            g->held_g &= ~(1u << j);
            g->kill_g |= 1u << j;
        }
    }
    for (uint32_t j = 0; j < g->nas; j++) {
        if (all < 0 && (g->held_a >> j & 1u) && slot_live(g, g->flush_at, g->as_slot[j]))
            fact_setup(g, false, j, g->sl[g->as_slot[j]], true);
        else if (all >= 0 && g->as_slot[j] == (uint32_t)all) {
            g->held_a &= ~(1u << j);
            g->kill_a |= 1u << j;
        }
    }
}
static void fc_drop(gen *g)
{
    fc_drop_slot(g, -1);
}

/* instruction i stepped by the runtime (top at position top); an error leaves the function */
static void step(gen *g, uint32_t i, uint32_t top)
{
    if (g->pure) {
        nvm_tb_printf(g->b, "    return PBAIL;\n");
        return;
    }
    flush(g, i);
    nvm_tb_printf(g->b,
                  "    rc = RT->fast(vm, %" PRIu32 "u, base + %lld, slots, gas);\n"
                  "    if (U(rc != 0)) { gas += %" PRIu32 "; goto unwind; }\n",
                  i, cl(g, top), g->blk_end - (i + 1) + g->blk_extra);
    fc_drop(g);
}

/* the cold path of an inlined instruction: stepped, then position q reloaded (rep r) */
static void slow_reload(gen *g, uint32_t i, int q, int r)
{
    if (g->pure) {
        nvm_tb_printf(g->b, "    if (U(!ok_)) return PBAIL;\n    }\n");
        return;
    }
    nvm_tb_printf(g->b, "    if (U(!ok_)) {\n");
    step(g, i, g->H);
    if (q >= 0)
        load_val(g, (uint32_t)q, cell(g, (uint32_t)q).s, r);
    nvm_tb_printf(g->b, "    }\n    }\n");
}

static void arith(gen *g, uint32_t i, uint8_t op)
{
    nvm_tb *b = g->b;
    uint32_t H = g->H, x = H - 2, y = H - 1;
    int r = rep_of(g->post[x]);
    static const char *const bi[] = {"add", "sub", "mul"};
    static const char ch[] = {'+', '-', '*', '/'};
    int k = op == NVM_OP_ADD ? 0 : op == NVM_OP_SUB ? 1 : op == NVM_OP_MUL ? 2 : 3;
    char e[400];
    nm xint = is(g, x, NVM_T_INT), yint = is(g, y, NVM_T_INT);
    if (k < 3 && (strcmp(xint.s, "0") == 0 || strcmp(yint.s, "0") == 0) &&
        strcmp(isnum(g, x).s, "1") == 0 && strcmp(isnum(g, y).s, "1") == 0) {
        /* two numbers, not two ints: float arithmetic, which cannot fail */
        snprintf(e, sizeof e, "%s %c %s", xf(g, x).s, ch[k], xf(g, y).s);
        assign(g, x, r, NVM_T_FLOAT, e);
        set_res(g, x, r);
        return;
    }
    nvm_tb_printf(b, "    { int ok_ = 0;\n    if (%s && %s) {\n", xint.s, yint.s);
    if (op == NVM_OP_DIV || op == NVM_OP_MOD) {
        nvm_tb_printf(b, "    if (L(%s != 0 && (%s != -1 || %s != INT64_MIN))) {\n", xi(g, y).s,
                      xi(g, y).s, xi(g, x).s);
        snprintf(e, sizeof e, "%s %c %s", xi(g, x).s, op == NVM_OP_DIV ? '/' : '%', xi(g, y).s);
    } else {
        nvm_tb_printf(b, "    int64_t r_;\n    if (L(!__builtin_%s_overflow(%s, %s, &r_))) {\n",
                      bi[k], xi(g, x).s, xi(g, y).s);
        snprintf(e, sizeof e, "r_");
    }
    assign(g, x, r, NVM_T_INT, e);
    nvm_tb_printf(b, "    ok_ = 1; }\n    }");
    if (op != NVM_OP_MOD) {
        nvm_tb_printf(b, " else if (%s && %s", isnum(g, x).s, isnum(g, y).s);
        if (op == NVM_OP_DIV)
            nvm_tb_printf(b, " && %s != 0.0", xf(g, y).s);
        nvm_tb_printf(b, ") {\n");
        snprintf(e, sizeof e, "%s %c %s", xf(g, x).s, ch[k], xf(g, y).s);
        assign(g, x, r, NVM_T_FLOAT, e);
        nvm_tb_printf(b, "    ok_ = 1;\n    }");
    }
    nvm_tb_printf(b, "\n");
    slow_reload(g, i, (int)x, r);
    set_res(g, x, r);
}

/* Comparison: its result is left in the C variable r_ (inside an open brace) */
static void compare(gen *g, uint32_t i, uint8_t op)
{
    nvm_tb *b = g->b;
    uint32_t H = g->H, x = H - 2, y = H - 1;
    const char *o = op == NVM_OP_EQ   ? "=="
                    : op == NVM_OP_NE ? "!="
                    : op == NVM_OP_LT ? "<"
                    : op == NVM_OP_LE ? "<="
                    : op == NVM_OP_GT ? ">"
                                      : ">=";
    bool eq = op == NVM_OP_EQ || op == NVM_OP_NE;
    nvm_tb_printf(b, "    { int ok_ = 1, r_ = 0;\n");
    if (strcmp(is(g, x, NVM_T_FLOAT).s, "1") == 0 && strcmp(is(g, y, NVM_T_FLOAT).s, "1") == 0) {
        /* two floats: compared inline, which cannot fail */
        nvm_tb_printf(b, "    (void)ok_;\n    r_ = %s %s %s;\n", xf(g, x).s, o, xf(g, y).s);
        return;
    }
    nvm_tb_printf(b, "    if (%s && %s) r_ = %s %s %s;\n", is(g, x, NVM_T_INT).s,
                  is(g, y, NVM_T_INT).s, xi(g, x).s, o, xi(g, y).s);
    if (eq)
        nvm_tb_printf(b, "    else if (%s && %s) r_ = (int)%s %s (int)%s;\n",
                      is(g, x, NVM_T_BOOL).s, is(g, y, NVM_T_BOOL).s, xi(g, x).s, o, xi(g, y).s);
    /* int against float is compared exactly by the runtime */
    nvm_tb_printf(b, "    else if (%s && %s) r_ = %s %s %s;\n    else ok_ = 0;\n",
                  is(g, x, NVM_T_FLOAT).s, is(g, y, NVM_T_FLOAT).s, xf(g, x).s, o, xf(g, y).s);
    if (g->pure) {
        nvm_tb_printf(b, "    if (U(!ok_)) return PBAIL;\n");
        return;
    }
    nvm_tb_printf(b, "    if (U(!ok_)) {\n");
    step(g, i, H);
    nvm_tb_printf(b, "    r_ = base[%lld].as.b;\n    }\n", cl(g, x));
}

/* truthiness of position q */
static nm truth(const gen *g, uint32_t q)
{
    nm n;
    int r = g->rep[q];
    if (r == NVM_T_BOOL)
        snprintf(n.s, sizeof n.s, "((int)pI%" PRIu32 " != 0)", q);
    else if (r == NVM_T_INT)
        snprintf(n.s, sizeof n.s, "(pI%" PRIu32 " != 0)", q);
    else if (r == NVM_T_NULL)
        snprintf(n.s, sizeof n.s, "0");
    else if (g->pure && r == R_G) /* other tags: abandoned before (pure_truth_guard) */
        snprintf(n.s, sizeof n.s, "PTRUTH(pI%" PRIu32 ", pT%" PRIu32 ")", q, q);
    else if (g->pure)
        snprintf(n.s, sizeof n.s, "0");
    else if (r == R_F)
        snprintf(n.s, sizeof n.s, "TRUTHY(vm, &base[%lld], DB(pD%" PRIu32 "), 3)", cl(g, q), q);
    else if (r == R_G)
        snprintf(n.s, sizeof n.s, "TRUTHY(vm, &base[%lld], pI%" PRIu32 ", pT%" PRIu32 ")", cl(g, q),
                 q, q);
    else
        snprintf(n.s, sizeof n.s, "TRUTHY(vm, &base[%lld], pI%" PRIu32 ", %d)", cl(g, q), q, r);
    return n;
}

static const char *opname(uint8_t op)
{
    const char *n = nvm_opinfo_table[op].name;
    return n != NULL ? n : "?";
}

/* copies the locals of v to w (same representation) */
static void copy_var(gen *g, uint32_t w, uint32_t v)
{
    int r = g->rep[v];
    if (r == R_F)
        nvm_tb_printf(g->b, "    %s = %s;\n", N(g, w, 'D').s, N(g, v, 'D').s);
    else
        nvm_tb_printf(g->b, "    %s = %s;\n", N(g, w, 'I').s, N(g, v, 'I').s);
    if (r == R_G)
        nvm_tb_printf(g->b, "    %s = %s;\n", N(g, w, 'T').s, N(g, v, 'T').s);
    set_res(g, w, r);
    uint32_t W = g->W;
    if (w < W) {
        g->org[w] = v >= W ? (int32_t)(v - W) : g->org[v];
    } else {
        /* slot w - W changes: its object, cached fields and the positions loaded from it go */
        int32_t sl = (int32_t)(w - W);
        nvm_tb_printf(g->b, "    ob%" PRId32 " = 0;\n", sl);
        for (uint32_t q = 0; q < W; q++)
            if (g->org[q] == sl)
                g->org[q] = -1;
        fc_drop_slot(g, sl);
        facts_of_slot(g, (uint32_t)sl, g->post[w]);
    }
}

/* after `if (ARRV(o_)) {...}`: else, when the value at position v is a bool, store it as the
 * byte at index k of the bool array whose items are `items` and set ok_ */
static void bool_elem_store(gen *g, uint32_t v, const char *k, const char *items)
{
    nm t = is(g, v, NVM_T_BOOL);
    if (strcmp(t.s, "0") == 0)
        return;
    nvm_tb_printf(g->b,
                  "    else if (%s) {\n"
                  "    ((uint8_t *)(%s))[%s] = (uint8_t)((int)%s != 0);\n"
                  "    ok_ = 1;\n    }\n",
                  t.s, items, k, xi(g, v).s);
}

/* the object of the handle at position q. When the handle came from slot s, ob<s> keeps the
 * object's address until the slot is stored to: objects do not move, and the slot keeps the
 * object alive. */
static void obj(gen *g, uint32_t q)
{
    int32_t sl = g->org[q];
    if (sl < 0) {
        nvm_tb_printf(g->b, "    char *o_ = F(char **, O_heap_objs)[(uint32_t)%s];\n", xi(g, q).s);
        return;
    }
    nvm_tb_printf(g->b,
                  "    char *o_ = ob%" PRId32 ";\n"
                  "    if (U(o_ == 0)) ob%" PRId32
                  " = o_ = F(char **, O_heap_objs)[(uint32_t)%s];\n",
                  sl, sl, xi(g, q).s);
}

/* v_ = the value of field a of the map at position q, or 0 (the cold path): at the position
 * learned for the map's shape, else through the instruction's inline cache. When the map came
 * from a slot, the pointer and the map's entries and shape are kept for later accesses (see
 * gen.fc_slot). */
static void field_ptr(gen *g, uint32_t i, uint32_t q, uint32_t a)
{
    int32_t sl = g->org[q];
    uint32_t k = UINT32_MAX, o = UINT32_MAX, ks = UINT32_MAX;
    for (uint32_t j = 0; sl >= 0 && j < g->nfc; j++)
        if (g->fc_slot[j] == (uint32_t)sl && g->fc_key[j] == a)
            k = j;
    for (uint32_t j = 0; sl >= 0 && j < g->nfo; j++)
        if (g->fo_slot[j] == (uint32_t)sl)
            o = j;
    for (uint32_t j = 0; j < g->nks; j++)
        if (g->ks_key[j] == a)
            ks = j;
    if (!g->fc_fixed) {
        if (sl >= 0 && k == UINT32_MAX && g->nfc < NVM_AOT_FC_MAX) {
            k = g->nfc++;
            g->fc_slot[k] = (uint32_t)sl;
            g->fc_key[k] = a;
        }
        if (sl >= 0 && o == UINT32_MAX && g->nfo < NVM_AOT_FO_MAX) {
            o = g->nfo++;
            g->fo_slot[o] = (uint32_t)sl;
        }
        if (ks == UINT32_MAX && g->nks < NVM_AOT_KS_MAX) {
            ks = g->nks++;
            g->ks_key[ks] = a;
        }
    }
    if (k != UINT32_MAX)
        nvm_tb_printf(g->b, "    nvm_value *v_ = fc%" PRIu32 ";\n    if (U(v_ == 0)) {\n", k);
    else
        nvm_tb_printf(g->b, "    nvm_value *v_ = 0;\n    {\n");
    if (o != UINT32_MAX)
        nvm_tb_printf(g->b,
                      "    char *en_ = fo%" PRIu32 "; uint32_t ne_ = fn%" PRIu32
                      ", sh_ = fs%" PRIu32 ";\n    if (U(en_ == 0)) {\n    sh_ = 0xFFFFFFFFu;\n",
                      o, o, o);
    else
        nvm_tb_printf(g->b, "    char *en_ = 0; uint32_t ne_ = 0, sh_ = 0xFFFFFFFFu;\n    {\n");
    nvm_tb_printf(g->b, "    if (%s) {\n", is(g, q, NVM_T_MAP).s);
    obj(g, q);
    nvm_tb_printf(g->b, "    en_ = *(char **)(o_ + O_map_entries);\n"
                        "    ne_ = *(uint32_t *)(o_ + O_map_nentries);\n"
                        "    sh_ = *(const uint16_t *)(o_ + O_map_shape);\n    }\n");
    if (o != UINT32_MAX)
        nvm_tb_printf(g->b, "    fo%" PRIu32 " = en_; fn%" PRIu32 " = ne_; fs%" PRIu32 " = sh_;\n",
                      o, o, o);
    nvm_tb_printf(g->b, "    }\n");
    if (ks != UINT32_MAX)
        nvm_tb_printf(g->b,
                      "    if (L(sh_ == kS%" PRIu32 "))\n"
                      "    v_ = (nvm_value *)(en_ + kP%" PRIu32 ");\n"
                      "    else {\n",
                      ks, ks);
    nvm_tb_printf(g->b,
                  "    uint32_t pos_ = *(const uint32_t *)(pc_ + %" PRIu32
                  "u * SZ_insn + O_insn_k);\n"
                  "    if (L(pos_ < ne_)) {\n"
                  "    char *e_ = en_ + (size_t)pos_ * SZ_mapentry;\n"
                  "    if (L(((nvm_value *)(e_ + O_me_key))->type == 4 && ((nvm_value *)(e_ + "
                  "O_me_key))->as.h == ks_[%" PRIu32 "].as.h)) {\n"
                  "    v_ = (nvm_value *)(e_ + O_me_value);\n",
                  i, a);
    if (ks != UINT32_MAX)
        nvm_tb_printf(g->b,
                      "    if (sh_ < %uu) { kS%" PRIu32 " = sh_; kP%" PRIu32
                      " = (size_t)pos_ * SZ_mapentry + O_me_value; }\n",
                      NVM_SHAPE_NONE, ks, ks);
    nvm_tb_printf(g->b, "    }\n    }\n");
    if (ks != UINT32_MAX)
        nvm_tb_printf(g->b, "    }\n");
    if (k != UINT32_MAX)
        nvm_tb_printf(g->b, "    fc%" PRIu32 " = v_;\n", k);
    nvm_tb_printf(g->b, "    }\n");
}

/* ---- predicted field positions ----
 * map.c appends a new key after the others, so a map made by NEW_OBJ and then given fields by
 * SET_FIELD holds the n-th new name at position n, in every map made there. Straight-line code
 * after each NEW_OBJ is followed while the new map is on the operand stack or in a slot; a name
 * is predicted at the position most of these sites give it (kpos[string index], -1: none).
 * Generated code checks a prediction on the map at hand before relying on it (slot guards). */
#define NVM_AOT_BUILD_KEYS 64u
static void predict_positions(const nvm_module *m, int32_t *kpos, uint32_t *votes, bool *fresh,
                              bool *target)
{
    for (uint32_t a = 0; a < m->nstrs; a++) {
        kpos[a] = -1;
        votes[a] = 0;
    }
    for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
        const nvm_func *fn = &m->funcs[fi];
        uint32_t W = fn->max_height + 1, S = fn->nslots;
        memset(target, 0, fn->ninsn + 1);
        for (uint32_t i = 0; i < fn->ninsn; i++)
            if (nvm_op_is_branch(fn->code[i].op) || fn->code[i].op == NVM_OP_ENTER_TRY)
                target[fn->code[i].a] = true;
        for (uint32_t i = 0; i < fn->ninsn; i++) {
            if (fn->code[i].op != NVM_OP_NEW_OBJ || fn->heights[i] == INT32_MIN)
                continue;
            /* fresh[0..W): stack positions holding the new map, fresh[W..W+S): slots */
            memset(fresh, 0, W + S);
            fresh[fn->heights[i] + fn->consumed] = true;
            uint32_t keys[NVM_AOT_BUILD_KEYS], n = 0;
            for (uint32_t j = i + 1; j < fn->ninsn && !target[j] && fn->heights[j] != INT32_MIN &&
                                     fn->heights[j + 1] != INT32_MIN;
                 j++) {
                const nvm_insn *in = &fn->code[j];
                uint32_t H = (uint32_t)(fn->heights[j] + (int32_t)fn->consumed);
                uint32_t H2 = (uint32_t)(fn->heights[j + 1] + (int32_t)fn->consumed);
                bool keep = false, any = false;
                if (in->op == NVM_OP_SET_FIELD && H >= 2 && fresh[H - 2]) {
                    bool known = false;
                    for (uint32_t k = 0; k < n; k++)
                        known |= keys[k] == in->a;
                    if (!known && n < NVM_AOT_BUILD_KEYS) {
                        uint32_t a = in->a;
                        keys[n] = a;
                        if (votes[a] == 0)
                            kpos[a] = (int32_t)n;
                        votes[a] += kpos[a] == (int32_t)n ? 1 : (uint32_t)-1;
                        n++;
                    }
                    keep = true;
                } else if (in->op == NVM_OP_STORE && H >= 1) {
                    fresh[W + in->a] = fresh[H - 1];
                } else if (in->op == NVM_OP_LOAD) {
                    keep = fresh[W + in->a];
                } else if (in->op == NVM_OP_DUP && H >= 1) {
                    keep = fresh[H - 1];
                }
                /* the results: positions from the lowest one written up */
                int pu = in->op == NVM_OP_CALL ? (int)m->funcs[in->a].returns
                                               : nvm_opinfo_table[in->op].pushes;
                uint32_t lo = pu < 0 || (uint32_t)pu > H2 ? 0 : H2 - (uint32_t)pu;
                lo = in->op == NVM_OP_DUP ? H : lo < H ? lo : H;
                /* the map given to anything but SET_FIELD, STORE or POP may gain names there
                 * (MAP_SET, a call); a call given other values may run on */
                bool given = false;
                for (uint32_t q = lo; q < H; q++)
                    given |= fresh[q];
                if ((nvm_op_ends_block(in->op) && in->op != NVM_OP_CALL) ||
                    (given && in->op != NVM_OP_SET_FIELD && in->op != NVM_OP_STORE &&
                     in->op != NVM_OP_POP && in->op != NVM_OP_DUP))
                    break;
                for (uint32_t q = lo; q < W; q++)
                    fresh[q] = false;
                if (keep && H2 >= 1)
                    fresh[H2 - 1] = true;
                for (uint32_t q = 0; q < W + S; q++)
                    any |= fresh[q];
                if (!any)
                    break;
            }
        }
    }
    for (uint32_t a = 0; a < m->nstrs; a++)
        if (votes[a] == 0)
            kpos[a] = -1; /* no position most sites agree on */
}

/* the slot guard j that covers a field access to name a of the map at position q, or
 * UINT32_MAX (the first pass enters the slot and name) */
static uint32_t slot_guard(gen *g, uint32_t q, uint32_t a)
{
    int32_t sl = g->org[q];
    if (sl < 0 || g->kpos == NULL || g->kpos[a] < 0)
        return UINT32_MAX;
    uint32_t j = 0;
    while (j < g->ngs && g->gs_slot[j] != (uint32_t)sl)
        j++;
    if (j == g->ngs) {
        if (g->fc_fixed || j == NVM_AOT_GS_MAX)
            return UINT32_MAX;
        g->gs_slot[g->ngs++] = (uint32_t)sl;
        g->gs_nk[j] = 0;
    }
    for (uint32_t k = 0; k < g->gs_nk[j]; k++)
        if (g->gs_key[j][k] == a)
            return j;
    if (g->fc_fixed || g->gs_nk[j] == NVM_AOT_GK_MAX)
        return UINT32_MAX;
    g->gs_key[j][g->gs_nk[j]++] = a;
    return j;
}

/* v_ = the value of field a of the map at position q, or 0 (the cold path), through guard j:
 * at the predicted position when the guard passed, else through the instruction's inline
 * cache. The guard runs first when it has not on this path. */
static void guarded_field(gen *g, uint32_t i, uint32_t q, uint32_t a, uint32_t j)
{
    nvm_tb *b = g->b;
    nm map = is(g, q, NVM_T_MAP);
    if (!(g->held_g >> j & 1u)) {
        fact_setup(g, true, j, g->sl[g->gs_slot[j]], true);
        g->held_g |= 1u << j;
    }
    nvm_tb_printf(b,
                  "    nvm_value *v_ = 0;\n"
                  "    if (L(e%" PRIu32 " != 0))\n"
                  "    v_ = (nvm_value *)(e%" PRIu32 " + %" PRId32 " * SZ_mapentry + O_me_value);\n"
                  "    else if (%s) {\n",
                  j, j, g->kpos[a], map.s);
    obj(g, q);
    nvm_tb_printf(
        b,
        "    uint32_t pos_ = *(const uint32_t *)(pc_ + %" PRIu32 "u * SZ_insn + O_insn_k);\n"
        "    char *en_ = *(char **)(o_ + O_map_entries);\n"
        "    if (L(pos_ < *(uint32_t *)(o_ + O_map_nentries) && KEYIS(en_, pos_, %" PRIu32 ")))\n"
        "    v_ = (nvm_value *)(en_ + (size_t)pos_ * SZ_mapentry + O_me_value);\n    }\n",
        i, a);
}

/* the array fact k about the slot the array at position q came from, held from here on (set
 * up when it was not), or -1 */
static int arr_fact(gen *g, uint32_t q)
{
    int32_t sl = g->org[q];
    if (sl < 0)
        return -1;
    uint32_t k = 0;
    while (k < g->nas && g->as_slot[k] != (uint32_t)sl)
        k++;
    if (k == g->nas) {
        if (g->fc_fixed || k == NVM_AOT_GS_MAX)
            return -1;
        g->as_slot[g->nas++] = (uint32_t)sl;
    }
    if (!(g->held_a >> k & 1u)) {
        fact_setup(g, false, k, g->sl[sl], true);
        g->held_a |= 1u << k;
    }
    return (int)k;
}

/* the C expressions of an array access: with fact k, its locals (the array check is the
 * length: 0 for anything else); without, the object o_ (set up by obj after the check) */
typedef struct arrx {
    nm len, items, vals;
} arrx;
static arrx arr_exprs(int k)
{
    arrx x;
    if (k >= 0) {
        snprintf(x.len.s, sizeof x.len.s, "an%d", k);
        snprintf(x.items.s, sizeof x.items.s, "ai%d", k);
        snprintf(x.vals.s, sizeof x.vals.s, "(ak%d == 0)", k);
    } else {
        snprintf(x.len.s, sizeof x.len.s, "(uint64_t)*(uint32_t *)(o_ + O_array_len)");
        snprintf(x.items.s, sizeof x.items.s, "*(char **)(o_ + O_array_items)");
        snprintf(x.vals.s, sizeof x.vals.s, "ARRV(o_)");
    }
    return x;
}

/* an element access to the array at position qa with the index at qx: after its fact's set-up,
 * prints `open` (the access's locals) and opens `if (<an array> &&
 * <an int>) {` and sets n_ (the length) and k_ (the index as unsigned: a negative one counts from
 * the end, k + n wrapping into [0, n) exactly when -n <= k < 0; one too large stays >= n) */
static arrx arr_index(gen *g, uint32_t qa, uint32_t qx, const char *open)
{
    int k = arr_fact(g, qa);
    arrx x = arr_exprs(k);
    nvm_tb_printf(g->b, "%s    if (%s && %s) {\n", open, k >= 0 ? "1" : is(g, qa, NVM_T_ARRAY).s,
                  is(g, qx, NVM_T_INT).s);
    if (k < 0)
        obj(g, qa);
    nvm_tb_printf(g->b,
                  "    uint64_t n_ = %s;\n"
                  "    uint64_t k_ = (uint64_t)%s;\n    if (U(k_ >= n_)) KNEG(k_, n_);\n",
                  x.len.s, xi(g, qx).s);
    return x;
}

/* ---- frameless calls ----
 * A function whose instructions cannot change anything outside its own frame (arithmetic,
 * comparisons, jumps, slots, reads of arrays and fields, calls of such functions; see
 * pure_op) also gets a frameless version p<f>: arguments and result in C variables, no
 * interpreter frame, gas in a register. It gives up (returns PBAIL) wherever the frame version
 * would need the runtime: a type the inline code does not handle, an overflow or any other
 * error, the gas countdown that cannot be refilled, a call for which the frame version would
 * grow or overflow the interpreter's frames, operand stack or slots. Since it has changed
 * nothing, the caller then restores vm->gas_rest and makes the same call with frames, which
 * redoes it with the interpreter's exact semantics (error messages, backtraces, the exhaustion
 * point). dd: how many more levels of frameless calls the frame version could make, each level
 * counted as a frame, psmax operand stack cells and plmax slot cells (the most any frameless
 * function takes), from what remains of those arrays where the first frameless call is made. */
static bool pure_op(uint8_t op)
{
    switch (op) {
    case NVM_OP_NOP:
    case NVM_OP_POP:
    case NVM_OP_PUSH:
    case NVM_OP_PUSH_F64:
    case NVM_OP_PUSH_BOOL:
    case NVM_OP_PUSH_NULL:
    case NVM_OP_DUP:
    case NVM_OP_PICK:
    case NVM_OP_SWAP:
    case NVM_OP_ROT:
    case NVM_OP_ROLL:
    case NVM_OP_LOAD:
    case NVM_OP_STORE:
    case NVM_OP_ADD:
    case NVM_OP_SUB:
    case NVM_OP_MUL:
    case NVM_OP_DIV:
    case NVM_OP_MOD:
    case NVM_OP_NEG:
    case NVM_OP_EQ:
    case NVM_OP_NE:
    case NVM_OP_LT:
    case NVM_OP_LE:
    case NVM_OP_GT:
    case NVM_OP_GE:
    case NVM_OP_NOT:
    case NVM_OP_JMP:
    case NVM_OP_JZ:
    case NVM_OP_JNZ:
    case NVM_OP_CALL:
    case NVM_OP_RET:
    case NVM_OP_ARR_GET:
    case NVM_OP_ARR_LEN:
    case NVM_OP_LEN:
    case NVM_OP_GET_FIELD:
    case NVM_OP_MATH_SQRT: return true;
    default: return false;
    }
}

/* the payload (int64_t) and tag of position q as C expressions */
static nm payload(const gen *g, uint32_t q)
{
    nm n;
    if (g->rep[q] == R_F)
        snprintf(n.s, sizeof n.s, "DB(pD%" PRIu32 ")", q);
    else
        snprintf(n.s, sizeof n.s, "pI%" PRIu32, q);
    return n;
}
static nm tagx(const gen *g, uint32_t q)
{
    nm n;
    if (g->rep[q] == R_G)
        snprintf(n.s, sizeof n.s, "pT%" PRIu32, q);
    else
        snprintf(n.s, sizeof n.s, "%d", g->rep[q] == R_F ? NVM_T_FLOAT : g->rep[q]);
    return n;
}

/* the parameter list of p<ci> */
static void pure_params(gen *g, uint32_t ci)
{
    const nvm_func *cf = &g->m->funcs[ci];
    nvm_tb_printf(g->b, "struct nvm_vm *vm, int64_t gas, int64_t dd");
    for (uint32_t k = 0; k < cf->consumed; k++) {
        nvm_tb_printf(g->b, ", int64_t a%" PRIu32, k);
        if (nvm_tm_single(g->pspec[ci][k]) < 0)
            nvm_tb_printf(g->b, ", uint32_t t%" PRIu32, k);
    }
}

/* the call of p<ci> with its arguments at the top of the stack (height H); the result's payload
 * and tag go to position H - consumed, the gas to `gas`. In a frameless version an abandoned
 * callee abandons the caller; in a frame version (inside `{ int pd_ = 0;`) it sets pd_ when the
 * call was made without frames. */
/* How many versions frameless function f has (1, or more for a small function that calls
 * itself): p<f> and copies p<f>_1 .. p<f>_<k - 1>. The self-calls of p<f> call p<f>_1, whose
 * self-calls call p<f>_2, and so on back to p<f>; the copies are inlined (always_inline), so one
 * C call makes k levels of the recursion. k is the largest (at most 4) whose inlined bodies,
 * 1 + c + c^2 + ... for c self-calls, number at most 16 and hold at most 1,024 instructions. */
static uint32_t pure_copies(const nvm_module *m, uint32_t f)
{
    const nvm_func *fn = &m->funcs[f];
    uint64_t c = 0;
    for (uint32_t i = 0; i < fn->ninsn; i++)
        c += fn->code[i].op == NVM_OP_CALL && fn->code[i].a == f && fn->heights[i] != INT32_MIN;
    if (c == 0)
        return 1;
    uint32_t k = 1;
    uint64_t bodies = 1, level = 1;
    while (k < 4) {
        level *= c;
        if (bodies + level > 16 || (bodies + level) * fn->ninsn > 1024)
            break;
        bodies += level;
        k++;
    }
    return k;
}

static void pure_call(gen *g, uint32_t ci, uint32_t H, uint32_t extra)
{
    nvm_tb *b = g->b;
    const nvm_func *cf = &g->m->funcs[ci];
    uint32_t lo = H - cf->consumed;
    nvm_tb_printf(b, "    if (L(1");
    for (uint32_t k = 0; k < cf->consumed; k++) {
        int t = nvm_tm_single(g->pspec[ci][k]);
        if (t >= 0)
            nvm_tb_printf(b, " && %s", is(g, lo + k, t).s);
    }
    /* a self-call of a function with copies calls the next copy (pure_copies), which runs in
     * the frame of this one: only a real call needs native stack */
    uint32_t next = g->pure && ci == g->fi ? (g->twin + 1) % pure_copies(g->m, ci) : 0;
    /* nor a test of the countdown: the charge may take it below 0 for the few levels until the
     * next real call, whose test (or the return, a negative countdown meaning "give up") catches
     * it; the copies' own blocks still refill it */
    if (g->metered && next == 0)
        nvm_tb_printf(b, " && gas >= %" PRIu32, g->pentry[ci] + extra);
    nvm_tb_printf(b, " && dd > 0");
    if (next == 0)
        nvm_tb_printf(b, " &&\n          (const char *)__builtin_frame_address(0) >= "
                         "CTX->stack_limit");
    nvm_tb_printf(b, ")) {\n");
    if (!g->pure)
        nvm_tb_printf(b, "    int64_t r0_ = F(int64_t, O_gas_rest);\n");
    char cn[24] = "";
    if (next > 0)
        snprintf(cn, sizeof cn, "_%" PRIu32, next);
    nvm_tb_printf(b, "    PR r_ = p%" PRIu32 "%s(vm, gas - %" PRIu32 ", dd - 1", ci, cn,
                  g->metered ? g->pentry[ci] + extra : 0);
    for (uint32_t k = 0; k < cf->consumed; k++) {
        nvm_tb_printf(b, ", %s", payload(g, lo + k).s);
        if (nvm_tm_single(g->pspec[ci][k]) < 0)
            nvm_tb_printf(b, ", %s", tagx(g, lo + k).s);
    }
    nvm_tb_printf(b, ");\n");
    if (g->pure)
        nvm_tb_printf(b, "    if (U(r_.g < 0)) return r_;\n");
    else
        nvm_tb_printf(b, "    if (L(r_.g >= 0)) {\n");
    if (g->metered)
        nvm_tb_printf(b, "    gas = r_.g%s;\n", g->prt[ci] < 0 ? " & GMASK" : "");
    if (g->prt[ci] < 0)
        nvm_tb_printf(b, "    pI%" PRIu32 " = r_.v; pT%" PRIu32 " = (uint32_t)(r_.g >> 56);\n", lo,
                      lo);
    else
        nvm_tb_printf(b, "    pI%" PRIu32 " = r_.v; pT%" PRIu32 " = %d;\n", lo, lo, g->prt[ci]);
    if (g->pure)
        nvm_tb_printf(b, "    } else return PBAIL;\n");
    else
        nvm_tb_printf(b, "    pd_ = 1;\n    } else F(int64_t, O_gas_rest) = r0_;\n    }\n");
}

/* before a branch on position q in a frameless version: truthiness the inline code does not
 * compute abandons the call */
static void pure_truth_guard(gen *g, uint32_t q)
{
    int r = g->rep[q];
    if (r == R_G)
        nvm_tb_printf(g->b, "    if (U(pT%" PRIu32 " > 2)) return PBAIL;\n", q);
    else if (r != NVM_T_BOOL && r != NVM_T_INT && r != NVM_T_NULL)
        nvm_tb_printf(g->b, "    return PBAIL;\n");
}

/* one version of the function (labels pre<i>) */
/* Gas of a version (metered). A block's check charges its own instructions and, when it ends in
 * a branch whose two targets come later and do not end in a JMP, the larger of what their checks
 * charge: the branch refunds the difference for the target it takes and enters it past its
 * check. A block ending in a JMP to another block that does not end in one (a loop body going
 * back to its test) pays for that block's check the same way: a loop round checks once. In a
 * frame version, when the run's gas cannot cover the whole charge, the block hands the frame to
 * the interpreter, which stops at the exact instruction, and a fault refunds the rest of the
 * charge. A frameless version's caller charges the entry block's check (pentry) before the
 * call, so the function starts past it; charging early only moves the point where it gives up
 * for lack of gas, and the frame version then redoes the call exactly. cost[bi]: what block
 * bi's check charges. */
static void gas_plan(const nvm_func *fn, const nvm_fninfo *f, uint32_t *cost)
{
    for (uint32_t k = f->nblk; k-- > 0;) {
        uint32_t s = f->bstart[k], e = f->bend[k];
        uint8_t op = fn->code[e - 1].op;
        cost[k] = e - s;
        if ((op != NVM_OP_JZ && op != NVM_OP_JNZ) || e >= fn->ninsn)
            continue;
        uint32_t t = fn->code[e - 1].a, tb = f->blk_of[t], fb = f->blk_of[e];
        if (t <= s || tb == UINT32_MAX || fb == UINT32_MAX || f->bstart[tb] != t ||
            f->bstart[fb] != e || !f->seen[tb] || !f->seen[fb] ||
            fn->code[f->bend[tb] - 1].op == NVM_OP_JMP ||
            fn->code[f->bend[fb] - 1].op == NVM_OP_JMP)
            continue;
        cost[k] += cost[tb] > cost[fb] ? cost[tb] : cost[fb];
    }
    for (uint32_t k = 0; k < f->nblk; k++) {
        uint32_t e = f->bend[k];
        if (fn->code[e - 1].op != NVM_OP_JMP)
            continue;
        uint32_t t = fn->code[e - 1].a, tb = f->blk_of[t];
        if (tb != UINT32_MAX && tb != k && f->bstart[tb] == t && f->seen[tb] &&
            fn->code[f->bend[tb] - 1].op != NVM_OP_JMP)
            cost[k] += cost[tb];
    }
}

/* Frameless versions: paid[bi] when block bi follows a CALL that ends the block before it and
 * nothing else enters it (no jump or branch targets it). The call then charges bi's check with
 * the callee's entry block before the call, and the caller continues past bi's check: like every
 * early charge in a frameless version, this only moves the point where it gives up for lack of
 * gas (the frame version redoes the call exactly), and the gas a completed call uses is the
 * same. */
static void calls_pay(const nvm_func *fn, const nvm_fninfo *f, bool *paid)
{
    for (uint32_t k = 0; k < f->nblk; k++) {
        uint32_t s = f->bstart[k];
        uint32_t pb = s > 0 ? f->blk_of[s - 1] : UINT32_MAX;
        paid[k] = s > 0 && f->seen[k] && pb != UINT32_MAX && f->bend[pb] == s &&
                  fn->code[s - 1].op == NVM_OP_CALL;
    }
    for (uint32_t i = 0; i < fn->ninsn; i++) {
        uint8_t op = fn->code[i].op;
        if (op != NVM_OP_JMP && op != NVM_OP_JZ && op != NVM_OP_JNZ)
            continue;
        uint32_t t = fn->code[i].a;
        if (t < fn->ninsn && f->blk_of[t] != UINT32_MAX)
            paid[f->blk_of[t]] = false;
    }
}

/* goto the block at t from the end of the current block: in a frameless version whose check
 * paid for the targets of its closing branch, past the target's check, refunding the rest */
static void branch_to(gen *g, uint32_t t)
{
    const nvm_fninfo *f = g->f;
    uint32_t bi = f->blk_of[g->blk_end - 1], tb = f->blk_of[t];
    uint8_t op = g->fn->code[g->blk_end - 1].op;
    if (!(g->metered && (op == NVM_OP_JZ || op == NVM_OP_JNZ) &&
          g->pcost[bi] > g->blk_end - f->bstart[bi])) {
        jump_to(g, g->pre, f, t);
        return;
    }
    uint32_t refund = g->blk_extra - g->pcost[tb];
    if (refund > 0)
        nvm_tb_printf(g->b, "    gas += %" PRIu32 ";\n", refund);
    jump_to_ex(g, g->pre, f, t, true);
}

static void emit_version(gen *g)
{
    nvm_tb *b = g->b;
    const nvm_func *fn = g->fn;
    const nvm_module *m = g->m;
    const nvm_fninfo *f = g->f;
    uint32_t W = g->W, S = g->S;
    uint32_t *cost = NULL;
    bool *paid = NULL;
    if (g->metered) {
        cost = malloc((f->nblk + 1) * sizeof *cost);
        paid = g->pure ? calloc(f->nblk + 1, sizeof *paid) : NULL;
        if (cost == NULL || (g->pure && paid == NULL)) {
            free(cost);
            free(paid);
            b->oom = true;
            return;
        }
        gas_plan(fn, f, cost);
        if (paid != NULL)
            calls_pay(fn, f, paid);
    }
    g->pcost = cost;
    g->callpaid = paid;
    for (uint32_t bi = 0; bi < f->nblk; bi++) {
        uint32_t s = f->bstart[bi], e = f->bend[bi];
        g->blk_end = e;
        g->H = (uint32_t)(fn->heights[s] + (int32_t)g->consumed);
        /* what this block's check charges beyond its own instructions (gas_plan) */
        g->blk_extra = g->pcost != NULL ? g->pcost[bi] - (e - s) : 0;
        uint32_t L = e - s + g->blk_extra;
        for (uint32_t v = 0; v < W + S; v++) {
            tmask mk = entry_mask(g, f, s, v);
            if (v < W)
                g->stk[v] = mk;
            else
                g->sl[v - W] = mk;
            g->rep[v] = (int8_t)rep_of(mk);
            g->dirty[v] = true;
            if (v < W)
                g->org[v] = -1;
        }
        /* the facts the block starts with (flow_solve; none while they are being found) */
        g->held_g = g->flow == 2 && g->fv != NULL ? g->fv->in_g[bi] : 0;
        g->held_a = g->flow == 2 && g->fv != NULL ? g->fv->in_a[bi] : 0;
        g->kill_g = g->kill_a = 0;
        nvm_tb_printf(b, "%c%" PRIu32 ":\n", g->pre, s);
        if (g->held_g != 0 || g->held_a != 0)
            nvm_tb_printf(b, "    /* held: guards %#" PRIx32 ", arrays %#" PRIx32 " */\n",
                          g->held_g, g->held_a);
        if (!g->metered) {
            /* no gas code */
        } else if (g->pure) {
            /* the check compares and the charge follows, so that the countdown stays in place */
            nvm_tb_printf(b,
                          "    if (U(gas < %" PRIu32 ")) {\n"
                          "    gas = RT->prefill(vm, gas, %" PRIu32 "u);\n"
                          "    if (U(gas < 0)) return PBAIL;\n",
                          L, L);
            g->flush_at = UINT32_MAX; /* no cells: every slot's facts are set up again */
            fc_drop(g);               /* the interrupt hook ran */
            nvm_tb_printf(b, "    }\n    gas -= %" PRIu32 ";\n", L);
        } else {
            nvm_tb_printf(b, "    if (U(gas < %" PRIu32 ")) {\n", L);
            flush(g, s);
            nvm_tb_printf(
                b,
                "    SYNC();\n    rc = RT->gas(vm, %" PRIu32 "u, %" PRIu32 "u, base + %lld);\n"
                "    gas = F(int64_t, O_jit_gas);\n"
                "    if (rc == 3) return RT->deopt(vm, %" PRIu32 "u, base + %lld, slots);\n"
                "    if (rc != 0) goto unwind;\n",
                L, s, cl(g, g->H), s, cl(g, g->H));
            fc_drop(g); /* the interrupt hook ran */
            nvm_tb_printf(b, "    }\n    gas -= %" PRIu32 ";\n", L);
        }
        /* entered from a block that paid for this one already */
        nvm_tb_printf(b, "%c%" PRIu32 "_:\n", g->pre, s);
        for (uint32_t i = s; i < e; i++) {
            const nvm_insn *in = &fn->code[i];
            uint32_t H = g->H, pH = H;
            bool fused = false;
            memcpy(g->post, g->stk, W);
            memcpy(g->post + W, g->sl, S);
            nvm_xfer(m, fn, i, g->post, &pH, g->post + W);
            if (g->spec != NULL && g->spec[i])
                g->post[pH - 1] = g->spec[i] == 2 ? TM_INT : TM_FLOAT;
            nvm_tb_printf(b, "    /* %" PRIu32 " %s */\n", i, opname(in->op));
            switch (in->op) {
            case NVM_OP_NOP:
            case NVM_OP_POP: break;
            case NVM_OP_PUSH: {
                char k[48];
                if (in->k.i == INT64_MIN)
                    snprintf(k, sizeof k, "INT64_MIN");
                else
                    snprintf(k, sizeof k, "INT64_C(%" PRId64 ")", in->k.i);
                assign(g, H, NVM_T_INT, NVM_T_INT, k);
                set_res(g, H, NVM_T_INT);
                break;
            }
            case NVM_OP_PUSH_F64: {
                int64_t bits;
                memcpy(&bits, &in->k.f, 8);
                nvm_tb_printf(b, "    pD%" PRIu32 " = BD(", H);
                put_i64(b, bits);
                nvm_tb_printf(b, ");\n");
                set_res(g, H, R_F);
                break;
            }
            case NVM_OP_PUSH_BOOL:
                nvm_tb_printf(b, "    pI%" PRIu32 " = %d;\n", H, in->b != 0);
                set_res(g, H, NVM_T_BOOL);
                break;
            case NVM_OP_PUSH_NULL:
                nvm_tb_printf(b, "    pI%" PRIu32 " = 0;\n", H);
                set_res(g, H, NVM_T_NULL);
                break;
            case NVM_OP_PUSH_STR:
                nvm_tb_printf(b, "    pI%" PRIu32 " = ks_[%" PRIu32 "].as.h;\n", H, in->a);
                set_res(g, H, NVM_T_STR);
                break;
            case NVM_OP_DUP:
            case NVM_OP_PICK: copy_var(g, H, H - 1 - (in->op == NVM_OP_PICK ? in->a : 0)); break;
            case NVM_OP_SWAP:
            case NVM_OP_ROT:
            case NVM_OP_ROLL: {
                uint32_t n = in->op == NVM_OP_SWAP ? 1 : in->op == NVM_OP_ROT ? 2 : in->a;
                uint32_t lo = H - 1 - n;
                if (n == 0)
                    break;
                nvm_tb_printf(b,
                              "    { int64_t ti_ = pI%" PRIu32 "; double td_ = pD%" PRIu32
                              "; uint32_t tt_ = pT%" PRIu32 ";\n",
                              lo, lo, lo);
                for (uint32_t q = lo; q + 1 < H; q++)
                    nvm_tb_printf(b,
                                  "    pI%" PRIu32 " = pI%" PRIu32 "; pD%" PRIu32 " = pD%" PRIu32
                                  "; pT%" PRIu32 " = pT%" PRIu32 ";\n",
                                  q, q + 1, q, q + 1, q, q + 1);
                nvm_tb_printf(
                    b, "    pI%" PRIu32 " = ti_; pD%" PRIu32 " = td_; pT%" PRIu32 " = tt_; }\n",
                    H - 1, H - 1, H - 1);
                int8_t t = g->rep[lo];
                for (uint32_t q = lo; q + 1 < H; q++)
                    set_res(g, q, g->rep[q + 1]);
                set_res(g, H - 1, t);
                break;
            }
            case NVM_OP_LOAD: {
                uint32_t v = W + in->a;
                if (g->sl[in->a] & TM_UNDEF) {
                    if (g->rep[v] == R_G) {
                        nvm_tb_printf(b, "    if (U(sT%" PRIu32 " == 7)) {\n", in->a);
                        step(g, i, H);
                        nvm_tb_printf(b, "    }\n");
                    } else if (g->rep[v] == NVM_T_UNDEF) {
                        step(g, i, H);
                    }
                }
                copy_var(g, H, v);
                break;
            }
            case NVM_OP_STORE: copy_var(g, W + in->a, H - 1); break;
            case NVM_OP_ADD:
            case NVM_OP_SUB:
            case NVM_OP_MUL:
            case NVM_OP_DIV:
            case NVM_OP_MOD:
                if (g->spec != NULL && g->spec[i] == 1) {
                    nvm_tb_printf(b, "    if (U(!(%s && %s))) {\n    gas += %" PRIu32 ";\n",
                                  is(g, H - 2, NVM_T_FLOAT).s, is(g, H - 1, NVM_T_FLOAT).s,
                                  e - i + g->blk_extra);
                    jump_to(g, 'G', g->gf, i);
                    nvm_tb_printf(b, "    }\n");
                    g->stk[H - 2] = g->stk[H - 1] = TM_FLOAT;
                }
                arith(g, i, in->op);
                break;
            case NVM_OP_NEG: {
                uint32_t x = H - 1;
                int r = rep_of(g->post[x]);
                char ex[300];
                nvm_tb_printf(b, "    { int ok_ = 0;\n    if (%s && %s != INT64_MIN) {\n",
                              is(g, x, NVM_T_INT).s, xi(g, x).s);
                snprintf(ex, sizeof ex, "-%s", xi(g, x).s);
                assign(g, x, r, NVM_T_INT, ex);
                nvm_tb_printf(b, "    ok_ = 1;\n    } else if (%s) {\n", is(g, x, NVM_T_FLOAT).s);
                snprintf(ex, sizeof ex, "-%s", xf(g, x).s);
                assign(g, x, r, NVM_T_FLOAT, ex);
                nvm_tb_printf(b, "    ok_ = 1;\n    }\n");
                slow_reload(g, i, (int)x, r);
                set_res(g, x, r);
                break;
            }
            case NVM_OP_EQ:
            case NVM_OP_NE:
            case NVM_OP_LT:
            case NVM_OP_LE:
            case NVM_OP_GT:
            case NVM_OP_GE: {
                const nvm_insn *nx = i + 1 < e ? &fn->code[i + 1] : NULL;
                compare(g, i, in->op);
                if (nx != NULL && (nx->op == NVM_OP_JZ || nx->op == NVM_OP_JNZ)) {
                    nvm_tb_printf(b, "    /* %" PRIu32 " %s */\n    if (%sr_) {\n", i + 1,
                                  opname(nx->op), nx->op == NVM_OP_JZ ? "!" : "");
                    g->H = H - 2;
                    branch_to(g, nx->a);
                    nvm_tb_printf(b, "    }\n    }\n");
                    fused = true;
                } else {
                    assign(g, H - 2, NVM_T_BOOL, NVM_T_BOOL, "r_");
                    nvm_tb_printf(b, "    }\n");
                    set_res(g, H - 2, NVM_T_BOOL);
                }
                break;
            }
            case NVM_OP_NOT:
                if (g->rep[H - 1] == NVM_T_BOOL) {
                    nvm_tb_printf(b, "    pI%" PRIu32 " = !(int)pI%" PRIu32 ";\n", H - 1, H - 1);
                    set_res(g, H - 1, NVM_T_BOOL);
                    break;
                }
                goto stepped;
            case NVM_OP_ARR_GET:
                if (g->spec != NULL && g->spec[i] == 2) {
                    /* an int element, else the generic version redoes the instruction */
                    uint32_t qa = H - 2, qx = H - 1;
                    arrx x = arr_index(g, qa, qx, "    { nvm_value *it_ = 0;\n");
                    nvm_tb_printf(b,
                                  "    if (L(k_ < n_ && %s)) {\n"
                                  "    it_ = (nvm_value *)(%s) + k_;\n"
                                  "    if (it_->type != 2) it_ = 0;\n    }\n    }\n"
                                  "    if (U(it_ == 0)) {\n    gas += %" PRIu32 ";\n",
                                  x.vals.s, x.items.s, e - i + g->blk_extra);
                    jump_to(g, 'G', g->gf, i);
                    nvm_tb_printf(b, "    }\n    %s = it_->as.i;\n    }\n", N(g, qa, 'I').s);
                    set_res(g, qa, NVM_T_INT);
                    break;
                }
                /* fall through */
            case NVM_OP_ARR_SET: {
                bool set = in->op == NVM_OP_ARR_SET;
                uint32_t qa = set ? H - 3 : H - 2, qx = qa + 1;
                int r = rep_of(g->post[qa]);
                arrx x = arr_index(g, qa, qx, "    { int ok_ = 0;\n");
                nvm_tb_printf(b,
                              "    if (L(k_ < n_)) {\n"
                              "    if (%s) {\n"
                              "    nvm_value *it_ = (nvm_value *)(%s) + k_;\n",
                              x.vals.s, x.items.s);
                if (set) {
                    store_val(g, H - 1, "(*it_)");
                } else {
                    load_val(g, qa, "(*it_)", r);
                }
                nvm_tb_printf(b, "    ok_ = 1;\n    }\n");
                /* a bool array (heap.h): a bool is a byte; anything else takes the cold path */
                if (set) {
                    bool_elem_store(g, H - 1, "k_", x.items.s);
                } else if (r == R_G || r == NVM_T_BOOL) {
                    char ex[160];
                    snprintf(ex, sizeof ex, "((const uint8_t *)(%s))[k_]", x.items.s);
                    nvm_tb_printf(b, "    else {\n");
                    assign(g, qa, r, NVM_T_BOOL, ex);
                    nvm_tb_printf(b, "    ok_ = 1;\n    }\n");
                }
                nvm_tb_printf(b, "    }\n    }\n");
                slow_reload(g, i, set ? -1 : (int)qa, r);
                if (!set)
                    set_res(g, qa, r);
                break;
            }
            case NVM_OP_ARR_PUSH: {
                /* with fact k: its length is the array's (an inline push kills the other array
                 * facts, which may name the same array) */
                int k = arr_fact(g, H - 2);
                arrx x = arr_exprs(k);
                nvm_tb_printf(b, "    { int ok_ = 0;\n    if (%s) {\n",
                              is(g, H - 2, NVM_T_ARRAY).s);
                obj(g, H - 2);
                nvm_tb_printf(b,
                              "    uint32_t n_ = (uint32_t)%s;\n"
                              "    if (L(n_ < *(uint32_t *)(o_ + O_array_cap))) {\n"
                              "    if (%s) {\n"
                              "    nvm_value *it_ = (nvm_value *)(%s) + n_;\n",
                              x.len.s, x.vals.s, x.items.s);
                store_val(g, H - 1, "(*it_)");
                nvm_tb_printf(b, "    ok_ = 1;\n    }\n");
                bool_elem_store(g, H - 1, "n_", x.items.s);
                nvm_tb_printf(b,
                              "    if (L(ok_)) {\n    *(uint32_t *)(o_ + O_array_len) = n_ + 1;\n");
                if (k >= 0)
                    nvm_tb_printf(b, "    an%d = n_ + 1;\n", k);
                nvm_tb_printf(b, "    }\n    }\n    }\n");
                g->kill_a = UINT32_MAX;
                g->held_a &= k >= 0 ? 1u << k : 0u;
                slow_reload(g, i, -1, 0);
                break;
            }
            case NVM_OP_ARR_LEN:
            case NVM_OP_LEN:
                nvm_tb_printf(b, "    { int ok_ = 0;\n    if (%s) {\n",
                              is(g, H - 1, NVM_T_ARRAY).s);
                obj(g, H - 1);
                assign(g, H - 1, NVM_T_INT, NVM_T_INT, "*(uint32_t *)(o_ + O_array_len)");
                nvm_tb_printf(b, "    ok_ = 1;\n    }\n");
                slow_reload(g, i, (int)(H - 1), NVM_T_INT);
                set_res(g, H - 1, NVM_T_INT);
                break;
            case NVM_OP_GET_FIELD: {
                uint32_t j = slot_guard(g, H - 1, in->a);
                nvm_tb_printf(b, "    { int ok_ = 0;\n");
                if (j != UINT32_MAX)
                    guarded_field(g, i, H - 1, in->a, j);
                else
                    field_ptr(g, i, H - 1, in->a);
                if (g->spec != NULL && g->spec[i] == 3) {
                    /* a float (nvm_spec_fields), else the generic version redoes it */
                    nvm_tb_printf(b,
                                  "    (void)ok_;\n    if (U(v_ == 0 || v_->type != 3)) {\n"
                                  "    gas += %" PRIu32 ";\n",
                                  e - i + g->blk_extra);
                    jump_to(g, 'G', g->gf, i);
                    nvm_tb_printf(b, "    }\n");
                    assign(g, H - 1, R_F, NVM_T_FLOAT, "v_->as.f");
                    nvm_tb_printf(b, "    }\n");
                    set_res(g, H - 1, R_F);
                    break;
                }
                nvm_tb_printf(b, "    if (L(v_ != 0)) {\n");
                load_val(g, H - 1, "(*v_)", R_G);
                nvm_tb_printf(b, "    ok_ = 1;\n    }\n");
                slow_reload(g, i, (int)(H - 1), R_G);
                set_res(g, H - 1, R_G);
                break;
            }
            case NVM_OP_SET_FIELD: {
                uint32_t j = slot_guard(g, H - 2, in->a);
                nvm_tb_printf(b, "    { int ok_ = 0;\n");
                if (j != UINT32_MAX)
                    guarded_field(g, i, H - 2, in->a, j);
                else
                    field_ptr(g, i, H - 2, in->a);
                nvm_tb_printf(b, "    if (L(v_ != 0)) {\n");
                store_val(g, H - 1, "(*v_)");
                nvm_tb_printf(b, "    ok_ = 1;\n    }\n");
                slow_reload(g, i, -1, 0);
                break;
            }
            case NVM_OP_MATH_SQRT: {
                char ex[300];
                nvm_tb_printf(b, "    { int ok_ = 0;\n    if (%s) {\n", isnum(g, H - 1).s);
                snprintf(ex, sizeof ex, "__builtin_sqrt(%s)", xf(g, H - 1).s);
                assign(g, H - 1, R_F, NVM_T_FLOAT, ex);
                nvm_tb_printf(b, "    ok_ = 1;\n    }\n");
                slow_reload(g, i, (int)(H - 1), R_F);
                set_res(g, H - 1, R_F);
                break;
            }
            case NVM_OP_JMP:
                /* with blk_extra, the target's gas is paid already: past its check */
                jump_to_ex(g, g->pre, f, in->a, g->blk_extra > 0);
                break;
            case NVM_OP_JZ:
            case NVM_OP_JNZ:
                if (g->pure)
                    pure_truth_guard(g, H - 1);
                nvm_tb_printf(b, "    if (%s%s) {\n", in->op == NVM_OP_JZ ? "!" : "",
                              truth(g, H - 1).s);
                g->H = H - 1;
                branch_to(g, in->a);
                nvm_tb_printf(b, "    }\n");
                break;
            case NVM_OP_CALL: {
                const nvm_func *cf = &m->funcs[in->a];
                uint32_t need = cf->max_height - cf->consumed + 1;
                if (g->pure) {
                    /* the block after the call, when only the call enters it: paid here */
                    uint32_t nb = i + 1 < fn->ninsn ? f->blk_of[i + 1] : UINT32_MAX;
                    bool nbpaid = g->callpaid != NULL && nb != UINT32_MAX && g->callpaid[nb];
                    pure_call(g, in->a, H, nbpaid ? g->pcost[nb] : 0);
                    set_res(g, H - cf->consumed, R_G);
                    break;
                }
                bool try_pure = g->pok != NULL && g->pok[in->a];
                if (try_pure) {
                    nvm_tb_printf(
                        b,
                        "    { int pd_ = 0;\n    {\n"
                        "    int64_t dd = (F(char *, O_frames_end) - F(char *, O_frames)) / "
                        "SZ_frame - (int64_t)F(uint32_t, O_depth);\n"
                        "    int64_t ds_ = (F(nvm_value *, O_stack_end) - base - (%lld)) / %" PRIu32
                        ";\n    if (ds_ < dd) dd = ds_;\n",
                        cl(g, H), g->psmax);
                    if (g->plmax > 0)
                        nvm_tb_printf(b,
                                      "    int64_t dl_ = (F(nvm_value *, O_slots_end) - slots - "
                                      "%" PRIu32 ") / %" PRIu32 ";\n    if (dl_ < dd) dd = dl_;\n",
                                      S, g->plmax);
                    pure_call(g, in->a, H, 0);
                    nvm_tb_printf(b, "    }\n    if (!pd_) {\n");
                }
                flush(g, i);
                mark_clean(g, i);
                nvm_tb_printf(b,
                              "    CALL(%" PRIu32 "u, %" PRIu32 "u, %" PRIu32 "u, f%" PRIu32
                              ", %lld, %" PRIu32 ", %" PRIu32 ", %" PRIu32 ")\n",
                              g->fi, i, in->a, in->a, cl(g, H), S, need, cf->nslots);
                if (cf->returns) {
                    uint32_t q = H - cf->consumed;
                    load_val(g, q, cell(g, q).s, R_G);
                    g->rep[q] = R_G;
                    g->dirty[q] = false;
                    g->org[q] = -1;
                }
                if (try_pure) {
                    /* the cells are current only after the call with frames */
                    nvm_tb_printf(b, "    }\n    }\n");
                    for (uint32_t v = 0; v < W + S; v++)
                        g->dirty[v] = true;
                }
                fc_drop(g);
                break;
            }
            case NVM_OP_RET: {
                if (g->pure) {
                    int t = g->prt[g->fi];
                    const char *gx = g->metered ? "gas" : "0";
                    if (t < 0) {
                        nvm_tb_printf(b, "    return (PR){%s, %s | ((int64_t)%s << 56)};\n",
                                      payload(g, H - 1).s, gx, tagx(g, H - 1).s);
                    } else {
                        nvm_tb_printf(b, "    if (U(!%s)) return PBAIL;\n", is(g, H - 1, t).s);
                        nvm_tb_printf(b, "    return (PR){%s, %s};\n", payload(g, H - 1).s, gx);
                    }
                    break;
                }
                char d[48];
                snprintf(d, sizeof d, "base[%lld]", -(long long)g->consumed);
                store_val(g, H - 1, d);
                nvm_tb_printf(
                    b, "    if (U(F(uint32_t, O_nhandlers) != 0)) "
                       "RT->drop_handlers(vm);\n    F(uint32_t, O_depth) -= 1;\n    SYNC();\n"
                       "    return 0;\n");
                break;
            }
            case NVM_OP_HALT:
                nvm_tb_printf(b, g->pure ? "    return PBAIL;\n" : "    SYNC();\n    return 2;\n");
                break;
            case NVM_OP_THROW:
                if (g->pure) {
                    nvm_tb_printf(b, "    return PBAIL;\n");
                    break;
                }
                step(g, i, H);
                nvm_tb_printf(b, "    rc = 1;\n    goto unwind;\n");
                break;
            default:
            stepped : {
                /* the interpreter executes it; its results are read back */
                int pops = nvm_opinfo_table[in->op].pops;
                if (in->op == NVM_OP_CAP_CALL)
                    pops = in->b;
                else if (in->op == NVM_OP_NEW_ARRAY)
                    pops = (int)in->a;
                uint32_t lo = pops < 0 || (uint32_t)pops > H ? 0 : H - (uint32_t)pops;
                if (g->pure) {
                    nvm_tb_printf(b, "    return PBAIL;\n");
                    for (uint32_t q = lo; q < pH; q++)
                        set_res(g, q, R_G);
                    break;
                }
                kill_all(g);
                step(g, i, H);
                mark_clean(g, i);
                for (uint32_t q = lo; q < pH; q++) {
                    int r = rep_of(g->post[q]);
                    load_val(g, q, cell(g, q).s, r);
                    g->rep[q] = (int8_t)r;
                    g->org[q] = -1;
                }
                break;
            }
            }
            memcpy(g->stk, g->post, W);
            memcpy(g->sl, g->post + W, S);
            g->H = pH;
            if (fused) {
                i++;
                nvm_xfer(m, fn, i, g->stk, &g->H, g->sl);
            }
        }
        if (g->flow == 1 && g->fv != NULL) {
            g->fv->gen_g[bi] = g->held_g;
            g->fv->gen_a[bi] = g->held_a;
            g->fv->kill_g[bi] = g->kill_g;
            g->fv->kill_a[bi] = g->kill_a;
        }
        uint8_t last = fn->code[e - 1].op;
        if (last == NVM_OP_CALL && e < fn->ninsn && g->callpaid != NULL &&
            g->callpaid[f->blk_of[e]])
            jump_to_ex(g, g->pre, f, e, true); /* the call charged its check */
        else if (!(last == NVM_OP_JMP || last == NVM_OP_RET || last == NVM_OP_HALT ||
                   last == NVM_OP_THROW) &&
                 e < fn->ninsn)
            branch_to(g, e);
    }
    g->pcost = NULL;
    g->callpaid = NULL;
    free(paid);
    free(cost);
}

/* The facts each block of a version starts with: those every predecessor ends with (a block's
 * end: (start minus kills) plus what it sets up), none at the entry, a handler, an entry from the
 * speculating version (gsite) or a block nothing reaches. Greatest fixed point from "all". */
static bool flow_solve(const gen *g, flowtab *t, const nvm_fninfo *f, bool generic)
{
    const nvm_func *fn = g->fn;
    uint32_t nb = f->nblk;
    bool *none = calloc(nb + 1, 1), *reached = calloc(nb + 1, 1);
    if (none == NULL || reached == NULL) {
        free(none);
        free(reached);
        return false;
    }
    for (uint32_t bi = 0; bi < nb; bi++) {
        uint32_t s = f->bstart[bi], e = f->bend[bi];
        const nvm_insn *in = &fn->code[e - 1];
        none[bi] |= s == 0 || !f->seen[bi] || (generic && g->gsite != NULL && g->gsite[s]);
        for (uint32_t i = s; i < e; i++)
            if (fn->code[i].op == NVM_OP_ENTER_TRY && f->blk_of[fn->code[i].a] != UINT32_MAX)
                none[f->blk_of[fn->code[i].a]] = true;
        if (nvm_op_is_branch(in->op) && f->blk_of[in->a] != UINT32_MAX)
            reached[f->blk_of[in->a]] = true;
        if (!(in->op == NVM_OP_JMP || in->op == NVM_OP_RET || in->op == NVM_OP_HALT ||
              in->op == NVM_OP_THROW) &&
            e < fn->ninsn && f->blk_of[e] != UINT32_MAX)
            reached[f->blk_of[e]] = true;
    }
    for (uint32_t bi = 0; bi < nb; bi++) {
        none[bi] |= !reached[bi];
        t->in_g[bi] = none[bi] ? 0 : UINT32_MAX;
        t->in_a[bi] = none[bi] ? 0 : UINT32_MAX;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t bi = 0; bi < nb; bi++) {
            uint32_t e = f->bend[bi];
            const nvm_insn *in = &fn->code[e - 1];
            uint32_t og = (t->in_g[bi] & ~t->kill_g[bi]) | t->gen_g[bi];
            uint32_t oa = (t->in_a[bi] & ~t->kill_a[bi]) | t->gen_a[bi];
            uint32_t succ[2], ns = 0;
            if (nvm_op_is_branch(in->op) && f->blk_of[in->a] != UINT32_MAX)
                succ[ns++] = f->blk_of[in->a];
            if (!(in->op == NVM_OP_JMP || in->op == NVM_OP_RET || in->op == NVM_OP_HALT ||
                  in->op == NVM_OP_THROW) &&
                e < fn->ninsn && f->blk_of[e] != UINT32_MAX)
                succ[ns++] = f->blk_of[e];
            for (uint32_t k = 0; k < ns; k++) {
                uint32_t ng = t->in_g[succ[k]] & og, na = t->in_a[succ[k]] & oa;
                if (ng != t->in_g[succ[k]] || na != t->in_a[succ[k]]) {
                    t->in_g[succ[k]] = ng;
                    t->in_a[succ[k]] = na;
                    changed = true;
                }
            }
        }
    }
    free(none);
    free(reached);
    return true;
}

static void flowtab_free(flowtab *t)
{
    free(t->gen_g);
    free(t->gen_a);
    free(t->kill_g);
    free(t->kill_a);
    free(t->in_g);
    free(t->in_a);
    memset(t, 0, sizeof *t);
}

/* emits one version: labels pre<i>, analysis f, speculation sites spec, generic version gf */
static void emit_as(gen *g, char pre, const nvm_fninfo *f, const uint8_t *spec,
                    const nvm_fninfo *gf)
{
    g->pre = pre;
    g->f = f;
    g->spec = spec;
    g->gf = gf;
    flowtab *t = &g->ft[pre == 'L' ? 0 : pre == 'G' ? 1 : 2];
    g->fv = t;
    if (g->flow == 1) {
        flowtab_free(t);
        size_t n = (size_t)f->nblk + 1;
        t->nblk = f->nblk;
        t->gen_g = calloc(n, sizeof *t->gen_g);
        t->gen_a = calloc(n, sizeof *t->gen_a);
        t->kill_g = calloc(n, sizeof *t->kill_g);
        t->kill_a = calloc(n, sizeof *t->kill_a);
        t->in_g = calloc(n, sizeof *t->in_g);
        t->in_a = calloc(n, sizeof *t->in_a);
        if (t->gen_g == NULL || t->gen_a == NULL || t->kill_g == NULL || t->kill_a == NULL ||
            t->in_g == NULL || t->in_a == NULL) {
            flowtab_free(t);
            g->fv = NULL;
        }
    } else if (g->flow == 2 && t->nblk != f->nblk) {
        g->fv = NULL; /* not solved: every block starts with no fact */
    }
    emit_version(g);
    if (g->flow == 1 && g->fv != NULL && !flow_solve(g, t, f, pre == 'G'))
        flowtab_free(t);
    g->fv = NULL;
}

/* pass 0 of a C function: output into `first` (discarded), the field cache and fact tables
 * collected; pass 1: output discarded, each block's facts found (flow_solve); pass 2: output into
 * `out` */
static void fc_pass(gen *g, int pass, nvm_tb *first, nvm_tb *out)
{
    g->b = pass < 2 ? first : out;
    g->fc_fixed = pass >= 1;
    g->flow = pass;
    if (pass == 0)
        g->nfc = g->nfo = g->nks = g->ngs = g->nas = 0;
}

/* the C locals of every stack position and slot (slots start unwritten: tag 7); pc_ and ks_:
 * the function's prepared code (inline caches) and the module's string constants, which stay
 * where they are while the module is loaded */
static void declare_locals(gen *g)
{
    nvm_tb_printf(g->b,
                  "    const char *pc_ = PFCODE(%" PRIu32 "); (void)pc_;\n"
                  "    const nvm_value *ks_ = F(const nvm_value *, O_consts); (void)ks_;\n",
                  g->fi);
    for (uint32_t q = 0; q < g->W; q++)
        nvm_tb_printf(g->b,
                      "    int64_t pI%" PRIu32 " = 0; double pD%" PRIu32 " = 0; uint32_t pT%" PRIu32
                      " = 0;\n",
                      q, q, q);
    for (uint32_t n = 0; n < g->S; n++)
        nvm_tb_printf(g->b,
                      "    int64_t sI%" PRIu32 " = 0; double sD%" PRIu32 " = 0; uint32_t sT%" PRIu32
                      " = 7; char *ob%" PRIu32 " = 0;\n",
                      n, n, n, n);
    for (uint32_t k = 0; k < g->nfc; k++)
        nvm_tb_printf(g->b, "    nvm_value *fc%" PRIu32 " = 0;\n", k);
    for (uint32_t k = 0; k < g->nfo; k++)
        nvm_tb_printf(
            g->b, "    char *fo%" PRIu32 " = 0; uint32_t fn%" PRIu32 " = 0, fs%" PRIu32 " = 0;\n",
            k, k, k);
    for (uint32_t j = 0; j < g->nks; j++)
        nvm_tb_printf(g->b, "    uint32_t kS%" PRIu32 " = 0xFFFFFFFEu; size_t kP%" PRIu32 " = 0;\n",
                      j, j);
    for (uint32_t j = 0; j < g->ngs; j++)
        nvm_tb_printf(g->b, "    char *e%" PRIu32 " = 0; uint32_t gS%" PRIu32 " = 0xFFFFFFFEu;\n",
                      j, j);
    for (uint32_t j = 0; j < g->nas; j++)
        nvm_tb_printf(g->b,
                      "    uint64_t an%" PRIu32 " = 0; char *ai%" PRIu32 " = 0; uint32_t ak%" PRIu32
                      " = 0;\n",
                      j, j, j);
}

/* the frameless version p<fi> of the current function, from its analysis fp under the argument
 * types g->pspec[fi] */
static void emit_pure(gen *g, const nvm_fninfo *fp, uint32_t twin)
{
    nvm_tb *b = g->b;
    uint32_t W = g->W, S = g->S, fi = g->fi;
    g->twin = twin;
    char cn[24] = "";
    if (twin > 0)
        snprintf(cn, sizeof cn, "_%" PRIu32, twin);
    nvm_tb_printf(b, "\n/* frameless f%" PRIu32 "%s */\nstatic %sPR p%" PRIu32 "%s(", fi,
                  twin ? ", a copy" : "", twin ? "inline __attribute__((always_inline)) " : "", fi,
                  cn);
    pure_params(g, fi);
    nvm_tb_printf(b, ")\n{\n");
    declare_locals(g);
    for (uint32_t q = 0; q < g->consumed; q++) {
        int t = nvm_tm_single(g->pspec[fi][q]);
        if (t >= 0)
            nvm_tb_printf(b, "    pI%" PRIu32 " = a%" PRIu32 "; pT%" PRIu32 " = %d;\n", q, q, q, t);
        else
            nvm_tb_printf(b, "    pI%" PRIu32 " = a%" PRIu32 "; pT%" PRIu32 " = t%" PRIu32 ";\n", q,
                          q, q, q);
    }
    for (uint32_t v = 0; v < W + S; v++) {
        g->rep[v] = v < W ? R_G : NVM_T_UNDEF;
        g->dirty[v] = false;
    }
    g->H = (uint32_t)g->consumed;
    g->pure = true;
    jump_to_ex(g, 'P', fp, 0, g->metered); /* the caller paid for the entry block's check */
    emit_as(g, 'P', fp, NULL, NULL);
    g->pure = false;
    nvm_tb_printf(b, "    return PBAIL;\n}\n");
}

/* Which functions get a frameless version: every reachable instruction a pure_op, every callee
 * one of them, a result, at most NVM_AOT_PURE_MAX instructions, and an analysis under the
 * argument types of nvm_spec_args (pspec[f], allocated for each such f). */
#define NVM_AOT_PURE_MAX 2000u
static int pure_ret_type(const nvm_module *m, const nvm_func *fn, const nvm_fninfo *f)
{
    uint32_t W = fn->max_height + 1, S = fn->nslots;
    tmask *cur = malloc(W + S + 1);
    int t = -1;
    tmask all = 0;
    if (cur == NULL)
        return -1;
    for (uint32_t bi = 0; bi < f->nblk; bi++) {
        if (!f->seen[bi])
            continue;
        memcpy(cur, f->state + (size_t)bi * (W + S), W + S);
        uint32_t H = (uint32_t)(fn->heights[f->bstart[bi]] + (int32_t)fn->consumed);
        for (uint32_t i = f->bstart[bi]; i < f->bend[bi]; i++) {
            if (fn->code[i].op == NVM_OP_RET && H >= 1) {
                int s = nvm_tm_single(cur[H - 1]);
                if (s >= 0 && t < 0)
                    t = s;
                all |= cur[H - 1];
            }
            nvm_xfer(m, fn, i, cur, &H, cur + W);
        }
    }
    free(cur);
    /* a result type some path is known to return, which every other path may return */
    return t >= 0 && (all & TM(t)) ? t : -1;
}

static bool pure_plan(const nvm_module *m, uint8_t *pok, tmask **pspec, int8_t *prt)
{
    for (uint32_t f = 0; f < m->nfuncs; f++) {
        const nvm_func *fn = &m->funcs[f];
        if (!fn->returns || fn->ninsn > NVM_AOT_PURE_MAX)
            continue;
        bool ok = true;
        for (uint32_t i = 0; i < fn->ninsn && ok; i++)
            ok = fn->heights[i] == INT32_MIN || pure_op(fn->code[i].op);
        if (!ok)
            continue;
        pspec[f] = calloc(fn->consumed + 1, 1);
        if (pspec[f] == NULL)
            return false;
        nvm_spec_args(fn, pspec[f]);
        nvm_fninfo t;
        if (!nvm_analyse(m, fn, &t, NULL, NULL, pspec[f]))
            continue;
        prt[f] = (int8_t)pure_ret_type(m, fn, &t);
        nvm_fninfo_free(&t);
        pok[f] = 1;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t f = 0; f < m->nfuncs; f++) {
            const nvm_func *fn = &m->funcs[f];
            for (uint32_t i = 0; pok[f] && i < fn->ninsn; i++)
                if (fn->heights[i] != INT32_MIN && fn->code[i].op == NVM_OP_CALL &&
                    !pok[fn->code[i].a]) {
                    pok[f] = 0;
                    changed = true;
                }
        }
    }
    return true;
}

/* Whether instruction i is the first reachable ENTER_TRY naming its handler (a reachable one):
 * each handler gets one case in the catch switch and one entry label. */
static bool handler_entry(const nvm_func *fn, const nvm_fninfo *fg, uint32_t i)
{
    const nvm_insn *in = &fn->code[i];
    if (in->op != NVM_OP_ENTER_TRY || fg->blk_of[i] == UINT32_MAX ||
        fg->blk_of[in->a] == UINT32_MAX)
        return false;
    for (uint32_t j = 0; j < i; j++)
        if (fn->code[j].op == NVM_OP_ENTER_TRY && fg->blk_of[j] != UINT32_MAX &&
            fn->code[j].a == in->a)
            return false;
    return true;
}

/* fs/fg: the speculating and generic versions (fs NULL: one version, fg) */
static void emit_fn(gen *g, const nvm_fninfo *fs, const nvm_fninfo *fg, const uint8_t *site,
                    const tmask *argspec)
{
    nvm_tb *b = g->b;
    const nvm_func *fn = g->fn;
    uint32_t W = g->W, S = g->S;
    /* the function's name as a comment: program text never reaches the C file verbatim */
    nvm_tb_printf(b, "\n/* ");
    for (const char *c = fn->name; *c != '\0' && c - fn->name < 64; c++) {
        bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                     (*c >= '0' && *c <= '9') || *c == '_' || *c == '.';
        nvm_tb_printf(b, "%c", plain ? *c : '?');
    }
    nvm_tb_printf(b,
                  " */\nstatic int f%" PRIu32
                  "(struct nvm_vm *vm, nvm_value *base, nvm_value *slots)\n{\n",
                  g->fi);
    if (fg == NULL) {
        nvm_tb_printf(b, "    return RT->interp_call(vm, base, slots);\n}\n");
        return;
    }
    bool has_try = false;
    for (uint32_t i = 0; i < fn->ninsn; i++)
        has_try |= fn->code[i].op == NVM_OP_ENTER_TRY && fg->blk_of[i] != UINT32_MAX;
    nvm_tb_printf(b, "    int64_t gas = F(int64_t, O_jit_gas);\n    int rc = 0;\n");
    if (has_try)
        nvm_tb_printf(b, "    const uint32_t fr0 = F(uint32_t, O_depth) - 1;\n");
    declare_locals(g);
    /* arguments from their cells; slots undefined */
    g->H = (uint32_t)g->consumed;
    for (uint32_t v = 0; v < W + S; v++) {
        g->rep[v] = v < W ? R_G : NVM_T_UNDEF;
        g->dirty[v] = v >= W;
    }
    for (uint32_t q = 0; q < g->consumed; q++)
        load_val(g, q, cell(g, q).s, R_G);
    if (fs != NULL) {
        for (uint32_t q = 0; argspec != NULL && q < g->consumed; q++) {
            int t = nvm_tm_single(argspec[q]);
            if (t >= 0)
                nvm_tb_printf(b, "    if (U(pT%" PRIu32 " != %d)) goto E;\n", q, t);
        }
        jump_to(g, 'L', fs, 0);
        nvm_tb_printf(b, "E:\n");
        jump_to(g, 'G', fg, 0);
        emit_as(g, 'L', fs, site, fg);
    } else {
        jump_to(g, 'G', fg, 0);
    }
    emit_as(g, 'G', fg, NULL, NULL);
    nvm_tb_printf(b, "unwind:\n");
    if (has_try) {
        nvm_tb_printf(b, "    if (rc == 1) {\n        switch (RT->catch_(vm, fr0)) {\n");
        for (uint32_t i = 0; i < fn->ninsn; i++)
            if (handler_entry(fn, fg, i))
                nvm_tb_printf(b, "        case %" PRIu32 ": goto C%" PRIu32 ";\n", fn->code[i].a,
                              fn->code[i].a);
        nvm_tb_printf(b, "        default: break;\n        }\n    }\n");
    }
    nvm_tb_printf(b, "    SYNC();\n    return rc;\n");
    /* handler entries: everything from the cells the interpreter left */
    for (uint32_t i = 0; has_try && i < fn->ninsn; i++) {
        if (!handler_entry(fn, fg, i))
            continue;
        uint32_t t = fn->code[i].a;
        g->H = (uint32_t)(fn->heights[t] + (int32_t)g->consumed);
        nvm_tb_printf(b, "C%" PRIu32 ":\n", t);
        for (uint32_t n = 0; n < S; n++)
            nvm_tb_printf(b, "    ob%" PRIu32 " = 0;\n", n);
        fc_drop(g);
        for (uint32_t v = 0; v < W + S; v++)
            if (v < g->H || v >= W)
                load_val(g, v, cell(g, v).s, rep_of(entry_mask(g, fg, t, v)));
        nvm_tb_printf(b, "    goto G%" PRIu32 ";\n", t);
    }
    nvm_tb_printf(b, "}\n");
}

nvm_status nvm_aot_emit(const nvm_module *m, unsigned flags, char **out, size_t *len,
                        nvm_error *err)
{
    *out = NULL;
    *len = 0;
    if (m == NULL || !m->verified)
        return nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0, "the AOT tier needs a verified module");
    nvm_tb b;
    memset(&b, 0, sizeof b);
    char fp[NVM_AOT_FP_LEN + 1];
    nvm_aot_fingerprint(fp);
    uint64_t total = 0;
    for (uint32_t f = 0; f < m->nfuncs; f++)
        total += m->funcs[f].ninsn;
    nvm_tb_printf(
        &b, "/* NanoVM AOT: %" PRIu32 " functions, %" PRIu64 " instructions%s (generated) */\n",
        m->nfuncs, total, (flags & NVM_AOT_UNMETERED) ? ", gas not metered" : "");
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        nvm_tb_printf(&b, "#define %s %zu\n", layouts[i].name, layouts[i].value);
    for (size_t i = 0; i < sizeof prelude / sizeof prelude[0]; i++)
        nvm_tb_printf(&b, "%s", prelude[i]);
    for (uint32_t f = 0; f < m->nfuncs; f++)
        nvm_tb_printf(&b, "static int f%" PRIu32 "(struct nvm_vm *, nvm_value *, nvm_value *);\n",
                      f);
    /* predicted field positions (predict_positions) */
    size_t wmax = 1, nmax = 1;
    for (uint32_t f = 0; f < m->nfuncs; f++) {
        size_t w = (size_t)m->funcs[f].max_height + 1 + m->funcs[f].nslots;
        wmax = w > wmax ? w : wmax;
        nmax = m->funcs[f].ninsn + 1u > nmax ? m->funcs[f].ninsn + 1u : nmax;
    }
    int32_t *kpos = malloc((m->nstrs + 1) * sizeof *kpos);
    uint32_t *kvotes = malloc((m->nstrs + 1) * sizeof *kvotes);
    bool *kfresh = malloc(wmax), *ktarget = malloc(nmax);
    if (kpos == NULL || kvotes == NULL || kfresh == NULL || ktarget == NULL)
        b.oom = true;
    else
        predict_positions(m, kpos, kvotes, kfresh, ktarget);
    free(kvotes);
    free(kfresh);
    free(ktarget);
    uint8_t *pok = calloc(m->nfuncs + 1, 1);
    tmask **pspec = calloc(m->nfuncs + 1, sizeof *pspec);
    int8_t *prt = malloc(m->nfuncs + 1);
    if (prt != NULL)
        memset(prt, -1, m->nfuncs + 1);
    if (pok == NULL || pspec == NULL || prt == NULL || !pure_plan(m, pok, pspec, prt))
        b.oom = true;
    /* the most operand stack (the callee's cells, or the caller's up to the call) and slot
     * cells one level of frameless calls takes */
    uint32_t psmax = 1, plmax = 0;
    /* the frameless versions' analyses (pan[f]: made) and their entry blocks' gas (gas_plan) */
    uint32_t *pentry = calloc(m->nfuncs + 1, sizeof *pentry);
    nvm_fninfo *pinfo = calloc(m->nfuncs + 1, sizeof *pinfo);
    uint8_t *pan = calloc(m->nfuncs + 1, 1);
    if (pentry == NULL || pinfo == NULL || pan == NULL)
        b.oom = true;
    for (uint32_t f = 0; f < m->nfuncs && !b.oom; f++) {
        if (!pok[f])
            continue;
        if (!nvm_analyse(m, &m->funcs[f], &pinfo[f], NULL, NULL, pspec[f])) {
            b.oom = true;
            break;
        }
        pan[f] = 1;
        uint32_t *cost = malloc((pinfo[f].nblk + 1) * sizeof *cost);
        if (cost != NULL) {
            gas_plan(&m->funcs[f], &pinfo[f], cost);
            pentry[f] = cost[pinfo[f].blk_of[0]];
        } else {
            b.oom = true;
        }
        free(cost);
        uint32_t c = (uint32_t)m->funcs[f].max_height + m->funcs[f].consumed + 1;
        psmax = c > psmax ? c : psmax;
        plmax = m->funcs[f].nslots > plmax ? m->funcs[f].nslots : plmax;
    }
    for (uint32_t f = 0; f < m->nfuncs && !b.oom; f++) {
        if (!pok[f])
            continue;
        gen pg;
        memset(&pg, 0, sizeof pg);
        pg.b = &b;
        pg.m = m;
        pg.pspec = pspec;
        pg.prt = prt;
        pg.metered = !(flags & NVM_AOT_UNMETERED);
        nvm_tb_printf(&b, "static PR p%" PRIu32 "(", f);
        pure_params(&pg, f);
        nvm_tb_printf(&b, ");\n");
        for (uint32_t t = 1; t < pure_copies(m, f); t++) {
            nvm_tb_printf(
                &b, "static inline __attribute__((always_inline)) PR p%" PRIu32 "_%" PRIu32 "(", f,
                t);
            pure_params(&pg, f);
            nvm_tb_printf(&b, ");\n");
        }
    }
    for (uint32_t f = 0; f < m->nfuncs && !b.oom; f++) {
        const nvm_func *fn = &m->funcs[f];
        nvm_fninfo fi, fs, fg;
        memset(&fi, 0, sizeof fi);
        memset(&fs, 0, sizeof fs);
        memset(&fg, 0, sizeof fg);
        bool ok = nvm_analyse(m, fn, &fi, NULL, NULL, NULL);
        uint32_t W = fn->max_height + 1, S = fn->nslots;
        /* speculation as the JIT: float sites and argument types, with a generic version */
        uint8_t *site = calloc(fn->ninsn + 1, 1);
        tmask *scratch = malloc(W + S + 1);
        tmask *argspec = calloc(fn->consumed + 1, 1);
        bool spec = false;
        if (ok && site != NULL && scratch != NULL && argspec != NULL) {
            spec = nvm_spec_sites(m, fn, &fi, site, scratch);
            spec |= spec && nvm_spec_fields(m, fn, &fi, site, scratch);
            spec |= nvm_spec_args(fn, argspec);
            if (spec && (!nvm_analyse(m, fn, &fs, NULL, site, argspec) ||
                         !nvm_analyse(m, fn, &fg, site, NULL, NULL))) {
                nvm_fninfo_free(&fs);
                nvm_fninfo_free(&fg);
                spec = false;
            }
        }
        gen g;
        memset(&g, 0, sizeof g);
        g.b = &b;
        g.m = m;
        g.fn = fn;
        g.fi = f;
        g.consumed = fn->consumed;
        g.W = W;
        g.S = S;
        g.stk = malloc(W + 1);
        g.sl = malloc(S + 1);
        g.post = malloc(W + S + 1);
        g.rep = malloc(W + S + 1);
        g.dirty = malloc(W + S + 1);
        g.org = malloc((W + 1) * sizeof *g.org);
        g.pok = pok;
        g.pspec = pspec;
        g.prt = prt;
        g.metered = !(flags & NVM_AOT_UNMETERED);
        g.psmax = psmax;
        g.plmax = plmax;
        g.pentry = pentry;
        g.kpos = kpos;
        uint64_t *live = ok ? slot_liveness(fn) : NULL;
        g.live = live;
        g.flush_at = UINT32_MAX;
        if (g.stk == NULL || g.sl == NULL || g.post == NULL || g.rep == NULL || g.dirty == NULL ||
            g.org == NULL || site == NULL || scratch == NULL || argspec == NULL)
            b.oom = true;
        else if (!ok)
            emit_fn(&g, NULL, NULL, NULL, NULL);
        /* each C function three times (fc_pass): the tables, each block's facts, the output */
        g.gsite = spec ? site : NULL;
        for (int pass = 0; ok && !b.oom && pass < 3; pass++) {
            nvm_tb first = {0};
            fc_pass(&g, pass, &first, &b);
            if (spec)
                emit_fn(&g, &fs, &fg, site, argspec);
            else
                emit_fn(&g, NULL, &fi, NULL, NULL);
            b.oom |= first.oom;
            nvm_tb_free(&first);
        }
        for (int pass = 0; !b.oom && pok[f] && pass < 3; pass++) {
            nvm_tb first = {0};
            fc_pass(&g, pass, &first, &b);
            emit_pure(&g, &pinfo[f], 0);
            for (uint32_t t = 1; t < pure_copies(m, f); t++)
                emit_pure(&g, &pinfo[f], t);
            b.oom |= first.oom;
            nvm_tb_free(&first);
        }
        for (int k = 0; k < 3; k++)
            flowtab_free(&g.ft[k]);
        free(live);
        g.b = &b;
        free(g.stk);
        free(g.sl);
        free(g.post);
        free(g.rep);
        free(g.dirty);
        free(g.org);
        free(site);
        free(scratch);
        free(argspec);
        if (spec) {
            nvm_fninfo_free(&fs);
            nvm_fninfo_free(&fg);
        }
        if (ok)
            nvm_fninfo_free(&fi);
    }
    for (uint32_t f = 0; pspec != NULL && f < m->nfuncs; f++)
        free(pspec[f]);
    free(pspec);
    for (uint32_t f = 0; pan != NULL && f < m->nfuncs; f++)
        if (pan[f])
            nvm_fninfo_free(&pinfo[f]);
    free(pinfo);
    free(pan);
    free(pentry);
    free(pok);
    free(prt);
    free(kpos);
    nvm_tb_printf(&b, "\nstatic const nvm_aot_fn fns[%" PRIu32 "] = {", m->nfuncs + 1);
    for (uint32_t f = 0; f < m->nfuncs; f++)
        nvm_tb_printf(&b, "%sf%" PRIu32 ",", f % 8 == 0 ? "\n    " : " ", f);
    nvm_tb_printf(&b,
                  "};\nstatic const nvm_aot_desc desc = {%uu, %" PRIu32 "u, \"%s\", fns, %" PRIu64
                  "u};\n",
                  NVM_AOT_ABI, m->nfuncs, fp, total);
    nvm_tb_printf(
        &b, "__attribute__((visibility(\"default\"))) const nvm_aot_desc *nvm_aot_describe(void);\n"
            "const nvm_aot_desc *nvm_aot_describe(void)\n{\n    return &desc;\n}\n");
    if (b.oom) {
        nvm_tb_free(&b);
        return nvm_error_set(err, NVM_E_MEMORY, NULL, 0, 0, "AOT: out of memory");
    }
    *out = b.p;
    *len = b.len;
    return NVM_OK;
}
