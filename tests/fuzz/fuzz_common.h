/* fuzz_common.h - shared body of the libFuzzer harnesses: exercise a loaded module (verify,
 * disassemble, serialize) with round-trip oracles, then run it in a small sandboxed VM.
 *
 * The oracles abort() when a documented guarantee breaks:
 *   - nvm_module_verify on a loaded module succeeds (loading already verified it);
 *   - the disassembly assembles, and disassembles again to the same text;
 *   - bytecode written from a module reloads and serializes to identical bytes.
 * Included by exactly one harness per executable; everything here is static. */
#ifndef NVM_FUZZ_COMMON_H
#define NVM_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nanovm.h"

#define FUZZ_GAS 10000
#define FUZZ_MAX_MEMORY ((size_t)16 << 20)

static void fuzz_config(nvm_config *cfg)
{
    nvm_config_init(cfg);
    cfg->gas = FUZZ_GAS;
    cfg->max_memory = FUZZ_MAX_MEMORY;
}

/* io.print that formats its arguments (to exercise printing) and discards the text. */
static nvm_status fuzz_print(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                             nvm_value *result)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    nvm_status st = NVM_OK;

    (void)ud;
    *result = nvm_null();
    for (uint32_t i = 0; i < argc && st == NVM_OK; i++)
        st = nvm_value_format(vm, args[i], &buf, &len, &cap);
    if (buf != NULL)
        nvm_vm_free_buffer(vm, buf, cap);
    return st;
}

/* io.read at end of input: always "". */
static nvm_status fuzz_read(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)ud;
    (void)args;
    (void)argc;
    return nvm_value_new_str(vm, "", 0, result);
}

/* Serialize m, reload the bytes, serialize again: both byte strings must be identical. */
static void fuzz_bytecode_oracle(const nvm_module *m, const nvm_config *cfg)
{
    nvm_error err;
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    nvm_module *m2 = NULL;

    if (nvm_module_to_bytecode(m, &a, &alen, &err) != NVM_OK)
        return;
    if (nvm_module_from_bytecode(cfg, a, alen, "fuzz.nvmb", &m2, &err) != NVM_OK)
        abort(); /* our own output must load */
    if (nvm_module_to_bytecode(m2, &b, &blen, &err) == NVM_OK) {
        if (alen != blen || memcmp(a, b, alen) != 0)
            abort();
        nvm_module_free_buffer(m2, b, blen);
    }
    nvm_module_free(m2);
    nvm_module_free_buffer(m, a, alen);
}

/* Disassemble m and assemble the text: it must load, and disassemble to the same text (line
 * tables are not part of the disassembly, so the text is the canonical form to compare). */
static void fuzz_disasm_oracle(const nvm_module *m, const nvm_config *cfg)
{
    nvm_error err;
    char *text = NULL, *text2 = NULL;
    size_t tlen = 0, tlen2 = 0;
    nvm_module *m2 = NULL;

    if (nvm_module_disasm(m, &text, &tlen, &err) != NVM_OK)
        return;
    if (nvm_module_from_casm(cfg, text, tlen, "fuzz-disasm.casm", &m2, &err) != NVM_OK)
        abort(); /* the disassembly must assemble */
    if (nvm_module_disasm(m2, &text2, &tlen2, &err) == NVM_OK) {
        if (tlen != tlen2 || memcmp(text, text2, tlen) != 0)
            abort();
        nvm_module_free_buffer(m2, (uint8_t *)text2, tlen2 + 1);
    }
    nvm_module_free(m2);
    nvm_module_free_buffer(m, (uint8_t *)text, tlen + 1);
}

/* Run the module's entry function under the fuzzing limits; the outcome does not matter. */
static void fuzz_run(const nvm_module *m, const nvm_config *cfg)
{
    nvm_vm *vm = NULL;

    if (nvm_vm_new(cfg, &vm) != NVM_OK)
        return;
    if (nvm_vm_register_cap(vm, "io.print", NVM_VARIADIC, fuzz_print, NULL) != NVM_OK)
        goto fail;
    if (nvm_vm_register_cap(vm, "io.read", 0, fuzz_read, NULL) != NVM_OK)
        goto fail;
    if (nvm_vm_load(vm, m) != NVM_OK)
        goto fail;
    (void)nvm_vm_run(vm);
    (void)nvm_vm_gas_used(vm);
fail:
    nvm_vm_free(vm);
}

/* Everything a harness does with a module it managed to load; frees the module. */
static void fuzz_exercise(nvm_module *m, const nvm_config *cfg)
{
    nvm_error err;

    if (nvm_module_verify(m, &err) != NVM_OK)
        abort(); /* loading verified it already; verifying again is idempotent */
    for (uint32_t i = 0; i < nvm_module_cap_count(m); i++)
        (void)nvm_module_cap_name(m, i);
    fuzz_disasm_oracle(m, cfg);
    fuzz_bytecode_oracle(m, cfg);
    fuzz_run(m, cfg);
    nvm_module_free(m);
}

#endif
