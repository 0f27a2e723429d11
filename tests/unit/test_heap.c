/* test_heap.c - unit tests of the arena and the value operations: float formatting, printing,
 * maps (order, delete, reinsert, compaction), equality, the collector (frees unreachable objects,
 * keeps rooted ones, survives deep nesting), the memory limit and fail_alloc_at. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vm/vm.h"
#include "vm/heap.h"

static nvm_vm *new_vm(size_t max_memory, bool stress, uint64_t fail_at)
{
    nvm_config cfg;
    nvm_vm *vm = NULL;
    nvm_config_init(&cfg);
    if (max_memory != 0)
        cfg.max_memory = max_memory;
    cfg.gc_stress = stress;
    cfg.fail_alloc_at = fail_at;
    assert_int_equal(nvm_vm_new(&cfg, &vm), NVM_OK);
    assert_non_null(vm);
    return vm;
}

static nvm_value str(nvm_vm *vm, const char *s)
{
    nvm_value v;
    assert_int_equal(nvm_str_new(vm, s, strlen(s), &v), NVM_OK);
    return v;
}

/* Fresh value rooted on the temporary root stack. */
static nvm_value rooted(nvm_vm *vm, nvm_value v)
{
    assert_int_equal(nvm_troot_push(vm, v), NVM_OK);
    return v;
}

/* Printed form of v, compared with `want`. */
static void assert_prints(nvm_vm *vm, nvm_value v, const char *want)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(nvm_value_format(vm, v, &buf, &len, &cap), NVM_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    nvm_vm_free_buffer(vm, buf, cap);
}

static void test_format_float(void **state)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1e21, "1000000000000000000000.0"},
        {1e-7, "0.0000001"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {1024.0, "1024.0"},
        {-5.25, "-5.25"},
        {123456789012.5, "123456789012.5"},
        {1.0 / 3.0, "0.3333333333333333"},
        {100.0, "100.0"},
        {0.0001, "0.0001"},
    };
    char buf[NVM_FLOAT_FMT_MAX];
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = nvm_format_float(cases[i].d, buf);
        assert_string_equal(buf, cases[i].text);
        assert_int_equal(n, strlen(cases[i].text));
    }
    nvm_format_float(NAN, buf);
    assert_string_equal(buf, "NaN");
    nvm_format_float(INFINITY, buf);
    assert_string_equal(buf, "inf");
    nvm_format_float(-INFINITY, buf);
    assert_string_equal(buf, "-inf");

    /* 5e-324: "0." then 323 zeros then 5 */
    size_t n = nvm_format_float(5e-324, buf);
    assert_int_equal(n, 2 + 323 + 1);
    assert_memory_equal(buf, "0.000", 5);
    assert_int_equal(buf[n - 1], '5');
    for (size_t i = 2; i < n - 1; i++)
        assert_int_equal(buf[i], '0');

    /* the largest double: its 17 significant digits, then zeros up to 309 digits, then ".0" */
    n = nvm_format_float(1.7976931348623157e308, buf);
    assert_int_equal(n, 309 + 2);
    assert_memory_equal(buf, "17976931348623157", 17);
    for (size_t i = 17; i < 309; i++)
        assert_int_equal(buf[i], '0');
    assert_string_equal(buf + 309, ".0");
}

static void test_print_values(void **state)
{
    nvm_vm *vm = new_vm(0, false, 0);
    nvm_value a, m, inner;
    (void)state;
    assert_int_equal(nvm_array_new(vm, 0, &a), NVM_OK);
    rooted(vm, a);
    assert_int_equal(nvm_array_push(vm, a, nvm_int(-5)), NVM_OK);
    assert_int_equal(nvm_array_push(vm, a, nvm_float(2.5)), NVM_OK);
    assert_int_equal(nvm_array_push(vm, a, str(vm, "hi")), NVM_OK);
    assert_int_equal(nvm_array_push(vm, a, nvm_bool(true)), NVM_OK);
    assert_int_equal(nvm_array_push(vm, a, nvm_null()), NVM_OK);
    assert_int_equal(nvm_array_new(vm, 1, &inner), NVM_OK);
    assert_int_equal(nvm_array_push(vm, a, inner), NVM_OK);
    assert_int_equal(nvm_array_push(vm, inner, nvm_int(3)), NVM_OK);
    assert_prints(vm, a, "[-5, 2.5, hi, true, null, [3]]");

    assert_int_equal(nvm_map_new(vm, &m), NVM_OK);
    rooted(vm, m);
    assert_int_equal(nvm_map_set(vm, m, str(vm, "k"), a), NVM_OK);
    assert_int_equal(nvm_map_set(vm, m, nvm_int(1), str(vm, "x")), NVM_OK);
    assert_prints(vm, m, "{k: [-5, 2.5, hi, true, null, [3]], 1: x}");

    /* a container that contains itself */
    assert_int_equal(nvm_array_push(vm, inner, inner), NVM_OK);
    assert_prints(vm, inner, "[3, [...]]");
    assert_int_equal(nvm_map_set(vm, m, str(vm, "self"), m), NVM_OK);
    assert_prints(vm, m, "{k: [-5, 2.5, hi, true, null, [3, [...]]], 1: x, self: {...}}");
    /* the same array twice, not a cycle */
    nvm_value twice;
    assert_int_equal(nvm_array_new(vm, 2, &twice), NVM_OK);
    rooted(vm, twice);
    nvm_value small;
    assert_int_equal(nvm_array_new(vm, 1, &small), NVM_OK);
    assert_int_equal(nvm_array_push(vm, twice, small), NVM_OK);
    assert_int_equal(nvm_array_push(vm, twice, small), NVM_OK);
    assert_prints(vm, twice, "[[], []]");
    nvm_troot_pop(vm, 3);
    nvm_vm_free(vm);
}

static void test_map_order(void **state)
{
    nvm_vm *vm = new_vm(0, true, 0);
    nvm_value m, v, keys;
    bool found;
    (void)state;
    assert_int_equal(nvm_map_new(vm, &m), NVM_OK);
    rooted(vm, m);
    assert_int_equal(nvm_map_set(vm, m, str(vm, "a"), nvm_int(1)), NVM_OK);
    assert_int_equal(nvm_map_set(vm, m, str(vm, "b"), nvm_int(2)), NVM_OK);
    assert_int_equal(nvm_map_set(vm, m, nvm_int(1), nvm_int(3)), NVM_OK);
    assert_int_equal(nvm_map_set(vm, m, str(vm, "1"), nvm_int(4)), NVM_OK);
    assert_prints(vm, m, "{a: 1, b: 2, 1: 3, 1: 4}");
    /* replacing keeps the position */
    assert_int_equal(nvm_map_set(vm, m, str(vm, "b"), nvm_int(20)), NVM_OK);
    assert_prints(vm, m, "{a: 1, b: 20, 1: 3, 1: 4}");
    /* delete, then reinsert: goes last */
    assert_int_equal(nvm_map_del(vm, m, str(vm, "a")), NVM_OK);
    assert_int_equal(nvm_map_get(vm, m, str(vm, "a"), &v, &found), NVM_OK);
    assert_false(found);
    assert_int_equal(v.type, NVM_T_NULL);
    assert_int_equal(nvm_map_set(vm, m, str(vm, "a"), nvm_int(5)), NVM_OK);
    assert_prints(vm, m, "{b: 20, 1: 3, 1: 4, a: 5}");
    assert_int_equal(nvm_map_keys(vm, m, &keys), NVM_OK);
    assert_prints(vm, keys, "[b, 1, 1, a]");
    assert_int_equal(nvm_map_get(vm, m, nvm_int(1), &v, &found), NVM_OK);
    assert_true(found);
    assert_int_equal(v.as.i, 3);
    /* bad key type */
    assert_int_equal(nvm_map_set(vm, m, nvm_float(1.0), nvm_int(1)), NVM_E_PROGRAM);

    /* many inserts and deletes: compaction keeps order and every lookup */
    nvm_value big;
    assert_int_equal(nvm_map_new(vm, &big), NVM_OK);
    rooted(vm, big);
    for (int64_t i = 0; i < 2000; i++)
        assert_int_equal(nvm_map_set(vm, big, nvm_int(i), nvm_int(i * 10)), NVM_OK);
    for (int64_t i = 0; i < 2000; i += 2)
        assert_int_equal(nvm_map_del(vm, big, nvm_int(i)), NVM_OK);
    for (int64_t i = 0; i < 3000; i++)
        assert_int_equal(nvm_map_set(vm, big, nvm_int(10000 + i), nvm_int(i)), NVM_OK);
    assert_int_equal(nvm_len(vm, big, &v), NVM_OK);
    assert_int_equal(v.as.i, 1000 + 3000);
    for (int64_t i = 0; i < 2000; i++) {
        assert_int_equal(nvm_map_get(vm, big, nvm_int(i), &v, &found), NVM_OK);
        assert_int_equal(found, i % 2 == 1);
        if (found)
            assert_int_equal(v.as.i, i * 10);
    }
    assert_int_equal(nvm_map_keys(vm, big, &keys), NVM_OK);
    const nvm_array *k = nvm_heap_obj(&vm->heap, keys);
    assert_int_equal(k->len, 4000);
    assert_int_equal(k->items[0].as.i, 1);
    assert_int_equal(k->items[999].as.i, 1999);
    assert_int_equal(k->items[1000].as.i, 10000);
    nvm_troot_pop(vm, 2);
    nvm_vm_free(vm);
}

static void test_equality(void **state)
{
    nvm_vm *vm = new_vm(0, false, 0);
    (void)state;
    assert_true(nvm_equal(vm, nvm_int(2), nvm_float(2.0)));
    assert_true(nvm_equal(vm, nvm_float(2.0), nvm_int(2)));
    assert_false(nvm_equal(vm, nvm_int(2), nvm_float(2.5)));
    assert_false(nvm_equal(vm, nvm_int(INT64_MAX), nvm_float(9223372036854775808.0)));
    assert_false(nvm_equal(vm, nvm_bool(true), nvm_int(1)));
    assert_false(nvm_equal(vm, nvm_int(0), nvm_bool(false)));
    assert_true(nvm_equal(vm, nvm_null(), nvm_null()));
    assert_false(nvm_equal(vm, nvm_null(), nvm_int(0)));
    assert_false(nvm_equal(vm, nvm_float(NAN), nvm_float(NAN)));
    assert_true(nvm_equal(vm, nvm_float(0.0), nvm_float(-0.0)));

    nvm_value s1 = rooted(vm, str(vm, "abc")), s2 = rooted(vm, str(vm, "abc"));
    assert_true(nvm_equal(vm, s1, s2));
    assert_false(nvm_equal(vm, s1, rooted(vm, str(vm, "abd"))));

    /* [1, [2, "abc"]] twice, built separately */
    nvm_value a[2];
    for (int i = 0; i < 2; i++) {
        nvm_value inner;
        assert_int_equal(nvm_array_new(vm, 0, &a[i]), NVM_OK);
        rooted(vm, a[i]);
        assert_int_equal(nvm_array_push(vm, a[i], nvm_int(1)), NVM_OK);
        assert_int_equal(nvm_array_new(vm, 0, &inner), NVM_OK);
        assert_int_equal(nvm_array_push(vm, a[i], inner), NVM_OK);
        assert_int_equal(nvm_array_push(vm, inner, i == 0 ? nvm_int(2) : nvm_float(2.0)), NVM_OK);
        assert_int_equal(nvm_array_push(vm, inner, i == 0 ? s1 : s2), NVM_OK);
    }
    assert_true(nvm_equal(vm, a[0], a[1]));
    assert_int_equal(nvm_array_push(vm, a[1], nvm_null()), NVM_OK);
    assert_false(nvm_equal(vm, a[0], a[1]));

    /* maps: order ignored */
    nvm_value m1, m2;
    assert_int_equal(nvm_map_new(vm, &m1), NVM_OK);
    rooted(vm, m1);
    assert_int_equal(nvm_map_new(vm, &m2), NVM_OK);
    rooted(vm, m2);
    assert_int_equal(nvm_map_set(vm, m1, str(vm, "x"), nvm_int(1)), NVM_OK);
    assert_int_equal(nvm_map_set(vm, m1, nvm_int(7), a[0]), NVM_OK);
    assert_int_equal(nvm_map_set(vm, m2, nvm_int(7), a[0]), NVM_OK);
    assert_int_equal(nvm_map_set(vm, m2, str(vm, "x"), nvm_float(1.0)), NVM_OK);
    assert_true(nvm_equal(vm, m1, m2));
    assert_int_equal(nvm_map_set(vm, m2, str(vm, "x"), nvm_int(2)), NVM_OK);
    assert_false(nvm_equal(vm, m1, m2));
    assert_int_equal(nvm_map_del(vm, m2, str(vm, "x")), NVM_OK);
    assert_false(nvm_equal(vm, m1, m2));
    assert_int_equal(nvm_map_set(vm, m2, str(vm, "y"), nvm_int(1)), NVM_OK);
    assert_false(nvm_equal(vm, m1, m2));

    /* cycles: identical containers are equal, distinct cyclic ones end at the depth bound */
    nvm_value c1, c2;
    assert_int_equal(nvm_array_new(vm, 1, &c1), NVM_OK);
    rooted(vm, c1);
    assert_int_equal(nvm_array_new(vm, 1, &c2), NVM_OK);
    rooted(vm, c2);
    assert_int_equal(nvm_array_push(vm, c1, c1), NVM_OK);
    assert_int_equal(nvm_array_push(vm, c2, c2), NVM_OK);
    assert_true(nvm_equal(vm, c1, c1));
    assert_false(nvm_equal(vm, c1, c2));
    nvm_troot_pop(vm, 9);
    nvm_vm_free(vm);
}

static void test_truthy_cast(void **state)
{
    nvm_vm *vm = new_vm(0, false, 0);
    nvm_value v;
    (void)state;
    assert_false(nvm_truthy(vm, nvm_null()));
    assert_false(nvm_truthy(vm, nvm_float(-0.0)));
    assert_true(nvm_truthy(vm, nvm_float(NAN)));
    assert_false(nvm_truthy(vm, str(vm, "")));
    assert_true(nvm_truthy(vm, str(vm, "0")));

    assert_int_equal(nvm_cast(vm, str(vm, "  -42 "), NVM_CAST_INT, &v), NVM_OK);
    assert_int_equal(v.as.i, -42);
    assert_int_equal(nvm_cast(vm, str(vm, "3.9"), NVM_CAST_INT, &v), NVM_OK);
    assert_int_equal(v.as.i, 3);
    assert_int_equal(nvm_cast(vm, str(vm, "abc"), NVM_CAST_INT, &v), NVM_E_PROGRAM);
    assert_string_equal(nvm_vm_error(vm)->message, "cannot cast \"abc\" to int");
    assert_int_equal(nvm_cast(vm, nvm_float(NAN), NVM_CAST_INT, &v), NVM_E_PROGRAM);
    assert_int_equal(nvm_cast(vm, nvm_float(-7.9), NVM_CAST_INT, &v), NVM_OK);
    assert_int_equal(v.as.i, -7);
    assert_int_equal(nvm_cast(vm, str(vm, "1e3"), NVM_CAST_FLOAT, &v), NVM_OK);
    assert_true(v.as.f == 1000.0);
    assert_int_equal(nvm_cast(vm, str(vm, "nan"), NVM_CAST_FLOAT, &v), NVM_E_PROGRAM);
    assert_int_equal(nvm_cast(vm, nvm_float(1e21), NVM_CAST_STR, &v), NVM_OK);
    assert_prints(vm, v, "1000000000000000000000.0");
    assert_int_equal(nvm_typeof(vm, nvm_float(1.0), &v), NVM_OK);
    assert_prints(vm, v, "float");

    nvm_value s = rooted(vm, str(vm, "a,b,,c"));
    nvm_value sep = rooted(vm, str(vm, ","));
    assert_int_equal(nvm_str_split(vm, s, sep, &v), NVM_OK);
    rooted(vm, v);
    assert_prints(vm, v, "[a, b, , c]");
    nvm_value joined;
    assert_int_equal(nvm_str_join(vm, v, rooted(vm, str(vm, "-")), &joined), NVM_OK);
    assert_prints(vm, joined, "a-b--c");
    assert_int_equal(nvm_str_replace(vm, s, sep, rooted(vm, str(vm, "<>")), &v), NVM_OK);
    assert_prints(vm, v, "a<>b<><>c");
    assert_int_equal(nvm_str_fmt_fixed(vm, nvm_float(2.675), nvm_int(2), &v), NVM_OK);
    assert_prints(vm, v, "2.67");
    assert_int_equal(nvm_str_concat(vm, s, nvm_float(0.5), &v), NVM_OK);
    assert_prints(vm, v, "a,b,,c0.5");
    nvm_troot_pop(vm, 6);
    nvm_vm_free(vm);
}

static void test_gc_frees_and_keeps(void **state)
{
    nvm_vm *vm = new_vm(0, false, 0);
    nvm_value keep, drop;
    (void)state;
    assert_int_equal(nvm_array_new(vm, 0, &keep), NVM_OK);
    rooted(vm, keep);
    for (int i = 0; i < 100; i++)
        assert_int_equal(nvm_array_push(vm, keep, str(vm, "kept string")), NVM_OK);
    nvm_gc_collect(vm);
    size_t base = vm->heap.bytes;

    assert_int_equal(nvm_array_new(vm, 0, &drop), NVM_OK);
    rooted(vm, drop);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(nvm_array_push(vm, drop, str(vm, "garbage garbage garbage")), NVM_OK);
    size_t full = vm->heap.bytes;
    assert_true(full > base + 1000 * 24);
    nvm_troot_pop(vm, 1); /* drop is unreachable now */
    nvm_gc_collect(vm);
    /* every garbage string (16-byte header + 24 bytes) is gone; the handle table stays grown */
    assert_true(vm->heap.bytes + 1000 * 40 <= full);
    assert_null(vm->heap.objs[drop.as.h]);
    assert_non_null(vm->heap.objs[keep.as.h]);
    const nvm_array *k = nvm_heap_obj(&vm->heap, keep);
    assert_int_equal(k->len, 100);
    size_t len;
    const char *text = nvm_value_str(vm, k->items[99], &len);
    assert_non_null(text);
    assert_int_equal(len, 11);
    assert_memory_equal(text, "kept string", 11);
    nvm_troot_pop(vm, 1);
    nvm_vm_free(vm);
}

static void test_gc_deep_nesting(void **state)
{
    nvm_vm *vm = new_vm(0, false, 0);
    nvm_value outer, cur;
    (void)state;
    /* 1e6 arrays nested in one another, reachable only through the outermost */
    assert_int_equal(nvm_array_new(vm, 1, &outer), NVM_OK);
    rooted(vm, outer);
    cur = outer;
    for (int i = 0; i < 1000000; i++) {
        nvm_value next;
        assert_int_equal(nvm_array_new(vm, 1, &next), NVM_OK);
        assert_int_equal(nvm_array_push(vm, cur, next), NVM_OK);
        cur = next;
    }
    uint32_t innermost = cur.as.h;
    nvm_gc_collect(vm);
    assert_non_null(vm->heap.objs[innermost]);
    assert_true(nvm_equal(vm, outer, outer));
    nvm_value n;
    assert_int_equal(nvm_cast(vm, outer, NVM_CAST_STR, &n), NVM_OK);
    assert_int_equal(((const nvm_str *)nvm_heap_obj(&vm->heap, n))->len, 2 * 1000001);
    nvm_troot_pop(vm, 1);
    nvm_gc_collect(vm);
    assert_null(vm->heap.objs[innermost]);
    nvm_vm_free(vm);
}

static void test_gc_stress(void **state)
{
    nvm_vm *vm = new_vm(0, true, 0);
    nvm_value m, v;
    (void)state;
    assert_int_equal(nvm_map_new(vm, &m), NVM_OK);
    rooted(vm, m);
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof key, "key%d", i);
        nvm_value a;
        assert_int_equal(nvm_array_range(vm, nvm_int(i), nvm_int(i + 3), &a), NVM_OK);
        rooted(vm, a);
        assert_int_equal(nvm_map_set(vm, m, str(vm, key), a), NVM_OK);
        nvm_troot_pop(vm, 1);
    }
    assert_true(vm->heap.ncollections > 200);
    assert_int_equal(nvm_map_get(vm, m, str(vm, "key150"), &v, NULL), NVM_OK);
    assert_prints(vm, v, "[150, 151, 152]");
    nvm_troot_pop(vm, 1);
    nvm_vm_free(vm);
}

static void test_memory_limit(void **state)
{
    nvm_vm *vm = new_vm(256 * 1024, false, 0);
    nvm_value a, v;
    char big[4096];
    (void)state;
    memset(big, 'x', sizeof big);
    assert_int_equal(nvm_array_range(vm, nvm_int(0), nvm_int(1000000), &v), NVM_E_MEMORY);
    assert_int_equal(nvm_vm_error(vm)->status, NVM_E_MEMORY);
    assert_non_null(strstr(nvm_vm_error(vm)->message, "memory limit exceeded"));

    assert_int_equal(nvm_array_new(vm, 0, &a), NVM_OK);
    rooted(vm, a);
    nvm_status st = NVM_OK;
    int n = 0;
    while (st == NVM_OK && n < 1000) {
        st = nvm_str_new(vm, big, sizeof big, &v);
        if (st == NVM_OK)
            st = nvm_array_push(vm, a, v);
        n++;
    }
    assert_int_equal(st, NVM_E_MEMORY);
    assert_true(n > 10);
    assert_true(vm->heap.bytes <= 256 * 1024);
    /* garbage is reclaimed by the emergency collection: allocation works again */
    nvm_troot_pop(vm, 1);
    for (int i = 0; i < 200; i++)
        assert_int_equal(nvm_str_new(vm, big, sizeof big, &v), NVM_OK);
    assert_true(vm->heap.peak_bytes <= 256 * 1024);
    nvm_vm_free(vm);
}

/* An array from nvm_array_new_bools holds bools as bytes: 1 byte per element in the arena's
 * count, the same values as any array, and its storage becomes values (16 bytes each, every
 * element kept) when another value is stored; freed, it gives back exactly what it took. A
 * failed conversion leaves the bools as they were. */
static void test_bool_arrays(void **state)
{
    (void)state;
    nvm_vm *vm = new_vm(0, true, 0); /* a collection at every allocation */
    nvm_gc_collect(vm);
    nvm_value a, v, s = rooted(vm, str(vm, "x"));
    assert_int_equal(nvm_array_new_bools(vm, &a), NVM_OK);
    rooted(vm, a);
    size_t base = vm->heap.bytes;
    for (int i = 0; i < 10000; i++)
        assert_int_equal(nvm_array_push(vm, a, nvm_bool(i % 3 == 0)), NVM_OK);
    const nvm_array *arr = nvm_heap_obj(&vm->heap, a);
    assert_int_equal(arr->hdr.sub, NVM_ARR_BOOLS);
    assert_int_equal(arr->cap, 16384);
    assert_int_equal(vm->heap.bytes - base, 16384);
    assert_int_equal(nvm_array_get(vm, a, nvm_int(-1), &v), NVM_OK);
    assert_int_equal(v.type, NVM_T_BOOL);
    assert_int_equal(v.as.b, 9999 % 3 == 0);
    assert_int_equal(nvm_array_set(vm, a, nvm_int(1), nvm_bool(true)), NVM_OK);
    assert_int_equal(arr->hdr.sub, NVM_ARR_BOOLS);
    assert_int_equal(nvm_array_set(vm, a, nvm_int(2), s), NVM_OK); /* a string: converted */
    assert_int_equal(arr->hdr.sub, NVM_ARR_VALUES);
    assert_int_equal(vm->heap.bytes - base, 16384 * sizeof(nvm_value));
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(nvm_array_get(vm, a, nvm_int(i), &v), NVM_OK);
        if (i == 2) {
            assert_int_equal(v.type, NVM_T_STR);
            continue;
        }
        assert_int_equal(v.type, NVM_T_BOOL);
        assert_int_equal(v.as.b, i % 3 == 0 || i == 1);
    }
    nvm_troot_pop(vm, 1);
    nvm_gc_collect(vm);
    assert_true(vm->heap.bytes < base); /* the array and its 16384 values are gone */
    assert_true(base - vm->heap.bytes < 256);
    size_t before = vm->heap.bytes;
    assert_int_equal(nvm_array_new_bools(vm, &a), NVM_OK);
    rooted(vm, a);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(nvm_array_push(vm, a, nvm_bool(true)), NVM_OK);
    assert_true(vm->heap.bytes >= before + 8192);
    nvm_troot_pop(vm, 1);
    nvm_gc_collect(vm); /* a bool array freed as bools */
    assert_true(vm->heap.bytes <= before + 256 && vm->heap.bytes + 256 >= before);
    nvm_troot_pop(vm, 1);
    nvm_vm_free(vm);

    /* the conversion's allocation fails: an error, the array still bools */
    vm = new_vm(0, false, 0);
    assert_int_equal(nvm_array_new_bools(vm, &a), NVM_OK);
    rooted(vm, a);
    for (int i = 0; i < 100; i++)
        assert_int_equal(nvm_array_push(vm, a, nvm_bool(i % 2 == 0)), NVM_OK);
    vm->cfg.fail_alloc_at = vm->heap.nalloc + 1;
    assert_int_equal(nvm_array_push(vm, a, nvm_int(7)), NVM_E_MEMORY);
    arr = nvm_heap_obj(&vm->heap, a);
    assert_int_equal(arr->hdr.sub, NVM_ARR_BOOLS);
    assert_int_equal(arr->len, 100);
    assert_int_equal(nvm_array_get(vm, a, nvm_int(98), &v), NVM_OK);
    assert_int_equal(v.type, NVM_T_BOOL);
    assert_int_equal(v.as.b, 1);
    assert_int_equal(nvm_array_get(vm, a, nvm_int(99), &v), NVM_OK);
    assert_int_equal(v.as.b, 0);
    nvm_troot_pop(vm, 1);
    nvm_vm_free(vm);
}

static void test_fail_alloc_at(void **state)
{
    (void)state;
    /* Every allocation position in a short sequence fails cleanly (ASan checks for leaks). */
    for (uint64_t at = 1; at <= 40; at++) {
        nvm_vm *vm = new_vm(0, false, at);
        nvm_value m, v;
        nvm_status st = nvm_map_new(vm, &m);
        if (st == NVM_OK)
            st = nvm_troot_push(vm, m);
        for (int i = 0; i < 10 && st == NVM_OK; i++) {
            st = nvm_str_new(vm, "value", 5, &v);
            if (st == NVM_OK)
                st = nvm_map_set(vm, m, nvm_int(i), v);
        }
        if (vm->heap.nalloc >= at) {
            assert_int_equal(st, NVM_E_MEMORY);
            assert_int_equal(nvm_vm_error(vm)->status, NVM_E_MEMORY);
        } else {
            assert_int_equal(st, NVM_OK);
        }
        nvm_vm_free(vm);
    }
    /* only the Nth allocation fails: the handle table is allocation before + 1, the first
     * string before + 2, the next strings need no new table */
    nvm_vm *vm = new_vm(0, false, 0);
    uint64_t before = vm->heap.nalloc;
    nvm_vm_free(vm);
    vm = new_vm(0, false, before + 2);
    nvm_value v;
    assert_int_equal(nvm_str_new(vm, "a", 1, &v), NVM_E_MEMORY);
    assert_int_equal(nvm_str_new(vm, "b", 1, &v), NVM_OK);
    assert_int_equal(nvm_str_new(vm, "c", 1, &v), NVM_OK);
    nvm_vm_free(vm);
}

static uint32_t shape_of(nvm_vm *vm, nvm_value m)
{
    return ((const nvm_map *)nvm_heap_obj(&vm->heap, m))->hdr.sub;
}

/* Maps of one shape hold the same keys (type and payload) in the same order, with no tombstone. */
static void assert_same_keys(nvm_vm *vm, nvm_value a, nvm_value b)
{
    const nvm_map *x = nvm_heap_obj(&vm->heap, a), *y = nvm_heap_obj(&vm->heap, b);
    assert_int_equal(x->nentries, y->nentries);
    assert_int_equal(x->count, x->nentries);
    assert_int_equal(y->count, y->nentries);
    for (uint32_t i = 0; i < x->nentries; i++) {
        assert_int_equal(x->entries[i].key.type, y->entries[i].key.type);
        if (x->entries[i].key.type == NVM_T_INT)
            assert_int_equal(x->entries[i].key.as.i, y->entries[i].key.as.i);
        else
            assert_int_equal(x->entries[i].key.as.h, y->entries[i].key.as.h);
    }
}

static void test_map_shapes(void **state)
{
    (void)state;
    nvm_vm *vm = new_vm(0, true, 0); /* a collection at every counted allocation */
    nvm_value kx = rooted(vm, str(vm, "x")), ky = rooted(vm, str(vm, "y"));
    nvm_value kx2 = rooted(vm, str(vm, "x")); /* equal text, another handle */
    nvm_value m[6];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(nvm_map_new(vm, &m[i]), NVM_OK);
        rooted(vm, m[i]);
        assert_int_equal(shape_of(vm, m[i]), NVM_SHAPE_EMPTY);
    }
    /* m0, m1: x y; m2: y x; m3: x(other handle) y; m4: 1 2 (ints); m5: x y, then y deleted */
    nvm_value keys[6][2] = {{kx, ky}, {kx, ky}, {ky, kx}, {kx2, ky}, {nvm_int(1), nvm_int(2)},
                            {kx, ky}};
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 2; k++)
            assert_int_equal(nvm_map_set(vm, m[i], keys[i][k], nvm_int(10 * i + k)), NVM_OK);
    uint32_t s0 = shape_of(vm, m[0]);
    assert_true(s0 != NVM_SHAPE_EMPTY && s0 != NVM_SHAPE_NONE);
    assert_int_equal(shape_of(vm, m[1]), s0);
    assert_same_keys(vm, m[0], m[1]);
    assert_true(shape_of(vm, m[2]) != s0 && shape_of(vm, m[2]) != NVM_SHAPE_NONE);
    assert_true(shape_of(vm, m[3]) != s0 && shape_of(vm, m[3]) != NVM_SHAPE_NONE);
    assert_true(shape_of(vm, m[4]) != s0 && shape_of(vm, m[4]) != NVM_SHAPE_NONE);
    assert_int_equal(shape_of(vm, m[5]), s0);
    /* a value replaced: same shape; a key deleted: no shape, for good */
    assert_int_equal(nvm_map_set(vm, m[1], kx, nvm_int(99)), NVM_OK);
    assert_int_equal(shape_of(vm, m[1]), s0);
    assert_int_equal(nvm_map_del(vm, m[5], ky), NVM_OK);
    assert_int_equal(shape_of(vm, m[5]), NVM_SHAPE_NONE);
    assert_int_equal(nvm_map_set(vm, m[5], ky, nvm_int(1)), NVM_OK);
    assert_int_equal(shape_of(vm, m[5]), NVM_SHAPE_NONE);
    /* deleting an absent key changes nothing */
    assert_int_equal(nvm_map_del(vm, m[0], nvm_int(7)), NVM_OK);
    assert_int_equal(shape_of(vm, m[0]), s0);

    /* Random maps over 6 keys with deletes: every two maps of one shape hold the same keys in
     * the same order; the table stops at NVM_SHAPES_MAX without an error. */
    enum { N = 64 };
    nvm_value pool[6] = {kx, ky, kx2, nvm_int(1), nvm_int(2), nvm_int(-3)};
    nvm_value r[N];
    uint64_t seed = 42;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < N; i++) {
            assert_int_equal(nvm_map_new(vm, &r[i]), NVM_OK);
            rooted(vm, r[i]);
            int nk = (int)(seed % 5);
            for (int k = 0; k < nk; k++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                nvm_value key = pool[(seed >> 33) % 6];
                if ((seed >> 20) % 23 == 0)
                    assert_int_equal(nvm_map_del(vm, r[i], key), NVM_OK);
                else
                    assert_int_equal(nvm_map_set(vm, r[i], key, nvm_int(k)), NVM_OK);
            }
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        }
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++)
                if (shape_of(vm, r[i]) == shape_of(vm, r[j]) &&
                    shape_of(vm, r[i]) != NVM_SHAPE_NONE)
                    assert_same_keys(vm, r[i], r[j]);
        nvm_troot_pop(vm, N);
    }
    nvm_value big;
    assert_int_equal(nvm_map_new(vm, &big), NVM_OK);
    rooted(vm, big);
    uint32_t last = NVM_SHAPE_EMPTY;
    for (int64_t k = 0; k < NVM_SHAPES_MAX + 100; k++) {
        assert_int_equal(nvm_map_set(vm, big, nvm_int(1000 + k), nvm_null()), NVM_OK);
        last = shape_of(vm, big);
    }
    assert_int_equal(last, NVM_SHAPE_NONE);
    assert_true(vm->heap.nshapes <= NVM_SHAPES_MAX);
    assert_true(vm->heap.nshapes > NVM_SHAPES_MAX - 200);
    assert_true(vm->heap.shape_cap >= 2 * vm->heap.nshapes); /* at most half used */
    nvm_vm_free(vm);
}

/* Under a memory limit too small for the table, maps work and just have no shape. */
static void test_map_shapes_no_memory(void **state)
{
    (void)state;
    nvm_vm *vm = new_vm(0, false, 0);
    nvm_value m, v;
    assert_int_equal(nvm_map_new(vm, &m), NVM_OK);
    rooted(vm, m);
    /* room for the map's first entries and index (192 bytes), not for the table (1668) */
    vm->cfg.max_memory = vm->heap.bytes + vm->heap.str_cache_bytes + 1000;
    assert_int_equal(nvm_map_set(vm, m, nvm_int(1), nvm_int(5)), NVM_OK);
    assert_int_equal(shape_of(vm, m), NVM_SHAPE_NONE);
    assert_int_equal(vm->heap.shape_cap, 0);
    bool found = false;
    assert_int_equal(nvm_map_get(vm, m, nvm_int(1), &v, &found), NVM_OK);
    assert_true(found);
    assert_int_equal(v.as.i, 5);
    nvm_vm_free(vm);
}

/* The table of shapes is counted memory: growing it from 64 to 128 edges (and its last-edge array
 * from 33 to 65 entries) inside a key added where the map has room changes heap.bytes by exactly
 * that much. */
static void test_map_shapes_counted(void **state)
{
    (void)state;
    nvm_vm *vm = new_vm(0, false, 0);
    nvm_value m, other;
    assert_int_equal(nvm_map_new(vm, &m), NVM_OK);
    rooted(vm, m);
    assert_int_equal(nvm_map_set(vm, m, nvm_int(0), nvm_null()), NVM_OK); /* room for 3 more */
    assert_int_equal(vm->heap.shape_cap, 64);
    for (int64_t k = 1; vm->heap.nshapes < 32; k++) { /* one new shape per map */
        assert_int_equal(nvm_map_new(vm, &other), NVM_OK);
        rooted(vm, other);
        assert_int_equal(nvm_map_set(vm, other, nvm_int(1000 + k), nvm_null()), NVM_OK);
    }
    assert_int_equal(vm->heap.shape_cap, 64);
    size_t before = vm->heap.bytes;
    assert_int_equal(nvm_map_set(vm, m, nvm_int(7), nvm_null()), NVM_OK); /* the 33rd shape */
    assert_int_equal(vm->heap.nshapes, 33);
    assert_int_equal(vm->heap.shape_cap, 128);
    size_t grown = (128 - 64) * sizeof(nvm_shape_edge) + (65 - 33) * sizeof(uint32_t);
    assert_int_equal(vm->heap.bytes - before, grown);
    nvm_vm_free(vm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_float),
        cmocka_unit_test(test_print_values),
        cmocka_unit_test(test_map_order),
        cmocka_unit_test(test_equality),
        cmocka_unit_test(test_truthy_cast),
        cmocka_unit_test(test_gc_frees_and_keeps),
        cmocka_unit_test(test_gc_deep_nesting),
        cmocka_unit_test(test_gc_stress),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_fail_alloc_at),
        cmocka_unit_test(test_bool_arrays),
        cmocka_unit_test(test_map_shapes),
        cmocka_unit_test(test_map_shapes_no_memory),
        cmocka_unit_test(test_map_shapes_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
