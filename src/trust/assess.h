/* assess.h - the trust decision for a capsule under a policy. */
#ifndef NVM_ASSESS_H
#define NVM_ASSESS_H

#include "capsule.h"
#include "manifest.h"
#include "policy.h"

#define NVM_MAX_REASONS 16

typedef struct nvm_chain_entry {
    char subject[256];
    char serial[128];
    char not_before[64];
    char not_after[64];
    char fingerprint[65];
} nvm_chain_entry;

typedef struct nvm_decision {
    nvm_trust_level level;
    bool may_run;             /* level >= policy min_level and not rejected */
    char signer_subject[256]; /* "" when no certificate */
    char signer_key[65];      /* SHA-256 of the raw public key, hex; "" when unsigned */
    char capsule_digest[65];
    nvm_chain_entry chain[8];
    size_t nchain;
    char reasons[NVM_MAX_REASONS][256];
    size_t nreasons;
    char tier[16];     /* the tier this level runs on */
    nvm_limits limits; /* effective limits: min(manifest, level policy) */
    bool unmetered;    /* no gas metering: trusted, the policy's gas_metering false, and neither
                          a gas nor a wall_ms limit in effect */
} nvm_decision;

/* Assess signature, chain, pins, revocation, rollback (reads, never writes, the state), level
 * floor. Never fails for a bad capsule: the decision says Rejected with reasons. Returns an
 * error status only for internal failures. `now` in seconds since the epoch. */
nvm_status nvm_assess(const nvm_capsule *c, const nvm_manifest *m, const nvm_policy *p, int64_t now,
                      nvm_decision *out, nvm_error *err);
/* Record the version that ran (rollback state), after a decision allowed the run. */
nvm_status nvm_rollback_record(const nvm_policy *p, const nvm_manifest *m, const nvm_decision *d,
                               nvm_error *err);

#endif
