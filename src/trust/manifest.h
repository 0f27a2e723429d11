/* manifest.h - the capsule manifest (JSON via jansson) and the capability string grammar.
 * Keys: name (required; [A-Za-z0-9._-]{1,128}), version (required, semver 2.0.0),
 * entry (default "main"), description, authors (array of strings), capabilities (array of
 * capability strings), limits (object: gas, memory, stack, wall_ms: non-negative integers).
 * Unknown keys are an error. */
#ifndef NVM_MANIFEST_H
#define NVM_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"

/* A capability string "type.action" or "type.action:scope". type and action are
 * [a-z][a-z0-9_]*; the scope is non-empty printable ASCII without spaces when present. */
typedef struct nvm_capreq {
    char type[32];
    char action[32];
    char scope[512]; /* "" when absent */
    char text[600];  /* the string as written */
} nvm_capreq;

/* NVM_OK, or NVM_E_FORMAT with a reason ("capability \"fs\": expected type.action"). */
nvm_status nvm_capreq_parse(const char *s, nvm_capreq *out, char *why, size_t whylen);

typedef struct nvm_limits {
    int64_t gas; /* -1: not set */
    int64_t memory;
    int64_t stack;
    int64_t wall_ms;
} nvm_limits;

typedef struct nvm_semver {
    uint64_t major, minor, patch;
    char pre[64]; /* pre-release identifiers, "" when none */
} nvm_semver;

typedef struct nvm_manifest {
    char name[129];
    char version_text[96];
    nvm_semver version;
    char entry[256];
    char *description; /* malloc'ed, may be NULL */
    char **authors;    /* malloc'ed */
    size_t nauthors;
    nvm_capreq *caps; /* malloc'ed */
    size_t ncaps;
    nvm_limits limits;
} nvm_manifest;

/* Parse and validate; err->message names the key at fault. */
nvm_status nvm_manifest_parse(const char *json, size_t len, nvm_manifest *out, nvm_error *err);
void nvm_manifest_free(nvm_manifest *m);
/* -1, 0, 1 by semver precedence. */
int nvm_semver_cmp(const nvm_semver *a, const nvm_semver *b);
nvm_status nvm_semver_parse(const char *s, nvm_semver *out);

#endif
