/* api_capsule.c - the public API for keys and capsules as files: keygen, pack, sign, inspect.
 * inspect reports what a capsule contains; it does not decide whether to trust it (api.c does).
 * Input files that cannot be read are NVM_E_FORMAT; failures to write output are NVM_E_IO. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "nanovm.h"
#include "api_util.h"
#include "capsule.h"
#include "crypto.h"
#include "manifest.h"

bool nvm_capsule_is_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    char magic[8];
    bool yes = fread(magic, 1, sizeof magic, f) == sizeof magic &&
               memcmp(magic, NVM_CAP_MAGIC, sizeof magic) == 0;
    fclose(f);
    return yes;
}

nvm_status nvm_capability_check(const char *capability, nvm_error *err)
{
    nvm_capreq c;
    char why[NVM_ERROR_MESSAGE_MAX];
    if (nvm_capreq_parse(capability, &c, why, sizeof why) != NVM_OK)
        return nvm_api_fail(err, NVM_E_FORMAT, NULL, "%s", why);
    return NVM_OK;
}

static void key_fingerprint(const nvm_key *k, char out[NVM_FINGERPRINT_LEN])
{
    uint8_t pub[NVM_ED25519_PUB_LEN], fp[NVM_SHA256_LEN];
    nvm_key_public(k, pub);
    nvm_sha256(pub, sizeof pub, fp);
    nvm_hex(fp, sizeof fp, out);
}

/* ---- keygen ---- */

nvm_status nvm_keygen_file(const char *path, char fingerprint[NVM_FINGERPRINT_LEN], nvm_error *err)
{
    nvm_key *k = NULL;
    char why[NVM_WHY_MAX];
    nvm_status st = nvm_key_generate(&k, why);
    if (st == NVM_OK)
        st = nvm_key_write_pem(k, path, why);
    if (st != NVM_OK) {
        nvm_key_free(k);
        return nvm_api_fail(err, st, NULL, "%s", why);
    }
    key_fingerprint(k, fingerprint);
    nvm_key_free(k);
    return NVM_OK;
}

/* ---- pack ---- */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

nvm_status nvm_capsule_pack_file(const char *manifest_path, const char *program_path,
                                 const char *const *asset_paths, size_t nassets,
                                 const char *out_path, nvm_pack_info *info, nvm_error *err)
{
    uint8_t *mtext = NULL, *src = NULL, *cap = NULL, *bc = NULL;
    size_t mlen = 0, srclen = 0, caplen = 0, bclen = 0;
    uint8_t **adata = calloc(nassets + 1, sizeof *adata);
    nvm_asset *assets = calloc(nassets + 1, sizeof *assets);
    nvm_module *m = NULL;
    nvm_manifest man;
    nvm_status st;
    memset(&man, 0, sizeof man);

    if (adata == NULL || assets == NULL) {
        st = nvm_api_fail(err, NVM_E_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    if ((st = nvm_api_read_file(manifest_path, &mtext, &mlen, err)) != NVM_OK)
        goto fail;
    st = nvm_manifest_parse((const char *)mtext, mlen, &man, err);
    if (st != NVM_OK) {
        nvm_api_default_file(err, manifest_path);
        goto fail;
    }
    if ((st = nvm_api_read_file(program_path, &src, &srclen, err)) != NVM_OK)
        goto fail;
    nvm_config cfg;
    nvm_config_init(&cfg);
    st = nvm_module_load(&cfg, src, srclen, program_path, &m, err);
    if (st == NVM_OK)
        st = nvm_module_set_entry(m, man.entry, err);
    if (st == NVM_OK)
        st = nvm_module_to_bytecode(m, &bc, &bclen, err);
    if (st != NVM_OK) {
        nvm_api_default_file(err, program_path);
        goto fail;
    }
    for (size_t i = 0; i < nassets; i++) {
        size_t alen = 0;
        if ((st = nvm_api_read_file(asset_paths[i], &adata[i], &alen, err)) != NVM_OK)
            goto fail;
        const char *name = base_name(asset_paths[i]);
        assets[i].name.p = (const uint8_t *)name;
        assets[i].name.len = strlen(name);
        assets[i].data.p = adata[i];
        assets[i].data.len = alen;
    }
    st = nvm_capsule_build(mtext, mlen, bc, bclen, assets, nassets, &cap, &caplen, err);
    if (st != NVM_OK) {
        nvm_api_default_file(err, out_path);
        goto fail;
    }
    if ((st = nvm_api_write_atomic(out_path, cap, caplen, -1, err)) != NVM_OK)
        goto fail;
    if (info != NULL) {
        snprintf(info->name, sizeof info->name, "%s", man.name);
        snprintf(info->version, sizeof info->version, "%s", man.version_text);
        info->size = caplen;
    }
fail:
    if (bc != NULL)
        nvm_module_free_buffer(m, bc, bclen);
    nvm_module_free(m);
    nvm_manifest_free(&man);
    for (size_t i = 0; adata != NULL && i < nassets; i++)
        free(adata[i]);
    free(adata);
    free(assets);
    free(mtext);
    free(src);
    free(cap);
    return st;
}

/* ---- sign ---- */

/* A key or certificate file that cannot be read is malformed input. */
static nvm_status input_status(nvm_status st)
{
    return st == NVM_E_IO ? NVM_E_FORMAT : st;
}

nvm_status nvm_capsule_sign_file(const char *in_path, const char *key_pem, const char *cert_pem,
                                 const char *chain_pem, const char *out_path, nvm_sign_info *info,
                                 nvm_error *err)
{
    nvm_capsule c;
    nvm_key *key = NULL;
    nvm_certs *certs = NULL;
    uint8_t *signed_buf = NULL;
    size_t signed_len = 0;
    char why[NVM_WHY_MAX];
    nvm_sign_info dummy;
    memset(&c, 0, sizeof c);
    if (info == NULL)
        info = &dummy;
    memset(info, 0, sizeof *info);

    nvm_status st = nvm_capsule_open(in_path, &c, err);
    if (st != NVM_OK) {
        nvm_api_default_file(err, in_path);
        goto fail;
    }
    st = nvm_key_read_pem(key_pem, &key, why);
    if (st != NVM_OK) {
        st = nvm_api_fail(err, input_status(st), NULL, "%s", why);
        goto fail;
    }
    if (nvm_certs_new(&certs) != NVM_OK) {
        st = nvm_api_fail(err, NVM_E_INTERNAL, NULL, "out of memory");
        goto fail;
    }
    const char *files[2] = {cert_pem, chain_pem};
    for (int i = 0; i < 2; i++) {
        if (files[i] == NULL)
            continue;
        st = nvm_certs_add_pem_file(certs, files[i], why);
        if (st != NVM_OK) {
            st = nvm_api_fail(err, input_status(st), NULL, "%s", why);
            goto fail;
        }
    }
    if (nvm_certs_count(certs) > 0) {
        uint8_t kpub[NVM_ED25519_PUB_LEN], cpub[NVM_ED25519_PUB_LEN];
        nvm_key_public(key, kpub);
        if (nvm_certs_pubkey(certs, 0, cpub, why) != NVM_OK || memcmp(kpub, cpub, sizeof kpub) != 0)
            info->cert_mismatch = true;
    }
    st = nvm_capsule_sign(&c, key, certs, &signed_buf, &signed_len, err);
    if (st != NVM_OK) {
        nvm_api_default_file(err, in_path);
        goto fail;
    }
    struct stat sb;
    int mode = -1;
    if ((out_path == NULL || out_path == in_path) && stat(in_path, &sb) == 0)
        mode = (int)(sb.st_mode & 07777);
    st = nvm_api_write_atomic(out_path != NULL ? out_path : in_path, signed_buf, signed_len, mode,
                              err);
    if (st != NVM_OK)
        goto fail;
    key_fingerprint(key, info->fingerprint);
    info->ncerts = nvm_certs_count(certs);
fail:
    free(signed_buf);
    nvm_certs_free(certs);
    nvm_key_free(key);
    nvm_capsule_close(&c);
    return st;
}

/* ---- inspect ---- */

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char *h = malloc(2 * n + 1);
    if (h == NULL)
        return json_null();
    nvm_hex(p, n, h);
    json_t *s = json_string(h);
    free(h);
    return s;
}

static json_t *sha_json(const uint8_t *p, size_t n)
{
    uint8_t d[NVM_SHA256_LEN];
    nvm_sha256(p, n, d);
    return hex_json(d, sizeof d);
}

static json_t *limits_json(const nvm_limits *l)
{
    json_t *o = json_object();
    const int64_t v[4] = {l->gas, l->memory, l->stack, l->wall_ms};
    const char *k[4] = {"gas", "memory", "stack", "wall_ms"};
    for (int i = 0; i < 4; i++)
        if (v[i] >= 0)
            json_object_set_new(o, k[i], json_integer(v[i]));
    return o;
}

static json_t *manifest_json(const nvm_manifest *m)
{
    json_t *o = json_object(), *authors = json_array(), *caps = json_array();
    json_object_set_new(o, "name", json_string(m->name));
    json_object_set_new(o, "version", json_string(m->version_text));
    json_object_set_new(o, "entry", json_string(m->entry));
    json_object_set_new(o, "description",
                        m->description != NULL ? json_string(m->description) : json_null());
    for (size_t i = 0; i < m->nauthors; i++)
        json_array_append_new(authors, json_string(m->authors[i]));
    json_object_set_new(o, "authors", authors);
    for (size_t i = 0; i < m->ncaps; i++)
        json_array_append_new(caps, json_string(m->caps[i].text));
    json_object_set_new(o, "capabilities", caps);
    json_object_set_new(o, "limits", limits_json(&m->limits));
    return o;
}

/* The signature block and the chain (certificates as carried, leaf first). Returns false when a
 * certificate does not parse (its entry then carries "error"). */
static bool inspect_signature(const nvm_capsule *c, json_t *o)
{
    bool ok = true;
    json_t *chain = json_array();
    if (!c->has_signature) {
        json_object_set_new(o, "signature", json_null());
        json_object_set_new(o, "chain", chain);
        return true;
    }
    json_t *s = json_object();
    char alg[32];
    if (c->sig_alg == 1)
        snprintf(alg, sizeof alg, "ed25519");
    else
        snprintf(alg, sizeof alg, "unknown (%u)", (unsigned)c->sig_alg);
    json_object_set_new(s, "algorithm", json_string(alg));
    json_object_set_new(s, "public_key", hex_json(c->pubkey, sizeof c->pubkey));
    json_object_set_new(s, "key_fingerprint", sha_json(c->pubkey, sizeof c->pubkey));
    json_object_set_new(s, "signature", hex_json(c->signature, sizeof c->signature));
    json_object_set_new(s, "certificates", json_integer((json_int_t)c->ncerts));
    json_object_set_new(o, "signature", s);
    for (size_t i = 0; i < c->ncerts; i++) {
        json_t *e = json_object();
        nvm_certs *one = NULL;
        char why[NVM_WHY_MAX], subj[256], ser[256], nb[256], na[256], fp[256];
        uint8_t pub[NVM_ED25519_PUB_LEN];
        json_object_set_new(e, "index", json_integer((json_int_t)i));
        json_object_set_new(e, "length", json_integer((json_int_t)c->certs[i].len));
        if (nvm_certs_new(&one) != NVM_OK ||
            nvm_certs_add_der(one, c->certs[i].p, c->certs[i].len, why) != NVM_OK) {
            json_object_set_new(e, "error", json_string(one != NULL ? why : "out of memory"));
            ok = false;
        } else {
            nvm_certs_describe(one, 0, subj, ser, nb, na, fp);
            json_object_set_new(e, "subject", json_string(subj));
            json_object_set_new(e, "serial", json_string(ser));
            json_object_set_new(e, "not_before", json_string(nb));
            json_object_set_new(e, "not_after", json_string(na));
            json_object_set_new(e, "fingerprint", json_string(fp));
            if (nvm_certs_pubkey(one, 0, pub, why) == NVM_OK)
                json_object_set_new(e, "key_fingerprint", sha_json(pub, sizeof pub));
            else
                json_object_set_new(e, "key_fingerprint", json_null());
        }
        nvm_certs_free(one);
        json_array_append_new(chain, e);
    }
    json_object_set_new(o, "chain", chain);
    return ok;
}

/* The whole report as JSON; the text form is written from the same object. */
static json_t *inspect_build(const char *file, const nvm_capsule *c, const nvm_manifest *m,
                             bool *certs_ok)
{
    json_t *o = json_object();
    uint8_t d[NVM_SHA256_LEN];
    json_object_set_new(o, "file", json_string(file));
    json_object_set_new(o, "size", json_integer((json_int_t)c->len));
    json_object_set_new(o, "format_version", json_integer(c->version));
    json_object_set_new(o, "signed_length", json_integer((json_int_t)c->signed_len));
    json_object_set_new(o, "capsule_digest", hex_json(c->digest, sizeof c->digest));
    nvm_capsule_signed_digest(c, d);
    json_object_set_new(o, "signed_digest", hex_json(d, sizeof d));

    json_t *secs = json_array();
    for (size_t i = 0; i < nvm_capsule_section_count(c); i++) {
        nvm_section_info si;
        nvm_capsule_section_get(c, i, &si);
        json_t *s = json_object();
        json_object_set_new(s, "index", json_integer((json_int_t)i + 1));
        json_object_set_new(s, "type", json_string(nvm_capsule_section_type_name(si.type)));
        json_object_set_new(s, "type_code", json_integer(si.type));
        json_object_set_new(s, "critical", json_boolean(si.flags & NVM_SEC_CRITICAL));
        json_object_set_new(s, "offset", json_integer((json_int_t)si.offset));
        json_object_set_new(s, "length", json_integer((json_int_t)si.length));
        json_object_set_new(s, "sha256", sha_json(c->data + si.offset, (size_t)si.length));
        json_array_append_new(secs, s);
    }
    json_object_set_new(o, "sections", secs);
    json_object_set_new(o, "manifest", manifest_json(m));

    json_t *assets = json_array();
    for (size_t i = 0; i < c->nassets; i++) {
        json_t *a = json_object();
        json_object_set_new(a, "name",
                            json_stringn((const char *)c->assets[i].name.p, c->assets[i].name.len));
        json_object_set_new(a, "length", json_integer((json_int_t)c->assets[i].data.len));
        json_object_set_new(a, "sha256", sha_json(c->assets[i].data.p, c->assets[i].data.len));
        json_array_append_new(assets, a);
    }
    json_object_set_new(o, "assets", assets);
    *certs_ok = inspect_signature(c, o);
    return o;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void text_list(nvm_tb *b, const char *label, const json_t *arr)
{
    nvm_tb_printf(b, "  %-13s", label);
    if (json_array_size(arr) == 0)
        nvm_tb_puts(b, "(none)");
    for (size_t i = 0; i < json_array_size(arr); i++)
        nvm_tb_printf(b, "%s%s", i ? ", " : "", json_string_value(json_array_get(arr, i)));
    nvm_tb_puts(b, "\n");
}

static void text_manifest(nvm_tb *b, const json_t *m)
{
    nvm_tb_puts(b, "manifest:\n");
    nvm_tb_printf(b, "  %-13s%s\n", "name", jstr(m, "name"));
    nvm_tb_printf(b, "  %-13s%s\n", "version", jstr(m, "version"));
    nvm_tb_printf(b, "  %-13s%s\n", "entry", jstr(m, "entry"));
    if (json_is_string(json_object_get(m, "description")))
        nvm_tb_printf(b, "  %-13s%s\n", "description", jstr(m, "description"));
    text_list(b, "authors", json_object_get(m, "authors"));
    text_list(b, "capabilities", json_object_get(m, "capabilities"));
    nvm_tb_printf(b, "  %-13s", "limits");
    const json_t *lim = json_object_get(m, "limits");
    const char *key;
    const json_t *v;
    if (json_object_size(lim) == 0)
        nvm_tb_puts(b, "(none)");
    int first = 1;
    json_object_foreach((json_t *)lim, key, v)
    {
        nvm_tb_printf(b, "%s%s=%lld", first ? "" : " ", key, (long long)json_integer_value(v));
        first = 0;
    }
    nvm_tb_puts(b, "\n");
}

static void text_chain(nvm_tb *b, const json_t *chain)
{
    if (json_array_size(chain) == 0) {
        nvm_tb_puts(b, "chain: none\n");
        return;
    }
    nvm_tb_puts(b, "chain (leaf first):\n");
    for (size_t i = 0; i < json_array_size(chain); i++) {
        const json_t *e = json_array_get(chain, i);
        if (json_object_get(e, "error") != NULL) {
            nvm_tb_printf(b, "  [%zu] unreadable certificate (%lld bytes): %s\n", i,
                          jint(e, "length"), jstr(e, "error"));
            continue;
        }
        nvm_tb_printf(b, "  [%zu] subject          %s\n", i, jstr(e, "subject"));
        nvm_tb_printf(b, "      serial           %s\n", jstr(e, "serial"));
        nvm_tb_printf(b, "      valid            %s to %s\n", jstr(e, "not_before"),
                      jstr(e, "not_after"));
        nvm_tb_printf(b, "      fingerprint      %s\n", jstr(e, "fingerprint"));
        if (json_is_string(json_object_get(e, "key_fingerprint")))
            nvm_tb_printf(b, "      key fingerprint  %s\n", jstr(e, "key_fingerprint"));
    }
}

static void inspect_text(nvm_tb *b, const json_t *o)
{
    nvm_tb_printf(b, "capsule %s: %lld bytes, format version %lld\n", jstr(o, "file"),
                  jint(o, "size"), jint(o, "format_version"));
    nvm_tb_printf(b, "  capsule digest  %s\n", jstr(o, "capsule_digest"));
    nvm_tb_printf(b, "  signed bytes    %lld (digest %s)\n", jint(o, "signed_length"),
                  jstr(o, "signed_digest"));
    nvm_tb_puts(b, "sections:\n");
    const json_t *secs = json_object_get(o, "sections");
    for (size_t i = 0; i < json_array_size(secs); i++) {
        const json_t *s = json_array_get(secs, i);
        nvm_tb_printf(b, "  %lld %-8s %-8s offset %-8lld length %-8lld sha256 %s\n",
                      jint(s, "index"), jstr(s, "type"),
                      json_is_true(json_object_get(s, "critical")) ? "critical" : "",
                      jint(s, "offset"), jint(s, "length"), jstr(s, "sha256"));
    }
    text_manifest(b, json_object_get(o, "manifest"));
    const json_t *assets = json_object_get(o, "assets");
    if (json_array_size(assets) > 0) {
        nvm_tb_puts(b, "assets:\n");
        for (size_t i = 0; i < json_array_size(assets); i++) {
            const json_t *a = json_array_get(assets, i);
            nvm_tb_printf(b, "  %s  %lld bytes  sha256 %s\n", jstr(a, "name"), jint(a, "length"),
                          jstr(a, "sha256"));
        }
    }
    const json_t *s = json_object_get(o, "signature");
    if (json_is_null(s)) {
        nvm_tb_puts(b, "signature: none (unsigned)\n");
        return;
    }
    nvm_tb_puts(b, "signature:\n");
    nvm_tb_printf(b, "  algorithm        %s\n", jstr(s, "algorithm"));
    nvm_tb_printf(b, "  public key       %s\n", jstr(s, "public_key"));
    nvm_tb_printf(b, "  key fingerprint  %s\n", jstr(s, "key_fingerprint"));
    nvm_tb_printf(b, "  signature        %s\n", jstr(s, "signature"));
    text_chain(b, json_object_get(o, "chain"));
}

nvm_status nvm_capsule_inspect_file(const char *path, bool json, char **out_text, nvm_error *err)
{
    nvm_capsule c;
    nvm_manifest m;
    nvm_tb b;
    memset(&m, 0, sizeof m);
    memset(&b, 0, sizeof b);
    *out_text = NULL;
    nvm_status st = nvm_capsule_open(path, &c, err);
    if (st != NVM_OK) {
        nvm_api_default_file(err, path);
        return st;
    }
    st = nvm_manifest_parse((const char *)c.manifest.p, c.manifest.len, &m, err);
    if (st != NVM_OK) {
        nvm_api_default_file(err, path);
        goto done;
    }
    bool certs_ok = true;
    json_t *o = inspect_build(path, &c, &m, &certs_ok);
    if (json) {
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s != NULL)
            nvm_tb_printf(&b, "%s\n", s);
        else
            b.oom = true;
        free(s);
    } else {
        inspect_text(&b, o);
    }
    json_decref(o);
    st = nvm_tb_take(&b, out_text, err);
    if (st == NVM_OK && !certs_ok)
        st = nvm_api_fail(err, NVM_E_FORMAT, path,
                          "a certificate in the signature block is malformed");
done:
    nvm_manifest_free(&m);
    nvm_capsule_close(&c);
    return st;
}
