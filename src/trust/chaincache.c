/* chaincache.c - certificate chains already verified (chaincache.h). */
#define _GNU_SOURCE
#include "chaincache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../host/cachedir.h"

#define MAGIC "nanovm-chain 1"

/* one part of the key's input, preceded by its length (8 bytes, little-endian) */
static void key_part(nvm_sha256_ctx *h, const void *data, size_t n)
{
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    nvm_sha256_add(h, len, sizeof len);
    nvm_sha256_add(h, data, n);
}

static bool key_certs(nvm_sha256_ctx *h, const nvm_certs *c)
{
    size_t n = nvm_certs_count(c);
    key_part(h, &n, sizeof n);
    for (size_t i = 0; i < n; i++) {
        uint8_t *der = NULL;
        size_t len = 0;
        if (nvm_certs_der(c, i, &der, &len) != NVM_OK)
            return false;
        key_part(h, der, len);
        free(der);
    }
    return true;
}

bool nvm_chain_cache_key(const nvm_certs *chain, const nvm_certs *roots,
                         const uint8_t signing_pub[NVM_ED25519_PUB_LEN],
                         const char *const *revoked_serials, size_t nrevoked,
                         char hex[NVM_CHAIN_KEY_HEX])
{
    nvm_sha256_ctx *h = nvm_sha256_begin();
    if (h == NULL)
        return false;
    key_part(h, MAGIC, sizeof MAGIC);
    bool ok = key_certs(h, chain) && key_certs(h, roots);
    key_part(h, signing_pub, NVM_ED25519_PUB_LEN);
    key_part(h, &nrevoked, sizeof nrevoked);
    for (size_t i = 0; i < nrevoked; i++)
        key_part(h, revoked_serials[i] != NULL ? revoked_serials[i] : "",
                 revoked_serials[i] != NULL ? strlen(revoked_serials[i]) : 0);
    uint8_t d[NVM_SHA256_LEN];
    ok = nvm_sha256_end(h, d) && ok;
    if (ok)
        nvm_hex(d, sizeof d, hex);
    return ok;
}

static bool entry_path(const char *hex, char *path, size_t n, bool create)
{
    char dir[PATH_MAX - 128];
    if (!nvm_cache_dir(dir, sizeof dir, create, NULL, 0))
        return false;
    int k = snprintf(path, n, "%s/%s.chain", dir, hex);
    return k > 0 && (size_t)k < n;
}

bool nvm_chain_cache_get(const char *hex, int64_t now, size_t *path_len)
{
    char path[PATH_MAX];
    if (!entry_path(hex, path, sizeof path, false))
        return false;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    char text[128];
    ssize_t r = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        st.st_size < (off_t)sizeof text)
        r = read(fd, text, sizeof text - 1);
    close(fd);
    if (r <= 0)
        return false;
    text[r] = '\0';
    long long from = 0, until = 0;
    unsigned long long len = 0;
    int used = 0;
    if (sscanf(text, MAGIC " %lld %lld %llu\n%n", &from, &until, &len, &used) != 3 ||
        used != (int)r || len == 0 || len > 64 || from > until)
        return false;
    if (now < from || now > until)
        return false;
    *path_len = (size_t)len;
    return true;
}

void nvm_chain_cache_put(const char *hex, const int64_t window[2], size_t path_len)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], text[128];
    if (!entry_path(hex, path, sizeof path, true))
        return;
    int k = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    int n = snprintf(text, sizeof text, MAGIC " %" PRId64 " %" PRId64 " %zu\n", window[0],
                     window[1], path_len);
    if (k <= 0 || (size_t)k >= sizeof tmp || n <= 0 || (size_t)n >= sizeof text)
        return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    bool ok = write(fd, text, (size_t)n) == (ssize_t)n;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
}
