/* sys.c - process and system capabilities: env.get, args.get, time.now, time.monotonic,
 * time.sleep, random.int, random.bytes. env.get is checked against the env scopes of the grant
 * (the variable name) and audited; the others are audited only with audit_pure_calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "host/hal.h"

#define NVM_RANDOM_BYTES_MAX (1u << 20)

static nvm_status env_get(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    size_t len = 0;
    const char *s = nvm_value_str(vm, args[0], &len);
    if (s == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "env.get: the name must be a str, got %s",
                            nvm_type_name((nvm_type)args[0].type));
    char name[256];
    if (memchr(s, '\0', len) != NULL || len >= sizeof name) {
        nvm_host_arg_text(s, len, name, sizeof name);
        return nvm_host_deny(h, vm, "env.get", name,
                             len >= sizeof name ? "name too long" : "NUL byte inside the name");
    }
    memcpy(name, s, len);
    name[len] = '\0';
    nvm_status st = nvm_host_gate(h, vm, "env.get", name, 0, NULL);
    if (st != NVM_OK)
        return st;
    const char *v = getenv(name);
    if (v == NULL)
        return NVM_OK; /* null */
    return nvm_value_new_str(vm, v, strlen(v), result);
}

static nvm_status args_get(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    if (args[0].type != NVM_T_INT)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "args.get: the index must be an int, got %s",
                            nvm_type_name((nvm_type)args[0].type));
    nvm_status st = nvm_host_gate(h, vm, "args.get", NULL, NVM_GATE_PURE, NULL);
    if (st != NVM_OK)
        return st;
    int64_t i = args[0].as.i;
    if (i < 0 || i >= (int64_t)h->cfg.nargs)
        return NVM_OK; /* null */
    const char *a = h->cfg.args[i];
    return nvm_value_new_str(vm, a, strlen(a), result);
}

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static nvm_status time_now(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)args;
    (void)argc;
    nvm_status st = nvm_host_gate(ud, vm, "time.now", NULL, NVM_GATE_PURE, NULL);
    if (st == NVM_OK)
        *result = nvm_float(clock_seconds(CLOCK_REALTIME));
    return st;
}

static nvm_status time_monotonic(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                                 nvm_value *result)
{
    (void)args;
    (void)argc;
    nvm_status st = nvm_host_gate(ud, vm, "time.monotonic", NULL, NVM_GATE_PURE, NULL);
    if (st == NVM_OK)
        *result = nvm_float(clock_seconds(CLOCK_MONOTONIC));
    return st;
}

static nvm_status time_sleep(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                             nvm_value *result)
{
    (void)argc;
    (void)result;
    nvm_host *h = ud;
    int64_t ms;
    if (args[0].type == NVM_T_INT)
        ms = args[0].as.i;
    else if (args[0].type == NVM_T_FLOAT && args[0].as.f >= 0 && args[0].as.f < 9.2e15)
        ms = (int64_t)args[0].as.f;
    else
        return nvm_cap_fail(vm, NVM_E_PROGRAM,
                            "time.sleep: expects a non-negative number of milliseconds");
    if (ms < 0)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "time.sleep: negative duration");
    nvm_status st = nvm_host_gate(h, vm, "time.sleep", NULL, NVM_GATE_PURE, NULL);
    if (st != NVM_OK)
        return st;
    bool cut = false;
    if (h->deadline_ms >= 0) {
        int64_t left = h->deadline_ms - nvm_host_now_ms() + 1;
        if (left < 0)
            left = 0;
        if (ms > left) {
            ms = left;
            cut = true;
        }
    }
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return cut ? nvm_host_check_deadline(h, vm) : NVM_OK;
}

static nvm_status fill_random(nvm_vm *vm, const char *capname, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return nvm_cap_fail(vm, NVM_E_IO, "%s: getrandom failed: %s", capname, strerror(errno));
        got += (size_t)r;
    }
    return NVM_OK;
}

static nvm_status random_int(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                             nvm_value *result)
{
    (void)argc;
    if (args[0].type != NVM_T_INT || args[1].type != NVM_T_INT)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "random.int: expects two ints (lo, hi)");
    int64_t lo = args[0].as.i, hi = args[1].as.i;
    if (lo > hi)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "random.int: lo is greater than hi");
    nvm_status st = nvm_host_gate(ud, vm, "random.int", NULL, NVM_GATE_PURE, NULL);
    if (st != NVM_OK)
        return st;
    uint64_t span = (uint64_t)hi - (uint64_t)lo; /* values in range: span + 1 */
    uint64_t r;
    if (span == UINT64_MAX) {
        st = fill_random(vm, "random.int", &r, sizeof r);
    } else {
        uint64_t n = span + 1, threshold = (0 - n) % n; /* reject r < threshold: no bias */
        do
            st = fill_random(vm, "random.int", &r, sizeof r);
        while (st == NVM_OK && r < threshold);
        r %= n;
    }
    if (st == NVM_OK)
        *result = nvm_int((int64_t)((uint64_t)lo + r));
    return st;
}

static nvm_status random_bytes(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                               nvm_value *result)
{
    (void)argc;
    if (args[0].type != NVM_T_INT || args[0].as.i < 0 || args[0].as.i > NVM_RANDOM_BYTES_MAX)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "random.bytes: expects an int n in 0..%u",
                            NVM_RANDOM_BYTES_MAX);
    nvm_status st = nvm_host_gate(ud, vm, "random.bytes", NULL, NVM_GATE_PURE, NULL);
    if (st != NVM_OK)
        return st;
    size_t n = (size_t)args[0].as.i;
    char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return nvm_cap_fail(vm, NVM_E_MEMORY, "random.bytes: out of memory");
    st = fill_random(vm, "random.bytes", buf, n);
    if (st == NVM_OK)
        st = nvm_value_new_str(vm, buf, n, result);
    free(buf);
    return st;
}

nvm_status nvm_host_install_sys(nvm_host *h, nvm_vm *vm)
{
    static const struct {
        const char *name;
        uint32_t argc;
        nvm_cap_fn fn;
    } caps[] = {
        {"env.get", 1, env_get},           {"args.get", 1, args_get},
        {"time.now", 0, time_now},         {"time.monotonic", 0, time_monotonic},
        {"time.sleep", 1, time_sleep},     {"random.int", 2, random_int},
        {"random.bytes", 1, random_bytes},
    };
    nvm_status st = NVM_OK;
    for (size_t i = 0; st == NVM_OK && i < sizeof caps / sizeof caps[0]; i++)
        st = nvm_vm_register_cap(vm, caps[i].name, caps[i].argc, caps[i].fn, h);
    return st;
}
