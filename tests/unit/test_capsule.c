/* test_capsule.c - unit tests of the capsule container (src/trust/capsule.c) and the manifest
 * (src/trust/manifest.c): capsules are built in memory, signed with a fresh Ed25519 key, then
 * truncated, flipped and rearranged; manifests, capability strings and semver precedence. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "trust/capsule.h"
#include "trust/crypto.h"
#include "trust/manifest.h"

static const char k_manifest[] = "{\"name\":\"demo\",\"version\":\"1.2.3\",\"entry\":\"main\"} ";
static const uint8_t k_bytecode[] = "NVMB fake bytecode, not loaded by these tests";

/* ---- helpers ---- */

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

static uint8_t *table_entry(uint8_t *cap, size_t i)
{
    return cap + NVM_CAP_HEADER_LEN + i * NVM_CAP_SECTION_ENTRY_LEN;
}

/* An unsigned capsule with one asset. */
static uint8_t *build_unsigned(size_t *len)
{
    nvm_asset a;
    a.name.p = (const uint8_t *)"data.txt";
    a.name.len = 8;
    a.data.p = (const uint8_t *)"hello";
    a.data.len = 5;
    uint8_t *out = NULL;
    nvm_error err;
    assert_int_equal(nvm_capsule_build((const uint8_t *)k_manifest, strlen(k_manifest), k_bytecode,
                                       sizeof k_bytecode, &a, 1, &out, len, &err),
                     NVM_OK);
    return out;
}

/* The same capsule signed with a new key (returned in *key_out). */
static uint8_t *build_signed(size_t *len, nvm_key **key_out)
{
    size_t ulen;
    uint8_t *u = build_unsigned(&ulen);
    nvm_capsule c;
    nvm_error err;
    nvm_key *k = NULL;
    char why[NVM_WHY_MAX];
    assert_int_equal(nvm_capsule_parse(u, ulen, &c, &err), NVM_OK);
    assert_int_equal(nvm_key_generate(&k, why), NVM_OK);
    uint8_t *s = NULL;
    assert_int_equal(nvm_capsule_sign(&c, k, NULL, &s, len, &err), NVM_OK);
    nvm_capsule_close(&c);
    free(u);
    *key_out = k;
    return s;
}

/* True when the buffer parses as a capsule whose Ed25519 signature verifies. */
static bool signature_verifies(const uint8_t *data, size_t len)
{
    nvm_capsule c;
    nvm_error err;
    if (nvm_capsule_parse(data, len, &c, &err) != NVM_OK)
        return false;
    bool ok = false;
    if (c.has_signature && c.sig_alg == 1) {
        uint8_t d[NVM_SHA256_LEN];
        nvm_capsule_signed_digest(&c, d);
        ok = nvm_ed25519_verify(c.pubkey, d, sizeof d, c.signature, NULL) == NVM_OK;
    }
    nvm_capsule_close(&c);
    return ok;
}

static void expect_format_error(const uint8_t *data, size_t len, const char *fragment)
{
    nvm_capsule c;
    nvm_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(nvm_capsule_parse(data, len, &c, &err), NVM_E_FORMAT);
    if (fragment != NULL && strstr(err.message, fragment) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.message, fragment);
}

/* ---- capsules ---- */

static void test_build_parse(void **state)
{
    (void)state;
    size_t len;
    uint8_t *cap = build_unsigned(&len);
    nvm_capsule c;
    nvm_error err;
    assert_int_equal(len % 8, 0);
    assert_int_equal(nvm_capsule_parse(cap, len, &c, &err), NVM_OK);
    assert_int_equal(c.version, 1);
    assert_int_equal(c.signed_len, len);
    assert_false(c.has_signature);
    assert_int_equal(c.manifest.len, strlen(k_manifest));
    assert_memory_equal(c.manifest.p, k_manifest, strlen(k_manifest));
    assert_true(c.manifest.p >= cap && c.manifest.p < cap + len); /* zero-copy */
    assert_int_equal(c.bytecode.len, sizeof k_bytecode);
    assert_int_equal(c.nassets, 1);
    assert_memory_equal(c.assets[0].name.p, "data.txt", 8);
    assert_memory_equal(c.assets[0].data.p, "hello", 5);
    assert_int_equal(nvm_capsule_section_count(&c), 3);
    uint8_t whole[NVM_SHA256_LEN];
    nvm_sha256(cap, len, whole);
    assert_memory_equal(whole, c.digest, NVM_SHA256_LEN);
    nvm_capsule_close(&c);
    free(cap);
}

static void test_sign_verify(void **state)
{
    (void)state;
    size_t len;
    nvm_key *k;
    uint8_t *s = build_signed(&len, &k);
    assert_true(signature_verifies(s, len));
    nvm_capsule c;
    nvm_error err;
    assert_int_equal(nvm_capsule_parse(s, len, &c, &err), NVM_OK);
    assert_true(c.has_signature);
    assert_int_equal(c.ncerts, 0);
    uint8_t pub[NVM_ED25519_PUB_LEN];
    nvm_key_public(k, pub);
    assert_memory_equal(pub, c.pubkey, sizeof pub);
    /* signing again replaces the signature block rather than appending one */
    uint8_t *s2 = NULL;
    size_t len2;
    assert_int_equal(nvm_capsule_sign(&c, k, NULL, &s2, &len2, &err), NVM_OK);
    assert_int_equal(len2, len);
    assert_true(signature_verifies(s2, len2));
    free(s2);
    nvm_capsule_close(&c);
    nvm_key_free(k);
    free(s);
}

static void test_truncations(void **state)
{
    (void)state;
    size_t len, ulen;
    nvm_key *k;
    uint8_t *s = build_signed(&len, &k);
    uint8_t *u = build_unsigned(&ulen);
    for (size_t n = 0; n < len; n++) {
        uint8_t *t = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
        memcpy(t, s, n);
        nvm_capsule c;
        nvm_error err;
        nvm_status st = nvm_capsule_parse(t, n, &c, &err);
        if (n == ulen) {
            /* cut exactly at the signed length: the signature is stripped, it is unsigned */
            assert_int_equal(st, NVM_OK);
            assert_false(c.has_signature);
            nvm_capsule_close(&c);
        } else {
            assert_int_equal(st, NVM_E_FORMAT);
        }
        free(t);
    }
    for (size_t n = 0; n < ulen; n++) {
        uint8_t *t = malloc(n ? n : 1);
        memcpy(t, u, n);
        expect_format_error(t, n, NULL);
        free(t);
    }
    nvm_key_free(k);
    free(s);
    free(u);
}

static void test_byte_flips(void **state)
{
    (void)state;
    size_t len;
    nvm_key *k;
    uint8_t *s = build_signed(&len, &k);
    static const uint8_t masks[] = {0x01, 0x80, 0xFF};
    size_t parsed = 0;
    for (size_t i = 0; i < len; i++)
        for (size_t m = 0; m < sizeof masks; m++) {
            uint8_t *t = malloc(len);
            memcpy(t, s, len);
            t[i] ^= masks[m];
            nvm_capsule c;
            nvm_error err;
            if (nvm_capsule_parse(t, len, &c, &err) == NVM_OK) {
                parsed++;
                nvm_capsule_close(&c);
            }
            if (signature_verifies(t, len))
                fail_msg("flip of byte %zu with 0x%02x still verifies", i, masks[m]);
            free(t);
        }
    assert_true(parsed > 0); /* flips in bodies parse, and must fail on the signature */
    nvm_key_free(k);
    free(s);
}

static void test_section_overlap(void **state)
{
    (void)state;
    size_t len;
    uint8_t *cap = build_unsigned(&len);
    uint8_t *e1 = table_entry(cap, 1);
    put64(e1 + 8, NVM_CAP_HEADER_LEN + 3 * NVM_CAP_SECTION_ENTRY_LEN); /* onto the manifest */
    expect_format_error(cap, len, "overlaps the previous section");
    free(cap);
    cap = build_unsigned(&len);
    put64(table_entry(cap, 0) + 8, 16); /* into the header */
    expect_format_error(cap, len, "overlaps the header");
    free(cap);
}

static void test_section_past_end(void **state)
{
    (void)state;
    size_t len;
    uint8_t *cap = build_unsigned(&len);
    put64(table_entry(cap, 1) + 16, 90000);
    expect_format_error(cap, len, "section 2 (bytecode) extends past the signed area");
    put64(table_entry(cap, 1) + 16, UINT64_MAX);
    expect_format_error(cap, len, "extends past the signed area");
    put64(table_entry(cap, 1) + 8, UINT64_MAX - 2);
    put64(table_entry(cap, 1) + 16, 8);
    expect_format_error(cap, len, "extends past the signed area");
    free(cap);
    cap = build_unsigned(&len);
    put64(cap + 16, (uint64_t)len + 8); /* signed length beyond the file */
    expect_format_error(cap, len, "exceeds the file length");
    put32(cap + 12, 0x7fffffff); /* section count beyond the file */
    expect_format_error(cap, len, "sections");
    free(cap);
}

static void test_duplicate_and_unknown(void **state)
{
    (void)state;
    size_t len;
    uint8_t *cap = build_unsigned(&len);
    put32(table_entry(cap, 1), NVM_SEC_MANIFEST);
    expect_format_error(cap, len, "duplicate manifest section");
    put32(table_entry(cap, 1), 99);
    expect_format_error(cap, len, "unknown type 99 and is marked critical");
    /* an unknown non-critical section is ignored, but the bytecode is then missing */
    put32(table_entry(cap, 1) + 4, 0);
    expect_format_error(cap, len, "no bytecode section");
    put32(table_entry(cap, 2), 99); /* the asset becomes unknown, non-critical after this */
    put32(table_entry(cap, 2) + 4, 0);
    put32(table_entry(cap, 1), NVM_SEC_BYTECODE);
    nvm_capsule c;
    nvm_error err;
    assert_int_equal(nvm_capsule_parse(cap, len, &c, &err), NVM_OK);
    assert_int_equal(c.nassets, 0);
    nvm_capsule_close(&c);
    put32(table_entry(cap, 2) + 4, 2); /* unknown flag bits */
    expect_format_error(cap, len, "unknown flags");
    free(cap);
}

static void test_reordered_and_padding(void **state)
{
    (void)state;
    size_t len;
    uint8_t *cap = build_unsigned(&len);
    uint8_t tmp[NVM_CAP_SECTION_ENTRY_LEN];
    memcpy(tmp, table_entry(cap, 0), sizeof tmp);
    memcpy(table_entry(cap, 0), table_entry(cap, 1), sizeof tmp);
    memcpy(table_entry(cap, 1), tmp, sizeof tmp);
    expect_format_error(cap, len, "section 1 (bytecode)");
    free(cap);
    cap = build_unsigned(&len);
    /* the manifest (49 bytes) is followed by padding */
    size_t pad = NVM_CAP_HEADER_LEN + 3 * NVM_CAP_SECTION_ENTRY_LEN + strlen(k_manifest);
    assert_int_not_equal(pad % 8, 0);
    cap[pad] = 1;
    expect_format_error(cap, len, "non-zero padding");
    free(cap);
}

static void test_trailing_and_signature_block(void **state)
{
    (void)state;
    size_t len, ulen;
    nvm_key *k;
    uint8_t *s = build_signed(&len, &k);
    uint8_t *u = build_unsigned(&ulen);
    uint8_t *t = malloc(len * 2);
    memcpy(t, u, ulen);
    t[ulen] = 0;
    expect_format_error(t, ulen + 1, "not a signature block");
    memcpy(t, s, len);
    t[len] = 0;
    expect_format_error(t, len + 1, "trailing bytes after the signature block");
    /* the signature block duplicated */
    memcpy(t + len, s + ulen, len - ulen);
    expect_format_error(t, len + (len - ulen), "trailing bytes");
    /* certificate count larger than the block */
    memcpy(t, s, len);
    put32(t + ulen + 112, 1);
    expect_format_error(t, len, "certificate 1 length extends past the end");
    put32(t + ulen + 112, 9);
    expect_format_error(t, len, "at most 8");
    memcpy(t, s, len);
    t[ulen + 10] = 1;
    expect_format_error(t, len, "reserved bytes");
    free(t);
    nvm_key_free(k);
    free(s);
    free(u);
}

static void test_header_checks(void **state)
{
    (void)state;
    size_t len;
    uint8_t *cap = build_unsigned(&len);
    cap[8] = 2;
    expect_format_error(cap, len, "unsupported format version 2");
    cap[8] = 1;
    cap[0] = 'X';
    expect_format_error(cap, len, "bad magic");
    cap[0] = 'N';
    cap[30] = 1;
    expect_format_error(cap, len, "reserved header fields");
    free(cap);
}

static void test_bad_asset_names(void **state)
{
    (void)state;
    const char *bad[] = {"", "a/b", "..", "\xff\xfe"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nvm_asset a;
        a.name.p = (const uint8_t *)bad[i];
        a.name.len = strlen(bad[i]);
        a.data.p = NULL;
        a.data.len = 0;
        uint8_t *out = NULL;
        size_t len;
        nvm_error err;
        assert_int_equal(nvm_capsule_build((const uint8_t *)k_manifest, strlen(k_manifest),
                                           k_bytecode, sizeof k_bytecode, &a, 1, &out, &len, &err),
                         NVM_E_FORMAT);
        assert_null(out);
    }
    nvm_asset two[2];
    for (int i = 0; i < 2; i++) {
        two[i].name.p = (const uint8_t *)"same";
        two[i].name.len = 4;
        two[i].data.p = NULL;
        two[i].data.len = 0;
    }
    uint8_t *out = NULL;
    size_t len;
    nvm_error err;
    assert_int_equal(nvm_capsule_build((const uint8_t *)k_manifest, strlen(k_manifest), k_bytecode,
                                       sizeof k_bytecode, two, 2, &out, &len, &err),
                     NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "duplicate asset name"));
}

static void test_open_file(void **state)
{
    (void)state;
    char path[] = "/tmp/nvm_test_capsule_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    nvm_capsule c;
    nvm_error err;
    assert_int_equal(nvm_capsule_open(path, &c, &err), NVM_E_FORMAT);
    assert_non_null(strstr(err.message, "empty file"));
    size_t len;
    uint8_t *cap = build_unsigned(&len);
    assert_int_equal(write(fd, cap, len), (ssize_t)len);
    close(fd);
    assert_int_equal(nvm_capsule_open(path, &c, &err), NVM_OK);
    assert_non_null(c.map_base);
    assert_memory_equal(c.manifest.p, k_manifest, strlen(k_manifest));
    nvm_capsule_close(&c);
    unlink(path);
    free(cap);
}

/* ---- manifests ---- */

static nvm_status manifest(const char *json, nvm_error *err)
{
    nvm_manifest m;
    nvm_status st = nvm_manifest_parse(json, strlen(json), &m, err);
    if (st == NVM_OK)
        nvm_manifest_free(&m);
    return st;
}

static void expect_manifest_error(const char *json, const char *fragment)
{
    nvm_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(manifest(json, &err), NVM_E_FORMAT);
    if (strstr(err.message, fragment) == NULL)
        fail_msg("manifest %s: message \"%s\" lacks \"%s\"", json, err.message, fragment);
}

static void test_manifest_ok(void **state)
{
    (void)state;
    const char *j = "{\"name\":\"hello-app_1.x\",\"version\":\"2.0.0-rc.1+build.5\","
                    "\"description\":\"d\",\"authors\":[\"A\",\"B\"],"
                    "\"capabilities\":[\"io.print\",\"fs.read:/data/*\",\"net.connect:host:443\"],"
                    "\"limits\":{\"gas\":1000,\"memory\":0,\"stack\":64,\"wall_ms\":5}}";
    nvm_manifest m;
    nvm_error err;
    assert_int_equal(nvm_manifest_parse(j, strlen(j), &m, &err), NVM_OK);
    assert_string_equal(m.name, "hello-app_1.x");
    assert_string_equal(m.entry, "main");
    assert_int_equal(m.version.major, 2);
    assert_string_equal(m.version.pre, "rc.1");
    assert_int_equal(m.nauthors, 2);
    assert_int_equal(m.ncaps, 3);
    assert_string_equal(m.caps[1].type, "fs");
    assert_string_equal(m.caps[1].action, "read");
    assert_string_equal(m.caps[1].scope, "/data/*");
    assert_string_equal(m.caps[2].scope, "host:443");
    assert_string_equal(m.caps[0].scope, "");
    assert_int_equal(m.limits.gas, 1000);
    assert_int_equal(m.limits.memory, 0);
    nvm_manifest_free(&m);
    const char *j2 = "{\"name\":\"x\",\"version\":\"0.0.1\"}";
    assert_int_equal(nvm_manifest_parse(j2, strlen(j2), &m, &err), NVM_OK);
    assert_int_equal(m.limits.gas, -1);
    assert_null(m.description);
    nvm_manifest_free(&m);
}

static void test_manifest_errors(void **state)
{
    (void)state;
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\",\"nmae\":1}",
                          "unknown key \"nmae\"");
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\",\"limits\":{\"cpu\":1}}",
                          "limits.cpu");
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\",\"limits\":{\"gas\":-1}}",
                          "non-negative");
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\",\"limits\":{\"gas\":1.5}}",
                          "non-negative integer");
    expect_manifest_error("{\"version\":\"1.0.0\"}", "missing required key \"name\"");
    expect_manifest_error("{\"name\":\"x\"}", "missing required key \"version\"");
    expect_manifest_error("{\"name\":1,\"version\":\"1.0.0\"}", "\"name\" must be a string");
    expect_manifest_error("{\"name\":\"a b\",\"version\":\"1.0.0\"}", "\"name\"");
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\",\"authors\":\"me\"}", "authors");
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\",\"authors\":[1]}", "authors[0]");
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\",\"entry\":\"\"}", "entry");
    expect_manifest_error("{\"name\":\"x\",\"name\":\"y\",\"version\":\"1.0.0\"}", "invalid JSON");
    expect_manifest_error("[1]", "must be a JSON object");
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\"", "invalid JSON");
    const char *bad_versions[] = {
        "1",      "1.0",        "01.0.0",    "1.0.0-", "1.0.0-01",
        "1.0.0+", "1.0.0-a..b", "1.0.0-a.",  "v1.0.0", "1.0.0 ",
        "-1.0.0", "1.0.0-é",    "1.0.0+a+b", "1..0",   "99999999999999999999.0.0"};
    for (size_t i = 0; i < sizeof bad_versions / sizeof bad_versions[0]; i++) {
        char j[200];
        snprintf(j, sizeof j, "{\"name\":\"x\",\"version\":\"%s\"}", bad_versions[i]);
        expect_manifest_error(j, "is not a semantic version");
    }
    const char *bad_caps[] = {
        "fs",      "fs.",      ".read",  "Fs.read", "fs.read:",    "fs.read:a b",
        "fs.re-d", "1fs.read", "fs.a.b", "",        "fs.read:\x7f"};
    for (size_t i = 0; i < sizeof bad_caps / sizeof bad_caps[0]; i++) {
        char j[200], want[64];
        snprintf(j, sizeof j,
                 "{\"name\":\"x\",\"version\":\"1.0.0\",\"capabilities\":[\"io.print\",\"%s\"]}",
                 bad_caps[i]);
        snprintf(want, sizeof want, "capability \"%s\"", bad_caps[i]);
        expect_manifest_error(j, want);
    }
    expect_manifest_error("{\"name\":\"x\",\"version\":\"1.0.0\",\"capabilities\":[1]}",
                          "capabilities[0]");
}

static void test_semver_order(void **state)
{
    (void)state;
    const char *order[] = {"0.9.9",      "1.0.0-alpha",  "1.0.0-alpha.1", "1.0.0-alpha.beta",
                           "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
                           "1.0.0",      "1.0.1",        "1.2.0",         "1.10.0",
                           "2.0.0-0",    "2.0.0-1",      "2.0.0-a",       "2.0.0"};
    size_t n = sizeof order / sizeof order[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            nvm_semver a, b;
            assert_int_equal(nvm_semver_parse(order[i], &a), NVM_OK);
            assert_int_equal(nvm_semver_parse(order[j], &b), NVM_OK);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if (nvm_semver_cmp(&a, &b) != want)
                fail_msg("cmp(%s, %s) != %d", order[i], order[j], want);
        }
    nvm_semver a, b;
    assert_int_equal(nvm_semver_parse("1.0.0+build.1", &a), NVM_OK);
    assert_int_equal(nvm_semver_parse("1.0.0+build.2", &b), NVM_OK);
    assert_int_equal(nvm_semver_cmp(&a, &b), 0); /* build metadata has no precedence */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_parse),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_section_overlap),
        cmocka_unit_test(test_section_past_end),
        cmocka_unit_test(test_duplicate_and_unknown),
        cmocka_unit_test(test_reordered_and_padding),
        cmocka_unit_test(test_trailing_and_signature_block),
        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_bad_asset_names),
        cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_manifest_ok),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_semver_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
