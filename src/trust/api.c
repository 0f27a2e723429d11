/* api.c - the public trust API: a trust session (policy, audit log, capsule, decision) and
 * running a capsule under it; running a bare program at the sandboxed level; checking an audit
 * log. Every security event is audited before it takes effect; a failure to audit stops the run.
 * Execution goes through nvm_execute on the tier chosen here (tier_choose). Diagnostics go to the
 * caller's nvm_message_fn; nothing here prints. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nanovm.h"
#include "api_trust.h"
#include "api_util.h"

/* ---- diagnostics ---- */

/* Where diagnostics go, and the last one (copied to the caller's nvm_error on failure). */
typedef struct diag {
    nvm_message_fn fn;
    void *ud;
    nvm_error *last;
} diag;

static void say(diag *d, nvm_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void say(diag *d, nvm_status st, const char *fmt, ...)
{
    char text[2 * NVM_ERROR_MESSAGE_MAX + 1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memset(d->last, 0, sizeof *d->last);
    d->last->status = st;
    snprintf(d->last->message, sizeof d->last->message, "%.*s", (int)sizeof d->last->message - 1,
             text);
    if (d->fn != NULL)
        d->fn(d->ud, text);
}

/* "FILE: MESSAGE", naming the error's own file too when it is another one. */
static void say_err(diag *d, const char *file, const nvm_error *e)
{
    if (e->file[0] && strcmp(e->file, file) != 0)
        say(d, e->status, "%s: %s: %s", file, e->file, e->message);
    else
        say(d, e->status, "%s: %s", file, e->message);
}

/* A runtime error with its location and backtrace, as a command line shows it. */
static void say_runtime(diag *d, const char *fallback_file, const nvm_error *e)
{
    const char *file = e->file[0] ? e->file : fallback_file;
    char loc[300];
    if (e->line > 0 && e->col > 0)
        snprintf(loc, sizeof loc, "%s:%" PRIu32 ":%" PRIu32, file, e->line, e->col);
    else if (e->line > 0)
        snprintf(loc, sizeof loc, "%s:%" PRIu32, file, e->line);
    else
        snprintf(loc, sizeof loc, "%s", file);
    size_t n = strlen(e->backtrace);
    while (n > 0 && e->backtrace[n - 1] == '\n')
        n--;
    if (n > 0)
        say(d, e->status, "%s: %s\n%.*s", loc, e->message, (int)n, e->backtrace);
    else
        say(d, e->status, "%s: %s", loc, e->message);
    *d->last = *e; /* keep the location and backtrace for callers without a sink */
    if (!d->last->file[0])
        snprintf(d->last->file, sizeof d->last->file, "%s", fallback_file);
}

static nvm_status finish(const diag *d, nvm_status st, nvm_error *err)
{
    if (err != NULL) {
        if (st == NVM_OK) {
            memset(err, 0, sizeof *err);
        } else {
            *err = *d->last;
            err->status = st;
        }
    }
    return st;
}

/* ---- tiers ---- */

/* The tier a named choice resolves to at a level: "auto" follows the level (trusted -> aot,
 * verified -> jit, sandboxed -> wasm, restricted -> wasm and isolation, each when built; anything
 * not built -> the interpreter); "wasm", "jit" and "aot" are those tiers when built ("aot" else
 * the JIT); every other name ("interp") is the interpreter. */
static void tier_resolve(const char *name, nvm_trust_level level, nvm_tier *tier, bool *isolate)
{
    *tier = NVM_TIER_INTERP;
    *isolate = false;
    const nvm_tier wasm = nvm_tier_available(NVM_TIER_WASM) ? NVM_TIER_WASM : NVM_TIER_INTERP;
    const nvm_tier jit = nvm_tier_available(NVM_TIER_JIT) ? NVM_TIER_JIT : NVM_TIER_INTERP;
    const nvm_tier aot = nvm_tier_available(NVM_TIER_AOT) ? NVM_TIER_AOT : jit;
    if (strcmp(name, "aot") == 0) {
        *tier = aot;
    } else if (strcmp(name, "wasm") == 0) {
        *tier = wasm;
    } else if (strcmp(name, "jit") == 0) {
        *tier = jit;
    } else if (strcmp(name, "auto") == 0) {
        if (level == NVM_LEVEL_TRUSTED)
            *tier = aot;
        if (level == NVM_LEVEL_VERIFIED)
            *tier = jit;
        if (level == NVM_LEVEL_SANDBOXED || level == NVM_LEVEL_RESTRICTED)
            *tier = wasm;
        if (level == NVM_LEVEL_RESTRICTED)
            *isolate = nvm_isolation_available();
    }
}

static const char *request_name(nvm_tier_request r)
{
    switch (r) {
    case NVM_TIER_REQ_INTERP: return "interp";
    case NVM_TIER_REQ_AUTO: return "auto";
    case NVM_TIER_REQ_WASM: return "wasm";
    case NVM_TIER_REQ_JIT: return "jit";
    case NVM_TIER_REQ_AOT: return "aot";
    default: return NULL;
    }
}

/* ---- audit ---- */

/* Appends an audit record; a failure to audit is a diagnostic and stops everything. */
static nvm_status audit(nvm_trust *t, diag *dg, const char *event, const char *const *fields)
{
    nvm_error e;
    memset(&e, 0, sizeof e);
    nvm_status st = nvm_audit_append(t->audit, event, fields, &e);
    if (st != NVM_OK)
        say_err(dg, t->policy.audit_log ? t->policy.audit_log : "audit log", &e);
    return st;
}

/* The host's audit hook: the run's identifying fields (base) followed by the host's, appended to
 * the audit log. Invariant: base is NULL-terminated key/value pairs, at most 12 entries. */
typedef struct host_audit {
    nvm_audit *log;
    const char *base[13];
    bool failed;
    diag *dg;
} host_audit;

static nvm_status host_audit_hook(void *ud, const char *event, const char *const *fields)
{
    host_audit *ha = ud;
    const char *f[64];
    size_t n = 0;
    for (size_t i = 0; ha->base[i] != NULL && n + 2 < 48; i += 2) {
        f[n++] = ha->base[i];
        f[n++] = ha->base[i + 1];
    }
    for (size_t i = 0; fields[i] != NULL && fields[i + 1] != NULL && n + 2 < 63; i += 2) {
        f[n++] = fields[i];
        f[n++] = fields[i + 1];
    }
    f[n] = NULL;
    nvm_error err;
    memset(&err, 0, sizeof err);
    if (nvm_audit_append(ha->log, event, f, &err) != NVM_OK) {
        if (!ha->failed)
            say(ha->dg, NVM_E_IO, "audit log: %s", err.message);
        ha->failed = true;
        return NVM_E_IO;
    }
    return NVM_OK;
}

/* Host configuration from a level of the policy; wall_ms is given separately (the decision's for
 * capsules, the level's for bare programs). */
static void host_config_for(const nvm_policy *p, nvm_trust_level l, int64_t wall_ms, host_audit *ha,
                            const nvm_run_options *o, const char *identity, nvm_host_config *hc)
{
    const nvm_host_limits *hl = &p->levels[l].host;
    nvm_host_config_init(hc);
    hc->args = o->args;
    hc->nargs = o->nargs;
    hc->max_read_bytes = hl->read_bytes;
    hc->max_write_bytes = hl->write_bytes;
    hc->max_handles = hl->handles;
    hc->max_connections = hl->connections;
    hc->wall_ms = wall_ms;
    hc->state_dir = p->state_dir;
    hc->identity = identity;
    hc->audit_pure_calls = p->audit_pure_calls;
    hc->audit = host_audit_hook;
    hc->audit_ud = ha;
}

/* Deny rules of the level. */
static nvm_status add_deny_rules(nvm_host *h, const nvm_level_policy *lp, diag *dg)
{
    nvm_error err;
    memset(&err, 0, sizeof err);
    for (size_t i = 0; i < lp->ndeny; i++)
        if (nvm_host_deny_rule(h, lp->deny[i], &err) != NVM_OK) {
            say(dg, err.status, "deny rule %s: %s", lp->deny[i], err.message);
            return err.status;
        }
    return NVM_OK;
}

/* Links the module against the host's capabilities on a VM made from cfg (the one nvm_execute
 * will make), so that a module that cannot run is refused before "run.start" is audited. A VM
 * that cannot be created is reported here (*reported); a link failure is left in *verr. */
static nvm_status link_check(const nvm_config *cfg, const nvm_module *m, nvm_host *h,
                             nvm_error *verr, bool *reported, diag *dg)
{
    nvm_vm *vm = NULL;
    *reported = false;
    nvm_status st = nvm_vm_new(cfg, &vm);
    if (st != NVM_OK) {
        say(dg, st, "cannot create a VM: %s", nvm_status_meaning(st));
        *reported = true;
        return st;
    }
    st = nvm_host_install(h, vm);
    if (st == NVM_OK)
        st = nvm_vm_load(vm, m);
    if (st != NVM_OK) {
        *verr = *nvm_vm_error(vm);
        verr->status = st;
    }
    nvm_vm_free(vm);
    return st;
}

static const char *limit_name(nvm_status st)
{
    switch (st) {
    case NVM_E_GAS: return "gas";
    case NVM_E_MEMORY: return "memory";
    case NVM_E_STACK: return "stack";
    case NVM_E_DEPTH: return "depth";
    case NVM_E_TIME: return "wall_ms";
    default: return NULL;
    }
}

/* ---- the trust session ---- */

void nvm_trust_free(nvm_trust *t)
{
    if (t == NULL)
        return;
    if (t->man_ok)
        nvm_manifest_free(&t->man);
    if (t->cap_ok)
        nvm_capsule_close(&t->cap);
    nvm_audit_close(t->audit);
    if (t->policy_ok)
        nvm_policy_free(&t->policy);
    free(t->file);
    free(t);
}

bool nvm_trust_may_run(const nvm_trust *t)
{
    return t->dec.may_run;
}

const char *nvm_trust_level_name(const nvm_trust *t)
{
    return nvm_level_name(t->dec.level);
}

/* Policy, audit log, capsule, manifest, assessment, "load" and "trust" records (and "reject" when
 * the capsule may not run). NVM_OK when a decision was made. */
static nvm_status trust_assess(nvm_trust *t, const char *policy_path, const char *audit_path,
                               diag *dg)
{
    nvm_error err;
    memset(&err, 0, sizeof err);
    const char *file = t->file;
    nvm_status st = nvm_policy_load(policy_path, &t->policy, &err);
    if (st != NVM_OK) {
        say_err(dg, policy_path ? policy_path : NVM_POLICY_DEFAULT_PATH, &err);
        return st;
    }
    t->policy_ok = true;
    const char *log = audit_path ? audit_path : t->policy.audit_log;
    st = nvm_audit_open(log, t->policy.state_dir, &t->audit, &err);
    if (st != NVM_OK) {
        say_err(dg, log, &err);
        return st;
    }
    st = nvm_capsule_open(file, &t->cap, &err);
    if (st == NVM_OK) {
        t->cap_ok = true;
        st =
            nvm_manifest_parse((const char *)t->cap.manifest.p, t->cap.manifest.len, &t->man, &err);
        if (st == NVM_OK)
            t->man_ok = true;
    }
    if (st != NVM_OK) {
        char digest[2 * NVM_SHA256_LEN + 1] = "";
        if (t->cap_ok)
            nvm_hex(t->cap.digest, sizeof t->cap.digest, digest);
        char reason[NVM_ERROR_MESSAGE_MAX + 32];
        snprintf(reason, sizeof reason, "%s: %s", t->cap_ok ? "malformed manifest" : "malformed",
                 err.message);
        const char *f[] = {"capsule", digest, "level", "rejected", "reason",
                           reason,    "file", file,    NULL};
        nvm_status ast = audit(t, dg, "reject", f);
        say_err(dg, file, &err);
        return ast != NVM_OK ? ast : st;
    }
    char digest[2 * NVM_SHA256_LEN + 1];
    nvm_hex(t->cap.digest, sizeof t->cap.digest, digest);
    const char *lf[] = {"capsule", digest, "file", file, NULL};
    if ((st = audit(t, dg, "load", lf)) != NVM_OK)
        return st;
    st = nvm_assess(&t->cap, &t->man, &t->policy, (int64_t)time(NULL), &t->dec, &err);
    if (st != NVM_OK) {
        say_err(dg, file, &err);
        return st;
    }
    nvm_decision *d = &t->dec;
    nvm_tier tier;
    tier_resolve(t->policy.levels[d->level].tier, d->level, &tier, &t->isolate);
    snprintf(d->tier, sizeof d->tier, "%s", nvm_tier_name(tier));
    size_t pos = 0;
    t->reasons[0] = '\0';
    for (size_t i = 0; i < d->nreasons; i++)
        pos += (size_t)snprintf(t->reasons + pos, sizeof t->reasons - pos, "%s%s", i ? "; " : "",
                                d->reasons[i]);
    const char *tf[] = {"capsule", d->capsule_digest,
                        "signer",  d->signer_key,
                        "level",   nvm_level_name(d->level),
                        "tier",    d->tier,
                        "reason",  t->reasons,
                        "subject", d->signer_subject,
                        "name",    t->man.name,
                        "version", t->man.version_text,
                        NULL};
    if ((st = audit(t, dg, "trust", tf)) != NVM_OK)
        return st;
    if (!d->may_run) {
        const char *rf[] = {"capsule",  d->capsule_digest, "signer",   d->signer_key, "level",
                            "rejected", "reason",          t->reasons, NULL};
        st = audit(t, dg, "reject", rf);
    }
    return st;
}

nvm_status nvm_trust_open(const char *capsule_path, const char *policy_path, const char *audit_path,
                          nvm_message_fn message, void *message_ud, nvm_trust **out, nvm_error *err)
{
    *out = NULL;
    nvm_trust *t = calloc(1, sizeof *t);
    size_t flen = strlen(capsule_path);
    if (t == NULL || (t->file = malloc(flen + 1)) == NULL) {
        free(t);
        return nvm_api_fail(err, NVM_E_INTERNAL, NULL, "out of memory");
    }
    memcpy(t->file, capsule_path, flen + 1);
    t->message = message;
    t->message_ud = message_ud;
    diag dg = {message, message_ud, &t->last};
    nvm_status st = trust_assess(t, policy_path, audit_path, &dg);
    finish(&dg, st, err);
    if (st != NVM_OK) {
        nvm_trust_free(t);
        return st;
    }
    *out = t;
    return NVM_OK;
}

/* The capsule's effective grant: manifest-requested capabilities that the level's ceiling covers
 * and no deny rule covers entirely. Each refused one is a diagnostic and audited. */
static nvm_status capsule_grants(nvm_trust *t, nvm_host *h, diag *dg)
{
    const nvm_decision *d = &t->dec;
    nvm_error err;
    for (size_t i = 0; i < t->man.ncaps; i++) {
        const nvm_capreq *c = &t->man.caps[i];
        const char *why = NULL;
        memset(&err, 0, sizeof err);
        if (!nvm_trust_cap_granted(t, c))
            why = "not within the level's ceiling";
        else if (nvm_host_grant(h, c->text, &err) != NVM_OK)
            why = err.message;
        if (why == NULL)
            continue;
        say(dg, NVM_E_DENIED, "%s: capability %s refused at level %s: %s", t->file, c->text,
            nvm_level_name(d->level), why);
        const char *f[] = {"capsule",    d->capsule_digest,
                           "signer",     d->signer_key,
                           "level",      nvm_level_name(d->level),
                           "capability", c->text,
                           "reason",     why,
                           NULL};
        nvm_status st = audit(t, dg, "cap.refused", f);
        if (st != NVM_OK)
            return st;
    }
    return add_deny_rules(h, &t->policy.levels[d->level], dg);
}

static int64_t lower(int64_t policy_v, int64_t cli_v, bool cli_set)
{
    if (!cli_set)
        return policy_v;
    if (policy_v < 0 || cli_v < policy_v)
        return cli_v;
    return policy_v;
}

/* The caller's configuration with the decision's limits: the caller's may only lower them. */
static void apply_limits(const nvm_limits *l, const nvm_config *cli, nvm_config *cfg)
{
    nvm_config def;
    nvm_config_init(&def);
    if (cli == NULL)
        cli = &def;
    *cfg = *cli;
    cfg->gas = lower(l->gas, cli->gas, cli->gas >= 0);
    int64_t mem = lower(l->memory, (int64_t)cli->max_memory, cli->max_memory != def.max_memory);
    cfg->max_memory = mem < 0 ? def.max_memory : (size_t)mem;
    int64_t stk = lower(l->stack, cli->max_stack, cli->max_stack != def.max_stack);
    cfg->max_stack = stk < 0 ? def.max_stack : (stk > UINT32_MAX ? UINT32_MAX : (uint32_t)stk);
    if (cfg->max_stack == 0)
        cfg->max_stack = 1;
}

/* The tier of this run: the policy's, or the request when the policy allows overrides (a
 * refused override is a diagnostic); a request for isolation always holds. */
static void trust_pick_tier(nvm_trust *t, const nvm_run_options *o, nvm_tier *tier, diag *dg)
{
    nvm_decision *d = &t->dec;
    const char *req = request_name(o->tier);
    bool isolate = t->isolate;
    *tier = (nvm_tier)nvm_tier_lookup(d->tier);
    if (req != NULL && t->policy.allow_tier_override) {
        tier_resolve(req, d->level, tier, &isolate);
    } else if (req != NULL && strcmp(req, d->tier) != 0 && strcmp(req, "auto") != 0) {
        say(dg, NVM_OK, "the policy does not allow --tier; running on %s", d->tier);
    }
    t->isolate = isolate || o->isolate;
    snprintf(d->tier, sizeof d->tier, "%s", nvm_tier_name(*tier));
}

/* After the run: "limit" (when a limit stopped it) and "run.end". */
static nvm_status audit_run_end(nvm_trust *t, nvm_status run_st, diag *dg)
{
    const nvm_decision *d = &t->dec;
    char status[32], code[16];
    snprintf(status, sizeof status, "%s", nvm_status_name(run_st));
    snprintf(code, sizeof code, "%d", nvm_status_exit_code(run_st));
    const char *which = limit_name(run_st);
    const char *lf[] = {
        "capsule", d->capsule_digest, "signer", d->signer_key, "level", nvm_level_name(d->level),
        "tier",    d->tier,           "limit",  which,         NULL};
    nvm_status st;
    if (which != NULL && (st = audit(t, dg, "limit", lf)) != NVM_OK)
        return st;
    const char *ef[] = {
        "capsule", d->capsule_digest, "signer", d->signer_key, "level", nvm_level_name(d->level),
        "tier",    d->tier,           "status", status,        "exit",  code,
        NULL};
    return audit(t, dg, "run.end", ef);
}

nvm_status nvm_trust_aot(nvm_trust *t, const char *emit_c_path, char **out_text, nvm_error *err)
{
    diag dg = {t->message, t->message_ud, &t->last};
    nvm_decision *d = &t->dec;
    if (out_text != NULL)
        *out_text = NULL;
    if (!d->may_run) {
        say(&dg, NVM_E_TRUST, "%s: rejected (trust level %s): %s", t->file,
            nvm_level_name(d->level), t->reasons);
        return finish(&dg, NVM_E_TRUST, err);
    }
    if (strcmp(d->tier, "aot") != 0) {
        say(&dg, NVM_E_TRUST, "%s: the policy runs this capsule (%s) on the %s tier, not aot",
            t->file, nvm_level_name(d->level), d->tier);
        return finish(&dg, NVM_E_TRUST, err);
    }
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_module *m = NULL;
    nvm_error e;
    memset(&e, 0, sizeof e);
    nvm_status st =
        nvm_module_from_bytecode(&cfg, t->cap.bytecode.p, t->cap.bytecode.len, t->file, &m, &e);
    if (st == NVM_OK)
        st = nvm_module_set_entry(m, t->man.entry, &e);
    if (st == NVM_OK)
        st = nvm_aot_compile_ex(m, d->unmetered ? NVM_AOT_UNMETERED : 0, emit_c_path, out_text, &e);
    nvm_module_free(m);
    if (st != NVM_OK) {
        say_err(&dg, t->file, &e);
        return finish(&dg, st, err);
    }
    const char *f[] = {"capsule", d->capsule_digest,        "signer", d->signer_key,
                       "level",   nvm_level_name(d->level), "tier",   "aot",
                       NULL};
    st = audit(t, &dg, emit_c_path != NULL ? "aot.emit" : "aot.compile", f);
    return finish(&dg, st, err);
}

nvm_status nvm_trust_run(nvm_trust *t, const nvm_run_options *opt, nvm_error *err)
{
    diag dg = {t->message, t->message_ud, &t->last};
    nvm_run_options none;
    memset(&none, 0, sizeof none);
    const nvm_run_options *o = opt != NULL ? opt : &none;
    if (o->gas_used != NULL)
        *o->gas_used = 0;
    nvm_host *host = NULL;
    nvm_module *m = NULL;
    host_audit ha;
    nvm_error e;
    nvm_status st;
    memset(&e, 0, sizeof e);
    memset(&ha, 0, sizeof ha);
    nvm_decision *d = &t->dec;
    const char *file = t->file;
    if (!d->may_run) {
        say(&dg, NVM_E_TRUST, "%s: rejected (trust level %s): %s", file, nvm_level_name(d->level),
            t->reasons);
        return finish(&dg, NVM_E_TRUST, err);
    }
    nvm_tier tier;
    trust_pick_tier(t, o, &tier, &dg);
    nvm_config cfg;
    apply_limits(&d->limits, o->cfg, &cfg);
    /* metering stays on when the command line asks for a gas limit or the gas used */
    cfg.unmetered = d->unmetered && cfg.gas < 0 && o->gas_used == NULL;
    st = nvm_module_from_bytecode(&cfg, t->cap.bytecode.p, t->cap.bytecode.len, file, &m, &e);
    if (st == NVM_OK)
        st = nvm_module_set_entry(m, t->man.entry, &e);
    if (st != NVM_OK) {
        const char *f[] = {"capsule", d->capsule_digest, "level", "rejected",
                           "reason",  e.message,         NULL};
        nvm_status ast = audit(t, &dg, "reject", f);
        say_err(&dg, file, &e);
        if (ast != NVM_OK)
            st = ast;
        goto done;
    }
    char gas[32], mem[32], stk[32];
    snprintf(gas, sizeof gas, "%" PRId64, cfg.gas);
    snprintf(mem, sizeof mem, "%zu", cfg.max_memory);
    snprintf(stk, sizeof stk, "%" PRIu32, cfg.max_stack);
    const char *iso = t->isolate ? "isolated" : NULL, *yes = t->isolate ? "true" : NULL;
    const char *tf[] = {
        "capsule", d->capsule_digest, "signer", d->signer_key, "level", nvm_level_name(d->level),
        "tier",    d->tier,           iso,      yes,           NULL};
    const char *xf[4] = {NULL, NULL, NULL, NULL}; /* optional fields, packed */
    size_t nxf = 0;
    if (t->isolate) {
        xf[nxf++] = "isolated";
        xf[nxf++] = "true";
    }
    if (cfg.unmetered) {
        xf[nxf++] = "gas_metering";
        xf[nxf++] = "off";
    }
    const char *sf[] = {"capsule", d->capsule_digest,
                        "signer",  d->signer_key,
                        "level",   nvm_level_name(d->level),
                        "tier",    d->tier,
                        "entry",   t->man.entry,
                        "gas",     gas,
                        "memory",  mem,
                        "stack",   stk,
                        xf[0],     xf[1],
                        xf[2],     xf[3],
                        NULL};
    if ((st = audit(t, &dg, "tier", tf)) != NVM_OK)
        goto done;
    if ((st = nvm_rollback_record(&t->policy, &t->man, d, &e)) != NVM_OK) {
        say_err(&dg, file, &e);
        goto done;
    }
    char identity[sizeof t->man.name + 2 * NVM_SHA256_LEN + 16];
    snprintf(identity, sizeof identity, "%s/%s", t->man.name,
             d->signer_key[0] ? d->signer_key : "unsigned");
    ha.log = t->audit;
    ha.dg = &dg;
    const char *base[] = {"capsule", d->capsule_digest,        "signer", d->signer_key,
                          "level",   nvm_level_name(d->level), NULL};
    memcpy(ha.base, base, sizeof base);
    nvm_host_config hc;
    host_config_for(&t->policy, d->level, d->limits.wall_ms, &ha, o, identity, &hc);
    st = nvm_host_new(&hc, &host, &e);
    if (st != NVM_OK) {
        say_err(&dg, file, &e);
        goto done;
    }
    if ((st = capsule_grants(t, host, &dg)) != NVM_OK)
        goto done;
    memset(&e, 0, sizeof e);
    bool reported = false;
    st = link_check(&cfg, m, host, &e, &reported, &dg);
    if (reported)
        goto done;
    if (st == NVM_OK) {
        if ((st = audit(t, &dg, "run.start", sf)) != NVM_OK)
            goto done;
        memset(&e, 0, sizeof e);
        st = nvm_execute(&cfg, m, host, tier, t->isolate, o->gas_used, &e);
        nvm_status ast = audit_run_end(t, st, &dg);
        if (ast != NVM_OK) {
            st = ast;
            goto done;
        }
    }
    if (st != NVM_OK) {
        if (e.message[0])
            say_err(&dg, file, &e);
        else
            say(&dg, st, "%s: %s", file, nvm_status_meaning(st));
    }
done:
    nvm_host_free(host);
    nvm_module_free(m);
    return finish(&dg, st, err);
}

/* ---- bare programs: unsigned, so sandboxed ---- */

/* Types a bare program gets from the sandboxed ceiling without asking: they reach nothing outside
 * the process but its own streams and clocks. The rest (fs, net, env, kv) only through allows. */
static const char *const ambient_types[] = {"io", "args", "time", "random", NULL};

static bool ambient_pattern(const char *p, char *grant, size_t glen, size_t which)
{
    const char *t = ambient_types[which];
    size_t tl = strlen(t);
    if (strcmp(p, "*") == 0) {
        snprintf(grant, glen, "%s.*", t);
        return true;
    }
    if (strncmp(p, t, tl) == 0 && p[tl] == '.') {
        snprintf(grant, glen, "%s", p);
        return true;
    }
    return false;
}

/* The ambient grants, then each requested one (within the sandboxed ceiling), then the level's
 * deny rules. */
static nvm_status bare_grants(const nvm_run_request *req, const nvm_policy *policy, nvm_audit *log,
                              nvm_host *host, diag *dg)
{
    const nvm_trust_level level = NVM_LEVEL_SANDBOXED;
    const nvm_level_policy *lp = &policy->levels[level];
    nvm_error err;
    memset(&err, 0, sizeof err);
    for (size_t w = 0; ambient_types[w] != NULL; w++)
        for (size_t i = 0; i < lp->ncaps; i++) {
            char g[600];
            if (ambient_pattern(lp->caps[i], g, sizeof g, w) &&
                nvm_host_grant(host, g, &err) != NVM_OK) {
                say_err(dg, policy->path ? policy->path : "policy", &err);
                return err.status;
            }
        }
    for (size_t i = 0; i < req->nallow; i++) {
        const char *a = req->allows[i];
        nvm_capreq c;
        char why[NVM_ERROR_MESSAGE_MAX];
        if (nvm_capreq_parse(a, &c, why, sizeof why) != NVM_OK) {
            say(dg, NVM_E_USAGE, "--allow: %s", why);
            return NVM_E_USAGE;
        }
        if (!nvm_level_allows(policy, level, &c)) {
            say(dg, NVM_E_TRUST,
                "--allow %s: refused: not within the sandboxed ceiling of the policy%s%s", a,
                policy->path ? " " : " (built-in default)", policy->path ? policy->path : "");
            const char *f[] = {
                "file",       req->file, "level",  "sandboxed",
                "capability", a,         "reason", "--allow beyond the sandboxed ceiling",
                NULL};
            nvm_audit_append(log, "cap.refused", f, &err);
            return NVM_E_TRUST;
        }
        if (nvm_host_grant(host, a, &err) != NVM_OK) {
            say(dg, NVM_E_USAGE, "--allow %s: %s", a, err.message);
            return NVM_E_USAGE;
        }
    }
    return add_deny_rules(host, lp, dg);
}

nvm_status nvm_run_program(const nvm_run_request *req, nvm_error *err)
{
    nvm_error last, e;
    diag dg = {req->message, req->message_ud, &last};
    nvm_policy policy;
    bool policy_ok = false;
    nvm_audit *log = NULL;
    nvm_host *host = NULL;
    host_audit ha;
    const char *file = req->file;
    const nvm_run_options *o = &req->run;
    if (o->gas_used != NULL)
        *o->gas_used = 0;
    memset(&last, 0, sizeof last);
    memset(&e, 0, sizeof e);
    memset(&ha, 0, sizeof ha);
    nvm_config cfg;
    if (o->cfg != NULL)
        cfg = *o->cfg;
    else
        nvm_config_init(&cfg);
    nvm_status st = nvm_policy_load(req->policy_path, &policy, &e);
    if (st != NVM_OK) {
        say_err(&dg, req->policy_path ? req->policy_path : NVM_POLICY_DEFAULT_PATH, &e);
        return finish(&dg, st, err);
    }
    policy_ok = true;
    const char *logpath = req->audit_path ? req->audit_path : policy.audit_log;
    st = nvm_audit_open(logpath, policy.state_dir, &log, &e);
    if (st != NVM_OK) {
        say_err(&dg, logpath, &e);
        goto done;
    }
    const nvm_trust_level level = NVM_LEVEL_SANDBOXED;
    nvm_tier tier = NVM_TIER_INTERP;
    bool isolate = false;
    if (request_name(o->tier) != NULL)
        tier_resolve(request_name(o->tier), level, &tier, &isolate);
    isolate = isolate || o->isolate;
    ha.log = log;
    ha.dg = &dg;
    const char *base[] = {"file", file, "level", nvm_level_name(level), NULL};
    memcpy(ha.base, base, sizeof base);
    char identity[1100];
    snprintf(identity, sizeof identity, "%s/unsigned", file);
    nvm_host_config hc;
    host_config_for(&policy, level, policy.levels[level].limits.wall_ms, &ha, o, identity, &hc);
    st = nvm_host_new(&hc, &host, &e);
    if (st != NVM_OK) {
        say_err(&dg, file, &e);
        goto done;
    }
    if ((st = bare_grants(req, &policy, log, host, &dg)) != NVM_OK)
        goto done;
    memset(&e, 0, sizeof e);
    bool reported = false;
    st = link_check(&cfg, req->module, host, &e, &reported, &dg);
    if (reported)
        goto done;
    if (st == NVM_OK) {
        const char *sf[] = {"file", file, "level", "sandboxed", NULL};
        if ((st = nvm_audit_append(log, "run.start", sf, &e)) != NVM_OK) {
            say_err(&dg, logpath, &e);
            goto done;
        }
        memset(&e, 0, sizeof e);
        st = nvm_execute(&cfg, req->module, host, tier, isolate, o->gas_used, &e);
        char status[32], code[16];
        snprintf(status, sizeof status, "%s", nvm_status_name(st));
        snprintf(code, sizeof code, "%d", nvm_status_exit_code(st));
        const char *ef[] = {"file", file,   "level", "sandboxed", "status",
                            status, "exit", code,    NULL};
        nvm_error ae;
        memset(&ae, 0, sizeof ae);
        nvm_status ast = nvm_audit_append(log, "run.end", ef, &ae);
        if (ast != NVM_OK) {
            say_err(&dg, logpath, &ae);
            st = ast;
            goto done;
        }
    }
    if (st != NVM_OK)
        say_runtime(&dg, file, &e);
done:
    nvm_host_free(host);
    nvm_audit_close(log);
    if (policy_ok)
        nvm_policy_free(&policy);
    return finish(&dg, st, err);
}

/* ---- audit verify ---- */

nvm_status nvm_audit_verify_file(const char *log_path, const char *policy_path,
                                 const char *state_dir, uint64_t *nrecords, char **out_text,
                                 nvm_error *err)
{
    nvm_policy p;
    bool have_policy = false;
    nvm_tb b;
    memset(&b, 0, sizeof b);
    *out_text = NULL;
    if (nrecords != NULL)
        *nrecords = 0;
    if (policy_path != NULL || log_path == NULL || state_dir == NULL) {
        nvm_status st = nvm_policy_load(policy_path, &p, err);
        if (st != NVM_OK) {
            nvm_api_locate(err, policy_path ? policy_path : NVM_POLICY_DEFAULT_PATH);
            return st;
        }
        have_policy = true;
        if (state_dir == NULL)
            state_dir = p.state_dir;
        if (log_path == NULL)
            log_path = p.audit_log;
    }
    nvm_status st;
    uint64_t n = 0;
    if (log_path == NULL) {
        st = nvm_api_fail(err, NVM_E_USAGE, NULL,
                          "audit verify needs a LOG (the policy names none)");
    } else if ((st = nvm_audit_verify(log_path, state_dir, &n, err)) != NVM_OK) {
        nvm_api_locate(err, log_path);
    } else {
        nvm_tb_printf(&b, "%s: %" PRIu64 " records, hash chain intact%s\n", log_path, n,
                      state_dir ? ", matches the head"
                                : " (no state dir: a truncation at a record "
                                  "boundary is not detectable)");
        if (nrecords != NULL)
            *nrecords = n;
        st = nvm_tb_take(&b, out_text, err);
    }
    if (have_policy)
        nvm_policy_free(&p);
    return st;
}
