/* capsule.c - the .cap container: parse (zero-copy, every offset and length checked), open by
 * mmap, build, sign, and the digest the signature covers. The layout is in capsule.h and
 * docs/capsule-format.md. A capsule has exactly one canonical byte form for its content: bodies
 * in table order, each at the next 8-byte boundary, zero padding, nothing unaccounted for. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "isa/module.h"
#include "trust/capsule.h"

#define SIG_DOMAIN_LEN (sizeof NVM_CAP_SIG_DOMAIN) /* with its NUL */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* a + b into *r; false on overflow */
static bool add_ok(size_t a, size_t b, size_t *r)
{
    if (a > SIZE_MAX - b)
        return false;
    *r = a + b;
    return true;
}

/* next multiple of 8 of a; false on overflow */
static bool align8_ok(size_t a, size_t *r)
{
    if (a > SIZE_MAX - 7)
        return false;
    *r = (a + 7) & ~(size_t)7;
    return true;
}

const char *nvm_capsule_section_type_name(uint32_t type)
{
    switch (type) {
    case NVM_SEC_MANIFEST: return "manifest";
    case NVM_SEC_BYTECODE: return "bytecode";
    case NVM_SEC_ASSET: return "asset";
    default: return "unknown";
    }
}

/* UTF-8 without NUL or '/', not "." or "..", 1..NVM_CAP_MAX_ASSET_NAME bytes; NULL when valid,
 * else what is wrong. */
static const char *asset_name_problem(const uint8_t *s, size_t n)
{
    if (n == 0)
        return "is empty";
    if (n > NVM_CAP_MAX_ASSET_NAME)
        return "is longer than 255 bytes";
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return "is \".\" or \"..\"";
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        if (b == 0)
            return "contains a NUL byte";
        if (b == '/')
            return "contains '/'";
        size_t k;
        uint32_t cp;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            k = 1;
            cp = b & 0x1Fu;
        } else if ((b & 0xF0) == 0xE0) {
            k = 2;
            cp = b & 0x0Fu;
        } else if ((b & 0xF8) == 0xF0) {
            k = 3;
            cp = b & 0x07u;
        } else {
            return "is not valid UTF-8";
        }
        if (k > n - i - 1)
            return "is not valid UTF-8";
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return "is not valid UTF-8";
            cp = cp << 6 | (s[i + j] & 0x3Fu);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return "is not valid UTF-8";
        i += k + 1;
    }
    return NULL;
}

static nvm_status fmt_err(nvm_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static nvm_status fmt_err(nvm_error *err, const char *fmt, ...)
{
    if (err != NULL) {
        char msg[NVM_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        nvm_error_set(err, NVM_E_FORMAT, NULL, 0, 0, "capsule: %s", msg);
    }
    return NVM_E_FORMAT;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Parses the signature block data[signed_len, len). */
static nvm_status parse_signature(const uint8_t *data, size_t len, nvm_capsule *c, nvm_error *err)
{
    const uint8_t *p = data + c->signed_len;
    const size_t rem = len - c->signed_len;
    if (rem < 8 || memcmp(p, NVM_CAP_SIG_MAGIC, 8) != 0)
        return fmt_err(err,
                       "%zu bytes after the signed area (signed length %zu) are not a signature "
                       "block",
                       rem, c->signed_len);
    if (rem < NVM_CAP_SIG_FIXED_LEN)
        return fmt_err(err, "signature block truncated (%zu bytes, at least %d needed)", rem,
                       NVM_CAP_SIG_FIXED_LEN);
    c->sig_alg = p[8];
    if (!all_zero(p + 9, 7))
        return fmt_err(err, "signature block reserved bytes (offset %zu) are not zero",
                       c->signed_len + 9);
    memcpy(c->pubkey, p + 16, NVM_ED25519_PUB_LEN);
    memcpy(c->signature, p + 48, NVM_ED25519_SIG_LEN);
    uint32_t n = get32(p + 112);
    if (n > NVM_CAP_MAX_CERTS)
        return fmt_err(err, "signature block lists %" PRIu32 " certificates (at most %d)", n,
                       NVM_CAP_MAX_CERTS);
    if (n > 0) {
        c->certs = calloc(n, sizeof *c->certs);
        if (c->certs == NULL)
            return nvm_error_set(err, NVM_E_INTERNAL, NULL, 0, 0, "capsule: out of memory");
    }
    size_t pos = NVM_CAP_SIG_FIXED_LEN;
    for (uint32_t i = 0; i < n; i++) {
        if (rem - pos < 4)
            return fmt_err(err, "certificate %" PRIu32 " length extends past the end of the file",
                           i + 1);
        uint32_t clen = get32(p + pos);
        pos += 4;
        if (clen == 0 || clen > NVM_CAP_MAX_CERT_LEN)
            return fmt_err(err, "certificate %" PRIu32 " has length %" PRIu32 " (1 to %d allowed)",
                           i + 1, clen, NVM_CAP_MAX_CERT_LEN);
        if (clen > rem - pos)
            return fmt_err(err,
                           "certificate %" PRIu32 " extends past the end of the file (offset %zu, "
                           "length %" PRIu32 ", file length %zu)",
                           i + 1, c->signed_len + pos, clen, len);
        c->certs[i].p = p + pos;
        c->certs[i].len = clen;
        c->ncerts++;
        pos += clen;
    }
    if (pos != rem)
        return fmt_err(err, "%zu trailing bytes after the signature block", rem - pos);
    c->has_signature = true;
    return NVM_OK;
}

/* Records one section body; `idx` is 1-based for messages. */
static nvm_status take_section(nvm_capsule *c, uint32_t idx, uint32_t type, uint32_t flags,
                               const uint8_t *body, size_t blen, uint32_t *seen_manifest,
                               uint32_t *seen_bytecode, nvm_error *err)
{
    switch (type) {
    case NVM_SEC_MANIFEST:
        if (*seen_manifest)
            return fmt_err(err, "duplicate manifest section (sections %" PRIu32 " and %" PRIu32 ")",
                           *seen_manifest, idx);
        *seen_manifest = idx;
        c->manifest.p = body;
        c->manifest.len = blen;
        return NVM_OK;
    case NVM_SEC_BYTECODE:
        if (*seen_bytecode)
            return fmt_err(err, "duplicate bytecode section (sections %" PRIu32 " and %" PRIu32 ")",
                           *seen_bytecode, idx);
        *seen_bytecode = idx;
        c->bytecode.p = body;
        c->bytecode.len = blen;
        return NVM_OK;
    case NVM_SEC_ASSET: {
        if (blen < 4)
            return fmt_err(err, "section %" PRIu32 " (asset) is too short for its name length",
                           idx);
        uint32_t nlen = get32(body);
        if (nlen > blen - 4)
            return fmt_err(err,
                           "section %" PRIu32 " (asset): name length %" PRIu32
                           " exceeds the section (length %zu)",
                           idx, nlen, blen);
        const char *why = asset_name_problem(body + 4, nlen);
        if (why != NULL)
            return fmt_err(err, "section %" PRIu32 " (asset): the name %s", idx, why);
        for (size_t k = 0; k < c->nassets; k++)
            if (c->assets[k].name.len == nlen && memcmp(c->assets[k].name.p, body + 4, nlen) == 0)
                return fmt_err(err, "section %" PRIu32 " (asset): duplicate asset name \"%.*s\"",
                               idx, (int)nlen, (const char *)body + 4);
        nvm_asset *a = &c->assets[c->nassets++];
        a->name.p = body + 4;
        a->name.len = nlen;
        a->data.p = body + 4 + nlen;
        a->data.len = blen - 4 - nlen;
        return NVM_OK;
    }
    default:
        if (flags & NVM_SEC_CRITICAL)
            return fmt_err(
                err, "section %" PRIu32 " has unknown type %" PRIu32 " and is marked critical", idx,
                type);
        return NVM_OK; /* unknown, non-critical: ignored */
    }
}

nvm_status nvm_capsule_parse(const uint8_t *data, size_t len, nvm_capsule *out, nvm_error *err)
{
    nvm_status st = NVM_E_FORMAT;
    nvm_capsule c;
    memset(&c, 0, sizeof c);
    memset(out, 0, sizeof *out);
    c.data = data;
    c.len = len;

    if (data == NULL || len < NVM_CAP_HEADER_LEN) {
        st = fmt_err(err, "file too short for the header (%zu bytes, %d needed)",
                     data == NULL ? 0 : len, NVM_CAP_HEADER_LEN);
        goto fail;
    }
    if (memcmp(data, NVM_CAP_MAGIC, 8) != 0) {
        st = fmt_err(err, "not a NanoVM capsule (bad magic)");
        goto fail;
    }
    c.version = get16(data + 8);
    if (c.version != NVM_CAP_VERSION) {
        st = fmt_err(err, "unsupported format version %u (this build reads version %d)",
                     (unsigned)c.version, NVM_CAP_VERSION);
        goto fail;
    }
    if (get16(data + 10) != 0) {
        st = fmt_err(err, "unknown header flags 0x%04x", (unsigned)get16(data + 10));
        goto fail;
    }
    const uint32_t count = get32(data + 12);
    const uint64_t signed_len = get64(data + 16);
    if (get64(data + 24) != 0 || get64(data + 32) != 0) {
        st = fmt_err(err, "reserved header fields are not zero");
        goto fail;
    }
    if (count < 2 || count > NVM_CAP_MAX_SECTIONS) {
        st = fmt_err(err,
                     "%" PRIu32 " sections (a capsule has 2 to %d: a manifest, a bytecode "
                     "module and assets)",
                     count, NVM_CAP_MAX_SECTIONS);
        goto fail;
    }
    if (count > (len - NVM_CAP_HEADER_LEN) / NVM_CAP_SECTION_ENTRY_LEN) {
        st = fmt_err(err,
                     "section table (%" PRIu32 " entries) extends past the end of the file (%zu "
                     "bytes)",
                     count, len);
        goto fail;
    }
    const size_t table_end = NVM_CAP_HEADER_LEN + (size_t)count * NVM_CAP_SECTION_ENTRY_LEN;
    if (signed_len > len) {
        st = fmt_err(err, "signed length %" PRIu64 " exceeds the file length %zu", signed_len, len);
        goto fail;
    }
    if (signed_len < table_end) {
        st = fmt_err(err, "signed length %" PRIu64 " ends inside the section table (%zu bytes)",
                     signed_len, table_end);
        goto fail;
    }
    c.signed_len = (size_t)signed_len;

    c.assets = calloc(count, sizeof *c.assets);
    if (c.assets == NULL) {
        st = nvm_error_set(err, NVM_E_INTERNAL, NULL, 0, 0, "capsule: out of memory");
        goto fail;
    }
    uint32_t seen_manifest = 0, seen_bytecode = 0;
    size_t pos = table_end; /* end of the previous body */
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = data + NVM_CAP_HEADER_LEN + (size_t)i * NVM_CAP_SECTION_ENTRY_LEN;
        const uint32_t type = get32(e), flags = get32(e + 4);
        const uint64_t off = get64(e + 8), slen = get64(e + 16);
        const char *tn = nvm_capsule_section_type_name(type);
        size_t expected = 0;
        if (flags & ~NVM_SEC_CRITICAL) {
            st = fmt_err(err, "section %" PRIu32 " (%s) has unknown flags 0x%" PRIx32, i + 1, tn,
                         flags);
            goto fail;
        }
        if (off > c.signed_len || slen > c.signed_len - off) {
            st = fmt_err(err,
                         "section %" PRIu32 " (%s) extends past the signed area (offset %" PRIu64
                         ", length %" PRIu64 ", signed length %zu)",
                         i + 1, tn, off, slen, c.signed_len);
            goto fail;
        }
        if (off < table_end) {
            st = fmt_err(err,
                         "section %" PRIu32
                         " (%s) overlaps the header or section table (offset %" PRIu64
                         ", table ends at %zu)",
                         i + 1, tn, off, table_end);
            goto fail;
        }
        if (off < pos) {
            st = fmt_err(err,
                         "section %" PRIu32 " (%s) overlaps the previous section (offset %" PRIu64
                         ", previous ends at %zu)",
                         i + 1, tn, off, pos);
            goto fail;
        }
        if (!align8_ok(pos, &expected) || off != expected) {
            st = fmt_err(err,
                         "section %" PRIu32 " (%s) is at offset %" PRIu64
                         ", expected %zu (the next 8-byte boundary after the previous section)",
                         i + 1, tn, off, expected);
            goto fail;
        }
        if (!all_zero(data + pos, (size_t)off - pos)) {
            st = fmt_err(err, "non-zero padding before section %" PRIu32 " (%s)", i + 1, tn);
            goto fail;
        }
        st = take_section(&c, i + 1, type, flags, data + off, (size_t)slen, &seen_manifest,
                          &seen_bytecode, err);
        if (st != NVM_OK)
            goto fail;
        pos = (size_t)(off + slen);
    }
    size_t end = 0;
    if (!align8_ok(pos, &end) || end != c.signed_len) {
        st = fmt_err(err,
                     "signed length %zu is not the end of the last section padded to 8 bytes "
                     "(%zu)",
                     c.signed_len, end);
        goto fail;
    }
    if (!all_zero(data + pos, c.signed_len - pos)) {
        st = fmt_err(err, "non-zero padding after the last section");
        goto fail;
    }
    if (!seen_manifest) {
        st = fmt_err(err, "no manifest section");
        goto fail;
    }
    if (!seen_bytecode) {
        st = fmt_err(err, "no bytecode section");
        goto fail;
    }
    if (c.signed_len < len) {
        st = parse_signature(data, len, &c, err);
        if (st != NVM_OK)
            goto fail;
    }
    nvm_sha256(data, len, c.digest);
    *out = c;
    return NVM_OK;
fail:
    free(c.assets);
    free(c.certs);
    return st;
}

nvm_status nvm_capsule_open(const char *path, nvm_capsule *out, nvm_error *err)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nvm_error_set(err, NVM_E_FORMAT, path, 0, 0, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return nvm_error_set(err, NVM_E_FORMAT, path, 0, 0, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return nvm_error_set(err, NVM_E_FORMAT, path, 0, 0, "not a regular file");
    }
    if (sb.st_size <= 0) {
        close(fd);
        return nvm_error_set(err, NVM_E_FORMAT, path, 0, 0, "capsule: empty file");
    }
    if ((uintmax_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return nvm_error_set(err, NVM_E_FORMAT, path, 0, 0, "capsule: file too large");
    }
    size_t len = (size_t)sb.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return nvm_error_set(err, NVM_E_FORMAT, path, 0, 0, "cannot map: %s", strerror(e));
    nvm_status st = nvm_capsule_parse(map, len, out, err);
    if (st != NVM_OK) {
        munmap(map, len);
        if (err != NULL)
            snprintf(err->file, sizeof err->file, "%s", path);
        return st;
    }
    out->map_base = map;
    out->map_len = len;
    return NVM_OK;
}

void nvm_capsule_close(nvm_capsule *c)
{
    if (c == NULL)
        return;
    free(c->assets);
    free(c->certs);
    if (c->map_base != NULL)
        munmap(c->map_base, c->map_len);
    memset(c, 0, sizeof *c);
}

void nvm_capsule_signed_digest(const nvm_capsule *c, uint8_t out[NVM_SHA256_LEN])
{
    nvm_sha256_2(NVM_CAP_SIG_DOMAIN, SIG_DOMAIN_LEN, c->data, c->signed_len, out);
}

size_t nvm_capsule_section_count(const nvm_capsule *c)
{
    return (c != NULL && c->data != NULL) ? get32(c->data + 12) : 0;
}

void nvm_capsule_section_get(const nvm_capsule *c, size_t i, nvm_section_info *out)
{
    memset(out, 0, sizeof *out);
    if (i >= nvm_capsule_section_count(c))
        return;
    const uint8_t *e = c->data + NVM_CAP_HEADER_LEN + i * NVM_CAP_SECTION_ENTRY_LEN;
    out->type = get32(e);
    out->flags = get32(e + 4);
    out->offset = get64(e + 8);
    out->length = get64(e + 16);
}

nvm_status nvm_capsule_build(const uint8_t *manifest, size_t manifest_len, const uint8_t *bytecode,
                             size_t bytecode_len, const nvm_asset *assets, size_t nassets,
                             uint8_t **out, size_t *out_len, nvm_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (nassets > NVM_CAP_MAX_SECTIONS - 2)
        return fmt_err(err, "too many assets (%zu, at most %d)", nassets, NVM_CAP_MAX_SECTIONS - 2);
    const size_t count = 2 + nassets;
    size_t offs[NVM_CAP_MAX_SECTIONS], lens[NVM_CAP_MAX_SECTIONS];
    size_t pos = NVM_CAP_HEADER_LEN + count * NVM_CAP_SECTION_ENTRY_LEN;
    for (size_t i = 0; i < count; i++) {
        size_t blen;
        if (i == 0) {
            blen = manifest_len;
        } else if (i == 1) {
            blen = bytecode_len;
        } else {
            const nvm_asset *a = &assets[i - 2];
            const char *why = asset_name_problem(a->name.p, a->name.len);
            if (why != NULL)
                return fmt_err(err, "asset %zu: the name %s", i - 1, why);
            for (size_t k = 0; k + 2 < i; k++)
                if (assets[k].name.len == a->name.len &&
                    memcmp(assets[k].name.p, a->name.p, a->name.len) == 0)
                    return fmt_err(err, "duplicate asset name \"%.*s\"", (int)a->name.len,
                                   (const char *)a->name.p);
            if (!add_ok(4 + a->name.len, a->data.len, &blen))
                return fmt_err(err, "asset %zu is too large", i - 1);
        }
        if (!align8_ok(pos, &offs[i]) || !add_ok(offs[i], blen, &pos))
            return fmt_err(err, "capsule too large");
        lens[i] = blen;
    }
    size_t total;
    if (!align8_ok(pos, &total))
        return fmt_err(err, "capsule too large");
    uint8_t *buf = calloc(1, total);
    if (buf == NULL)
        return nvm_error_set(err, NVM_E_INTERNAL, NULL, 0, 0, "capsule: out of memory");
    memcpy(buf, NVM_CAP_MAGIC, 8);
    put16(buf + 8, NVM_CAP_VERSION);
    put16(buf + 10, 0);
    put32(buf + 12, (uint32_t)count);
    put64(buf + 16, total);
    for (size_t i = 0; i < count; i++) {
        uint8_t *e = buf + NVM_CAP_HEADER_LEN + i * NVM_CAP_SECTION_ENTRY_LEN;
        put32(e, i == 0 ? NVM_SEC_MANIFEST : i == 1 ? NVM_SEC_BYTECODE : NVM_SEC_ASSET);
        put32(e + 4, NVM_SEC_CRITICAL);
        put64(e + 8, offs[i]);
        put64(e + 16, lens[i]);
        uint8_t *body = buf + offs[i];
        if (i == 0 && manifest_len > 0) {
            memcpy(body, manifest, manifest_len);
        } else if (i == 1 && bytecode_len > 0) {
            memcpy(body, bytecode, bytecode_len);
        } else if (i >= 2) {
            const nvm_asset *a = &assets[i - 2];
            put32(body, (uint32_t)a->name.len);
            memcpy(body + 4, a->name.p, a->name.len);
            if (a->data.len > 0)
                memcpy(body + 4 + a->name.len, a->data.p, a->data.len);
        }
    }
    *out = buf;
    *out_len = total;
    return NVM_OK;
}

nvm_status nvm_capsule_sign(const nvm_capsule *c, const nvm_key *key, const nvm_certs *chain,
                            uint8_t **out, size_t *out_len, nvm_error *err)
{
    nvm_status st;
    uint8_t **ders = NULL;
    size_t *dlens = NULL;
    uint8_t *buf = NULL;
    const size_t n = nvm_certs_count(chain);
    char why[NVM_WHY_MAX] = "";

    *out = NULL;
    *out_len = 0;
    if (n > NVM_CAP_MAX_CERTS)
        return fmt_err(err, "%zu certificates in the chain (at most %d)", n, NVM_CAP_MAX_CERTS);
    ders = calloc(n + 1, sizeof *ders);
    dlens = calloc(n + 1, sizeof *dlens);
    if (ders == NULL || dlens == NULL) {
        st = nvm_error_set(err, NVM_E_INTERNAL, NULL, 0, 0, "capsule: out of memory");
        goto fail;
    }
    size_t total = c->signed_len + NVM_CAP_SIG_FIXED_LEN;
    for (size_t i = 0; i < n; i++) {
        st = nvm_certs_der(chain, i, &ders[i], &dlens[i]);
        if (st != NVM_OK) {
            nvm_error_set(err, st, NULL, 0, 0, "capsule: cannot encode certificate %zu", i + 1);
            goto fail;
        }
        if (dlens[i] > NVM_CAP_MAX_CERT_LEN) {
            st = fmt_err(err, "certificate %zu is %zu bytes (at most %d)", i + 1, dlens[i],
                         NVM_CAP_MAX_CERT_LEN);
            goto fail;
        }
        total += 4 + dlens[i];
    }
    buf = malloc(total);
    if (buf == NULL) {
        st = nvm_error_set(err, NVM_E_INTERNAL, NULL, 0, 0, "capsule: out of memory");
        goto fail;
    }
    memcpy(buf, c->data, c->signed_len);
    uint8_t *p = buf + c->signed_len;
    memset(p, 0, NVM_CAP_SIG_FIXED_LEN);
    memcpy(p, NVM_CAP_SIG_MAGIC, 8);
    p[8] = 1; /* Ed25519 */
    nvm_key_public(key, p + 16);
    uint8_t digest[NVM_SHA256_LEN];
    nvm_capsule_signed_digest(c, digest);
    st = nvm_ed25519_sign(key, digest, sizeof digest, p + 48, why);
    if (st != NVM_OK) {
        nvm_error_set(err, st, NULL, 0, 0, "capsule: %s", why);
        goto fail;
    }
    put32(p + 112, (uint32_t)n);
    size_t pos = NVM_CAP_SIG_FIXED_LEN;
    for (size_t i = 0; i < n; i++) {
        put32(p + pos, (uint32_t)dlens[i]);
        memcpy(p + pos + 4, ders[i], dlens[i]);
        pos += 4 + dlens[i];
    }
    *out = buf;
    *out_len = total;
    buf = NULL;
    st = NVM_OK;
fail:
    for (size_t i = 0; ders != NULL && i < n; i++)
        free(ders[i]);
    free(ders);
    free(dlens);
    free(buf);
    return st;
}
