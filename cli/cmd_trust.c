/* cmd_trust.c - the trust side of the command line: `verify`, `audit verify`, `policy check`,
 * and running a capsule (assess, audit, apply the level's limits, run, record rollback state).
 * Exit statuses: 0 ok, 2 usage, 3 malformed capsule/manifest/policy, 4 trust rejection, else the
 * VM's status. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "nanovm.h"
#include "commands.h"
#include "trust/assess.h"
#include "trust/audit.h"
#include "trust/capsule.h"
#include "trust/manifest.h"
#include "trust/policy.h"

#define EXIT_USAGE_T 2
#define EXIT_MALFORMED 3
#define EXIT_REJECTED 4

static int tusage(const char *msg)
{
    fprintf(stderr, "nanovm: %s\n(run 'nanovm --help' for usage)\n", msg);
    return EXIT_USAGE_T;
}

static void perr(const char *file, const nvm_error *err)
{
    fflush(stdout);
    if (err->file[0] && strcmp(err->file, file) != 0)
        fprintf(stderr, "nanovm: %s: %s: %s\n", file, err->file, err->message);
    else
        fprintf(stderr, "nanovm: %s: %s\n", file, err->message);
}

bool is_capsule_file(const char *path)
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

/* Everything the trust commands share: policy, audit log, capsule, manifest, decision.
 * Invariant: the *_ok flags say which members must be released. */
typedef struct trust_ctx {
    const char *file;
    nvm_policy policy;
    bool policy_ok;
    nvm_audit *audit;
    nvm_capsule cap;
    bool cap_ok;
    nvm_manifest man;
    bool man_ok;
    nvm_decision dec;
    char reasons[NVM_MAX_REASONS * 258];
} trust_ctx;

static void ctx_free(trust_ctx *t)
{
    if (t->man_ok)
        nvm_manifest_free(&t->man);
    if (t->cap_ok)
        nvm_capsule_close(&t->cap);
    nvm_audit_close(t->audit);
    if (t->policy_ok)
        nvm_policy_free(&t->policy);
}

/* Appends an audit record; a failure to audit stops everything (exit 70). */
static int audit(trust_ctx *t, const char *event, const char *const *fields)
{
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_status st = nvm_audit_append(t->audit, event, fields, &err);
    if (st != NVM_OK) {
        perr(t->policy.audit_log ? t->policy.audit_log : "audit log", &err);
        return nvm_status_exit_code(st);
    }
    return 0;
}

/* Policy, audit log, capsule, manifest, assessment, "load" and "trust" records (and "reject"
 * when the capsule may not run). Returns 0 when a decision was made (may_run or not), else an
 * exit status after printing why. */
static int ctx_assess(trust_ctx *t, const char *file, const char *policy_path,
                      const char *audit_path)
{
    nvm_error err;
    memset(&err, 0, sizeof err);
    t->file = file;
    nvm_status st = nvm_policy_load(policy_path, &t->policy, &err);
    if (st != NVM_OK) {
        perr(policy_path ? policy_path : NVM_POLICY_DEFAULT_PATH, &err);
        return nvm_status_exit_code(st);
    }
    t->policy_ok = true;
    const char *log = audit_path ? audit_path : t->policy.audit_log;
    st = nvm_audit_open(log, t->policy.state_dir, &t->audit, &err);
    if (st != NVM_OK) {
        perr(log, &err);
        return nvm_status_exit_code(st);
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
        int rc = audit(t, "reject", f);
        perr(file, &err);
        return rc ? rc : nvm_status_exit_code(st);
    }
    char digest[2 * NVM_SHA256_LEN + 1];
    nvm_hex(t->cap.digest, sizeof t->cap.digest, digest);
    const char *lf[] = {"capsule", digest, "file", file, NULL};
    int rc = audit(t, "load", lf);
    if (rc)
        return rc;
    st = nvm_assess(&t->cap, &t->man, &t->policy, (int64_t)time(NULL), &t->dec, &err);
    if (st != NVM_OK) {
        perr(file, &err);
        return nvm_status_exit_code(st);
    }
    const nvm_decision *d = &t->dec;
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
    rc = audit(t, "trust", tf);
    if (rc)
        return rc;
    if (!d->may_run) {
        const char *rf[] = {"capsule",  d->capsule_digest, "signer",   d->signer_key, "level",
                            "rejected", "reason",          t->reasons, NULL};
        rc = audit(t, "reject", rf);
    }
    return rc;
}

/* ---- verify ---- */

static bool cap_granted(const trust_ctx *t, const nvm_capreq *c)
{
    return t->dec.may_run && nvm_level_allows(&t->policy, t->dec.level, c);
}

static void print_limit(const char *name, int64_t v)
{
    if (v < 0)
        printf(" %s=default", name);
    else
        printf(" %s=%" PRId64, name, v);
}

static void verify_text(const trust_ctx *t)
{
    const nvm_decision *d = &t->dec;
    printf("file:         %s\n", t->file);
    printf("capsule:      %s %s (sha256 %s)\n", t->man.name, t->man.version_text,
           d->capsule_digest);
    printf("trust level:  %s (%s)\n", nvm_level_name(d->level),
           d->may_run ? "may run" : "will not run");
    if (d->signer_key[0])
        printf("signer:       %s\n              key sha256 %s\n",
               d->signer_subject[0] ? d->signer_subject : "(no certificate)", d->signer_key);
    else
        printf("signer:       none\n");
    if (d->nchain > 0) {
        printf("chain:\n");
        for (size_t i = 0; i < d->nchain; i++) {
            const nvm_chain_entry *e = &d->chain[i];
            printf("  [%zu] %s\n      serial %s, valid %s .. %s\n      sha256 %s\n", i, e->subject,
                   e->serial, e->not_before, e->not_after, e->fingerprint);
        }
    }
    printf("reasons:\n");
    for (size_t i = 0; i < d->nreasons; i++)
        printf("  - %s\n", d->reasons[i]);
    printf("capabilities:\n");
    if (t->man.ncaps == 0)
        printf("  (none requested)\n");
    for (size_t i = 0; i < t->man.ncaps; i++)
        printf("  %-8s %s\n", cap_granted(t, &t->man.caps[i]) ? "granted" : "denied",
               t->man.caps[i].text);
    printf("tier:         %s\n", d->tier);
    if (d->may_run) {
        printf("limits:      ");
        print_limit("gas", d->limits.gas);
        print_limit("memory", d->limits.memory);
        print_limit("stack", d->limits.stack);
        print_limit("wall_ms", d->limits.wall_ms);
        printf("\n");
    }
}

static json_t *jstr_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static int verify_json(const trust_ctx *t)
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
        json_array_append_new(cap_granted(t, c) ? gr : den, json_string(c->text));
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:b, s:s, s:{s:o, s:o}, s:o, s:o, s:{s:o, s:o, s:o}, s:{s:s, s:s, s:s}}",
        "file", t->file, "capsule_digest", d->capsule_digest, "trust_level",
        nvm_level_name(d->level), "may_run", d->may_run, "tier", d->tier, "signer", "subject",
        jstr_or_null(d->signer_subject), "key_fingerprint", jstr_or_null(d->signer_key), "chain",
        chain, "reasons", reasons, "capabilities", "requested", req, "granted", gr, "denied", den,
        "manifest", "name", t->man.name, "version", t->man.version_text, "entry", t->man.entry);
    if (o == NULL) {
        fprintf(stderr, "nanovm: out of memory\n");
        return nvm_status_exit_code(NVM_E_INTERNAL);
    }
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(o);
    return 0;
}

int cmd_verify(int argc, char **argv)
{
    const char *policy = NULL, *audit_path = NULL, *file = NULL;
    bool as_json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
            policy = argv[++i];
        } else if (strcmp(argv[i], "--audit") == 0 && i + 1 < argc) {
            audit_path = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return tusage("usage: nanovm verify [--policy P] [--audit FILE] [--json] app.cap");
        } else if (file == NULL) {
            file = argv[i];
        } else {
            return tusage("verify takes one capsule");
        }
    }
    if (file == NULL)
        return tusage("usage: nanovm verify [--policy P] [--audit FILE] [--json] app.cap");
    trust_ctx *t = calloc(1, sizeof *t);
    if (t == NULL)
        return nvm_status_exit_code(NVM_E_INTERNAL);
    int rc = ctx_assess(t, file, policy, audit_path);
    if (rc == 0) {
        rc = as_json ? verify_json(t) : (verify_text(t), 0);
        if (rc == 0 && !t->dec.may_run)
            rc = EXIT_REJECTED;
    }
    fflush(stdout);
    ctx_free(t);
    free(t);
    return rc;
}

/* ---- run ---- */

/* ---- the host of a run: effective grant, deny rules, host limits, audit hook ---- */

/* The audit hook: the run's identifying fields (base) followed by the host's, appended to the
 * audit log. Invariant: base is NULL-terminated key/value pairs, at most 12 entries. */
typedef struct host_audit {
    nvm_audit *log;
    const char *base[13];
    bool failed;
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
            fprintf(stderr, "nanovm: audit log: %s\n", err.message);
        ha->failed = true;
        return NVM_E_IO;
    }
    return NVM_OK;
}

/* Host configuration from a level of the policy; wall_ms is given separately (the decision's
 * for capsules, the level's for bare programs). */
static void host_config_for(const nvm_policy *p, nvm_trust_level l, int64_t wall_ms, host_audit *ha,
                            const char *const *args, uint32_t nargs, const char *identity,
                            nvm_host_config *hc)
{
    const nvm_host_limits *hl = &p->levels[l].host;
    nvm_host_config_init(hc);
    hc->args = args;
    hc->nargs = nargs;
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

/* Deny rules of the level; 0 or an exit status after printing why. */
static int add_deny_rules(nvm_host *h, const nvm_level_policy *lp)
{
    nvm_error err;
    memset(&err, 0, sizeof err);
    for (size_t i = 0; i < lp->ndeny; i++)
        if (nvm_host_deny_rule(h, lp->deny[i], &err) != NVM_OK) {
            fprintf(stderr, "nanovm: deny rule %s: %s\n", lp->deny[i], err.message);
            return nvm_status_exit_code(err.status);
        }
    return 0;
}

/* The capsule's effective grant: manifest-requested capabilities that the level's ceiling
 * covers and no deny rule covers entirely. Each refused one is named on stderr and audited. */
static int capsule_grants(trust_ctx *t, nvm_host *h)
{
    const nvm_decision *d = &t->dec;
    nvm_error err;
    for (size_t i = 0; i < t->man.ncaps; i++) {
        const nvm_capreq *c = &t->man.caps[i];
        const char *why = NULL;
        memset(&err, 0, sizeof err);
        if (!cap_granted(t, c))
            why = "not within the level's ceiling";
        else if (nvm_host_grant(h, c->text, &err) != NVM_OK)
            why = err.message;
        if (why == NULL)
            continue;
        fflush(stdout);
        fprintf(stderr, "nanovm: %s: capability %s refused at level %s: %s\n", t->file, c->text,
                nvm_level_name(d->level), why);
        const char *f[] = {"capsule",    d->capsule_digest,
                           "signer",     d->signer_key,
                           "level",      nvm_level_name(d->level),
                           "capability", c->text,
                           "reason",     why,
                           NULL};
        int rc = audit(t, "cap.refused", f);
        if (rc)
            return rc;
    }
    return add_deny_rules(h, &t->policy.levels[d->level]);
}

static int64_t lower(int64_t policy_v, int64_t cli_v, bool cli_set)
{
    if (!cli_set)
        return policy_v;
    if (policy_v < 0 || cli_v < policy_v)
        return cli_v;
    return policy_v;
}

static void apply_limits(const nvm_limits *l, const nvm_config *cli, nvm_config *cfg)
{
    nvm_config def;
    nvm_config_init(&def);
    *cfg = *cli;
    cfg->gas = lower(l->gas, cli->gas, cli->gas >= 0);
    int64_t mem = lower(l->memory, (int64_t)cli->max_memory, cli->max_memory != def.max_memory);
    cfg->max_memory = mem < 0 ? def.max_memory : (size_t)mem;
    int64_t stk = lower(l->stack, cli->max_stack, cli->max_stack != def.max_stack);
    cfg->max_stack = stk < 0 ? def.max_stack : (stk > UINT32_MAX ? UINT32_MAX : (uint32_t)stk);
    if (cfg->max_stack == 0)
        cfg->max_stack = 1;
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

int run_capsule(const char *file, const nvm_config *cfg_from_cli, const char *policy_path,
                const char *audit_path, const char *tier_from_cli, const char *const *args,
                uint32_t nargs)
{
    trust_ctx *t = calloc(1, sizeof *t);
    nvm_host *host = NULL;
    host_audit ha;
    nvm_module *m = NULL;
    nvm_vm *vm = NULL;
    nvm_error err;
    memset(&err, 0, sizeof err);
    if (t == NULL)
        return nvm_status_exit_code(NVM_E_INTERNAL);
    int rc = ctx_assess(t, file, policy_path, audit_path);
    if (rc != 0)
        goto done;
    const nvm_decision *d = &t->dec;
    if (!d->may_run) {
        fflush(stdout);
        fprintf(stderr, "nanovm: %s: rejected (trust level %s): %s\n", file,
                nvm_level_name(d->level), t->reasons);
        rc = EXIT_REJECTED;
        goto done;
    }
    if (tier_from_cli != NULL && !t->policy.allow_tier_override &&
        strcmp(tier_from_cli, d->tier) != 0 && strcmp(tier_from_cli, "auto") != 0) {
        fprintf(stderr, "nanovm: the policy does not allow --tier; running on %s\n", d->tier);
    }
    nvm_config cfg;
    apply_limits(&d->limits, cfg_from_cli, &cfg);
    nvm_status st =
        nvm_module_from_bytecode(&cfg, t->cap.bytecode.p, t->cap.bytecode.len, file, &m, &err);
    if (st == NVM_OK)
        st = nvm_module_set_entry(m, t->man.entry, &err);
    if (st != NVM_OK) {
        const char *f[] = {"capsule", d->capsule_digest, "level", "rejected",
                           "reason",  err.message,       NULL};
        rc = audit(t, "reject", f);
        perr(file, &err);
        if (rc == 0)
            rc = nvm_status_exit_code(st);
        goto done;
    }
    char gas[32], mem[32], stk[32];
    snprintf(gas, sizeof gas, "%" PRId64, cfg.gas);
    snprintf(mem, sizeof mem, "%zu", cfg.max_memory);
    snprintf(stk, sizeof stk, "%" PRIu32, cfg.max_stack);
    const char *tf[] = {"capsule",     d->capsule_digest, "signer",
                        d->signer_key, "level",           nvm_level_name(d->level),
                        "tier",        d->tier,           NULL};
    const char *sf[] = {"capsule", d->capsule_digest,
                        "signer",  d->signer_key,
                        "level",   nvm_level_name(d->level),
                        "tier",    d->tier,
                        "entry",   t->man.entry,
                        "gas",     gas,
                        "memory",  mem,
                        "stack",   stk,
                        NULL};
    if ((rc = audit(t, "tier", tf)) != 0)
        goto done;
    if (nvm_rollback_record(&t->policy, &t->man, d, &err) != NVM_OK) {
        perr(file, &err);
        rc = nvm_status_exit_code(err.status);
        goto done;
    }
    st = nvm_vm_new(&cfg, &vm);
    if (st != NVM_OK) {
        fprintf(stderr, "nanovm: cannot create a VM: %s\n", nvm_status_meaning(st));
        rc = nvm_status_exit_code(st);
        goto done;
    }
    char identity[sizeof t->man.name + 2 * NVM_SHA256_LEN + 16];
    snprintf(identity, sizeof identity, "%s/%s", t->man.name,
             d->signer_key[0] ? d->signer_key : "unsigned");
    memset(&ha, 0, sizeof ha);
    ha.log = t->audit;
    const char *base[] = {"capsule", d->capsule_digest,        "signer", d->signer_key,
                          "level",   nvm_level_name(d->level), NULL};
    memcpy(ha.base, base, sizeof base);
    nvm_host_config hc;
    host_config_for(&t->policy, d->level, d->limits.wall_ms, &ha, args, nargs, identity, &hc);
    st = nvm_host_new(&hc, &host, &err);
    if (st != NVM_OK) {
        perr(file, &err);
        rc = nvm_status_exit_code(st);
        goto done;
    }
    if ((rc = capsule_grants(t, host)) != 0)
        goto done;
    st = nvm_host_install(host, vm);
    if (st == NVM_OK)
        st = nvm_vm_load(vm, m);
    if (st == NVM_OK) {
        if ((rc = audit(t, "run.start", sf)) != 0)
            goto done;
        st = nvm_vm_run(vm);
        fflush(stdout);
        char status[32], code[16];
        snprintf(status, sizeof status, "%s", nvm_status_name(st));
        snprintf(code, sizeof code, "%d", nvm_status_exit_code(st));
        const char *which = limit_name(st);
        const char *lf[] = {"capsule", d->capsule_digest,
                            "signer",  d->signer_key,
                            "level",   nvm_level_name(d->level),
                            "tier",    d->tier,
                            "limit",   which,
                            NULL};
        if (which != NULL && (rc = audit(t, "limit", lf)) != 0)
            goto done;
        const char *ef[] = {"capsule", d->capsule_digest,
                            "signer",  d->signer_key,
                            "level",   nvm_level_name(d->level),
                            "tier",    d->tier,
                            "status",  status,
                            "exit",    code,
                            NULL};
        if ((rc = audit(t, "run.end", ef)) != 0)
            goto done;
    }
    if (st != NVM_OK) {
        const nvm_error *ve = nvm_vm_error(vm);
        if (ve->message[0])
            perr(file, ve);
        else
            fprintf(stderr, "nanovm: %s: %s\n", file, nvm_status_meaning(st));
        rc = nvm_status_exit_code(st);
        goto done;
    }
    rc = 0;
done:
    nvm_vm_free(vm);
    nvm_host_free(host);
    nvm_module_free(m);
    ctx_free(t);
    free(t);
    return rc;
}

/* ---- bare programs: unsigned, so sandboxed ---- */

/* Types a bare program gets from the sandboxed ceiling without asking: they reach nothing
 * outside the process but its own streams and clocks. The rest (fs, net, env, kv) only through
 * --allow. */
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

int run_bare(const char *file, nvm_module *m, const nvm_config *cfg, const char *policy_path,
             const char *audit_path, const char *const *allows, size_t nallow,
             const char *const *args, uint32_t nargs)
{
    nvm_policy policy;
    bool policy_ok = false;
    nvm_audit *log = NULL;
    nvm_host *host = NULL;
    nvm_vm *vm = NULL;
    nvm_error err;
    host_audit ha;
    int rc = 0;
    memset(&err, 0, sizeof err);
    memset(&ha, 0, sizeof ha);
    nvm_status st = nvm_policy_load(policy_path, &policy, &err);
    if (st != NVM_OK) {
        perr(policy_path ? policy_path : NVM_POLICY_DEFAULT_PATH, &err);
        return nvm_status_exit_code(st);
    }
    policy_ok = true;
    const char *logpath = audit_path ? audit_path : policy.audit_log;
    st = nvm_audit_open(logpath, policy.state_dir, &log, &err);
    if (st != NVM_OK) {
        perr(logpath, &err);
        rc = nvm_status_exit_code(st);
        goto done;
    }
    const nvm_trust_level level = NVM_LEVEL_SANDBOXED;
    const nvm_level_policy *lp = &policy.levels[level];
    ha.log = log;
    const char *base[] = {"file", file, "level", nvm_level_name(level), NULL};
    memcpy(ha.base, base, sizeof base);
    char identity[1100];
    snprintf(identity, sizeof identity, "%s/unsigned", file);
    nvm_host_config hc;
    host_config_for(&policy, level, lp->limits.wall_ms, &ha, args, nargs, identity, &hc);
    st = nvm_host_new(&hc, &host, &err);
    if (st != NVM_OK) {
        perr(file, &err);
        rc = nvm_status_exit_code(st);
        goto done;
    }
    for (size_t w = 0; ambient_types[w] != NULL; w++)
        for (size_t i = 0; i < lp->ncaps; i++) {
            char g[600];
            if (ambient_pattern(lp->caps[i], g, sizeof g, w) &&
                nvm_host_grant(host, g, &err) != NVM_OK) {
                perr(policy.path ? policy.path : "policy", &err);
                rc = nvm_status_exit_code(err.status);
                goto done;
            }
        }
    for (size_t i = 0; i < nallow; i++) {
        nvm_capreq c;
        char why[NVM_ERROR_MESSAGE_MAX];
        if (nvm_capreq_parse(allows[i], &c, why, sizeof why) != NVM_OK) {
            fprintf(stderr, "nanovm: --allow: %s\n(run 'nanovm --help' for usage)\n", why);
            rc = EXIT_USAGE_T;
            goto done;
        }
        if (!nvm_level_allows(&policy, level, &c)) {
            fprintf(stderr,
                    "nanovm: --allow %s: refused: not within the sandboxed ceiling of the "
                    "policy%s%s\n",
                    allows[i], policy.path ? " " : " (built-in default)",
                    policy.path ? policy.path : "");
            const char *f[] = {
                "file",       file,      "level",  "sandboxed",
                "capability", allows[i], "reason", "--allow beyond the sandboxed ceiling",
                NULL};
            nvm_audit_append(log, "cap.refused", f, &err);
            rc = EXIT_REJECTED;
            goto done;
        }
        if (nvm_host_grant(host, allows[i], &err) != NVM_OK) {
            fprintf(stderr, "nanovm: --allow %s: %s\n", allows[i], err.message);
            rc = EXIT_USAGE_T;
            goto done;
        }
    }
    if ((rc = add_deny_rules(host, lp)) != 0)
        goto done;
    st = nvm_vm_new(cfg, &vm);
    if (st != NVM_OK) {
        fprintf(stderr, "nanovm: cannot create a VM: %s\n", nvm_status_meaning(st));
        rc = nvm_status_exit_code(st);
        goto done;
    }
    st = nvm_host_install(host, vm);
    if (st == NVM_OK)
        st = nvm_vm_load(vm, m);
    if (st == NVM_OK) {
        const char *sf[] = {"file", file, "level", "sandboxed", NULL};
        if (nvm_audit_append(log, "run.start", sf, &err) != NVM_OK) {
            perr(logpath, &err);
            rc = nvm_status_exit_code(err.status);
            goto done;
        }
        st = nvm_vm_run(vm);
        fflush(stdout);
        char status[32], code[16];
        snprintf(status, sizeof status, "%s", nvm_status_name(st));
        snprintf(code, sizeof code, "%d", nvm_status_exit_code(st));
        const char *ef[] = {"file", file,   "level", "sandboxed", "status",
                            status, "exit", code,    NULL};
        if (nvm_audit_append(log, "run.end", ef, &err) != NVM_OK) {
            perr(logpath, &err);
            rc = nvm_status_exit_code(err.status);
            goto done;
        }
    }
    if (st != NVM_OK)
        print_error(nvm_vm_error(vm), file);
    rc = nvm_status_exit_code(st);
done:
    nvm_vm_free(vm);
    nvm_host_free(host);
    nvm_audit_close(log);
    if (policy_ok)
        nvm_policy_free(&policy);
    return rc;
}

/* ---- audit verify ---- */

int cmd_audit(int argc, char **argv)
{
    const char *state = NULL, *policy = NULL, *log = NULL;
    if (argc < 1 || strcmp(argv[0], "verify") != 0)
        return tusage("usage: nanovm audit verify [--policy P] [--state-dir DIR] [LOG]");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc)
            state = argv[++i];
        else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc)
            policy = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return tusage("usage: nanovm audit verify [--policy P] [--state-dir DIR] [LOG]");
        else if (log == NULL)
            log = argv[i];
        else
            return tusage("audit verify takes one log");
    }
    nvm_policy p;
    nvm_error err;
    memset(&err, 0, sizeof err);
    bool have_policy = false;
    if (policy != NULL || log == NULL || state == NULL) {
        nvm_status st = nvm_policy_load(policy, &p, &err);
        if (st != NVM_OK) {
            perr(policy ? policy : NVM_POLICY_DEFAULT_PATH, &err);
            return nvm_status_exit_code(st);
        }
        have_policy = true;
        if (state == NULL)
            state = p.state_dir;
        if (log == NULL)
            log = p.audit_log;
    }
    int rc = 0;
    if (log == NULL) {
        rc = tusage("audit verify needs a LOG (the policy names none)");
    } else {
        uint64_t n = 0;
        nvm_status st = nvm_audit_verify(log, state, &n, &err);
        if (st != NVM_OK) {
            perr(log, &err);
            rc = nvm_status_exit_code(st);
        } else {
            printf("%s: %" PRIu64 " records, hash chain intact%s\n", log, n,
                   state ? ", matches the head"
                         : " (no state dir: a truncation at a record "
                           "boundary is not detectable)");
        }
    }
    if (have_policy)
        nvm_policy_free(&p);
    return rc;
}

/* ---- policy check ---- */

static void print_strv(const char *label, char *const *v, size_t n)
{
    printf("  %-13s", label);
    if (n == 0)
        printf(" (none)");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : " ", v[i]);
    printf("\n");
}

int cmd_policy(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[0], "check") != 0)
        return tusage("usage: nanovm policy check POLICY.json");
    nvm_policy p;
    nvm_error err;
    memset(&err, 0, sizeof err);
    nvm_status st = nvm_policy_load(argv[1], &p, &err);
    if (st != NVM_OK) {
        perr(argv[1], &err);
        return nvm_status_exit_code(st);
    }
    printf("%s: valid policy\n", argv[1]);
    size_t nroots = p.roots ? nvm_certs_count(p.roots) : 0;
    printf("  trust roots:  %zu\n", nroots);
    for (size_t i = 0; i < nroots; i++) {
        char subj[256], serial[256], nb[256], na[256], fp[256];
        if (nvm_certs_describe(p.roots, i, subj, serial, nb, na, fp) == NVM_OK)
            printf("    %s (valid %s .. %s)\n", subj, nb, na);
    }
    printf("  pinned keys:  %zu\n", p.npinned);
    for (size_t i = 0; i < p.npinned; i++) {
        uint8_t h[NVM_SHA256_LEN];
        char hex[2 * NVM_SHA256_LEN + 1];
        nvm_sha256(p.pinned[i], NVM_ED25519_PUB_LEN, h);
        nvm_hex(h, sizeof h, hex);
        printf("    key sha256 %s\n", hex);
    }
    printf("  revoked:      %zu keys, %zu serials, %zu capsules\n", p.nrevoked_keys,
           p.nrevoked_serials, p.nrevoked_capsules);
    printf("  min_level:    %s (lower levels are rejected)\n", nvm_level_name(p.min_level));
    printf("  invalid signature: %s\n",
           p.invalid_signature_sandbox ? "sandbox (run as unsigned)" : "reject");
    printf("  state_dir:    %s\n", p.state_dir ? p.state_dir : "(none: no rollback protection)");
    printf("  audit_log:    %s\n", p.audit_log ? p.audit_log : "(none)");
    printf("  tier override from the command line: %s\n",
           p.allow_tier_override ? "allowed" : "not allowed");
    for (int l = NVM_LEVEL_TRUSTED; l >= NVM_LEVEL_RESTRICTED; l--) {
        const nvm_level_policy *lp = &p.levels[l];
        printf("  level %s: tier %s,", nvm_level_name((nvm_trust_level)l), lp->tier);
        print_limit("gas", lp->limits.gas);
        print_limit("memory", lp->limits.memory);
        print_limit("stack", lp->limits.stack);
        print_limit("wall_ms", lp->limits.wall_ms);
        printf("\n");
        print_strv("  allow:", lp->caps, lp->ncaps);
        print_strv("  deny:", lp->deny, lp->ndeny);
    }
    nvm_policy_free(&p);
    return 0;
}
