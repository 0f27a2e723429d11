/* capsule.h - the .cap container: build, sign, open (mmap, zero-copy) and parse.
 *
 * Layout (docs/capsule-format.md is the byte-by-byte reference; all integers little-endian):
 *   header (40 bytes): magic "NVMCAP\r\n" (8) | u16 version (1) | u16 flags (0) |
 *                      u32 section count | u64 signed_len | u64 reserved (0) | u64 reserved (0)
 *   section table: count x 24 bytes: u32 type | u32 flags (bit 0: critical) | u64 offset | u64
 * length section bodies (8-byte aligned, in table order, no gaps other than alignment padding of
 * zeros, no overlaps) signature block (optional): starts exactly at signed_len and runs to the end
 * of the file. signed_len covers the header, the table and every section; the signature is Ed25519
 * over SHA-256("NanoVM capsule signature v1\0" || bytes[0, signed_len)). Signature block: magic
 * "NVMSIG1\0" (8) | u8 algorithm (1 = Ed25519) | 7 zero bytes | public key (32) | signature (64) |
 * u32 certificate count | per certificate: u32 length | DER. Nothing may follow the last
 * certificate. Section types: 1 manifest (JSON, exactly one), 2 bytecode module (exactly one), 3
 * asset (u32 name length | name (UTF-8, no NUL, no '/', unique) | data; any number). Unknown types
 *   with the critical flag are rejected; unknown non-critical ones are ignored.
 * An unsigned capsule has signed_len == file length.
 */
#ifndef NVM_CAPSULE_H
#define NVM_CAPSULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"
#include "crypto.h"

#define NVM_CAP_MAGIC "NVMCAP\r\n"
#define NVM_CAP_VERSION 1
#define NVM_CAP_HEADER_LEN 40
#define NVM_CAP_SECTION_ENTRY_LEN 24
#define NVM_CAP_SIG_MAGIC "NVMSIG1"
#define NVM_CAP_SIG_FIXED_LEN 116 /* signature block up to and including the cert count */
#define NVM_CAP_MAX_SECTIONS 1024
#define NVM_CAP_MAX_CERTS 8
#define NVM_CAP_MAX_CERT_LEN 65536
#define NVM_CAP_MAX_ASSET_NAME 255
#define NVM_CAP_SIG_DOMAIN "NanoVM capsule signature v1" /* hashed with its NUL */

enum { NVM_SEC_MANIFEST = 1, NVM_SEC_BYTECODE = 2, NVM_SEC_ASSET = 3 };
#define NVM_SEC_CRITICAL 1u

typedef struct nvm_span {
    const uint8_t *p; /* points into the mapped file */
    size_t len;
} nvm_span;

typedef struct nvm_asset {
    nvm_span name;
    nvm_span data;
} nvm_asset;

/* A parsed capsule. Every span points into `data` (the mapping); nothing is copied. */
typedef struct nvm_capsule {
    const uint8_t *data;
    size_t len;
    void *map_base; /* non-NULL when the file is mmap'ed (nvm_capsule_close unmaps) */
    size_t map_len;
    uint16_t version;
    nvm_span manifest;
    nvm_span bytecode;
    nvm_asset *assets; /* malloc'ed array */
    size_t nassets;
    size_t signed_len;
    bool has_signature;
    uint8_t sig_alg;
    uint8_t pubkey[NVM_ED25519_PUB_LEN];
    uint8_t signature[NVM_ED25519_SIG_LEN];
    nvm_span *certs; /* DER, leaf first; malloc'ed array */
    size_t ncerts;
    uint8_t digest[NVM_SHA256_LEN]; /* SHA-256 of the whole file: the capsule's identity */
} nvm_capsule;

/* Parse a buffer (not copied; must outlive the capsule). NVM_E_FORMAT with a reason in err. */
nvm_status nvm_capsule_parse(const uint8_t *data, size_t len, nvm_capsule *out, nvm_error *err);
/* mmap a file read-only and parse it. */
nvm_status nvm_capsule_open(const char *path, nvm_capsule *out, nvm_error *err);
void nvm_capsule_close(nvm_capsule *c);
/* The digest the signature covers: SHA-256(domain || data[0, signed_len)). */
void nvm_capsule_signed_digest(const nvm_capsule *c, uint8_t out[NVM_SHA256_LEN]);

/* The section table of a parsed capsule, entry by entry (i < nvm_capsule_section_count), in
 * file order, including ignored unknown sections. */
typedef struct nvm_section_info {
    uint32_t type;
    uint32_t flags;
    uint64_t offset;
    uint64_t length;
} nvm_section_info;
size_t nvm_capsule_section_count(const nvm_capsule *c);
void nvm_capsule_section_get(const nvm_capsule *c, size_t i, nvm_section_info *out);
/* "manifest", "bytecode", "asset" or "unknown". */
const char *nvm_capsule_section_type_name(uint32_t type);

/* Build an unsigned capsule in memory (malloc'ed *out, caller frees). */
nvm_status nvm_capsule_build(const uint8_t *manifest, size_t manifest_len, const uint8_t *bytecode,
                             size_t bytecode_len, const nvm_asset *assets, size_t nassets,
                             uint8_t **out, size_t *out_len, nvm_error *err);
/* Sign: returns a new buffer = c's signed bytes + a signature block (replacing any existing
 * one) with the key and the optional chain (leaf first). */
nvm_status nvm_capsule_sign(const nvm_capsule *c, const nvm_key *key, const nvm_certs *chain,
                            uint8_t **out, size_t *out_len, nvm_error *err);

#endif
