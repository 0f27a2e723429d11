/* codecache.h - the code cache's internal interface (the public one is in nanovm.h): compiled
 * modules keyed by their exact bytecode, each with the function that frees it. Portable: a build
 * without a native tier still has (empty) caches. */
#ifndef NVM_CODECACHE_H
#define NVM_CODECACHE_H

#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"

/* The entry whose key is exactly key[0..len), counting a hit; NULL when none. */
void *nvm_code_cache_find(nvm_code_cache *c, const uint8_t *key, size_t len);
/* Adds an entry (the key is copied; the cache frees `code` with `free_fn`). */
nvm_status nvm_code_cache_add(nvm_code_cache *c, const uint8_t *key, size_t len, void *code,
                              void (*free_fn)(void *code));
/* The counters nvm_code_cache_stats reports, for the compilers to update. */
nvm_code_stats *nvm_code_cache_counters(nvm_code_cache *c);

#endif
