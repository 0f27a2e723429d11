/* chaincache.h - certificate chains already verified, remembered in the cache directory.
 *
 * A chain verification (nvm_chain_verify: two or more Ed25519 signature checks and the X.509
 * rules) depends on the chain, the policy's roots, the revoked serials, the signing key and the
 * time. An entry <key>.chain in the cache directory (cachedir.h), where key is the SHA-256 of
 * all of those but the time, records that the verification succeeded, the path's length and the
 * times between which every certificate of the path is valid; it stands for the verification
 * while the time is in that window. The directory is trusted as the compiled AOT objects in it
 * are: owned by the user and writable by nobody else, else nothing is read or written there. */
#ifndef NVM_TRUST_CHAINCACHE_H
#define NVM_TRUST_CHAINCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

#define NVM_CHAIN_KEY_HEX (2 * NVM_SHA256_LEN + 1)

/* The key of a verification into hex; false when out of memory or a certificate cannot be
 * encoded (then there is no cache entry). */
bool nvm_chain_cache_key(const nvm_certs *chain, const nvm_certs *roots,
                         const uint8_t signing_pub[NVM_ED25519_PUB_LEN],
                         const char *const *revoked_serials, size_t nrevoked,
                         char hex[NVM_CHAIN_KEY_HEX]);

/* Whether an entry for key says the chain verified and `now` is in its window (*path_len: the
 * path's length then). A missing, unreadable or malformed entry is no entry. */
bool nvm_chain_cache_get(const char *hex, int64_t now, size_t *path_len);

/* Records a successful verification (best effort: a failure to write leaves no entry). */
void nvm_chain_cache_put(const char *hex, const int64_t window[2], size_t path_len);

#endif
