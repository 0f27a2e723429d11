/* alloc.c - the default allocator hook (the C library's realloc/free with lua_Alloc's contract),
 * used wherever a configuration names none. Everything else allocates through a hook. */
#include <stdlib.h>

#include "nanovm.h"

void *nvm_default_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}
