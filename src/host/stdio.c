/* stdio.c - the standard streams capabilities: io.print (variadic: the printed forms of its
 * arguments joined without separator, then a newline, written and flushed at once so that output
 * is never lost) and io.read (one line from stdin without its line ending, "" at end of input). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "nanovm.h"

static nvm_status io_print(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)ud;
    (void)result;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    nvm_status st = NVM_OK;
    for (uint32_t i = 0; i < argc && st == NVM_OK; i++)
        st = nvm_value_format(vm, args[i], &buf, &len, &cap);
    if (st != NVM_OK)
        goto fail;
    if ((len > 0 && fwrite(buf, 1, len, stdout) != len) || fputc('\n', stdout) == EOF ||
        fflush(stdout) != 0) {
        st = nvm_cap_fail(vm, NVM_E_IO, "io.print: cannot write to standard output");
        goto fail;
    }
fail:
    if (buf != NULL)
        nvm_vm_free_buffer(vm, buf, cap);
    return st;
}

static nvm_status io_read(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    (void)ud;
    (void)args;
    (void)argc;
    char *line = NULL;
    size_t n = 0;
    ssize_t got = getline(&line, &n, stdin);
    nvm_status st;
    if (got < 0) {
        if (ferror(stdin)) {
            st = nvm_cap_fail(vm, NVM_E_IO, "io.read: cannot read standard input");
            goto done;
        }
        got = 0;
    }
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
        got--;
    st = nvm_value_new_str(vm, got > 0 ? line : "", (size_t)got, result);
done:
    free(line);
    return st;
}

nvm_status nvm_host_register_stdio(nvm_vm *vm)
{
    nvm_status st = nvm_vm_register_cap(vm, "io.print", NVM_VARIADIC, io_print, NULL);
    if (st == NVM_OK)
        st = nvm_vm_register_cap(vm, "io.read", 0, io_read, NULL);
    return st;
}
