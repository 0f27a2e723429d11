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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aot.h"
#include "../native/analysis.h"
#include "../../isa/isa.h"
#include "../../trust/crypto.h"

/* ---- text buffer ---- */
typedef struct tb {
    char *p;
    size_t len, cap;
    bool oom;
} tb;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
put(tb *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 65536;
        while (nc - b->len <= (size_t)n)
            nc *= 2;
        char *q = realloc(b->p, nc);
        if (q == NULL) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
}

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
    {"O_heap_objs", offsetof(nvm_vm, heap) + offsetof(nvm_heap, objs)},
    {"SZ_frame", sizeof(nvm_frame)},
    {"O_frame_pf", offsetof(nvm_frame, pf)},
    {"O_frame_ip", offsetof(nvm_frame, ip)},
    {"SZ_pfunc", sizeof(nvm_pfunc)},
    {"O_pfunc_code", offsetof(nvm_pfunc, code)},
    {"SZ_insn", sizeof(nvm_insn)},
    {"O_array_len", offsetof(nvm_array, len)},
    {"O_array_items", offsetof(nvm_array, items)},
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
    "#define TY(v) ((v)->type)\n"
    "#define FV(v) (TY(v) == 3 ? (v)->as.f : (double)(v)->as.i)\n",
    "/* block entry: charge n instructions of the block at s (height h) */\n"
    "#define GAS(s, n, h)                                                          \\\n"
    "    if (U((gas -= (n)) < 0)) {                                                \\\n"
    "        gas += (n);                                                           \\\n"
    "        SYNC();                                                               \\\n"
    "        rc = RT->gas(vm, (n), (s), base + (h));                               \\\n"
    "        gas = F(int64_t, O_jit_gas);                                          \\\n"
    "        if (rc == 0)                                                          \\\n"
    "            gas -= (n);                                                       \\\n"
    "        else if (rc == 3)                                                     \\\n"
    "            return RT->deopt(vm, (s), base + (h), slots);                     \\\n"
    "        else                                                                  \\\n"
    "            goto unwind;                                                      \\\n"
    "    }\n"
    "/* instruction i stepped by the runtime (top at height h); rf: the block's rest */\n"
    "#define SLOW(i, h, rf)                                                        \\\n"
    "    if (U((rc = RT->fast(vm, (i), base + (h), slots, gas)) != 0)) {           \\\n"
    "        gas += (rf);                                                          \\\n"
    "        goto unwind;                                                          \\\n"
    "    }\n",
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
typedef struct gen {
    tb *b;
    const nvm_module *m;
    const nvm_func *fn;
    uint32_t fi;
    int64_t consumed;
    uint32_t W, S;
    tmask *stk, *sl;
    uint32_t H;
    uint32_t blk_end;
} gen;

/* cell of stack position q, relative to base */
static long long cl(const gen *g, uint32_t q)
{
    return (long long)q - g->consumed;
}

static void put_i64(tb *b, int64_t v)
{
    if (v == INT64_MIN)
        put(b, "INT64_MIN");
    else
        put(b, "INT64_C(%" PRId64 ")", v);
}

/* C condition "value at cell c has type t", folded with the mask m */
static void ty_is(gen *g, tmask m, long long c, int t)
{
    if (m == TM(t))
        put(g->b, "1");
    else if (!(m & TM(t)))
        put(g->b, "0");
    else
        put(g->b, "(TY(&base[%lld]) == %d)", c, t);
}
static void ty_num(gen *g, tmask m, long long c)
{
    if ((m & ~TM_NUM) == 0 && m != 0)
        put(g->b, "1");
    else if (!(m & TM_NUM))
        put(g->b, "0");
    else
        put(g->b, "(TY(&base[%lld]) == 2 || TY(&base[%lld]) == 3)", c, c);
}

/* dst = src as two scalar moves (whole-struct copies defeat store forwarding); the tag is a
 * constant when the mask knows it */
static void copy(gen *g, const char *dst, const char *src, tmask m)
{
    int t = nvm_tm_single(m);
    if (t >= 0)
        put(g->b, "    %s.as.i = %s.as.i;\n    %s.type = %d;\n", dst, src, dst, t);
    else
        put(g->b, "    %s.as.i = %s.as.i;\n    %s.type = %s.type;\n", dst, src, dst, src);
}

static void copy_cells(gen *g, long long d, long long s, tmask m)
{
    char a[48], b[48];
    snprintf(a, sizeof a, "base[%lld]", d);
    snprintf(b, sizeof b, "base[%lld]", s);
    copy(g, a, b, m);
}

static void slow(gen *g, uint32_t i, uint32_t top)
{
    put(g->b, "SLOW(%" PRIu32 "u, %lld, %" PRIu32 ")", i, cl(g, top), g->blk_end - (i + 1));
}

static void arith(gen *g, uint32_t i, uint8_t op)
{
    tb *b = g->b;
    uint32_t H = g->H;
    long long x = cl(g, H - 2), y = cl(g, H - 1);
    tmask xm = g->stk[H - 2], ym = g->stk[H - 1];
    static const char *const bi[] = {"add", "sub", "mul"};
    static const char ch[] = {'+', '-', '*', '/'};
    int k = op == NVM_OP_ADD ? 0 : op == NVM_OP_SUB ? 1 : op == NVM_OP_MUL ? 2 : 3;
    put(b, "    if (");
    ty_is(g, xm, x, NVM_T_INT);
    put(b, " && ");
    ty_is(g, ym, y, NVM_T_INT);
    put(b, ") {\n");
    if (op == NVM_OP_DIV || op == NVM_OP_MOD) {
        put(b,
            "        if (U(base[%lld].as.i == 0 || (base[%lld].as.i == -1 && base[%lld].as.i == "
            "INT64_MIN))) { ",
            y, y, x);
        slow(g, i, H);
        put(b, " } else base[%lld].as.i = base[%lld].as.i %c base[%lld].as.i;\n", x, x,
            op == NVM_OP_DIV ? '/' : '%', y);
    } else {
        put(b,
            "        int64_t r;\n        if (U(__builtin_%s_overflow(base[%lld].as.i, "
            "base[%lld].as.i, &r))) { ",
            bi[k], x, y);
        slow(g, i, H);
        put(b, " } else base[%lld].as.i = r;\n", x);
    }
    put(b, "    }");
    if (op != NVM_OP_MOD) {
        put(b, " else if (");
        ty_num(g, xm, x);
        put(b, " && ");
        ty_num(g, ym, y);
        if (op == NVM_OP_DIV)
            put(b, " && FV(&base[%lld]) != 0.0", y);
        put(b,
            ") {\n        base[%lld].as.f = FV(&base[%lld]) %c FV(&base[%lld]);\n"
            "        base[%lld].type = 3;\n    }",
            x, x, ch[k], y, x);
    }
    put(b, " else { ");
    slow(g, i, H);
    put(b, " }\n");
}

/* Comparison: the C expression of its result is left in `r` (int). */
static void compare(gen *g, uint32_t i, uint8_t op)
{
    tb *b = g->b;
    uint32_t H = g->H;
    long long x = cl(g, H - 2), y = cl(g, H - 1);
    tmask xm = g->stk[H - 2], ym = g->stk[H - 1];
    const char *o = op == NVM_OP_EQ   ? "=="
                    : op == NVM_OP_NE ? "!="
                    : op == NVM_OP_LT ? "<"
                    : op == NVM_OP_LE ? "<="
                    : op == NVM_OP_GT ? ">"
                                      : ">=";
    bool eq = op == NVM_OP_EQ || op == NVM_OP_NE;
    put(b, "    if (");
    ty_is(g, xm, x, NVM_T_INT);
    put(b, " && ");
    ty_is(g, ym, y, NVM_T_INT);
    put(b, ") r = base[%lld].as.i %s base[%lld].as.i;\n", x, o, y);
    if (eq) {
        put(b, "    else if (");
        ty_is(g, xm, x, NVM_T_BOOL);
        put(b, " && ");
        ty_is(g, ym, y, NVM_T_BOOL);
        put(b, ") r = base[%lld].as.b %s base[%lld].as.b;\n", x, o, y);
    } else {
        put(b, "    else if (");
        ty_num(g, xm, x);
        put(b, " && ");
        ty_num(g, ym, y);
        put(b, ") r = FV(&base[%lld]) %s FV(&base[%lld]);\n", x, o, y);
    }
    put(b, "    else { ");
    slow(g, i, H);
    put(b, " r = base[%lld].as.b; }\n", x);
}

/* JZ/JNZ on the value at position q */
static void branch(gen *g, uint32_t q, bool if_true, uint32_t target)
{
    tb *b = g->b;
    long long c = cl(g, q);
    tmask m = g->stk[q];
    const char *neg = if_true ? "" : "!";
    if (m == TM_BOOL)
        put(b, "    if (%sbase[%lld].as.b) goto L%" PRIu32 ";\n", neg, c, target);
    else if (m == TM_INT)
        put(b, "    if (%s(base[%lld].as.i != 0)) goto L%" PRIu32 ";\n", neg, c, target);
    else
        put(b,
            "    if (%s(TY(&base[%lld]) == 1 ? base[%lld].as.b != 0 : TY(&base[%lld]) == 2 ? "
            "base[%lld].as.i != 0 : RT->truthy(vm, &base[%lld]))) goto L%" PRIu32 ";\n",
            neg, c, c, c, c, c, target);
}

static const char *opname(uint8_t op)
{
    const char *n = nvm_opinfo_table[op].name;
    return n != NULL ? n : "?";
}

static void emit_fn(gen *g, const nvm_fninfo *f, bool ok)
{
    tb *b = g->b;
    const nvm_func *fn = g->fn;
    const nvm_module *m = g->m;
    /* the function's name as a comment: program text never reaches the C file verbatim */
    put(b, "\n/* ");
    for (const char *c = fn->name; *c != '\0' && c - fn->name < 64; c++) {
        bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                     (*c >= '0' && *c <= '9') || *c == '_' || *c == '.';
        put(b, "%c", plain ? *c : '?');
    }
    put(b,
        " */\nstatic int f%" PRIu32 "(struct nvm_vm *vm, nvm_value *base, nvm_value *slots)\n{\n",
        g->fi);
    if (!ok) {
        put(b, "    return RT->interp_call(vm, base, slots);\n}\n");
        return;
    }
    bool has_try = false;
    for (uint32_t i = 0; i < fn->ninsn; i++)
        has_try |= fn->code[i].op == NVM_OP_ENTER_TRY && f->blk_of[i] != UINT32_MAX;
    put(b, "    int64_t gas = F(int64_t, O_jit_gas);\n    int rc = 0, r = 0;\n    (void)r;\n");
    if (has_try)
        put(b, "    const uint32_t fr0 = F(uint32_t, O_depth) - 1;\n");
    if (g->S > 0)
        put(b, "    for (int s = 0; s < %" PRIu32 "; s++)\n        slots[s].type = 7;\n", g->S);
    uint32_t W = g->W, S = g->S;
    for (uint32_t bi = 0; bi < f->nblk; bi++) {
        uint32_t s = f->bstart[bi], e = f->bend[bi];
        g->blk_end = e;
        const tmask *st = f->state + (size_t)bi * (W + S);
        g->H = (uint32_t)(fn->heights[s] + (int32_t)g->consumed);
        for (uint32_t q = 0; q < g->H; q++)
            g->stk[q] = f->seen[bi] ? st[q] : TM_ANY;
        for (uint32_t q = 0; q < S; q++)
            g->sl[q] = f->seen[bi] ? st[W + q] : (tmask)(TM_ANY | TM_UNDEF);
        put(b, "L%" PRIu32 ":\n    GAS(%" PRIu32 "u, %" PRIu32 "u, %lld)\n", s, s, e - s,
            cl(g, g->H));
        for (uint32_t i = s; i < e; i++) {
            const nvm_insn *in = &fn->code[i];
            uint32_t H = g->H;
            bool fused = false;
            put(b, "    /* %" PRIu32 " %s */\n", i, opname(in->op));
            switch (in->op) {
            case NVM_OP_NOP: break;
            case NVM_OP_PUSH:
                put(b, "    base[%lld].as.i = ", cl(g, H));
                put_i64(b, in->k.i);
                put(b, ";\n    base[%lld].type = 2;\n", cl(g, H));
                break;
            case NVM_OP_PUSH_F64: {
                int64_t bits;
                memcpy(&bits, &in->k.f, 8);
                put(b, "    base[%lld].as.i = ", cl(g, H));
                put_i64(b, bits);
                put(b, ";\n    base[%lld].type = 3;\n", cl(g, H));
                break;
            }
            case NVM_OP_PUSH_BOOL:
                put(b, "    base[%lld].as.i = %d;\n    base[%lld].type = 1;\n", cl(g, H),
                    in->b != 0, cl(g, H));
                break;
            case NVM_OP_PUSH_NULL:
                put(b, "    base[%lld].as.i = 0;\n    base[%lld].type = 0;\n", cl(g, H), cl(g, H));
                break;
            case NVM_OP_PUSH_STR:
                put(b, "    base[%lld] = F(nvm_value *, O_consts)[%" PRIu32 "];\n", cl(g, H),
                    in->a);
                break;
            case NVM_OP_POP: break;
            case NVM_OP_DUP:
            case NVM_OP_PICK: {
                uint32_t src = H - 1 - (in->op == NVM_OP_PICK ? in->a : 0);
                copy_cells(g, cl(g, H), cl(g, src), g->stk[src]);
                break;
            }
            case NVM_OP_SWAP:
            case NVM_OP_ROT:
            case NVM_OP_ROLL: {
                uint32_t n = in->op == NVM_OP_SWAP ? 1 : in->op == NVM_OP_ROT ? 2 : in->a;
                uint32_t lo = H - 1 - n;
                if (n == 0)
                    break;
                put(b, "    { nvm_value t = base[%lld];\n", cl(g, lo));
                if (n <= 8) {
                    for (uint32_t q = lo; q + 1 < H; q++)
                        put(b, "      base[%lld] = base[%lld];\n", cl(g, q), cl(g, q + 1));
                } else {
                    put(b, "      for (int q = %lld; q < %lld; q++) base[q] = base[q + 1];\n",
                        cl(g, lo), cl(g, H - 1));
                }
                put(b, "      base[%lld] = t; }\n", cl(g, H - 1));
                break;
            }
            case NVM_OP_LOAD:
                if (g->sl[in->a] & TM_UNDEF) {
                    put(b, "    if (U(slots[%" PRIu32 "].type == 7)) { ", in->a);
                    slow(g, i, H);
                    put(b, " }\n");
                }
                {
                    char d[48], sv[48];
                    snprintf(d, sizeof d, "base[%lld]", cl(g, H));
                    snprintf(sv, sizeof sv, "slots[%" PRIu32 "]", in->a);
                    copy(g, d, sv, (tmask)(g->sl[in->a] & TM_ANY));
                }
                break;
            case NVM_OP_STORE: {
                char d[48], sv[48];
                snprintf(d, sizeof d, "slots[%" PRIu32 "]", in->a);
                snprintf(sv, sizeof sv, "base[%lld]", cl(g, H - 1));
                copy(g, d, sv, g->stk[H - 1]);
            } break;
            case NVM_OP_ADD:
            case NVM_OP_SUB:
            case NVM_OP_MUL:
            case NVM_OP_DIV:
            case NVM_OP_MOD: arith(g, i, in->op); break;
            case NVM_OP_NEG: {
                long long x = cl(g, H - 1);
                tmask xm = g->stk[H - 1];
                put(b, "    if (");
                ty_is(g, xm, x, NVM_T_INT);
                put(b, " && base[%lld].as.i != INT64_MIN) base[%lld].as.i = -base[%lld].as.i;\n", x,
                    x, x);
                put(b, "    else if (");
                ty_is(g, xm, x, NVM_T_FLOAT);
                put(b, ") base[%lld].as.f = -base[%lld].as.f;\n    else { ", x, x);
                slow(g, i, H);
                put(b, " }\n");
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
                    put(b, "    /* %" PRIu32 " %s */\n    if (%sr) goto L%" PRIu32 ";\n", i + 1,
                        opname(nx->op), nx->op == NVM_OP_JZ ? "!" : "", nx->a);
                    fused = true;
                } else {
                    put(b, "    base[%lld].as.i = r;\n    base[%lld].type = 1;\n", cl(g, H - 2),
                        cl(g, H - 2));
                }
                break;
            }
            case NVM_OP_NOT:
                if (g->stk[H - 1] == TM_BOOL) {
                    put(b, "    base[%lld].as.i = !base[%lld].as.b;\n", cl(g, H - 1), cl(g, H - 1));
                } else {
                    put(b, "    ");
                    slow(g, i, H);
                    put(b, "\n");
                }
                break;
            case NVM_OP_ARR_GET:
            case NVM_OP_ARR_SET: {
                /* in place on the array object (negative index from the end), else a step */
                bool set = in->op == NVM_OP_ARR_SET;
                uint32_t qa = set ? H - 3 : H - 2, qi = qa + 1;
                long long a = cl(g, qa), x = cl(g, qi);
                put(b, "    if (");
                ty_is(g, g->stk[qa], a, NVM_T_ARRAY);
                put(b, " && ");
                ty_is(g, g->stk[qi], x, NVM_T_INT);
                put(b,
                    ") {\n        char *o = F(char **, O_heap_objs)[base[%lld].as.h];\n"
                    "        uint64_t n = *(uint32_t *)(o + O_array_len);\n"
                    "        int64_t k = base[%lld].as.i;\n        if (k < 0) k += (int64_t)n;\n"
                    "        if (U((uint64_t)k >= n)) { ",
                    a, x);
                slow(g, i, H);
                put(b, " } else {\n            nvm_value *it = *(nvm_value **)(o + O_array_items) "
                       "+ k;\n");
                if (set)
                    put(b,
                        "            it->as.i = base[%lld].as.i;\n            it->type = "
                        "base[%lld].type;\n",
                        cl(g, H - 1), cl(g, H - 1));
                else
                    put(b,
                        "            base[%lld].as.i = it->as.i;\n            base[%lld].type = "
                        "it->type;\n",
                        a, a);
                put(b, "        }\n    } else { ");
                slow(g, i, H);
                put(b, " }\n");
                break;
            }
            case NVM_OP_ARR_LEN:
            case NVM_OP_LEN: {
                long long a = cl(g, H - 1);
                put(b, "    if (");
                ty_is(g, g->stk[H - 1], a, NVM_T_ARRAY);
                put(b,
                    ") {\n        base[%lld].as.i = *(uint32_t *)(F(char **, "
                    "O_heap_objs)[base[%lld].as.h] + O_array_len);\n"
                    "        base[%lld].type = 2;\n    } else { ",
                    a, a, a);
                slow(g, i, H);
                put(b, " }\n");
                break;
            }
            case NVM_OP_JMP: put(b, "    goto L%" PRIu32 ";\n", in->a); break;
            case NVM_OP_JZ:
            case NVM_OP_JNZ: branch(g, H - 1, in->op == NVM_OP_JNZ, in->a); break;
            case NVM_OP_CALL: {
                const nvm_func *cf = &m->funcs[in->a];
                uint32_t need = cf->max_height - cf->consumed + 1;
                put(b,
                    "    CALL(%" PRIu32 "u, %" PRIu32 "u, %" PRIu32 "u, f%" PRIu32
                    ", %lld, %" PRIu32 ", %" PRIu32 ", %" PRIu32 ")\n",
                    g->fi, i, in->a, in->a, cl(g, H), S, need, cf->nslots);
                break;
            }
            case NVM_OP_RET:
                copy_cells(g, -(long long)g->consumed, cl(g, H - 1), g->stk[H - 1]);
                put(b, "    if (U(F(uint32_t, O_nhandlers) != 0)) "
                       "RT->drop_handlers(vm);\n    F(uint32_t, O_depth) -= 1;\n    SYNC();\n"
                       "    return 0;\n");
                break;
            case NVM_OP_HALT: put(b, "    SYNC();\n    return 2;\n"); break;
            case NVM_OP_THROW:
                put(b, "    ");
                slow(g, i, H);
                put(b, "\n    rc = 1;\n    goto unwind;\n");
                break;
            default:
                put(b, "    ");
                slow(g, i, H);
                put(b, "\n");
                break;
            }
            nvm_xfer(m, fn, i, g->stk, &g->H, g->sl);
            if (fused) {
                i++;
                nvm_xfer(m, fn, i, g->stk, &g->H, g->sl);
            }
        }
        uint8_t last = fn->code[e - 1].op;
        if (!(last == NVM_OP_JMP || last == NVM_OP_RET || last == NVM_OP_HALT ||
              last == NVM_OP_THROW) &&
            e < fn->ninsn)
            put(b, "    goto L%" PRIu32 ";\n", e);
    }
    put(b, "unwind:\n");
    if (has_try) {
        put(b, "    if (rc == 1) {\n        switch (RT->catch_(vm, fr0)) {\n");
        for (uint32_t i = 0; i < fn->ninsn; i++) {
            const nvm_insn *in = &fn->code[i];
            if (in->op != NVM_OP_ENTER_TRY || f->blk_of[i] == UINT32_MAX ||
                f->blk_of[in->a] == UINT32_MAX)
                continue;
            bool dup = false;
            for (uint32_t j = 0; j < i && !dup; j++)
                dup = fn->code[j].op == NVM_OP_ENTER_TRY && f->blk_of[j] != UINT32_MAX &&
                      fn->code[j].a == in->a && f->blk_of[in->a] != UINT32_MAX;
            if (!dup)
                put(b, "        case %" PRIu32 ": goto L%" PRIu32 ";\n", in->a, in->a);
        }
        put(b, "        default: break;\n        }\n    }\n");
    }
    put(b, "    SYNC();\n    return rc;\n}\n");
}

nvm_status nvm_aot_emit(const nvm_module *m, char **out, size_t *len, nvm_error *err)
{
    *out = NULL;
    *len = 0;
    if (m == NULL || !m->verified)
        return nvm_error_set(err, NVM_E_USAGE, NULL, 0, 0, "the AOT tier needs a verified module");
    tb b;
    memset(&b, 0, sizeof b);
    char fp[NVM_AOT_FP_LEN + 1];
    nvm_aot_fingerprint(fp);
    uint64_t total = 0;
    for (uint32_t f = 0; f < m->nfuncs; f++)
        total += m->funcs[f].ninsn;
    put(&b, "/* NanoVM AOT: %" PRIu32 " functions, %" PRIu64 " instructions (generated) */\n",
        m->nfuncs, total);
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        put(&b, "#define %s %zu\n", layouts[i].name, layouts[i].value);
    for (size_t i = 0; i < sizeof prelude / sizeof prelude[0]; i++)
        put(&b, "%s", prelude[i]);
    for (uint32_t f = 0; f < m->nfuncs; f++)
        put(&b, "static int f%" PRIu32 "(struct nvm_vm *, nvm_value *, nvm_value *);\n", f);
    for (uint32_t f = 0; f < m->nfuncs && !b.oom; f++) {
        const nvm_func *fn = &m->funcs[f];
        nvm_fninfo fi;
        memset(&fi, 0, sizeof fi);
        bool ok = nvm_analyse(m, fn, &fi, NULL, NULL, NULL);
        gen g;
        memset(&g, 0, sizeof g);
        g.b = &b;
        g.m = m;
        g.fn = fn;
        g.fi = f;
        g.consumed = fn->consumed;
        g.W = fn->max_height + 1;
        g.S = fn->nslots;
        g.stk = malloc(g.W + 1);
        g.sl = malloc(g.S + 1);
        if (g.stk == NULL || g.sl == NULL)
            b.oom = true;
        else
            emit_fn(&g, &fi, ok);
        free(g.stk);
        free(g.sl);
        if (ok)
            nvm_fninfo_free(&fi);
    }
    put(&b, "\nstatic const nvm_aot_fn fns[%" PRIu32 "] = {", m->nfuncs + 1);
    for (uint32_t f = 0; f < m->nfuncs; f++)
        put(&b, "%sf%" PRIu32 ",", f % 8 == 0 ? "\n    " : " ", f);
    put(&b,
        "};\nstatic const nvm_aot_desc desc = {%uu, %" PRIu32 "u, \"%s\", fns, %" PRIu64 "u};\n",
        NVM_AOT_ABI, m->nfuncs, fp, total);
    put(&b, "__attribute__((visibility(\"default\"))) const nvm_aot_desc *nvm_aot_describe(void);\n"
            "const nvm_aot_desc *nvm_aot_describe(void)\n{\n    return &desc;\n}\n");
    if (b.oom) {
        free(b.p);
        return nvm_error_set(err, NVM_E_MEMORY, NULL, 0, 0, "AOT: out of memory");
    }
    *out = b.p;
    *len = b.len;
    return NVM_OK;
}
