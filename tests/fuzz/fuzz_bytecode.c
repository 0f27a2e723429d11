/* fuzz_bytecode.c - libFuzzer harness: arbitrary bytes as a .nvmb bytecode module; modules that
 * load are verified, disassembled, serialized and run. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nvm_config cfg;
    nvm_error err;
    nvm_module *m = NULL;

    fuzz_config(&cfg);
    if (nvm_module_from_bytecode(&cfg, data, size, "fuzz.nvmb", &m, &err) == NVM_OK)
        fuzz_exercise(m, &cfg);
    return 0;
}
