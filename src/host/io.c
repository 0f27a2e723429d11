/* io.c - the standard stream capabilities: io.print and io.eprint (variadic: the printed forms of
 * the arguments joined without separator, then a newline, written and flushed at once so that
 * output is never lost) and io.read (one line of stdin without its line ending, "" at end of
 * input). With a host (nvm_host_install) every call goes through the gate; without one
 * (nvm_host_register_stdio, for embedders) io.print and io.read are ungated. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "host/hal.h"

static nvm_status print_to(nvm_vm *vm, FILE *out, const char *capname, const nvm_value *args,
                           uint32_t argc)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    nvm_status st = NVM_OK;
    for (uint32_t i = 0; i < argc && st == NVM_OK; i++)
        st = nvm_value_format(vm, args[i], &buf, &len, &cap);
    if (st != NVM_OK)
        goto fail;
    if (out == stderr)
        fflush(stdout);
    if ((len > 0 && fwrite(buf, 1, len, out) != len) || fputc('\n', out) == EOF ||
        fflush(out) != 0) {
        st = nvm_cap_fail(vm, NVM_E_IO, "%s: cannot write to standard %s", capname,
                          out == stderr ? "error" : "output");
        goto fail;
    }
fail:
    if (buf != NULL)
        nvm_vm_free_buffer(vm, buf, cap);
    return st;
}

static nvm_status read_line(nvm_vm *vm, nvm_host *h, nvm_value *result)
{
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
    if (h != NULL && (st = nvm_host_account(h, vm, got, 0)) != NVM_OK)
        goto done;
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
        got--;
    st = nvm_value_new_str(vm, got > 0 ? line : "", (size_t)got, result);
done:
    free(line);
    return st;
}

static nvm_status io_print(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)result;
    nvm_host *h = ud;
    if (h != NULL) {
        nvm_status st = nvm_host_gate(h, vm, "io.print", NULL, NVM_GATE_PURE, NULL);
        if (st != NVM_OK)
            return st;
    }
    return print_to(vm, stdout, "io.print", args, argc);
}

static nvm_status io_eprint(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)result;
    nvm_status st = nvm_host_gate(ud, vm, "io.eprint", NULL, NVM_GATE_PURE, NULL);
    if (st != NVM_OK)
        return st;
    return print_to(vm, stderr, "io.eprint", args, argc);
}

static nvm_status io_read(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    (void)args;
    (void)argc;
    nvm_host *h = ud;
    if (h != NULL) {
        nvm_status st = nvm_host_gate(h, vm, "io.read", NULL, NVM_GATE_PURE, NULL);
        if (st != NVM_OK)
            return st;
    }
    return read_line(vm, h, result);
}

nvm_status nvm_host_install_io(nvm_host *h, nvm_vm *vm)
{
    nvm_status st = nvm_vm_register_cap(vm, "io.print", NVM_VARIADIC, io_print, h);
    if (st == NVM_OK)
        st = nvm_vm_register_cap(vm, "io.eprint", NVM_VARIADIC, io_eprint, h);
    if (st == NVM_OK)
        st = nvm_vm_register_cap(vm, "io.read", 0, io_read, h);
    return st;
}

nvm_status nvm_host_register_stdio(nvm_vm *vm)
{
    nvm_status st = nvm_vm_register_cap(vm, "io.print", NVM_VARIADIC, io_print, NULL);
    if (st == NVM_OK)
        st = nvm_vm_register_cap(vm, "io.read", 0, io_read, NULL);
    return st;
}
