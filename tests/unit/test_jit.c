/* test_jit.c - the JIT tier (x86-64): code and constant pool mappings (never writable and
 * executable at once, no program constant in executable memory), gas parity with the interpreter
 * at every limit, the code cache shared by runs, deep recursion, exceptions through compiled
 * frames, deoptimisation of float speculation, slots carried in registers around loops (type
 * changes, gas exhaustion, calls, handlers, arrays that grow or are replaced, collections),
 * division by constants, field values read in place, the map lookup cache, and compile time
 * (reported). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nanovm.h"
#ifdef NVM_HAVE_JIT
#include "tier/jit/jit.h"

static nvm_module *load(const char *src)
{
    nvm_module *m = NULL;
    nvm_error err;
    nvm_status st = nvm_module_load(NULL, (const uint8_t *)src, strlen(src), "t.casm", &m, &err);
    if (st != NVM_OK)
        fail_msg("load: %s", err.message);
    return m;
}

/* The permissions field of the /proc/self/maps line containing p ("r-xp", ...). */
static void perms_of(const void *p, char out[5])
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    strcpy(out, "????");
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        char perm[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perm) == 3 && a >= lo && a < hi) {
            memcpy(out, perm, 5);
            break;
        }
    }
    fclose(f);
}

static void test_mappings_and_constants(void **state)
{
    (void)state;
    nvm_module *m = load(".func main\n"
                         "    PUSH 4702111234474983745\n" /* 0x4142434445464748 */
                         "    PUSH 1\n"
                         "    ADD\n"
                         "    STORE 0\n"
                         "    PUSH_F64 3.14159265358979\n"
                         "    PUSH_F64 1.5\n"
                         "    MUL\n"
                         "    STORE 1\n"
                         "    HALT\n");
    nvm_jit_blob *b = NULL;
    nvm_error err;
    assert_int_equal(nvm_jit_compile(m, &b, &err), NVM_OK);
    char p[5];
    perms_of(b->code, p);
    assert_string_equal(p, "r-xp");
    perms_of(b->pool, p);
    assert_string_equal(p, "r--p");
    int64_t k = 4702111234474983745;
    double f = 3.14159265358979;
    assert_null(memmem(b->code, b->size, &k, 8));
    assert_null(memmem(b->code, b->size, &f, 8));
    /* the four most significant bytes of each are not in the code either */
    assert_null(memmem(b->code, b->size, (const char *)&k + 4, 4));
    assert_non_null(memmem(b->pool, b->pool_map_size, &k, 8));
    assert_non_null(memmem(b->pool, b->pool_map_size, &f, 8));
    nvm_jit_blob_free(b);
    nvm_module_free(m);
}

typedef struct outcome {
    nvm_status st;
    int64_t gas;
    char msg[600];
} outcome;

static outcome run_cfg(const nvm_module *m, nvm_tier tier, int64_t gas, uint32_t max_depth,
                       nvm_code_cache *cache, bool gc_stress)
{
    nvm_config cfg;
    nvm_config_init(&cfg);
    cfg.gas = gas;
    cfg.gc_stress = gc_stress;
    if (max_depth != 0)
        cfg.max_depth = max_depth;
    cfg.code_cache = cache;
    outcome o;
    memset(&o, 0, sizeof o);
    nvm_error err;
    memset(&err, 0, sizeof err);
    o.st = nvm_execute(&cfg, m, NULL, tier, false, &o.gas, &err);
    if (o.st != NVM_OK)
        snprintf(o.msg, sizeof o.msg, "%s", err.message);
    return o;
}

static outcome run(const nvm_module *m, nvm_tier tier, int64_t gas, uint32_t max_depth,
                   nvm_code_cache *cache)
{
    return run_cfg(m, tier, gas, max_depth, cache, false);
}

static void same(const nvm_module *m, int64_t gas, uint32_t depth)
{
    outcome a = run(m, NVM_TIER_INTERP, gas, depth, NULL);
    outcome b = run(m, NVM_TIER_JIT, gas, depth, NULL);
    if (a.st != b.st || a.gas != b.gas || strcmp(a.msg, b.msg) != 0)
        fail_msg("gas %lld: interp %d %lld \"%s\" / jit %d %lld \"%s\"", (long long)gas, a.st,
                 (long long)a.gas, a.msg, b.st, (long long)b.gas, b.msg);
}

/* The same outcome on both tiers with a collection at every allocation. */
static void same_gc_stress(const nvm_module *m)
{
    outcome a = run_cfg(m, NVM_TIER_INTERP, -1, 0, NULL, true);
    outcome b = run_cfg(m, NVM_TIER_JIT, -1, 0, NULL, true);
    if (a.st != b.st || a.gas != b.gas || strcmp(a.msg, b.msg) != 0)
        fail_msg("gc stress: interp %d %lld \"%s\" / jit %d %lld \"%s\"", a.st, (long long)a.gas,
                 a.msg, b.st, (long long)b.gas, b.msg);
}

/* Loads src, checks the uncaught result `expect` (NULL: not checked), and compares both tiers
 * without a limit, at every gas limit up to the whole run (every `step`-th when step > 1) and
 * under a collection at every allocation. */
static void same_everywhere(const char *src, const char *expect, int64_t step)
{
    nvm_module *m = load(src);
    outcome full = run(m, NVM_TIER_INTERP, -1, 0, NULL);
    if (expect != NULL)
        assert_string_equal(full.msg, expect);
    same(m, -1, 0);
    for (int64_t g = 0; g <= full.gas + 2; g += step)
        same(m, g, 0);
    same_gc_stress(m);
    nvm_module_free(m);
}

/* A loop with calls, a caught error and a result thrown at the end (the message carries it). */
static const char *loop_src = ".func main\n"
                              "    PUSH 0\n    STORE 0\n    PUSH 0\n    STORE 1\n"
                              "top:\n"
                              "    LOAD 0\n    PUSH 40\n    LT\n    JZ done\n"
                              "    LOAD 0\n    CALL sq\n    LOAD 1\n    ADD\n    STORE 1\n"
                              "    ENTER_TRY h\n    LOAD 0\n    PUSH 0\n    DIV\n    POP\n"
                              "    EXIT_TRY\n    JMP next\n"
                              "h:\n    POP\n"
                              "next:\n    LOAD 0\n    PUSH 1\n    ADD\n    STORE 0\n    JMP top\n"
                              "done:\n    LOAD 1\n    THROW\n"
                              ".func sq 1\n    STORE 0\n    LOAD 0\n    LOAD 0\n    MUL\n    RET\n";

static void test_gas_parity(void **state)
{
    (void)state;
    nvm_module *m = load(loop_src);
    outcome full = run(m, NVM_TIER_INTERP, -1, 0, NULL);
    assert_int_equal(full.st, NVM_E_PROGRAM);
    assert_string_equal(full.msg, "uncaught exception: 20540");
    same(m, -1, 0);
    for (int64_t g = 0; g <= full.gas + 2; g++)
        same(m, g, 0);
    nvm_module_free(m);
}

static void test_cache_shared(void **state)
{
    (void)state;
    nvm_code_cache *c = NULL;
    assert_int_equal(nvm_code_cache_new(&c), NVM_OK);
    nvm_module *m = load(loop_src);
    nvm_module *m2 = load(".func main\n    PUSH 7\n    THROW\n");
    outcome a = run(m, NVM_TIER_JIT, -1, 0, c);
    outcome b = run(m, NVM_TIER_JIT, -1, 0, c);
    outcome d = run(m2, NVM_TIER_JIT, -1, 0, c);
    assert_string_equal(a.msg, b.msg);
    assert_string_equal(d.msg, "uncaught exception: 7");
    nvm_code_stats s;
    nvm_code_cache_stats(c, &s);
    assert_int_equal(s.modules, 2);
    assert_int_equal(s.hits, 1);
    assert_true(s.code_bytes > 0);
    assert_int_equal(s.insns, 35); /* 33 + 2 instructions: each module compiled once */
    nvm_module_free(m);
    nvm_module_free(m2);
    nvm_code_cache_free(c);
}

static const char *rec_src = ".func main\n    PUSH 50000\n    CALL down\n    THROW\n"
                             ".func down 1\n    STORE 0\n    LOAD 0\n    PUSH 0\n    EQ\n"
                             "    JZ more\n    PUSH 0\n    RET\n"
                             "more:\n    LOAD 0\n    PUSH 1\n    SUB\n    CALL down\n"
                             "    PUSH 1\n    ADD\n    RET\n";

static void test_deep_recursion(void **state)
{
    (void)state;
    nvm_module *m = load(rec_src);
    outcome a = run(m, NVM_TIER_JIT, -1, 0, NULL);
    assert_string_equal(a.msg, "uncaught exception: 50000");
    same(m, -1, 0);
    same(m, -1, 1000); /* depth limit: same error, same gas */
    same(m, 123457, 0);
    nvm_module_free(m);
}

/* A throw three compiled frames down, caught in main; then a throw caught by the same frame. */
static void test_throw_through_frames(void **state)
{
    (void)state;
    nvm_module *m = load(".func main\n    ENTER_TRY h\n    PUSH 3\n    CALL f\n    POP\n"
                         "    EXIT_TRY\n    PUSH 0\n    THROW\n"
                         "h:\n    PUSH 100\n    ADD\n    THROW\n"
                         ".func f 1\n    STORE 0\n    LOAD 0\n    PUSH 0\n    EQ\n    JZ r\n"
                         "    PUSH 42\n    THROW\n"
                         "r:\n    LOAD 0\n    PUSH 1\n    SUB\n    CALL f\n    RET\n");
    outcome a = run(m, NVM_TIER_JIT, -1, 0, NULL);
    assert_string_equal(a.msg, "uncaught exception: 142");
    same(m, -1, 0);
    for (int64_t g = 0; g < 60; g++)
        same(m, g, 0);
    nvm_module_free(m);
}

/* Float speculation: the same function gets floats, then ints, then a string, then floats. */
static void test_speculation_fallback(void **state)
{
    (void)state;
    nvm_module *m = load(".func main\n"
                         "    PUSH_F64 1.5\n    PUSH_F64 2.25\n    CALL f\n"
                         "    PUSH 3\n    PUSH 4\n    CALL f\n    ADD\n"
                         "    STORE 0\n    PUSH_STR \"a\"\n    PUSH 1\n    CALL f\n"
                         "    LOAD 0\n    ADD\n"
                         "    PUSH_F64 0.5\n    PUSH_F64 0.25\n    CALL f\n    ADD\n    THROW\n"
                         ".func f 2\n    STORE 0\n    STORE 1\n    LOAD 0\n    LOAD 1\n    ADD\n"
                         "    PUSH_F64 2.0\n    MUL\n    LOAD 0\n    LOAD 1\n    SUB\n    ADD\n"
                         "    RET\n");
    same(m, -1, 0);
    for (int64_t g = 0; g < 80; g++)
        same(m, g, 0);
    nvm_module_free(m);
}

/* Nested loops whose int slots live in registers; exhaustion at every instruction of them;
 * division and remainder by constants (powers of two or not) of negative and positive values. */
static void test_home_int_loops(void **state)
{
    (void)state;
    same_everywhere(".func main\n"
                    "    PUSH 0\n    STORE 0\n    PUSH 0\n    STORE 1\n"
                    "outer:\n    LOAD 1\n    PUSH 24\n    LT\n    JZ done\n"
                    "    PUSH 0\n    STORE 2\n"
                    "inner:\n    LOAD 2\n    LOAD 1\n    LT\n    JZ next\n"
                    "    PUSH_STR \"ab\"\n    STR_TO_UPPER\n    POP\n"
                    "    LOAD 0\n    LOAD 2\n    LOAD 1\n    MUL\n    ADD\n"
                    "    LOAD 2\n    PUSH 11\n    SUB\n    PUSH 3\n    DIV\n    ADD\n"
                    "    LOAD 2\n    PUSH 11\n    SUB\n    PUSH 4\n    MOD\n    ADD\n"
                    "    LOAD 2\n    PUSH 13\n    SUB\n    PUSH 8\n    DIV\n    ADD\n"
                    "    PUSH 1000003\n    MOD\n    STORE 0\n"
                    "    LOAD 2\n    PUSH 1\n    ADD\n    STORE 2\n    JMP inner\n"
                    "next:\n    LOAD 1\n    PUSH 1\n    ADD\n    STORE 1\n    JMP outer\n"
                    "done:\n    LOAD 0\n    THROW\n",
                    NULL, 1);
    /* division of extreme values by constants: the unsigned fast path and the signed one */
    same_everywhere(
        ".func main\n    PUSH 0\n    STORE 0\n"
        "    PUSH 9223372036854775807\n    PUSH 1000000007\n    DIV\n    STORE 0\n"
        "    LOAD 0\n    PUSH -9223372036854775807\n    PUSH 7\n    MOD\n    ADD\n"
        "    PUSH -9223372036854775807\n    PUSH 4611686018427387904\n    DIV\n    ADD\n"
        "    PUSH 9223372036854775807\n    PUSH 4611686018427387904\n    MOD\n"
        "    PUSH 4611686018427387905\n    DIV\n    ADD\n"
        "    PUSH -1\n    PUSH 2\n    DIV\n    ADD\n    PUSH -1\n    PUSH 2\n    MOD\n"
        "    ADD\n    THROW\n",
        NULL, 1);
}

/* A slot that changes type inside a loop (int, float, str), a float slot whose speculation fails
 * in the middle of its loop, and a loop slot stored before its first read each iteration. */
static void test_home_type_changes(void **state)
{
    (void)state;
    same_everywhere(
        ".func main\n    PUSH 0\n    STORE 0\n    PUSH 0\n    STORE 1\n"
        "top:\n    LOAD 1\n    PUSH 12\n    LT\n    JZ done\n"
        "    LOAD 1\n    PUSH 4\n    EQ\n    JZ a\n    PUSH_F64 0.5\n    STORE 0\n"
        "a:\n    LOAD 1\n    PUSH 8\n    EQ\n    JZ b\n    PUSH_STR \"s\"\n    STORE 0\n"
        "b:\n    LOAD 0\n    LOAD 1\n    ADD\n    STORE 0\n"
        "    LOAD 1\n    PUSH 1\n    ADD\n    STORE 1\n    JMP top\n"
        "done:\n    LOAD 0\n    THROW\n",
        "uncaught exception: s891011", 1);
    same_everywhere(".func main\n    PUSH_F64 0.0\n    STORE 0\n    PUSH 0\n    STORE 1\n"
                    "    PUSH_F64 0.0\n    STORE 2\n"
                    "loop:\n    LOAD 1\n    PUSH 50\n    LT\n    JZ done\n"
                    "    LOAD 0\n    LOAD 0\n    MUL\n    PUSH_F64 0.25\n    ADD\n    STORE 0\n"
                    "    LOAD 2\n    LOAD 0\n    SUB\n    STORE 2\n"
                    "    LOAD 1\n    PUSH 40\n    EQ\n    JZ skip\n    PUSH 3\n    STORE 0\n"
                    "skip:\n    LOAD 1\n    PUSH 45\n    EQ\n    JZ skip2\n"
                    "    PUSH_STR \"z\"\n    STORE 2\n"
                    "skip2:\n    LOAD 1\n    PUSH 1\n    ADD\n    STORE 1\n    JMP loop\n"
                    "done:\n    LOAD 2\n    LOAD 0\n    ADD\n    THROW\n",
                    NULL, 1);
}

/* Loops with calls (the callee has register-carried loops of its own), and with a handler in
 * the looping frame. */
static void test_home_calls_handlers(void **state)
{
    (void)state;
    same_everywhere(
        ".func main\n    PUSH 0\n    STORE 0\n    PUSH 0\n    STORE 1\n"
        "top:\n    LOAD 1\n    PUSH 20\n    LT\n    JZ done\n"
        "    LOAD 1\n    CALL f\n    LOAD 0\n    ADD\n    LOAD 1\n    ADD\n    STORE 0\n"
        "    LOAD 1\n    PUSH 1\n    ADD\n    STORE 1\n    JMP top\n"
        "done:\n    LOAD 0\n    THROW\n"
        ".func f 1\n    STORE 0\n    PUSH 0\n    STORE 1\n    PUSH 0\n    STORE 2\n"
        "l:\n    LOAD 2\n    LOAD 0\n    PUSH 3\n    MUL\n    LT\n    JZ e\n"
        "    LOAD 1\n    LOAD 2\n    ADD\n    STORE 1\n"
        "    LOAD 2\n    PUSH 1\n    ADD\n    STORE 2\n    JMP l\n"
        "e:\n    LOAD 1\n    RET\n",
        "uncaught exception: 11020", 1);
    same_everywhere(".func main\n    PUSH 0\n    STORE 0\n    PUSH 0\n    STORE 1\n"
                    "top:\n    LOAD 1\n    PUSH 20\n    LT\n    JZ done\n"
                    "    ENTER_TRY h\n    LOAD 1\n    CALL f\n    LOAD 0\n    ADD\n    STORE 0\n"
                    "    LOAD 1\n    PUSH 5\n    MOD\n    JNZ ok\n"
                    "    LOAD 1\n    PUSH 0\n    DIV\n    POP\n"
                    "ok:\n    EXIT_TRY\n    JMP next\n"
                    "h:\n    POP\n    LOAD 0\n    PUSH 1000\n    ADD\n    STORE 0\n"
                    "next:\n    LOAD 1\n    PUSH 1\n    ADD\n    STORE 1\n    JMP top\n"
                    "done:\n    LOAD 0\n    THROW\n"
                    ".func f 1\n    STORE 0\n    PUSH 0\n    STORE 1\n    PUSH 0\n    STORE 2\n"
                    "l:\n    LOAD 2\n    LOAD 0\n    PUSH 3\n    MUL\n    LT\n    JZ e\n"
                    "    LOAD 1\n    LOAD 2\n    ADD\n    STORE 1\n"
                    "    LOAD 2\n    PUSH 1\n    ADD\n    STORE 2\n    JMP l\n"
                    "e:\n    LOAD 1\n    RET\n",
                    NULL, 1);
}

/* Arrays held in registers (their addresses) around loops: a new array each round, grown by
 * ARR_PUSH (its items move), read and written, with garbage for the collector. */
static void test_home_arrays(void **state)
{
    (void)state;
    same_everywhere(".func main\n    PUSH 0\n    STORE 2\n    PUSH 0\n    STORE 0\n"
                    "rep:\n    LOAD 0\n    PUSH 6\n    LT\n    JZ done\n"
                    "    NEW_ARRAY 0\n    STORE 1\n    PUSH 0\n    STORE 3\n"
                    "fill:\n    LOAD 3\n    PUSH 40\n    LT\n    JZ sum\n"
                    "    LOAD 1\n    LOAD 3\n    LOAD 0\n    MUL\n    ARR_PUSH\n    POP\n"
                    "    PUSH_STR \"x\"\n    LOAD 3\n    ADD\n    POP\n"
                    "    LOAD 3\n    PUSH 1\n    ADD\n    STORE 3\n    JMP fill\n"
                    "sum:\n    PUSH 0\n    STORE 3\n"
                    "sloop:\n    LOAD 3\n    LOAD 1\n    ARR_LEN\n    LT\n    JZ next\n"
                    "    LOAD 2\n    LOAD 1\n    LOAD 3\n    ARR_GET\n    ADD\n    STORE 2\n"
                    "    LOAD 1\n    LOAD 3\n    LOAD 1\n    LOAD 3\n    ARR_GET\n    PUSH 1\n"
                    "    ADD\n    ARR_SET\n    POP\n"
                    "    LOAD 3\n    PUSH 1\n    ADD\n    STORE 3\n    JMP sloop\n"
                    "next:\n    LOAD 0\n    PUSH 1\n    ADD\n    STORE 0\n    JMP rep\n"
                    "done:\n    LOAD 2\n    LOAD 1\n    PUSH -1\n    ARR_GET\n    ADD\n    THROW\n",
                    "uncaught exception: 11896", 7);
}

/* Field values read in place: the entry rewritten while the value read is pending (through the
 * map itself, read from one of its own fields), and the only reference to a map dropped while
 * its field's value is pending across an allocation. */
static void test_field_values(void **state)
{
    (void)state;
    same_everywhere(".func main\n    NEW_OBJ\n    STORE 0\n"
                    "    LOAD 0\n    LOAD 0\n    SET_FIELD \"self\"\n    POP\n"
                    "    LOAD 0\n    PUSH 1\n    SET_FIELD \"x\"\n    POP\n"
                    "    LOAD 0\n    GET_FIELD \"x\"\n"
                    "    LOAD 0\n    GET_FIELD \"self\"\n    PUSH 5\n    SET_FIELD \"x\"\n"
                    "    GET_FIELD \"x\"\n    ADD\n"
                    "    LOAD 0\n    GET_FIELD \"self\"\n    PUSH 7\n    SET_FIELD \"self\"\n"
                    "    GET_FIELD \"x\"\n    ADD\n"
                    "    NEW_OBJ\n    PUSH_F64 2.5\n    SET_FIELD \"v\"\n    GET_FIELD \"v\"\n"
                    "    PUSH_STR \"a\"\n    PUSH_STR \"b\"\n    ADD\n    POP\n"
                    "    PUSH_F64 0.5\n    MUL\n    ADD\n    THROW\n",
                    "uncaught exception: 12.25", 1);
    /* a value read in place after C code ran (an absent field, then a compare) is moved */
    same_everywhere(".func main\n    NEW_OBJ\n    PUSH 953\n    SET_FIELD \"n0\"\n"
                    "    GET_FIELD \"y\"\n    PUSH_STR \"a\"\n    PUSH_STR \"b\"\n    EQ\n"
                    "    SWAP\n    NEW_ARRAY 2\n    THROW\n",
                    "uncaught exception: [false, null]", 1);
}

/* The map lookup cache: read-then-write of the same keys (strings built anew each time, ints),
 * deletions (tombstones), compaction, and collections between the lookups. */
static void test_map_lookup_cache(void **state)
{
    (void)state;
    same_everywhere(".func main\n    NEW_OBJ\n    STORE 0\n    PUSH 0\n    STORE 1\n"
                    "top:\n    LOAD 1\n    PUSH 300\n    LT\n    JZ done\n"
                    "    PUSH_STR \"k\"\n    LOAD 1\n    PUSH 7\n    MOD\n    ADD\n    STORE 2\n"
                    "    LOAD 0\n    LOAD 2\n    LOAD 0\n    LOAD 2\n    MAP_GET\n    DUP\n"
                    "    JNZ have\n    POP\n    PUSH 0\n"
                    "have:\n    PUSH 1\n    ADD\n    MAP_SET\n    POP\n"
                    "    LOAD 1\n    PUSH 5\n    MOD\n    JNZ nodel\n"
                    "    LOAD 0\n    LOAD 2\n    MAP_DEL\n    POP\n"
                    "    LOAD 0\n    LOAD 2\n    MAP_HAS\n    JZ nodel\n    PUSH 99\n    THROW\n"
                    "nodel:\n    LOAD 0\n    LOAD 1\n    PUSH 3\n    MOD\n"
                    "    LOAD 0\n    LOAD 1\n    PUSH 3\n    MOD\n    MAP_GET\n    DUP\n"
                    "    JNZ have2\n    POP\n    PUSH 0\n"
                    "have2:\n    LOAD 1\n    ADD\n    MAP_SET\n    POP\n"
                    "    LOAD 1\n    PUSH 1\n    ADD\n    STORE 1\n    JMP top\n"
                    "done:\n    LOAD 0\n    THROW\n",
                    NULL, 37);
}

static nvm_status stop_after_3(void *ud)
{
    int *n = ud;
    return ++*n >= 3 ? NVM_E_TIME : NVM_OK;
}

/* The interrupt hook (wall-time limits) runs inside compiled loops: every 65,536 instructions. */
static void test_interrupt_in_loop(void **state)
{
    (void)state;
    nvm_module *m = load(".func main\nspin:\n    JMP spin\n");
    nvm_config cfg;
    nvm_config_init(&cfg);
    int calls = 0;
    cfg.interrupt = stop_after_3;
    cfg.interrupt_ud = &calls;
    nvm_error err;
    int64_t gas = 0;
    assert_int_equal(nvm_execute(&cfg, m, NULL, NVM_TIER_JIT, false, &gas, &err), NVM_E_TIME);
    assert_int_equal(calls, 3);
    assert_true(gas >= 2 * 65536 && gas <= 3 * 65536);
    nvm_module_free(m);
}

/* An interrupt hook that runs C code (clobbering the registers C may clobber). */
static nvm_status busy_hook(void *ud)
{
    char buf[128];
    int *n = ud;
    snprintf(buf, sizeof buf, "%d %f %s", *n, (double)*n / 3.0, "refill");
    *n += (int)strlen(buf) > 0;
    return NVM_OK;
}

/* The countdown refilled (interrupt hook) at the entry of blocks inside register-carried loops. */
static void test_home_gas_refill(void **state)
{
    (void)state;
    nvm_module *m = load(".func main\n    PUSH 0\n    STORE 0\n    PUSH 0\n    STORE 1\n"
                         "    PUSH_F64 0.5\n    STORE 2\n"
                         "top:\n    LOAD 1\n    PUSH 60000\n    LT\n    JZ done\n"
                         "    LOAD 0\n    LOAD 1\n    LOAD 1\n    MUL\n    ADD\n    PUSH 1000003\n"
                         "    MOD\n    STORE 0\n"
                         "    LOAD 2\n    PUSH_F64 1.0000001\n    MUL\n    STORE 2\n"
                         "    LOAD 1\n    PUSH 1\n    ADD\n    STORE 1\n    JMP top\n"
                         "done:\n    LOAD 0\n    LOAD 2\n    ADD\n    THROW\n");
    char msg[2][600];
    int64_t gas[2];
    for (int t = 0; t < 2; t++) {
        nvm_config cfg;
        nvm_config_init(&cfg);
        int calls = 0;
        cfg.interrupt = busy_hook;
        cfg.interrupt_ud = &calls;
        nvm_error err;
        memset(&err, 0, sizeof err);
        gas[t] = 0;
        nvm_status st =
            nvm_execute(&cfg, m, NULL, t ? NVM_TIER_JIT : NVM_TIER_INTERP, false, &gas[t], &err);
        assert_int_equal(st, NVM_E_PROGRAM);
        assert_true(calls > 10);
        snprintf(msg[t], sizeof msg[t], "%s", err.message);
    }
    assert_string_equal(msg[0], msg[1]);
    assert_int_equal(gas[0], gas[1]);
    nvm_module_free(m);
}

static void test_compile_time(void **state)
{
    (void)state;
    /* a function of 10,000 instructions: arithmetic, locals and branches */
    size_t cap = 1 << 20, len = 0;
    char *src = malloc(cap);
    assert_non_null(src);
    len += (size_t)snprintf(src + len, cap - len, ".func main\n    PUSH 1\n    STORE 0\n");
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(src + len, cap - len,
                                "    LOAD 0\n    PUSH %d\n    ADD\n    STORE 0\n"
                                "    LOAD 0\n    PUSH 3\n    MOD\n    JZ l%d\n"
                                "    LOAD 0\n    STORE 1\nl%d:\n",
                                i, i, i);
    len += (size_t)snprintf(src + len, cap - len, "    LOAD 0\n    THROW\n");
    nvm_module *m = load(src);
    free(src);
    nvm_jit_blob *b = NULL;
    nvm_error err;
    assert_int_equal(nvm_jit_compile(m, &b, &err), NVM_OK);
    assert_true(b->insns > 10000);
    print_message("JIT compile: %llu instructions in %.3f ms (%.3f ms per 1,000), %zu bytes\n",
                  (unsigned long long)b->insns, (double)b->compile_ns / 1e6,
                  (double)b->compile_ns / 1e6 / ((double)b->insns / 1000.0), b->size);
    nvm_jit_blob_free(b);
    same(m, -1, 0);
    nvm_module_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mappings_and_constants),
        cmocka_unit_test(test_gas_parity),
        cmocka_unit_test(test_cache_shared),
        cmocka_unit_test(test_deep_recursion),
        cmocka_unit_test(test_throw_through_frames),
        cmocka_unit_test(test_speculation_fallback),
        cmocka_unit_test(test_interrupt_in_loop),
        cmocka_unit_test(test_home_int_loops),
        cmocka_unit_test(test_home_type_changes),
        cmocka_unit_test(test_home_calls_handlers),
        cmocka_unit_test(test_home_arrays),
        cmocka_unit_test(test_field_values),
        cmocka_unit_test(test_map_lookup_cache),
        cmocka_unit_test(test_home_gas_refill),
        cmocka_unit_test(test_compile_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
static void test_unavailable(void **state)
{
    (void)state;
    assert_false(nvm_tier_available(NVM_TIER_JIT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unavailable)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
