/* crypto.h - every cryptographic operation NanoVM performs. crypto.c is the ONLY file that
 * includes OpenSSL headers; everything else sees these opaque types and byte arrays.
 * All functions return NVM_OK or a status with a one-line reason in `why` (may be NULL),
 * never print, never abort. */
#ifndef NVM_CRYPTO_H
#define NVM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"

#define NVM_ED25519_PUB_LEN 32
#define NVM_ED25519_SIG_LEN 64
#define NVM_SHA256_LEN 32
#define NVM_WHY_MAX 256

typedef struct nvm_key nvm_key;       /* an Ed25519 private key */
typedef struct nvm_certs nvm_certs;   /* an ordered list of X.509 certificates */
typedef struct nvm_crypto nvm_crypto; /* a verification context (below) */

/* A verification context: a private OpenSSL library context offering only the algorithms that
 * verifying Ed25519 signatures and certificate chains uses, the default provider's own
 * implementations. Work done in it gives the same results as in OpenSSL's default library
 * context (every failure there is decided again in the default context), without building the
 * methods of every other algorithm first. NULL when it cannot be made (callers then pass NULL:
 * the default context). It must outlive the certificate lists made in it. */
nvm_crypto *nvm_crypto_new(void);
void nvm_crypto_free(nvm_crypto *cx);

/* SHA-256 of one buffer, and of a domain-separation label followed by a buffer. */
void nvm_sha256(const void *data, size_t len, uint8_t out[NVM_SHA256_LEN]);
void nvm_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                  uint8_t out[NVM_SHA256_LEN]);
/* SHA-256 of data given in parts: begin (NULL when out of memory), add each part, then end, which
 * writes the digest, frees the state and says whether OpenSSL computed it (else out is zeros). */
typedef struct nvm_sha256_ctx nvm_sha256_ctx;
nvm_sha256_ctx *nvm_sha256_begin(void);
void nvm_sha256_add(nvm_sha256_ctx *h, const void *data, size_t len);
bool nvm_sha256_end(nvm_sha256_ctx *h, uint8_t out[NVM_SHA256_LEN]);
/* HMAC-SHA-256 (RFC 2104) of msg under key; NVM_E_INTERNAL only when OpenSSL fails. */
nvm_status nvm_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                           uint8_t out[NVM_SHA256_LEN]);
/* Lower-case hex of a buffer into out (2*len+1 bytes). */
void nvm_hex(const uint8_t *data, size_t len, char *out);

/* Keys: generate, write as PKCS#8 PEM (0600), read PKCS#8 PEM; raw public key bytes. */
nvm_status nvm_key_generate(nvm_key **out, char *why);
nvm_status nvm_key_write_pem(const nvm_key *k, const char *path, char *why);
nvm_status nvm_key_read_pem(const char *path, nvm_key **out, char *why);
void nvm_key_public(const nvm_key *k, uint8_t pub[NVM_ED25519_PUB_LEN]);
void nvm_key_free(nvm_key *k);
/* Read a PEM public key (SubjectPublicKeyInfo) and return its raw Ed25519 bytes. */
nvm_status nvm_pubkey_read_pem(const char *path, uint8_t pub[NVM_ED25519_PUB_LEN], char *why);

/* Ed25519 (PureEdDSA, one-shot, NULL digest, key type pinned). */
nvm_status nvm_ed25519_sign(const nvm_key *k, const uint8_t *msg, size_t len,
                            uint8_t sig[NVM_ED25519_SIG_LEN], char *why);
/* NVM_OK when valid; NVM_E_TRUST when not. */
nvm_status nvm_ed25519_verify(const uint8_t pub[NVM_ED25519_PUB_LEN], const uint8_t *msg,
                              size_t len, const uint8_t sig[NVM_ED25519_SIG_LEN], char *why);
/* The same, in the verification context cx (NULL: the default context). */
nvm_status nvm_ed25519_verify_in(const nvm_crypto *cx, const uint8_t pub[NVM_ED25519_PUB_LEN],
                                 const uint8_t *msg, size_t len,
                                 const uint8_t sig[NVM_ED25519_SIG_LEN], char *why);

/* Certificates. A list decodes its certificates in the verification context it was made in
 * (nvm_certs_new: the default context). */
nvm_status nvm_certs_new(nvm_certs **out);
nvm_status nvm_certs_new_in(const nvm_crypto *cx, nvm_certs **out);
/* Append every certificate of a PEM file (in file order). */
nvm_status nvm_certs_add_pem_file(nvm_certs *c, const char *path, char *why);
/* Append one DER certificate. */
nvm_status nvm_certs_add_der(nvm_certs *c, const uint8_t *der, size_t len, char *why);
size_t nvm_certs_count(const nvm_certs *c);
/* DER of certificate i; *der is allocated with malloc and freed by the caller with free(). */
nvm_status nvm_certs_der(const nvm_certs *c, size_t i, uint8_t **der, size_t *len);
/* One-line subject ("CN=Demo Signer,O=NanoVM"), serial (hex), notBefore/notAfter (ISO 8601),
 * SHA-256 fingerprint of the DER (hex). Buffers of at least 256 bytes. */
nvm_status nvm_certs_describe(const nvm_certs *c, size_t i, char *subject, char *serial_hex,
                              char *not_before, char *not_after, char *fingerprint_hex);
/* Raw Ed25519 public key of certificate i (NVM_E_TRUST when the key is not Ed25519). */
nvm_status nvm_certs_pubkey(const nvm_certs *c, size_t i, uint8_t pub[NVM_ED25519_PUB_LEN],
                            char *why);
void nvm_certs_free(nvm_certs *c);

/* Chain validation: `chain` is leaf first then intermediates (from the capsule), `roots` are the
 * policy's trust anchors. X509_STORE with no partial chains, validity checked at `now` (seconds
 * since the epoch), then our own code-signing checks, because OpenSSL 3.0 has no code-signing
 * purpose: the leaf has the codeSigning EKU, the digitalSignature key usage, and is not a CA
 * (basicConstraints CA:FALSE or absent); every intermediate that has an EKU extension allows
 * codeSigning (or anyExtendedKeyUsage); the leaf's key equals `signing_pub`.
 * Revoked serials (hex, case-insensitive) of any certificate in the verified path reject it.
 * On success NVM_OK, *path_len = number of certificates in the verified path (leaf..root) and
 * window (may be NULL) = the first and last second (since 1970) at which every certificate of
 * the path is valid. On failure NVM_E_TRUST with the reason. */
nvm_status nvm_chain_verify(const nvm_certs *chain, const nvm_certs *roots,
                            const uint8_t signing_pub[NVM_ED25519_PUB_LEN], int64_t now,
                            const char *const *revoked_serials, size_t nrevoked, size_t *path_len,
                            int64_t window[2], char *why);

/* Cryptographically secure random bytes. */
nvm_status nvm_random_bytes(uint8_t *out, size_t len);

#endif
