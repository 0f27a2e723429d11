/* policy.h - the trust policy (JSON via jansson; docs/policy.md).
 * Paths in the file are relative to the policy file's directory. Without a policy file the
 * built-in default applies (documented in docs/policy.md): no roots, no pins, min_level
 * "restricted", on_invalid_signature "reject", every level runs on the interpreter with the
 * VM's default limits, tier overrides allowed, no state dir, no audit log. Unknown keys are an
 * error. */
#ifndef NVM_POLICY_H
#define NVM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"
#include "crypto.h"
#include "manifest.h"

typedef enum nvm_trust_level {
    NVM_LEVEL_REJECTED = 0,
    NVM_LEVEL_RESTRICTED = 1,
    NVM_LEVEL_SANDBOXED = 2,
    NVM_LEVEL_VERIFIED = 3,
    NVM_LEVEL_TRUSTED = 4
} nvm_trust_level;
#define NVM_LEVEL_COUNT 5

const char *nvm_level_name(nvm_trust_level l);         /* "trusted" ... "rejected" */
int nvm_level_lookup(const char *s);                    /* -1 when unknown */

typedef struct nvm_level_policy {
    char **caps;           /* ceiling: capability patterns allowed at this level */
    size_t ncaps;
    char **deny;           /* deny patterns (override any allow) */
    size_t ndeny;
    nvm_limits limits;     /* -1 fields: the VM defaults */
    char tier[16];         /* "auto", "interp", ... */
} nvm_level_policy;

typedef struct nvm_policy {
    char *path;            /* file it came from, NULL for the built-in default */
    char *dir;             /* base for relative paths */
    nvm_certs *roots;      /* trust_roots */
    uint8_t (*pinned)[NVM_ED25519_PUB_LEN];
    size_t npinned;
    char **revoked_keys;   /* SHA-256 of raw public keys, lower-case hex */
    size_t nrevoked_keys;
    char **revoked_serials;/* lower-case hex, no leading zeros stripped: compared as written */
    size_t nrevoked_serials;
    char **revoked_capsules; /* SHA-256 of capsule files, lower-case hex */
    size_t nrevoked_capsules;
    nvm_trust_level min_level;
    bool invalid_signature_sandbox; /* on_invalid_signature: "sandbox" */
    char *state_dir;       /* absolute or NULL (no rollback protection) */
    char *audit_log;       /* absolute or NULL */
    bool allow_tier_override;
    nvm_level_policy levels[NVM_LEVEL_COUNT]; /* indexed by level (REJECTED unused) */
} nvm_policy;

/* Load from a file (NULL path: the default location NVM_POLICY_DEFAULT_PATH if it exists, else
 * the built-in default). Errors: NVM_E_FORMAT with a message naming the key. */
#define NVM_POLICY_DEFAULT_PATH "/etc/nanovm/policy.json"
nvm_status nvm_policy_load(const char *path, nvm_policy *out, nvm_error *err);
void nvm_policy_default(nvm_policy *out);
void nvm_policy_free(nvm_policy *p);

/* Capability patterns: "*" covers everything, "type.*" every action of a type, "type.action"
 * every scope of that type.action; any other pattern must equal the capability text. */
bool nvm_cap_pattern_match(const char *pattern, const nvm_capreq *c);
/* A capability is allowed at a level when a `capabilities` pattern covers it and no `deny`
 * pattern does. Nothing is allowed at NVM_LEVEL_REJECTED. */
bool nvm_level_allows(const nvm_policy *p, nvm_trust_level l, const nvm_capreq *c);

#endif
