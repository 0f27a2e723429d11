/* codecache.c - the code cache (nanovm.h, codecache.h): a list of compiled modules keyed by
 * their exact bytecode (a full comparison, so no hash collision can hand a module another's
 * code). */
#include <stdlib.h>
#include <string.h>

#include "codecache.h"

typedef struct cache_entry {
    uint8_t *key;
    size_t key_len;
    void *code;
    void (*free_fn)(void *code);
} cache_entry;

struct nvm_code_cache {
    cache_entry *e;
    size_t n, cap;
    nvm_code_stats stats;
};

nvm_status nvm_code_cache_new(nvm_code_cache **out)
{
    if (out == NULL)
        return NVM_E_USAGE;
    *out = calloc(1, sizeof **out);
    return *out != NULL ? NVM_OK : NVM_E_MEMORY;
}

void nvm_code_cache_free(nvm_code_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->e[i].key);
        c->e[i].free_fn(c->e[i].code);
    }
    free(c->e);
    free(c);
}

void nvm_code_cache_stats(const nvm_code_cache *c, nvm_code_stats *out)
{
    if (out == NULL)
        return;
    if (c == NULL)
        memset(out, 0, sizeof *out);
    else
        *out = c->stats;
}

nvm_code_stats *nvm_code_cache_counters(nvm_code_cache *c)
{
    return &c->stats;
}

void *nvm_code_cache_find(nvm_code_cache *c, const uint8_t *key, size_t len)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->e[i].key_len == len && memcmp(c->e[i].key, key, len) == 0) {
            c->stats.hits++;
            return c->e[i].code;
        }
    }
    return NULL;
}

nvm_status nvm_code_cache_add(nvm_code_cache *c, const uint8_t *key, size_t len, void *code,
                              void (*free_fn)(void *code))
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        cache_entry *q = realloc(c->e, sizeof *q * nc);
        if (q == NULL)
            return NVM_E_MEMORY;
        c->e = q;
        c->cap = nc;
    }
    uint8_t *k = malloc(len + 1);
    if (k == NULL)
        return NVM_E_MEMORY;
    memcpy(k, key, len);
    c->e[c->n++] = (cache_entry){k, len, code, free_fn};
    return NVM_OK;
}
