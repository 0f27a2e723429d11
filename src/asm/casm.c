/* casm.c - the CASM text assembler (nvm_module_from_casm).
 *
 * Syntax (DESIGN.md section 2): one instruction per line; `;` or `#` start a comment outside
 * strings; `name:` defines a label (several may prefix a line; labels are file-global names, a jump
 * must stay inside its function, forward references are fine); `.func NAME [ARGC]` starts a
 * function; mnemonics are case-insensitive. The whole source is checked for NUL bytes and invalid
 * UTF-8 first, so the line parser works on clean text. Errors carry file, line and column.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asm_internal.h"
#include "isa/module.h"

#define CASM_MAX_ARGC 65535

/* ---- helpers shared with json_ir.c and disasm.c ---- */

static int up(int c)
{
    return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
}

static bool prefix_ci(const char *s, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (up((unsigned char)s[i]) != pre[i])
            return false;
    return true;
}

bool nvm_upstream_unsupported(const char *name, size_t len)
{
    static const char *const prefixes[] = {"AI_",  "DOM_",   "VEC_",  "TUPLE_", "LIST_",
                                           "SET_", "ASYNC_", "CHAN_", "ACTOR_"};
    static const char *const exact[] = {"EXEC_LANG", "CALL_HOST", "SPAWN",    "YIELD",
                                        "AWAIT",     "NEW_TUPLE", "NEW_LIST", "NEW_SET",
                                        "NEW_VEC",   "NEW_VECTOR"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (prefix_ci(name, len, prefixes[i]))
            return true;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strlen(exact[i]) == len && prefix_ci(name, len, exact[i]))
            return true;
    return false;
}

static bool name_start(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '.' || c == '$' ||
           c == '@';
}

static bool name_char(int c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

bool nvm_casm_bare_name(const char *s, size_t len)
{
    if (len == 0 || !name_start((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!name_char((unsigned char)s[i]))
            return false;
    return true;
}

size_t nvm_utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* ---- the assembler ---- */

typedef struct label {
    const char *name; /* points into the source */
    size_t len;
    uint32_t func; /* defining function + 1, 0 while undefined */
    uint32_t line;
} label;

typedef struct label_use {
    uint32_t label;
    uint32_t func;
    uint32_t line, col;
} label_use;

typedef struct casm {
    const nvm_module *hook; /* allocator carrier for the assembler's own tables */
    nvm_builder *b;
    const char *file;
    nvm_error *err;
    const char *ls; /* current line: [ls, le) */
    const char *le;
    uint32_t line;
    int64_t func; /* current function index (builder numbering), -1 before .func */
    label *labels;
    uint32_t nlabels, labels_cap;
    uint32_t *lht; /* label hash table: index + 1 */
    uint32_t lht_cap;
    label_use *uses;
    uint32_t nuses, uses_cap;
    char *sbuf; /* decoded string literal */
    size_t sbuf_cap;
} casm;

static nvm_status perr(casm *a, nvm_status st, const char *at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static nvm_status perr(casm *a, nvm_status st, const char *at, const char *fmt, ...)
{
    char msg[NVM_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    uint32_t col = at != NULL ? (uint32_t)(at - a->ls) + 1 : 0;
    return nvm_error_set(a->err, st, a->file, a->line, col, "%s", msg);
}

static nvm_status oom(casm *a)
{
    return perr(a, NVM_E_MEMORY, NULL, "out of memory");
}

static bool at_end(const casm *a, const char *p)
{
    return p >= a->le || *p == ';' || *p == '#';
}

static const char *skip_ws(const casm *a, const char *p)
{
    while (p < a->le && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v'))
        p++;
    return p;
}

/* Length of the token at p for messages (up to white space or a comment, at most 40 bytes). */
static int tok_len(const casm *a, const char *p)
{
    const char *q = p;
    while (q < a->le && q - p < 40 && *q != ' ' && *q != '\t' && *q != ';' && *q != '#')
        q++;
    return (int)(q - p);
}

/* "found ..." text for messages. */
static void found(const casm *a, const char *p, char *out, size_t n)
{
    if (at_end(a, p))
        snprintf(out, n, "end of line");
    else
        snprintf(out, n, "\"%.*s\"", tok_len(a, p), p);
}

static bool delim(const casm *a, const char *p)
{
    return p >= a->le || *p == ' ' || *p == '\t' || *p == '\r' || *p == ';' || *p == '#';
}

static const char *scan_name(const casm *a, const char *p)
{
    if (p >= a->le || !name_start((unsigned char)*p))
        return p;
    p++;
    while (p < a->le && name_char((unsigned char)*p))
        p++;
    return p;
}

/* Parses an integer token [+-]?(0x hex | decimal) at *pp. Returns 1 on success, 0 when the text
 * there is not an integer token, -1 when it is one but does not fit in int64. */
static int parse_int(const casm *a, const char **pp, int64_t *out)
{
    const char *p = *pp;
    bool neg = false;
    if (p < a->le && (*p == '+' || *p == '-')) {
        neg = *p == '-';
        p++;
    }
    uint64_t v = 0;
    bool overflow = false;
    const char *digits;
    if (p + 1 < a->le && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        digits = p;
        while (p < a->le) {
            int c = (unsigned char)*p, d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                d = c - 'A' + 10;
            else
                break;
            if (v > (UINT64_MAX >> 4))
                overflow = true;
            v = (v << 4) | (uint64_t)d;
            p++;
        }
    } else {
        digits = p;
        while (p < a->le && *p >= '0' && *p <= '9') {
            uint64_t d = (uint64_t)(*p - '0');
            if (v > (UINT64_MAX - d) / 10)
                overflow = true;
            v = v * 10 + d;
            p++;
        }
    }
    if (p == digits || !delim(a, p))
        return 0;
    *pp = p;
    if (overflow || (!neg && v > (uint64_t)INT64_MAX) || (neg && v > (uint64_t)INT64_MAX + 1))
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

/* Parses an integer operand in [lo, hi]; `what` names it in messages. */
static nvm_status int_operand(casm *a, const char **pp, const char *mn, const char *what,
                              int64_t lo, int64_t hi, int64_t *out)
{
    const char *start = *pp;
    char f[64];
    int r = parse_int(a, pp, out);
    if (r == 0) {
        found(a, start, f, sizeof f);
        return perr(a, NVM_E_SYNTAX, start, "expected %s for %s, found %s", what, mn, f);
    }
    if (r < 0 || *out < lo || *out > hi)
        return perr(a, NVM_E_SYNTAX, start, "%s %.*s for %s out of range (%lld..%lld)", what,
                    tok_len(a, start), start, mn, (long long)lo, (long long)hi);
    return NVM_OK;
}

/* Case-insensitive whole-token comparison with the upper-case word w. */
static bool word_ci(const char *p, size_t n, const char *w)
{
    return strlen(w) == n && prefix_ci(p, n, w);
}

/* Parses a float token: decimal with optional fraction and exponent, nan, inf, -inf, or a hex
 * integer. Returns 1 on success, 0 when the text is not a number, -1 when out of range. */
static int parse_float(const casm *a, const char **pp, double *out)
{
    const char *p = *pp;
    int n = tok_len(a, p);
    const char *s = p;
    const char *e = p + n;
    if (!delim(a, e))
        return 0;
    const char *q = s;
    bool neg = false;
    if (q < e && (*q == '+' || *q == '-')) {
        neg = *q == '-';
        q++;
    }
    if (word_ci(q, (size_t)(e - q), "NAN") && q == s) {
        *out = NAN;
        *pp = e;
        return 1;
    }
    if (word_ci(q, (size_t)(e - q), "INF") || word_ci(q, (size_t)(e - q), "INFINITY")) {
        *out = neg ? -INFINITY : INFINITY;
        *pp = e;
        return 1;
    }
    if (e - q > 2 && q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
        int64_t v;
        const char *t = s;
        int r = parse_int(a, &t, &v);
        if (r <= 0 || t != e)
            return r < 0 ? -1 : 0;
        *out = (double)v;
        *pp = e;
        return 1;
    }
    const char *d = q;
    size_t nd = 0;
    while (d < e && *d >= '0' && *d <= '9') {
        d++;
        nd++;
    }
    if (d < e && *d == '.') {
        d++;
        while (d < e && *d >= '0' && *d <= '9') {
            d++;
            nd++;
        }
    }
    if (nd == 0)
        return 0;
    if (d < e && (*d == 'e' || *d == 'E')) {
        d++;
        if (d < e && (*d == '+' || *d == '-'))
            d++;
        const char *x = d;
        while (d < e && *d >= '0' && *d <= '9')
            d++;
        if (d == x)
            return 0;
    }
    if (d != e)
        return 0;
    char buf[512];
    if ((size_t)(e - s) >= sizeof buf)
        return -1;
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = '\0';
    double v = strtod(buf, NULL);
    if (isinf(v))
        return -1;
    *out = v;
    *pp = e;
    return 1;
}

/* Decodes the string literal at *pp (which starts with '"') into a->sbuf. */
static nvm_status parse_string(casm *a, const char **pp, size_t *out_len)
{
    const char *p = *pp + 1;
    size_t need = (size_t)(a->le - p) + 1;
    if (need > a->sbuf_cap) {
        char *nb = nvm_mod_realloc(a->hook, a->sbuf, a->sbuf_cap, need);
        if (nb == NULL)
            return oom(a);
        a->sbuf = nb;
        a->sbuf_cap = need;
    }
    size_t n = 0;
    for (;;) {
        if (p >= a->le)
            return perr(a, NVM_E_SYNTAX, *pp, "unterminated string (missing closing \")");
        char c = *p;
        if (c == '"')
            break;
        if (c != '\\') {
            a->sbuf[n++] = c;
            p++;
            continue;
        }
        const char *esc = p;
        p++;
        if (p >= a->le)
            return perr(a, NVM_E_SYNTAX, *pp, "unterminated string (missing closing \")");
        switch (*p) {
        case 'n': a->sbuf[n++] = '\n'; break;
        case 't': a->sbuf[n++] = '\t'; break;
        case 'r': a->sbuf[n++] = '\r'; break;
        case '0': a->sbuf[n++] = '\0'; break;
        case '"': a->sbuf[n++] = '"'; break;
        case '\\': a->sbuf[n++] = '\\'; break;
        case 'x': {
            int v = 0;
            for (int i = 1; i <= 2; i++) {
                int h = p + i < a->le ? (unsigned char)p[i] : 0;
                int d = (h >= '0' && h <= '9')   ? h - '0'
                        : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                 : -1;
                if (d < 0)
                    return perr(a, NVM_E_SYNTAX, esc,
                                "expected two hex digits after \\x in string");
                v = v * 16 + d;
            }
            a->sbuf[n++] = (char)v;
            p += 2;
            break;
        }
        default:
            if ((unsigned char)*p >= 0x80 || *p < 0x20)
                return perr(a, NVM_E_SYNTAX, esc,
                            "unknown escape in string (use \\n \\t \\r \\0 \\\" \\\\ or \\xHH)");
            return perr(a, NVM_E_SYNTAX, esc,
                        "unknown escape \\%c in string (use \\n \\t \\r \\0 \\\" \\\\ or \\xHH)",
                        *p);
        }
        p++;
    }
    *pp = p + 1;
    *out_len = n;
    return NVM_OK;
}

/* A name operand: a bare name or a quoted string. Sets *s and *n (pointing into the source or into
 * a->sbuf). */
static nvm_status name_operand(casm *a, const char **pp, const char *mn, const char *what,
                               const char **s, size_t *n)
{
    const char *p = *pp;
    char f[64];
    if (p < a->le && *p == '"') {
        nvm_status st = parse_string(a, pp, n);
        if (st != NVM_OK)
            return st;
        if (*n == 0)
            return perr(a, NVM_E_SYNTAX, p, "empty %s for %s", what, mn);
        *s = a->sbuf;
        return NVM_OK;
    }
    const char *q = scan_name(a, p);
    if (q == p || !delim(a, q)) {
        found(a, p, f, sizeof f);
        return perr(a, NVM_E_SYNTAX, p, "expected %s for %s, found %s", what, mn, f);
    }
    *s = p;
    *n = (size_t)(q - p);
    *pp = q;
    return NVM_OK;
}

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Finds or creates the label `name`; *id receives its index. */
static nvm_status label_get(casm *a, const char *name, size_t n, uint32_t *id)
{
    if (a->lht_cap == 0 || (a->nlabels + 1) * 2 > a->lht_cap) {
        uint32_t nc = a->lht_cap == 0 ? 64 : a->lht_cap * 2;
        uint32_t *nt = nvm_mod_alloc(a->hook, (size_t)nc * sizeof *nt);
        if (nt == NULL)
            return oom(a);
        for (uint32_t i = 0; i < a->nlabels; i++) {
            uint32_t h = hash_name(a->labels[i].name, a->labels[i].len) & (nc - 1);
            while (nt[h] != 0)
                h = (h + 1) & (nc - 1);
            nt[h] = i + 1;
        }
        nvm_mod_free(a->hook, a->lht, (size_t)a->lht_cap * sizeof *a->lht);
        a->lht = nt;
        a->lht_cap = nc;
    }
    uint32_t h = hash_name(name, n) & (a->lht_cap - 1);
    while (a->lht[h] != 0) {
        const label *l = &a->labels[a->lht[h] - 1];
        if (l->len == n && memcmp(l->name, name, n) == 0) {
            *id = a->lht[h] - 1;
            return NVM_OK;
        }
        h = (h + 1) & (a->lht_cap - 1);
    }
    if (a->nlabels == a->labels_cap) {
        uint32_t nc = a->labels_cap < 16 ? 16 : a->labels_cap * 2;
        label *nl = nvm_mod_realloc(a->hook, a->labels, (size_t)a->labels_cap * sizeof *nl,
                                    (size_t)nc * sizeof *nl);
        if (nl == NULL)
            return oom(a);
        a->labels = nl;
        a->labels_cap = nc;
    }
    label *l = &a->labels[a->nlabels];
    memset(l, 0, sizeof *l);
    l->name = name;
    l->len = n;
    a->lht[h] = ++a->nlabels;
    *id = a->nlabels - 1;
    return NVM_OK;
}

static nvm_status builder_err(casm *a, nvm_status st, const char *at)
{
    return perr(a, st, at, "%s", nvm_builder_message(a->b));
}

static nvm_status do_func(casm *a, const char *p)
{
    const char *s;
    size_t n;
    p = skip_ws(a, p);
    const char *at = p;
    nvm_status st = name_operand(a, &p, ".func", "a function name", &s, &n);
    if (st != NVM_OK)
        return st;
    int32_t argc = -1;
    p = skip_ws(a, p);
    if (!at_end(a, p)) {
        int64_t v;
        st = int_operand(a, &p, ".func", "an argument count", 0, CASM_MAX_ARGC, &v);
        if (st != NVM_OK)
            return st;
        argc = (int32_t)v;
        p = skip_ws(a, p);
    }
    if (!at_end(a, p))
        return perr(a, NVM_E_SYNTAX, p, "unexpected \"%.*s\" after .func %.*s", tok_len(a, p), p,
                    (int)n, s);
    st = nvm_builder_begin_func(a->b, s, n, argc, a->line, a->err);
    if (st != NVM_OK) {
        if (a->err != NULL)
            a->err->col = (uint32_t)(at - a->ls) + 1;
        return st;
    }
    uint32_t idx;
    nvm_builder_func_ref(a->b, s, n, &idx);
    a->func = idx;
    return NVM_OK;
}

static nvm_status do_insn(casm *a, const char *mstart, const char *mend)
{
    size_t mlen = (size_t)(mend - mstart);
    int op = nvm_op_lookup(mstart, mlen);
    if (op < 0) {
        if (nvm_upstream_unsupported(mstart, mlen)) {
            char upn[64];
            size_t k = 0;
            for (; k < mlen && k < sizeof upn - 1; k++)
                upn[k] = (char)up((unsigned char)mstart[k]);
            upn[k] = '\0';
            return perr(a, NVM_E_FORMAT, mstart,
                        "unsupported upstream opcode %s (not part of NanoVM's CASM)", upn);
        }
        return perr(a, NVM_E_SYNTAX, mstart, "unknown instruction \"%.*s\"", (int)mlen, mstart);
    }
    const nvm_opinfo *oi = &nvm_opinfo_table[op];
    const char *mn = oi->name;
    if (a->func < 0)
        return perr(a, NVM_E_SYNTAX, mstart,
                    "instruction %s outside any function (start one with .func NAME)", mn);
    nvm_insn in;
    memset(&in, 0, sizeof in);
    in.op = (uint8_t)op;
    const char *p = skip_ws(a, mend);
    const char *at = p;
    nvm_status st = NVM_OK;
    char f[64];
    int64_t v;
    bool jump = false;
    uint32_t label_id = 0;
    switch (oi->operand) {
    case NVM_OPK_NONE: break;
    case NVM_OPK_I64: {
        int r = parse_int(a, &p, &v);
        if (r > 0) {
            in.k.i = v;
            break;
        }
        if (r < 0)
            return perr(a, NVM_E_SYNTAX, at, "integer %.*s out of the 64-bit range for %s",
                        tok_len(a, at), at, mn);
        double d;
        const char *t = p;
        if (parse_float(a, &t, &d) > 0)
            return perr(a, NVM_E_SYNTAX, at,
                        "PUSH takes an integer, found the float %.*s (use PUSH_F64 for floats)",
                        tok_len(a, at), at);
        found(a, at, f, sizeof f);
        return perr(a, NVM_E_SYNTAX, at, "expected an integer operand for %s, found %s", mn, f);
    }
    case NVM_OPK_F64: {
        int r = parse_float(a, &p, &in.k.f);
        if (r < 0)
            return perr(a, NVM_E_SYNTAX, at, "float %.*s out of range for %s", tok_len(a, at), at,
                        mn);
        if (r == 0) {
            found(a, at, f, sizeof f);
            return perr(a, NVM_E_SYNTAX, at,
                        "expected a float operand for %s (like 1.5, -2e10, nan, inf), found %s", mn,
                        f);
        }
        break;
    }
    case NVM_OPK_STR: {
        if (p >= a->le || *p != '"') {
            found(a, at, f, sizeof f);
            return perr(a, NVM_E_SYNTAX, at, "expected a double-quoted string for %s, found %s", mn,
                        f);
        }
        size_t n;
        if ((st = parse_string(a, &p, &n)) != NVM_OK)
            return st;
        if ((st = nvm_builder_str(a->b, a->sbuf, n, &in.a)) != NVM_OK)
            return builder_err(a, st, at);
        break;
    }
    case NVM_OPK_BOOL: {
        int n = tok_len(a, p);
        if (word_ci(p, (size_t)n, "TRUE") || (n == 1 && *p == '1'))
            in.b = 1;
        else if (word_ci(p, (size_t)n, "FALSE") || (n == 1 && *p == '0'))
            in.b = 0;
        else {
            found(a, at, f, sizeof f);
            return perr(a, NVM_E_SYNTAX, at, "expected true, false, 1 or 0 for %s, found %s", mn,
                        f);
        }
        p += n;
        break;
    }
    case NVM_OPK_SLOT:
        if ((st = int_operand(a, &p, mn, "a slot number", 0, 65535, &v)) != NVM_OK)
            return st;
        in.a = (uint32_t)v;
        break;
    case NVM_OPK_COUNT:
        if ((st = int_operand(a, &p, mn, "a count", 0, UINT32_MAX, &v)) != NVM_OK)
            return st;
        in.a = (uint32_t)v;
        break;
    case NVM_OPK_LABEL: {
        const char *q = scan_name(a, p);
        if (q == p || !delim(a, q)) {
            found(a, at, f, sizeof f);
            return perr(a, NVM_E_SYNTAX, at, "expected a label name for %s, found %s", mn, f);
        }
        if ((st = label_get(a, p, (size_t)(q - p), &label_id)) != NVM_OK)
            return st;
        if (a->nuses == a->uses_cap) {
            uint32_t nc = a->uses_cap < 16 ? 16 : a->uses_cap * 2;
            label_use *nu = nvm_mod_realloc(a->hook, a->uses, (size_t)a->uses_cap * sizeof *nu,
                                            (size_t)nc * sizeof *nu);
            if (nu == NULL)
                return oom(a);
            a->uses = nu;
            a->uses_cap = nc;
        }
        label_use *u = &a->uses[a->nuses++];
        u->label = label_id;
        u->func = (uint32_t)a->func;
        u->line = a->line;
        u->col = (uint32_t)(at - a->ls) + 1;
        jump = true;
        p = q;
        break;
    }
    case NVM_OPK_FUNC: {
        const char *s;
        size_t n;
        if ((st = name_operand(a, &p, mn, "a function name", &s, &n)) != NVM_OK)
            return st;
        if ((st = nvm_builder_func_ref(a->b, s, n, &in.a)) != NVM_OK)
            return builder_err(a, st, at);
        break;
    }
    case NVM_OPK_CAP: {
        const char *s;
        size_t n;
        if ((st = name_operand(a, &p, mn, "a capability name like \"io.print\"", &s, &n)) != NVM_OK)
            return st;
        if ((st = nvm_builder_cap(a->b, s, n, &in.a)) != NVM_OK)
            return builder_err(a, st, at);
        p = skip_ws(a, p);
        if ((st = int_operand(a, &p, mn, "an argument count", 0, 255, &v)) != NVM_OK)
            return st;
        in.b = (uint8_t)v;
        break;
    }
    case NVM_OPK_CAST: {
        const char *s;
        size_t n;
        if ((st = name_operand(a, &p, mn, "a type name (\"int\", \"float\", \"str\" or \"bool\")",
                               &s, &n)) != NVM_OK)
            return st;
        int t = nvm_cast_type_lookup(s, n);
        if (t < 0)
            return perr(a, NVM_E_SYNTAX, at,
                        "unknown type \"%.*s\" for CAST (expected \"int\", \"float\", \"str\" or "
                        "\"bool\")",
                        (int)(n > 40 ? 40 : n), s);
        in.b = (uint8_t)t;
        break;
    }
    }
    p = skip_ws(a, p);
    if (!at_end(a, p)) {
        if (oi->operand == NVM_OPK_NONE)
            return perr(a, NVM_E_SYNTAX, p, "%s takes no operand, found \"%.*s\"", mn,
                        tok_len(a, p), p);
        return perr(a, NVM_E_SYNTAX, p, "unexpected \"%.*s\" after the operand of %s",
                    tok_len(a, p), p, mn);
    }
    st = jump ? nvm_builder_emit_jump(a->b, &in, label_id, a->line)
              : nvm_builder_emit(a->b, &in, a->line);
    if (st != NVM_OK)
        return builder_err(a, st, mstart);
    return NVM_OK;
}

static nvm_status do_line(casm *a)
{
    const char *p = skip_ws(a, a->ls);
    nvm_status st;
    for (;;) {
        if (at_end(a, p))
            return NVM_OK;
        const char *q = scan_name(a, p);
        if (q == p) {
            char f[64];
            found(a, p, f, sizeof f);
            return perr(a, NVM_E_SYNTAX, p,
                        "expected an instruction, a label or a directive, found %s", f);
        }
        if (q < a->le && *q == ':') {
            if (a->func < 0)
                return perr(a, NVM_E_SYNTAX, p, "label \"%.*s\" outside any function", (int)(q - p),
                            p);
            uint32_t id;
            if ((st = label_get(a, p, (size_t)(q - p), &id)) != NVM_OK)
                return st;
            label *l = &a->labels[id];
            if (l->func != 0)
                return perr(a, NVM_E_SYNTAX, p, "label \"%.*s\" is already defined at line %u",
                            (int)(q - p), p, l->line);
            if ((st = nvm_builder_label_def(a->b, id)) != NVM_OK)
                return builder_err(a, st, p);
            l->func = (uint32_t)a->func + 1;
            l->line = a->line;
            p = skip_ws(a, q + 1);
            continue;
        }
        if (!delim(a, q)) {
            char f[64];
            found(a, p, f, sizeof f);
            return perr(a, NVM_E_SYNTAX, p,
                        "expected an instruction, a label or a directive, found %s", f);
        }
        if (*p == '.') {
            if (word_ci(p, (size_t)(q - p), ".FUNC"))
                return do_func(a, q);
            return perr(a, NVM_E_SYNTAX, p, "unknown directive \"%.*s\" (expected .func)",
                        (int)(q - p), p);
        }
        return do_insn(a, p, q);
    }
}

/* Checks the source for NUL bytes and invalid UTF-8 before anything else. */
static nvm_status check_text(casm *a, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    uint32_t line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] == '\n') {
            line++;
            ls = ++i;
            continue;
        }
        if (s[i] == 0)
            return nvm_error_set(a->err, NVM_E_SYNTAX, a->file, line, (uint32_t)(i - ls) + 1,
                                 "NUL byte in source text");
        size_t n = nvm_utf8_seq(s + i, len - i);
        if (n == 0)
            return nvm_error_set(a->err, NVM_E_SYNTAX, a->file, line, (uint32_t)(i - ls) + 1,
                                 "invalid UTF-8 (byte 0x%02X) in source text", s[i]);
        i += n;
    }
    return NVM_OK;
}

static nvm_status check_labels(casm *a)
{
    for (uint32_t i = 0; i < a->nuses; i++) {
        const label_use *u = &a->uses[i];
        const label *l = &a->labels[u->label];
        if (l->func == 0)
            return nvm_error_set(a->err, NVM_E_LINK, a->file, u->line, u->col,
                                 "undefined label \"%.*s\"", (int)l->len, l->name);
        if (l->func != u->func + 1)
            return nvm_error_set(a->err, NVM_E_LINK, a->file, u->line, u->col,
                                 "label \"%.*s\" is defined in another function (line %u); a "
                                 "jump must stay inside its function",
                                 (int)l->len, l->name, l->line);
    }
    return NVM_OK;
}

nvm_status nvm_module_from_casm(const nvm_config *cfg, const char *src, size_t len,
                                const char *name, nvm_module **out, nvm_error *err)
{
    nvm_status st;
    nvm_module *m = NULL;
    casm a;
    memset(&a, 0, sizeof a);
    a.file = name;
    a.err = err;
    a.func = -1;
    *out = NULL;
    if (src == NULL && len > 0)
        return nvm_error_set(err, NVM_E_USAGE, name, 0, 0, "no source text");
    nvm_module *hook = nvm_module_new_empty(cfg);
    if (hook == NULL)
        return nvm_error_set(err, NVM_E_MEMORY, name, 0, 0, "out of memory");
    a.hook = hook;
    a.b = nvm_builder_new(cfg, name);
    if (a.b == NULL) {
        st = nvm_error_set(err, NVM_E_MEMORY, name, 0, 0, "out of memory");
        goto fail;
    }
    size_t pos = 0;
    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    if ((st = check_text(&a, src + pos, len - pos)) != NVM_OK)
        goto fail;
    a.line = 0;
    while (pos < len) {
        const char *nl = memchr(src + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - src) : len;
        a.ls = src + pos;
        a.le = src + end;
        a.line++;
        if ((st = do_line(&a)) != NVM_OK)
            goto fail;
        pos = end + 1;
    }
    if ((st = check_labels(&a)) != NVM_OK)
        goto fail;
    if (a.func < 0) {
        st = nvm_error_set(err, NVM_E_SYNTAX, name, a.line, 0,
                           "no function defined (start one with .func main)");
        goto fail;
    }
    if ((st = nvm_builder_finish(a.b, NULL, &m, err)) != NVM_OK)
        goto fail;
    if ((st = nvm_verify(m, err)) != NVM_OK)
        goto fail;
    *out = m;
    m = NULL;
fail:
    nvm_module_free(m);
    nvm_builder_free(a.b);
    nvm_mod_free(hook, a.labels, (size_t)a.labels_cap * sizeof *a.labels);
    nvm_mod_free(hook, a.lht, (size_t)a.lht_cap * sizeof *a.lht);
    nvm_mod_free(hook, a.uses, (size_t)a.uses_cap * sizeof *a.uses);
    nvm_mod_free(hook, a.sbuf, a.sbuf_cap);
    nvm_module_free(hook);
    return st;
}
