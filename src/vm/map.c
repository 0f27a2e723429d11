/* map.c - arena maps: insertion-ordered hash maps with str or int keys.
 *
 * entries[0..nentries) keep insertion order; a deleted entry stays as a tombstone (key UNDEF)
 * until the entries array is next compacted. index[] is an open-addressing table (linear probing)
 * of entry positions + 1, 0 meaning empty; it holds a slot for every entry including tombstones,
 * so probes skip tombstones and stop at an empty slot. index_cap >= 2 * entries_cap keeps the
 * load at most one half. A full entries array is compacted in place when at least half of it is
 * tombstones, otherwise doubled (and compacted) with a fresh index. A map's shape (heap.h) follows
 * its keys: nvm_map_set's appends extend it, nvm_map_del ends it (compaction only ever happens to
 * a map with tombstones, whose shape has ended). */
#include <string.h>

#include "vm.h"

static nvm_map *M(nvm_vm *vm, nvm_value v)
{
    return nvm_heap_obj(&vm->heap, v);
}

static uint32_t int_hash(int64_t i)
{
    uint64_t x = (uint64_t)i;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static uint32_t key_hash(const nvm_heap *h, nvm_value key)
{
    if (key.type == NVM_T_INT)
        return int_hash(key.as.i);
    return nvm_str_hash(nvm_heap_obj(h, key));
}

static bool key_equal(const nvm_heap *h, nvm_value a, nvm_value b)
{
    if (a.type != b.type)
        return false;
    if (a.type == NVM_T_INT)
        return a.as.i == b.as.i;
    if (a.as.h == b.as.h)
        return true;
    const nvm_str *x = nvm_heap_obj(h, a), *y = nvm_heap_obj(h, b);
    return x->len == y->len && memcmp(x->data, y->data, x->len) == 0;
}

int64_t nvm_map_find(const nvm_heap *h, const nvm_map *m, nvm_value key)
{
    if (m->index_cap == 0 || (key.type != NVM_T_INT && key.type != NVM_T_STR))
        return -1;
    uint32_t hash = key_hash(h, key);
    uint32_t mask = m->index_cap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        uint32_t slot = m->index[i];
        if (slot == 0)
            return -1;
        const nvm_mapentry *e = &m->entries[slot - 1];
        if (e->key.type != NVM_T_UNDEF && e->hash == hash && key_equal(h, e->key, key))
            return slot - 1;
    }
}

static void index_insert(nvm_map *m, uint32_t pos)
{
    uint32_t mask = m->index_cap - 1;
    uint32_t i = m->entries[pos].hash & mask;
    while (m->index[i] != 0)
        i = (i + 1) & mask;
    m->index[i] = pos + 1;
}

/* Drops tombstones from entries[] (keeping order) and rebuilds the index. */
static void compact_and_reindex(nvm_map *m)
{
    uint32_t w = 0;
    for (uint32_t r = 0; r < m->nentries; r++) {
        if (m->entries[r].key.type != NVM_T_UNDEF)
            m->entries[w++] = m->entries[r];
    }
    m->nentries = w;
    memset(m->index, 0, sizeof(uint32_t) * m->index_cap);
    for (uint32_t i = 0; i < m->nentries; i++)
        index_insert(m, i);
}

static nvm_status too_big(nvm_vm *vm)
{
    return nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded (%zu bytes)", vm->cfg.max_memory);
}

/* Makes room for one more entry. May collect: the map stays consistent at every allocation. */
static nvm_status make_room(nvm_vm *vm, nvm_map *m)
{
    if (m->nentries < m->entries_cap)
        return NVM_OK;
    if (m->entries_cap > 0 && m->count < m->entries_cap / 2) {
        compact_and_reindex(m);
        return NVM_OK;
    }
    if (m->entries_cap >= UINT32_MAX / 8)
        return too_big(vm);
    uint32_t ncap = m->entries_cap == 0 ? 4 : m->entries_cap * 2;
    uint32_t nidx = ncap * 2;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)ncap, sizeof(nvm_mapentry), &bytes))
        return too_big(vm);
    void *idx = NULL;
    nvm_status st = nvm_mem_alloc(vm, sizeof(uint32_t) * nidx, true, &idx);
    if (st != NVM_OK)
        return st;
    void *ents = m->entries;
    st = nvm_mem_realloc(vm, &ents, sizeof(nvm_mapentry) * m->entries_cap,
                         sizeof(nvm_mapentry) * ncap, true);
    if (st != NVM_OK) {
        nvm_mem_free(vm, idx, sizeof(uint32_t) * nidx);
        return st;
    }
    m->entries = ents;
    m->entries_cap = ncap;
    nvm_mem_free(vm, m->index, sizeof(uint32_t) * m->index_cap);
    m->index = idx;
    m->index_cap = nidx;
    compact_and_reindex(m);
    return NVM_OK;
}

static nvm_status check_map(nvm_vm *vm, const char *op, nvm_value map)
{
    if (map.type == NVM_T_MAP)
        return NVM_OK;
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: %s expects a map, got %s", op,
                        nvm_type_name((nvm_type)map.type));
}

static nvm_status check_key(nvm_vm *vm, nvm_value key)
{
    if (key.type == NVM_T_STR || key.type == NVM_T_INT)
        return NVM_OK;
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: map keys must be str or int, got %s",
                        nvm_type_name((nvm_type)key.type));
}

nvm_status nvm_map_new(nvm_vm *vm, nvm_value *out)
{
    void *o = NULL;
    return nvm_obj_new(vm, NVM_OBJ_MAP, sizeof(nvm_map), &o, out);
}

nvm_status nvm_map_get(nvm_vm *vm, nvm_value map, nvm_value key, nvm_value *out, bool *found)
{
    nvm_status st = check_map(vm, "MAP_GET", map);
    if (st == NVM_OK)
        st = check_key(vm, key);
    if (st != NVM_OK)
        return st;
    const nvm_map *m = M(vm, map);
    int64_t pos = nvm_map_find(&vm->heap, m, key);
    if (found != NULL)
        *found = pos >= 0;
    *out = pos >= 0 ? m->entries[pos].value : nvm_null();
    return NVM_OK;
}

nvm_status nvm_map_set(nvm_vm *vm, nvm_value map, nvm_value key, nvm_value v)
{
    nvm_status st = check_map(vm, "MAP_SET", map);
    if (st == NVM_OK)
        st = check_key(vm, key);
    if (st != NVM_OK)
        return st;
    nvm_map *m = M(vm, map);
    int64_t pos = nvm_map_find(&vm->heap, m, key);
    if (pos >= 0) {
        m->entries[pos].value = v;
        return NVM_OK;
    }
    if (m->nentries == m->entries_cap) {
        /* key and v may be fresh values held nowhere else: keep them across a collection */
        st = nvm_troot_push(vm, key);
        if (st != NVM_OK)
            return st;
        st = nvm_troot_push(vm, v);
        if (st != NVM_OK) {
            nvm_troot_pop(vm, 1);
            return st;
        }
        st = make_room(vm, m);
        nvm_troot_pop(vm, 2);
        if (st != NVM_OK)
            return st;
    }
    uint32_t at = m->nentries++;
    m->entries[at].key = key;
    m->entries[at].value = v;
    m->entries[at].hash = key_hash(&vm->heap, key);
    m->count++;
    index_insert(m, at);
    m->hdr.sub = (uint16_t)nvm_shape_add(vm, m->hdr.sub, key);
    return NVM_OK;
}

nvm_status nvm_map_del(nvm_vm *vm, nvm_value map, nvm_value key)
{
    nvm_status st = check_map(vm, "MAP_DEL", map);
    if (st == NVM_OK)
        st = check_key(vm, key);
    if (st != NVM_OK)
        return st;
    nvm_map *m = M(vm, map);
    int64_t pos = nvm_map_find(&vm->heap, m, key);
    if (pos < 0)
        return NVM_OK;
    m->entries[pos].key.type = NVM_T_UNDEF;
    m->entries[pos].key.as.i = 0;
    m->entries[pos].value = nvm_null();
    m->count--;
    m->hdr.sub = NVM_SHAPE_NONE;
    return NVM_OK;
}

nvm_status nvm_map_keys(nvm_vm *vm, nvm_value map, nvm_value *out)
{
    nvm_status st = check_map(vm, "MAP_KEYS", map);
    if (st != NVM_OK)
        return st;
    st = nvm_array_new(vm, M(vm, map)->count, out);
    if (st != NVM_OK)
        return st;
    const nvm_map *m = M(vm, map);
    nvm_array *a = nvm_heap_obj(&vm->heap, *out);
    for (uint32_t i = 0; i < m->nentries; i++) {
        if (m->entries[i].key.type != NVM_T_UNDEF)
            a->items[a->len++] = m->entries[i].key;
    }
    return NVM_OK;
}
