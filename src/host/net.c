/* net.c - TCP capabilities: net.connect(host, port) -> handle, net.listen(host, port) -> handle,
 * net.accept(listener) -> handle, net.send(handle, str) -> bytes sent, net.recv(handle, maxbytes)
 * -> str ("" at end of stream), net.close(handle).
 *
 * Scope grammar (net.connect / net.listen): HOST:PORT where HOST is an IPv4 literal, an IPv6
 * literal in brackets ("[::1]"), an IPv4 pattern with whole-octet '*' ("10.0.0.*"), or a DNS name
 * pattern whose labels are names or a whole-label '*' ("*.example.org", one label per '*');
 * PORT is 1..65535 or '*'. An empty scope allows any host and port.
 *
 * Check of a call (host, port), all of it before any socket() call:
 *   1. a deny rule matching "host:port" refuses the call;
 *   2. the candidate grants are those of the capability whose port matches; when the program's
 *      host is a name and no candidate could match it (no address grant, no name pattern that
 *      matches the text) the call is refused without any DNS lookup;
 *   3. the host is resolved once (getaddrinfo, TCP); a name that parses as a numeric address
 *      (also inet_aton forms such as "127.1") counts as an address literal;
 *   4. EVERY resolved address A must pass no deny rule on "A:port" and be allowed by a grant:
 *      an address grant when A equals it (IPv4-mapped IPv6 compares as IPv4), an IPv4 pattern
 *      when A's octets match, a name grant without '*' when the program's name equals it and
 *      A is among the addresses the grant name resolves to, a name pattern with '*' when the
 *      program's name matches it label by label (A then comes from that very name);
 *   5. the call connects (or binds) only to the addresses checked in 4, in resolution order.
 * Handle operations (accept, send, recv, close) are authorised by the handle, which only a
 * checked call can create; a deny rule on the capability with the handle's label still refuses
 * them. Waiting (connect, accept, send, recv) is bounded by the host deadline. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/hal.h"
#include "trust/policy.h"

#define NET_MAX_ADDRS 16
#define NET_RECV_MAX (1 << 20) /* largest net.recv result */
#define NET_HOST_MAX 256

/* One resolved address; text is the numeric form without brackets. */
typedef struct net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[INET6_ADDRSTRLEN];
} net_addr;

/* A host given by the program (or named by a grant), normalised: lower case, no brackets, no
 * trailing dot. literal: the host is a numeric address (addrs[0]). */
typedef struct net_target {
    char host[NET_HOST_MAX];
    bool literal;
    bool v6;
    int port;
    net_addr addrs[NET_MAX_ADDRS];
    size_t naddrs;
} net_target;

enum net_host_kind { NET_H_ANY, NET_H_ADDR, NET_H_V4PAT, NET_H_NAME };

/* A parsed grant scope. */
typedef struct net_scope {
    int kind;
    char host[NET_HOST_MAX]; /* NET_H_V4PAT / NET_H_NAME: the pattern, lower case */
    bool wildcard;           /* NET_H_NAME: contains a '*' label */
    net_addr addr;           /* NET_H_ADDR */
    int port;                /* 0: any */
} net_scope;

/* ---- addresses ---- */

/* The 4 IPv4 bytes of a (possibly IPv4-mapped IPv6) address, or NULL. */
static const unsigned char *addr_v4(const net_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return (const unsigned char *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
    const struct in6_addr *x = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
    if (a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(x))
        return x->s6_addr + 12;
    return NULL;
}

static bool addr_equal(const net_addr *a, const net_addr *b)
{
    const unsigned char *a4 = addr_v4(a), *b4 = addr_v4(b);
    if (a4 != NULL || b4 != NULL)
        return a4 != NULL && b4 != NULL && memcmp(a4, b4, 4) == 0;
    if (a->ss.ss_family != AF_INET6 || b->ss.ss_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;
    return memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0 && x->sin6_scope_id == y->sin6_scope_id;
}

static void addr_from_ai(net_addr *a, const struct addrinfo *ai)
{
    memset(a, 0, sizeof *a);
    memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
    a->len = ai->ai_addrlen;
    const void *raw = ai->ai_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    if (inet_ntop(ai->ai_family, raw, a->text, sizeof a->text) == NULL)
        snprintf(a->text, sizeof a->text, "?");
}

static void addr_set_port(net_addr *a, int port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
}

/* "1.2.3.4:80" or "[::1]:80". */
static void fmt_hostport(char *buf, size_t cap, const char *host, bool v6, int port)
{
    if (port > 0)
        snprintf(buf, cap, v6 ? "[%s]:%d" : "%s:%d", host, port);
    else
        snprintf(buf, cap, v6 ? "[%s]" : "%s", host);
}

/* getaddrinfo for TCP; numeric_only asks for AI_NUMERICHOST. Returns 0 or an EAI_* code. */
static int resolve(const char *host, bool numeric_only, net_addr *out, size_t *n)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = numeric_only ? AI_NUMERICHOST : 0;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    *n = 0;
    if (rc != 0)
        return rc;
    for (const struct addrinfo *ai = res; ai != NULL && *n < NET_MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(struct sockaddr_storage))
            continue;
        net_addr a;
        addr_from_ai(&a, ai);
        bool dup = false;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = addr_equal(&out[i], &a);
        if (!dup)
            out[(*n)++] = a;
    }
    freeaddrinfo(res);
    return *n == 0 ? EAI_NONAME : 0;
}

/* ---- host names and patterns ---- */

/* Checks a dot-separated name (or, with allow_star, a pattern of whole-label '*') and copies it
 * lower-cased without one trailing dot. *all_numeric: every non-'*' label is digits only. */
static bool name_normalise(const char *s, size_t len, bool allow_star, char *out, bool *all_numeric,
                           bool *has_star)
{
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len >= NET_HOST_MAX)
        return false;
    *all_numeric = true;
    *has_star = false;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? s[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63)
                return false;
            if (label == 1 && s[i - 1] == '*')
                *has_star = true;
            label = 0;
            out[i] = '.';
            continue;
        }
        if (c == '*') {
            bool whole = (i == 0 || s[i - 1] == '.') && (i + 1 == len || s[i + 1] == '.');
            if (!allow_star || !whole)
                return false;
        } else if (isalpha((unsigned char)c) || c == '-' || c == '_') {
            *all_numeric = false;
        } else if (!isdigit((unsigned char)c)) {
            return false;
        }
        out[i] = (char)tolower((unsigned char)c);
        label++;
    }
    out[len] = '\0';
    return true;
}

/* Label-by-label match: a '*' pattern label matches exactly one label. */
static bool name_match(const char *pat, const char *name)
{
    for (;;) {
        const char *pe = strchr(pat, '.'), *ne = strchr(name, '.');
        size_t pl = pe ? (size_t)(pe - pat) : strlen(pat);
        size_t nl = ne ? (size_t)(ne - name) : strlen(name);
        if (!(pl == 1 && pat[0] == '*') && (pl != nl || memcmp(pat, name, pl) != 0))
            return false;
        if ((pe == NULL) != (ne == NULL))
            return false;
        if (pe == NULL)
            return true;
        pat = pe + 1;
        name = ne + 1;
    }
}

/* IPv4 pattern "a.b.c.d" with some octets '*' against an address. */
static bool v4pat_match(const char *pat, const net_addr *a)
{
    const unsigned char *b = addr_v4(a);
    if (b == NULL)
        return false;
    for (int i = 0; i < 4; i++) {
        if (*pat != '*' && strtol(pat, NULL, 10) != b[i])
            return false;
        pat = strchr(pat, '.');
        if (pat != NULL)
            pat++;
        else if (i < 3)
            return false;
    }
    return true;
}

static bool v4pat_valid(const char *pat)
{
    int n = 0;
    for (const char *p = pat; *p != '\0'; n++) {
        const char *e = strchr(p, '.');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (!(l == 1 && *p == '*')) {
            if (l == 0 || l > 3)
                return false;
            long v = 0;
            for (size_t i = 0; i < l; i++)
                v = v * 10 + (p[i] - '0');
            if (v > 255)
                return false;
        }
        p = e ? e + 1 : p + l;
    }
    return n == 4;
}

static bool parse_port(const char *s, bool allow_star, int *port)
{
    if (allow_star && strcmp(s, "*") == 0) {
        *port = 0;
        return true;
    }
    long v = 0;
    if (*s == '\0' || strlen(s) > 5)
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = (int)v;
    return true;
}

static bool scope_parse(const char *scope, net_scope *out)
{
    memset(out, 0, sizeof *out);
    if (scope[0] == '\0') {
        out->kind = NET_H_ANY;
        return true;
    }
    char host[NET_HOST_MAX];
    const char *colon;
    size_t hl;
    bool v6 = scope[0] == '[';
    if (v6) {
        const char *rb = strchr(scope, ']');
        if (rb == NULL || rb[1] != ':')
            return false;
        colon = rb + 1;
        hl = (size_t)(rb - scope - 1);
        if (hl == 0 || hl >= sizeof host)
            return false;
        memcpy(host, scope + 1, hl);
    } else {
        colon = strchr(scope, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return false;
        hl = (size_t)(colon - scope);
        if (hl == 0 || hl >= sizeof host)
            return false;
        memcpy(host, scope, hl);
    }
    host[hl] = '\0';
    if (!parse_port(colon + 1, true, &out->port))
        return false;
    unsigned char raw[16];
    if (v6) {
        size_t n;
        if (inet_pton(AF_INET6, host, raw) != 1 || resolve(host, true, &out->addr, &n) != 0)
            return false;
        out->kind = NET_H_ADDR;
        return true;
    }
    if (inet_pton(AF_INET, host, raw) == 1) {
        size_t n;
        if (resolve(host, true, &out->addr, &n) != 0)
            return false;
        out->kind = NET_H_ADDR;
        return true;
    }
    bool numeric, star;
    if (!name_normalise(host, hl, true, out->host, &numeric, &star))
        return false;
    if (numeric) {
        out->kind = NET_H_V4PAT;
        return star && v4pat_valid(out->host);
    }
    out->kind = NET_H_NAME;
    out->wildcard = star;
    return true;
}

bool nvm_net_scope_valid(const char *scope)
{
    net_scope s;
    return scope != NULL && scope[0] != '\0' && scope_parse(scope, &s);
}

/* Parses the program's (host, port). Returns false for a malformed host. */
static bool target_parse(const char *s, size_t len, int port, net_target *t)
{
    memset(t, 0, sizeof *t);
    t->port = port;
    if (len == 0 || len >= NET_HOST_MAX || memchr(s, '\0', len) != NULL)
        return false;
    char buf[NET_HOST_MAX];
    bool bracket = s[0] == '[' && s[len - 1] == ']';
    size_t off = bracket ? 1 : 0, hl = bracket ? len - 2 : len;
    memcpy(buf, s + off, hl);
    buf[hl] = '\0';
    unsigned char raw[16];
    if (inet_pton(AF_INET6, buf, raw) == 1 || (!bracket && inet_pton(AF_INET, buf, raw) == 1)) {
        if (resolve(buf, true, t->addrs, &t->naddrs) != 0)
            return false;
        t->literal = true;
        t->v6 = t->addrs[0].ss.ss_family == AF_INET6;
        snprintf(t->host, sizeof t->host, "%s", t->addrs[0].text);
        return true;
    }
    bool numeric, star;
    if (bracket || !name_normalise(buf, hl, false, t->host, &numeric, &star))
        return false;
    net_addr a[NET_MAX_ADDRS];
    size_t n;
    if (resolve(t->host, true, a, &n) == 0) { /* "127.1", "0x7f.1": numeric after all */
        t->addrs[0] = a[0];
        t->naddrs = 1;
        t->literal = true;
    }
    return true;
}

/* ---- authorisation ---- */

typedef struct grant_view {
    net_scope s;
    const nvm_capgrant *g;
    bool resolved; /* NET_H_NAME without '*': addrs filled */
    int rc;
    net_addr addrs[NET_MAX_ADDRS];
    size_t naddrs;
} grant_view;

static bool grant_allows_addr(grant_view *g, const net_target *t, const net_addr *a)
{
    switch (g->s.kind) {
    case NET_H_ANY: return true;
    case NET_H_ADDR: return addr_equal(&g->s.addr, a);
    case NET_H_V4PAT: return v4pat_match(g->s.host, a);
    default:
        if (t->literal || !name_match(g->s.host, t->host))
            return false;
        if (g->s.wildcard)
            return true;
        if (!g->resolved) {
            g->rc = resolve(g->s.host, false, g->addrs, &g->naddrs);
            g->resolved = true;
        }
        for (size_t i = 0; g->rc == 0 && i < g->naddrs; i++)
            if (addr_equal(&g->addrs[i], a))
                return true;
        return false;
    }
}

static nvm_status net_audit(nvm_host *h, nvm_vm *vm, const char *cap, const char *scope,
                            const char *arg)
{
    if (nvm_host_audit_call(h, cap, scope, arg, false) != NVM_OK)
        return nvm_cap_fail(vm, NVM_E_IO, "%s: cannot write the audit log", cap);
    return NVM_OK;
}

/* Checks the wall-time deadline, then a deny rule on the handle's label, then audits. */
static nvm_status net_handle_gate(nvm_host *h, nvm_vm *vm, const char *cap, const char *label,
                                  const char *arg)
{
    nvm_status st = nvm_host_check_deadline(h, vm);
    if (st != NVM_OK)
        return st;
    if (nvm_host_denied_by_rule(h, cap, label))
        return nvm_host_deny(h, vm, cap, arg, "denied by a policy rule");
    return net_audit(h, vm, cap, "", arg);
}

/* Counts one more connection against the per-run limit (before any socket is made). */
static nvm_status net_count_connection(nvm_host *h, nvm_vm *vm)
{
    if (h->cfg.max_connections >= 0 && h->connections >= h->cfg.max_connections) {
        char m[32];
        snprintf(m, sizeof m, "%lld", (long long)h->cfg.max_connections);
        const char *f[] = {"limit", "connections", "max", m, NULL};
        if (h->cfg.audit != NULL)
            (void)h->cfg.audit(h->cfg.audit_ud, "limit", f);
        return nvm_cap_fail(vm, NVM_E_HOSTLIMIT, "host limit connections (%s) exceeded", m);
    }
    h->connections++;
    return NVM_OK;
}

/* Checks (t->host, t->port) for cap; resolves t when it is a name. On success the call is
 * audited with the first matching grant. Denials are audited and returned as NVM_E_DENIED. */
static nvm_status net_authorize(nvm_host *h, nvm_vm *vm, const char *cap, net_target *t,
                                const char *arg)
{
    const nvm_capgrant *used = NULL;
    grant_view *gv = NULL;
    size_t ng = 0, total = nvm_host_grant_count(h);
    char why[sizeof(nvm_capgrant) + 64], aarg[INET6_ADDRSTRLEN + 16];
    nvm_status st = nvm_host_check_deadline(h, vm);
    if (st != NVM_OK)
        return st;
    if (nvm_host_denied_by_rule(h, cap, arg))
        return nvm_host_deny(h, vm, cap, arg, "denied by a policy rule");
    if (total > 0 && (gv = calloc(total, sizeof *gv)) == NULL)
        return nvm_cap_fail(vm, NVM_E_INTERNAL, "%s: out of memory", cap);
    bool could = false;
    for (size_t i = 0; i < total; i++) {
        const nvm_capgrant *g = nvm_host_grant_at(h, i);
        grant_view *v = &gv[ng];
        if (!nvm_cap_call_match(g->capname, cap, NULL) || !scope_parse(g->scope, &v->s))
            continue;
        if (v->s.port != 0 && v->s.port != t->port)
            continue;
        v->g = g;
        ng++;
        could = could || v->s.kind != NET_H_NAME || (!t->literal && name_match(v->s.host, t->host));
    }
    if (!could) {
        st = nvm_host_deny(h, vm, cap, arg, "outside the granted scope (or not granted)");
        goto fail;
    }
    if (!t->literal) {
        int rc = resolve(t->host, false, t->addrs, &t->naddrs);
        if (rc != 0) {
            st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, arg,
                              rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
            goto fail;
        }
    }
    for (size_t k = 0; k < t->naddrs; k++) {
        const net_addr *a = &t->addrs[k];
        fmt_hostport(aarg, sizeof aarg, a->text, a->ss.ss_family == AF_INET6, t->port);
        if (nvm_host_denied_by_rule(h, cap, aarg)) {
            snprintf(why, sizeof why, "resolves to %s, denied by a policy rule", aarg);
            st = nvm_host_deny(h, vm, cap, arg, why);
            goto fail;
        }
        const nvm_capgrant *found = NULL;
        for (size_t i = 0; i < ng && found == NULL; i++)
            if (grant_allows_addr(&gv[i], t, a))
                found = gv[i].g;
        if (found == NULL) {
            if (t->literal)
                snprintf(why, sizeof why, "outside the granted scope (or not granted)");
            else
                snprintf(why, sizeof why, "resolves to %s, outside the granted scope", aarg);
            st = nvm_host_deny(h, vm, cap, arg, why);
            goto fail;
        }
        if (used == NULL)
            used = found;
    }
    snprintf(why, sizeof why, "%s%s%s", used->capname, used->scope[0] ? ":" : "", used->scope);
    st = net_audit(h, vm, cap, why, arg);
fail:
    free(gv);
    return st;
}

/* ---- waiting and limits ---- */

/* Waits until fd is ready for events; the host deadline ends the wait with its status. */
static nvm_status net_wait(nvm_host *h, nvm_vm *vm, const char *cap, int fd, short events)
{
    for (;;) {
        int timeout = -1;
        if (h->deadline_ms >= 0) {
            int64_t left = h->deadline_ms - nvm_host_now_ms();
            if (left <= 0) {
                nvm_status st = nvm_host_check_deadline(h, vm);
                if (st != NVM_OK)
                    return st;
                left = 10;
            }
            timeout = left > 1000 ? 1000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int r = poll(&p, 1, timeout);
        if (r > 0)
            return NVM_OK;
        if (r < 0 && errno != EINTR)
            return nvm_cap_fail(vm, NVM_E_IO, "%s: poll: %s", cap, strerror(errno));
    }
}

/* ---- argument helpers ---- */

static nvm_status arg_int(nvm_vm *vm, const char *cap, const char *what, nvm_value v, int64_t *out)
{
    if (v.type != NVM_T_INT)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s must be an int, got %s", cap, what,
                            nvm_type_name((nvm_type)v.type));
    *out = v.as.i;
    return NVM_OK;
}

/* Reads and checks (host, port) arguments. */
static nvm_status arg_target(nvm_vm *vm, const char *cap, const nvm_value *args, net_target *t,
                             char *arg, size_t argcap)
{
    size_t len;
    const char *s = nvm_value_str(vm, args[0], &len);
    if (s == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: host must be a str, got %s", cap,
                            nvm_type_name((nvm_type)args[0].type));
    int64_t port = 0;
    nvm_status st = arg_int(vm, cap, "port", args[1], &port);
    if (st != NVM_OK)
        return st;
    if (port < 1 || port > 65535)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: port %lld out of range 1..65535", cap,
                            (long long)port);
    if (!target_parse(s, len, (int)port, t))
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: invalid host \"%.*s\"", cap,
                            (int)(len > 200 ? 200 : len), s);
    fmt_hostport(arg, argcap, t->host, t->v6, t->port);
    return NVM_OK;
}

static nvm_handle *arg_handle(nvm_host *h, nvm_vm *vm, const char *cap, nvm_value v, int kind,
                              int64_t *num, nvm_status *st)
{
    *st = arg_int(vm, cap, "handle", v, num);
    if (*st != NVM_OK)
        return NULL;
    nvm_handle *hd = nvm_host_handle_get(h, *num, kind);
    if (hd == NULL)
        *st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %lld is not an open %s handle", cap,
                           (long long)*num, kind == NVM_HANDLE_LISTENER ? "listener" : "socket");
    return hd;
}

/* ---- capabilities ---- */

static int open_socket(int family)
{
    return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
}

static nvm_status net_connect(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                              nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    const char *cap = "net.connect";
    net_target t;
    char arg[NET_HOST_MAX + 16];
    int64_t num = 0;
    int fd = -1, err = 0;
    nvm_status st = arg_target(vm, cap, args, &t, arg, sizeof arg);
    if (st == NVM_OK)
        st = net_authorize(h, vm, cap, &t, arg);
    if (st == NVM_OK)
        st = net_count_connection(h, vm);
    if (st == NVM_OK)
        st = nvm_host_handle_add(h, vm, NVM_HANDLE_SOCKET, -1, arg, &num);
    if (st != NVM_OK)
        return st;
    for (size_t k = 0; k < t.naddrs && fd < 0; k++) {
        net_addr a = t.addrs[k];
        addr_set_port(&a, t.port);
        fd = open_socket(a.ss.ss_family);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, (const struct sockaddr *)&a.ss, a.len) != 0) {
            err = errno;
            if (err == EINPROGRESS) {
                st = net_wait(h, vm, cap, fd, POLLOUT);
                if (st != NVM_OK)
                    goto fail;
                socklen_t sl = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
                    err = errno;
            }
            if (err != 0) {
                close(fd);
                fd = -1;
            }
        }
    }
    if (fd < 0) {
        st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, arg, strerror(err));
        goto fail;
    }
    nvm_host_handle_get(h, num, NVM_HANDLE_SOCKET)->fd = fd;
    *result = nvm_int(num);
    return NVM_OK;
fail:
    if (fd >= 0)
        close(fd);
    nvm_host_handle_close(h, num);
    return st;
}

static nvm_status net_listen(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                             nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    const char *cap = "net.listen";
    net_target t;
    char arg[NET_HOST_MAX + 16];
    int64_t num = 0;
    int fd = -1, one = 1;
    nvm_status st = arg_target(vm, cap, args, &t, arg, sizeof arg);
    if (st == NVM_OK)
        st = net_authorize(h, vm, cap, &t, arg);
    if (st == NVM_OK)
        st = nvm_host_handle_add(h, vm, NVM_HANDLE_LISTENER, -1, arg, &num);
    if (st != NVM_OK)
        return st;
    net_addr a = t.addrs[0];
    addr_set_port(&a, t.port);
    fd = open_socket(a.ss.ss_family);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)&a.ss, a.len) != 0 || listen(fd, 16) != 0) {
        st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, arg, strerror(errno));
        goto fail;
    }
    nvm_host_handle_get(h, num, NVM_HANDLE_LISTENER)->fd = fd;
    *result = nvm_int(num);
    return NVM_OK;
fail:
    if (fd >= 0)
        close(fd);
    nvm_host_handle_close(h, num);
    return st;
}

static nvm_status net_accept(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                             nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    const char *cap = "net.accept";
    int64_t lnum = 0, num = 0;
    int fd = -1;
    nvm_status st;
    nvm_handle *lh = arg_handle(h, vm, cap, args[0], NVM_HANDLE_LISTENER, &lnum, &st);
    if (lh == NULL)
        return st;
    char label[sizeof lh->label];
    snprintf(label, sizeof label, "%s", lh->label);
    char arg[sizeof label + 32];
    snprintf(arg, sizeof arg, "handle %lld (%s)", (long long)lnum, label);
    st = net_handle_gate(h, vm, cap, label, arg);
    if (st == NVM_OK)
        st = net_count_connection(h, vm);
    if (st == NVM_OK)
        st = nvm_host_handle_add(h, vm, NVM_HANDLE_SOCKET, -1, label, &num);
    if (st != NVM_OK)
        return st;
    struct sockaddr_storage peer;
    for (;;) {
        lh = nvm_host_handle_get(h, lnum, NVM_HANDLE_LISTENER);
        socklen_t pl = sizeof peer;
        fd = accept4(lh->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            break;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
            st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, label, strerror(errno));
            goto fail;
        }
        st = net_wait(h, vm, cap, lh->fd, POLLIN);
        if (st != NVM_OK)
            goto fail;
    }
    nvm_handle *hd = nvm_host_handle_get(h, num, NVM_HANDLE_SOCKET);
    hd->fd = fd;
    char ptext[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *p4 = (const struct sockaddr_in *)&peer;
        inet_ntop(AF_INET, &p4->sin_addr, ptext, sizeof ptext);
        port = ntohs(p4->sin_port);
    } else if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)&peer;
        inet_ntop(AF_INET6, &p6->sin6_addr, ptext, sizeof ptext);
        port = ntohs(p6->sin6_port);
    }
    fmt_hostport(hd->label, sizeof hd->label, ptext, peer.ss_family == AF_INET6, port);
    *result = nvm_int(num);
    return NVM_OK;
fail:
    nvm_host_handle_close(h, num);
    return st;
}

static nvm_status net_send(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    const char *cap = "net.send";
    int64_t num = 0;
    nvm_status st;
    nvm_handle *hd = arg_handle(h, vm, cap, args[0], NVM_HANDLE_SOCKET, &num, &st);
    if (hd == NULL)
        return st;
    size_t len;
    if (nvm_value_str(vm, args[1], &len) == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: data must be a str, got %s", cap,
                            nvm_type_name((nvm_type)args[1].type));
    char label[sizeof hd->label], arg[sizeof hd->label + 64];
    snprintf(label, sizeof label, "%s", hd->label);
    snprintf(arg, sizeof arg, "handle %lld (%s), %zu bytes", (long long)num, label, len);
    st = net_handle_gate(h, vm, cap, label, arg);
    if (st == NVM_OK)
        st = nvm_host_account(h, vm, 0, (int64_t)len);
    if (st != NVM_OK)
        return st;
    size_t sent = 0;
    while (sent < len) {
        /* the string may move when the VM allocates; nothing allocates during this loop */
        const char *s = nvm_value_str(vm, args[1], &len);
        ssize_t n = send(hd->fd, s + sent, len - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, label, strerror(errno));
        st = net_wait(h, vm, cap, hd->fd, POLLOUT);
        if (st != NVM_OK)
            return st;
    }
    *result = nvm_int((int64_t)sent);
    return NVM_OK;
}

static nvm_status net_recv(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    const char *cap = "net.recv";
    int64_t num = 0, max = 0;
    nvm_status st;
    nvm_handle *hd = arg_handle(h, vm, cap, args[0], NVM_HANDLE_SOCKET, &num, &st);
    if (hd == NULL)
        return st;
    if ((st = arg_int(vm, cap, "maxbytes", args[1], &max)) != NVM_OK)
        return st;
    if (max < 1)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: maxbytes must be at least 1", cap);
    if (max > NET_RECV_MAX)
        max = NET_RECV_MAX;
    char label[sizeof hd->label], arg[sizeof hd->label + 64];
    snprintf(label, sizeof label, "%s", hd->label);
    snprintf(arg, sizeof arg, "handle %lld (%s), max %lld bytes", (long long)num, label,
             (long long)max);
    if ((st = net_handle_gate(h, vm, cap, label, arg)) != NVM_OK)
        return st;
    char *buf = malloc((size_t)max);
    if (buf == NULL)
        return nvm_cap_fail(vm, NVM_E_INTERNAL, "%s: out of memory", cap);
    ssize_t n;
    for (;;) {
        n = recv(hd->fd, buf, (size_t)max, 0);
        if (n >= 0)
            break;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            st = nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %s: %s", cap, label, strerror(errno));
            goto fail;
        }
        st = net_wait(h, vm, cap, hd->fd, POLLIN);
        if (st != NVM_OK)
            goto fail;
    }
    st = nvm_host_account(h, vm, (int64_t)n, 0);
    if (st == NVM_OK)
        st = nvm_value_new_str(vm, buf, (size_t)n, result);
fail:
    free(buf);
    return st;
}

static nvm_status net_close(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)argc;
    (void)result;
    nvm_host *h = ud;
    const char *cap = "net.close";
    int64_t num = 0;
    nvm_status st = arg_int(vm, cap, "handle", args[0], &num);
    if (st != NVM_OK)
        return st;
    nvm_handle *hd = nvm_host_handle_get(h, num, NVM_HANDLE_FREE);
    if (hd == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: %lld is not an open handle", cap,
                            (long long)num);
    char label[sizeof hd->label], arg[sizeof hd->label + 32];
    snprintf(label, sizeof label, "%s", hd->label);
    snprintf(arg, sizeof arg, "handle %lld (%s)", (long long)num, label);
    if ((st = net_handle_gate(h, vm, cap, label, arg)) != NVM_OK)
        return st;
    nvm_host_handle_close(h, num);
    return NVM_OK;
}

nvm_status nvm_host_install_net(nvm_host *h, nvm_vm *vm)
{
    static const struct {
        const char *name;
        uint32_t argc;
        nvm_cap_fn fn;
    } caps[] = {
        {"net.connect", 2, net_connect}, {"net.listen", 2, net_listen},
        {"net.accept", 1, net_accept},   {"net.send", 2, net_send},
        {"net.recv", 2, net_recv},       {"net.close", 1, net_close},
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        nvm_status st = nvm_vm_register_cap(vm, caps[i].name, caps[i].argc, caps[i].fn, h);
        if (st != NVM_OK)
            return st;
    }
    return NVM_OK;
}
