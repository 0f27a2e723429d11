/* crypto.c - every cryptographic operation of NanoVM, on OpenSSL 3: SHA-256, Ed25519 keys and
 * signatures (PureEdDSA, one-shot, key type pinned), X.509 certificate lists and code-signing
 * chain validation. The only file that includes OpenSSL headers. Every function leaves the
 * OpenSSL error queue empty and reports failures as a one-line reason. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "trust/crypto.h"

/* Invariant: pkey is an Ed25519 key with its private half. */
struct nvm_key {
    EVP_PKEY *pkey;
};

/* Invariant: sk holds owned references, in insertion order, each decoded in libctx (NULL:
 * OpenSSL's default library context; otherwise a verification context's, which outlives the
 * list). */
struct nvm_certs {
    STACK_OF(X509) * sk;
    OSSL_LIB_CTX *libctx;
};

/* A verification context: a private library context whose one provider ("nanovm-verify") offers
 * only the algorithms verification uses, taken unchanged from the default provider of OpenSSL's
 * default library context (which stays loaded: NanoVM never unloads it). Invariant: prov is
 * loaded in libctx; both are owned. */
struct nvm_crypto {
    OSSL_LIB_CTX *libctx;
    OSSL_PROVIDER *prov;
};

/* OpenSSL set-up, before any other OpenSSL call of this file: no error strings (loaded only when a
 * message needs one), no table of every legacy cipher and digest (algorithms are fetched from
 * the providers by name). Cuts about a third of a millisecond from every run's start-up. Nor the
 * system's openssl.cnf (about 0.1 ms to read and parse; NanoVM needs nothing it configures: the
 * default provider serves every algorithm, as it does when no configuration loads one), nor an
 * exit handler that frees OpenSSL's global state as the process ends anyway (about 0.03 ms). */
static void crypto_init(void)
{
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                            OPENSSL_INIT_NO_ADD_ALL_DIGESTS | OPENSSL_INIT_NO_LOAD_CONFIG |
                            OPENSSL_INIT_NO_ATEXIT,
                        NULL);
}

/* The digests X.509 signature checks of RSA and ECDSA certificates look up by NID in OpenSSL's
 * legacy table, which crypto_init leaves empty (Ed25519 certificates need none): added before a
 * chain verification in the default context (adding one twice replaces it). */
static void digests_init(void)
{
    const EVP_MD *const mds[] = {EVP_sha1(),     EVP_sha224(),   EVP_sha256(),
                                 EVP_sha384(),   EVP_sha512(),   EVP_sha3_224(),
                                 EVP_sha3_256(), EVP_sha3_384(), EVP_sha3_512()};
    for (size_t i = 0; i < sizeof mds / sizeof mds[0]; i++)
        EVP_add_digest(mds[i]);
}

static void set_why(char *why, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void set_why(char *why, const char *fmt, ...)
{
    if (why == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, NVM_WHY_MAX, fmt, ap);
    va_end(ap);
}

/* The reason of the oldest queued OpenSSL error (or `fallback`), then an empty queue. */
static void why_openssl(char *why, const char *what)
{
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
    unsigned long e = ERR_peek_error();
    if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        set_why(why, "%s: %s", what, r != NULL ? r : "OpenSSL error");
    } else {
        set_why(why, "%s", what);
    }
    ERR_clear_error();
}

/* ---- the verification context ----
 *
 * Why: every algorithm fetch, key decoder set-up and certificate parse in OpenSSL 3.0 builds and
 * searches the methods of every algorithm the library context offers (40 decoders, 18 key
 * managers, 22 digests in the default provider), which costs more than the cryptography of a
 * whole chain verification. The "nanovm-verify" provider re-exports, from the default provider of
 * the default library context, exactly the implementations that verifying Ed25519 signatures and
 * certificates uses. Its provider context is the default provider's own, so the implementations
 * run exactly as they do there. Anything it lacks (a CA key that is not Ed25519, say) makes the
 * verification fail in the private context, and every such failure is decided again in the
 * default context: results are those of the default context. */

/* One re-exported algorithm: operation, first name, and a property the definition must have. */
typedef struct verify_alg {
    int op;
    const char *name;
    const char *prop;
} verify_alg;

static const verify_alg verify_algs[] = {
    {OSSL_OP_DIGEST, "SHA2-256", NULL}, /* fingerprints */
    {OSSL_OP_DIGEST, "SHA1", NULL},     /* the certificate hash of X.509v3 extension caching */
    {OSSL_OP_DIGEST, "SHA2-512", NULL},
    {OSSL_OP_SIGNATURE, "ED25519", NULL},
    {OSSL_OP_KEYMGMT, "ED25519", NULL},
    {OSSL_OP_DECODER, "ED25519", "structure=SubjectPublicKeyInfo"},
    {OSSL_OP_DECODER, "DER", "structure=SubjectPublicKeyInfo"},
};

static bool verify_alg_wanted(int op, const OSSL_ALGORITHM *a)
{
    const char *names = a->algorithm_names;
    size_t first = strcspn(names, ":");
    for (size_t i = 0; i < sizeof verify_algs / sizeof verify_algs[0]; i++) {
        const verify_alg *v = &verify_algs[i];
        if (v->op != op || strlen(v->name) != first || strncmp(names, v->name, first) != 0)
            continue;
        if (v->prop == NULL ||
            (a->property_definition != NULL && strstr(a->property_definition, v->prop) != NULL))
            return true;
    }
    return false;
}

static int find_default(OSSL_PROVIDER *prov, void *arg)
{
    if (strcmp(OSSL_PROVIDER_get0_name(prov), "default") != 0)
        return 1;
    *(OSSL_PROVIDER **)arg = prov;
    return 0;
}

/* The default provider of the default library context, activated as any first fetch there would
 * (OpenSSL's fallback); NULL when that context runs without it. */
static OSSL_PROVIDER *default_provider(void)
{
    OSSL_PROVIDER *prov = NULL;
    OSSL_PROVIDER_do_all(NULL, find_default, &prov);
    return prov;
}

/* A filtered algorithm table and what it was filtered from (returned to the default provider
 * when the core is done with the table). */
typedef struct verify_table {
    OSSL_PROVIDER *from;
    int op;
    const OSSL_ALGORITHM *all;
    OSSL_ALGORITHM algs[]; /* the wanted entries of `all`, then a zero terminator */
} verify_table;

static const OSSL_ALGORITHM *verify_query(void *provctx, int op, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    OSSL_PROVIDER *d = default_provider();
    if (d == NULL)
        return NULL;
    const OSSL_ALGORITHM *all = OSSL_PROVIDER_query_operation(d, op, no_cache);
    if (all == NULL)
        return NULL;
    size_t n = 0;
    while (all[n].algorithm_names != NULL)
        n++;
    verify_table *t = calloc(1, sizeof *t + (n + 1) * sizeof t->algs[0]);
    if (t == NULL) {
        OSSL_PROVIDER_unquery_operation(d, op, all);
        return NULL;
    }
    t->from = d;
    t->op = op;
    t->all = all;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (verify_alg_wanted(op, &all[i]))
            t->algs[k++] = all[i];
    return t->algs;
}

static void verify_unquery(void *provctx, int op, const OSSL_ALGORITHM *algs)
{
    (void)provctx;
    (void)op;
    if (algs == NULL)
        return;
    verify_table *t = (verify_table *)(void *)((const char *)algs - offsetof(verify_table, algs));
    OSSL_PROVIDER_unquery_operation(t->from, t->op, t->all);
    free(t);
}

static const OSSL_DISPATCH verify_dispatch[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))verify_query},
    {OSSL_FUNC_PROVIDER_UNQUERY_OPERATION, (void (*)(void))verify_unquery},
    {0, NULL},
};

static int verify_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                                const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    OSSL_PROVIDER *d = default_provider();
    if (d == NULL)
        return 0;
    *provctx = OSSL_PROVIDER_get0_provider_ctx(d);
    *out = verify_dispatch;
    return 1;
}

nvm_crypto *nvm_crypto_new(void)
{
    crypto_init();
    nvm_crypto *cx = calloc(1, sizeof *cx);
    if (cx == NULL)
        return NULL;
    if (default_provider() == NULL || (cx->libctx = OSSL_LIB_CTX_new()) == NULL ||
        OSSL_PROVIDER_add_builtin(cx->libctx, "nanovm-verify", verify_provider_init) != 1 ||
        (cx->prov = OSSL_PROVIDER_load(cx->libctx, "nanovm-verify")) == NULL) {
        OSSL_LIB_CTX_free(cx->libctx);
        free(cx);
        ERR_clear_error();
        return NULL;
    }
    return cx;
}

void nvm_crypto_free(nvm_crypto *cx)
{
    if (cx == NULL)
        return;
    OSSL_PROVIDER_unload(cx->prov);
    OSSL_LIB_CTX_free(cx->libctx);
    free(cx);
    ERR_clear_error();
}

static OSSL_LIB_CTX *libctx_of(const nvm_crypto *cx)
{
    return cx != NULL ? cx->libctx : NULL;
}

/* ---- hashing ---- */

void nvm_sha256(const void *data, size_t len, uint8_t out[NVM_SHA256_LEN])
{
    crypto_init();
    nvm_sha256_2(NULL, 0, data, len, out);
}

nvm_status nvm_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                           uint8_t out[NVM_SHA256_LEN])
{
    crypto_init();
    static const uint8_t empty = 0;
    unsigned int n = 0;
    if (keylen > (size_t)INT32_MAX)
        return NVM_E_INTERNAL;
    /* HMAC() treats a NULL key as "reuse the previous one": always pass a real pointer */
    uint8_t *r = HMAC(EVP_sha256(), keylen > 0 ? key : &empty, (int)keylen,
                      msglen > 0 ? msg : &empty, msglen, out, &n);
    if (r == NULL || n != NVM_SHA256_LEN) {
        ERR_clear_error();
        return NVM_E_INTERNAL;
    }
    return NVM_OK;
}

struct nvm_sha256_ctx {
    EVP_MD_CTX *md;
    bool ok;
};

nvm_sha256_ctx *nvm_sha256_begin(void)
{
    crypto_init();
    nvm_sha256_ctx *h = malloc(sizeof *h);
    if (h == NULL)
        return NULL;
    h->md = EVP_MD_CTX_new();
    h->ok = h->md != NULL && EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) == 1;
    return h;
}

void nvm_sha256_add(nvm_sha256_ctx *h, const void *data, size_t len)
{
    if (h != NULL && h->ok && len > 0)
        h->ok = EVP_DigestUpdate(h->md, data, len) == 1;
}

bool nvm_sha256_end(nvm_sha256_ctx *h, uint8_t out[NVM_SHA256_LEN])
{
    unsigned int n = 0;
    bool ok = h != NULL && h->ok && EVP_DigestFinal_ex(h->md, out, &n) == 1 && n == NVM_SHA256_LEN;
    if (!ok)
        memset(out, 0, NVM_SHA256_LEN); /* only on allocation failure inside OpenSSL */
    if (h != NULL) {
        EVP_MD_CTX_free(h->md);
        free(h);
    }
    ERR_clear_error();
    return ok;
}

void nvm_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                  uint8_t out[NVM_SHA256_LEN])
{
    nvm_sha256_ctx *h = nvm_sha256_begin();
    nvm_sha256_add(h, a, alen);
    nvm_sha256_add(h, b, blen);
    nvm_sha256_end(h, out);
}

void nvm_hex(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

/* ---- keys ---- */

nvm_status nvm_key_generate(nvm_key **out, char *why)
{
    crypto_init();
    *out = NULL;
    nvm_key *k = calloc(1, sizeof *k);
    if (k == NULL) {
        set_why(why, "out of memory");
        return NVM_E_INTERNAL;
    }
    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (k->pkey == NULL) {
        free(k);
        why_openssl(why, "cannot generate an Ed25519 key");
        return NVM_E_INTERNAL;
    }
    *out = k;
    return NVM_OK;
}

nvm_status nvm_key_write_pem(const nvm_key *k, const char *path, char *why)
{
    crypto_init();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_why(why, "cannot create %s: %s", path, strerror(errno));
        return NVM_E_IO;
    }
    if (fchmod(fd, 0600) != 0) {
        set_why(why, "cannot restrict %s to its owner: %s", path, strerror(errno));
        close(fd);
        return NVM_E_IO;
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        set_why(why, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        return NVM_E_IO;
    }
    int ok = PEM_write_PrivateKey(f, k->pkey, NULL, NULL, 0, NULL, NULL) == 1;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        why_openssl(why, "cannot write the private key");
        return NVM_E_IO;
    }
    ERR_clear_error();
    return NVM_OK;
}

nvm_status nvm_key_read_pem(const char *path, nvm_key **out, char *why)
{
    crypto_init();
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_why(why, "cannot open %s: %s", path, strerror(errno));
        return NVM_E_IO;
    }
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (pkey == NULL) {
        set_why(why, "%s is not a PEM private key", path);
        ERR_clear_error();
        return NVM_E_FORMAT;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        set_why(why, "%s is not an Ed25519 private key", path);
        ERR_clear_error();
        return NVM_E_FORMAT;
    }
    nvm_key *k = calloc(1, sizeof *k);
    if (k == NULL) {
        EVP_PKEY_free(pkey);
        set_why(why, "out of memory");
        return NVM_E_INTERNAL;
    }
    k->pkey = pkey;
    *out = k;
    ERR_clear_error();
    return NVM_OK;
}

/* Raw Ed25519 public key of pkey; 0 on success. */
static int raw_pub(EVP_PKEY *pkey, uint8_t pub[NVM_ED25519_PUB_LEN])
{
    size_t n = NVM_ED25519_PUB_LEN;
    if (pkey == NULL || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(pkey, pub, &n) != 1 || n != NVM_ED25519_PUB_LEN) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

void nvm_key_public(const nvm_key *k, uint8_t pub[NVM_ED25519_PUB_LEN])
{
    if (raw_pub(k->pkey, pub) != 0)
        memset(pub, 0, NVM_ED25519_PUB_LEN);
}

void nvm_key_free(nvm_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

nvm_status nvm_pubkey_read_pem(const char *path, uint8_t pub[NVM_ED25519_PUB_LEN], char *why)
{
    crypto_init();
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_why(why, "cannot open %s: %s", path, strerror(errno));
        return NVM_E_IO;
    }
    EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (pkey == NULL) {
        set_why(why, "%s is not a PEM public key", path);
        ERR_clear_error();
        return NVM_E_FORMAT;
    }
    int rc = raw_pub(pkey, pub);
    EVP_PKEY_free(pkey);
    if (rc != 0) {
        set_why(why, "%s is not an Ed25519 public key", path);
        return NVM_E_FORMAT;
    }
    return NVM_OK;
}

/* ---- signatures ---- */

nvm_status nvm_ed25519_sign(const nvm_key *k, const uint8_t *msg, size_t len,
                            uint8_t sig[NVM_ED25519_SIG_LEN], char *why)
{
    crypto_init();
    nvm_status st = NVM_E_INTERNAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = NVM_ED25519_SIG_LEN;
    if (k == NULL || EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_ED25519) {
        set_why(why, "the signing key is not Ed25519");
        st = NVM_E_USAGE;
        goto fail;
    }
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &n, msg, len) != 1 || n != NVM_ED25519_SIG_LEN) {
        why_openssl(why, "Ed25519 signing failed");
        goto fail;
    }
    st = NVM_OK;
fail:
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return st;
}

/* NVM_OK when sig verifies in libctx, NVM_E_TRUST when it does not, NVM_E_INTERNAL when the
 * verification cannot be set up there. */
static nvm_status ed25519_verify_in(OSSL_LIB_CTX *libctx, const uint8_t pub[NVM_ED25519_PUB_LEN],
                                    const uint8_t *msg, size_t len,
                                    const uint8_t sig[NVM_ED25519_SIG_LEN], char *why)
{
    nvm_status st = NVM_E_TRUST;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_public_key_ex(libctx, "ED25519", NULL, pub, NVM_ED25519_PUB_LEN);
    if (pkey == NULL) {
        set_why(why, "invalid Ed25519 public key");
        goto fail;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestVerifyInit_ex(ctx, NULL, NULL, libctx, NULL, pkey, NULL) != 1) {
        why_openssl(why, "cannot set up Ed25519 verification");
        st = NVM_E_INTERNAL;
        goto fail;
    }
    if (EVP_DigestVerify(ctx, sig, NVM_ED25519_SIG_LEN, msg, len) != 1) {
        set_why(why, "signature does not verify");
        goto fail;
    }
    st = NVM_OK;
fail:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return st;
}

nvm_status nvm_ed25519_verify_in(const nvm_crypto *cx, const uint8_t pub[NVM_ED25519_PUB_LEN],
                                 const uint8_t *msg, size_t len,
                                 const uint8_t sig[NVM_ED25519_SIG_LEN], char *why)
{
    crypto_init();
    if (cx != NULL && ed25519_verify_in(cx->libctx, pub, msg, len, sig, NULL) == NVM_OK)
        return NVM_OK;
    /* no verification context, or a failure there: the default context decides */
    return ed25519_verify_in(NULL, pub, msg, len, sig, why);
}

nvm_status nvm_ed25519_verify(const uint8_t pub[NVM_ED25519_PUB_LEN], const uint8_t *msg,
                              size_t len, const uint8_t sig[NVM_ED25519_SIG_LEN], char *why)
{
    return nvm_ed25519_verify_in(NULL, pub, msg, len, sig, why);
}

/* ---- certificates ---- */

/* Decodes a certificate into *a (made by X509_new_ex: decoded in its library context), as
 * d2i_X509(NULL, ...) does: extensions are examined when first used, not here. On failure *a is
 * freed and set to NULL. */
static void *x509_d2i(void **a, const unsigned char **in, long len)
{
    return ASN1_item_d2i((ASN1_VALUE **)a, in, len, ASN1_ITEM_rptr(X509));
}

nvm_status nvm_certs_new_in(const nvm_crypto *cx, nvm_certs **out)
{
    crypto_init();
    *out = NULL;
    nvm_certs *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NVM_E_INTERNAL;
    c->libctx = libctx_of(cx);
    c->sk = sk_X509_new_null();
    if (c->sk == NULL) {
        free(c);
        ERR_clear_error();
        return NVM_E_INTERNAL;
    }
    *out = c;
    return NVM_OK;
}

nvm_status nvm_certs_new(nvm_certs **out)
{
    return nvm_certs_new_in(NULL, out);
}

nvm_status nvm_certs_add_pem_file(nvm_certs *c, const char *path, char *why)
{
    crypto_init();
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_why(why, "cannot open %s: %s", path, strerror(errno));
        return NVM_E_IO;
    }
    nvm_status st = NVM_OK;
    int added = 0;
    ERR_clear_error();
    for (;;) {
        X509 *x = X509_new_ex(c->libctx, NULL);
        if (x == NULL) {
            set_why(why, "out of memory");
            st = NVM_E_INTERNAL;
            break;
        }
        if (PEM_ASN1_read(x509_d2i, PEM_STRING_X509, f, (void **)&x, NULL, NULL) == NULL) {
            X509_free(x); /* NULL when the decoder has freed it */
            unsigned long e = ERR_peek_last_error();
            if (added > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM &&
                ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                break; /* end of file after at least one certificate */
            why_openssl(why, "not a PEM certificate file");
            st = NVM_E_FORMAT;
            break;
        }
        if (sk_X509_push(c->sk, x) <= 0) {
            X509_free(x);
            set_why(why, "out of memory");
            st = NVM_E_INTERNAL;
            break;
        }
        added++;
    }
    fclose(f);
    ERR_clear_error();
    if (st != NVM_OK && why != NULL) {
        char tmp[NVM_WHY_MAX];
        snprintf(tmp, sizeof tmp, "%s", why);
        set_why(why, "%s: %s", path, tmp);
    }
    return st;
}

nvm_status nvm_certs_add_der(nvm_certs *c, const uint8_t *der, size_t len, char *why)
{
    crypto_init();
    if (len == 0 || len > (size_t)INT32_MAX) {
        set_why(why, "certificate of invalid length %zu", len);
        return NVM_E_FORMAT;
    }
    const unsigned char *p = der;
    X509 *x = X509_new_ex(c->libctx, NULL);
    if (x == NULL) {
        set_why(why, "out of memory");
        return NVM_E_INTERNAL;
    }
    if (x509_d2i((void **)&x, &p, (long)len) == NULL) {
        X509_free(x); /* NULL when the decoder has freed it */
        why_openssl(why, "not a DER certificate");
        return NVM_E_FORMAT;
    }
    if ((size_t)(p - der) != len) {
        X509_free(x);
        set_why(why, "%zu bytes after the DER certificate", len - (size_t)(p - der));
        ERR_clear_error();
        return NVM_E_FORMAT;
    }
    if (sk_X509_push(c->sk, x) <= 0) {
        X509_free(x);
        set_why(why, "out of memory");
        ERR_clear_error();
        return NVM_E_INTERNAL;
    }
    return NVM_OK;
}

size_t nvm_certs_count(const nvm_certs *c)
{
    int n = c != NULL ? sk_X509_num(c->sk) : 0;
    return n > 0 ? (size_t)n : 0;
}

static X509 *cert_at(const nvm_certs *c, size_t i)
{
    if (c == NULL || i >= nvm_certs_count(c))
        return NULL;
    return sk_X509_value(c->sk, (int)i);
}

nvm_status nvm_certs_der(const nvm_certs *c, size_t i, uint8_t **der, size_t *len)
{
    *der = NULL;
    *len = 0;
    X509 *x = cert_at(c, i);
    if (x == NULL)
        return NVM_E_USAGE;
    int n = i2d_X509(x, NULL);
    if (n <= 0) {
        ERR_clear_error();
        return NVM_E_INTERNAL;
    }
    uint8_t *buf = malloc((size_t)n);
    if (buf == NULL)
        return NVM_E_INTERNAL;
    unsigned char *p = buf;
    if (i2d_X509(x, &p) != n) {
        free(buf);
        ERR_clear_error();
        return NVM_E_INTERNAL;
    }
    *der = buf;
    *len = (size_t)n;
    return NVM_OK;
}

/* RFC 2253 one-line form of a name ("CN=Demo Signer,O=NanoVM"), UTF-8 kept as is. */
static void name_line(const X509_NAME *name, char *out, size_t outlen)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        goto done;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        if (n > 0 && p != NULL) {
            size_t k = (size_t)n < outlen - 1 ? (size_t)n : outlen - 1;
            memcpy(out, p, k);
            out[k] = '\0';
        }
    }
    BIO_free(b);
done:
    ERR_clear_error();
}

static void serial_hex(const X509 *x, char *out, size_t outlen)
{
    out[0] = '\0';
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *h = bn != NULL ? BN_bn2hex(bn) : NULL;
    if (h != NULL) {
        snprintf(out, outlen, "%s", h);
        for (char *q = out; *q; q++)
            *q = (char)tolower((unsigned char)*q);
    }
    OPENSSL_free(h);
    BN_free(bn);
    ERR_clear_error();
}

static void time_iso(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
        strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outlen, "invalid");
    ERR_clear_error();
}

nvm_status nvm_certs_describe(const nvm_certs *c, size_t i, char *subject, char *serial,
                              char *not_before, char *not_after, char *fingerprint_hex)
{
    X509 *x = cert_at(c, i);
    if (x == NULL)
        return NVM_E_USAGE;
    if (subject != NULL)
        name_line(X509_get_subject_name(x), subject, 256);
    if (serial != NULL)
        serial_hex(x, serial, 256);
    if (not_before != NULL)
        time_iso(X509_get0_notBefore(x), not_before, 256);
    if (not_after != NULL)
        time_iso(X509_get0_notAfter(x), not_after, 256);
    if (fingerprint_hex != NULL) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        uint8_t *der = NULL;
        size_t len = 0;
        if (X509_digest(x, EVP_sha256(), md, &n) == 1 && n == NVM_SHA256_LEN) {
            nvm_hex(md, n, fingerprint_hex);
        } else if (c->libctx != NULL && nvm_certs_der(c, i, &der, &len) == NVM_OK) {
            /* what X509_digest hashes, in the default context */
            nvm_sha256(der, len, md);
            nvm_hex(md, NVM_SHA256_LEN, fingerprint_hex);
        } else {
            fingerprint_hex[0] = '\0';
        }
        free(der);
        ERR_clear_error();
    }
    return NVM_OK;
}

nvm_status nvm_certs_pubkey(const nvm_certs *c, size_t i, uint8_t pub[NVM_ED25519_PUB_LEN],
                            char *why)
{
    X509 *x = cert_at(c, i);
    if (x == NULL) {
        set_why(why, "no certificate %zu", i);
        return NVM_E_USAGE;
    }
    if (raw_pub(X509_get0_pubkey(x), pub) == 0)
        return NVM_OK;
    if (c->libctx != NULL) {
        /* decoded in a verification context: the default context decides */
        nvm_certs *one = NULL;
        uint8_t *der = NULL;
        size_t len = 0;
        bool ok = nvm_certs_der(c, i, &der, &len) == NVM_OK && nvm_certs_new(&one) == NVM_OK &&
                  nvm_certs_add_der(one, der, len, NULL) == NVM_OK &&
                  raw_pub(X509_get0_pubkey(cert_at(one, 0)), pub) == 0;
        free(der);
        nvm_certs_free(one);
        if (ok)
            return NVM_OK;
    }
    set_why(why, "the certificate's key is not Ed25519");
    return NVM_E_TRUST;
}

void nvm_certs_free(nvm_certs *c)
{
    if (c == NULL)
        return;
    sk_X509_pop_free(c->sk, X509_free);
    free(c);
}

/* ---- chain validation ---- */

/* "leaf certificate (CN=...)" / "intermediate certificate 1 (CN=...)" / "root ..." for messages */
static void cert_role(X509 *x, int depth, int path_len, char *out, size_t outlen)
{
    char subj[256];
    name_line(X509_get_subject_name(x), subj, sizeof subj);
    if (depth == 0)
        snprintf(out, outlen, "leaf certificate (%s)", subj);
    else if (path_len > 0 && depth == path_len - 1)
        snprintf(out, outlen, "root certificate (%s)", subj);
    else
        snprintf(out, outlen, "certificate at depth %d (%s)", depth, subj);
}

/* Serial comparison ignoring case, an optional "0x" prefix, ':' separators and leading zeros. */
static const char *serial_norm(const char *s, char *buf, size_t buflen)
{
    size_t n = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    for (; *s && n + 1 < buflen; s++) {
        if (*s == ':')
            continue;
        if (n == 0 && *s == '0')
            continue;
        buf[n++] = (char)tolower((unsigned char)*s);
    }
    buf[n] = '\0';
    return buf;
}

/* nvm_chain_verify in the library context the certificates were decoded in. */
/* the seconds since 1970 of t */
static bool asn1_epoch(const ASN1_TIME *t, int64_t *out)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;
    bool ok = epoch != NULL && t != NULL && ASN1_TIME_diff(&days, &secs, epoch, t) == 1;
    ASN1_TIME_free(epoch);
    if (ok)
        *out = (int64_t)days * 86400 + secs;
    return ok;
}

static nvm_status chain_verify(const nvm_certs *chain, const nvm_certs *roots,
                               const uint8_t signing_pub[NVM_ED25519_PUB_LEN], int64_t now,
                               const char *const *revoked_serials, size_t nrevoked,
                               size_t *path_len, int64_t window[2], char *why)
{
    nvm_status st = NVM_E_TRUST;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *untrusted = NULL;
    char role[400];

    if (path_len != NULL)
        *path_len = 0;
    if (nvm_certs_count(chain) == 0) {
        set_why(why, "no certificate chain");
        goto fail;
    }
    if (nvm_certs_count(roots) == 0) {
        set_why(why, "the policy has no trusted roots");
        goto fail;
    }
    X509 *leaf = cert_at(chain, 0);
    uint8_t leaf_pub[NVM_ED25519_PUB_LEN];
    if (raw_pub(X509_get0_pubkey(leaf), leaf_pub) != 0) {
        set_why(why, "the leaf certificate's key is not Ed25519");
        goto fail;
    }
    if (memcmp(leaf_pub, signing_pub, NVM_ED25519_PUB_LEN) != 0) {
        set_why(why, "certificate chain belongs to another key");
        goto fail;
    }

    store = X509_STORE_new();
    untrusted = sk_X509_new_null();
    ctx = X509_STORE_CTX_new_ex(chain->libctx, NULL);
    if (store == NULL || untrusted == NULL || ctx == NULL) {
        set_why(why, "out of memory");
        st = NVM_E_INTERNAL;
        goto fail;
    }
    for (size_t i = 0; i < nvm_certs_count(roots); i++)
        if (X509_STORE_add_cert(store, cert_at(roots, i)) != 1) {
            why_openssl(why, "cannot add a trusted root");
            st = NVM_E_INTERNAL;
            goto fail;
        }
    for (size_t i = 1; i < nvm_certs_count(chain); i++)
        if (sk_X509_push(untrusted, cert_at(chain, i)) <= 0) {
            set_why(why, "out of memory");
            st = NVM_E_INTERNAL;
            goto fail;
        }
    if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
        why_openssl(why, "cannot set up chain verification");
        st = NVM_E_INTERNAL;
        goto fail;
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    /* No X509_V_FLAG_X509_STRICT: it rejects roots made by a plain `openssl req -x509` (no
     * keyUsage extension), which are common and sound. Issuers must still be CA:TRUE. */
    X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
    X509_VERIFY_PARAM_set_time(param, (time_t)now);

    if (X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
        if (bad == NULL)
            bad = leaf;
        cert_role(bad, depth, -1, role, sizeof role);
        set_why(why, "%s: %s", role, X509_verify_cert_error_string(e));
        goto fail;
    }

    STACK_OF(X509) *path = X509_STORE_CTX_get0_chain(ctx);
    int n = sk_X509_num(path);
    /* the leaf: codeSigning EKU, digitalSignature key usage, not a CA */
    uint32_t flags = X509_get_extension_flags(leaf);
    if (!(flags & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(leaf) & XKU_CODE_SIGN)) {
        cert_role(leaf, 0, n, role, sizeof role);
        set_why(why, "%s: no codeSigning extended key usage", role);
        goto fail;
    }
    if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)) {
        cert_role(leaf, 0, n, role, sizeof role);
        set_why(why, "%s: no digitalSignature key usage", role);
        goto fail;
    }
    if ((flags & EXFLAG_CA) || X509_check_ca(leaf) != 0) {
        cert_role(leaf, 0, n, role, sizeof role);
        set_why(why, "%s: is a CA certificate (a code-signing leaf must be CA:FALSE)", role);
        goto fail;
    }
    /* intermediates: an EKU extension, when present, must allow code signing */
    for (int d = 1; d < n - 1; d++) {
        X509 *x = sk_X509_value(path, d);
        if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) &&
            !(X509_get_extended_key_usage(x) & (XKU_CODE_SIGN | XKU_ANYEKU))) {
            cert_role(x, d, n, role, sizeof role);
            set_why(why, "%s: extended key usage does not allow codeSigning", role);
            goto fail;
        }
    }
    /* revoked serials anywhere in the verified path */
    for (int d = 0; nrevoked > 0 && d < n; d++) {
        X509 *x = sk_X509_value(path, d);
        char ser[256], a[256], b[256];
        serial_hex(x, ser, sizeof ser);
        serial_norm(ser, a, sizeof a);
        for (size_t r = 0; r < nrevoked; r++) {
            if (revoked_serials[r] == NULL)
                continue;
            if (strcmp(a, serial_norm(revoked_serials[r], b, sizeof b)) == 0) {
                cert_role(x, d, n, role, sizeof role);
                set_why(why, "%s: serial %s is revoked", role, ser);
                goto fail;
            }
        }
    }
    /* the times between which every certificate of the path is valid */
    for (int d = 0; window != NULL && d < n; d++) {
        X509 *x = sk_X509_value(path, d);
        int64_t nb = 0, na = 0;
        if (!asn1_epoch(X509_get0_notBefore(x), &nb) || !asn1_epoch(X509_get0_notAfter(x), &na)) {
            set_why(why, "cannot read a certificate's validity");
            st = NVM_E_INTERNAL;
            goto fail;
        }
        window[0] = d == 0 || nb > window[0] ? nb : window[0];
        window[1] = d == 0 || na < window[1] ? na : window[1];
    }
    if (path_len != NULL)
        *path_len = (size_t)n;
    st = NVM_OK;
fail:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted); /* references are borrowed from `chain` */
    X509_STORE_free(store);
    ERR_clear_error();
    return st;
}

/* The same certificates decoded again in the default library context (into *out). */
static nvm_status certs_in_default(const nvm_certs *in, nvm_certs **out)
{
    *out = NULL;
    nvm_status st = nvm_certs_new(out);
    for (size_t i = 0; st == NVM_OK && i < nvm_certs_count(in); i++) {
        uint8_t *der = NULL;
        size_t len = 0;
        st = nvm_certs_der(in, i, &der, &len);
        if (st == NVM_OK)
            st = nvm_certs_add_der(*out, der, len, NULL);
        free(der);
    }
    if (st != NVM_OK) {
        nvm_certs_free(*out);
        *out = NULL;
    }
    return st;
}

nvm_status nvm_chain_verify(const nvm_certs *chain, const nvm_certs *roots,
                            const uint8_t signing_pub[NVM_ED25519_PUB_LEN], int64_t now,
                            const char *const *revoked_serials, size_t nrevoked, size_t *path_len,
                            int64_t window[2], char *why)
{
    crypto_init();
    OSSL_LIB_CTX *cl = chain != NULL ? chain->libctx : NULL;
    OSSL_LIB_CTX *rl = roots != NULL ? roots->libctx : NULL;
    if (cl == NULL && rl == NULL) {
        digests_init();
        return chain_verify(chain, roots, signing_pub, now, revoked_serials, nrevoked, path_len,
                            window, why);
    }
    if (cl == rl && chain_verify(chain, roots, signing_pub, now, revoked_serials, nrevoked,
                                 path_len, window, NULL) == NVM_OK)
        return NVM_OK;
    /* a failure in a verification context (or mixed contexts): the default context decides */
    digests_init();
    nvm_certs *c2 = NULL, *r2 = NULL;
    nvm_status st = certs_in_default(chain, &c2);
    if (st == NVM_OK)
        st = certs_in_default(roots, &r2);
    if (st == NVM_OK) {
        if (why != NULL)
            why[0] = '\0';
        st = chain_verify(c2, r2, signing_pub, now, revoked_serials, nrevoked, path_len, window,
                          why);
    } else {
        set_why(why, "cannot decode the certificates again");
        st = NVM_E_INTERNAL;
    }
    nvm_certs_free(c2);
    nvm_certs_free(r2);
    return st;
}

nvm_status nvm_random_bytes(uint8_t *out, size_t len)
{
    crypto_init();
    if (len > (size_t)INT32_MAX || RAND_bytes(out, (int)len) != 1) {
        ERR_clear_error();
        return NVM_E_INTERNAL;
    }
    return NVM_OK;
}
