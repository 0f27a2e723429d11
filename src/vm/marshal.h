/* marshal.h - the value codec: a self-contained byte encoding of NanoVM values, used wherever
 * values cross a boundary that pointers cannot (the WASM sandbox's capability imports, the
 * isolated child's socketpair). Portable core code: no OS call.
 *
 * Encoding (little-endian), a list of values:
 *     list  := u32 count, value * count
 *     value := u8 tag, payload
 *       tag 0 null | 1 false | 2 true | 3 int: i64 | 4 float: f64 bits as u64
 *           5 str: u32 len, len bytes | 6 array: u32 n, value * n
 *           7 map: u32 n, (key value) * n in insertion order; keys are str or int
 *           8 back-reference: u32 k, the container k levels up the current path (0 = the
 *             innermost container being written), so that cycles survive the trip
 * Shared substructure that is not a cycle is written once per occurrence.
 *
 * Bounds: containers nest at most NVM_MARSHAL_MAX_DEPTH deep; an encoding is at most the
 * buffer's `limit` bytes (and never more than UINT32_MAX); decoding checks every count and length
 * against the bytes that remain before it allocates anything.
 */
#ifndef NVM_MARSHAL_H
#define NVM_MARSHAL_H

#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"

#define NVM_MARSHAL_MAX_DEPTH 512u

enum nvm_marshal_tag {
    NVM_MT_NULL = 0,
    NVM_MT_FALSE = 1,
    NVM_MT_TRUE = 2,
    NVM_MT_INT = 3,
    NVM_MT_FLOAT = 4,
    NVM_MT_STR = 5,
    NVM_MT_ARRAY = 6,
    NVM_MT_MAP = 7,
    NVM_MT_BACKREF = 8
};

/* A growable byte buffer. data[0..len) is the encoding so far; the block is cap bytes from
 * `alloc` (not counted against any VM's memory limit). */
typedef struct nvm_mbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t limit;       /* the buffer never grows beyond this many bytes */
    nvm_alloc_fn alloc; /* lua_Alloc contract (nanovm.h) */
    void *alloc_ud;
} nvm_mbuf;

/* An empty buffer whose blocks come from `alloc` (e.g. nvm_vm_alloc_hook of a VM). limit 0 means
 * UINT32_MAX. */
void nvm_mbuf_init(nvm_mbuf *b, nvm_alloc_fn alloc, void *ud, size_t limit);
void nvm_mbuf_free(nvm_mbuf *b);
/* Append raw bytes (NVM_E_MEMORY when the limit or the allocator refuses). */
nvm_status nvm_mbuf_put(nvm_mbuf *b, const void *p, size_t n);
nvm_status nvm_mbuf_put_u32(nvm_mbuf *b, uint32_t v);

/* The allocator hook of a VM's configuration (for nvm_mbuf_init in core code). */
nvm_alloc_fn nvm_vm_alloc_hook(const nvm_vm *vm, void **ud);

/* Appends the list values[0..n) to b. Failures are recorded on vm: NVM_E_PROGRAM for a value
 * nested deeper than NVM_MARSHAL_MAX_DEPTH, NVM_E_MEMORY when b cannot grow. */
nvm_status nvm_marshal_encode(nvm_vm *vm, const nvm_value *values, uint32_t n, nvm_mbuf *b);

/* Decodes a list of at most `max` values from buf[0..len) into values[], creating strings, arrays
 * and maps in vm's arena; *n receives the count. The whole buffer must be consumed. On NVM_OK
 * the *n values are pushed on vm's temporary root stack: release them with
 * nvm_value_unroot(vm, *n) once they are stored elsewhere. Failures (nothing left rooted) are
 * recorded on vm: NVM_E_FORMAT for a malformed encoding, NVM_E_MEMORY. */
nvm_status nvm_marshal_decode(nvm_vm *vm, const uint8_t *buf, size_t len, nvm_value *values,
                              uint32_t max, uint32_t *n);

#endif
