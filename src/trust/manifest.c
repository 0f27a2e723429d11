/* manifest.c - the capsule manifest (JSON through jansson): parse, validate, free; the
 * capability string grammar; semantic versions (semver 2.0.0) and their precedence. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "isa/module.h"
#include "host/why.h"
#include "trust/manifest.h"

static nvm_status merr(nvm_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static nvm_status merr(nvm_error *err, const char *fmt, ...)
{
    if (err != NULL) {
        char msg[NVM_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        nvm_error_set(err, NVM_E_FORMAT, NULL, 0, 0, "manifest: %s", msg);
    }
    return NVM_E_FORMAT;
}

/* ---- capability strings ---- */

static int is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* [a-z][a-z0-9_]* of 1..31 chars */
static int ident_ok(const char *s, size_t n)
{
    if (n == 0 || n > 31 || !is_lower(s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_lower(s[i]) && !is_digit(s[i]) && s[i] != '_')
            return 0;
    return 1;
}

/* Per-type scope grammar (docs/capabilities.md): fs scopes are absolute paths without "." or
 * ".." segments; net scopes are host:port with a numeric or '*' port. */
static bool scope_ok(const char *type, const char *scope, const char **what)
{
    if (strcmp(type, "fs") == 0) {
        *what = "an fs scope must be an absolute path pattern without . or .. segments";
        if (scope[0] != '/')
            return false;
        for (const char *p = scope; *p; p++)
            if (p[0] == '/' && p[1] == '.' &&
                (p[2] == '/' || p[2] == '\0' || (p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
                return false;
        return true;
    }
    if (strcmp(type, "net") == 0) {
        *what = "a net scope must be host:port (port a number or *)";
        const char *colon = strrchr(scope, ':');
        if (colon == NULL || colon == scope || colon[1] == '\0')
            return false;
        if (strcmp(colon + 1, "*") == 0)
            return true;
        size_t digits = strspn(colon + 1, "0123456789");
        return digits == strlen(colon + 1) && digits <= 5 && atol(colon + 1) <= 65535;
    }
    return true;
}

nvm_status nvm_capreq_parse(const char *s, nvm_capreq *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    size_t n = strlen(s);
    if (n >= sizeof out->text) {
        nvm_why_set(why, whylen, "capability \"%.40s...\": longer than %zu characters", s,
                    sizeof out->text - 1);
        return NVM_E_FORMAT;
    }
    const char *colon = strchr(s, ':');
    size_t head = colon != NULL ? (size_t)(colon - s) : n;
    const char *dot = memchr(s, '.', head);
    if (dot == NULL) {
        nvm_why_set(why, whylen, "capability \"%s\": expected type.action", s);
        return NVM_E_FORMAT;
    }
    size_t tlen = (size_t)(dot - s), alen = head - tlen - 1;
    if (!ident_ok(s, tlen)) {
        nvm_why_set(why, whylen,
                    "capability \"%s\": the type must be a lower-case identifier ([a-z][a-z0-9_]*, "
                    "at most 31 characters)",
                    s);
        return NVM_E_FORMAT;
    }
    if (!ident_ok(dot + 1, alen)) {
        nvm_why_set(
            why, whylen,
            "capability \"%s\": the action must be a lower-case identifier ([a-z][a-z0-9_]*, "
            "at most 31 characters)",
            s);
        return NVM_E_FORMAT;
    }
    if (colon != NULL) {
        size_t slen = n - head - 1;
        if (slen == 0) {
            nvm_why_set(why, whylen, "capability \"%s\": empty scope after ':'", s);
            return NVM_E_FORMAT;
        }
        if (slen >= sizeof out->scope) {
            nvm_why_set(why, whylen, "capability \"%.40s...\": scope longer than %zu characters", s,
                        sizeof out->scope - 1);
            return NVM_E_FORMAT;
        }
        for (size_t i = 0; i < slen; i++) {
            unsigned char c = (unsigned char)colon[1 + i];
            if (c <= 0x20 || c >= 0x7f) {
                nvm_why_set(why, whylen,
                            "capability \"%s\": the scope must be printable ASCII without spaces",
                            s);
                return NVM_E_FORMAT;
            }
        }
        memcpy(out->scope, colon + 1, slen);
        const char *what = "";
        char type[32];
        memcpy(type, s, tlen);
        type[tlen] = '\0';
        if (!scope_ok(type, out->scope, &what)) {
            nvm_why_set(why, whylen, "capability \"%s\": %s", s, what);
            memset(out, 0, sizeof *out);
            return NVM_E_FORMAT;
        }
    }
    memcpy(out->type, s, tlen);
    memcpy(out->action, dot + 1, alen);
    memcpy(out->text, s, n);
    return NVM_OK;
}

/* ---- semantic versions ---- */

static int is_alnum_hyphen(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* One numeric component without leading zeros; advances *p. */
static int parse_num(const char **p, uint64_t *out)
{
    const char *s = *p;
    if (!is_digit(*s))
        return -1;
    if (s[0] == '0' && is_digit(s[1]))
        return -1;
    uint64_t v = 0;
    for (; is_digit(*s); s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

/* Dot-separated non-empty [0-9A-Za-z-] identifiers from s up to `end`; numeric identifiers
 * without leading zeros when `numeric_rule`. */
static int idents_ok(const char *s, const char *end, int numeric_rule)
{
    if (s == end)
        return 0;
    while (s < end) {
        const char *q = s;
        int all_digits = 1;
        while (q < end && *q != '.') {
            if (!is_alnum_hyphen(*q))
                return 0;
            if (!is_digit(*q))
                all_digits = 0;
            q++;
        }
        if (q == s)
            return 0;
        if (numeric_rule && all_digits && q - s > 1 && s[0] == '0')
            return 0;
        if (q < end) {
            q++;
            if (q == end)
                return 0; /* trailing dot */
        }
        s = q;
    }
    return 1;
}

nvm_status nvm_semver_parse(const char *s, nvm_semver *out)
{
    memset(out, 0, sizeof *out);
    const char *p = s;
    if (parse_num(&p, &out->major) != 0 || *p++ != '.' || parse_num(&p, &out->minor) != 0 ||
        *p++ != '.' || parse_num(&p, &out->patch) != 0)
        return NVM_E_FORMAT;
    const char *end = p + strlen(p);
    const char *plus = strchr(p, '+');
    const char *pre_end = plus != NULL ? plus : end;
    if (*p == '-') {
        if (!idents_ok(p + 1, pre_end, 1))
            return NVM_E_FORMAT;
        size_t n = (size_t)(pre_end - p - 1);
        if (n >= sizeof out->pre)
            return NVM_E_FORMAT;
        memcpy(out->pre, p + 1, n);
        out->pre[n] = '\0';
    } else if (p != pre_end) {
        return NVM_E_FORMAT;
    }
    if (plus != NULL && !idents_ok(plus + 1, end, 0))
        return NVM_E_FORMAT;
    return NVM_OK;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

/* Compares one pre-release identifier pair (lengths given). */
static int cmp_ident(const char *a, size_t an, const char *b, size_t bn)
{
    int anum = 1, bnum = 1;
    for (size_t i = 0; i < an; i++)
        anum &= is_digit(a[i]);
    for (size_t i = 0; i < bn; i++)
        bnum &= is_digit(b[i]);
    if (anum && bnum) {
        /* no leading zeros: longer is larger, then digit by digit */
        if (an != bn)
            return an < bn ? -1 : 1;
        int c = memcmp(a, b, an);
        return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (anum != bnum)
        return anum ? -1 : 1; /* numeric identifiers have lower precedence */
    size_t m = an < bn ? an : bn;
    int c = memcmp(a, b, m);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return an == bn ? 0 : an < bn ? -1 : 1;
}

int nvm_semver_cmp(const nvm_semver *a, const nvm_semver *b)
{
    int c = cmp_u64(a->major, b->major);
    if (c == 0)
        c = cmp_u64(a->minor, b->minor);
    if (c == 0)
        c = cmp_u64(a->patch, b->patch);
    if (c != 0)
        return c;
    if (a->pre[0] == '\0' || b->pre[0] == '\0') {
        if (a->pre[0] == b->pre[0])
            return 0;
        return a->pre[0] == '\0' ? 1 : -1; /* a release outranks its pre-releases */
    }
    const char *p = a->pre, *q = b->pre;
    for (;;) {
        size_t pn = strcspn(p, "."), qn = strcspn(q, ".");
        c = cmp_ident(p, pn, q, qn);
        if (c != 0)
            return c;
        p += pn;
        q += qn;
        if (*p == '\0' || *q == '\0')
            return (*p == '\0') == (*q == '\0') ? 0 : *p == '\0' ? -1 : 1;
        p++;
        q++;
    }
}

/* ---- the manifest ---- */

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!is_digit(c) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '.' &&
            c != '_' && c != '-')
            return 0;
    }
    return 1;
}

/* A JSON string without NUL bytes; NULL otherwise. */
static const char *plain_string(const json_t *v)
{
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    return strlen(s) == json_string_length(v) ? s : NULL;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static nvm_status parse_limits(const json_t *obj, nvm_limits *lim, nvm_error *err)
{
    if (!json_is_object(obj))
        return merr(err, "\"limits\" must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int64_t *slot = strcmp(key, "gas") == 0       ? &lim->gas
                        : strcmp(key, "memory") == 0  ? &lim->memory
                        : strcmp(key, "stack") == 0   ? &lim->stack
                        : strcmp(key, "wall_ms") == 0 ? &lim->wall_ms
                                                      : NULL;
        if (slot == NULL)
            return merr(err, "unknown key \"limits.%.100s\" (expected gas, memory, stack, wall_ms)",
                        key);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return merr(err, "\"limits.%s\" must be a non-negative integer", key);
        *slot = (int64_t)json_integer_value(v);
    }
    return NVM_OK;
}

nvm_status nvm_manifest_parse(const char *json, size_t len, nvm_manifest *out, nvm_error *err)
{
    nvm_status st = NVM_E_FORMAT;
    json_error_t jerr;
    nvm_manifest m;
    memset(&m, 0, sizeof m);
    memset(out, 0, sizeof *out);
    m.limits.gas = m.limits.memory = m.limits.stack = m.limits.wall_ms = -1;
    snprintf(m.entry, sizeof m.entry, "main");

    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        st = merr(err, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        st = merr(err, "must be a JSON object");
        goto fail;
    }
    const char *key;
    json_t *v;
    int have_name = 0, have_version = 0;
    json_object_foreach(root, key, v)
    {
        const char *s;
        if (strcmp(key, "name") == 0) {
            s = plain_string(v);
            if (s == NULL) {
                st = merr(err, "\"name\" must be a string");
                goto fail;
            }
            if (!name_ok(s, strlen(s))) {
                st = merr(err, "\"name\" \"%.140s\" must be 1 to 128 of A-Z a-z 0-9 . _ -", s);
                goto fail;
            }
            snprintf(m.name, sizeof m.name, "%s", s);
            have_name = 1;
        } else if (strcmp(key, "version") == 0) {
            s = plain_string(v);
            if (s == NULL) {
                st = merr(err, "\"version\" must be a string");
                goto fail;
            }
            if (strlen(s) >= sizeof m.version_text || nvm_semver_parse(s, &m.version) != NVM_OK) {
                st = merr(err, "\"version\" \"%.100s\" is not a semantic version (like 1.2.3)", s);
                goto fail;
            }
            snprintf(m.version_text, sizeof m.version_text, "%s", s);
            have_version = 1;
        } else if (strcmp(key, "entry") == 0) {
            s = plain_string(v);
            if (s == NULL || s[0] == '\0' || strlen(s) >= sizeof m.entry) {
                st = merr(err, "\"entry\" must be a function name (1 to 255 characters)");
                goto fail;
            }
            snprintf(m.entry, sizeof m.entry, "%s", s);
        } else if (strcmp(key, "description") == 0) {
            s = plain_string(v);
            if (s == NULL) {
                st = merr(err, "\"description\" must be a string");
                goto fail;
            }
            m.description = dup_str(s);
            if (m.description == NULL)
                goto oom;
        } else if (strcmp(key, "authors") == 0) {
            if (!json_is_array(v)) {
                st = merr(err, "\"authors\" must be an array of strings");
                goto fail;
            }
            size_t n = json_array_size(v);
            m.authors = calloc(n ? n : 1, sizeof *m.authors);
            if (m.authors == NULL)
                goto oom;
            for (size_t i = 0; i < n; i++) {
                s = plain_string(json_array_get(v, i));
                if (s == NULL) {
                    st = merr(err, "\"authors[%zu]\" must be a string", i);
                    goto fail;
                }
                m.authors[i] = dup_str(s);
                if (m.authors[i] == NULL)
                    goto oom;
                m.nauthors++;
            }
        } else if (strcmp(key, "capabilities") == 0) {
            if (!json_is_array(v)) {
                st = merr(err, "\"capabilities\" must be an array of strings");
                goto fail;
            }
            size_t n = json_array_size(v);
            m.caps = calloc(n ? n : 1, sizeof *m.caps);
            if (m.caps == NULL)
                goto oom;
            for (size_t i = 0; i < n; i++) {
                s = plain_string(json_array_get(v, i));
                if (s == NULL) {
                    st = merr(err, "\"capabilities[%zu]\" must be a string", i);
                    goto fail;
                }
                char why[400];
                if (nvm_capreq_parse(s, &m.caps[i], why, sizeof why) != NVM_OK) {
                    st = merr(err, "%s", why);
                    goto fail;
                }
                m.ncaps++;
            }
        } else if (strcmp(key, "limits") == 0) {
            st = parse_limits(v, &m.limits, err);
            if (st != NVM_OK)
                goto fail;
        } else {
            st = merr(err,
                      "unknown key \"%.100s\" (expected name, version, entry, description, "
                      "authors, capabilities, limits)",
                      key);
            goto fail;
        }
    }
    if (!have_name) {
        st = merr(err, "missing required key \"name\"");
        goto fail;
    }
    if (!have_version) {
        st = merr(err, "missing required key \"version\"");
        goto fail;
    }
    json_decref(root);
    *out = m;
    return NVM_OK;
oom:
    st = nvm_error_set(err, NVM_E_INTERNAL, NULL, 0, 0, "manifest: out of memory");
fail:
    json_decref(root);
    nvm_manifest_free(&m);
    return st;
}

void nvm_manifest_free(nvm_manifest *m)
{
    if (m == NULL)
        return;
    free(m->description);
    for (size_t i = 0; i < m->nauthors; i++)
        free(m->authors[i]);
    free(m->authors);
    free(m->caps);
    memset(m, 0, sizeof *m);
}
