/* capcat.c - the capability catalog (capabilities.def) as data. */
#include <string.h>

#include "capcat.h"

const nvm_capsig nvm_capcat_table[] = {
#define X(name, argc, results, meaning) {name, argc, results, meaning},
#include "capabilities.def"
#undef X
};

const size_t nvm_capcat_count = sizeof nvm_capcat_table / sizeof nvm_capcat_table[0];

const nvm_capsig *nvm_capcat_lookup(const char *name)
{
    for (size_t i = 0; i < nvm_capcat_count; i++)
        if (strcmp(nvm_capcat_table[i].name, name) == 0)
            return &nvm_capcat_table[i];
    return NULL;
}

uint32_t nvm_cap_results(const char *name)
{
    const nvm_capsig *s = nvm_capcat_lookup(name);
    return s != NULL ? (uint32_t)s->results : 1;
}
