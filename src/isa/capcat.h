/* capcat.h - the capability catalog: known capability signatures (capabilities.def). */
#ifndef NVM_CAPCAT_H
#define NVM_CAPCAT_H

#include <stddef.h>
#include <stdint.h>

typedef struct nvm_capsig {
    const char *name;
    int argc;    /* -1: variadic */
    int results; /* 0 or 1 */
    const char *meaning;
} nvm_capsig;

extern const nvm_capsig nvm_capcat_table[];
extern const size_t nvm_capcat_count;

/* NULL when the name is not in the catalog. */
const nvm_capsig *nvm_capcat_lookup(const char *name);
/* Values a CAP_CALL of this capability pushes: the catalog's count, else 1. */
uint32_t nvm_cap_results(const char *name);

#endif
