/* kv.c - persistent key-value capabilities: kv.get(key) -> value or null, kv.set(key, value),
 * kv.delete(key), kv.list(prefix) -> sorted array of keys.
 *
 * Storage: one SQLite database STATE_DIR/kv.sqlite (mode 0600), opened on the first kv call of a
 * run, WAL journal, synchronous=FULL (a call that returned is durable, also across a power
 * loss), busy timeout 5 s. Table kv(owner, key, value) with PRIMARY KEY(owner, key): owner is
 * the host's identity (capsule name + signer, "" when the host has none), so capsules never see
 * each other's keys. value is the JSON encoding of the value: null, bool, int, float (finite),
 * str (valid UTF-8), arrays and maps with str keys, nested at most 64 deep.
 *
 * Scope: a namespace pattern matched with nvm_glob_match against the key, '/' separating
 * segments: '*' matches within one segment (scope "app/x*" grants "app/xy", not "app/xy/z"),
 * '**' across segments; an empty scope grants every key. kv.list needs a kv.list grant and returns
 * only the keys with the prefix that some kv.list grant matches and no deny rule refuses. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/hal.h"
#include "trust/policy.h"

#define KV_KEY_MAX 1024
#define KV_VALUE_MAX (1 << 20) /* bytes of the JSON encoding */
#define KV_DEPTH_MAX 64

/* The open store; statements are prepared once per run. */
struct nvm_kv {
    sqlite3 *db;
    sqlite3_stmt *get, *set, *del, *list;
};

static const char *kv_owner(const nvm_host *h)
{
    return h->cfg.identity != NULL ? h->cfg.identity : "";
}

void nvm_host_kv_close(nvm_host *h)
{
    struct nvm_kv *kv = h->kv;
    if (kv == NULL)
        return;
    sqlite3_finalize(kv->get);
    sqlite3_finalize(kv->set);
    sqlite3_finalize(kv->del);
    sqlite3_finalize(kv->list);
    sqlite3_close(kv->db);
    free(kv);
    h->kv = NULL;
}

/* Opens (creating when needed) the store; a failure is a catchable program error. */
static nvm_status kv_open(nvm_host *h, nvm_vm *vm, const char *cap)
{
    static const char *const setup =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=FULL;"
        "CREATE TABLE IF NOT EXISTS kv (owner TEXT NOT NULL, key TEXT NOT NULL,"
        " value TEXT NOT NULL, PRIMARY KEY (owner, key)) WITHOUT ROWID;";
    if (h->kv != NULL)
        return NVM_OK;
    if (h->cfg.state_dir == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM,
                            "%s: kv storage unavailable (no state_dir in policy)", cap);
    char path[4096];
    nvm_status st = NVM_OK;
    struct nvm_kv *kv = calloc(1, sizeof *kv);
    if (kv == NULL)
        return nvm_cap_fail(vm, NVM_E_INTERNAL, "%s: out of memory", cap);
    if ((size_t)snprintf(path, sizeof path, "%s/kv.sqlite", h->cfg.state_dir) >= sizeof path) {
        st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: state_dir path too long", cap);
        goto fail;
    }
    if (mkdir(h->cfg.state_dir, 0700) != 0 && errno != EEXIST) {
        st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, h->cfg.state_dir, strerror(errno));
        goto fail;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    close(fd);
    int rc = sqlite3_open_v2(
        path, &kv->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(kv->db, 5000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(kv->db, setup, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(kv->db, "SELECT value FROM kv WHERE owner = ?1 AND key = ?2", -1,
                                &kv->get, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(kv->db,
                                "INSERT INTO kv (owner, key, value) VALUES (?1, ?2, ?3)"
                                " ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value",
                                -1, &kv->set, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(kv->db, "DELETE FROM kv WHERE owner = ?1 AND key = ?2", -1,
                                &kv->del, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(kv->db,
                                "SELECT key FROM kv WHERE owner = ?1 AND key >= ?2 ORDER BY key",
                                -1, &kv->list, NULL);
    if (rc != SQLITE_OK) {
        st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, path,
                          kv->db ? sqlite3_errmsg(kv->db) : sqlite3_errstr(rc));
        goto fail;
    }
    h->kv = kv;
    return NVM_OK;
fail:
    h->kv = kv;
    nvm_host_kv_close(h);
    return st;
}

/* ---- grants ---- */

/* The first grant of cap ("*", "kv.*" or the capability itself) whose scope admits key; with
 * key NULL, the first grant of cap whatever its scope. */
static const nvm_capgrant *kv_grant(nvm_host *h, const char *cap, const char *key)
{
    size_t n = nvm_host_grant_count(h);
    for (size_t i = 0; i < n; i++) {
        const nvm_capgrant *g = nvm_host_grant_at(h, i);
        if (nvm_cap_call_match(g->capname, cap, NULL) &&
            (key == NULL || g->scope[0] == '\0' || nvm_glob_match(g->scope, key, '/')))
            return g;
    }
    return NULL;
}

/* Reads the key argument (1..KV_KEY_MAX bytes, no NUL) into buf; checks the grant, audits. */
static nvm_status kv_key_check(nvm_host *h, nvm_vm *vm, const char *cap, nvm_value v, char *buf,
                               bool allow_empty)
{
    size_t len;
    const char *s = nvm_value_str(vm, v, &len);
    if (s == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: key must be a str, got %s", cap,
                            nvm_type_name((nvm_type)v.type));
    if ((len == 0 && !allow_empty) || len > KV_KEY_MAX || memchr(s, '\0', len) != NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: a key is 1 to %d bytes without NUL", cap,
                            KV_KEY_MAX);
    memcpy(buf, s, len);
    buf[len] = '\0';
    nvm_status st = nvm_host_check_deadline(h, vm);
    if (st != NVM_OK)
        return st;
    if (nvm_host_denied_by_rule(h, cap, buf))
        return nvm_host_deny(h, vm, cap, buf, "denied by a policy rule");
    /* kv.list: any kv.list grant; its result is filtered key by key */
    const nvm_capgrant *g = kv_grant(h, cap, allow_empty ? NULL : buf);
    if (g == NULL)
        return nvm_host_deny(h, vm, cap, buf, "outside the granted scope (or not granted)");
    char scope[sizeof g->capname + sizeof g->scope + 1];
    snprintf(scope, sizeof scope, "%s%s%s", g->capname, g->scope[0] ? ":" : "", g->scope);
    if (nvm_host_audit_call(h, cap, scope, buf, false) != NVM_OK)
        return nvm_cap_fail(vm, NVM_E_IO, "%s: cannot write the audit log", cap);
    return kv_open(h, vm, cap);
}

static nvm_status kv_db_fail(nvm_host *h, nvm_vm *vm, const char *cap)
{
    return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s", cap, sqlite3_errmsg(h->kv->db));
}

/* ---- value <-> JSON ---- */

static json_t *encode(nvm_vm *vm, nvm_value v, int depth, const char **why)
{
    json_t *j = NULL;
    size_t len;
    const char *s;
    if (depth > KV_DEPTH_MAX) {
        *why = "nested too deep (or cyclic)";
        return NULL;
    }
    switch ((nvm_type)v.type) {
    case NVM_T_NULL: return json_null();
    case NVM_T_BOOL: return json_boolean(v.as.b);
    case NVM_T_INT: return json_integer((json_int_t)v.as.i);
    case NVM_T_FLOAT:
        if (!isfinite(v.as.f)) {
            *why = "a float that is not finite";
            return NULL;
        }
        return json_real(v.as.f);
    case NVM_T_STR:
        s = nvm_value_str(vm, v, &len);
        if ((j = json_stringn(s, len)) == NULL)
            *why = "a str that is not valid UTF-8";
        return j;
    case NVM_T_ARRAY:
        j = json_array();
        for (uint32_t i = 0, n = nvm_value_array_len(vm, v); j != NULL && i < n; i++) {
            json_t *e = encode(vm, nvm_value_array_get(vm, v, i), depth + 1, why);
            if (e == NULL || json_array_append_new(j, e) != 0) {
                json_decref(j);
                j = NULL;
            }
        }
        return j;
    case NVM_T_MAP: {
        j = json_object();
        uint32_t pos = 0;
        nvm_value k, val;
        while (j != NULL && nvm_value_map_entry(vm, v, &pos, &k, &val)) {
            s = nvm_value_str(vm, k, &len);
            if (s == NULL) {
                *why = "a map key that is not a str";
                json_decref(j);
                return NULL;
            }
            json_t *e = encode(vm, val, depth + 1, why);
            /* s stays valid: encoding allocates nothing on the VM */
            if (e == NULL || json_object_setn_new(j, s, len, e) != 0) {
                if (e != NULL)
                    *why = "a map key that is not valid UTF-8";
                json_decref(j);
                j = NULL;
            }
        }
        return j;
    }
    default: *why = "a value of this type"; return NULL;
    }
}

/* Builds the value of j; containers under construction are rooted. */
static nvm_status decode(nvm_vm *vm, json_t *j, nvm_value *out, int depth)
{
    nvm_status st = NVM_OK;
    uint32_t roots = 0;
    *out = nvm_null();
    if (depth > KV_DEPTH_MAX)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "kv.get: stored value nested too deep");
    switch (json_typeof(j)) {
    case JSON_NULL: return NVM_OK;
    case JSON_TRUE:
    case JSON_FALSE: *out = nvm_bool(json_is_true(j)); return NVM_OK;
    case JSON_INTEGER: *out = nvm_int((int64_t)json_integer_value(j)); return NVM_OK;
    case JSON_REAL: *out = nvm_float(json_real_value(j)); return NVM_OK;
    case JSON_STRING:
        return nvm_value_new_str(vm, json_string_value(j), json_string_length(j), out);
    case JSON_ARRAY: {
        nvm_value arr, e;
        if ((st = nvm_value_new_array(vm, &arr)) != NVM_OK ||
            (st = nvm_value_root(vm, arr)) != NVM_OK)
            return st;
        roots = 1;
        for (size_t i = 0; i < json_array_size(j); i++) {
            if ((st = decode(vm, json_array_get(j, i), &e, depth + 1)) != NVM_OK ||
                (st = nvm_value_root(vm, e)) != NVM_OK)
                goto fail;
            st = nvm_array_push_value(vm, arr, e);
            nvm_value_unroot(vm, 1);
            if (st != NVM_OK)
                goto fail;
        }
        *out = arr;
        break;
    }
    case JSON_OBJECT: {
        nvm_value map, k, e;
        const char *key;
        size_t klen;
        json_t *val;
        if ((st = nvm_value_new_map(vm, &map)) != NVM_OK ||
            (st = nvm_value_root(vm, map)) != NVM_OK)
            return st;
        roots = 1;
        json_object_keylen_foreach(j, key, klen, val)
        {
            if ((st = nvm_value_new_str(vm, key, klen, &k)) != NVM_OK ||
                (st = nvm_value_root(vm, k)) != NVM_OK)
                goto fail;
            roots++;
            if ((st = decode(vm, val, &e, depth + 1)) != NVM_OK ||
                (st = nvm_value_root(vm, e)) != NVM_OK)
                goto fail;
            roots++;
            st = nvm_map_set_value(vm, map, k, e);
            nvm_value_unroot(vm, 2);
            roots -= 2;
            if (st != NVM_OK)
                goto fail;
        }
        *out = map;
        break;
    }
    }
fail:
    if (roots > 0)
        nvm_value_unroot(vm, roots);
    if (st != NVM_OK)
        *out = nvm_null();
    return st;
}

/* ---- capabilities ---- */

static nvm_status kv_get(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                         nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    char key[KV_KEY_MAX + 1];
    nvm_status st = kv_key_check(h, vm, "kv.get", args[0], key, false);
    if (st != NVM_OK)
        return st;
    sqlite3_stmt *q = h->kv->get;
    json_t *j = NULL;
    sqlite3_bind_text(q, 1, kv_owner(h), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(q, 0);
        int n = sqlite3_column_bytes(q, 0);
        json_error_t jerr;
        j = json_loadb(text != NULL ? text : "", (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                       &jerr);
        if (j == NULL)
            st = nvm_cap_fail(vm, NVM_E_PROGRAM, "kv.get: %s: stored value is corrupt", key);
        else if ((st = nvm_host_account(h, vm, n, 0)) == NVM_OK)
            st = decode(vm, j, result, 0);
    } else if (rc != SQLITE_DONE) {
        st = kv_db_fail(h, vm, "kv.get");
    }
    json_decref(j);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return st;
}

static nvm_status kv_set(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                         nvm_value *result)
{
    (void)argc;
    (void)result;
    nvm_host *h = ud;
    char key[KV_KEY_MAX + 1];
    const char *why = NULL;
    char *text = NULL;
    nvm_status st = kv_key_check(h, vm, "kv.set", args[0], key, false);
    if (st != NVM_OK)
        return st;
    json_t *j = encode(vm, args[1], 0, &why);
    if (j != NULL)
        text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (text == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "kv.set: cannot store %s",
                            why != NULL ? why : "this value");
    size_t len = strlen(text);
    if (len > KV_VALUE_MAX) {
        st = nvm_cap_fail(vm, NVM_E_PROGRAM, "kv.set: value too large (%zu bytes, limit %d)", len,
                          KV_VALUE_MAX);
        goto fail;
    }
    if ((st = nvm_host_account(h, vm, 0, (int64_t)(strlen(key) + len))) != NVM_OK)
        goto fail;
    sqlite3_stmt *q = h->kv->set;
    sqlite3_bind_text(q, 1, kv_owner(h), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, text, (int)len, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE)
        st = kv_db_fail(h, vm, "kv.set");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
fail:
    free(text);
    return st;
}

static nvm_status kv_delete(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)argc;
    (void)result;
    nvm_host *h = ud;
    char key[KV_KEY_MAX + 1];
    nvm_status st = kv_key_check(h, vm, "kv.delete", args[0], key, false);
    if (st != NVM_OK)
        return st;
    sqlite3_stmt *q = h->kv->del;
    sqlite3_bind_text(q, 1, kv_owner(h), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE)
        st = kv_db_fail(h, vm, "kv.delete");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return st;
}

static nvm_status kv_list(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    const char *cap = "kv.list";
    char prefix[KV_KEY_MAX + 1];
    nvm_status st = kv_key_check(h, vm, cap, args[0], prefix, true);
    if (st != NVM_OK)
        return st;
    nvm_value arr, k;
    if ((st = nvm_value_new_array(vm, &arr)) != NVM_OK || (st = nvm_value_root(vm, arr)) != NVM_OK)
        return st;
    size_t plen = strlen(prefix);
    int64_t total = 0;
    int rc;
    sqlite3_stmt *q = h->kv->list;
    sqlite3_bind_text(q, 1, kv_owner(h), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, prefix, (int)plen, SQLITE_STATIC);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(q, 0);
        size_t klen = (size_t)sqlite3_column_bytes(q, 0);
        if (key == NULL || klen < plen || memcmp(key, prefix, plen) != 0)
            break; /* keys are in byte order: the prefix range has ended */
        if (memchr(key, '\0', klen) != NULL || kv_grant(h, cap, key) == NULL ||
            nvm_host_denied_by_rule(h, cap, key))
            continue;
        total += (int64_t)klen;
        if ((st = nvm_value_new_str(vm, key, klen, &k)) != NVM_OK ||
            (st = nvm_value_root(vm, k)) != NVM_OK)
            goto fail;
        st = nvm_array_push_value(vm, arr, k);
        nvm_value_unroot(vm, 1);
        if (st != NVM_OK)
            goto fail;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        st = kv_db_fail(h, vm, cap);
        goto fail;
    }
    st = nvm_host_account(h, vm, total, 0);
    if (st == NVM_OK)
        *result = arr;
fail:
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    nvm_value_unroot(vm, 1);
    return st;
}

nvm_status nvm_host_install_kv(nvm_host *h, nvm_vm *vm)
{
    static const struct {
        const char *name;
        uint32_t argc;
        nvm_cap_fn fn;
    } caps[] = {
        {"kv.get", 1, kv_get},
        {"kv.set", 2, kv_set},
        {"kv.delete", 1, kv_delete},
        {"kv.list", 1, kv_list},
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        nvm_status st = nvm_vm_register_cap(vm, caps[i].name, caps[i].argc, caps[i].fn, h);
        if (st != NVM_OK)
            return st;
    }
    return NVM_OK;
}
