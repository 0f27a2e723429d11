/* cmd_capsule.c - the key and capsule commands: keygen, pack, sign, inspect. The work is done by
 * the library (nvm_keygen_file, nvm_capsule_pack_file, nvm_capsule_sign_file,
 * nvm_capsule_inspect_file); this file parses arguments and prints.
 * Exit statuses: 0 ok, 2 usage, 3 malformed input, 70 output or internal failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nanovm.h"
#include "commands.h"

#define EXIT_OUTPUT 70

/* ---- keygen ---- */

int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0) {
            if (++i >= argc)
                return usage_error("-o needs a file name%s", "");
            out = argv[i];
        } else {
            return usage_error("unknown argument '%s' for keygen", argv[i]);
        }
    }
    if (out == NULL)
        return usage_error("usage: nanovm keygen -o KEY.pem%s", "");
    char fp[NVM_FINGERPRINT_LEN];
    nvm_error err;
    if (nvm_keygen_file(out, fp, &err) != NVM_OK)
        return report_error(&err);
    printf("wrote %s (Ed25519, key fingerprint %s)\n", out, fp);
    return 0;
}

/* ---- pack ---- */

int cmd_pack(int argc, char **argv)
{
    const char *manifest_path = NULL, *out = NULL, *prog = NULL;
    const char **asset_paths = calloc((size_t)argc + 1, sizeof *asset_paths);
    size_t nassets = 0;
    int rc = 0;
    if (asset_paths == NULL) {
        fprintf(stderr, "nanovm: out of memory\n");
        return EXIT_OUTPUT;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--manifest") == 0 || strcmp(a, "-o") == 0 || strcmp(a, "--asset") == 0) {
            if (++i >= argc) {
                rc = usage_error("%s needs a file name", a);
                goto done;
            }
            if (strcmp(a, "--manifest") == 0)
                manifest_path = argv[i];
            else if (strcmp(a, "-o") == 0)
                out = argv[i];
            else
                asset_paths[nassets++] = argv[i];
        } else if (a[0] == '-' && a[1] != '\0') {
            rc = usage_error("unknown option '%s' for pack", a);
            goto done;
        } else if (prog == NULL) {
            prog = a;
        } else {
            rc = usage_error("pack takes one program file, got another: '%s'", a);
            goto done;
        }
    }
    if (manifest_path == NULL || out == NULL || prog == NULL) {
        rc = usage_error(
            "usage: nanovm pack --manifest M.json -o APP.cap PROGRAM [--asset FILE]...%s", "");
        goto done;
    }
    nvm_pack_info info;
    nvm_error err;
    if (nvm_capsule_pack_file(manifest_path, prog, asset_paths, nassets, out, &info, &err) !=
        NVM_OK) {
        rc = report_error(&err);
        goto done;
    }
    printf("packed %s: %s %s, %zu bytes (unsigned)\n", out, info.name, info.version, info.size);
done:
    free(asset_paths);
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
                return usage_error("%s needs a file name", a);
            *slot = argv[i];
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s' for sign", a);
        } else if (in == NULL) {
            in = a;
        } else {
            return usage_error("sign takes one capsule, got another: '%s'", a);
        }
    }
    if (keyp == NULL || in == NULL)
        return usage_error("usage: nanovm sign --key KEY.pem [--cert LEAF.pem] [--chain "
                           "INTERMEDIATES.pem] APP.cap [-o OUT.cap]%s",
                           "");
    if (chainp != NULL && certp == NULL)
        return usage_error("--chain needs --cert (the leaf certificate)%s", "");
    nvm_sign_info info;
    nvm_error err;
    nvm_status st = nvm_capsule_sign_file(in, keyp, certp, chainp, out, &info, &err);
    if (info.cert_mismatch)
        fprintf(stderr,
                "nanovm: warning: the certificate in %s is not for this key; "
                "verification will reject the chain\n",
                certp);
    if (st != NVM_OK)
        return report_error(&err);
    printf("signed %s: key fingerprint %s, %zu certificate%s\n", out != NULL ? out : in,
           info.fingerprint, info.ncerts, info.ncerts == 1 ? "" : "s");
    return 0;
}

/* ---- inspect ---- */

int cmd_inspect(int argc, char **argv)
{
    const char *file = NULL;
    bool as_json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error("unknown option '%s' for inspect", argv[i]);
        else if (file == NULL)
            file = argv[i];
        else
            return usage_error("inspect takes one capsule, got another: '%s'", argv[i]);
    }
    if (file == NULL)
        return usage_error("usage: nanovm inspect [--json] APP.cap%s", "");
    char *text = NULL;
    nvm_error err;
    nvm_status st = nvm_capsule_inspect_file(file, as_json, &text, &err);
    if (text != NULL)
        fputs(text, stdout);
    nvm_free_text(text);
    return st == NVM_OK ? 0 : report_error(&err);
}
