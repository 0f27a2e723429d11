/* api_report.c - the reports of the public trust API: the trust decision (`nanovm verify`, text
 * or JSON with the stable keys of docs/policy.md) and the explanation of a policy file
 * (`nanovm policy check`). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nanovm.h"
#include "api_trust.h"
#include "api_util.h"

bool nvm_trust_cap_granted(const struct nvm_trust *t, const nvm_capreq *c)
{
    return t->dec.may_run && nvm_level_allows(&t->policy, t->dec.level, c);
}

void nvm_api_limit_text(nvm_tb *b, const char *name, int64_t v)
{
    if (v < 0)
        nvm_tb_printf(b, " %s=default", name);
    else
        nvm_tb_printf(b, " %s=%" PRId64, name, v);
}

static void verify_text(const nvm_trust *t, nvm_tb *b)
{
    const nvm_decision *d = &t->dec;
    nvm_tb_printf(b, "file:         %s\n", t->file);
    nvm_tb_printf(b, "capsule:      %s %s (sha256 %s)\n", t->man.name, t->man.version_text,
                  d->capsule_digest);
    nvm_tb_printf(b, "trust level:  %s (%s)\n", nvm_level_name(d->level),
                  d->may_run ? "may run" : "will not run");
    if (d->signer_key[0])
        nvm_tb_printf(b, "signer:       %s\n              key sha256 %s\n",
                      d->signer_subject[0] ? d->signer_subject : "(no certificate)", d->signer_key);
    else
        nvm_tb_puts(b, "signer:       none\n");
    if (d->nchain > 0) {
        nvm_tb_puts(b, "chain:\n");
        for (size_t i = 0; i < d->nchain; i++) {
            const nvm_chain_entry *e = &d->chain[i];
            nvm_tb_printf(b, "  [%zu] %s\n      serial %s, valid %s .. %s\n      sha256 %s\n", i,
                          e->subject, e->serial, e->not_before, e->not_after, e->fingerprint);
        }
    }
    nvm_tb_puts(b, "reasons:\n");
    for (size_t i = 0; i < d->nreasons; i++)
        nvm_tb_printf(b, "  - %s\n", d->reasons[i]);
    nvm_tb_puts(b, "capabilities:\n");
    if (t->man.ncaps == 0)
        nvm_tb_puts(b, "  (none requested)\n");
    for (size_t i = 0; i < t->man.ncaps; i++)
        nvm_tb_printf(b, "  %-8s %s\n",
                      nvm_trust_cap_granted(t, &t->man.caps[i]) ? "granted" : "denied",
                      t->man.caps[i].text);
    nvm_tb_printf(b, "tier:         %s%s\n", d->tier, t->isolate ? " (isolated)" : "");
    if (d->may_run) {
        nvm_tb_puts(b, "limits:      ");
        nvm_api_limit_text(b, "gas", d->limits.gas);
        nvm_api_limit_text(b, "memory", d->limits.memory);
        nvm_api_limit_text(b, "stack", d->limits.stack);
        nvm_api_limit_text(b, "wall_ms", d->limits.wall_ms);
        nvm_tb_puts(b, "\n");
        if (d->unmetered)
            nvm_tb_puts(b, "gas metering: off (the policy's trusted level)\n");
    }
}

static json_t *jstr_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static void verify_json(const nvm_trust *t, nvm_tb *b)
{
    const nvm_decision *d = &t->dec;
    json_t *chain = json_array(), *reasons = json_array(), *req = json_array(), *gr = json_array(),
           *den = json_array();
    for (size_t i = 0; i < d->nchain; i++) {
        const nvm_chain_entry *e = &d->chain[i];
        json_array_append_new(chain,
                              json_pack("{s:s, s:s, s:s, s:s, s:s}", "subject", e->subject,
                                        "serial", e->serial, "not_before", e->not_before,
                                        "not_after", e->not_after, "fingerprint", e->fingerprint));
    }
    for (size_t i = 0; i < d->nreasons; i++)
        json_array_append_new(reasons, json_string(d->reasons[i]));
    for (size_t i = 0; i < t->man.ncaps; i++) {
        const nvm_capreq *c = &t->man.caps[i];
        json_array_append_new(req, json_string(c->text));
        json_array_append_new(nvm_trust_cap_granted(t, c) ? gr : den, json_string(c->text));
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:b, s:s, s:{s:o, s:o}, s:o, s:o, s:{s:o, s:o, s:o}, s:{s:s, s:s, s:s}}",
        "file", t->file, "capsule_digest", d->capsule_digest, "trust_level",
        nvm_level_name(d->level), "may_run", d->may_run, "tier", d->tier, "signer", "subject",
        jstr_or_null(d->signer_subject), "key_fingerprint", jstr_or_null(d->signer_key), "chain",
        chain, "reasons", reasons, "capabilities", "requested", req, "granted", gr, "denied", den,
        "manifest", "name", t->man.name, "version", t->man.version_text, "entry", t->man.entry);
    char *s = NULL;
    if (o != NULL && t->isolate)
        json_object_set_new(o, "isolated", json_true());
    if (o != NULL && d->may_run)
        json_object_set_new(o, "gas_metering", json_boolean(!d->unmetered));
    if (o != NULL)
        s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL)
        nvm_tb_printf(b, "%s\n", s);
    else
        b->oom = true;
    free(s);
    json_decref(o);
}

nvm_status nvm_trust_report(const nvm_trust *t, bool json, char **out_text, nvm_error *err)
{
    nvm_tb b;
    memset(&b, 0, sizeof b);
    if (json)
        verify_json(t, &b);
    else
        verify_text(t, &b);
    return nvm_tb_take(&b, out_text, err);
}

/* ---- policy check ---- */

static void strv_text(nvm_tb *b, const char *label, char *const *v, size_t n)
{
    nvm_tb_printf(b, "  %-13s", label);
    if (n == 0)
        nvm_tb_puts(b, " (none)");
    for (size_t i = 0; i < n; i++)
        nvm_tb_printf(b, "%s%s", i ? ", " : " ", v[i]);
    nvm_tb_puts(b, "\n");
}

static void policy_text(const char *path, const nvm_policy *p, nvm_tb *b)
{
    nvm_tb_printf(b, "%s: valid policy\n", path);
    size_t nroots = p->roots ? nvm_certs_count(p->roots) : 0;
    nvm_tb_printf(b, "  trust roots:  %zu\n", nroots);
    for (size_t i = 0; i < nroots; i++) {
        char subj[256], serial[256], nb[256], na[256], fp[256];
        if (nvm_certs_describe(p->roots, i, subj, serial, nb, na, fp) == NVM_OK)
            nvm_tb_printf(b, "    %s (valid %s .. %s)\n", subj, nb, na);
    }
    nvm_tb_printf(b, "  pinned keys:  %zu\n", p->npinned);
    for (size_t i = 0; i < p->npinned; i++) {
        uint8_t h[NVM_SHA256_LEN];
        char hex[2 * NVM_SHA256_LEN + 1];
        nvm_sha256(p->pinned[i], NVM_ED25519_PUB_LEN, h);
        nvm_hex(h, sizeof h, hex);
        nvm_tb_printf(b, "    key sha256 %s\n", hex);
    }
    nvm_tb_printf(b, "  revoked:      %zu keys, %zu serials, %zu capsules\n", p->nrevoked_keys,
                  p->nrevoked_serials, p->nrevoked_capsules);
    nvm_tb_printf(b, "  min_level:    %s (lower levels are rejected)\n",
                  nvm_level_name(p->min_level));
    nvm_tb_printf(b, "  invalid signature: %s\n",
                  p->invalid_signature_sandbox ? "sandbox (run as unsigned)" : "reject");
    nvm_tb_printf(b, "  state_dir:    %s\n",
                  p->state_dir ? p->state_dir : "(none: no rollback protection)");
    nvm_tb_printf(b, "  audit_log:    %s\n", p->audit_log ? p->audit_log : "(none)");
    nvm_tb_printf(b, "  tier override from the command line: %s\n",
                  p->allow_tier_override ? "allowed" : "not allowed");
    for (int l = NVM_LEVEL_TRUSTED; l >= NVM_LEVEL_RESTRICTED; l--) {
        const nvm_level_policy *lp = &p->levels[l];
        nvm_tb_printf(b, "  level %s: tier %s,", nvm_level_name((nvm_trust_level)l), lp->tier);
        nvm_api_limit_text(b, "gas", lp->limits.gas);
        nvm_api_limit_text(b, "memory", lp->limits.memory);
        nvm_api_limit_text(b, "stack", lp->limits.stack);
        nvm_api_limit_text(b, "wall_ms", lp->limits.wall_ms);
        if (lp->unmetered)
            nvm_tb_puts(b, ", gas metering off");
        nvm_tb_puts(b, "\n");
        strv_text(b, "  allow:", lp->caps, lp->ncaps);
        strv_text(b, "  deny:", lp->deny, lp->ndeny);
    }
}

nvm_status nvm_policy_check_file(const char *path, char **out_text, nvm_error *err)
{
    nvm_policy p;
    nvm_tb b;
    memset(&b, 0, sizeof b);
    *out_text = NULL;
    nvm_status st = nvm_policy_load(path, &p, err);
    if (st != NVM_OK) {
        nvm_api_locate(err, path);
        return st;
    }
    policy_text(path, &p, &b);
    nvm_policy_free(&p);
    return nvm_tb_take(&b, out_text, err);
}
