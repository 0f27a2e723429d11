/* pure.c - capabilities without side effects, which need no grant (deny rules still apply):
 * crypto.sha256, crypto.hmac_sha256 (lower-case hex, through src/trust/crypto.h), json.parse
 * (jansson; arrays, maps in document order, ints, floats, strings, bools, null) and
 * json.stringify (compact; maps in insertion order; int keys become strings). Nesting is bounded
 * by NVM_JSON_MAX_DEPTH both ways (which also stops cyclic values). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "host/hal.h"
#include "trust/crypto.h"

#define NVM_JSON_MAX_DEPTH 256

static nvm_status want_str(nvm_vm *vm, const char *capname, const char *what, nvm_value v)
{
    if (v.type == NVM_T_STR)
        return NVM_OK;
    return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: the %s must be a str, got %s", capname, what,
                        nvm_type_name((nvm_type)v.type));
}

static nvm_status hex_result(nvm_vm *vm, const uint8_t d[NVM_SHA256_LEN], nvm_value *result)
{
    char hex[2 * NVM_SHA256_LEN + 1];
    nvm_hex(d, NVM_SHA256_LEN, hex);
    return nvm_value_new_str(vm, hex, 2 * NVM_SHA256_LEN, result);
}

static nvm_status crypto_sha256(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                                nvm_value *result)
{
    (void)argc;
    nvm_status st = want_str(vm, "crypto.sha256", "data", args[0]);
    if (st == NVM_OK)
        st = nvm_host_gate(ud, vm, "crypto.sha256", NULL, NVM_GATE_PURE | NVM_GATE_NOGRANT, NULL);
    if (st != NVM_OK)
        return st;
    size_t len = 0;
    const char *s = nvm_value_str(vm, args[0], &len);
    uint8_t d[NVM_SHA256_LEN];
    nvm_sha256(s, len, d);
    return hex_result(vm, d, result);
}

static nvm_status crypto_hmac(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                              nvm_value *result)
{
    (void)argc;
    nvm_status st = want_str(vm, "crypto.hmac_sha256", "key", args[0]);
    if (st == NVM_OK)
        st = want_str(vm, "crypto.hmac_sha256", "message", args[1]);
    if (st == NVM_OK)
        st = nvm_host_gate(ud, vm, "crypto.hmac_sha256", NULL, NVM_GATE_PURE | NVM_GATE_NOGRANT,
                           NULL);
    if (st != NVM_OK)
        return st;
    size_t kl = 0, ml = 0;
    const char *k = nvm_value_str(vm, args[0], &kl);
    const char *m = nvm_value_str(vm, args[1], &ml);
    uint8_t d[NVM_SHA256_LEN];
    if (nvm_hmac_sha256(k, kl, m, ml, d) != NVM_OK)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "crypto.hmac_sha256: the key is too long");
    return hex_result(vm, d, result);
}

/* ---- json.parse ---- */

static nvm_status from_json(nvm_vm *vm, json_t *j, int depth, nvm_value *out)
{
    nvm_status st = NVM_OK;
    if (depth > NVM_JSON_MAX_DEPTH)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "json.parse: nested deeper than %d",
                            NVM_JSON_MAX_DEPTH);
    switch (json_typeof(j)) {
    case JSON_NULL: *out = nvm_null(); return NVM_OK;
    case JSON_TRUE: *out = nvm_bool(true); return NVM_OK;
    case JSON_FALSE: *out = nvm_bool(false); return NVM_OK;
    case JSON_INTEGER: *out = nvm_int((int64_t)json_integer_value(j)); return NVM_OK;
    case JSON_REAL: *out = nvm_float(json_real_value(j)); return NVM_OK;
    case JSON_STRING:
        return nvm_value_new_str(vm, json_string_value(j), json_string_length(j), out);
    case JSON_ARRAY: {
        nvm_value arr;
        if ((st = nvm_value_new_array(vm, &arr)) != NVM_OK ||
            (st = nvm_value_root(vm, arr)) != NVM_OK)
            return st;
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e)
        {
            nvm_value v;
            st = from_json(vm, e, depth + 1, &v);
            if (st == NVM_OK)
                st = nvm_array_push_value(vm, arr, v);
            if (st != NVM_OK)
                break;
        }
        nvm_value_unroot(vm, 1);
        *out = arr;
        return st;
    }
    case JSON_OBJECT: {
        nvm_value map;
        if ((st = nvm_value_new_map(vm, &map)) != NVM_OK ||
            (st = nvm_value_root(vm, map)) != NVM_OK)
            return st;
        const char *k;
        size_t klen;
        json_t *e;
        json_object_keylen_foreach(j, k, klen, e)
        {
            nvm_value key, v;
            st = nvm_value_new_str(vm, k, klen, &key);
            if (st != NVM_OK)
                break;
            if ((st = nvm_value_root(vm, key)) != NVM_OK)
                break;
            st = from_json(vm, e, depth + 1, &v);
            if (st == NVM_OK)
                st = nvm_map_set_value(vm, map, key, v);
            nvm_value_unroot(vm, 1);
            if (st != NVM_OK)
                break;
        }
        nvm_value_unroot(vm, 1);
        *out = map;
        return st;
    }
    }
    return nvm_cap_fail(vm, NVM_E_INTERNAL, "json.parse: unknown JSON type");
}

static nvm_status json_parse(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                             nvm_value *result)
{
    (void)argc;
    nvm_status st = want_str(vm, "json.parse", "text", args[0]);
    if (st == NVM_OK)
        st = nvm_host_gate(ud, vm, "json.parse", NULL, NVM_GATE_PURE | NVM_GATE_NOGRANT, NULL);
    if (st != NVM_OK)
        return st;
    size_t len = 0;
    const char *s = nvm_value_str(vm, args[0], &len);
    json_error_t jerr;
    json_t *j = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "json.parse: line %d, column %d: %s", jerr.line,
                            jerr.column, jerr.text);
    st = from_json(vm, j, 0, result);
    json_decref(j);
    if (st != NVM_OK)
        *result = nvm_null();
    return st;
}

/* ---- json.stringify ---- */

typedef struct sbuf {
    nvm_vm *vm;
    char *p; /* malloc'ed */
    size_t len, cap;
} sbuf;

static nvm_status put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n)
            ncap *= 2;
        if (ncap > UINT32_MAX)
            return nvm_cap_fail(b->vm, NVM_E_PROGRAM, "json.stringify: result too large");
        char *np = realloc(b->p, ncap);
        if (np == NULL)
            return nvm_cap_fail(b->vm, NVM_E_MEMORY, "json.stringify: out of memory");
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return NVM_OK;
}

/* The printed form of a float (shortest round trip, as io.print shows it). */
static nvm_status put_float(sbuf *b, nvm_value v)
{
    char *f = NULL;
    size_t fl = 0, fc = 0;
    nvm_status st = nvm_value_format(b->vm, v, &f, &fl, &fc);
    if (st == NVM_OK)
        st = put(b, f, fl);
    if (f != NULL)
        nvm_vm_free_buffer(b->vm, f, fc);
    return st;
}

static nvm_status put_str(sbuf *b, const char *s, size_t n)
{
    nvm_status st = put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; st == NVM_OK && i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)s[i] : 0;
        if (i < n && c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (i > run)
            st = put(b, s + run, i - run);
        run = i + 1;
        if (st != NVM_OK || i == n)
            break;
        char esc[8];
        switch (c) {
        case '"': st = put(b, "\\\"", 2); break;
        case '\\': st = put(b, "\\\\", 2); break;
        case '\n': st = put(b, "\\n", 2); break;
        case '\r': st = put(b, "\\r", 2); break;
        case '\t': st = put(b, "\\t", 2); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c); st = put(b, esc, 6);
        }
    }
    if (st == NVM_OK)
        st = put(b, "\"", 1);
    return st;
}

static nvm_status to_json(sbuf *b, nvm_value v, int depth)
{
    nvm_vm *vm = b->vm;
    char num[32];
    if (depth > NVM_JSON_MAX_DEPTH)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "json.stringify: nested deeper than %d (or cyclic)",
                            NVM_JSON_MAX_DEPTH);
    switch ((nvm_type)v.type) {
    case NVM_T_NULL: return put(b, "null", 4);
    case NVM_T_BOOL: return v.as.b ? put(b, "true", 4) : put(b, "false", 5);
    case NVM_T_INT:
        snprintf(num, sizeof num, "%lld", (long long)v.as.i);
        return put(b, num, strlen(num));
    case NVM_T_FLOAT:
        if (v.as.f != v.as.f || v.as.f > 1.7976931348623157e308 || v.as.f < -1.7976931348623157e308)
            return nvm_cap_fail(vm, NVM_E_PROGRAM, "json.stringify: %s has no JSON form",
                                v.as.f != v.as.f ? "NaN" : "an infinity");
        return put_float(b, v);
    case NVM_T_STR: {
        /* s stays valid: put() allocates no VM object (put_float's buffer is not an object) */
        size_t n = 0;
        const char *s = nvm_value_str(vm, v, &n);
        return put_str(b, s, n);
    }
    case NVM_T_ARRAY: {
        nvm_status st = put(b, "[", 1);
        uint32_t n = nvm_value_array_len(vm, v);
        for (uint32_t i = 0; st == NVM_OK && i < n; i++) {
            if (i > 0)
                st = put(b, ",", 1);
            if (st == NVM_OK)
                st = to_json(b, nvm_value_array_get(vm, v, i), depth + 1);
        }
        return st == NVM_OK ? put(b, "]", 1) : st;
    }
    case NVM_T_MAP: {
        nvm_status st = put(b, "{", 1);
        uint32_t pos = 0;
        nvm_value k, e;
        bool first = true;
        while (st == NVM_OK && nvm_value_map_entry(vm, v, &pos, &k, &e)) {
            if (!first)
                st = put(b, ",", 1);
            first = false;
            if (st == NVM_OK && k.type == NVM_T_INT) {
                snprintf(num, sizeof num, "\"%lld\"", (long long)k.as.i);
                st = put(b, num, strlen(num));
            } else if (st == NVM_OK) {
                st = to_json(b, k, depth + 1);
            }
            if (st == NVM_OK)
                st = put(b, ":", 1);
            if (st == NVM_OK)
                st = to_json(b, e, depth + 1);
        }
        return st == NVM_OK ? put(b, "}", 1) : st;
    }
    default: return nvm_cap_fail(vm, NVM_E_PROGRAM, "json.stringify: unsupported value");
    }
}

static nvm_status json_stringify(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                                 nvm_value *result)
{
    (void)argc;
    nvm_status st =
        nvm_host_gate(ud, vm, "json.stringify", NULL, NVM_GATE_PURE | NVM_GATE_NOGRANT, NULL);
    if (st != NVM_OK)
        return st;
    sbuf b = {vm, NULL, 0, 0};
    st = to_json(&b, args[0], 0);
    if (st == NVM_OK)
        st = nvm_value_new_str(vm, b.p != NULL ? b.p : "", b.len, result);
    free(b.p);
    return st;
}

nvm_status nvm_host_install_pure(nvm_host *h, nvm_vm *vm)
{
    static const struct {
        const char *name;
        uint32_t argc;
        nvm_cap_fn fn;
    } caps[] = {
        {"crypto.sha256", 1, crypto_sha256},
        {"crypto.hmac_sha256", 2, crypto_hmac},
        {"json.parse", 1, json_parse},
        {"json.stringify", 1, json_stringify},
    };
    nvm_status st = NVM_OK;
    for (size_t i = 0; st == NVM_OK && i < sizeof caps / sizeof caps[0]; i++)
        st = nvm_vm_register_cap(vm, caps[i].name, caps[i].argc, caps[i].fn, h);
    return st;
}
