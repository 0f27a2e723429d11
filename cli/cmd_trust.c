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

/* A capability the level does not grant: the call fails with NVM_E_DENIED, audited first. */
typedef struct deny_ud {
    trust_ctx *t;
    const char *name;
} deny_ud;

static nvm_status denied_cap(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                             nvm_value *result)
{
    (void)args;
    (void)argc;
    (void)result;
    deny_ud *du = ud;
    const nvm_decision *d = &du->t->dec;
    const char *f[] = {"capsule",     d->capsule_digest, "signer",
                       d->signer_key, "level",           nvm_level_name(d->level),
                       "capability",  du->name,          NULL};
    if (audit(du->t, "cap.denied", f) != 0)
        return nvm_cap_fail(vm, NVM_E_IO, "cannot write the audit log");
    return nvm_cap_fail(vm, NVM_E_DENIED, "capability %s is not granted at level %s", du->name,
                        nvm_level_name(d->level));
}

/* True when a requested capability of the manifest, granted by the level, covers `name`
 * (the CAP_CALL name "type.action"). */
static bool name_granted(const trust_ctx *t, const char *name)
{
    for (size_t i = 0; i < t->man.ncaps; i++) {
        const nvm_capreq *c = &t->man.caps[i];
        char ta[80];
        snprintf(ta, sizeof ta, "%s.%s", c->type, c->action);
        if (strcmp(ta, name) == 0 && cap_granted(t, c))
            return true;
    }
    return false;
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
                const char *audit_path, const char *tier_from_cli)
{
    trust_ctx *t = calloc(1, sizeof *t);
    deny_ud *dus = NULL;
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
    st = nvm_host_register_stdio(vm);
    uint32_t ncap = nvm_module_cap_count(m);
    dus = calloc(ncap ? ncap : 1, sizeof *dus);
    if (dus == NULL)
        st = NVM_E_INTERNAL;
    for (uint32_t i = 0; st == NVM_OK && i < ncap; i++) {
        const char *name = nvm_module_cap_name(m, i);
        if (name_granted(t, name))
            continue;
        dus[i] = (deny_ud){t, name};
        st = nvm_vm_register_cap(vm, name, NVM_VARIADIC, denied_cap, &dus[i]);
    }
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
    nvm_module_free(m);
    free(dus);
    ctx_free(t);
    free(t);
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
