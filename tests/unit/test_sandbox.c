/* test_sandbox.c - the value codec (src/vm/marshal.c) and the WASM sandbox tier: round trips,
 * cycles, bounds and malformed encodings; sandboxed runs report the interpreter's status, error,
 * backtrace and gas; and the host refuses capability calls whose pointers or lengths, forged by a
 * compromised guest, reach outside the linear memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nanovm.h"
#include "vm/capcall.h"
#include "vm/marshal.h"
#include "vm/vm.h"
#ifdef NVM_HAVE_WASM_SANDBOX
#include "tier/wasm/sandbox.h"
#endif

static nvm_vm *new_vm(void)
{
    nvm_vm *vm = NULL;
    assert_int_equal(nvm_vm_new(NULL, &vm), NVM_OK);
    return vm;
}

static void mbuf_for(nvm_vm *vm, nvm_mbuf *b)
{
    void *ud;
    nvm_alloc_fn a = nvm_vm_alloc_hook(vm, &ud);
    nvm_mbuf_init(b, a, ud, 0);
}

static void test_roundtrip(void **state)
{
    (void)state;
    nvm_vm *vm = new_vm();
    nvm_value arr, map, s, k;
    assert_int_equal(nvm_value_new_array(vm, &arr), NVM_OK);
    assert_int_equal(nvm_value_root(vm, arr), NVM_OK);
    assert_int_equal(nvm_value_new_map(vm, &map), NVM_OK);
    assert_int_equal(nvm_array_push_value(vm, arr, map), NVM_OK);
    assert_int_equal(nvm_value_new_str(vm, "key", 3, &k), NVM_OK);
    assert_int_equal(nvm_map_set_value(vm, map, k, nvm_float(2.5)), NVM_OK);
    assert_int_equal(nvm_map_set_value(vm, map, nvm_int(7), arr), NVM_OK); /* a cycle */
    assert_int_equal(nvm_value_new_str(vm, "a\0b", 3, &s), NVM_OK);
    assert_int_equal(nvm_array_push_value(vm, arr, s), NVM_OK);
    nvm_value in[4] = {nvm_null(), nvm_bool(true), nvm_int(-5), arr};
    nvm_mbuf b;
    mbuf_for(vm, &b);
    assert_int_equal(nvm_marshal_encode(vm, in, 4, &b), NVM_OK);
    uint32_t troots = vm->heap.ntroots;
    nvm_value out[4];
    uint32_t n = 0;
    assert_int_equal(nvm_marshal_decode(vm, b.data, b.len, out, 4, &n), NVM_OK);
    assert_int_equal(n, 4);
    assert_int_equal(vm->heap.ntroots, troots + 4);
    assert_int_equal(out[0].type, NVM_T_NULL);
    assert_true(out[1].type == NVM_T_BOOL && out[1].as.b);
    assert_true(out[2].type == NVM_T_INT && out[2].as.i == -5);
    char *text = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(nvm_value_format(vm, out[3], &text, &len, &cap), NVM_OK);
    char *orig = NULL;
    size_t olen = 0, ocap = 0;
    assert_int_equal(nvm_value_format(vm, arr, &orig, &olen, &ocap), NVM_OK);
    assert_int_equal(len, olen);
    assert_memory_equal(text, orig, len);
    assert_true(out[3].as.h != arr.as.h);
    /* the cycle points back at the decoded array itself */
    nvm_value m2 = nvm_value_array_get(vm, out[3], 0);
    uint32_t pos = 0;
    nvm_value key, val;
    assert_true(nvm_value_map_entry(vm, m2, &pos, &key, &val));
    assert_true(nvm_value_map_entry(vm, m2, &pos, &key, &val));
    assert_true(key.type == NVM_T_INT && val.type == NVM_T_ARRAY && val.as.h == out[3].as.h);
    nvm_vm_free_buffer(vm, text, cap);
    nvm_vm_free_buffer(vm, orig, ocap);
    nvm_value_unroot(vm, 5);
    nvm_mbuf_free(&b);
    nvm_vm_free(vm);
}

static void test_depth_limit(void **state)
{
    (void)state;
    nvm_vm *vm = new_vm();
    nvm_value outer;
    assert_int_equal(nvm_value_new_array(vm, &outer), NVM_OK);
    assert_int_equal(nvm_value_root(vm, outer), NVM_OK);
    nvm_value cur = outer;
    for (uint32_t i = 0; i < NVM_MARSHAL_MAX_DEPTH + 1; i++) {
        nvm_value inner;
        assert_int_equal(nvm_value_new_array(vm, &inner), NVM_OK);
        assert_int_equal(nvm_array_push_value(vm, cur, inner), NVM_OK);
        cur = inner;
    }
    nvm_mbuf b;
    mbuf_for(vm, &b);
    assert_int_equal(nvm_marshal_encode(vm, &outer, 1, &b), NVM_E_PROGRAM);
    nvm_mbuf_free(&b);
    /* the marks are cleared: printing still works */
    char *text = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(nvm_value_format(vm, outer, &text, &len, &cap), NVM_OK);
    assert_true(len > 2 * NVM_MARSHAL_MAX_DEPTH);
    nvm_vm_free_buffer(vm, text, cap);
    nvm_value_unroot(vm, 1);
    nvm_vm_free(vm);
}

static void expect_malformed(nvm_vm *vm, const uint8_t *buf, size_t len)
{
    nvm_value out[4];
    uint32_t n = 99, troots = vm->heap.ntroots;
    assert_int_equal(nvm_marshal_decode(vm, buf, len, out, 4, &n), NVM_E_FORMAT);
    assert_int_equal(n, 0);
    assert_int_equal(vm->heap.ntroots, troots);
}

static void test_malformed(void **state)
{
    (void)state;
    nvm_vm *vm = new_vm();
    static const uint8_t truncated[] = {1, 0, 0, 0, NVM_MT_INT, 1, 2};
    static const uint8_t bad_tag[] = {1, 0, 0, 0, 42};
    static const uint8_t huge_str[] = {1, 0, 0, 0, NVM_MT_STR, 0xff, 0xff, 0xff, 0xff, 'x'};
    static const uint8_t huge_count[] = {1, 0, 0, 0, NVM_MT_ARRAY, 0xff, 0xff, 0xff, 0x7f, 0};
    static const uint8_t too_many[] = {5, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t trailing[] = {1, 0, 0, 0, NVM_MT_NULL, 0};
    static const uint8_t top_backref[] = {1, 0, 0, 0, NVM_MT_BACKREF, 0, 0, 0, 0};
    static const uint8_t far_backref[] = {1, 0, 0, 0, NVM_MT_ARRAY, 1, 0, 0, 0, NVM_MT_BACKREF,
                                          1, 0, 0, 0};
    static const uint8_t array_key[] = {1, 0, 0, 0, NVM_MT_MAP, 1, 0, 0, 0, NVM_MT_ARRAY,
                                        0, 0, 0, 0, NVM_MT_NULL};
    static const uint8_t second_bad[] = {2, 0, 0, 0, NVM_MT_STR, 1, 0, 0, 0, 'a', 9};
    expect_malformed(vm, truncated, sizeof truncated);
    expect_malformed(vm, bad_tag, sizeof bad_tag);
    expect_malformed(vm, huge_str, sizeof huge_str);
    expect_malformed(vm, huge_count, sizeof huge_count);
    expect_malformed(vm, too_many, sizeof too_many);
    expect_malformed(vm, trailing, sizeof trailing);
    expect_malformed(vm, top_backref, sizeof top_backref);
    expect_malformed(vm, far_backref, sizeof far_backref);
    expect_malformed(vm, array_key, sizeof array_key);
    expect_malformed(vm, second_bad, sizeof second_bad);
    expect_malformed(vm, truncated, 2);
    nvm_vm_free(vm);
}

#ifdef NVM_HAVE_WASM_SANDBOX

static nvm_module *load(const char *src)
{
    nvm_module *m = NULL;
    nvm_error err;
    assert_int_equal(nvm_module_from_casm(NULL, src, strlen(src), "t.casm", &m, &err), NVM_OK);
    return m;
}

/* Runs src on both tiers with the same configuration and compares everything reported. */
static void same_on_both(const char *src, const nvm_config *cfg, nvm_status expect)
{
    nvm_module *m = load(src);
    nvm_error e1, e2;
    int64_t g1 = -1, g2 = -2;
    memset(&e1, 0, sizeof e1);
    memset(&e2, 0, sizeof e2);
    nvm_status s1 = nvm_execute(cfg, m, NULL, NVM_TIER_INTERP, false, &g1, &e1);
    nvm_status s2 = nvm_execute(cfg, m, NULL, NVM_TIER_WASM, false, &g2, &e2);
    assert_int_equal(s1, expect);
    assert_int_equal(s2, expect);
    assert_true(g1 == g2);
    if (expect != NVM_OK) {
        assert_string_equal(e1.message, e2.message);
        assert_string_equal(e1.backtrace, e2.backtrace);
        assert_string_equal(e1.file, e2.file);
        assert_int_equal(e1.line, e2.line);
    }
    nvm_module_free(m);
}

static void test_same_results(void **state)
{
    (void)state;
    assert_true(nvm_tier_available(NVM_TIER_WASM));
    nvm_config cfg;
    nvm_config_init(&cfg);
    same_on_both(".func main\n PUSH 1\n PUSH 2\n ADD\n POP\n HALT\n", &cfg, NVM_OK);
    same_on_both(".func main\n PUSH 1\n CALL f\n HALT\n.func f 1\n PUSH 0\n DIV\n RET\n", &cfg,
                 NVM_E_PROGRAM);
    cfg.gas = 1000;
    same_on_both(".func main\nl:\n JMP l\n", &cfg, NVM_E_GAS);
    nvm_config_init(&cfg);
    cfg.max_memory = 1 << 20;
    same_on_both(".func main\n NEW_ARRAY 0\n STORE 0\nl:\n LOAD 0\n PUSH_STR \"xxxxxxxxxxxxxxxx\"\n"
                 " ARR_PUSH\n POP\n JMP l\n",
                 &cfg, NVM_E_MEMORY);
}

static int probe_calls;

static nvm_status probe(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                        nvm_value *result)
{
    (void)vm;
    (void)ud;
    (void)args;
    probe_calls++;
    *result = nvm_int(argc);
    return NVM_OK;
}

static void expect_refused(nvm_vm *proxy, uint32_t cap, uint32_t ptr, uint32_t len, uint32_t out,
                           uint32_t out_cap, const char *why)
{
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_error err;
    memset(&err, 0, sizeof err);
    int before = probe_calls;
    assert_int_equal(nvm_sandbox_forge_call(&cfg, proxy, cap, ptr, len, out, out_cap, &err),
                     NVM_E_INTERNAL);
    assert_non_null(strstr(err.message, "sandbox violation"));
    assert_non_null(strstr(err.message, why));
    assert_int_equal(probe_calls, before);
}

static void test_forged_pointers(void **state)
{
    (void)state;
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_vm *proxy = new_vm();
    assert_int_equal(nvm_vm_register_cap(proxy, "test.probe", NVM_VARIADIC, probe, NULL), NVM_OK);
    /* address 1024 lies in the guest's (zeroed, idle) stack: a valid empty argument list */
    nvm_error err;
    assert_int_equal(nvm_sandbox_forge_call(&cfg, proxy, 0, 1024, 4, 2048, 64, &err), NVM_OK);
    assert_int_equal(probe_calls, 1);
    const uint32_t end = NVM_SB_INITIAL_PAGES * 65536u;
    expect_refused(proxy, 0, 0xffffff00u, 0x200, 2048, 64, "outside the linear memory");
    expect_refused(proxy, 0, 0xffffffffu, 2, 2048, 64, "outside the linear memory");
    expect_refused(proxy, 0, end - 2, 4, 2048, 64, "outside the linear memory");
    expect_refused(proxy, 0, 1024, 0xffffffffu, 2048, 64, "outside the linear memory");
    expect_refused(proxy, 0, 1024, 4, end - 8, 64, "reply buffer");
    expect_refused(proxy, 0, 1024, 4, 0xfffffff0u, 0x20, "reply buffer");
    expect_refused(proxy, 1, 1024, 4, 2048, 64, "call of capability 1 of 1");
    expect_refused(proxy, 0, 1024, 2, 2048, 64, "malformed capability arguments");
    nvm_vm_free(proxy);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),    cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_malformed),
#ifdef NVM_HAVE_WASM_SANDBOX
        cmocka_unit_test(test_same_results), cmocka_unit_test(test_forged_pointers),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
