/* str.c - arena strings: construction, hashing, concatenation and the STR_* operations.
 * Strings are immutable byte sequences (not necessarily UTF-8), NUL-terminated after len bytes,
 * with their FNV-1a hash computed on first use and cached (heap.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vm.h"

#define NVM_STR_MAX (UINT32_MAX - 1u)

uint32_t nvm_hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

/* A new string of `len` bytes whose contents the caller fills, then calls str_seal. */
static nvm_status str_alloc(nvm_vm *vm, size_t len, nvm_str **s, nvm_value *out)
{
    void *o = NULL;
    if (len > NVM_STR_MAX)
        return nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded (%zu bytes)",
                            vm->cfg.max_memory);
    nvm_status st = nvm_obj_new(vm, NVM_OBJ_STR, sizeof(nvm_str) + len + 1, &o, out);
    if (st != NVM_OK)
        return st;
    *s = o;
    (*s)->len = (uint32_t)len;
    (*s)->data[len] = '\0';
    return NVM_OK;
}

static void str_seal(nvm_str *s)
{
    s->hash = 0;
}

/* Decimal digits of i at the end of buf[0..32); returns the first digit's position. */
static size_t int_digits(int64_t i, char *buf)
{
    uint64_t u = i < 0 ? 0u - (uint64_t)i : (uint64_t)i;
    size_t p = 32;
    do {
        buf[--p] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (i < 0)
        buf[--p] = '-';
    return p;
}

static nvm_str *S(nvm_vm *vm, nvm_value v)
{
    return nvm_heap_obj(&vm->heap, v);
}

nvm_status nvm_str_new(nvm_vm *vm, const char *s, size_t len, nvm_value *out)
{
    nvm_str *r = NULL;
    nvm_status st = str_alloc(vm, len, &r, out);
    if (st != NVM_OK)
        return st;
    if (len > 0)
        memcpy(r->data, s, len);
    str_seal(r);
    return NVM_OK;
}

static nvm_status type_error1(nvm_vm *vm, const char *op, const char *expects, nvm_value a)
{
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: %s expects %s, got %s", op, expects,
                        nvm_type_name((nvm_type)a.type));
}

static nvm_status type_error2(nvm_vm *vm, const char *op, const char *expects, nvm_value a,
                              nvm_value b)
{
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: %s expects %s, got %s and %s", op, expects,
                        nvm_type_name((nvm_type)a.type), nvm_type_name((nvm_type)b.type));
}

static nvm_status type_error3(nvm_vm *vm, const char *op, const char *expects, nvm_value a,
                              nvm_value b, nvm_value c)
{
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "type error: %s expects %s, got %s, %s and %s", op,
                        expects, nvm_type_name((nvm_type)a.type), nvm_type_name((nvm_type)b.type),
                        nvm_type_name((nvm_type)c.type));
}

/* First occurrence of needle in hay at or after `from`, or -1. */
static int64_t find_bytes(const nvm_str *hay, const nvm_str *needle, uint32_t from)
{
    if (needle->len == 0)
        return from <= hay->len ? (int64_t)from : -1;
    if (needle->len > hay->len)
        return -1;
    const char first = needle->data[0];
    for (uint32_t i = from; i + needle->len <= hay->len; i++) {
        if (hay->data[i] == first && memcmp(hay->data + i, needle->data, needle->len) == 0)
            return i;
    }
    return -1;
}

nvm_status nvm_str_concat(nvm_vm *vm, nvm_value a, nvm_value b, nvm_value *out)
{
    if (a.type == NVM_T_STR && b.type == NVM_T_STR) {
        size_t la = S(vm, a)->len, lb = S(vm, b)->len;
        nvm_str *r = NULL;
        nvm_status st = str_alloc(vm, la + lb, &r, out);
        if (st != NVM_OK)
            return st;
        memcpy(r->data, S(vm, a)->data, la);
        memcpy(r->data + la, S(vm, b)->data, lb);
        str_seal(r);
        return NVM_OK;
    }
    if ((a.type == NVM_T_STR && b.type == NVM_T_INT) ||
        (a.type == NVM_T_INT && b.type == NVM_T_STR)) {
        char digits[32];
        size_t p = int_digits(a.type == NVM_T_INT ? a.as.i : b.as.i, digits);
        size_t ld = 32 - p;
        nvm_value s = a.type == NVM_T_STR ? a : b;
        size_t ls = S(vm, s)->len;
        nvm_str *r = NULL;
        nvm_status st = str_alloc(vm, ls + ld, &r, out);
        if (st != NVM_OK)
            return st;
        const nvm_str *src = S(vm, s);
        if (a.type == NVM_T_STR) {
            memcpy(r->data, src->data, ls);
            memcpy(r->data + ls, digits + p, ld);
        } else {
            memcpy(r->data, digits + p, ld);
            memcpy(r->data + ld, src->data, ls);
        }
        str_seal(r);
        return NVM_OK;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    nvm_status st = nvm_format_append(vm, a, &buf, &len, &cap);
    if (st == NVM_OK)
        st = nvm_format_append(vm, b, &buf, &len, &cap);
    if (st == NVM_OK)
        st = nvm_str_new(vm, buf, len, out);
    nvm_mem_free(vm, buf, cap);
    return st;
}

nvm_status nvm_str_contains(nvm_vm *vm, nvm_value s, nvm_value sub, nvm_value *out)
{
    if (s.type != NVM_T_STR || sub.type != NVM_T_STR)
        return type_error2(vm, "STR_CONTAINS", "str and str", s, sub);
    *out = nvm_bool(find_bytes(S(vm, s), S(vm, sub), 0) >= 0);
    return NVM_OK;
}

nvm_status nvm_str_find(nvm_vm *vm, nvm_value s, nvm_value needle, nvm_value *out)
{
    if (s.type != NVM_T_STR || needle.type != NVM_T_STR)
        return type_error2(vm, "STR_FIND", "str and str", s, needle);
    *out = nvm_int(find_bytes(S(vm, s), S(vm, needle), 0));
    return NVM_OK;
}

nvm_status nvm_str_starts_with(nvm_vm *vm, nvm_value s, nvm_value p, nvm_value *out)
{
    if (s.type != NVM_T_STR || p.type != NVM_T_STR)
        return type_error2(vm, "STR_STARTS_WITH", "str and str", s, p);
    const nvm_str *a = S(vm, s), *b = S(vm, p);
    *out = nvm_bool(b->len <= a->len && memcmp(a->data, b->data, b->len) == 0);
    return NVM_OK;
}

nvm_status nvm_str_ends_with(nvm_vm *vm, nvm_value s, nvm_value p, nvm_value *out)
{
    if (s.type != NVM_T_STR || p.type != NVM_T_STR)
        return type_error2(vm, "STR_ENDS_WITH", "str and str", s, p);
    const nvm_str *a = S(vm, s), *b = S(vm, p);
    *out = nvm_bool(b->len <= a->len && memcmp(a->data + a->len - b->len, b->data, b->len) == 0);
    return NVM_OK;
}

nvm_status nvm_str_split(nvm_vm *vm, nvm_value s, nvm_value sep, nvm_value *out)
{
    if (s.type != NVM_T_STR || sep.type != NVM_T_STR)
        return type_error2(vm, "STR_SPLIT", "str and str", s, sep);
    uint32_t slen = S(vm, s)->len, seplen = S(vm, sep)->len;
    uint32_t n = 0;
    if (seplen == 0) {
        n = slen;
    } else {
        n = 1;
        for (int64_t at = find_bytes(S(vm, s), S(vm, sep), 0); at >= 0;
             at = find_bytes(S(vm, s), S(vm, sep), (uint32_t)at + seplen))
            n++;
    }
    nvm_value arr;
    nvm_status st = nvm_array_new(vm, n, &arr);
    if (st != NVM_OK)
        return st;
    st = nvm_troot_push(vm, arr);
    if (st != NVM_OK)
        return st;
    /* the array has room for all n pieces: storing them allocates nothing */
    uint32_t pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t end;
        if (seplen == 0) {
            end = pos + 1;
        } else {
            int64_t at = find_bytes(S(vm, s), S(vm, sep), pos);
            end = at < 0 ? slen : (uint32_t)at;
        }
        nvm_value piece;
        st = nvm_str_new(vm, S(vm, s)->data + pos, end - pos, &piece);
        if (st != NVM_OK)
            goto done;
        nvm_array *a = nvm_heap_obj(&vm->heap, arr);
        a->items[a->len++] = piece;
        pos = seplen == 0 ? end : end + seplen;
    }
    *out = arr;
done:
    nvm_troot_pop(vm, 1);
    return st;
}

nvm_status nvm_str_replace(nvm_vm *vm, nvm_value s, nvm_value from, nvm_value to, nvm_value *out)
{
    if (s.type != NVM_T_STR || from.type != NVM_T_STR || to.type != NVM_T_STR)
        return type_error3(vm, "STR_REPLACE", "str, str and str", s, from, to);
    const nvm_str *fs = S(vm, from);
    if (fs->len == 0)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "STR_REPLACE: the string to replace is empty");
    size_t count = 0;
    for (int64_t at = find_bytes(S(vm, s), fs, 0); at >= 0;
         at = find_bytes(S(vm, s), fs, (uint32_t)at + fs->len))
        count++;
    size_t slen = S(vm, s)->len, tlen = S(vm, to)->len;
    size_t newlen = slen - count * fs->len;
    if (tlen > 0 && count > (NVM_STR_MAX - newlen) / tlen)
        return nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded (%zu bytes)",
                            vm->cfg.max_memory);
    newlen += count * tlen;
    nvm_str *r = NULL;
    nvm_status st = str_alloc(vm, newlen, &r, out);
    if (st != NVM_OK)
        return st;
    const nvm_str *ss = S(vm, s), *ts = S(vm, to);
    fs = S(vm, from);
    size_t w = 0;
    uint32_t pos = 0;
    for (int64_t at = find_bytes(ss, fs, 0); at >= 0; at = find_bytes(ss, fs, pos)) {
        memcpy(r->data + w, ss->data + pos, (size_t)at - pos);
        w += (size_t)at - pos;
        memcpy(r->data + w, ts->data, tlen);
        w += tlen;
        pos = (uint32_t)at + fs->len;
    }
    memcpy(r->data + w, ss->data + pos, slen - pos);
    str_seal(r);
    return NVM_OK;
}

nvm_status nvm_str_join(nvm_vm *vm, nvm_value arr, nvm_value sep, nvm_value *out)
{
    if (arr.type != NVM_T_ARRAY || sep.type != NVM_T_STR)
        return type_error2(vm, "STR_JOIN", "array and str", arr, sep);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    nvm_status st = NVM_OK;
    const nvm_array *a = nvm_heap_obj(&vm->heap, arr);
    for (uint32_t i = 0; i < a->len && st == NVM_OK; i++) {
        if (i > 0)
            st = nvm_format_append(vm, sep, &buf, &len, &cap);
        if (st == NVM_OK)
            st = nvm_format_append(vm, nvm_arr_at(a, i), &buf, &len, &cap);
    }
    if (st == NVM_OK)
        st = nvm_str_new(vm, buf, len, out);
    nvm_mem_free(vm, buf, cap);
    return st;
}

static nvm_status map_bytes(nvm_vm *vm, nvm_value s, const char *op, int mode, nvm_value *out)
{
    if (s.type != NVM_T_STR)
        return type_error1(vm, op, "str", s);
    nvm_str *r = NULL;
    nvm_status st = str_alloc(vm, S(vm, s)->len, &r, out);
    if (st != NVM_OK)
        return st;
    const nvm_str *src = S(vm, s);
    for (uint32_t i = 0; i < src->len; i++) {
        char c = src->data[i];
        if (mode == 0 && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (mode == 1 && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        r->data[i] = c;
    }
    str_seal(r);
    return NVM_OK;
}

nvm_status nvm_str_to_upper(nvm_vm *vm, nvm_value s, nvm_value *out)
{
    return map_bytes(vm, s, "STR_TO_UPPER", 0, out);
}

nvm_status nvm_str_to_lower(nvm_vm *vm, nvm_value s, nvm_value *out)
{
    return map_bytes(vm, s, "STR_TO_LOWER", 1, out);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

nvm_status nvm_str_trim(nvm_vm *vm, nvm_value s, nvm_value *out)
{
    if (s.type != NVM_T_STR)
        return type_error1(vm, "STR_TRIM", "str", s);
    const nvm_str *src = S(vm, s);
    uint32_t b = 0, e = src->len;
    while (b < e && is_space(src->data[b]))
        b++;
    while (e > b && is_space(src->data[e - 1]))
        e--;
    if (b == 0 && e == src->len) {
        *out = s;
        return NVM_OK;
    }
    return nvm_str_new(vm, src->data + b, e - b, out);
}

nvm_status nvm_str_sub(nvm_vm *vm, nvm_value s, nvm_value start, nvm_value end, nvm_value *out)
{
    if (s.type != NVM_T_STR || start.type != NVM_T_INT || end.type != NVM_T_INT)
        return type_error3(vm, "STR_SUB", "str, int and int", s, start, end);
    const nvm_str *src = S(vm, s);
    int64_t a = start.as.i, b = end.as.i;
    if (a < 0 || a > b || b > (int64_t)src->len)
        return nvm_vm_raise(vm, NVM_E_PROGRAM,
                            "STR_SUB range [%lld, %lld) out of bounds (length %u)", (long long)a,
                            (long long)b, src->len);
    return nvm_str_new(vm, src->data + a, (size_t)(b - a), out);
}

nvm_status nvm_str_ord(nvm_vm *vm, nvm_value s, nvm_value i, nvm_value *out)
{
    if (s.type != NVM_T_STR || i.type != NVM_T_INT)
        return type_error2(vm, "STR_ORD", "str and int", s, i);
    const nvm_str *src = S(vm, s);
    if (i.as.i < 0 || i.as.i >= (int64_t)src->len)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "index %lld out of range (length %u)",
                            (long long)i.as.i, src->len);
    *out = nvm_int((uint8_t)src->data[i.as.i]);
    return NVM_OK;
}

nvm_status nvm_str_chr(nvm_vm *vm, nvm_value i, nvm_value *out)
{
    if (i.type != NVM_T_INT)
        return type_error1(vm, "STR_CHR", "int", i);
    if (i.as.i < 0 || i.as.i > 255)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "STR_CHR expects 0..255, got %lld",
                            (long long)i.as.i);
    char c = (char)(uint8_t)i.as.i;
    return nvm_str_new(vm, &c, 1, out);
}

nvm_status nvm_str_fmt_fixed(nvm_vm *vm, nvm_value x, nvm_value digits, nvm_value *out)
{
    if ((x.type != NVM_T_INT && x.type != NVM_T_FLOAT) || digits.type != NVM_T_INT)
        return type_error2(vm, "STR_FMT_FIXED", "a number and an int", x, digits);
    if (digits.as.i < 0 || digits.as.i > 20)
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "STR_FMT_FIXED expects 0..20 digits, got %lld",
                            (long long)digits.as.i);
    int nd = (int)digits.as.i;
    /* widest: sign, 309 integral digits, point, 20 decimals */
    char buf[400];
    int n;
    if (x.type == NVM_T_INT) {
        /* exact for every int64, unlike a conversion to double */
        n = snprintf(buf, sizeof buf, "%lld%s%.*s", (long long)x.as.i, nd > 0 ? "." : "", nd,
                     "00000000000000000000");
    } else if (isnan(x.as.f)) {
        n = snprintf(buf, sizeof buf, "NaN");
    } else if (isinf(x.as.f)) {
        n = snprintf(buf, sizeof buf, "%s", x.as.f < 0 ? "-inf" : "inf");
    } else {
        n = snprintf(buf, sizeof buf, "%.*f", nd, x.as.f);
    }
    if (n < 0 || (size_t)n >= sizeof buf)
        return nvm_vm_raise(vm, NVM_E_INTERNAL, "STR_FMT_FIXED: formatting failed");
    return nvm_str_new(vm, buf, (size_t)n, out);
}
