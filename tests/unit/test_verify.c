/* test_verify.c - unit tests of the bytecode verifier (src/isa/verify.c).
 * Modules are built directly as structs (no assembler) with a counting allocator, so every test
 * also checks that verification leaks nothing and frees with the sizes it allocated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "isa/module.h"

/* ---- counting allocator ---- */

typedef struct counting {
    long long bytes;   /* outstanding bytes (by the sizes the callers report) */
    long long blocks;  /* outstanding blocks */
    long long calls;   /* allocations so far */
    long long fail_at; /* make this allocation fail (1-based); 0 = never */
} counting;

static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    counting *c = ud;
    if (nsize == 0) {
        if (ptr != NULL) {
            c->bytes -= (long long)osize;
            c->blocks--;
        }
        free(ptr);
        return NULL;
    }
    c->calls++;
    if (c->fail_at != 0 && c->calls == c->fail_at)
        return NULL;
    void *q = realloc(ptr, nsize);
    if (q == NULL)
        return NULL;
    if (ptr != NULL)
        c->bytes -= (long long)osize;
    else
        c->blocks++;
    c->bytes += (long long)nsize;
    return q;
}

/* ---- building modules by hand ---- */

#define OP(o)                                                                                      \
    {                                                                                              \
        .op = NVM_OP_##o                                                                           \
    }
#define OPA(o, x)                                                                                  \
    {                                                                                              \
        .op = NVM_OP_##o, .a = (uint32_t)(x)                                                       \
    }
#define OPB(o, x)                                                                                  \
    {                                                                                              \
        .op = NVM_OP_##o, .b = (uint8_t)(x)                                                        \
    }
#define OPAB(o, x, y)                                                                              \
    {                                                                                              \
        .op = NVM_OP_##o, .a = (uint32_t)(x), .b = (uint8_t)(y)                                    \
    }

typedef struct fdef {
    const char *name;
    int32_t argc; /* declared argc or -1 */
    uint32_t nslots;
    const nvm_insn *code;
    uint32_t n;
} fdef;

#define FN(nm, argc, slots, arr)                                                                   \
    {                                                                                              \
        nm, argc, slots, arr, (uint32_t)(sizeof arr / sizeof arr[0])                               \
    }

static counting g_count;

static char *dup_str(const nvm_module *m, const char *s)
{
    char *p = nvm_mod_alloc(m, strlen(s) + 1);
    assert_non_null(p);
    memcpy(p, s, strlen(s) + 1);
    return p;
}

/* Module with the given functions, one string constant "s" and one capability "io.print". Source
 * line of instruction i is 100 + i. */
static nvm_module *mk(const fdef *defs, uint32_t nf, uint32_t entry)
{
    nvm_config cfg;
    nvm_config_init(&cfg);
    cfg.alloc = count_alloc;
    cfg.alloc_ud = &g_count;
    nvm_module *m = nvm_module_new_empty(&cfg);
    assert_non_null(m);
    m->name = dup_str(m, "t.casm");
    m->nfuncs = nf;
    m->funcs = nvm_mod_alloc(m, nf * sizeof *m->funcs);
    assert_non_null(m->funcs);
    for (uint32_t i = 0; i < nf; i++) {
        nvm_func *f = &m->funcs[i];
        f->name = dup_str(m, defs[i].name);
        f->ninsn = defs[i].n;
        f->nslots = defs[i].nslots;
        f->declared_argc = defs[i].argc;
        if (f->ninsn > 0) {
            f->code = nvm_mod_alloc(m, f->ninsn * sizeof *f->code);
            f->lines = nvm_mod_alloc(m, f->ninsn * sizeof *f->lines);
            assert_non_null(f->code);
            assert_non_null(f->lines);
            memcpy(f->code, defs[i].code, f->ninsn * sizeof *f->code);
            for (uint32_t k = 0; k < f->ninsn; k++)
                f->lines[k] = 100 + k;
        }
    }
    m->entry = entry;
    m->nstrs = 1;
    m->strs = nvm_mod_alloc(m, sizeof *m->strs);
    assert_non_null(m->strs);
    m->strs[0].bytes = dup_str(m, "s");
    m->strs[0].len = 1;
    m->ncaps = 1;
    m->caps = nvm_mod_alloc(m, sizeof *m->caps);
    assert_non_null(m->caps);
    m->caps[0] = dup_str(m, "io.print");
    return m;
}

static void done(nvm_module *m)
{
    nvm_module_free(m);
    assert_int_equal(g_count.bytes, 0);
    assert_int_equal(g_count.blocks, 0);
}

static int setup(void **state)
{
    (void)state;
    memset(&g_count, 0, sizeof g_count);
    return 0;
}

/* Verify, expect rejection, and check that the message starts with `prefix`. */
static void expect_reject(const fdef *defs, uint32_t nf, uint32_t entry, const char *prefix)
{
    nvm_module *m = mk(defs, nf, entry);
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_status st = nvm_verify(m, &err);
    if (st != NVM_E_VERIFY || strncmp(err.message, prefix, strlen(prefix)) != 0)
        print_error("got status %d, message \"%s\"\nexpected prefix \"%s\"\n", (int)st, err.message,
                    prefix);
    assert_int_equal(st, NVM_E_VERIFY);
    assert_int_equal(err.status, NVM_E_VERIFY);
    assert_true(strncmp(err.message, prefix, strlen(prefix)) == 0);
    assert_false(m->verified);
    done(m);
}

static nvm_module *expect_ok(const fdef *defs, uint32_t nf, uint32_t entry)
{
    nvm_module *m = mk(defs, nf, entry);
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_status st = nvm_verify(m, &err);
    if (st != NVM_OK)
        print_error("unexpected rejection: %s\n", err.message);
    assert_int_equal(st, NVM_OK);
    assert_true(m->verified);
    return m;
}

/* ---- tests ---- */

static void test_underflow(void **state)
{
    (void)state;
    static const nvm_insn main_[] = {OPA(PUSH, 0), OPA(PUSH, 0), OP(ADD), OP(ADD), OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_)};
    nvm_module *m = mk(d, 1, 0);
    nvm_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(nvm_verify(m, &err), NVM_E_VERIFY);
    assert_string_equal(err.message, "verify: stack underflow: function main, instruction 3 (ADD) "
                                     "needs 2 values, 1 available (the entry function starts on "
                                     "an empty stack)");
    assert_int_equal(err.line, 103);
    assert_string_equal(err.file, "t.casm");
    done(m);
}

static void test_merge_mismatch(void **state)
{
    (void)state;
    static const nvm_insn main_[] = {OPB(PUSH_BOOL, 1), OPA(JZ, 3), OPA(PUSH, 1), OP(PUSH_NULL),
                                     OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_)};
    expect_reject(d, 1, 0,
                  "verify: stack height mismatch: function main, instruction 3 (PUSH_NULL)");

    /* the same shape balanced is fine */
    static const nvm_insn ok_[] = {OPB(PUSH_BOOL, 1), OPA(JZ, 4),    OPA(PUSH, 1),
                                   OP(POP),           OP(PUSH_NULL), OP(RET)};
    fdef d2[] = {FN("main", -1, 0, ok_)};
    nvm_module *m = expect_ok(d2, 1, 0);
    assert_int_equal(m->funcs[0].heights[4], 0);
    assert_int_equal(m->funcs[0].max_height, 1);
    done(m);
}

static void test_pick_too_deep(void **state)
{
    (void)state;
    static const nvm_insn bad[] = {OPA(PUSH, 1), OPA(PUSH, 2), OPA(PICK, 2), OP(RET)};
    fdef d[] = {FN("main", -1, 0, bad)};
    expect_reject(d, 1, 0,
                  "verify: stack underflow: function main, instruction 2 (PICK) needs 3 values, 2 "
                  "available");
    static const nvm_insn rbad[] = {OPA(PUSH, 1), OPA(ROLL, 1), OP(RET)};
    fdef d2[] = {FN("main", -1, 0, rbad)};
    expect_reject(d2, 1, 0, "verify: stack underflow: function main, instruction 1 (ROLL)");

    /* in a declared function the arguments count as available */
    static const nvm_insn okf[] = {OPA(PICK, 1), OPA(ROLL, 2), OP(RET)};
    static const nvm_insn okm[] = {OPA(PUSH, 1), OPA(PUSH, 2), OPA(CALL, 1), OP(RET)};
    fdef d3[] = {FN("main", -1, 0, okm), FN("f", 2, 0, okf)};
    nvm_module *m = expect_ok(d3, 2, 0);
    assert_int_equal(m->funcs[1].consumed, 2);
    assert_int_equal(m->funcs[1].max_height, 3);
    done(m);

    /* without a declaration, PICK depth is inferred as consumption */
    fdef d4[] = {FN("main", -1, 0, okm), FN("f", -1, 0, okf)};
    m = expect_ok(d4, 2, 0);
    assert_int_equal(m->funcs[1].consumed, 2);
    done(m);
}

static void test_bad_jump_target(void **state)
{
    (void)state;
    static const nvm_insn bad[] = {OPA(JMP, 99), OP(PUSH_NULL), OP(RET)};
    fdef d[] = {FN("main", -1, 0, bad)};
    expect_reject(d, 1, 0,
                  "verify: bad jump target: function main, instruction 0 (JMP) target 99 is "
                  "outside the function (3 instructions)");
    /* == ninsn is in range as an operand but means "falls off the end" */
    static const nvm_insn end[] = {OPB(PUSH_BOOL, 0), OPA(JNZ, 4), OP(PUSH_NULL), OP(RET)};
    fdef d2[] = {FN("main", -1, 0, end)};
    expect_reject(d2, 1, 0,
                  "verify: control falls off the end of the function: function main, "
                  "instruction 1 (JNZ) jumps to the end");
    static const nvm_insn try_[] = {OPA(ENTER_TRY, 5), OP(PUSH_NULL), OP(RET)};
    fdef d3[] = {FN("main", -1, 0, try_)};
    expect_reject(d3, 1, 0, "verify: bad jump target: function main, instruction 0 (ENTER_TRY)");
}

static void test_falls_off_end(void **state)
{
    (void)state;
    static const nvm_insn bad[] = {OPA(PUSH, 1), OP(POP)};
    fdef d[] = {FN("main", -1, 0, bad)};
    expect_reject(d, 1, 0,
                  "verify: control falls off the end of the function: function main, "
                  "instruction 1 (POP)");
    fdef d2[] = {{"main", -1, 0, NULL, 0}};
    expect_reject(d2, 1, 0, "verify: control falls off the end of the function: function main");
    /* an uncalled function is checked too */
    static const nvm_insn ok[] = {OP(PUSH_NULL), OP(RET)};
    fdef d3[] = {FN("main", -1, 0, ok), FN("g", -1, 0, bad)};
    expect_reject(d3, 2, 0, "verify: control falls off the end of the function: function g");
}

static const nvm_insn fact_code[] = {
    OPA(STORE, 0), OPA(LOAD, 0), OPA(PUSH, 1), OP(LE),  OPA(JZ, 7),   OPA(PUSH, 1), OP(RET),
    OPA(LOAD, 0),  OPA(LOAD, 0), OPA(PUSH, 1), OP(SUB), OPA(CALL, 1), OP(MUL),      OP(RET),
};

static void test_recursion_inferred(void **state)
{
    (void)state;
    static const nvm_insn main_[] = {OPA(PUSH, 5), OPA(CALL, 1), OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_), FN("fact", -1, 1, fact_code)};
    nvm_module *m = expect_ok(d, 2, 0);
    const nvm_func *fact = &m->funcs[1];
    assert_int_equal(fact->consumed, 1);
    assert_true(fact->returns);
    assert_int_equal(fact->max_height, 3);
    static const int32_t want[] = {0, -1, 0, 1, 0, -1, 0, -1, 0, 1, 2, 1, 1, 0};
    for (uint32_t i = 0; i < fact->ninsn; i++)
        assert_int_equal(fact->heights[i], want[i]);
    assert_int_equal(fact->heights[fact->ninsn], INT32_MIN);
    assert_int_equal(m->funcs[0].consumed, 0);
    assert_true(m->funcs[0].returns);
    assert_int_equal(m->funcs[0].heights[2], 1);
    assert_int_equal(m->funcs[0].max_height, 1);
    done(m);

    /* same with fact first and main as the entry at index 1 */
    static const nvm_insn main2[] = {OPA(PUSH, 5), OPA(CALL, 0), OP(RET)};
    static const nvm_insn fact2[] = {
        OPA(STORE, 0), OPA(LOAD, 0), OPA(PUSH, 1), OP(LE),  OPA(JZ, 7),   OPA(PUSH, 1), OP(RET),
        OPA(LOAD, 0),  OPA(LOAD, 0), OPA(PUSH, 1), OP(SUB), OPA(CALL, 0), OP(MUL),      OP(RET),
    };
    fdef d2[] = {FN("fact", -1, 1, fact2), FN("main", -1, 0, main2)};
    m = expect_ok(d2, 2, 1);
    assert_int_equal(m->funcs[0].consumed, 1);
    assert_true(m->funcs[0].returns);
    done(m);
}

static void test_mutual_recursion(void **state)
{
    (void)state;
    /* even(n) = n == 0 ? true : odd(n - 1); odd(n) = n == 0 ? false : even(n - 1) */
    static const nvm_insn main_[] = {OPA(PUSH, 10), OPA(CALL, 1), OP(RET)};
    static const nvm_insn evn[] = {OPA(STORE, 0),     OPA(LOAD, 0), OPA(JZ, 8),   OPA(LOAD, 0),
                                   OPA(PUSH, 1),      OP(SUB),      OPA(CALL, 2), OP(RET),
                                   OPB(PUSH_BOOL, 1), OP(RET)};
    static const nvm_insn od[] = {OPA(STORE, 0),     OPA(LOAD, 0), OPA(JZ, 8),   OPA(LOAD, 0),
                                  OPA(PUSH, 1),      OP(SUB),      OPA(CALL, 1), OP(RET),
                                  OPB(PUSH_BOOL, 0), OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_), FN("even", -1, 1, evn), FN("odd", -1, 1, od)};
    nvm_module *m = expect_ok(d, 3, 0);
    assert_int_equal(m->funcs[1].consumed, 1);
    assert_int_equal(m->funcs[2].consumed, 1);
    assert_true(m->funcs[1].returns);
    assert_true(m->funcs[2].returns);
    assert_int_equal(m->funcs[1].heights[7], 0);
    done(m);

    /* effects that need two rounds: g (analysed first) calls f before f's effect is known;
     * f takes 1 and calls g, g takes 2 and calls f unless its condition is false */
    static const nvm_insn f3[] = {OP(POP), OPA(PUSH, 1), OPA(PUSH, 2), OPA(CALL, 2), OP(RET)};
    static const nvm_insn g3[] = {OP(POP),      OP(POP),      OPB(PUSH_BOOL, 0), OPA(JZ, 11),
                                  OPA(PUSH, 1), OPA(PUSH, 2), OPA(PUSH, 3),      OPA(CALL, 1),
                                  OP(POP),      OP(POP),      OP(POP),           OP(PUSH_NULL),
                                  OP(RET)};
    static const nvm_insn m3[] = {OPA(PUSH, 1), OPA(CALL, 1), OP(RET)};
    fdef d3[] = {FN("main", -1, 0, m3), FN("f", -1, 0, f3), FN("g", -1, 0, g3)};
    m = expect_ok(d3, 3, 0);
    assert_int_equal(m->funcs[1].consumed, 1);
    assert_int_equal(m->funcs[2].consumed, 2);
    assert_true(m->funcs[1].returns);
    assert_true(m->funcs[2].returns);
    done(m);
}

static void test_never_returning(void **state)
{
    (void)state;
    static const nvm_insn thrower[] = {OPA(PUSH_STR, 0), OP(THROW)};
    static const nvm_insn looper[] = {OP(NOP), OPA(JMP, 0)};
    static const nvm_insn halter[] = {OP(POP), OP(HALT)};
    static const nvm_insn selfrec[] = {OPA(CALL, 4), OP(ADD), OP(RET)};
    /* main calls the thrower; what follows is unreachable; the last instruction is a CALL of a
     * never-returning function, which does not fall off the end */
    static const nvm_insn main_[] = {OPB(PUSH_BOOL, 1), OPA(JZ, 4),   OPA(CALL, 1), OP(ADD),
                                     OPA(PUSH, 1),      OPA(CALL, 3), OPA(CALL, 2)};
    fdef d[] = {FN("main", -1, 0, main_), FN("thrower", -1, 0, thrower),
                FN("looper", -1, 0, looper), FN("halter", -1, 0, halter),
                FN("selfrec", -1, 0, selfrec)};
    nvm_module *m = expect_ok(d, 5, 0);
    for (uint32_t i = 1; i <= 4; i++)
        assert_false(m->funcs[i].returns);
    assert_false(m->funcs[0].returns);
    assert_int_equal(m->funcs[3].consumed, 1);
    assert_int_equal(m->funcs[0].heights[3], INT32_MIN); /* after CALL thrower */
    assert_int_equal(m->funcs[0].heights[5], 1);
    assert_int_equal(m->funcs[0].heights[6], INT32_MIN); /* after CALL halter */
    assert_int_equal(m->funcs[4].heights[1], INT32_MIN);
    done(m);
}

static void test_unbounded_consumption(void **state)
{
    (void)state;
    static const nvm_insn f[] = {OP(POP), OPA(CALL, 1), OP(RET)};
    static const nvm_insn main_[] = {OPA(CALL, 1), OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_), FN("f", -1, 0, f)};
    expect_reject(d, 2, 0, "verify: unbounded stack consumption: function f, instruction 1 (CALL)");

    /* mutual: f pops and calls g, g calls f */
    static const nvm_insn f2[] = {OP(POP), OPA(CALL, 2), OP(RET)};
    static const nvm_insn g2[] = {OPA(CALL, 1), OP(RET)};
    fdef d2[] = {FN("main", -1, 0, main_), FN("f", -1, 0, f2), FN("g", -1, 0, g2)};
    expect_reject(d2, 3, 0, "verify: unbounded stack consumption");

    /* a hostile NEW_ARRAY count: underflow in the entry function, unbounded elsewhere */
    static const nvm_insn na[] = {OPA(NEW_ARRAY, 0xFFFFFFFFu), OP(RET)};
    fdef d3[] = {FN("main", -1, 0, na)};
    expect_reject(d3, 1, 0,
                  "verify: stack underflow: function main, instruction 0 (NEW_ARRAY) needs "
                  "4294967295 values, 0 available");
    fdef d4[] = {FN("main", -1, 0, main_), FN("f", -1, 0, na)};
    expect_reject(d4, 2, 0,
                  "verify: unbounded stack consumption: function f, instruction 0 (NEW_ARRAY)");
    static const nvm_insn pk[] = {OPA(PICK, 0xFFFFFFFFu), OP(RET)};
    fdef d5[] = {FN("main", -1, 0, main_), FN("f", -1, 0, pk)};
    expect_reject(d5, 2, 0,
                  "verify: unbounded stack consumption: function f, instruction 0 (PICK)");
}

static void test_handler_height(void **state)
{
    (void)state;
    static const nvm_insn main_[] = {OPA(PUSH, 7), OPA(ENTER_TRY, 5), OPA(PUSH, 1), OP(EXIT_TRY),
                                     OP(THROW),    OP(ADD),           OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_)};
    nvm_module *m = expect_ok(d, 1, 0);
    static const int32_t want[] = {0, 1, 1, 2, 2, 2, 1, INT32_MIN};
    for (uint32_t i = 0; i <= 7; i++)
        assert_int_equal(m->funcs[0].heights[i], want[i]);
    assert_int_equal(m->funcs[0].max_height, 2);
    done(m);

    /* the handler is also reached by fall-through with a different height */
    static const nvm_insn bad[] = {OPA(ENTER_TRY, 3), OPA(PUSH, 1), OPA(PUSH, 2), OP(RET)};
    fdef d2[] = {FN("main", -1, 0, bad)};
    expect_reject(d2, 1, 0, "verify: stack height mismatch: function main, instruction 3 (RET)");
}

static void test_declared_argc(void **state)
{
    (void)state;
    static const nvm_insn main_[] = {OPA(PUSH, 1), OPA(PUSH, 2), OPA(CALL, 1), OP(RET)};
    static const nvm_insn over[] = {OP(POP), OP(POP), OP(PUSH_NULL), OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_), FN("f", 1, 0, over)};
    expect_reject(d, 2, 0,
                  "verify: stack underflow: function f, instruction 1 (POP) needs 1 values, 0 "
                  "available (the function declares its argument count)");

    /* a declaration larger than the use is kept */
    static const nvm_insn under[] = {OPA(STORE, 0), OP(PUSH_NULL), OP(RET)};
    static const nvm_insn main3[] = {OPA(PUSH, 1), OPA(PUSH, 2), OPA(PUSH, 3), OPA(CALL, 1),
                                     OP(RET)};
    fdef d2[] = {FN("main", -1, 0, main3), FN("f", 3, 1, under)};
    nvm_module *m = expect_ok(d2, 2, 0);
    assert_int_equal(m->funcs[1].consumed, 3);
    assert_int_equal(m->funcs[0].heights[4], 1);
    done(m);

    fdef d3[] = {FN("main", -1, 0, main_), {"f", -2, 0, under, 3}};
    expect_reject(d3, 2, 0, "verify: function f declares a bad argument count");
}

static void test_entry_consumes_nothing(void **state)
{
    (void)state;
    static const nvm_insn main_[] = {OPA(STORE, 0), OP(PUSH_NULL), OP(RET)};
    fdef d[] = {FN("main", -1, 1, main_)};
    expect_reject(d, 1, 0,
                  "verify: stack underflow: function main, instruction 0 (STORE) needs 1 values, "
                  "0 available");
    fdef d2[] = {FN("main", 1, 1, main_)};
    expect_reject(d2, 1, 0, "verify: entry function takes arguments");
    /* RET needs its result */
    static const nvm_insn r[] = {OP(RET)};
    fdef d3[] = {FN("main", -1, 0, r)};
    expect_reject(d3, 1, 0, "verify: stack underflow: function main, instruction 0 (RET)");
    /* the entry function called recursively consumes nothing */
    static const nvm_insn rec[] = {OPB(PUSH_BOOL, 0), OPA(JZ, 4),    OPA(CALL, 0),
                                   OP(POP),           OP(PUSH_NULL), OP(RET)};
    fdef d4[] = {FN("main", -1, 0, rec)};
    nvm_module *m = expect_ok(d4, 1, 0);
    assert_int_equal(m->funcs[0].consumed, 0);
    assert_true(m->funcs[0].returns);
    done(m);
}

static void test_unreachable_allowed(void **state)
{
    (void)state;
    /* after RET: garbage that would underflow and a trailing non-terminator */
    static const nvm_insn main_[] = {OP(PUSH_NULL), OP(RET), OP(ADD), OP(ADD),
                                     OPA(JMP, 6),   OP(POP), OP(ADD)};
    fdef d[] = {FN("main", -1, 0, main_)};
    nvm_module *m = expect_ok(d, 1, 0);
    for (uint32_t i = 2; i <= 7; i++)
        assert_int_equal(m->funcs[0].heights[i], INT32_MIN);
    done(m);
}

static void test_idempotent(void **state)
{
    (void)state;
    static const nvm_insn main_[] = {OPA(PUSH, 5), OPA(CALL, 1), OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_), FN("fact", -1, 1, fact_code)};
    nvm_module *m = expect_ok(d, 2, 0);
    long long bytes = g_count.bytes;
    int32_t *h = m->funcs[1].heights;
    nvm_error err;
    assert_int_equal(nvm_verify(m, &err), NVM_OK);
    assert_int_equal(nvm_verify(m, &err), NVM_OK);
    assert_int_equal(g_count.bytes, bytes);
    assert_ptr_equal(m->funcs[1].heights, h);
    assert_int_equal(m->funcs[1].consumed, 1);
    assert_true(m->funcs[1].returns);
    assert_int_equal(m->funcs[1].max_height, 3);
    assert_true(m->verified);
    assert_int_equal(nvm_module_verify(m, &err), NVM_OK);
    done(m);
}

static void test_bad_operands(void **state)
{
    (void)state;
    static const nvm_insn s[] = {OPA(PUSH_STR, 1), OP(RET)};
    fdef d1[] = {FN("main", -1, 0, s)};
    expect_reject(d1, 1, 0,
                  "verify: bad operand: function main, instruction 0 (PUSH_STR) string index 1 "
                  "out of range (1 strings)");
    static const nvm_insn sl[] = {OPA(LOAD, 2), OP(RET)};
    fdef d2[] = {FN("main", -1, 2, sl)};
    expect_reject(d2, 1, 0, "verify: bad operand: function main, instruction 0 (LOAD) slot 2");
    static const nvm_insn fn[] = {OPA(CALL, 1), OP(RET)};
    fdef d3[] = {FN("main", -1, 0, fn)};
    expect_reject(d3, 1, 0, "verify: bad operand: function main, instruction 0 (CALL) function");
    static const nvm_insn cp[] = {OPAB(CAP_CALL, 1, 0), OP(RET)};
    fdef d4[] = {FN("main", -1, 0, cp)};
    expect_reject(d4, 1, 0, "verify: bad operand: function main, instruction 0 (CAP_CALL)");
    static const nvm_insn ct[] = {OPA(PUSH, 1), OPB(CAST, 4), OP(RET)};
    fdef d5[] = {FN("main", -1, 0, ct)};
    expect_reject(d5, 1, 0, "verify: bad operand: function main, instruction 1 (CAST)");
    static const nvm_insn bl[] = {OPB(PUSH_BOOL, 2), OP(RET)};
    fdef d6[] = {FN("main", -1, 0, bl)};
    expect_reject(d6, 1, 0, "verify: bad operand: function main, instruction 0 (PUSH_BOOL)");
    static const nvm_insn op[] = {{.op = 0xFF}, OP(RET)};
    fdef d7[] = {FN("main", -1, 0, op)};
    expect_reject(d7, 1, 0,
                  "verify: bad opcode: function main, instruction 0 (opcode 0xFF) byte 0xFF is not "
                  "an assigned opcode");
    static const nvm_insn ok[] = {OP(PUSH_NULL), OP(RET)};
    fdef d8[] = {FN("main", -1, 0, ok)};
    expect_reject(d8, 1, 1, "verify: bad entry function");
    fdef d9[] = {FN("main", -1, 1u << 20, ok)};
    expect_reject(d9, 1, 0, "verify: function main uses too many slots");

    /* CAP_CALL pops its argc */
    static const nvm_insn cc[] = {OPA(PUSH, 1), OPAB(CAP_CALL, 0, 2), OP(RET)};
    fdef d10[] = {FN("main", -1, 0, cc)};
    expect_reject(d10, 1, 0,
                  "verify: stack underflow: function main, instruction 1 (CAP_CALL) needs 2 "
                  "values, 1 available");
}

static void test_call_effects(void **state)
{
    (void)state;
    /* g consumes 3 and returns; main keeps one value below the arguments; io.print pops its
     * argument and pushes nothing */
    static const nvm_insn g[] = {OP(ADD), OP(ADD), OP(RET)};
    static const nvm_insn main_[] = {OPA(PUSH, 0), OPA(PUSH, 1),         OPA(PUSH, 2),
                                     OPA(PUSH, 3), OPA(CALL, 1),         OP(ADD),
                                     OP(DUP),      OPAB(CAP_CALL, 0, 1), OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_), FN("g", -1, 0, g)};
    nvm_module *m = expect_ok(d, 2, 0);
    assert_int_equal(m->funcs[1].consumed, 3);
    assert_int_equal(m->funcs[1].max_height, 3);
    assert_int_equal(m->funcs[0].heights[5], 2);
    assert_int_equal(m->funcs[0].heights[7], 2);
    assert_int_equal(m->funcs[0].heights[8], 1);
    assert_int_equal(m->funcs[0].max_height, 4);
    done(m);

    /* CAP_CALL of io.print with nothing left for RET: underflow */
    static const nvm_insn pr[] = {OPA(PUSH, 1), OPA(PUSH, 2), OPAB(CAP_CALL, 0, 2), OP(RET)};
    fdef dp[] = {FN("main", -1, 0, pr)};
    expect_reject(dp, 1, 0,
                  "verify: stack underflow: function main, instruction 3 (RET) needs 1 values, 0 "
                  "available");

    /* the same code calling a capability not listed in capabilities.def (one an embedding host
     * defines): it pushes exactly one result */
    memset(&g_count, 0, sizeof g_count);
    m = mk(dp, 1, 0);
    nvm_mod_free(m, m->caps[0], strlen(m->caps[0]) + 1);
    m->caps[0] = dup_str(m, "host.add");
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_status st = nvm_verify(m, &err);
    if (st != NVM_OK)
        print_error("unexpected rejection: %s\n", err.message);
    assert_int_equal(st, NVM_OK);
    assert_int_equal(m->funcs[0].heights[2], 2);
    assert_int_equal(m->funcs[0].heights[3], 1);
    assert_int_equal(m->funcs[0].max_height, 2);
    done(m);
}

static void test_many_pushes(void **state)
{
    (void)state;
    const uint32_t n = 1000000;
    nvm_insn *code = calloc(n + 1, sizeof *code);
    assert_non_null(code);
    for (uint32_t i = 0; i < n; i++) {
        code[i].op = NVM_OP_PUSH;
        code[i].k.i = i;
    }
    code[n].op = NVM_OP_RET;
    fdef d[] = {{"main", -1, 0, code, n + 1}};
    nvm_module *m = expect_ok(d, 1, 0);
    assert_int_equal(m->funcs[0].max_height, n);
    assert_int_equal(m->funcs[0].heights[n], (int32_t)n);
    done(m);
    free(code);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    static const nvm_insn main_[] = {OPA(PUSH, 5), OPA(CALL, 1), OP(RET)};
    fdef d[] = {FN("main", -1, 0, main_), FN("fact", -1, 1, fact_code)};
    bool ok = false;
    for (long long k = 1; !ok && k < 100; k++) {
        memset(&g_count, 0, sizeof g_count);
        nvm_module *m = mk(d, 2, 0);
        g_count.fail_at = g_count.calls + k;
        nvm_error err;
        nvm_status st = nvm_verify(m, &err);
        g_count.fail_at = 0;
        if (st == NVM_OK) {
            ok = true;
        } else {
            assert_int_equal(st, NVM_E_MEMORY);
            assert_false(m->verified);
            /* a later call succeeds */
            assert_int_equal(nvm_verify(m, &err), NVM_OK);
        }
        done(m);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_underflow, setup),
        cmocka_unit_test_setup(test_merge_mismatch, setup),
        cmocka_unit_test_setup(test_pick_too_deep, setup),
        cmocka_unit_test_setup(test_bad_jump_target, setup),
        cmocka_unit_test_setup(test_falls_off_end, setup),
        cmocka_unit_test_setup(test_recursion_inferred, setup),
        cmocka_unit_test_setup(test_mutual_recursion, setup),
        cmocka_unit_test_setup(test_never_returning, setup),
        cmocka_unit_test_setup(test_unbounded_consumption, setup),
        cmocka_unit_test_setup(test_handler_height, setup),
        cmocka_unit_test_setup(test_declared_argc, setup),
        cmocka_unit_test_setup(test_entry_consumes_nothing, setup),
        cmocka_unit_test_setup(test_unreachable_allowed, setup),
        cmocka_unit_test_setup(test_idempotent, setup),
        cmocka_unit_test_setup(test_bad_operands, setup),
        cmocka_unit_test_setup(test_call_effects, setup),
        cmocka_unit_test_setup(test_many_pushes, setup),
        cmocka_unit_test_setup(test_alloc_failure, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
