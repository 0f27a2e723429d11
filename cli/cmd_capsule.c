/* cmd_capsule.c - the key and capsule commands: keygen, pack, sign, inspect.
 * inspect reports what a capsule contains; it does not decide whether to trust it (verify does).
 * Exit statuses: 0 ok, 2 usage, 3 malformed input, 70 output or internal failure. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "commands.h"
#include "nanovm.h"
#include "trust/capsule.h"
#include "trust/crypto.h"
#include "trust/manifest.h"

#define EXIT_USAGE 2
#define EXIT_INPUT 3
#define EXIT_OUTPUT 70

static int usage(const char *fmt, const char *arg)
{
    fputs("nanovm: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(run 'nanovm --help' for usage)\n", stderr);
    return EXIT_USAGE;
}

static int input_error(const char *file, const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "nanovm: %s: %s\n", file, msg);
    return EXIT_INPUT;
}

static int report(const nvm_error *err, const char *file, nvm_status st)
{
    fflush(stdout);
    fprintf(stderr, "nanovm: %s: %s\n", err->file[0] ? err->file : file, err->message);
    return nvm_status_exit_code(st);
}

/* Exit status for a failure of an input file read (cannot open = malformed input, 3). */
static int status_exit(nvm_status st)
{
    return st == NVM_E_IO ? EXIT_INPUT : nvm_status_exit_code(st);
}

/* Reads a whole file into malloc'ed memory; 0 or an exit status after printing why. */
static int slurp(const char *path, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return input_error(path, strerror(errno));
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    int rc = 0;
    if (buf == NULL)
        goto oom;
    for (;;) {
        if (len == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (nb == NULL)
                goto oom;
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = input_error(path, "read error");
        free(buf);
        goto done;
    }
    *out = buf;
    *out_len = len;
    goto done;
oom:
    free(buf);
    fprintf(stderr, "nanovm: out of memory reading %s\n", path);
    rc = EXIT_OUTPUT;
done:
    fclose(f);
    return rc;
}

/* Writes data to path through a temporary file in the same directory and a rename, so that a
 * reader never sees a partial file. `mode` is the new file's permission bits. */
static int write_atomic(const char *path, const uint8_t *data, size_t len, mode_t mode)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    int fd = -1;
    if (tmp == NULL) {
        fprintf(stderr, "nanovm: out of memory\n");
        return EXIT_OUTPUT;
    }
    snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0)
        goto fail;
    if (fchmod(fd, mode) != 0)
        goto fail_unlink;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail_unlink;
        off += (size_t)n;
    }
    if (fsync(fd) != 0)
        goto fail_unlink;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_unlink;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail_unlink;
    free(tmp);
    return 0;
fail_unlink : {
    int e = errno;
    unlink(tmp);
    errno = e;
}
fail:
    fprintf(stderr, "nanovm: cannot write %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(tmp);
    return EXIT_OUTPUT;
}

static mode_t default_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

/* ---- keygen ---- */

int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0) {
            if (++i >= argc)
                return usage("-o needs a file name%s", "");
            out = argv[i];
        } else {
            return usage("unknown argument '%s' for keygen", argv[i]);
        }
    }
    if (out == NULL)
        return usage("usage: nanovm keygen -o KEY.pem%s", "");
    nvm_key *k = NULL;
    char why[NVM_WHY_MAX];
    nvm_status st = nvm_key_generate(&k, why);
    if (st == NVM_OK)
        st = nvm_key_write_pem(k, out, why);
    if (st != NVM_OK) {
        fprintf(stderr, "nanovm: %s\n", why);
        nvm_key_free(k);
        return nvm_status_exit_code(st);
    }
    uint8_t pub[NVM_ED25519_PUB_LEN], fp[NVM_SHA256_LEN];
    char hex[2 * NVM_SHA256_LEN + 1];
    nvm_key_public(k, pub);
    nvm_sha256(pub, sizeof pub, fp);
    nvm_hex(fp, sizeof fp, hex);
    printf("wrote %s (Ed25519, key fingerprint %s)\n", out, hex);
    nvm_key_free(k);
    return 0;
}

/* ---- pack ---- */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

int cmd_pack(int argc, char **argv)
{
    const char *manifest_path = NULL, *out = NULL, *prog = NULL;
    const char **asset_paths = calloc((size_t)argc + 1, sizeof *asset_paths);
    size_t nassets = 0;
    int rc = 0;
    uint8_t *mtext = NULL, *src = NULL, *cap = NULL, *bc = NULL;
    size_t mlen = 0, srclen = 0, caplen = 0, bclen = 0;
    uint8_t **adata = calloc((size_t)argc + 1, sizeof *adata);
    nvm_asset *assets = calloc((size_t)argc + 1, sizeof *assets);
    nvm_module *m = NULL;
    nvm_manifest man;
    nvm_error err;
    nvm_status st;
    memset(&man, 0, sizeof man);
    memset(&err, 0, sizeof err);

    if (asset_paths == NULL || adata == NULL || assets == NULL) {
        fprintf(stderr, "nanovm: out of memory\n");
        rc = EXIT_OUTPUT;
        goto fail;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--manifest") == 0 || strcmp(a, "-o") == 0 || strcmp(a, "--asset") == 0) {
            if (++i >= argc) {
                rc = usage("%s needs a file name", a);
                goto fail;
            }
            if (strcmp(a, "--manifest") == 0)
                manifest_path = argv[i];
            else if (strcmp(a, "-o") == 0)
                out = argv[i];
            else
                asset_paths[nassets++] = argv[i];
        } else if (a[0] == '-' && a[1] != '\0') {
            rc = usage("unknown option '%s' for pack", a);
            goto fail;
        } else if (prog == NULL) {
            prog = a;
        } else {
            rc = usage("pack takes one program file, got another: '%s'", a);
            goto fail;
        }
    }
    if (manifest_path == NULL || out == NULL || prog == NULL) {
        rc = usage("usage: nanovm pack --manifest M.json -o APP.cap PROGRAM [--asset FILE]...%s",
                   "");
        goto fail;
    }
    if ((rc = slurp(manifest_path, &mtext, &mlen)) != 0)
        goto fail;
    st = nvm_manifest_parse((const char *)mtext, mlen, &man, &err);
    if (st != NVM_OK) {
        rc = report(&err, manifest_path, st);
        goto fail;
    }
    if ((rc = slurp(prog, &src, &srclen)) != 0)
        goto fail;
    nvm_config cfg;
    nvm_config_init(&cfg);
    st = nvm_module_load(&cfg, src, srclen, prog, &m, &err);
    if (st == NVM_OK)
        st = nvm_module_set_entry(m, man.entry, &err);
    if (st == NVM_OK)
        st = nvm_module_to_bytecode(m, &bc, &bclen, &err);
    if (st != NVM_OK) {
        rc = report(&err, prog, st);
        goto fail;
    }
    for (size_t i = 0; i < nassets; i++) {
        size_t alen = 0;
        if ((rc = slurp(asset_paths[i], &adata[i], &alen)) != 0)
            goto fail;
        const char *name = base_name(asset_paths[i]);
        assets[i].name.p = (const uint8_t *)name;
        assets[i].name.len = strlen(name);
        assets[i].data.p = adata[i];
        assets[i].data.len = alen;
    }
    st = nvm_capsule_build(mtext, mlen, bc, bclen, assets, nassets, &cap, &caplen, &err);
    if (st != NVM_OK) {
        rc = report(&err, out, st);
        goto fail;
    }
    if ((rc = write_atomic(out, cap, caplen, default_mode())) != 0)
        goto fail;
    printf("packed %s: %s %s, %zu bytes (unsigned)\n", out, man.name, man.version_text, caplen);
fail:
    if (bc != NULL)
        nvm_module_free_buffer(m, bc, bclen);
    nvm_module_free(m);
    nvm_manifest_free(&man);
    for (size_t i = 0; adata != NULL && i < nassets; i++)
        free(adata[i]);
    free(adata);
    free(assets);
    free(asset_paths);
    free(mtext);
    free(src);
    free(cap);
    return rc;
}

/* ---- sign ---- */

int cmd_sign(int argc, char **argv)
{
    const char *keyp = NULL, *certp = NULL, *chainp = NULL, *in = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--key") == 0     ? &keyp
                            : strcmp(a, "--cert") == 0  ? &certp
                            : strcmp(a, "--chain") == 0 ? &chainp
                            : strcmp(a, "-o") == 0      ? &out
                                                        : NULL;
        if (slot != NULL) {
            if (++i >= argc)
                return usage("%s needs a file name", a);
            *slot = argv[i];
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage("unknown option '%s' for sign", a);
        } else if (in == NULL) {
            in = a;
        } else {
            return usage("sign takes one capsule, got another: '%s'", a);
        }
    }
    if (keyp == NULL || in == NULL)
        return usage("usage: nanovm sign --key KEY.pem [--cert LEAF.pem] [--chain "
                     "INTERMEDIATES.pem] APP.cap [-o OUT.cap]%s",
                     "");
    if (chainp != NULL && certp == NULL)
        return usage("--chain needs --cert (the leaf certificate)%s", "");
    if (out == NULL)
        out = in;

    int rc = 0;
    nvm_capsule c;
    nvm_key *key = NULL;
    nvm_certs *certs = NULL;
    uint8_t *signed_buf = NULL;
    size_t signed_len = 0;
    nvm_error err;
    char why[NVM_WHY_MAX];
    memset(&c, 0, sizeof c);
    memset(&err, 0, sizeof err);

    nvm_status st = nvm_capsule_open(in, &c, &err);
    if (st != NVM_OK) {
        rc = report(&err, in, st);
        goto fail;
    }
    st = nvm_key_read_pem(keyp, &key, why);
    if (st != NVM_OK) {
        fprintf(stderr, "nanovm: %s\n", why);
        rc = status_exit(st);
        goto fail;
    }
    if (nvm_certs_new(&certs) != NVM_OK) {
        rc = EXIT_OUTPUT;
        goto fail;
    }
    const char *files[2] = {certp, chainp};
    for (int i = 0; i < 2; i++) {
        if (files[i] == NULL)
            continue;
        st = nvm_certs_add_pem_file(certs, files[i], why);
        if (st != NVM_OK) {
            fprintf(stderr, "nanovm: %s\n", why);
            rc = status_exit(st);
            goto fail;
        }
    }
    if (nvm_certs_count(certs) > 0) {
        uint8_t kpub[NVM_ED25519_PUB_LEN], cpub[NVM_ED25519_PUB_LEN];
        nvm_key_public(key, kpub);
        if (nvm_certs_pubkey(certs, 0, cpub, why) != NVM_OK || memcmp(kpub, cpub, sizeof kpub) != 0)
            fprintf(stderr,
                    "nanovm: warning: the certificate in %s is not for this key; "
                    "verification will reject the chain\n",
                    certp);
    }
    st = nvm_capsule_sign(&c, key, certs, &signed_buf, &signed_len, &err);
    if (st != NVM_OK) {
        rc = report(&err, in, st);
        goto fail;
    }
    struct stat sb;
    mode_t mode = (out == in && stat(in, &sb) == 0) ? (sb.st_mode & 07777) : default_mode();
    if ((rc = write_atomic(out, signed_buf, signed_len, mode)) != 0)
        goto fail;
    uint8_t pub[NVM_ED25519_PUB_LEN], fp[NVM_SHA256_LEN];
    char hex[2 * NVM_SHA256_LEN + 1];
    nvm_key_public(key, pub);
    nvm_sha256(pub, sizeof pub, fp);
    nvm_hex(fp, sizeof fp, hex);
    printf("signed %s: key fingerprint %s, %zu certificate%s\n", out, hex, nvm_certs_count(certs),
           nvm_certs_count(certs) == 1 ? "" : "s");
fail:
    free(signed_buf);
    nvm_certs_free(certs);
    nvm_key_free(key);
    nvm_capsule_close(&c);
    return rc;
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

/* Builds the whole report as JSON; the text form is printed from the same object. Returns an
 * exit status (3 when a certificate does not parse) and the report in *out. */
static int inspect_build(const char *file, const nvm_capsule *c, const nvm_manifest *m,
                         json_t **out)
{
    int rc = 0;
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

    json_t *chain = json_array();
    if (c->has_signature) {
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
                rc = EXIT_INPUT;
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
    } else {
        json_object_set_new(o, "signature", json_null());
    }
    json_object_set_new(o, "chain", chain);
    *out = o;
    return rc;
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

static void print_list(const char *label, const json_t *arr)
{
    printf("  %-13s", label);
    if (json_array_size(arr) == 0)
        printf("(none)");
    for (size_t i = 0; i < json_array_size(arr); i++)
        printf("%s%s", i ? ", " : "", json_string_value(json_array_get(arr, i)));
    printf("\n");
}

static void inspect_text(const json_t *o)
{
    printf("capsule %s: %lld bytes, format version %lld\n", jstr(o, "file"), jint(o, "size"),
           jint(o, "format_version"));
    printf("  capsule digest  %s\n", jstr(o, "capsule_digest"));
    printf("  signed bytes    %lld (digest %s)\n", jint(o, "signed_length"),
           jstr(o, "signed_digest"));
    printf("sections:\n");
    const json_t *secs = json_object_get(o, "sections");
    for (size_t i = 0; i < json_array_size(secs); i++) {
        const json_t *s = json_array_get(secs, i);
        printf("  %lld %-8s %-8s offset %-8lld length %-8lld sha256 %s\n", jint(s, "index"),
               jstr(s, "type"), json_is_true(json_object_get(s, "critical")) ? "critical" : "",
               jint(s, "offset"), jint(s, "length"), jstr(s, "sha256"));
    }
    const json_t *m = json_object_get(o, "manifest");
    printf("manifest:\n");
    printf("  %-13s%s\n", "name", jstr(m, "name"));
    printf("  %-13s%s\n", "version", jstr(m, "version"));
    printf("  %-13s%s\n", "entry", jstr(m, "entry"));
    if (json_is_string(json_object_get(m, "description")))
        printf("  %-13s%s\n", "description", jstr(m, "description"));
    print_list("authors", json_object_get(m, "authors"));
    print_list("capabilities", json_object_get(m, "capabilities"));
    printf("  %-13s", "limits");
    const json_t *lim = json_object_get(m, "limits");
    const char *key;
    const json_t *v;
    if (json_object_size(lim) == 0)
        printf("(none)");
    int first = 1;
    json_object_foreach((json_t *)lim, key, v)
    {
        printf("%s%s=%lld", first ? "" : " ", key, (long long)json_integer_value(v));
        first = 0;
    }
    printf("\n");
    const json_t *assets = json_object_get(o, "assets");
    if (json_array_size(assets) > 0) {
        printf("assets:\n");
        for (size_t i = 0; i < json_array_size(assets); i++) {
            const json_t *a = json_array_get(assets, i);
            printf("  %s  %lld bytes  sha256 %s\n", jstr(a, "name"), jint(a, "length"),
                   jstr(a, "sha256"));
        }
    }
    const json_t *s = json_object_get(o, "signature");
    if (json_is_null(s)) {
        printf("signature: none (unsigned)\n");
        return;
    }
    printf("signature:\n");
    printf("  algorithm        %s\n", jstr(s, "algorithm"));
    printf("  public key       %s\n", jstr(s, "public_key"));
    printf("  key fingerprint  %s\n", jstr(s, "key_fingerprint"));
    printf("  signature        %s\n", jstr(s, "signature"));
    const json_t *chain = json_object_get(o, "chain");
    if (json_array_size(chain) == 0) {
        printf("chain: none\n");
        return;
    }
    printf("chain (leaf first):\n");
    for (size_t i = 0; i < json_array_size(chain); i++) {
        const json_t *e = json_array_get(chain, i);
        if (json_object_get(e, "error") != NULL) {
            printf("  [%zu] unreadable certificate (%lld bytes): %s\n", i, jint(e, "length"),
                   jstr(e, "error"));
            continue;
        }
        printf("  [%zu] subject          %s\n", i, jstr(e, "subject"));
        printf("      serial           %s\n", jstr(e, "serial"));
        printf("      valid            %s to %s\n", jstr(e, "not_before"), jstr(e, "not_after"));
        printf("      fingerprint      %s\n", jstr(e, "fingerprint"));
        if (json_is_string(json_object_get(e, "key_fingerprint")))
            printf("      key fingerprint  %s\n", jstr(e, "key_fingerprint"));
    }
}

int cmd_inspect(int argc, char **argv)
{
    const char *file = NULL;
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage("unknown option '%s' for inspect", argv[i]);
        else if (file == NULL)
            file = argv[i];
        else
            return usage("inspect takes one capsule, got another: '%s'", argv[i]);
    }
    if (file == NULL)
        return usage("usage: nanovm inspect [--json] APP.cap%s", "");
    nvm_capsule c;
    nvm_manifest m;
    nvm_error err;
    memset(&err, 0, sizeof err);
    memset(&m, 0, sizeof m);
    nvm_status st = nvm_capsule_open(file, &c, &err);
    if (st != NVM_OK)
        return report(&err, file, st);
    int rc;
    st = nvm_manifest_parse((const char *)c.manifest.p, c.manifest.len, &m, &err);
    if (st != NVM_OK) {
        rc = report(&err, file, st);
    } else {
        json_t *o = NULL;
        rc = inspect_build(file, &c, &m, &o);
        if (as_json) {
            char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (s != NULL) {
                puts(s);
                free(s);
            }
        } else {
            inspect_text(o);
        }
        json_decref(o);
        if (rc != 0) {
            fflush(stdout);
            fprintf(stderr, "nanovm: %s: a certificate in the signature block is malformed\n",
                    file);
        }
    }
    nvm_manifest_free(&m);
    nvm_capsule_close(&c);
    return rc;
}
