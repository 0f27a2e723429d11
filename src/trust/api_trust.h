/* api_trust.h - the trust session behind the public nvm_trust handle (api.c), shared with the
 * reports (api_report.c). */
#ifndef NVM_API_TRUST_H
#define NVM_API_TRUST_H

#include <stdbool.h>

#include "nanovm.h"
#include "assess.h"
#include "audit.h"
#include "capsule.h"
#include "manifest.h"
#include "policy.h"
#include "api_util.h"

/* One capsule under one policy. Invariant: the *_ok flags say which members must be released;
 * dec is valid once nvm_trust_open returned it; dec.tier is the tier the policy picks, and after
 * nvm_trust_run the tier the run used. */
struct nvm_trust {
    char *file;
    nvm_policy policy;
    bool policy_ok;
    nvm_audit *audit;
    nvm_capsule cap;
    bool cap_ok;
    nvm_manifest man;
    bool man_ok;
    nvm_decision dec;
    bool isolate;                        /* the run used (or the policy picks) isolation */
    char reasons[NVM_MAX_REASONS * 258]; /* the decision's reasons joined by "; " */
    nvm_message_fn message;
    void *message_ud;
    nvm_error last; /* the last diagnostic */
};

/* Is the manifest's capability c granted by the decision (may run and within the ceiling)? */
bool nvm_trust_cap_granted(const struct nvm_trust *t, const nvm_capreq *c);
/* Appends " NAME=V", or " NAME=default" when v < 0. */
void nvm_api_limit_text(nvm_tb *b, const char *name, int64_t v);

#endif
