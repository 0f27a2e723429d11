/* heap.h - the arena: integer-handle heap of strings, arrays and maps, its precise mark-and-sweep
 * collector, the one allocator hook with the memory limit, and the value-level operations
 * (equality, truthiness, hashing, printing, casts, string/array/map operations).
 *
 * Invariants:
 *   - handle 0 is never a live object; objs[h] is the object for a live handle h, NULL when free;
 *   - every byte the VM allocates goes through nvm_mem_* and is counted in heap.bytes, which never
 *     exceeds cfg.max_memory; on a failed allocation the collector runs once (emergency GC) and
 *     the allocation is retried before NVM_E_MEMORY is returned;
 *   - a collection may run at any nvm_mem_alloc/realloc made through an object constructor.
 *     Values reachable from the roots (vm.h: stack[0..sp), live frame slots, string constants,
 *     the temporary root stack) survive it. A C function that holds a fresh handle across
 *     another allocation pushes it with nvm_troot_push first.
 *   - strings are immutable, NUL-terminated after `len` bytes; their hash is computed on first
 *     use (nvm_str_hash) and cached, 0 meaning "not computed yet" (a real hash of 0 is stored
 *     as 1).
 */
#ifndef NVM_HEAP_H
#define NVM_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"

enum nvm_obj_kind { NVM_OBJ_STR = 1, NVM_OBJ_ARRAY = 2, NVM_OBJ_MAP = 3 };

typedef struct nvm_gchdr {
    uint8_t kind;
    uint8_t mark;
    uint16_t sub; /* arrays: the element storage (enum nvm_arr_kind); maps: the shape; else 0 */
    uint32_t handle;
} nvm_gchdr;

typedef struct nvm_str {
    nvm_gchdr hdr;
    uint32_t len;
    uint32_t hash; /* 0 until nvm_str_hash computes it */
    char data[];   /* len bytes + NUL */
} nvm_str;

/* An array's elements are stored as values (items) or, while every element is a bool, as one
 * byte each (bools, 0 or 1): NEW_ARRAY 0 makes such an array, and storing any other value
 * converts it to values once (inside nvm_array_set/push). Readers go through nvm_arr_at; writers
 * through nvm_array_set/push, or check hdr.sub themselves. */
enum nvm_arr_kind { NVM_ARR_VALUES = 0, NVM_ARR_BOOLS = 1 };

typedef struct nvm_array {
    nvm_gchdr hdr; /* hdr.sub: enum nvm_arr_kind */
    uint32_t len;
    uint32_t cap;
    union {
        nvm_value *items; /* NVM_ARR_VALUES */
        uint8_t *bools;   /* NVM_ARR_BOOLS */
    };
} nvm_array;

typedef struct nvm_mapentry {
    nvm_value key; /* NVM_T_UNDEF for a deleted entry (tombstone) */
    nvm_value value;
    uint32_t hash;
} nvm_mapentry;

/* Insertion-ordered map: entries[] in insertion order (with tombstones), index[] an open-addressing
 * table of entry positions + 1 (0 = empty). Keys are strings or ints.
 *
 * Shapes (hdr.sub): a map that has never lost a key has the shape of its sequence of keys, the
 * same for every map whose keys were added in the same order, compared as values: int keys by
 * value, string keys by handle. Shapes form a tree (the heap's table of edges: a shape and the
 * key added to it give the next shape), so a shape and a position determine the key there as
 * it was added, by the edge into the shape's ancestor at that depth. Compiled code that found a
 * key at position p of a map of shape S, that key being a string constant's handle (which is
 * never freed, so never reused for another string), reads that key of any map of shape S at
 * position p with no lookup. NVM_SHAPE_EMPTY: no key (a new map); NVM_SHAPE_NONE: not
 * described, for good (a key was deleted, or the table was full or could not grow). */
#define NVM_SHAPE_EMPTY 0u
#define NVM_SHAPE_NONE 0xFFFFu
#define NVM_SHAPES_MAX 4096u
typedef struct nvm_map {
    nvm_gchdr hdr;
    uint32_t count;    /* live entries */
    uint32_t nentries; /* used slots of entries[] including tombstones */
    uint32_t entries_cap;
    uint32_t index_cap; /* power of two, or 0 */
    nvm_mapentry *entries;
    uint32_t *index;
} nvm_map;

typedef struct nvm_heap {
    void **objs;    /* handle -> object, NULL when free */
    uint32_t nobjs; /* handles handed out so far (objs[0] unused) */
    uint32_t objs_cap;
    uint32_t *free_handles;
    uint32_t nfree;
    uint32_t free_cap;
    size_t bytes; /* bytes currently allocated through nvm_mem_* */
    size_t peak_bytes;
    size_t next_gc;  /* collect when bytes passes this */
    uint64_t nalloc; /* allocations so far (fail_alloc_at counts these) */
    uint64_t ncollections;
    uint64_t gc_ns;    /* unused by the core (no clock); hosts may measure around runs */
    nvm_value *troots; /* temporary roots */
    uint32_t ntroots;
    uint32_t troots_cap;
    bool in_gc;
    /* the collector's explicit mark stack (handles of marked objects whose children are not yet
     * marked); when it cannot grow, gray_overflow asks for a rescan of the marked objects */
    uint32_t *gray;
    uint32_t ngray;
    uint32_t gray_cap;
    bool gray_overflow;
    /* freed small strings kept for reuse, one singly linked list per size class (cells of
     * 24, 40, .. NVM_STR_CELL_MAX bytes, linked through their first word). Their bytes are in
     * str_cache_bytes, not in `bytes`; the memory limit applies to the sum (the cache is given
     * back to the allocator before an allocation fails for the limit or the hook). */
    void *str_cache[15];
    size_t str_cache_bytes;
    /* the shapes' edges (parent shape, key) -> child shape: an open-addressing table (linear
     * probing, child 0 = empty slot) of shape_cap (a power of two, or 0) slots, at most half
     * used; nshapes shapes besides the empty one (ids 1..nshapes) */
    struct nvm_shape_edge *shape_edges;
    uint32_t shape_cap;
    uint32_t nshapes;
    /* shape -> the slot of shape_edges holding the edge last taken from it, UINT32_MAX: none
     * (shape_cap / 2 + 1 entries: every shape the table can hold) */
    uint32_t *shape_last;
} nvm_heap;

typedef struct nvm_shape_edge {
    int64_t key; /* an int key's value, a string key's handle */
    uint32_t key_type;
    uint16_t parent;
    uint16_t child;
} nvm_shape_edge;
#define NVM_STR_CELL_MAX 248u

/* nvm_gchdr.mark bits: the collector's mark, and "on the current printing path" (value.c's cycle
 * guard). The collector only ever touches NVM_MARK_GC. */
#define NVM_MARK_GC 1u
#define NVM_MARK_VISIT 2u

struct nvm_vm;

/* ---- raw memory through the allocator hook (limit, emergency GC, fail-Nth) ----
 * On failure these set the VM error record to NVM_E_MEMORY and return it. `may_gc` false is for
 * callers that cannot tolerate a collection (the collector itself, VM set-up). */
nvm_status nvm_mem_alloc(struct nvm_vm *vm, size_t n, bool may_gc, void **out);
nvm_status nvm_mem_realloc(struct nvm_vm *vm, void **p, size_t old_n, size_t new_n, bool may_gc);
void nvm_mem_free(struct nvm_vm *vm, void *p, size_t n);

nvm_status nvm_heap_init(struct nvm_vm *vm);
void nvm_heap_destroy(struct nvm_vm *vm); /* frees every object and the tables */
void nvm_gc_collect(struct nvm_vm *vm);   /* marks from nvm_vm_mark_roots (vm.c), sweeps */
void nvm_gc_mark_value(struct nvm_vm *vm, nvm_value v); /* used by nvm_vm_mark_roots */
nvm_status nvm_troot_push(struct nvm_vm *vm, nvm_value v);
void nvm_troot_pop(struct nvm_vm *vm, uint32_t n);

/* ---- shared by the arena's own files (heap.c str.c array.c map.c value.c) ----
 * nvm_obj_new allocates a `size`-byte object of `kind` (struct part zeroed, header filled; may
 * collect first), registers a handle and returns both. nvm_map_find gives the entries[] position
 * of a str or int key, or -1. */
nvm_status nvm_obj_new(struct nvm_vm *vm, int kind, size_t size, void **obj, nvm_value *out);
int64_t nvm_map_find(const nvm_heap *h, const nvm_map *m, nvm_value key);
/* The shape of a map of `shape` once `key` is added (a new edge when needed). NVM_SHAPE_NONE when
 * shape is, or when the table is full or cannot grow (which is no error: the map is just not
 * described). Allocates without collecting and without counting towards fail_alloc_at. */
uint32_t nvm_shape_add(struct nvm_vm *vm, uint32_t shape, nvm_value key);

/* ---- object access (no checks: callers check the tag first) ---- */
static inline void *nvm_heap_obj(const nvm_heap *h, nvm_value v)
{
    return h->objs[v.as.h];
}
#define NVM_IS_OBJ(v) ((v).type >= NVM_T_STR && (v).type <= NVM_T_MAP)

/* ---- strings (str.c) ---- */
nvm_status nvm_str_new(struct nvm_vm *vm, const char *s, size_t len, nvm_value *out);
nvm_status nvm_str_concat(struct nvm_vm *vm, nvm_value a, nvm_value b, nvm_value *out);
uint32_t nvm_hash_bytes(const char *s, size_t len);
/* The string's hash (computed once, then cached in the object). */
static inline uint32_t nvm_str_hash(const nvm_str *s)
{
    if (s->hash != 0)
        return s->hash;
    uint32_t h = nvm_hash_bytes(s->data, s->len);
    h = h != 0 ? h : 1u;
    ((nvm_str *)s)->hash = h; /* the cache field of a live object, never const memory */
    return h;
}
/* The STR_* opcodes. Type errors (non-string operands) are program errors with a message naming
 * the opcode and the types, set through nvm_vm_raise (vm.h). */
nvm_status nvm_str_contains(struct nvm_vm *vm, nvm_value s, nvm_value sub, nvm_value *out);
nvm_status nvm_str_split(struct nvm_vm *vm, nvm_value s, nvm_value sep, nvm_value *out);
nvm_status nvm_str_replace(struct nvm_vm *vm, nvm_value s, nvm_value from, nvm_value to,
                           nvm_value *out);
nvm_status nvm_str_join(struct nvm_vm *vm, nvm_value arr, nvm_value sep, nvm_value *out);
nvm_status nvm_str_starts_with(struct nvm_vm *vm, nvm_value s, nvm_value p, nvm_value *out);
nvm_status nvm_str_ends_with(struct nvm_vm *vm, nvm_value s, nvm_value p, nvm_value *out);
nvm_status nvm_str_to_upper(struct nvm_vm *vm, nvm_value s, nvm_value *out);
nvm_status nvm_str_to_lower(struct nvm_vm *vm, nvm_value s, nvm_value *out);
nvm_status nvm_str_trim(struct nvm_vm *vm, nvm_value s, nvm_value *out);
nvm_status nvm_str_sub(struct nvm_vm *vm, nvm_value s, nvm_value start, nvm_value end,
                       nvm_value *out);
nvm_status nvm_str_find(struct nvm_vm *vm, nvm_value s, nvm_value needle, nvm_value *out);
nvm_status nvm_str_ord(struct nvm_vm *vm, nvm_value s, nvm_value i, nvm_value *out);
nvm_status nvm_str_chr(struct nvm_vm *vm, nvm_value i, nvm_value *out);
nvm_status nvm_str_fmt_fixed(struct nvm_vm *vm, nvm_value x, nvm_value digits, nvm_value *out);

/* ---- arrays (array.c) ---- */
nvm_status nvm_array_new(struct nvm_vm *vm, uint32_t cap, nvm_value *out);
/* an empty array storing bools as bytes until another value is stored */
nvm_status nvm_array_new_bools(struct nvm_vm *vm, nvm_value *out);
static inline nvm_value nvm_arr_at(const nvm_array *a, uint32_t k)
{
    return a->hdr.sub == NVM_ARR_BOOLS ? nvm_bool(a->bools[k] != 0) : a->items[k];
}
static inline size_t nvm_arr_esize(const nvm_array *a)
{
    return a->hdr.sub == NVM_ARR_BOOLS ? 1 : sizeof(nvm_value);
}
nvm_status nvm_array_push(struct nvm_vm *vm, nvm_value arr, nvm_value v);
/* Index i may be negative (from the end); out of range is a program error. */
nvm_status nvm_array_get(struct nvm_vm *vm, nvm_value arr_or_str, nvm_value i, nvm_value *out);
nvm_status nvm_array_set(struct nvm_vm *vm, nvm_value arr, nvm_value i, nvm_value v);
nvm_status nvm_array_pop(struct nvm_vm *vm, nvm_value arr, nvm_value *out);
nvm_status nvm_array_range(struct nvm_vm *vm, nvm_value a, nvm_value b, nvm_value *out);

/* ---- maps (map.c) ---- */
nvm_status nvm_map_new(struct nvm_vm *vm, nvm_value *out);
/* Keys must be str or int (program error otherwise). `found` may be NULL. Absent -> null. */
nvm_status nvm_map_get(struct nvm_vm *vm, nvm_value map, nvm_value key, nvm_value *out,
                       bool *found);
nvm_status nvm_map_set(struct nvm_vm *vm, nvm_value map, nvm_value key, nvm_value v);
nvm_status nvm_map_del(struct nvm_vm *vm, nvm_value map, nvm_value key);
nvm_status nvm_map_keys(struct nvm_vm *vm, nvm_value map, nvm_value *out);

/* ---- generic value operations (value.c) ---- */
bool nvm_truthy(const struct nvm_vm *vm, nvm_value v);
/* Structural equality as EQ defines it (recursion depth bounded; cycles compare by identity). */
bool nvm_equal(const struct nvm_vm *vm, nvm_value a, nvm_value b);
/* LEN / ARR_LEN. */
nvm_status nvm_len(struct nvm_vm *vm, nvm_value v, nvm_value *out);
nvm_status nvm_cast(struct nvm_vm *vm, nvm_value v, int cast_type, nvm_value *out);
nvm_status nvm_typeof(struct nvm_vm *vm, nvm_value v, nvm_value *out);
/* Shortest round-trip decimal, never exponent notation, ".0" on integral values, "NaN", "inf",
 * "-inf", "-0.0". buf must hold NVM_FLOAT_FMT_MAX bytes; returns the length. */
#define NVM_FLOAT_FMT_MAX 400
size_t nvm_format_float(double d, char *buf);
/* Printed form appended to a growable buffer (maps print {k: v} in insertion order, arrays
 * [1, 2], strings unquoted at top level; nested strings are printed unquoted too, as upstream). */
nvm_status nvm_format_append(struct nvm_vm *vm, nvm_value v, char **buf, size_t *len, size_t *cap);

#endif
