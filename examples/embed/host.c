/* host.c - a minimal program embedding NanoVM through nanovm.h only.
 *
 * It assembles a CASM program from a string, gives it one capability of its own ("host.report",
 * which receives the program's result), runs it under a gas limit and a memory limit through a
 * counting allocator, and reports what happened. Built and run by the test suite. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nanovm.h"

/* A counting allocator with the lua_Alloc contract. */
typedef struct counter {
    size_t live;
    size_t peak;
} counter;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    counter *c = ud;
    if (nsize == 0) {
        if (ptr != NULL)
            c->live -= osize;
        free(ptr);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    c->live = c->live - (ptr != NULL ? osize : 0) + nsize;
    if (c->live > c->peak)
        c->peak = c->live;
    return p;
}

typedef struct report {
    char text[256];
} report;

/* host.report(label, value): formats both and keeps the text for the host. */
static nvm_status host_report(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                              nvm_value *result)
{
    report *r = ud;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (uint32_t i = 0; i < argc; i++) {
        nvm_status st = nvm_value_format(vm, args[i], &buf, &len, &cap);
        if (st != NVM_OK) {
            nvm_vm_free_buffer(vm, buf, cap);
            return st;
        }
    }
    snprintf(r->text, sizeof r->text, "%.*s", (int)len, buf != NULL ? buf : "");
    nvm_vm_free_buffer(vm, buf, cap);
    *result = nvm_bool(true);
    return NVM_OK;
}

static const char program[] = ".func main\n"
                              "    PUSH 10\n"
                              "    CALL sum_to\n"
                              "    STORE 0\n"
                              "    PUSH_STR \"sum = \"\n"
                              "    LOAD 0\n"
                              "    CAP_CALL \"host.report\" 2\n"
                              "    POP\n"
                              "    HALT\n"
                              ".func sum_to 1          ; n -> 1 + 2 + ... + n\n"
                              "    STORE 0\n"
                              "    PUSH 0\n"
                              "    STORE 1\n"
                              "loop:\n"
                              "    LOAD 0\n"
                              "    JZ done\n"
                              "    LOAD 1\n"
                              "    LOAD 0\n"
                              "    ADD\n"
                              "    STORE 1\n"
                              "    LOAD 0\n"
                              "    PUSH 1\n"
                              "    SUB\n"
                              "    STORE 0\n"
                              "    JMP loop\n"
                              "done:\n"
                              "    LOAD 1\n"
                              "    RET\n";

int main(void)
{
    counter cnt = {0, 0};
    nvm_config cfg;
    nvm_config_init(&cfg);
    cfg.alloc = counting_alloc;
    cfg.alloc_ud = &cnt;
    cfg.gas = 10000;
    cfg.max_memory = 4u << 20;

    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_module *m = NULL;
    nvm_vm *vm = NULL;
    report rep = {{0}};
    int rc = 1;

    nvm_status st =
        nvm_module_from_casm(&cfg, program, sizeof program - 1, "embedded.casm", &m, &err);
    if (st != NVM_OK) {
        fprintf(stderr, "load failed: %s: %s\n", nvm_status_name(st), err.message);
        goto fail;
    }
    st = nvm_vm_new(&cfg, &vm);
    if (st != NVM_OK)
        goto fail;
    st = nvm_vm_register_cap(vm, "host.report", 2, host_report, &rep);
    if (st == NVM_OK)
        st = nvm_vm_load(vm, m);
    if (st == NVM_OK)
        st = nvm_vm_run(vm);
    if (st != NVM_OK) {
        fprintf(stderr, "run failed: %s: %s\n", nvm_status_name(st), nvm_vm_error(vm)->message);
        goto fail;
    }
    printf("host saw: %s\n", rep.text);
    printf("gas used: %lld, peak memory: %zu bytes\n", (long long)nvm_vm_gas_used(vm), cnt.peak);
    rc = 0;
fail:
    nvm_vm_free(vm);
    nvm_module_free(m);
    if (cnt.live != 0) {
        fprintf(stderr, "leak: %zu bytes still allocated\n", cnt.live);
        rc = 1;
    }
    return rc;
}
