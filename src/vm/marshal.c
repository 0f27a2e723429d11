/* marshal.c - the value codec (marshal.h): encoding values into a byte buffer and decoding them
 * back into a VM's arena, with depth, size and cycle checks. */
#include <string.h>

#include "marshal.h"
#include "../isa/operand.h"
#include "heap.h"
#include "vm.h"

void nvm_mbuf_init(nvm_mbuf *b, nvm_alloc_fn alloc, void *ud, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit != 0 && limit < UINT32_MAX ? limit : UINT32_MAX;
    b->alloc = alloc;
    b->alloc_ud = ud;
}

void nvm_mbuf_free(nvm_mbuf *b)
{
    if (b->data != NULL)
        b->alloc(b->alloc_ud, b->data, b->cap, 0);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

nvm_status nvm_mbuf_put(nvm_mbuf *b, const void *p, size_t n)
{
    if (n > b->limit - b->len)
        return NVM_E_MEMORY;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap != 0 ? b->cap : 256;
        while (ncap < b->len + n)
            ncap = ncap <= b->limit / 2 ? ncap * 2 : b->limit;
        uint8_t *nd = b->alloc(b->alloc_ud, b->data, b->cap, ncap);
        if (nd == NULL)
            return NVM_E_MEMORY;
        b->data = nd;
        b->cap = ncap;
    }
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return NVM_OK;
}

nvm_status nvm_mbuf_put_u32(nvm_mbuf *b, uint32_t v)
{
    uint8_t t[4];
    nvm_put_u32(t, v);
    return nvm_mbuf_put(b, t, 4);
}

nvm_alloc_fn nvm_vm_alloc_hook(const nvm_vm *vm, void **ud)
{
    *ud = vm->cfg.alloc_ud;
    return vm->cfg.alloc;
}

/* ---- encoding ---- */

static nvm_status enc_full(nvm_vm *vm)
{
    return nvm_vm_raise(vm, NVM_E_MEMORY, "value too large to pass across the sandbox boundary");
}

/* The containers being written, outermost first (their NVM_MARK_VISIT bits are set). */
typedef struct enc_path {
    uint32_t h[NVM_MARSHAL_MAX_DEPTH];
} enc_path;

static nvm_status enc_value(nvm_vm *vm, enc_path *path, nvm_value v, uint32_t depth, nvm_mbuf *b);

static nvm_status enc_tag_u64(nvm_mbuf *b, uint8_t tag, uint64_t x)
{
    uint8_t t[9];
    t[0] = tag;
    nvm_put_u64(t + 1, x);
    return nvm_mbuf_put(b, t, sizeof t);
}

static nvm_status enc_container(nvm_vm *vm, enc_path *path, nvm_value v, uint32_t depth,
                                nvm_mbuf *b)
{
    nvm_gchdr *hdr = nvm_heap_obj(&vm->heap, v);
    uint8_t t[5];
    if (hdr->mark & NVM_MARK_VISIT) {
        uint32_t k = 0;
        while (k < depth && path->h[depth - 1 - k] != v.as.h)
            k++;
        t[0] = NVM_MT_BACKREF;
        nvm_put_u32(t + 1, k);
        return nvm_mbuf_put(b, t, 5) == NVM_OK ? NVM_OK : enc_full(vm);
    }
    if (depth >= NVM_MARSHAL_MAX_DEPTH)
        return nvm_vm_raise(vm, NVM_E_PROGRAM,
                            "a value nested deeper than %u cannot be passed to a capability",
                            NVM_MARSHAL_MAX_DEPTH);
    nvm_status st = NVM_OK;
    hdr->mark |= NVM_MARK_VISIT;
    path->h[depth] = v.as.h;
    if (v.type == NVM_T_ARRAY) {
        const nvm_array *a = (const nvm_array *)hdr;
        t[0] = NVM_MT_ARRAY;
        nvm_put_u32(t + 1, a->len);
        if (nvm_mbuf_put(b, t, 5) != NVM_OK)
            st = enc_full(vm);
        for (uint32_t i = 0; st == NVM_OK && i < a->len; i++)
            st = enc_value(vm, path, nvm_arr_at(a, i), depth + 1, b);
    } else {
        const nvm_map *m = (const nvm_map *)hdr;
        t[0] = NVM_MT_MAP;
        nvm_put_u32(t + 1, m->count);
        if (nvm_mbuf_put(b, t, 5) != NVM_OK)
            st = enc_full(vm);
        for (uint32_t i = 0; st == NVM_OK && i < m->nentries; i++) {
            const nvm_mapentry *e = &m->entries[i];
            if (e->key.type == NVM_T_UNDEF)
                continue;
            st = enc_value(vm, path, e->key, depth + 1, b);
            if (st == NVM_OK)
                st = enc_value(vm, path, e->value, depth + 1, b);
        }
    }
    hdr->mark &= (uint8_t)~NVM_MARK_VISIT;
    return st;
}

static nvm_status enc_value(nvm_vm *vm, enc_path *path, nvm_value v, uint32_t depth, nvm_mbuf *b)
{
    nvm_status st;
    uint8_t tag;
    switch ((nvm_type)v.type) {
    case NVM_T_NULL: tag = NVM_MT_NULL; break;
    case NVM_T_BOOL: tag = v.as.b ? NVM_MT_TRUE : NVM_MT_FALSE; break;
    case NVM_T_INT:
        return enc_tag_u64(b, NVM_MT_INT, (uint64_t)v.as.i) == NVM_OK ? NVM_OK : enc_full(vm);
    case NVM_T_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v.as.f, sizeof bits);
        return enc_tag_u64(b, NVM_MT_FLOAT, bits) == NVM_OK ? NVM_OK : enc_full(vm);
    }
    case NVM_T_STR: {
        const nvm_str *s = nvm_heap_obj(&vm->heap, v);
        uint8_t t[5];
        t[0] = NVM_MT_STR;
        nvm_put_u32(t + 1, s->len);
        st = nvm_mbuf_put(b, t, 5);
        if (st == NVM_OK)
            st = nvm_mbuf_put(b, s->data, s->len);
        return st == NVM_OK ? NVM_OK : enc_full(vm);
    }
    case NVM_T_ARRAY:
    case NVM_T_MAP: return enc_container(vm, path, v, depth, b);
    default:
        return nvm_vm_raise(vm, NVM_E_INTERNAL, "value of type %u cannot be encoded",
                            (unsigned)v.type);
    }
    return nvm_mbuf_put(b, &tag, 1) == NVM_OK ? NVM_OK : enc_full(vm);
}

nvm_status nvm_marshal_encode(nvm_vm *vm, const nvm_value *values, uint32_t n, nvm_mbuf *b)
{
    enc_path path;
    if (nvm_mbuf_put_u32(b, n) != NVM_OK)
        return enc_full(vm);
    for (uint32_t i = 0; i < n; i++) {
        nvm_status st = enc_value(vm, &path, values[i], 0, b);
        if (st != NVM_OK)
            return st;
    }
    return NVM_OK;
}

/* ---- decoding ---- */

typedef struct rd {
    const uint8_t *p;
    size_t left;
    nvm_value path[NVM_MARSHAL_MAX_DEPTH]; /* containers being filled, outermost first (rooted) */
} rd;

static nvm_status bad(nvm_vm *vm, const char *what)
{
    return nvm_vm_raise(vm, NVM_E_FORMAT, "malformed value encoding: %s", what);
}

static bool take(rd *r, size_t n, const uint8_t **out)
{
    if (n > r->left)
        return false;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

/* Decodes one value; on NVM_OK it is pushed on the temporary root stack. */
static nvm_status dec_value(nvm_vm *vm, rd *r, uint32_t depth, nvm_value *out)
{
    const uint8_t *p;
    nvm_status st;
    nvm_value v = nvm_null();
    if (!take(r, 1, &p))
        return bad(vm, "truncated");
    uint8_t tag = p[0];
    switch (tag) {
    case NVM_MT_NULL: break;
    case NVM_MT_FALSE:
    case NVM_MT_TRUE: v = nvm_bool(tag == NVM_MT_TRUE); break;
    case NVM_MT_INT:
    case NVM_MT_FLOAT: {
        if (!take(r, 8, &p))
            return bad(vm, "truncated number");
        uint64_t bits = nvm_get_u64(p);
        if (tag == NVM_MT_INT) {
            v = nvm_int((int64_t)bits);
        } else {
            double d;
            memcpy(&d, &bits, sizeof d);
            v = nvm_float(d);
        }
        break;
    }
    case NVM_MT_STR: {
        if (!take(r, 4, &p))
            return bad(vm, "truncated string length");
        uint32_t len = nvm_get_u32(p);
        if (!take(r, len, &p))
            return bad(vm, "string longer than the buffer");
        st = nvm_str_new(vm, (const char *)p, len, &v);
        if (st != NVM_OK)
            return st;
        break;
    }
    case NVM_MT_ARRAY:
    case NVM_MT_MAP: {
        if (depth >= NVM_MARSHAL_MAX_DEPTH)
            return bad(vm, "nested too deeply");
        if (!take(r, 4, &p))
            return bad(vm, "truncated count");
        uint32_t n = nvm_get_u32(p);
        /* every element takes at least one byte (two for a map entry) */
        if (n > r->left / (tag == NVM_MT_MAP ? 2u : 1u))
            return bad(vm, "count larger than the buffer");
        st = tag == NVM_MT_ARRAY ? nvm_array_new(vm, n, &v) : nvm_map_new(vm, &v);
        if (st != NVM_OK)
            return st;
        st = nvm_troot_push(vm, v);
        if (st != NVM_OK)
            return st;
        r->path[depth] = v;
        for (uint32_t i = 0; i < n && st == NVM_OK; i++) {
            nvm_value a, b;
            st = dec_value(vm, r, depth + 1, &a);
            if (st != NVM_OK)
                break;
            if (tag == NVM_MT_ARRAY) {
                st = nvm_array_push(vm, v, a);
                nvm_troot_pop(vm, 1);
                continue;
            }
            if (a.type != NVM_T_STR && a.type != NVM_T_INT) {
                nvm_troot_pop(vm, 1);
                st = bad(vm, "map key neither str nor int");
                break;
            }
            st = dec_value(vm, r, depth + 1, &b);
            if (st == NVM_OK) {
                st = nvm_map_set(vm, v, a, b);
                nvm_troot_pop(vm, 1);
            }
            nvm_troot_pop(vm, 1);
        }
        nvm_troot_pop(vm, 1);
        if (st != NVM_OK)
            return st;
        break;
    }
    case NVM_MT_BACKREF: {
        if (!take(r, 4, &p))
            return bad(vm, "truncated back-reference");
        uint32_t k = nvm_get_u32(p);
        if (k >= depth)
            return bad(vm, "back-reference outside the path");
        v = r->path[depth - 1 - k];
        break;
    }
    default: return bad(vm, "unknown tag");
    }
    st = nvm_troot_push(vm, v);
    if (st != NVM_OK)
        return st;
    *out = v;
    return NVM_OK;
}

nvm_status nvm_marshal_decode(nvm_vm *vm, const uint8_t *buf, size_t len, nvm_value *values,
                              uint32_t max, uint32_t *n)
{
    rd r;
    const uint8_t *p;
    r.p = buf;
    r.left = len;
    *n = 0;
    if (!take(&r, 4, &p))
        return bad(vm, "truncated count");
    uint32_t count = nvm_get_u32(p);
    if (count > max)
        return bad(vm, "too many values");
    nvm_status st = NVM_OK;
    uint32_t done = 0; /* values decoded and rooted */
    while (done < count && st == NVM_OK) {
        st = dec_value(vm, &r, 0, &values[done]);
        if (st == NVM_OK)
            done++;
    }
    if (st == NVM_OK && r.left != 0)
        st = bad(vm, "trailing bytes");
    if (st != NVM_OK) {
        nvm_troot_pop(vm, done);
        return st;
    }
    *n = count;
    return NVM_OK;
}
