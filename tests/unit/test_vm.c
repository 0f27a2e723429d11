/* test_vm.c - unit tests of the VM and the interpreter through the public API (nanovm.h only):
 * small CASM programs run with a capturing print capability; results, errors, limits, backtraces
 * and linking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "nanovm.h"

/* Output captured by the test capability "t.print" (variadic, like io.print). Unlike io.print it
 * is not listed in capabilities.def, so CAP_CALL "t.print" pushes a result (null): hence the
 * POPs after it. */
typedef struct capture {
    char text[8192];
    size_t len;
} capture;

static nvm_status cap_print(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    capture *c = ud;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    (void)result;
    for (uint32_t i = 0; i < argc; i++) {
        nvm_status st = nvm_value_format(vm, args[i], &buf, &len, &cap);
        if (st != NVM_OK) {
            nvm_vm_free_buffer(vm, buf, cap);
            return st;
        }
    }
    int n = snprintf(c->text + c->len, sizeof c->text - c->len, "%.*s\n", (int)len,
                     buf != NULL ? buf : "");
    if (n > 0)
        c->len += (size_t)n < sizeof c->text - c->len ? (size_t)n : sizeof c->text - c->len - 1;
    nvm_vm_free_buffer(vm, buf, cap);
    return NVM_OK;
}

/* "t.deny" fails with NVM_E_DENIED (a catchable program error). */
static nvm_status cap_deny(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)ud;
    (void)args;
    (void)argc;
    (void)result;
    return nvm_cap_fail(vm, NVM_E_DENIED, "capability t.deny denied by policy");
}

/* "t.twice" returns its int argument doubled. */
static nvm_status cap_twice(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)ud;
    (void)argc;
    if (args[0].type != NVM_T_INT)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "t.twice expects an int");
    *result = nvm_int(args[0].as.i * 2);
    return NVM_OK;
}

typedef struct result {
    nvm_status load_status; /* module load */
    nvm_status link_status; /* nvm_vm_load */
    nvm_status status;      /* final status of the whole sequence */
    nvm_error err;          /* copy of the failing error record */
    int64_t gas_used;
    capture out;
} result;

/* Assembles, links and runs `src` under `cfg` (NULL: defaults). */
static void run_casm(const char *src, const nvm_config *cfg, result *r)
{
    nvm_config c;
    nvm_module *m = NULL;
    nvm_vm *vm = NULL;
    memset(r, 0, sizeof *r);
    if (cfg != NULL)
        c = *cfg;
    else
        nvm_config_init(&c);

    r->load_status = nvm_module_from_casm(&c, src, strlen(src), "test.casm", &m, &r->err);
    r->status = r->load_status;
    if (r->load_status != NVM_OK)
        goto done;
    r->status = nvm_vm_new(&c, &vm);
    if (r->status != NVM_OK)
        goto done;
    assert_int_equal(nvm_vm_register_cap(vm, "t.print", NVM_VARIADIC, cap_print, &r->out), NVM_OK);
    assert_int_equal(nvm_vm_register_cap(vm, "t.deny", 0, cap_deny, NULL), NVM_OK);
    assert_int_equal(nvm_vm_register_cap(vm, "t.twice", 1, cap_twice, NULL), NVM_OK);
    r->link_status = nvm_vm_load(vm, m);
    r->status = r->link_status;
    if (r->status != NVM_OK) {
        r->err = *nvm_vm_error(vm);
        goto done;
    }
    r->status = nvm_vm_run(vm);
    r->gas_used = nvm_vm_gas_used(vm);
    if (r->status != NVM_OK)
        r->err = *nvm_vm_error(vm);
done:
    nvm_vm_free(vm);
    nvm_module_free(m);
}

static void test_arithmetic(void **state)
{
    (void)state;
    result r;
    run_casm(".func main\n"
             "    PUSH 6\n"
             "    PUSH 7\n"
             "    MUL\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    POP\n"
             "    PUSH_STR \"6 * 7 = \"\n"
             "    PUSH 42\n"
             "    ADD\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    POP\n"
             "    PUSH -7\n"
             "    PUSH 2\n"
             "    DIV\n"
             "    PUSH -7\n"
             "    PUSH 2\n"
             "    MOD\n"
             "    PUSH_F64 1.5\n"
             "    PUSH 2\n"
             "    MUL\n"
             "    PUSH 2\n"
             "    PUSH_F64 2.0\n"
             "    EQ\n"
             "    CAP_CALL \"t.print\" 4\n"
             "    POP\n"
             "    PUSH 21\n"
             "    CAP_CALL \"t.twice\" 1\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    HALT\n",
             NULL, &r);
    assert_int_equal(r.status, NVM_OK);
    assert_string_equal(r.out.text, "42\n6 * 7 = 42\n-3-13.0true\n42\n");
    assert_true(r.gas_used > 0);
}

static void test_overflow(void **state)
{
    (void)state;
    result r;
    run_casm(".func main\n"
             "    PUSH 9223372036854775807\n"
             "    PUSH 1\n"
             "    ADD\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    HALT\n",
             NULL, &r);
    assert_int_equal(r.status, NVM_E_PROGRAM);
    assert_non_null(strstr(r.err.message, "integer overflow in ADD"));
    assert_string_equal(r.out.text, "");
}

static void test_division_by_zero_caught(void **state)
{
    (void)state;
    result r;
    run_casm(".func main\n"
             "    ENTER_TRY handler\n"
             "    PUSH 1\n"
             "    PUSH 0\n"
             "    DIV\n"
             "    POP\n"
             "    EXIT_TRY\n"
             "    JMP end\n"
             "handler:\n"
             "    STORE 0\n"
             "    PUSH_STR \"caught: \"\n"
             "    LOAD 0\n"
             "    CAP_CALL \"t.print\" 2\n"
             "    POP\n"
             "end:\n"
             "    PUSH_STR \"after\"\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    HALT\n",
             NULL, &r);
    assert_int_equal(r.status, NVM_OK);
    assert_string_equal(r.out.text, "caught: division by zero\nafter\n");
}

static void test_denied_capability_caught(void **state)
{
    (void)state;
    result r;
    run_casm(".func main\n"
             "    ENTER_TRY handler\n"
             "    CAP_CALL \"t.deny\" 0\n"
             "    EXIT_TRY\n"
             "    HALT\n"
             "handler:\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    HALT\n",
             NULL, &r);
    assert_int_equal(r.status, NVM_OK);
    assert_string_equal(r.out.text, "capability t.deny denied by policy\n");
}

static const char throw_program[] = ".func main\n"
                                    "    PUSH 100\n"
                                    "    ENTER_TRY handler\n"
                                    "    PUSH 1\n"
                                    "    PUSH 2\n"
                                    "    CALL outer\n"
                                    "    EXIT_TRY\n"
                                    "    HALT\n"
                                    "handler:\n"
                                    "    STORE 0\n"
                                    "    PUSH_STR \"caught \"\n"
                                    "    LOAD 0\n"
                                    "    ADD\n"
                                    "    CAP_CALL \"t.print\" 1\n"
                                    "    POP\n"
                                    "    PUSH 1\n"
                                    "    ADD\n"
                                    "    CAP_CALL \"t.print\" 1\n"
                                    "    HALT\n"
                                    ".func outer\n"
                                    "    STORE 0\n"
                                    "    STORE 1\n"
                                    "    PUSH 7\n"
                                    "    CALL middle\n"
                                    "    RET\n"
                                    ".func middle\n"
                                    "    STORE 0\n"
                                    "    PUSH 8\n"
                                    "    CALL inner\n"
                                    "    RET\n"
                                    ".func inner\n"
                                    "    STORE 0\n"
                                    "    PUSH 9\n"
                                    "    PUSH_STR \"boom\"\n"
                                    "    THROW\n";

static void test_throw_across_frames(void **state)
{
    (void)state;
    result r;
    run_casm(throw_program, NULL, &r);
    assert_int_equal(r.status, NVM_OK);
    /* The handler runs in main with main's stack (100) restored below the thrown value. */
    assert_string_equal(r.out.text, "caught boom\n101\n");
}

static void test_uncaught_throw_backtrace(void **state)
{
    (void)state;
    result r;
    run_casm(".func main\n"
             "    CALL outer\n"
             "    HALT\n"
             ".func outer\n"
             "    CALL inner\n"
             "    RET\n"
             ".func inner\n"
             "    PUSH_STR \"boom\"\n"
             "    THROW\n",
             NULL, &r);
    assert_int_equal(r.status, NVM_E_PROGRAM);
    assert_string_equal(r.err.message, "uncaught exception: boom");
    const char *bt = r.err.backtrace;
    const char *a = strstr(bt, "at inner (test.casm:9)");
    const char *b = strstr(bt, "at outer (test.casm:5)");
    const char *c = strstr(bt, "at main (test.casm:2)");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_string_equal(r.err.file, "test.casm");
    assert_int_equal(r.err.line, 9);
}

static void test_gas_limit(void **state)
{
    (void)state;
    nvm_config cfg;
    nvm_config_init(&cfg);
    cfg.gas = 1000;
    result r;
    run_casm(".func main\n"
             "loop:\n"
             "    PUSH 1\n"
             "    POP\n"
             "    JMP loop\n",
             &cfg, &r);
    assert_int_equal(r.status, NVM_E_GAS);
    assert_int_equal(r.gas_used, 1000);
    assert_int_equal(nvm_status_exit_code(r.status), 5);

    /* Exactly enough gas: PUSH, CAP_CALL, HALT. */
    cfg.gas = 3;
    run_casm(".func main\n    PUSH 5\n    CAP_CALL \"t.print\" 1\n    HALT\n", &cfg, &r);
    assert_int_equal(r.status, NVM_OK);
    assert_int_equal(r.gas_used, 3);
    cfg.gas = 2;
    run_casm(".func main\n    PUSH 5\n    CAP_CALL \"t.print\" 1\n    HALT\n", &cfg, &r);
    assert_int_equal(r.status, NVM_E_GAS);
    assert_string_equal(r.out.text, "5\n");
}

static void test_depth_limit(void **state)
{
    (void)state;
    nvm_config cfg;
    nvm_config_init(&cfg);
    cfg.max_depth = 500;
    result r;
    run_casm(".func main\n"
             "    PUSH 0\n"
             "    CALL down\n"
             "    HALT\n"
             ".func down\n"
             "    STORE 0\n"
             "    LOAD 0\n"
             "    PUSH 1\n"
             "    ADD\n"
             "    CALL down\n"
             "    RET\n",
             &cfg, &r);
    assert_int_equal(r.status, NVM_E_DEPTH);
    assert_non_null(strstr(r.err.backtrace, "at down"));
    assert_non_null(strstr(r.err.backtrace, "more frames"));

    /* Under the default limit too; the depth error is not catchable. */
    run_casm(".func main\n"
             "    ENTER_TRY h\n"
             "    CALL f\n"
             "    HALT\n"
             "h:\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    HALT\n"
             ".func f\n"
             "    CALL f\n"
             "    RET\n",
             NULL, &r);
    assert_int_equal(r.status, NVM_E_DEPTH);
    assert_string_equal(r.out.text, "");

    /* Each frame keeps a value on the operand stack: the stack limit is hit first. */
    cfg.max_depth = 0; /* default */
    cfg.max_stack = 1000;
    run_casm(".func main\n"
             "    CALL grow\n"
             "    HALT\n"
             ".func grow\n"
             "    PUSH 1\n"
             "    CALL grow\n"
             "    RET\n",
             &cfg, &r);
    assert_int_equal(r.status, NVM_E_STACK);
}

static void test_memory_limit(void **state)
{
    (void)state;
    nvm_config cfg;
    nvm_config_init(&cfg);
    cfg.max_memory = 1u << 20;
    result r;
    run_casm(".func main\n"
             "    ENTER_TRY h\n"
             "    NEW_ARRAY 0\n"
             "loop:\n"
             "    PUSH_STR \"x\"\n"
             "    ARR_PUSH\n"
             "    JMP loop\n"
             "h:\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    HALT\n",
             &cfg, &r);
    assert_int_equal(r.status, NVM_E_MEMORY);
    assert_string_equal(r.out.text, "");

    /* Garbage is collected: a loop that allocates and drops strings runs within the limit. */
    run_casm(".func main\n"
             "    PUSH 0\n"
             "    STORE 0\n"
             "loop:\n"
             "    LOAD 0\n"
             "    PUSH 20000\n"
             "    LT\n"
             "    JZ done\n"
             "    PUSH_STR \"abcdefghijklmnopqrstuvwxyz\"\n"
             "    LOAD 0\n"
             "    ADD\n"
             "    POP\n"
             "    LOAD 0\n"
             "    PUSH 1\n"
             "    ADD\n"
             "    STORE 0\n"
             "    JMP loop\n"
             "done:\n"
             "    LOAD 0\n"
             "    CAP_CALL \"t.print\" 1\n"
             "    HALT\n",
             &cfg, &r);
    assert_int_equal(r.status, NVM_OK);
    assert_string_equal(r.out.text, "20000\n");
}

static void test_unknown_capability(void **state)
{
    (void)state;
    result r;
    run_casm(".func main\n    CAP_CALL \"nope.missing\" 0\n    HALT\n", NULL, &r);
    assert_int_equal(r.load_status, NVM_OK);
    assert_int_equal(r.status, NVM_E_LINK);
    assert_string_equal(r.err.message, "unknown capability \"nope.missing\"");
    assert_int_equal(nvm_status_exit_code(r.status), 3);

    /* Argument count mismatch with the registered count. */
    run_casm(".func main\n    PUSH 1\n    PUSH 2\n    CAP_CALL \"t.twice\" 2\n    HALT\n", NULL,
             &r);
    assert_int_equal(r.status, NVM_E_LINK);
    assert_non_null(strstr(r.err.message, "function main"));
    assert_non_null(strstr(r.err.message, "instruction 2"));
}

static void test_uninitialised_slot_and_type_error(void **state)
{
    (void)state;
    result r;
    run_casm(".func main\n    LOAD 3\n    HALT\n", NULL, &r);
    assert_int_equal(r.status, NVM_E_PROGRAM);
    assert_string_equal(r.err.message, "read of uninitialised slot 3");

    run_casm(".func main\n    PUSH_STR \"a\"\n    PUSH 1\n    SUB\n    HALT\n", NULL, &r);
    assert_int_equal(r.status, NVM_E_PROGRAM);
    assert_string_equal(r.err.message, "type error: SUB expects numbers, got str and int");
}

/* io.print (a catalog capability with no result) pushes nothing; the registration must match
 * the catalog signature. */
static void test_catalog_capability(void **state)
{
    (void)state;
    static const char src[] = ".func main\n"
                              "    PUSH 3\n"
                              "    STORE 0\n"
                              "loop:\n"
                              "    LOAD 0\n"
                              "    JZ done\n"
                              "    PUSH_STR \"n = \"\n"
                              "    LOAD 0\n"
                              "    CAP_CALL \"io.print\" 2\n"
                              "    LOAD 0\n"
                              "    PUSH 1\n"
                              "    SUB\n"
                              "    STORE 0\n"
                              "    JMP loop\n"
                              "done:\n"
                              "    HALT\n";
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_module *m = NULL;
    nvm_vm *vm = NULL;
    capture out;
    memset(&out, 0, sizeof out);
    assert_int_equal(nvm_module_from_casm(&cfg, src, strlen(src), "cat.casm", &m, &err), NVM_OK);

    assert_int_equal(nvm_vm_new(&cfg, &vm), NVM_OK);
    assert_int_equal(nvm_vm_register_cap(vm, "io.print", NVM_VARIADIC, cap_print, &out), NVM_OK);
    assert_int_equal(nvm_vm_load(vm, m), NVM_OK);
    assert_int_equal(nvm_vm_run(vm), NVM_OK);
    assert_string_equal(out.text, "n = 3\nn = 2\nn = 1\n");
    /* A second run of the same VM starts afresh. */
    out.len = 0;
    out.text[0] = '\0';
    assert_int_equal(nvm_vm_run(vm), NVM_OK);
    assert_string_equal(out.text, "n = 3\nn = 2\nn = 1\n");
    nvm_vm_free(vm);

    /* Registered with a fixed count while the catalog says variadic: link error. */
    vm = NULL;
    assert_int_equal(nvm_vm_new(&cfg, &vm), NVM_OK);
    assert_int_equal(nvm_vm_register_cap(vm, "io.print", 2, cap_print, &out), NVM_OK);
    assert_int_equal(nvm_vm_load(vm, m), NVM_E_LINK);
    assert_non_null(strstr(nvm_vm_error(vm)->message, "io.print"));
    nvm_vm_free(vm);
    nvm_module_free(m);
}

static void test_status_table(void **state)
{
    (void)state;
    assert_string_equal(nvm_status_name(NVM_OK), "OK");
    assert_string_equal(nvm_status_name(NVM_E_VERIFY), "E_VERIFY");
    assert_int_equal(nvm_status_exit_code(NVM_E_PROGRAM), 1);
    assert_int_equal(nvm_status_exit_code(NVM_E_DENIED), 6);
    assert_int_equal(nvm_status_exit_code(NVM_E_INTERNAL), 70);
    assert_string_equal(nvm_status_meaning(NVM_E_GAS), "gas exhausted");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arithmetic),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_division_by_zero_caught),
        cmocka_unit_test(test_denied_capability_caught),
        cmocka_unit_test(test_throw_across_frames),
        cmocka_unit_test(test_uncaught_throw_backtrace),
        cmocka_unit_test(test_gas_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_unknown_capability),
        cmocka_unit_test(test_uninitialised_slot_and_type_error),
        cmocka_unit_test(test_catalog_capability),
        cmocka_unit_test(test_status_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
