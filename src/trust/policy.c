/* policy.c - loading and validating the trust policy (JSON via jansson), the built-in default,
 * level names and capability pattern matching. docs/policy.md is the reference for the keys. */
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

static const char *const level_names[NVM_LEVEL_COUNT] = {"rejected", "restricted", "sandboxed",
                                                         "verified", "trusted"};

const char *nvm_level_name(nvm_trust_level l)
{
    if ((int)l < 0 || (int)l >= NVM_LEVEL_COUNT)
        return "rejected";
    return level_names[l];
}

int nvm_level_lookup(const char *s)
{
    for (int i = 0; i < NVM_LEVEL_COUNT; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

/* Built-in level defaults (docs/policy.md). A NULL-terminated pattern list per level. */
static const char *const default_caps_all[] = {"*", NULL};
static const char *const default_caps_sandboxed[] = {"io.print", "io.eprint", "io.read", "args.get",
                                                     "time.*",   "random.*",  NULL};
static const char *const default_caps_restricted[] = {"io.print", NULL};

typedef struct level_default {
    const char *const *caps;
    nvm_limits limits;
    nvm_host_limits host;
} level_default;

static const level_default level_defaults[NVM_LEVEL_COUNT] = {
    [NVM_LEVEL_REJECTED] = {NULL, {-1, -1, -1, -1}, {-1, -1, -1, -1}},
    [NVM_LEVEL_RESTRICTED] = {default_caps_restricted,
                              {100000000, 64ll * 1024 * 1024, 65536, -1},
                              {64ll * 1024 * 1024, 16ll * 1024 * 1024, 16, 4}},
    [NVM_LEVEL_SANDBOXED] = {default_caps_sandboxed,
                             {1000000000, 256ll * 1024 * 1024, 262144, -1},
                             {256ll * 1024 * 1024, 64ll * 1024 * 1024, 64, 16}},
    [NVM_LEVEL_VERIFIED] = {default_caps_all, {-1, -1, -1, -1}, {-1, -1, -1, -1}},
    [NVM_LEVEL_TRUSTED] = {default_caps_all, {-1, -1, -1, -1}, {-1, -1, -1, -1}},
};

static void free_strv(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* Copies a NULL-terminated list; on allocation failure the list is left empty, which grants
 * nothing (fail-safe). */
static void set_default_caps(nvm_level_policy *lp, const char *const *src)
{
    size_t n = 0;
    while (src != NULL && src[n] != NULL)
        n++;
    lp->caps = NULL;
    lp->ncaps = 0;
    if (n == 0)
        return;
    char **v = calloc(n, sizeof *v);
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        v[i] = xstrdup(src[i]);
        if (v[i] == NULL) {
            free_strv(v, i);
            return;
        }
    }
    lp->caps = v;
    lp->ncaps = n;
}

static void level_default_init(nvm_level_policy *lp, int level)
{
    memset(lp, 0, sizeof *lp);
    set_default_caps(lp, level_defaults[level].caps);
    lp->limits = level_defaults[level].limits;
    lp->host = level_defaults[level].host;
    snprintf(lp->tier, sizeof lp->tier, "auto");
}

void nvm_policy_default(nvm_policy *out)
{
    memset(out, 0, sizeof *out);
    out->min_level = NVM_LEVEL_RESTRICTED;
    out->invalid_signature_sandbox = false;
    out->allow_tier_override = true;
    for (int l = NVM_LEVEL_RESTRICTED; l < NVM_LEVEL_COUNT; l++)
        level_default_init(&out->levels[l], l);
}

void nvm_policy_free(nvm_policy *p)
{
    if (p == NULL)
        return;
    free(p->path);
    free(p->dir);
    if (p->roots != NULL)
        nvm_certs_free(p->roots);
    nvm_crypto_free(p->crypto); /* after every certificate decoded in it */
    free(p->pinned);
    free_strv(p->revoked_keys, p->nrevoked_keys);
    free_strv(p->revoked_serials, p->nrevoked_serials);
    free_strv(p->revoked_capsules, p->nrevoked_capsules);
    free(p->state_dir);
    free(p->audit_log);
    for (int l = 0; l < NVM_LEVEL_COUNT; l++) {
        free_strv(p->levels[l].caps, p->levels[l].ncaps);
        free_strv(p->levels[l].deny, p->levels[l].ndeny);
    }
    memset(p, 0, sizeof *p);
}

/* ---- capability scopes ---- */

/* Glob tokens: a literal byte (0..255), or one of the wildcards. */
enum { TOK_STAR = 256, TOK_DSTAR = 257 };

/* Tokenizes s into *out (malloc'ed); wildcards are literal when `wild` is false. */
static int *tokenize(const char *s, bool wild, size_t *n)
{
    size_t len = strlen(s);
    int *t = malloc((len ? len : 1) * sizeof *t);
    if (t == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (wild && s[i] == '*') {
            if (s[i + 1] == '*') {
                t[k++] = TOK_DSTAR;
                while (s[i + 1] == '*')
                    i++;
            } else {
                t[k++] = TOK_STAR;
            }
        } else {
            t[k++] = (unsigned char)s[i];
        }
    }
    *n = k;
    return t;
}

/* May pattern token `pt` (a wildcard) consume text token `tt`? */
static bool wild_eats(int pt, int tt, char sep)
{
    if (pt == TOK_DSTAR || sep == '\0')
        return true;
    return tt == TOK_STAR || (tt < 256 && tt != (unsigned char)sep);
}

/* Dynamic programming over (pattern prefix, text prefix): O(n*m) time, O(m) space, no
 * backtracking blow-up whatever the number of wildcards. */
static bool glob_tokens(const char *pattern, const char *text, char sep, bool text_wild)
{
    size_t np = 0, nt = 0;
    int *p = tokenize(pattern, true, &np);
    int *t = tokenize(text, text_wild, &nt);
    bool *prev = calloc(nt + 1, sizeof *prev), *cur = calloc(nt + 1, sizeof *cur);
    bool ok = false;
    if (p == NULL || t == NULL || prev == NULL || cur == NULL)
        goto done; /* fail closed */
    prev[0] = true;
    for (size_t i = 0; i < np; i++) {
        int pt = p[i];
        bool wild = pt == TOK_STAR || pt == TOK_DSTAR;
        cur[0] = wild && prev[0];
        for (size_t j = 1; j <= nt; j++) {
            int tt = t[j - 1];
            if (wild)
                cur[j] = prev[j] || (cur[j - 1] && wild_eats(pt, tt, sep));
            else
                cur[j] = prev[j - 1] && tt == pt;
        }
        bool *sw = prev;
        prev = cur;
        cur = sw;
    }
    ok = prev[nt];
done:
    free(p);
    free(t);
    free(prev);
    free(cur);
    return ok;
}

bool nvm_glob_match_sep(const char *pattern, const char *text, char sep)
{
    return glob_tokens(pattern, text, sep, false);
}

/* An fs pattern without its trailing "**" segment and its slash (the directory itself), or
 * NULL when it does not end so. */
static char *fs_dir_of(const char *pattern)
{
    size_t n = strlen(pattern);
    if (n < 3 || strcmp(pattern + n - 3, "/**") != 0)
        return NULL;
    char *d = malloc(n - 2);
    if (d == NULL)
        return NULL;
    memcpy(d, pattern, n - 3);
    d[n - 3] = '\0';
    if (d[0] == '\0') {
        d[0] = '/';
        d[1] = '\0';
    }
    return d;
}

/* Splits "host:port" / "[v6]:port" into host (brackets removed) and port. */
static bool split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return false;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hl < 2 || s[hl - 1] != ']')
            return false;
        h = s + 1;
        hl -= 2;
    }
    size_t pl = strlen(colon + 1);
    if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen)
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return true;
}

static bool scope_check(const char *type, const char *scope, const char *arg, bool covers)
{
    if (scope == NULL || scope[0] == '\0')
        return true;
    if (arg == NULL)
        return false;
    if (strcmp(type, "fs") == 0) {
        if (glob_tokens(scope, arg, '/', covers))
            return true;
        char *dir = fs_dir_of(scope);
        bool ok = dir != NULL && glob_tokens(dir, arg, '/', covers);
        free(dir);
        return ok;
    }
    if (strcmp(type, "net") == 0) {
        char sh[300], sp[16], ah[300], ap[16];
        if (!split_hostport(scope, sh, sizeof sh, sp, sizeof sp) ||
            !split_hostport(arg, ah, sizeof ah, ap, sizeof ap))
            return false;
        bool port_ok = strcmp(sp, "*") == 0 || strcmp(sp, ap) == 0;
        return port_ok && glob_tokens(sh, ah, '.', covers);
    }
    if (strcmp(type, "kv") == 0)
        return glob_tokens(scope, arg, '/', covers);
    return glob_tokens(scope, arg, '\0', covers);
}

bool nvm_scope_match(const char *type, const char *scope, const char *arg)
{
    return scope_check(type, scope, arg, false);
}

bool nvm_scope_covers(const char *type, const char *outer, const char *inner)
{
    if (outer == NULL || outer[0] == '\0')
        return true;
    if (inner == NULL || inner[0] == '\0')
        return false;
    return scope_check(type, outer, inner, true);
}

/* "*" and "type.*" patterns; returns 1 match, 0 no match, -1 not such a pattern. */
static int wide_pattern(const char *pattern, const char *type)
{
    if (strcmp(pattern, "*") == 0)
        return 1;
    size_t n = strlen(pattern);
    if (n >= 3 && strcmp(pattern + n - 2, ".*") == 0)
        return strlen(type) == n - 2 && strncmp(pattern, type, n - 2) == 0;
    return -1;
}

bool nvm_cap_call_match(const char *pattern, const char *capname, const char *arg)
{
    char type[32];
    const char *dot = strchr(capname, '.');
    size_t tl = dot != NULL ? (size_t)(dot - capname) : 0;
    if (tl == 0 || tl >= sizeof type)
        return false;
    memcpy(type, capname, tl);
    type[tl] = '\0';
    int w = wide_pattern(pattern, type);
    if (w >= 0)
        return w == 1;
    nvm_capreq pc;
    char why[8];
    if (nvm_capreq_parse(pattern, &pc, why, sizeof why) != NVM_OK)
        return false;
    if (strcmp(pc.type, type) != 0 || strcmp(pc.action, dot + 1) != 0)
        return false;
    return pc.scope[0] == '\0' || (arg != NULL && nvm_scope_match(type, pc.scope, arg));
}

bool nvm_cap_pattern_match(const char *pattern, const nvm_capreq *c)
{
    int w = wide_pattern(pattern, c->type);
    if (w >= 0)
        return w == 1;
    nvm_capreq pc;
    char why[8];
    if (nvm_capreq_parse(pattern, &pc, why, sizeof why) != NVM_OK)
        return false;
    if (strcmp(pc.type, c->type) != 0 || strcmp(pc.action, c->action) != 0)
        return false;
    return nvm_scope_covers(c->type, pc.scope, c->scope);
}

bool nvm_level_allows(const nvm_policy *p, nvm_trust_level l, const nvm_capreq *c)
{
    if (l <= NVM_LEVEL_REJECTED || l >= NVM_LEVEL_COUNT)
        return false;
    const nvm_level_policy *lp = &p->levels[l];
    for (size_t i = 0; i < lp->ndeny; i++)
        if (nvm_cap_pattern_match(lp->deny[i], c))
            return false;
    for (size_t i = 0; i < lp->ncaps; i++)
        if (nvm_cap_pattern_match(lp->caps[i], c))
            return true;
    return false;
}

/* ---- loading ---- */

typedef struct loader {
    nvm_policy *p;
    nvm_error *err;
    const char *file;
} loader;

static nvm_status lerr(loader *ld, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static nvm_status lerr(loader *ld, const char *fmt, ...)
{
    nvm_error *err = ld->err;
    if (err != NULL) {
        memset(err, 0, sizeof *err);
        err->status = NVM_E_FORMAT;
        snprintf(err->file, sizeof err->file, "%s", ld->file);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return NVM_E_FORMAT;
}

static nvm_status oom(loader *ld)
{
    if (ld->err != NULL) {
        memset(ld->err, 0, sizeof *ld->err);
        ld->err->status = NVM_E_INTERNAL;
        snprintf(ld->err->message, sizeof ld->err->message, "out of memory");
    }
    return NVM_E_INTERNAL;
}

/* Resolves a path against the policy directory; malloc'ed, NULL on allocation failure. */
static char *resolve(const loader *ld, const char *rel)
{
    if (rel[0] == '/' || ld->p->dir == NULL)
        return xstrdup(rel);
    size_t a = strlen(ld->p->dir), b = strlen(rel);
    char *s = malloc(a + b + 2);
    if (s == NULL)
        return NULL;
    memcpy(s, ld->p->dir, a);
    s[a] = '/';
    memcpy(s + a + 1, rel, b + 1);
    return s;
}

/* Array of non-empty strings -> *out (malloc'ed). `hexlen` 0: any string; > 0: exactly that
 * many hex digits; SIZE_MAX: one or more hex digits. Hex is stored lower-case. */
static nvm_status load_strv(loader *ld, json_t *v, const char *key, size_t hexlen, char ***out,
                            size_t *nout)
{
    if (!json_is_array(v))
        return lerr(ld, "key \"%s\": expected an array of strings", key);
    size_t n = json_array_size(v);
    char **res = calloc(n ? n : 1, sizeof *res);
    if (res == NULL)
        return oom(ld);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e) || json_string_length(e) == 0) {
            free_strv(res, i);
            return lerr(ld, "key \"%s[%zu]\": expected a non-empty string", key, i);
        }
        const char *s = json_string_value(e);
        size_t len = json_string_length(e);
        if (hexlen != 0) {
            bool ok = hexlen == SIZE_MAX || len == hexlen;
            for (size_t k = 0; ok && k < len; k++)
                ok = isxdigit((unsigned char)s[k]) != 0;
            if (!ok) {
                free_strv(res, i);
                if (hexlen == SIZE_MAX)
                    return lerr(ld, "key \"%s[%zu]\": \"%s\" is not a hex string", key, i, s);
                return lerr(ld, "key \"%s[%zu]\": \"%s\" is not %zu hex digits (a SHA-256)", key, i,
                            s, hexlen);
            }
        }
        res[i] = xstrdup(s);
        if (res[i] == NULL) {
            free_strv(res, i);
            return oom(ld);
        }
        if (hexlen != 0)
            for (char *q = res[i]; *q; q++)
                *q = (char)tolower((unsigned char)*q);
    }
    *out = res;
    *nout = n;
    return NVM_OK;
}

static nvm_status load_limits(loader *ld, json_t *v, const char *lname, nvm_limits *out,
                              nvm_host_limits *host)
{
    if (!json_is_object(v))
        return lerr(ld, "key \"levels.%s.limits\": expected an object", lname);
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        int64_t *dst = strcmp(k, "gas") == 0           ? &out->gas
                       : strcmp(k, "memory") == 0      ? &out->memory
                       : strcmp(k, "stack") == 0       ? &out->stack
                       : strcmp(k, "wall_ms") == 0     ? &out->wall_ms
                       : strcmp(k, "read_bytes") == 0  ? &host->read_bytes
                       : strcmp(k, "write_bytes") == 0 ? &host->write_bytes
                       : strcmp(k, "handles") == 0     ? &host->handles
                       : strcmp(k, "connections") == 0 ? &host->connections
                                                       : NULL;
        if (dst == NULL)
            return lerr(ld,
                        "unknown key \"levels.%s.limits.%s\" (expected gas, memory, stack, "
                        "wall_ms, read_bytes, write_bytes, handles, connections)",
                        lname, k);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return lerr(ld, "key \"levels.%s.limits.%s\": expected a non-negative integer", lname,
                        k);
        *dst = (int64_t)json_integer_value(e);
    }
    return NVM_OK;
}

static bool valid_pattern(const char *s)
{
    if (strcmp(s, "*") == 0)
        return true;
    nvm_capreq c;
    char why[8];
    if (nvm_capreq_parse(s, &c, why, sizeof why) == NVM_OK)
        return true;
    size_t n = strlen(s);
    if (n < 3 || strcmp(s + n - 2, ".*") != 0)
        return false;
    if (!islower((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n - 2; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

static nvm_status load_level(loader *ld, const char *lname, json_t *v, nvm_level_policy *lp)
{
    char key[64];
    nvm_status st;
    if (!json_is_object(v))
        return lerr(ld, "key \"levels.%s\": expected an object", lname);
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        if (strcmp(k, "capabilities") == 0 || strcmp(k, "deny") == 0) {
            bool deny = k[0] == 'd';
            snprintf(key, sizeof key, "levels.%s.%s", lname, k);
            char **sv = NULL;
            size_t n = 0;
            st = load_strv(ld, e, key, 0, &sv, &n);
            if (st != NVM_OK)
                return st;
            for (size_t i = 0; i < n; i++)
                if (!valid_pattern(sv[i])) {
                    st = lerr(ld,
                              "key \"%s[%zu]\": \"%s\" is not a capability pattern (\"*\", "
                              "\"type.*\", \"type.action\" or \"type.action:scope\")",
                              key, i, sv[i]);
                    free_strv(sv, n);
                    return st;
                }
            if (deny) {
                free_strv(lp->deny, lp->ndeny);
                lp->deny = sv;
                lp->ndeny = n;
            } else {
                free_strv(lp->caps, lp->ncaps);
                lp->caps = sv;
                lp->ncaps = n;
            }
        } else if (strcmp(k, "limits") == 0) {
            st = load_limits(ld, e, lname, &lp->limits, &lp->host);
            if (st != NVM_OK)
                return st;
        } else if (strcmp(k, "tier") == 0) {
            static const char *const tiers[] = {"auto", "interp", "jit", "aot", "wasm"};
            const char *t = json_is_string(e) ? json_string_value(e) : "";
            bool ok = false;
            for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++)
                ok = ok || strcmp(t, tiers[i]) == 0;
            if (!ok)
                return lerr(ld,
                            "key \"levels.%s.tier\": expected one of auto, interp, jit, aot, "
                            "wasm",
                            lname);
            snprintf(lp->tier, sizeof lp->tier, "%s", t);
        } else if (strcmp(k, "gas_metering") == 0) {
            if (!json_is_boolean(e))
                return lerr(ld, "key \"levels.%s.gas_metering\": expected true or false", lname);
            lp->unmetered = !json_is_true(e);
        } else {
            return lerr(ld,
                        "unknown key \"levels.%s.%s\" (expected capabilities, deny, limits, "
                        "tier, gas_metering)",
                        lname, k);
        }
    }
    /* without metering nothing counts instructions: no gas limit, and no wall-time limit
     * (enforced through the same countdown inside generated code) */
    if (lp->unmetered && strcmp(lname, "trusted") != 0)
        return lerr(ld,
                    "key \"levels.%s.gas_metering\": metering can be turned off only for the "
                    "trusted level",
                    lname);
    if (lp->unmetered && (lp->limits.gas >= 0 || lp->limits.wall_ms >= 0))
        return lerr(ld,
                    "key \"levels.%s.gas_metering\": false needs a level without gas and "
                    "wall_ms limits",
                    lname);
    return NVM_OK;
}

static nvm_status load_revoked(loader *ld, json_t *v)
{
    nvm_policy *p = ld->p;
    if (!json_is_object(v))
        return lerr(ld, "key \"revoked\": expected an object");
    const char *k;
    json_t *e;
    nvm_status st;
    json_object_foreach(v, k, e)
    {
        if (strcmp(k, "keys") == 0) {
            free_strv(p->revoked_keys, p->nrevoked_keys);
            p->revoked_keys = NULL;
            st = load_strv(ld, e, "revoked.keys", 64, &p->revoked_keys, &p->nrevoked_keys);
        } else if (strcmp(k, "serials") == 0) {
            free_strv(p->revoked_serials, p->nrevoked_serials);
            p->revoked_serials = NULL;
            st = load_strv(ld, e, "revoked.serials", SIZE_MAX, &p->revoked_serials,
                           &p->nrevoked_serials);
        } else if (strcmp(k, "capsules") == 0) {
            free_strv(p->revoked_capsules, p->nrevoked_capsules);
            p->revoked_capsules = NULL;
            st = load_strv(ld, e, "revoked.capsules", 64, &p->revoked_capsules,
                           &p->nrevoked_capsules);
        } else {
            return lerr(ld, "unknown key \"revoked.%s\" (expected keys, serials, capsules)", k);
        }
        if (st != NVM_OK)
            return st;
    }
    return NVM_OK;
}

static nvm_status load_paths(loader *ld, json_t *v, const char *key, bool pinned)
{
    nvm_policy *p = ld->p;
    char why[NVM_WHY_MAX];
    if (!json_is_array(v))
        return lerr(ld, "key \"%s\": expected an array of file names", key);
    size_t n = json_array_size(v);
    if (pinned) {
        free(p->pinned);
        p->npinned = 0;
        p->pinned = calloc(n ? n : 1, sizeof *p->pinned);
        if (p->pinned == NULL)
            return oom(ld);
    } else {
        if (p->roots != NULL)
            nvm_certs_free(p->roots);
        p->roots = NULL;
        if (n > 0 && p->crypto == NULL)
            p->crypto = nvm_crypto_new(); /* NULL: the default context */
        if (nvm_certs_new_in(p->crypto, &p->roots) != NVM_OK)
            return oom(ld);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e) || json_string_length(e) == 0)
            return lerr(ld, "key \"%s[%zu]\": expected a file name", key, i);
        char *path = resolve(ld, json_string_value(e));
        if (path == NULL)
            return oom(ld);
        why[0] = '\0';
        nvm_status st;
        if (pinned) {
            st = nvm_pubkey_read_pem(path, p->pinned[i], why);
            if (st == NVM_OK)
                p->npinned = i + 1;
        } else {
            size_t before = nvm_certs_count(p->roots);
            st = nvm_certs_add_pem_file(p->roots, path, why);
            if (st == NVM_OK && nvm_certs_count(p->roots) == before) {
                snprintf(why, sizeof why, "no certificate in the file");
                st = NVM_E_FORMAT;
            }
        }
        if (st != NVM_OK) {
            st = lerr(ld, "key \"%s[%zu]\": %s: %s", key, i, path,
                      why[0] ? why : nvm_status_meaning(st));
            free(path);
            return st;
        }
        free(path);
    }
    return NVM_OK;
}

static nvm_status load_string_path(loader *ld, json_t *v, const char *key, char **out)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return lerr(ld, "key \"%s\": expected a non-empty path", key);
    free(*out);
    *out = resolve(ld, json_string_value(v));
    return *out == NULL ? oom(ld) : NVM_OK;
}

static nvm_status load_top(loader *ld, json_t *root)
{
    nvm_policy *p = ld->p;
    nvm_status st = NVM_OK;
    if (!json_is_object(root))
        return lerr(ld, "the policy must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (strcmp(k, "trust_roots") == 0) {
            st = load_paths(ld, v, k, false);
        } else if (strcmp(k, "pinned_keys") == 0) {
            st = load_paths(ld, v, k, true);
        } else if (strcmp(k, "revoked") == 0) {
            st = load_revoked(ld, v);
        } else if (strcmp(k, "min_level") == 0) {
            int l = json_is_string(v) ? nvm_level_lookup(json_string_value(v)) : -1;
            if (l <= NVM_LEVEL_REJECTED)
                return lerr(ld, "key \"min_level\": expected one of trusted, verified, "
                                "sandboxed, restricted");
            p->min_level = (nvm_trust_level)l;
        } else if (strcmp(k, "on_invalid_signature") == 0) {
            const char *s = json_is_string(v) ? json_string_value(v) : "";
            if (strcmp(s, "reject") == 0)
                p->invalid_signature_sandbox = false;
            else if (strcmp(s, "sandbox") == 0)
                p->invalid_signature_sandbox = true;
            else
                return lerr(ld, "key \"on_invalid_signature\": expected \"reject\" or "
                                "\"sandbox\"");
        } else if (strcmp(k, "state_dir") == 0) {
            st = load_string_path(ld, v, k, &p->state_dir);
        } else if (strcmp(k, "audit_log") == 0) {
            st = load_string_path(ld, v, k, &p->audit_log);
        } else if (strcmp(k, "allow_tier_override") == 0) {
            if (!json_is_boolean(v))
                return lerr(ld, "key \"allow_tier_override\": expected true or false");
            p->allow_tier_override = json_is_true(v);
        } else if (strcmp(k, "audit_pure_calls") == 0) {
            if (!json_is_boolean(v))
                return lerr(ld, "key \"audit_pure_calls\": expected true or false");
            p->audit_pure_calls = json_is_true(v);
        } else if (strcmp(k, "levels") == 0) {
            if (!json_is_object(v))
                return lerr(ld, "key \"levels\": expected an object");
            const char *lk;
            json_t *lv;
            json_object_foreach(v, lk, lv)
            {
                int l = nvm_level_lookup(lk);
                if (l <= NVM_LEVEL_REJECTED)
                    return lerr(ld,
                                "unknown key \"levels.%s\" (expected trusted, verified, "
                                "sandboxed, restricted)",
                                lk);
                st = load_level(ld, lk, lv, &p->levels[l]);
                if (st != NVM_OK)
                    return st;
            }
        } else {
            return lerr(ld,
                        "unknown key \"%s\" (expected trust_roots, pinned_keys, revoked, "
                        "min_level, on_invalid_signature, state_dir, audit_log, "
                        "allow_tier_override, audit_pure_calls, levels)",
                        k);
        }
        if (st != NVM_OK)
            return st;
    }
    return NVM_OK;
}

nvm_status nvm_policy_load(const char *path, nvm_policy *out, nvm_error *err)
{
    nvm_policy_default(out);
    if (path == NULL) {
        if (access(NVM_POLICY_DEFAULT_PATH, F_OK) != 0)
            return NVM_OK;
        path = NVM_POLICY_DEFAULT_PATH;
    }
    loader ld = {out, err, path};
    json_t *root = NULL;
    nvm_status st;
    out->path = xstrdup(path);
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        out->dir = xstrdup(".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        out->dir = malloc(n + 1);
        if (out->dir != NULL) {
            memcpy(out->dir, path, n);
            out->dir[n] = '\0';
        }
    }
    if (out->path == NULL || out->dir == NULL) {
        st = oom(&ld);
        goto fail;
    }
    json_error_t jerr;
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            st = lerr(&ld, "cannot open the policy: %s", strerror(errno));
            goto fail;
        }
        fclose(f);
        st = lerr(&ld, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        goto fail;
    }
    st = load_top(&ld, root);
    if (st != NVM_OK)
        goto fail;
    json_decref(root);
    return NVM_OK;
fail:
    json_decref(root);
    nvm_policy_free(out);
    return st;
}
