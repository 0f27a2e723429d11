/* fuzz_asm.c - libFuzzer harness: arbitrary bytes as CASM text (and, when they start with '{',
 * as JSON IR too); modules that load are verified, disassembled, serialized and run. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nvm_config cfg;
    nvm_error err;
    nvm_module *m = NULL;

    fuzz_config(&cfg);
    if (nvm_module_from_casm(&cfg, (const char *)data, size, "fuzz.casm", &m, &err) == NVM_OK)
        fuzz_exercise(m, &cfg);
    m = NULL;
    if (size > 0 && data[0] == '{' &&
        nvm_module_from_json(&cfg, (const char *)data, size, "fuzz.json", &m, &err) == NVM_OK)
        fuzz_exercise(m, &cfg);
    return 0;
}
