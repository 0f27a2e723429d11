/* fuzz_capsule.c - libFuzzer harness: arbitrary bytes as a .cap capsule. Capsules that parse
 * have their manifest parsed, their section table and spans checked against the buffer, and
 * their signed digest computed; the same bytes are also tried as a bare manifest.
 * Oracle (abort): every span of a parsed capsule lies inside the input, and the signature block
 * (when present) starts exactly at signed_len. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trust/capsule.h"
#include "trust/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_span(const uint8_t *data, size_t size, const uint8_t *p, size_t len)
{
    if (len == 0)
        return;
    if (p < data || p > data + size || len > (size_t)(data + size - p))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nvm_capsule c;
    nvm_error err;
    nvm_manifest m;

    if (nvm_capsule_parse(data, size, &c, &err) == NVM_OK) {
        if (c.signed_len > size || (c.has_signature != (c.signed_len < size)))
            abort();
        check_span(data, c.signed_len, c.manifest.p, c.manifest.len);
        check_span(data, c.signed_len, c.bytecode.p, c.bytecode.len);
        for (size_t i = 0; i < c.nassets; i++) {
            check_span(data, c.signed_len, c.assets[i].name.p, c.assets[i].name.len);
            check_span(data, c.signed_len, c.assets[i].data.p, c.assets[i].data.len);
        }
        for (size_t i = 0; i < c.ncerts; i++)
            check_span(data + c.signed_len, size - c.signed_len, c.certs[i].p, c.certs[i].len);
        for (size_t i = 0; i < nvm_capsule_section_count(&c); i++) {
            nvm_section_info si;
            nvm_capsule_section_get(&c, i, &si);
            if (si.offset > c.signed_len || si.length > c.signed_len - si.offset)
                abort();
        }
        uint8_t d[NVM_SHA256_LEN];
        nvm_capsule_signed_digest(&c, d);
        if (nvm_manifest_parse((const char *)c.manifest.p, c.manifest.len, &m, &err) == NVM_OK)
            nvm_manifest_free(&m);
        nvm_capsule_close(&c);
    }
    if (nvm_manifest_parse((const char *)data, size, &m, &err) == NVM_OK)
        nvm_manifest_free(&m);
    return 0;
}
