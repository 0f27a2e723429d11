/* assess.c - the trust decision (levels as DESIGN.md section 3 and docs/policy.md define them)
 * and the rollback state.
 *
 * Rollback state: STATE_DIR/rollback.json = {"entries": {"NAME@SIGNER": "SEMVER", ...}} where
 * SIGNER is the hex SHA-256 of the signing key, or "unsigned". It holds the highest version that
 * ran per (name, signer); it is replaced atomically (temp file + fsync + rename) under an flock
 * on STATE_DIR/rollback.lock. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* flock */
#endif
#include "assess.h"
#include "chaincache.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

static void add_reason(nvm_decision *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void add_reason(nvm_decision *d, const char *fmt, ...)
{
    if (d->nreasons == NVM_MAX_REASONS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reasons[d->nreasons], sizeof d->reasons[0], fmt, ap);
    va_end(ap);
    if (d->nreasons == NVM_MAX_REASONS - 1)
        snprintf(d->reasons[d->nreasons], sizeof d->reasons[0], "(further reasons omitted)");
    d->nreasons++;
}

static bool in_list(char *const *list, size_t n, const char *hex)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], hex) == 0)
            return true;
    return false;
}

/* Serial numbers compare as hex digits only, case-insensitive, leading zeros ignored. */
static void norm_serial(const char *in, char *out, size_t outlen)
{
    size_t k = 0;
    for (; *in && k + 1 < outlen; in++) {
        if (!isxdigit((unsigned char)*in))
            continue;
        if (k == 0 && *in == '0')
            continue;
        out[k++] = (char)tolower((unsigned char)*in);
    }
    out[k] = '\0';
}

static bool serial_revoked(const nvm_policy *p, const char *serial)
{
    char a[160], b[160];
    norm_serial(serial, a, sizeof a);
    for (size_t i = 0; i < p->nrevoked_serials; i++) {
        norm_serial(p->revoked_serials[i], b, sizeof b);
        if (strcmp(a, b) == 0)
            return true;
    }
    return false;
}

static void rollback_key(const nvm_manifest *m, const nvm_decision *d, char *out, size_t n)
{
    snprintf(out, n, "%s@%s", m->name, d->signer_key[0] ? d->signer_key : "unsigned");
}

static char *rollback_path(const char *state_dir, const char *leaf)
{
    size_t n = strlen(state_dir) + strlen(leaf) + 2;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s/%s", state_dir, leaf);
    return s;
}

/* Loads the rollback state: a new empty object when the file is absent; NULL with *corrupt when
 * it cannot be read or parsed. */
static json_t *rollback_load(const char *path, bool *corrupt)
{
    *corrupt = false;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (access(path, F_OK) != 0 && errno == ENOENT)
            return json_pack("{s:{}}", "entries");
        *corrupt = true;
        return NULL;
    }
    if (!json_is_object(json_object_get(root, "entries"))) {
        json_decref(root);
        *corrupt = true;
        return NULL;
    }
    return root;
}

static void assess_signature(const nvm_capsule *c, const nvm_policy *p, nvm_decision *d,
                             bool *sig_ok)
{
    char why[NVM_WHY_MAX] = "";
    *sig_ok = false;
    if (!c->has_signature) {
        d->level = NVM_LEVEL_SANDBOXED;
        add_reason(d, "unsigned");
        return;
    }
    nvm_status st;
    if (c->sig_alg != 1) {
        st = NVM_E_TRUST;
        snprintf(why, sizeof why, "unknown signature algorithm %u", (unsigned)c->sig_alg);
    } else {
        uint8_t dig[NVM_SHA256_LEN];
        nvm_capsule_signed_digest(c, dig);
        st = nvm_ed25519_verify_in(p->crypto, c->pubkey, dig, sizeof dig, c->signature, why);
        if (st != NVM_OK && why[0] == '\0')
            snprintf(why, sizeof why, "signature does not verify");
    }
    if (st != NVM_OK) {
        if (p->invalid_signature_sandbox) {
            d->level = NVM_LEVEL_SANDBOXED;
            add_reason(d,
                       "invalid signature (%s): treated as unsigned (on_invalid_signature: "
                       "sandbox)",
                       why);
        } else {
            d->level = NVM_LEVEL_REJECTED;
            add_reason(d, "invalid signature: %s", why);
        }
        return;
    }
    *sig_ok = true;
    uint8_t kh[NVM_SHA256_LEN];
    nvm_sha256(c->pubkey, sizeof c->pubkey, kh);
    nvm_hex(kh, sizeof kh, d->signer_key);
}

static bool is_pinned(const nvm_capsule *c, const nvm_policy *p)
{
    for (size_t i = 0; i < p->npinned; i++)
        if (memcmp(p->pinned[i], c->pubkey, NVM_ED25519_PUB_LEN) == 0)
            return true;
    return false;
}

/* Signed capsule: revocation, chain, pins. */
static nvm_status assess_identity(const nvm_capsule *c, const nvm_policy *p, int64_t now,
                                  nvm_decision *d, nvm_error *err)
{
    char why[NVM_WHY_MAX] = "";
    bool pinned = is_pinned(c, p);
    if (in_list(p->revoked_keys, p->nrevoked_keys, d->signer_key)) {
        d->level = NVM_LEVEL_REJECTED;
        add_reason(d, "signer key %s is revoked", d->signer_key);
        return NVM_OK;
    }
    if (c->ncerts == 0) {
        d->level = NVM_LEVEL_VERIFIED;
        add_reason(d, "valid signature, no certificate chain");
        if (pinned)
            add_reason(d, "signer key is pinned by the policy");
        return NVM_OK;
    }
    nvm_certs *chain = NULL;
    nvm_status st = nvm_certs_new_in(p->crypto, &chain);
    if (st != NVM_OK) {
        if (err != NULL) {
            memset(err, 0, sizeof *err);
            err->status = st;
            snprintf(err->message, sizeof err->message, "out of memory");
        }
        return st;
    }
    for (size_t i = 0; i < c->ncerts; i++) {
        why[0] = '\0';
        if (nvm_certs_add_der(chain, c->certs[i].p, c->certs[i].len, why) != NVM_OK) {
            d->level = NVM_LEVEL_REJECTED;
            add_reason(d, "certificate %zu cannot be parsed: %s", i, why);
            goto done;
        }
        if (d->nchain < sizeof d->chain / sizeof d->chain[0]) {
            nvm_chain_entry *e = &d->chain[d->nchain];
            if (nvm_certs_describe(chain, i, e->subject, e->serial, e->not_before, e->not_after,
                                   e->fingerprint) == NVM_OK)
                d->nchain++;
        }
    }
    if (d->nchain > 0)
        snprintf(d->signer_subject, sizeof d->signer_subject, "%s", d->chain[0].subject);
    uint8_t leafkey[NVM_ED25519_PUB_LEN];
    why[0] = '\0';
    if (nvm_certs_pubkey(chain, 0, leafkey, why) != NVM_OK ||
        memcmp(leafkey, c->pubkey, sizeof leafkey) != 0) {
        d->level = NVM_LEVEL_REJECTED;
        add_reason(d, "certificate chain belongs to another key%s%s", why[0] ? ": " : "", why);
        goto done;
    }
    for (size_t i = 0; i < d->nchain; i++)
        if (serial_revoked(p, d->chain[i].serial)) {
            d->level = NVM_LEVEL_REJECTED;
            add_reason(d, "certificate serial %s (%s) is revoked", d->chain[i].serial,
                       d->chain[i].subject);
            goto done;
        }
    bool verified = false;
    if (p->roots == NULL || nvm_certs_count(p->roots) == 0) {
        snprintf(why, sizeof why, "the policy has no trust roots");
    } else {
        size_t path_len = 0;
        why[0] = '\0';
        const char *const *rs = (const char *const *)p->revoked_serials;
        /* a verification of these certificates, roots and revocations done before (chaincache.h)
         * stands while every certificate of the path is valid */
        char ck[NVM_CHAIN_KEY_HEX];
        bool keyed = nvm_chain_cache_key(chain, p->roots, c->pubkey, rs, p->nrevoked_serials, ck);
        bool cached = keyed && nvm_chain_cache_get(ck, now, &path_len);
        int64_t window[2] = {0, 0};
        st = cached ? NVM_OK
                    : nvm_chain_verify(chain, p->roots, c->pubkey, now, rs, p->nrevoked_serials,
                                       &path_len, window, why);
        if (st == NVM_OK && keyed && !cached)
            nvm_chain_cache_put(ck, window, path_len);
        if (st == NVM_OK) {
            verified = true;
            d->level = NVM_LEVEL_TRUSTED;
            add_reason(d, "certificate chain verified to a trusted root (%zu certificates%s)",
                       path_len, cached ? "; verified before, from the cache" : "");
        } else if (strstr(why, "revoked") != NULL) {
            d->level = NVM_LEVEL_REJECTED;
            add_reason(d, "%s", why);
            goto done;
        }
    }
    if (!verified) {
        if (why[0] == '\0')
            snprintf(why, sizeof why, "chain does not verify");
        add_reason(d, "certificate chain not accepted: %s", why);
        if (pinned) {
            d->level = NVM_LEVEL_VERIFIED;
            add_reason(d, "signer key is pinned by the policy");
        } else {
            d->level = NVM_LEVEL_RESTRICTED;
        }
    } else if (pinned) {
        add_reason(d, "signer key is pinned by the policy");
    }
done:
    nvm_certs_free(chain);
    return NVM_OK;
}

static void assess_rollback(const nvm_manifest *m, const nvm_policy *p, nvm_decision *d)
{
    if (p->state_dir == NULL || d->level == NVM_LEVEL_REJECTED)
        return;
    char *path = rollback_path(p->state_dir, "rollback.json");
    if (path == NULL) {
        d->level = NVM_LEVEL_REJECTED;
        add_reason(d, "out of memory reading the rollback state");
        return;
    }
    bool corrupt;
    json_t *root = rollback_load(path, &corrupt);
    if (root == NULL) {
        d->level = NVM_LEVEL_REJECTED;
        add_reason(d, "rollback state %s is unreadable or corrupt", path);
        free(path);
        return;
    }
    char key[256];
    rollback_key(m, d, key, sizeof key);
    json_t *v = json_object_get(json_object_get(root, "entries"), key);
    nvm_semver seen;
    if (json_is_string(v) && nvm_semver_parse(json_string_value(v), &seen) == NVM_OK &&
        nvm_semver_cmp(&m->version, &seen) < 0) {
        d->level = NVM_LEVEL_REJECTED;
        add_reason(d, "rollback: version %s < %s already run", m->version_text,
                   json_string_value(v));
    }
    json_decref(root);
    free(path);
}

static void assess_caps(const nvm_manifest *m, const nvm_policy *p, nvm_decision *d)
{
    if (d->level == NVM_LEVEL_REJECTED)
        return;
    if (d->level > NVM_LEVEL_RESTRICTED) {
        nvm_trust_level was = d->level;
        for (size_t i = 0; i < m->ncaps; i++)
            if (!nvm_level_allows(p, was, &m->caps[i])) {
                d->level = NVM_LEVEL_RESTRICTED;
                add_reason(d, "capability %s exceeds the %s ceiling", m->caps[i].text,
                           nvm_level_name(was));
            }
        if (d->level != was)
            add_reason(d, "lowered from %s to restricted", nvm_level_name(was));
    }
    if (d->level == NVM_LEVEL_RESTRICTED)
        for (size_t i = 0; i < m->ncaps; i++)
            if (!nvm_level_allows(p, d->level, &m->caps[i]))
                add_reason(d, "capability %s refused at restricted", m->caps[i].text);
}

static int64_t lmin(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

nvm_status nvm_assess(const nvm_capsule *c, const nvm_manifest *m, const nvm_policy *p, int64_t now,
                      nvm_decision *out, nvm_error *err)
{
    nvm_decision *d = out;
    memset(d, 0, sizeof *d);
    d->level = NVM_LEVEL_REJECTED;
    nvm_hex(c->digest, sizeof c->digest, d->capsule_digest);
    snprintf(d->tier, sizeof d->tier, "interp");
    d->limits = (nvm_limits){-1, -1, -1, -1};

    bool sig_ok = false;
    assess_signature(c, p, d, &sig_ok);
    if (sig_ok) {
        nvm_status st = assess_identity(c, p, now, d, err);
        if (st != NVM_OK)
            return st;
    }
    if (in_list(p->revoked_capsules, p->nrevoked_capsules, d->capsule_digest)) {
        d->level = NVM_LEVEL_REJECTED;
        add_reason(d, "capsule %s is revoked", d->capsule_digest);
    }
    assess_rollback(m, p, d);
    assess_caps(m, p, d);
    if (d->level != NVM_LEVEL_REJECTED && d->level < p->min_level) {
        add_reason(d, "%s is below the policy's minimum level %s", nvm_level_name(d->level),
                   nvm_level_name(p->min_level));
        d->level = NVM_LEVEL_REJECTED;
    }
    d->may_run = d->level != NVM_LEVEL_REJECTED;
    if (d->may_run) {
        const nvm_limits *pl = &p->levels[d->level].limits;
        d->limits.gas = lmin(m->limits.gas, pl->gas);
        d->limits.memory = lmin(m->limits.memory, pl->memory);
        d->limits.stack = lmin(m->limits.stack, pl->stack);
        d->limits.wall_ms = lmin(m->limits.wall_ms, pl->wall_ms);
        d->unmetered = d->level == NVM_LEVEL_TRUSTED && p->levels[d->level].unmetered &&
                       d->limits.gas < 0 && d->limits.wall_ms < 0;
    }
    return NVM_OK;
}

static nvm_status rerr(nvm_error *err, nvm_status st, const char *what, const char *path)
{
    if (err != NULL) {
        memset(err, 0, sizeof *err);
        err->status = st;
        snprintf(err->message, sizeof err->message, "%s %s: %s", what, path,
                 errno ? strerror(errno) : "invalid contents");
    }
    return st;
}

nvm_status nvm_rollback_record(const nvm_policy *p, const nvm_manifest *m, const nvm_decision *d,
                               nvm_error *err)
{
    if (p->state_dir == NULL || !d->may_run)
        return NVM_OK;
    nvm_status st = NVM_OK;
    char *path = rollback_path(p->state_dir, "rollback.json");
    char *lock = rollback_path(p->state_dir, "rollback.lock");
    char *tmp = rollback_path(p->state_dir, "rollback.json.tmp");
    json_t *root = NULL;
    char *text = NULL;
    int lfd = -1;
    if (path == NULL || lock == NULL || tmp == NULL) {
        errno = ENOMEM;
        st = rerr(err, NVM_E_INTERNAL, "cannot record the rollback state in", p->state_dir);
        goto done;
    }
    if (mkdir(p->state_dir, 0700) != 0 && errno != EEXIST) {
        st = rerr(err, NVM_E_IO, "cannot create the state directory", p->state_dir);
        goto done;
    }
    lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
        st = rerr(err, NVM_E_IO, "cannot lock", lock);
        goto done;
    }
    bool corrupt;
    errno = 0;
    root = rollback_load(path, &corrupt);
    if (root == NULL) {
        st = rerr(err, NVM_E_IO, "cannot read the rollback state", path);
        goto done;
    }
    char key[256];
    rollback_key(m, d, key, sizeof key);
    json_t *entries = json_object_get(root, "entries");
    json_t *v = json_object_get(entries, key);
    nvm_semver seen;
    if (json_is_string(v) && nvm_semver_parse(json_string_value(v), &seen) == NVM_OK &&
        nvm_semver_cmp(&m->version, &seen) <= 0)
        goto done; /* already at or above this version */
    if (json_object_set_new(entries, key, json_string(m->version_text)) != 0 ||
        (text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
        errno = ENOMEM;
        st = rerr(err, NVM_E_INTERNAL, "cannot update the rollback state", path);
        goto done;
    }
    size_t n = strlen(text);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok =
        fd >= 0 && write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok) {
        st = rerr(err, NVM_E_IO, "cannot write", tmp);
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = rerr(err, NVM_E_IO, "cannot replace", path);
        unlink(tmp);
        goto done;
    }
    int dfd = open(p->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
done:
    if (lfd >= 0)
        close(lfd);
    free(text);
    json_decref(root);
    free(path);
    free(lock);
    free(tmp);
    return st;
}
