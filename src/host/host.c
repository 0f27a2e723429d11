/* host.c - the per-run host context (nvm_host): configuration, grants (fs grants open their
 * directory here, at grant time), deny rules, the per-call gate (deadline, grant, deny rules,
 * audit), per-run limits, handles, and nvm_host_install. Scope semantics live in one place,
 * src/trust/policy.c (nvm_scope_match, nvm_cap_call_match), shared with the policy. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/hal.h"
#include "trust/manifest.h"
#include "trust/policy.h"

void nvm_host_config_init(nvm_host_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_read_bytes = -1;
    cfg->max_write_bytes = -1;
    cfg->max_handles = -1;
    cfg->max_connections = -1;
    cfg->wall_ms = -1;
}

int64_t nvm_host_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dupstr(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static nvm_status set_err(nvm_error *err, nvm_status st, const char *fmt, const char *a,
                          const char *b)
{
    if (err != NULL) {
        memset(err, 0, sizeof *err);
        err->status = st;
        snprintf(err->message, sizeof err->message, fmt, a, b);
    }
    return st;
}

nvm_status nvm_host_new(const nvm_host_config *cfg, nvm_host **out, nvm_error *err)
{
    nvm_host *h = calloc(1, sizeof *h);
    char **args = NULL;
    if (h == NULL)
        goto oom;
    nvm_host_config_init(&h->cfg);
    if (cfg != NULL)
        h->cfg = *cfg;
    h->cfg.args = NULL;
    h->cfg.nargs = 0;
    h->cfg.state_dir = NULL;
    h->cfg.identity = NULL;
    if (cfg != NULL && cfg->nargs > 0) {
        args = calloc(cfg->nargs, sizeof *args);
        if (args == NULL)
            goto oom;
        h->cfg.args = (const char *const *)args;
        for (uint32_t i = 0; i < cfg->nargs; i++) {
            args[i] = dupstr(cfg->args[i] != NULL ? cfg->args[i] : "");
            if (args[i] == NULL)
                goto oom;
            h->cfg.nargs = i + 1;
        }
    }
    if (cfg != NULL && cfg->state_dir != NULL &&
        (h->cfg.state_dir = dupstr(cfg->state_dir)) == NULL)
        goto oom;
    if (cfg != NULL && cfg->identity != NULL && (h->cfg.identity = dupstr(cfg->identity)) == NULL)
        goto oom;
    h->deadline_ms = h->cfg.wall_ms >= 0 ? nvm_host_now_ms() + h->cfg.wall_ms : -1;
    *out = h;
    return NVM_OK;
oom:
    nvm_host_free(h);
    return set_err(err, NVM_E_INTERNAL, "host: out of memory%s%s", "", "");
}

/* The literal directory prefix of an fs pattern: everything before the '/' that precedes the
 * first wildcard, or before the last '/' when there is none ("/" at least). */
static void fs_root_of(const char *scope, char *root, size_t rootlen)
{
    if (scope[0] == '\0') {
        snprintf(root, rootlen, "/");
        return;
    }
    size_t wild = strcspn(scope, "*");
    size_t cut = 0;
    for (size_t i = 0; i < wild; i++)
        if (scope[i] == '/')
            cut = i;
    if (scope[wild] == '\0' && wild > 0 && scope[wild - 1] == '/')
        cut = wild - 1;
    if (cut == 0)
        snprintf(root, rootlen, "/");
    else
        snprintf(root, rootlen, "%.*s", (int)cut, scope);
}

nvm_status nvm_host_grant(nvm_host *h, const char *capability, nvm_error *err)
{
    if (h == NULL || capability == NULL)
        return set_err(err, NVM_E_USAGE, "nvm_host_grant needs a host and a capability%s%s", "",
                       "");
    nvm_capgrant g;
    memset(&g, 0, sizeof g);
    g.dirfd = -1;
    size_t n = strlen(capability);
    bool wide = strcmp(capability, "*") == 0 || (n >= 3 && strcmp(capability + n - 2, ".*") == 0 &&
                                                 n - 2 < 32 && strchr(capability, ':') == NULL);
    char type[32] = "";
    if (wide) {
        if (n >= sizeof g.capname)
            return set_err(err, NVM_E_FORMAT, "capability \"%s\": too long%s", capability, "");
        memcpy(g.capname, capability, n + 1);
        if (n >= 3) {
            memcpy(type, capability, n - 2);
            type[n - 2] = '\0';
            nvm_capreq probe;
            char why[NVM_ERROR_MESSAGE_MAX];
            char test[40];
            snprintf(test, sizeof test, "%s.x", type);
            if (nvm_capreq_parse(test, &probe, why, sizeof why) != NVM_OK)
                return set_err(err, NVM_E_FORMAT, "capability \"%s\": not a pattern%s", capability,
                               "");
        }
    } else {
        nvm_capreq c;
        char why[NVM_ERROR_MESSAGE_MAX];
        if (nvm_capreq_parse(capability, &c, why, sizeof why) != NVM_OK)
            return set_err(err, NVM_E_FORMAT, "%s%s", why, "");
        snprintf(g.capname, sizeof g.capname, "%s.%s", c.type, c.action);
        snprintf(g.scope, sizeof g.scope, "%s", c.scope);
        snprintf(type, sizeof type, "%s", c.type);
    }
    if (strcmp(capability, "*") == 0 || strcmp(type, "fs") == 0) {
        fs_root_of(g.scope, g.root, sizeof g.root);
        g.dirfd = open(g.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (g.dirfd < 0)
            return set_err(err, NVM_E_IO, "capability \"%s\": cannot open its directory: %s",
                           capability, strerror(errno));
    }
    nvm_capgrant *ng = realloc(h->grants, (h->ngrants + 1) * sizeof *ng);
    if (ng == NULL) {
        if (g.dirfd >= 0)
            close(g.dirfd);
        return set_err(err, NVM_E_INTERNAL, "host: out of memory%s%s", "", "");
    }
    h->grants = ng;
    h->grants[h->ngrants++] = g;
    return NVM_OK;
}

nvm_status nvm_host_deny_rule(nvm_host *h, const char *pattern, nvm_error *err)
{
    if (h == NULL || pattern == NULL)
        return set_err(err, NVM_E_USAGE, "nvm_host_deny_rule needs a host and a pattern%s%s", "",
                       "");
    char *d = dupstr(pattern);
    char **nd = d != NULL ? realloc(h->denies, (h->ndenies + 1) * sizeof *nd) : NULL;
    if (nd == NULL) {
        free(d);
        return set_err(err, NVM_E_INTERNAL, "host: out of memory%s%s", "", "");
    }
    h->denies = nd;
    h->denies[h->ndenies++] = d;
    return NVM_OK;
}

void nvm_host_free(nvm_host *h)
{
    if (h == NULL)
        return;
    nvm_host_kv_close(h);
    for (size_t i = 0; i < h->ngrants; i++)
        if (h->grants[i].dirfd >= 0)
            close(h->grants[i].dirfd);
    free(h->grants);
    for (size_t i = 0; i < h->ndenies; i++)
        free(h->denies[i]);
    free(h->denies);
    for (size_t i = 0; i < h->nhandles; i++)
        if (h->handles[i].kind != NVM_HANDLE_FREE)
            close(h->handles[i].fd);
    free(h->handles);
    if (h->cfg.args != NULL) {
        for (uint32_t i = 0; i < h->cfg.nargs; i++)
            free((char *)h->cfg.args[i]);
        free((void *)h->cfg.args);
    }
    free((char *)h->cfg.state_dir);
    free((char *)h->cfg.identity);
    free(h);
}

nvm_status nvm_host_install(nvm_host *h, nvm_vm *vm)
{
    if (h == NULL || vm == NULL)
        return NVM_E_USAGE;
    nvm_status st = nvm_host_install_io(h, vm);
    if (st == NVM_OK)
        st = nvm_host_install_fs(h, vm);
    if (st == NVM_OK)
        st = nvm_host_install_sys(h, vm);
    if (st == NVM_OK)
        st = nvm_host_install_pure(h, vm);
    if (st == NVM_OK)
        st = nvm_host_install_net(h, vm);
    if (st == NVM_OK)
        st = nvm_host_install_kv(h, vm);
    return st;
}

/* ---- grants and deny rules ---- */

size_t nvm_host_grant_count(const nvm_host *h)
{
    return h->ngrants;
}

const nvm_capgrant *nvm_host_grant_at(const nvm_host *h, size_t i)
{
    return i < h->ngrants ? &h->grants[i] : NULL;
}

static bool grant_admits(const nvm_capgrant *g, const char *capname, const char *arg)
{
    char pattern[sizeof g->capname + sizeof g->scope + 1];
    if (g->scope[0] != '\0')
        snprintf(pattern, sizeof pattern, "%s:%s", g->capname, g->scope);
    else
        snprintf(pattern, sizeof pattern, "%s", g->capname);
    return nvm_cap_call_match(pattern, capname, arg);
}

/* True when some grant names capname at all, whatever its scope. */
static bool granted_any_scope(const nvm_host *h, const char *capname)
{
    for (size_t i = 0; i < h->ngrants; i++)
        if (nvm_cap_call_match(h->grants[i].capname, capname, NULL))
            return true;
    return false;
}

const char *nvm_host_why_not(const nvm_host *h, const char *capname)
{
    return granted_any_scope(h, capname) ? "outside the granted scope" : "not granted";
}

const nvm_capgrant *nvm_host_find_grant(const nvm_host *h, const char *capname, const char *arg)
{
    for (size_t i = 0; i < h->ngrants; i++)
        if (grant_admits(&h->grants[i], capname, arg))
            return &h->grants[i];
    return NULL;
}

bool nvm_host_denied_by_rule(const nvm_host *h, const char *capname, const char *arg)
{
    for (size_t i = 0; i < h->ndenies; i++) {
        const char *p = h->denies[i];
        /* a scoped rule applies to calls without a checked argument too: fail closed */
        if (arg == NULL && strchr(p, ':') != NULL) {
            size_t n = (size_t)(strchr(p, ':') - p);
            if (strlen(capname) == n && strncmp(p, capname, n) == 0)
                return true;
            continue;
        }
        if (nvm_cap_call_match(p, capname, arg))
            return true;
    }
    return false;
}

bool nvm_glob_match(const char *pattern, const char *text, char sep)
{
    return nvm_glob_match_sep(pattern, text, sep);
}

/* ---- audit ---- */

void nvm_host_arg_text(const char *s, size_t len, char *out, size_t outlen)
{
    static const char hexd[] = "0123456789abcdef";
    size_t o = 0;
    if (outlen == 0)
        return;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = (c < 0x20 || c > 0x7e) ? 4 : 1;
        if (o + need + 4 > outlen) {
            if (outlen >= 4) {
                o = o + 4 > outlen ? outlen - 4 : o;
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (need == 4) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hexd[c >> 4];
            out[o++] = hexd[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static nvm_status audit(nvm_host *h, const char *event, const char *const *fields)
{
    if (h->cfg.audit == NULL)
        return NVM_OK;
    return h->cfg.audit(h->cfg.audit_ud, event, fields);
}

nvm_status nvm_host_deny(nvm_host *h, nvm_vm *vm, const char *capname, const char *arg,
                         const char *why)
{
    char a[600];
    nvm_host_arg_text(arg != NULL ? arg : "", arg != NULL ? strlen(arg) : 0, a, sizeof a);
    const char *f[] = {"capability", capname, "argument", a, "reason", why, NULL};
    if (audit(h, "cap.denied", f) != NVM_OK)
        return nvm_cap_fail(vm, NVM_E_IO, "%s: cannot write the audit log", capname);
    if (arg != NULL)
        return nvm_cap_fail(vm, NVM_E_DENIED, "%s(\"%s\"): %s", capname, a, why);
    return nvm_cap_fail(vm, NVM_E_DENIED, "%s: %s", capname, why);
}

nvm_status nvm_host_audit_call(nvm_host *h, const char *capname, const char *scope, const char *arg,
                               bool pure)
{
    if (pure && !h->cfg.audit_pure_calls)
        return NVM_OK;
    char a[600];
    nvm_host_arg_text(arg != NULL ? arg : "", arg != NULL ? strlen(arg) : 0, a, sizeof a);
    const char *f[] = {"capability", capname, "scope", scope != NULL ? scope : "",
                       "argument",   a,       NULL};
    return audit(h, "cap.call", f) == NVM_OK ? NVM_OK : NVM_E_IO;
}

nvm_status nvm_host_gate(nvm_host *h, nvm_vm *vm, const char *capname, const char *arg,
                         unsigned flags, const nvm_capgrant **out)
{
    const nvm_capgrant *g = NULL;
    if (out != NULL)
        *out = NULL;
    nvm_status st = nvm_host_check_deadline(h, vm);
    if (st != NVM_OK)
        return st;
    if (!(flags & NVM_GATE_NOGRANT)) {
        g = nvm_host_find_grant(h, capname, arg);
        if (g == NULL)
            return nvm_host_deny(h, vm, capname, arg, nvm_host_why_not(h, capname));
    }
    if (nvm_host_denied_by_rule(h, capname, arg))
        return nvm_host_deny(h, vm, capname, arg, "denied by a policy rule");
    char scope[sizeof g->capname + sizeof g->scope + 1] = "";
    if (g != NULL)
        snprintf(scope, sizeof scope, "%s%s%s", g->capname, g->scope[0] ? ":" : "", g->scope);
    if (nvm_host_audit_call(h, capname, scope, arg, (flags & NVM_GATE_PURE) != 0) != NVM_OK)
        return nvm_cap_fail(vm, NVM_E_IO, "%s: cannot write the audit log", capname);
    if (out != NULL)
        *out = g;
    return NVM_OK;
}

/* ---- limits ---- */

static nvm_status limit_hit(nvm_host *h, nvm_vm *vm, nvm_status st, const char *which, int64_t max)
{
    char m[32];
    snprintf(m, sizeof m, "%" PRId64, max);
    const char *f[] = {"limit", which, "max", m, NULL};
    (void)audit(h, "limit", f);
    return nvm_cap_fail(vm, st, "host limit %s (%s) exceeded", which, m);
}

nvm_status nvm_host_account(nvm_host *h, nvm_vm *vm, int64_t nread, int64_t nwritten)
{
    if (h->cfg.max_read_bytes >= 0 && nread > h->cfg.max_read_bytes - h->bytes_read)
        return limit_hit(h, vm, NVM_E_HOSTLIMIT, "read_bytes", h->cfg.max_read_bytes);
    if (h->cfg.max_write_bytes >= 0 && nwritten > h->cfg.max_write_bytes - h->bytes_written)
        return limit_hit(h, vm, NVM_E_HOSTLIMIT, "write_bytes", h->cfg.max_write_bytes);
    h->bytes_read += nread;
    h->bytes_written += nwritten;
    return NVM_OK;
}

nvm_status nvm_host_check_deadline(nvm_host *h, nvm_vm *vm)
{
    if (h->deadline_ms >= 0 && nvm_host_now_ms() > h->deadline_ms)
        return limit_hit(h, vm, NVM_E_TIME, "wall_ms", h->cfg.wall_ms);
    return NVM_OK;
}

/* ---- handles ---- */

nvm_status nvm_host_handle_add(nvm_host *h, nvm_vm *vm, int kind, int fd, const char *label,
                               int64_t *out_number)
{
    size_t open_count = 0, slot = h->nhandles;
    for (size_t i = 0; i < h->nhandles; i++) {
        if (h->handles[i].kind != NVM_HANDLE_FREE)
            open_count++;
        else if (slot == h->nhandles)
            slot = i;
    }
    if (h->cfg.max_handles >= 0 && (int64_t)open_count >= h->cfg.max_handles)
        return limit_hit(h, vm, NVM_E_HOSTLIMIT, "handles", h->cfg.max_handles);
    if (slot == h->nhandles) {
        nvm_handle *nh = realloc(h->handles, (h->nhandles + 1) * sizeof *nh);
        if (nh == NULL)
            return nvm_cap_fail(vm, NVM_E_MEMORY, "host: out of memory for a handle");
        h->handles = nh;
        h->nhandles++;
    }
    nvm_handle *e = &h->handles[slot];
    e->kind = kind;
    e->fd = fd;
    snprintf(e->label, sizeof e->label, "%s", label != NULL ? label : "");
    *out_number = (int64_t)slot + 1;
    return NVM_OK;
}

nvm_handle *nvm_host_handle_get(nvm_host *h, int64_t number, int kind)
{
    if (number < 1 || (uint64_t)number > h->nhandles)
        return NULL;
    nvm_handle *e = &h->handles[number - 1];
    if (e->kind == NVM_HANDLE_FREE || (kind != NVM_HANDLE_FREE && e->kind != kind))
        return NULL;
    return e;
}

void nvm_host_handle_close(nvm_host *h, int64_t number)
{
    nvm_handle *e = nvm_host_handle_get(h, number, NVM_HANDLE_FREE);
    if (e == NULL)
        return;
    close(e->fd);
    e->kind = NVM_HANDLE_FREE;
    e->fd = -1;
    e->label[0] = '\0';
}
