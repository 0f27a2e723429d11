/* wasm32_driver.c - a tiny host for the wasm32 build of the portable core: reads a CASM program
 * from standard input, assembles, verifies and runs it with io.print on standard output. Proves
 * that the core builds and runs under wasi-libc with no OS call of its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nanovm.h"

static nvm_status cap_print(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)ud;
    (void)result;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (uint32_t i = 0; i < argc; i++) {
        nvm_status st = nvm_value_format(vm, args[i], &buf, &len, &cap);
        if (st != NVM_OK) {
            nvm_vm_free_buffer(vm, buf, cap);
            return st;
        }
    }
    fwrite(buf != NULL ? buf : "", 1, len, stdout);
    fputc('\n', stdout);
    nvm_vm_free_buffer(vm, buf, cap);
    return NVM_OK;
}

int main(void)
{
    size_t cap = 4096, len = 0;
    char *src = malloc(cap);
    if (src == NULL)
        return 70;
    size_t n;
    while ((n = fread(src + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) {
            char *ns = realloc(src, cap * 2);
            if (ns == NULL) {
                free(src);
                return 70;
            }
            src = ns;
            cap *= 2;
        }
    }
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_module *m = NULL;
    nvm_vm *vm = NULL;
    nvm_status st = nvm_module_from_casm(&cfg, src, len, "stdin.casm", &m, &err);
    free(src);
    if (st != NVM_OK) {
        fprintf(stderr, "nanovm-core: %s\n", err.message);
        return nvm_status_exit_code(st);
    }
    st = nvm_vm_new(&cfg, &vm);
    if (st == NVM_OK)
        st = nvm_vm_register_cap(vm, "io.print", NVM_VARIADIC, cap_print, NULL);
    if (st == NVM_OK)
        st = nvm_vm_load(vm, m);
    if (st == NVM_OK)
        st = nvm_vm_run(vm);
    fflush(stdout);
    if (st != NVM_OK && vm != NULL)
        fprintf(stderr, "nanovm-core: %s\n", nvm_vm_error(vm)->message);
    nvm_vm_free(vm);
    nvm_module_free(m);
    return nvm_status_exit_code(st);
}
