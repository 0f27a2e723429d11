/* heap.c - the arena: raw memory through the allocator hook (memory limit, GC pacing, emergency
 * collection and retry, the fail-the-Nth-allocation test mode), object allocation (with the
 * GC-stress mode: a collection before every object allocation), the handle table, the
 * temporary roots and the precise mark-and-sweep collector with an explicit mark stack. */
#include <stdlib.h>
#include <string.h>

#include "vm.h"

#define NVM_GC_MIN_THRESHOLD ((size_t)1 << 20)
#define NVM_GRAY_KEEP 4096u /* mark stacks up to this many entries are kept between collections */
/* freed small strings kept for reuse: at most this many bytes, or half the collection threshold */
#define NVM_STR_CACHE_MAX ((size_t)512 << 10)

static void flush_cache(nvm_vm *vm);

static void *hook(nvm_vm *vm, void *ptr, size_t osize, size_t nsize)
{
    if (vm->cfg.alloc != NULL)
        return vm->cfg.alloc(vm->cfg.alloc_ud, ptr, osize, nsize);
    return nvm_default_alloc(NULL, ptr, osize, nsize);
}

static bool can_collect(const nvm_vm *vm, bool may_gc)
{
    return may_gc && !vm->heap.in_gc;
}

static nvm_status limit_error(nvm_vm *vm)
{
    return nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded (%zu bytes)", vm->cfg.max_memory);
}

/* Resizes p from old_n to new_n bytes (new_n > 0) with accounting; NULL on failure, p untouched.
 * `counted` says whether this allocation counts for fail_alloc_at; *limit says whether a failure
 * came from the memory limit (else from the hook or an injected failure). */
static void *raw_resize(nvm_vm *vm, void *p, size_t old_n, size_t new_n, bool may_gc, bool counted,
                        bool *limit)
{
    nvm_heap *h = &vm->heap;
    size_t grow = new_n > old_n ? new_n - old_n : 0;
    bool collected = false;

    *limit = false;
    if (counted) {
        h->nalloc++;
        if (vm->cfg.fail_alloc_at != 0 && h->nalloc == vm->cfg.fail_alloc_at)
            return NULL;
    }
    if (can_collect(vm, may_gc) && h->bytes + h->str_cache_bytes + grow > h->next_gc) {
        nvm_gc_collect(vm);
        collected = true;
    }
    if (grow > vm->cfg.max_memory || h->bytes + h->str_cache_bytes > vm->cfg.max_memory - grow) {
        if (!collected && can_collect(vm, may_gc)) {
            nvm_gc_collect(vm);
            collected = true;
        }
        flush_cache(vm);
        if (grow > vm->cfg.max_memory || h->bytes > vm->cfg.max_memory - grow) {
            *limit = true;
            return NULL;
        }
    }
    void *q = hook(vm, p, p != NULL ? old_n : 0, new_n);
    if (q == NULL) {
        if (!collected && can_collect(vm, may_gc))
            nvm_gc_collect(vm);
        flush_cache(vm);
        q = hook(vm, p, p != NULL ? old_n : 0, new_n);
    }
    if (q == NULL)
        return NULL;
    h->bytes = h->bytes - (p != NULL ? old_n : 0) + new_n;
    if (h->bytes + h->str_cache_bytes > h->peak_bytes)
        h->peak_bytes = h->bytes + h->str_cache_bytes;
    return q;
}

static nvm_status alloc_error(nvm_vm *vm, size_t n, bool limit)
{
    if (limit)
        return limit_error(vm);
    if (vm->cfg.fail_alloc_at != 0 && vm->heap.nalloc == vm->cfg.fail_alloc_at)
        return nvm_vm_raise(vm, NVM_E_MEMORY, "out of memory (injected failure of allocation %llu)",
                            (unsigned long long)vm->heap.nalloc);
    return nvm_vm_raise(vm, NVM_E_MEMORY, "out of memory (allocation of %zu bytes failed)", n);
}

nvm_status nvm_mem_alloc(nvm_vm *vm, size_t n, bool may_gc, void **out)
{
    bool limit;
    *out = NULL;
    if (n == 0)
        return NVM_OK;
    void *p = raw_resize(vm, NULL, 0, n, may_gc, true, &limit);
    if (p == NULL)
        return alloc_error(vm, n, limit);
    *out = p;
    return NVM_OK;
}

nvm_status nvm_mem_realloc(nvm_vm *vm, void **p, size_t old_n, size_t new_n, bool may_gc)
{
    bool limit;
    if (new_n == 0) {
        nvm_mem_free(vm, *p, old_n);
        *p = NULL;
        return NVM_OK;
    }
    void *q = raw_resize(vm, *p, old_n, new_n, may_gc, true, &limit);
    if (q == NULL)
        return alloc_error(vm, new_n, limit);
    *p = q;
    return NVM_OK;
}

void nvm_mem_free(nvm_vm *vm, void *p, size_t n)
{
    if (p == NULL)
        return;
    hook(vm, p, n, 0);
    vm->heap.bytes = n <= vm->heap.bytes ? vm->heap.bytes - n : 0;
}

/* ---- map shapes ---- */

static int64_t shape_key(nvm_value key)
{
    return key.type == NVM_T_INT ? key.as.i : (int64_t)key.as.h;
}

static uint32_t edge_hash(uint32_t parent, uint32_t type, int64_t key)
{
    uint64_t x = (uint64_t)key ^ ((uint64_t)parent << 40) ^ ((uint64_t)type << 32);
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    return (uint32_t)x;
}

static uint32_t edge_put(nvm_shape_edge *t, uint32_t cap, const nvm_shape_edge *e)
{
    uint32_t mask = cap - 1;
    uint32_t i = edge_hash(e->parent, e->key_type, e->key) & mask;
    while (t[i].child != 0)
        i = (i + 1) & mask;
    t[i] = *e;
    return i;
}

/* bytes of the table of shape_cap `cap` and its shape_last array */
static size_t shape_bytes(uint32_t cap)
{
    return cap == 0 ? 0 : sizeof(nvm_shape_edge) * cap + sizeof(uint32_t) * (cap / 2 + 1);
}

uint32_t nvm_shape_add(nvm_vm *vm, uint32_t shape, nvm_value key)
{
    nvm_heap *h = &vm->heap;
    if (shape == NVM_SHAPE_NONE)
        return NVM_SHAPE_NONE;
    int64_t k = shape_key(key);
    if (h->shape_cap > 0) {
        /* most maps of a shape get the same next key: the edge last taken, then the table */
        uint32_t last = h->shape_last[shape];
        if (last != UINT32_MAX && h->shape_edges[last].key == k &&
            h->shape_edges[last].key_type == key.type)
            return h->shape_edges[last].child;
        uint32_t mask = h->shape_cap - 1;
        for (uint32_t i = edge_hash(shape, key.type, k) & mask; h->shape_edges[i].child != 0;
             i = (i + 1) & mask) {
            const nvm_shape_edge *e = &h->shape_edges[i];
            if (e->parent == shape && e->key_type == key.type && e->key == k) {
                h->shape_last[shape] = i;
                return e->child;
            }
        }
    }
    if (h->nshapes >= NVM_SHAPES_MAX)
        return NVM_SHAPE_NONE;
    if ((h->nshapes + 1) * 2 > h->shape_cap) {
        uint32_t ncap = h->shape_cap == 0 ? 64 : h->shape_cap * 2;
        bool limit;
        nvm_shape_edge *t = raw_resize(vm, NULL, 0, shape_bytes(ncap), false, false, &limit);
        if (t == NULL)
            return NVM_SHAPE_NONE;
        memset(t, 0, sizeof *t * ncap);
        uint32_t *lastv = (uint32_t *)(void *)(t + ncap);
        memset(lastv, 0xFF, sizeof(uint32_t) * (ncap / 2 + 1));
        for (uint32_t i = 0; i < h->shape_cap; i++)
            if (h->shape_edges[i].child != 0)
                edge_put(t, ncap, &h->shape_edges[i]);
        nvm_mem_free(vm, h->shape_edges, shape_bytes(h->shape_cap));
        h->shape_edges = t;
        h->shape_last = lastv;
        h->shape_cap = ncap;
    }
    nvm_shape_edge e = {k, key.type, (uint16_t)shape, (uint16_t)(h->nshapes + 1)};
    h->shape_last[shape] = edge_put(h->shape_edges, h->shape_cap, &e);
    h->nshapes++;
    return e.child;
}

/* ---- objects ---- */

/* Bytes of a string object of `size` (> 8) bytes as allocated: small strings take whole cells of
 * 16k + 8 bytes (24, 40, .. NVM_STR_CELL_MAX), the sizes that fill a block of a malloc with an
 * 8-byte block header and 16-byte alignment (glibc's) without padding. */
static size_t str_cell(size_t size)
{
    return size <= NVM_STR_CELL_MAX ? ((size + 23u) & ~(size_t)15u) - 8u : size;
}

/* The str_cache list of a cell size. */
static size_t cell_class(size_t cell)
{
    return (cell + 8u) / 16u - 2u;
}

static size_t obj_size(const void *o)
{
    const nvm_gchdr *hdr = o;
    switch (hdr->kind) {
    case NVM_OBJ_STR: return str_cell(sizeof(nvm_str) + ((const nvm_str *)o)->len + 1);
    case NVM_OBJ_ARRAY: return sizeof(nvm_array);
    default: return sizeof(nvm_map);
    }
}

static void obj_free(nvm_vm *vm, void *o)
{
    nvm_gchdr *hdr = o;
    if (hdr->kind == NVM_OBJ_ARRAY) {
        nvm_array *a = o;
        nvm_mem_free(vm, a->items, nvm_arr_esize(a) * a->cap);
    } else if (hdr->kind == NVM_OBJ_MAP) {
        nvm_map *m = o;
        nvm_mem_free(vm, m->entries, sizeof(nvm_mapentry) * m->entries_cap);
        nvm_mem_free(vm, m->index, sizeof(uint32_t) * m->index_cap);
    }
    size_t n = obj_size(o);
    nvm_heap *h = &vm->heap;
    size_t cap = h->next_gc / 2 > NVM_STR_CACHE_MAX ? h->next_gc / 2 : NVM_STR_CACHE_MAX;
    if (hdr->kind == NVM_OBJ_STR && n <= NVM_STR_CELL_MAX && h->str_cache_bytes + n <= cap) {
        void **cell = o;
        *cell = h->str_cache[cell_class(n)];
        h->str_cache[cell_class(n)] = cell;
        h->str_cache_bytes += n;
        h->bytes = n <= h->bytes ? h->bytes - n : 0;
        return;
    }
    nvm_mem_free(vm, o, n);
}

/* Gives every cached string cell back to the allocator. */
static void flush_cache(nvm_vm *vm)
{
    nvm_heap *h = &vm->heap;
    for (size_t c = 0; c < sizeof h->str_cache / sizeof h->str_cache[0]; c++) {
        while (h->str_cache[c] != NULL) {
            void **cell = h->str_cache[c];
            h->str_cache[c] = *cell;
            hook(vm, cell, (c + 2) * 16 - 8, 0);
        }
    }
    h->str_cache_bytes = 0;
}

/* Makes room for one more handle. The handle table and the free list share one block of
 * objs_cap pointers followed by objs_cap handles, so the sweep never allocates. */
static nvm_status reserve_handle(nvm_vm *vm)
{
    nvm_heap *h = &vm->heap;
    if (h->nfree > 0 || h->nobjs < h->objs_cap)
        return NVM_OK;
    if (h->objs_cap >= UINT32_MAX / 2)
        return limit_error(vm);
    uint32_t ncap = h->objs_cap < 64 ? 64 : h->objs_cap * 2;
    size_t per = sizeof(void *) + sizeof(uint32_t);
    void *blk = NULL;
    nvm_status st = nvm_mem_alloc(vm, per * ncap, true, &blk);
    if (st != NVM_OK)
        return st;
    /* a collection inside the allocation may have changed the table: copy afterwards */
    void **nobjs = blk;
    uint32_t *nfree = (uint32_t *)(nobjs + ncap);
    if (h->objs != NULL) {
        memcpy(nobjs, h->objs, sizeof(void *) * h->nobjs);
        memcpy(nfree, h->free_handles, sizeof(uint32_t) * h->nfree);
        nvm_mem_free(vm, h->objs, per * h->objs_cap);
    }
    memset(nobjs + h->nobjs, 0, sizeof(void *) * (ncap - h->nobjs));
    if (h->nobjs == 0) {
        nobjs[0] = NULL;
        h->nobjs = 1;
    }
    h->objs = nobjs;
    h->free_handles = nfree;
    h->objs_cap = ncap;
    h->free_cap = ncap;
    return NVM_OK;
}

nvm_status nvm_obj_new(nvm_vm *vm, int kind, size_t size, void **obj, nvm_value *out)
{
    nvm_heap *h = &vm->heap;
    void *o = NULL;
    if (vm->cfg.gc_stress)
        nvm_gc_collect(vm);
    nvm_status st = reserve_handle(vm);
    if (st != NVM_OK)
        return st;
    if (kind == NVM_OBJ_STR) {
        size = str_cell(size);
        if (size <= NVM_STR_CELL_MAX && h->str_cache[cell_class(size)] != NULL &&
            vm->cfg.fail_alloc_at == 0) {
            void **cell = h->str_cache[cell_class(size)];
            h->str_cache[cell_class(size)] = *cell;
            /* the next allocation of this size takes the next cell: start loading it */
            if (*cell != NULL)
                __builtin_prefetch(*cell, 1);
            h->str_cache_bytes -= size;
            h->bytes += size;
            h->nalloc++;
            o = cell;
        }
    }
    if (o == NULL) {
        st = nvm_mem_alloc(vm, size, true, &o);
        if (st != NVM_OK)
            return st;
    }
    /* the collection that may have run only adds free handles: one is still available */
    uint32_t handle = h->nfree > 0 ? h->free_handles[--h->nfree] : h->nobjs++;
    memset(o, 0, kind == NVM_OBJ_STR ? sizeof(nvm_str) : size);
    nvm_gchdr *hdr = o;
    hdr->kind = (uint8_t)kind;
    hdr->mark = 0;
    hdr->handle = handle;
    h->objs[handle] = o;
    /* built whole and stored once: callers read the payload back as one 8-byte word, which a
     * pair of overlapping stores could not forward */
    nvm_value v;
    v.as.i = 0;
    v.as.h = handle;
    v.type = kind == NVM_OBJ_STR ? NVM_T_STR : kind == NVM_OBJ_ARRAY ? NVM_T_ARRAY : NVM_T_MAP;
    *out = v;
    *obj = o;
    return NVM_OK;
}

/* ---- set-up and tear-down ---- */

nvm_status nvm_heap_init(nvm_vm *vm)
{
    memset(&vm->heap, 0, sizeof vm->heap);
    vm->heap.next_gc = NVM_GC_MIN_THRESHOLD;
    return NVM_OK;
}

void nvm_heap_destroy(nvm_vm *vm)
{
    nvm_heap *h = &vm->heap;
    for (uint32_t i = 1; i < h->nobjs; i++) {
        if (h->objs[i] != NULL)
            obj_free(vm, h->objs[i]);
    }
    flush_cache(vm);
    if (h->objs != NULL)
        nvm_mem_free(vm, h->objs, (sizeof(void *) + sizeof(uint32_t)) * h->objs_cap);
    nvm_mem_free(vm, h->troots, sizeof(nvm_value) * h->troots_cap);
    nvm_mem_free(vm, h->gray, sizeof(uint32_t) * h->gray_cap);
    nvm_mem_free(vm, h->shape_edges, shape_bytes(h->shape_cap));
    h->shape_edges = NULL;
    h->shape_last = NULL;
    h->shape_cap = h->nshapes = 0;
    h->objs = NULL;
    h->free_handles = NULL;
    h->troots = NULL;
    h->gray = NULL;
    h->nobjs = h->objs_cap = h->nfree = h->free_cap = 0;
    h->ntroots = h->troots_cap = 0;
    h->ngray = h->gray_cap = 0;
}

/* ---- temporary roots ---- */

nvm_status nvm_troot_push(nvm_vm *vm, nvm_value v)
{
    nvm_heap *h = &vm->heap;
    if (h->ntroots == h->troots_cap) {
        uint32_t ncap = h->troots_cap < 16 ? 16 : h->troots_cap * 2;
        void *p = h->troots;
        nvm_status st = nvm_mem_realloc(vm, &p, sizeof(nvm_value) * h->troots_cap,
                                        sizeof(nvm_value) * ncap, false);
        if (st != NVM_OK)
            return st;
        h->troots = p;
        h->troots_cap = ncap;
    }
    h->troots[h->ntroots++] = v;
    return NVM_OK;
}

void nvm_troot_pop(nvm_vm *vm, uint32_t n)
{
    nvm_heap *h = &vm->heap;
    h->ntroots = n <= h->ntroots ? h->ntroots - n : 0;
}

/* ---- the collector ---- */

static void gray_push(nvm_vm *vm, uint32_t handle)
{
    nvm_heap *h = &vm->heap;
    if (h->ngray == h->gray_cap) {
        bool limit;
        if (h->gray_cap >= UINT32_MAX / 2) {
            h->gray_overflow = true;
            return;
        }
        uint32_t ncap = h->gray_cap < 256 ? 256 : h->gray_cap * 2;
        void *p = raw_resize(vm, h->gray, sizeof(uint32_t) * h->gray_cap, sizeof(uint32_t) * ncap,
                             false, false, &limit);
        if (p == NULL) {
            h->gray_overflow = true;
            return;
        }
        h->gray = p;
        h->gray_cap = ncap;
    }
    h->gray[h->ngray++] = handle;
}

/* Marks one value; containers go on the mark stack. Inlined into the child loops. */
static inline void mark(nvm_vm *vm, nvm_value v)
{
    nvm_heap *h = &vm->heap;
    if (!NVM_IS_OBJ(v) || v.as.h == 0 || v.as.h >= h->nobjs)
        return;
    nvm_gchdr *hdr = h->objs[v.as.h];
    if (hdr == NULL || (hdr->mark & NVM_MARK_GC))
        return;
    hdr->mark |= NVM_MARK_GC;
    if (hdr->kind != NVM_OBJ_STR)
        gray_push(vm, v.as.h);
}

void nvm_gc_mark_value(nvm_vm *vm, nvm_value v)
{
    mark(vm, v);
}

static void mark_children(nvm_vm *vm, const void *o)
{
    const nvm_gchdr *hdr = o;
    if (hdr->kind == NVM_OBJ_ARRAY) {
        const nvm_array *a = o;
        for (uint32_t i = 0; a->hdr.sub == NVM_ARR_VALUES && i < a->len; i++) {
            if (NVM_IS_OBJ(a->items[i]))
                mark(vm, a->items[i]);
        }
    } else if (hdr->kind == NVM_OBJ_MAP) {
        const nvm_map *m = o;
        for (uint32_t i = 0; i < m->nentries; i++) {
            const nvm_mapentry *e = &m->entries[i];
            if (e->key.type == NVM_T_UNDEF)
                continue;
            if (e->key.type == NVM_T_STR)
                mark(vm, e->key);
            if (NVM_IS_OBJ(e->value))
                mark(vm, e->value);
        }
    }
}

static void drain(nvm_vm *vm)
{
    nvm_heap *h = &vm->heap;
    while (h->ngray > 0) {
        uint32_t handle = h->gray[--h->ngray];
        mark_children(vm, h->objs[handle]);
    }
}

void nvm_gc_collect(nvm_vm *vm)
{
    nvm_heap *h = &vm->heap;
    if (h->in_gc)
        return;
    h->in_gc = true;
    h->ngray = 0;
    h->gray_overflow = false;

    nvm_vm_mark_roots(vm);
    for (uint32_t i = 0; i < h->ntroots; i++)
        nvm_gc_mark_value(vm, h->troots[i]);
    drain(vm);
    /* Objects marked while the mark stack could not grow still have unmarked children: rescan
     * every marked container until a pass completes without overflow. */
    while (h->gray_overflow) {
        h->gray_overflow = false;
        for (uint32_t i = 1; i < h->nobjs; i++) {
            nvm_gchdr *hdr = h->objs[i];
            if (hdr != NULL && (hdr->mark & NVM_MARK_GC) && hdr->kind != NVM_OBJ_STR) {
                mark_children(vm, hdr);
                drain(vm);
            }
        }
    }

    for (uint32_t i = 1; i < h->nobjs; i++) {
        nvm_gchdr *hdr = h->objs[i];
        if (hdr == NULL)
            continue;
        if (hdr->mark & NVM_MARK_GC) {
            hdr->mark &= (uint8_t)~NVM_MARK_GC;
            continue;
        }
        obj_free(vm, hdr);
        h->objs[i] = NULL;
        h->free_handles[h->nfree++] = i;
    }

    if (h->gray_cap > NVM_GRAY_KEEP) {
        nvm_mem_free(vm, h->gray, sizeof(uint32_t) * h->gray_cap);
        h->gray = NULL;
        h->gray_cap = 0;
    }
    h->ngray = 0;
    /* pace: collect again when the live object data has doubled. The handle table and the mark
     * stack are counted once: their size follows the most objects ever held at once (live and
     * garbage), not the live data, and doubling them would widen every cycle's garbage allowance
     * and so the table itself. */
    size_t meta = (sizeof(void *) + sizeof(uint32_t)) * h->objs_cap;
    meta += sizeof(uint32_t) * h->gray_cap;
    size_t next = h->bytes + (h->bytes > meta ? h->bytes - meta : 0);
    h->next_gc = next > NVM_GC_MIN_THRESHOLD ? next : NVM_GC_MIN_THRESHOLD;
    h->ncollections++;
    h->in_gc = false;
}
