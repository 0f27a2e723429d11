/* test_interrupt.c - unit tests of the interrupt hook (nvm_config.interrupt) through the public
 * API: how often it runs, that a failing return ends the run with its status (not catchable, also
 * inside calls without loops), and that a hook returning NVM_OK changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nanovm.h"

/* The hook's state: calls so far, and the call (1-based) at which it returns `fail_status`
 * (0 = never). */
typedef struct hook_state {
    int calls;
    int fail_at;
    nvm_status fail_status;
} hook_state;

static nvm_status hook(void *ud)
{
    hook_state *h = ud;
    h->calls++;
    if (h->fail_at != 0 && h->calls >= h->fail_at)
        return h->fail_status;
    return NVM_OK;
}

typedef struct run_result {
    nvm_status status;
    int64_t gas_used;
    char message[NVM_ERROR_MESSAGE_MAX];
} run_result;

/* Assembles and runs `src` with the hook (when `h` is not NULL) and the given gas limit. */
static void run(const char *src, hook_state *h, int64_t gas, uint32_t max_depth, run_result *r)
{
    nvm_config cfg;
    nvm_error err;
    nvm_module *m = NULL;
    nvm_vm *vm = NULL;
    nvm_config_init(&cfg);
    cfg.gas = gas;
    if (max_depth != 0)
        cfg.max_depth = max_depth;
    if (h != NULL) {
        cfg.interrupt = hook;
        cfg.interrupt_ud = h;
    }
    memset(r, 0, sizeof *r);
    assert_int_equal(nvm_module_from_casm(&cfg, src, strlen(src), "t.casm", &m, &err), NVM_OK);
    assert_int_equal(nvm_vm_new(&cfg, &vm), NVM_OK);
    assert_int_equal(nvm_vm_load(vm, m), NVM_OK);
    r->status = nvm_vm_run(vm);
    r->gas_used = nvm_vm_gas_used(vm);
    if (r->status != NVM_OK)
        memcpy(r->message, nvm_vm_error(vm)->message, sizeof r->message);
    nvm_vm_free(vm);
    nvm_module_free(m);
}

/* An endless loop of two instructions. */
static const char *const forever = ".func main\ntop:\n    NOP\n    JMP top\n";

/* Counts to 100,000 (7 instructions per round plus set-up) and returns. */
static const char *const counter = ".func main\n"
                                   "    PUSH 0\n    STORE 0\n"
                                   "top:\n"
                                   "    LOAD 0\n    PUSH 100000\n    LT\n    JZ done\n"
                                   "    LOAD 0\n    PUSH 1\n    ADD\n    STORE 0\n    JMP top\n"
                                   "done:\n    LOAD 0\n    RET\n";

static void test_time_limit_ends_loop(void **state)
{
    (void)state;
    hook_state h = {0, 3, NVM_E_TIME};
    run_result r;
    run(forever, &h, -1, 0, &r);
    assert_int_equal(r.status, NVM_E_TIME);
    assert_int_equal(h.calls, 3);
    assert_int_equal(r.gas_used, 3 * 65536);
    assert_non_null(strstr(r.message, "wall-time limit exceeded"));
    assert_int_equal(nvm_status_exit_code(r.status), 5);
}

static void test_not_catchable(void **state)
{
    (void)state;
    const char *src = ".func main\n"
                      "    ENTER_TRY caught\n"
                      "top:\n    NOP\n    JMP top\n"
                      "caught:\n    POP\n    PUSH 7\n    RET\n";
    hook_state h = {0, 1, NVM_E_TIME};
    run_result r;
    run(src, &h, -1, 0, &r);
    assert_int_equal(r.status, NVM_E_TIME);
    assert_int_equal(h.calls, 1);

    /* even a status that a THROW could produce ends the run when the hook returns it */
    hook_state p = {0, 1, NVM_E_PROGRAM};
    run(src, &p, -1, 0, &r);
    assert_int_equal(r.status, NVM_E_PROGRAM);
}

static void test_reached_through_calls(void **state)
{
    (void)state;
    /* endless recursion: one CALL per frame, no loop; the hook runs before the depth limit */
    const char *src = ".func main\n    CALL f\n    HALT\n.func f\n    CALL f\n    RET\n";
    hook_state h = {0, 1, NVM_E_TIME};
    run_result r;
    run(src, &h, -1, 200000, &r);
    assert_int_equal(r.status, NVM_E_TIME);
    assert_int_equal(h.calls, 1);
    assert_int_equal(r.gas_used, 65536);
}

static void test_ok_hook_changes_nothing(void **state)
{
    (void)state;
    run_result plain, hooked;
    run(counter, NULL, -1, 0, &plain);
    hook_state h = {0, 0, NVM_OK};
    run(counter, &h, -1, 0, &hooked);
    assert_int_equal(plain.status, NVM_OK);
    assert_int_equal(hooked.status, NVM_OK);
    assert_int_equal(plain.gas_used, hooked.gas_used);
    assert_int_equal(h.calls, (int)(plain.gas_used / 65536));
    assert_true(h.calls >= 10);
}

static void test_with_gas_limit(void **state)
{
    (void)state;
    hook_state h = {0, 0, NVM_OK};
    run_result r;
    run(forever, &h, 200000, 0, &r);
    assert_int_equal(r.status, NVM_E_GAS);
    assert_int_equal(r.gas_used, 200000);
    assert_int_equal(h.calls, 3);

    /* the gas limit wins when it falls exactly on a check point */
    hook_state e = {0, 0, NVM_OK};
    run(forever, &e, 65536, 0, &r);
    assert_int_equal(r.status, NVM_E_GAS);
    assert_int_equal(r.gas_used, 65536);
    assert_int_equal(e.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_limit_ends_loop),
        cmocka_unit_test(test_not_catchable),
        cmocka_unit_test(test_reached_through_calls),
        cmocka_unit_test(test_ok_hook_changes_nothing),
        cmocka_unit_test(test_with_gas_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
