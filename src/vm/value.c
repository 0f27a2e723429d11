/* value.c - generic value operations: type names, truthiness, structural equality, LEN, CAST,
 * TYPEOF, the printed form of values (float formatting without exponents, cycle-safe container
 * printing without C recursion) and the value functions of the public API. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

/* Structural equality descends at most this many container levels; deeper pairs of distinct
 * containers compare unequal (this also ends the comparison of distinct cyclic structures). */
#define NVM_EQ_MAX_DEPTH 1024
/* Container levels the printer keeps on the C stack before moving its path to the arena. */
#define NVM_FMT_LOCAL_DEPTH 32

static const char *const type_names[] = {"null", "bool",  "int", "float",
                                         "str",  "array", "map", "undefined"};

const char *nvm_type_name(nvm_type t)
{
    if ((unsigned)t < sizeof type_names / sizeof type_names[0])
        return type_names[t];
    return "unknown";
}

bool nvm_truthy(const nvm_vm *vm, nvm_value v)
{
    switch (v.type) {
    case NVM_T_BOOL: return v.as.b != 0;
    case NVM_T_INT: return v.as.i != 0;
    case NVM_T_FLOAT: return v.as.f != 0.0; /* NaN is truthy */
    case NVM_T_STR: return ((const nvm_str *)nvm_heap_obj(&vm->heap, v))->len > 0;
    case NVM_T_ARRAY: return ((const nvm_array *)nvm_heap_obj(&vm->heap, v))->len > 0;
    case NVM_T_MAP: return ((const nvm_map *)nvm_heap_obj(&vm->heap, v))->count > 0;
    default: return false;
    }
}

/* ---- equality ---- */

enum { EQ_NO = 0, EQ_YES = 1, EQ_DESCEND = 2 };

static bool int_float_equal(int64_t i, double f)
{
    /* equal iff f is integral, within int64 range and equal to i */
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0))
        return false;
    if (f != trunc(f))
        return false;
    return (int64_t)f == i;
}

/* Compares everything that needs no descent; EQ_DESCEND for two distinct containers of the same
 * kind and size. */
static int shallow_equal(const nvm_heap *h, nvm_value a, nvm_value b)
{
    if (a.type == NVM_T_INT && b.type == NVM_T_FLOAT)
        return int_float_equal(a.as.i, b.as.f);
    if (a.type == NVM_T_FLOAT && b.type == NVM_T_INT)
        return int_float_equal(b.as.i, a.as.f);
    if (a.type != b.type)
        return EQ_NO;
    switch (a.type) {
    case NVM_T_NULL: return EQ_YES;
    case NVM_T_BOOL: return (a.as.b != 0) == (b.as.b != 0);
    case NVM_T_INT: return a.as.i == b.as.i;
    case NVM_T_FLOAT: return a.as.f == b.as.f;
    case NVM_T_STR: {
        if (a.as.h == b.as.h)
            return EQ_YES;
        const nvm_str *x = nvm_heap_obj(h, a), *y = nvm_heap_obj(h, b);
        return x->len == y->len && (x->hash == 0 || y->hash == 0 || x->hash == y->hash) &&
               memcmp(x->data, y->data, x->len) == 0;
    }
    case NVM_T_ARRAY:
        if (a.as.h == b.as.h)
            return EQ_YES;
        if (((const nvm_array *)nvm_heap_obj(h, a))->len !=
            ((const nvm_array *)nvm_heap_obj(h, b))->len)
            return EQ_NO;
        return EQ_DESCEND;
    case NVM_T_MAP:
        if (a.as.h == b.as.h)
            return EQ_YES;
        if (((const nvm_map *)nvm_heap_obj(h, a))->count !=
            ((const nvm_map *)nvm_heap_obj(h, b))->count)
            return EQ_NO;
        return EQ_DESCEND;
    default: return EQ_NO;
    }
}

typedef struct eq_frame {
    uint32_t ha, hb; /* the two containers being compared */
    uint32_t idx;    /* next element (array) or entry (map of ha) to compare */
} eq_frame;

bool nvm_equal(const nvm_vm *vm, nvm_value a, nvm_value b)
{
    const nvm_heap *h = &vm->heap;
    eq_frame fr[NVM_EQ_MAX_DEPTH];
    uint32_t depth = 0;
    int r = shallow_equal(h, a, b);
    if (r != EQ_DESCEND)
        return r == EQ_YES;
    fr[depth++] = (eq_frame){a.as.h, b.as.h, 0};
    while (depth > 0) {
        eq_frame *f = &fr[depth - 1];
        const nvm_gchdr *oa = h->objs[f->ha];
        nvm_value x, y;
        if (oa->kind == NVM_OBJ_ARRAY) {
            const nvm_array *xa = (const nvm_array *)oa, *ya = h->objs[f->hb];
            if (f->idx >= xa->len) {
                depth--;
                continue;
            }
            x = nvm_arr_at(xa, f->idx);
            y = nvm_arr_at(ya, f->idx);
            f->idx++;
        } else {
            const nvm_map *xm = (const nvm_map *)oa, *ym = h->objs[f->hb];
            while (f->idx < xm->nentries && xm->entries[f->idx].key.type == NVM_T_UNDEF)
                f->idx++;
            if (f->idx >= xm->nentries) {
                depth--;
                continue;
            }
            int64_t pos = nvm_map_find(h, ym, xm->entries[f->idx].key);
            if (pos < 0)
                return false;
            x = xm->entries[f->idx].value;
            y = ym->entries[pos].value;
            f->idx++;
        }
        r = shallow_equal(h, x, y);
        if (r == EQ_NO)
            return false;
        if (r == EQ_DESCEND) {
            if (depth == NVM_EQ_MAX_DEPTH)
                return false;
            fr[depth++] = (eq_frame){x.as.h, y.as.h, 0};
        }
    }
    return true;
}

/* ---- LEN, TYPEOF ---- */

nvm_status nvm_len(nvm_vm *vm, nvm_value v, nvm_value *out)
{
    switch (v.type) {
    case NVM_T_STR: *out = nvm_int(((const nvm_str *)nvm_heap_obj(&vm->heap, v))->len); break;
    case NVM_T_ARRAY: *out = nvm_int(((const nvm_array *)nvm_heap_obj(&vm->heap, v))->len); break;
    case NVM_T_MAP: *out = nvm_int(((const nvm_map *)nvm_heap_obj(&vm->heap, v))->count); break;
    default:
        return nvm_vm_raise(vm, NVM_E_PROGRAM,
                            "type error: LEN and ARR_LEN expect str, array or map, got %s",
                            nvm_type_name((nvm_type)v.type));
    }
    return NVM_OK;
}

nvm_status nvm_typeof(nvm_vm *vm, nvm_value v, nvm_value *out)
{
    const char *name = nvm_type_name((nvm_type)v.type);
    return nvm_str_new(vm, name, strlen(name), out);
}

/* ---- float formatting ---- */

size_t nvm_format_float(double d, char *buf)
{
    if (isnan(d)) {
        memcpy(buf, "NaN", 4);
        return 3;
    }
    if (isinf(d)) {
        const char *s = d < 0 ? "-inf" : "inf";
        size_t n = strlen(s);
        memcpy(buf, s, n + 1);
        return n;
    }
    size_t w = 0;
    if (signbit(d))
        buf[w++] = '-';
    if (d == 0.0) {
        memcpy(buf + w, "0.0", 4);
        return w + 3;
    }
    /* shortest %.Ne that reads back as the same double: "D.DDDDe[+-]XX" */
    char tmp[40];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec, fabs(d));
        if (strtod(tmp, NULL) == fabs(d))
            break;
    }
    char digits[20];
    int nd = 0;
    const char *p = tmp;
    for (; *p != 'e' && *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    }
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int point = exp10 + 1; /* digits before the decimal point */
    if (point <= 0) {
        buf[w++] = '0';
        buf[w++] = '.';
        for (int i = 0; i < -point; i++)
            buf[w++] = '0';
        memcpy(buf + w, digits, (size_t)nd);
        w += (size_t)nd;
    } else if (point >= nd) {
        memcpy(buf + w, digits, (size_t)nd);
        w += (size_t)nd;
        for (int i = nd; i < point; i++)
            buf[w++] = '0';
        buf[w++] = '.';
        buf[w++] = '0';
    } else {
        memcpy(buf + w, digits, (size_t)point);
        w += (size_t)point;
        buf[w++] = '.';
        memcpy(buf + w, digits + point, (size_t)(nd - point));
        w += (size_t)(nd - point);
    }
    buf[w] = '\0';
    return w;
}

/* ---- printing ---- */

/* Appends n bytes to the growable buffer, keeping it NUL-terminated. */
static nvm_status buf_put(nvm_vm *vm, char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (n >= SIZE_MAX - *len - 1)
        return nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded (%zu bytes)",
                            vm->cfg.max_memory);
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap < 64 ? 64 : *cap;
        while (ncap < *len + n + 1)
            ncap = ncap > SIZE_MAX / 2 ? *len + n + 1 : ncap * 2;
        void *p = *buf;
        nvm_status st = nvm_mem_realloc(vm, &p, *cap, ncap, false);
        if (st != NVM_OK)
            return st;
        *buf = p;
        *cap = ncap;
    }
    if (n > 0)
        memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return NVM_OK;
}

#define PUT_LIT(lit) buf_put(vm, buf, len, cap, lit, sizeof(lit) - 1)

static nvm_status put_scalar(nvm_vm *vm, nvm_value v, char **buf, size_t *len, size_t *cap)
{
    char tmp[NVM_FLOAT_FMT_MAX];
    size_t n;
    switch (v.type) {
    case NVM_T_NULL: return PUT_LIT("null");
    case NVM_T_BOOL: return v.as.b ? PUT_LIT("true") : PUT_LIT("false");
    case NVM_T_INT:
        n = (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v.as.i);
        return buf_put(vm, buf, len, cap, tmp, n);
    case NVM_T_FLOAT: n = nvm_format_float(v.as.f, tmp); return buf_put(vm, buf, len, cap, tmp, n);
    case NVM_T_STR: {
        const nvm_str *s = nvm_heap_obj(&vm->heap, v);
        return buf_put(vm, buf, len, cap, s->data, s->len);
    }
    default: return PUT_LIT("undefined");
    }
}

typedef struct fmt_frame {
    uint32_t h;   /* container on the printing path (its NVM_MARK_VISIT bit is set) */
    uint32_t idx; /* next element / entry position */
    uint32_t n;   /* map entries printed so far */
} fmt_frame;

typedef struct fmt_path {
    fmt_frame local[NVM_FMT_LOCAL_DEPTH];
    fmt_frame *fr;
    uint32_t depth;
    uint32_t cap;
} fmt_path;

/* Prints a scalar, or opens a container (pushing it on the path), or prints the cycle marker. */
static nvm_status open_value(nvm_vm *vm, fmt_path *path, nvm_value v, char **buf, size_t *len,
                             size_t *cap)
{
    if (v.type != NVM_T_ARRAY && v.type != NVM_T_MAP)
        return put_scalar(vm, v, buf, len, cap);
    bool arr = v.type == NVM_T_ARRAY;
    nvm_gchdr *hdr = nvm_heap_obj(&vm->heap, v);
    if (hdr->mark & NVM_MARK_VISIT)
        return arr ? PUT_LIT("[...]") : PUT_LIT("{...}");
    if (path->depth == path->cap) {
        if (path->cap >= UINT32_MAX / 2)
            return nvm_vm_raise(vm, NVM_E_MEMORY, "memory limit exceeded (%zu bytes)",
                                vm->cfg.max_memory);
        uint32_t ncap = path->cap * 2;
        void *p = NULL;
        nvm_status st;
        if (path->fr == path->local) {
            st = nvm_mem_alloc(vm, sizeof(fmt_frame) * ncap, false, &p);
            if (st == NVM_OK)
                memcpy(p, path->local, sizeof(fmt_frame) * path->depth);
        } else {
            p = path->fr;
            st = nvm_mem_realloc(vm, &p, sizeof(fmt_frame) * path->cap, sizeof(fmt_frame) * ncap,
                                 false);
        }
        if (st != NVM_OK)
            return st;
        path->fr = p;
        path->cap = ncap;
    }
    nvm_status st = arr ? PUT_LIT("[") : PUT_LIT("{");
    if (st != NVM_OK)
        return st;
    hdr->mark |= NVM_MARK_VISIT;
    path->fr[path->depth++] = (fmt_frame){v.as.h, 0, 0};
    return NVM_OK;
}

nvm_status nvm_format_append(nvm_vm *vm, nvm_value v, char **buf, size_t *len, size_t *cap)
{
    fmt_path path;
    path.fr = path.local;
    path.depth = 0;
    path.cap = NVM_FMT_LOCAL_DEPTH;
    nvm_status st = open_value(vm, &path, v, buf, len, cap);
    while (st == NVM_OK && path.depth > 0) {
        fmt_frame *f = &path.fr[path.depth - 1];
        nvm_gchdr *hdr = vm->heap.objs[f->h];
        if (hdr->kind == NVM_OBJ_ARRAY) {
            const nvm_array *a = (const nvm_array *)hdr;
            if (f->idx < a->len) {
                nvm_value x = nvm_arr_at(a, f->idx);
                if (f->idx++ > 0)
                    st = PUT_LIT(", ");
                if (st == NVM_OK)
                    st = open_value(vm, &path, x, buf, len, cap);
                continue;
            }
            st = PUT_LIT("]");
        } else {
            const nvm_map *m = (const nvm_map *)hdr;
            while (f->idx < m->nentries && m->entries[f->idx].key.type == NVM_T_UNDEF)
                f->idx++;
            if (f->idx < m->nentries) {
                const nvm_mapentry *e = &m->entries[f->idx++];
                if (f->n++ > 0)
                    st = PUT_LIT(", ");
                if (st == NVM_OK)
                    st = put_scalar(vm, e->key, buf, len, cap);
                if (st == NVM_OK)
                    st = PUT_LIT(": ");
                if (st == NVM_OK)
                    st = open_value(vm, &path, e->value, buf, len, cap);
                continue;
            }
            st = PUT_LIT("}");
        }
        hdr->mark &= (uint8_t)~NVM_MARK_VISIT;
        path.depth--;
    }
    /* on failure, clear the marks of the containers still on the path */
    for (uint32_t i = 0; i < path.depth; i++) {
        nvm_gchdr *hdr = vm->heap.objs[path.fr[i].h];
        hdr->mark &= (uint8_t)~NVM_MARK_VISIT;
    }
    if (path.fr != path.local)
        nvm_mem_free(vm, path.fr, sizeof(fmt_frame) * path.cap);
    return st;
}

/* ---- CAST ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Trims ASCII white space: [*b, *e). */
static void trim(const char *s, size_t len, size_t *b, size_t *e)
{
    *b = 0;
    *e = len;
    while (*b < *e && is_space(s[*b]))
        (*b)++;
    while (*e > *b && is_space(s[*e - 1]))
        (*e)--;
}

/* Optional sign and decimal digits only. */
static bool parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i, e;
    trim(s, len, &i, &e);
    bool neg = false;
    if (i < e && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == e)
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    for (; i < e; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned dgt = (unsigned)(s[i] - '0');
        if (acc > (limit - dgt) / 10)
            return false;
        acc = acc * 10 + dgt;
    }
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return true;
}

/* Decimal float syntax: [sign] (digits [. digits] | . digits) [(e|E) [sign] digits]. `s` is
 * NUL-terminated after len bytes. */
static bool parse_float(const char *s, size_t len, double *out)
{
    size_t b, e;
    trim(s, len, &b, &e);
    size_t i = b;
    size_t nd = 0;
    if (i < e && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < e && s[i] >= '0' && s[i] <= '9') {
        i++;
        nd++;
    }
    if (i < e && s[i] == '.') {
        i++;
        while (i < e && s[i] >= '0' && s[i] <= '9') {
            i++;
            nd++;
        }
    }
    if (nd == 0)
        return false;
    if (i < e && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < e && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ne = 0;
        while (i < e && s[i] >= '0' && s[i] <= '9') {
            i++;
            ne++;
        }
        if (ne == 0)
            return false;
    }
    if (i != e)
        return false;
    char *end = NULL;
    *out = strtod(s + b, &end);
    return end == s + e;
}

static nvm_status cast_error(nvm_vm *vm, nvm_value v, const char *target)
{
    if (v.type == NVM_T_STR) {
        const nvm_str *s = nvm_heap_obj(&vm->heap, v);
        int shown = s->len > 64 ? 64 : (int)s->len;
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "cannot cast \"%.*s\"%s to %s", shown, s->data,
                            s->len > 64 ? "..." : "", target);
    }
    if (v.type == NVM_T_FLOAT) {
        char tmp[NVM_FLOAT_FMT_MAX];
        nvm_format_float(v.as.f, tmp);
        return nvm_vm_raise(vm, NVM_E_PROGRAM, "cannot cast %s to %s", tmp, target);
    }
    return nvm_vm_raise(vm, NVM_E_PROGRAM, "cannot cast %s to %s", nvm_type_name((nvm_type)v.type),
                        target);
}

static bool float_to_int(double d, int64_t *out)
{
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return false;
    *out = (int64_t)d;
    return true;
}

nvm_status nvm_cast(nvm_vm *vm, nvm_value v, int cast_type, nvm_value *out)
{
    switch (cast_type) {
    case NVM_CAST_INT: {
        int64_t i;
        double d;
        if (v.type == NVM_T_INT) {
            *out = v;
        } else if (v.type == NVM_T_BOOL) {
            *out = nvm_int(v.as.b ? 1 : 0);
        } else if (v.type == NVM_T_FLOAT) {
            if (!float_to_int(v.as.f, &i))
                return cast_error(vm, v, "int");
            *out = nvm_int(i);
        } else if (v.type == NVM_T_STR) {
            const nvm_str *s = nvm_heap_obj(&vm->heap, v);
            if (parse_int(s->data, s->len, &i))
                *out = nvm_int(i);
            else if (parse_float(s->data, s->len, &d) && float_to_int(d, &i))
                *out = nvm_int(i);
            else
                return cast_error(vm, v, "int");
        } else {
            return cast_error(vm, v, "int");
        }
        return NVM_OK;
    }
    case NVM_CAST_FLOAT: {
        double d;
        if (v.type == NVM_T_FLOAT) {
            *out = v;
        } else if (v.type == NVM_T_INT) {
            *out = nvm_float((double)v.as.i);
        } else if (v.type == NVM_T_BOOL) {
            *out = nvm_float(v.as.b ? 1.0 : 0.0);
        } else if (v.type == NVM_T_STR) {
            const nvm_str *s = nvm_heap_obj(&vm->heap, v);
            if (!parse_float(s->data, s->len, &d))
                return cast_error(vm, v, "float");
            *out = nvm_float(d);
        } else {
            return cast_error(vm, v, "float");
        }
        return NVM_OK;
    }
    case NVM_CAST_STR: {
        if (v.type == NVM_T_STR) {
            *out = v;
            return NVM_OK;
        }
        char *buf = NULL;
        size_t len = 0, cap = 0;
        nvm_status st = nvm_format_append(vm, v, &buf, &len, &cap);
        if (st == NVM_OK)
            st = nvm_str_new(vm, buf, len, out);
        nvm_mem_free(vm, buf, cap);
        return st;
    }
    case NVM_CAST_BOOL: *out = nvm_bool(nvm_truthy(vm, v)); return NVM_OK;
    default: return nvm_vm_raise(vm, NVM_E_INTERNAL, "CAST: unknown target type %d", cast_type);
    }
}

/* ---- public value API ---- */

const char *nvm_value_str(nvm_vm *vm, nvm_value v, size_t *len)
{
    if (v.type != NVM_T_STR || vm == NULL)
        return NULL;
    const nvm_str *s = nvm_heap_obj(&vm->heap, v);
    if (len != NULL)
        *len = s->len;
    return s->data;
}

nvm_status nvm_value_new_str(nvm_vm *vm, const char *s, size_t len, nvm_value *out)
{
    if (vm == NULL || out == NULL || (s == NULL && len > 0))
        return NVM_E_USAGE;
    return nvm_str_new(vm, s, len, out);
}

nvm_status nvm_value_format(nvm_vm *vm, nvm_value v, char **buf, size_t *len, size_t *cap)
{
    if (vm == NULL || buf == NULL || len == NULL || cap == NULL)
        return NVM_E_USAGE;
    return nvm_format_append(vm, v, buf, len, cap);
}

void nvm_vm_free_buffer(nvm_vm *vm, char *buf, size_t cap)
{
    if (vm != NULL && buf != NULL)
        nvm_mem_free(vm, buf, cap);
}
