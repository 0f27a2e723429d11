/* test_host_net.c - the net.* and kv.* host capabilities through the nvm_host_* API: CASM
 * programs run with precise grants against loopback servers (threads of this test) and a
 * temporary state directory. Loopback only; the IPv6 cases skip when ::1 is unavailable. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/hal.h"
#include "nanovm.h"

/* ---- a loopback server thread: accepts connections and echoes (or stays silent) ---- */

typedef struct server {
    int fd;
    int port;
    bool echo;
    volatile int accepted;
    volatile int stop;
    pthread_t th;
} server;

static void *server_main(void *arg)
{
    server *s = arg;
    while (!s->stop) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        s->accepted++;
        char buf[4096];
        ssize_t n;
        while (!s->stop) {
            struct pollfd q = {.fd = c, .events = POLLIN, .revents = 0};
            if (poll(&q, 1, 50) <= 0)
                continue;
            if ((n = recv(c, buf, sizeof buf, 0)) <= 0)
                break;
            if (s->echo && send(c, buf, (size_t)n, MSG_NOSIGNAL) != n)
                break;
        }
        close(c);
    }
    return NULL;
}

/* Returns false when the family is unavailable (no ::1). */
static bool server_start(server *s, int family, bool echo)
{
    memset(s, 0, sizeof *s);
    s->echo = echo;
    s->fd = socket(family, SOCK_STREAM, 0);
    if (s->fd < 0)
        return false;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    if (bind(s->fd, (struct sockaddr *)&ss, len) != 0 || listen(s->fd, 8) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&ss, &len) != 0) {
        close(s->fd);
        return false;
    }
    s->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
    return true;
}

static void server_stop(server *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->fd);
}

/* A port on 127.0.0.1 with nothing listening. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- running a program with a host ---- */

typedef struct run_result {
    nvm_status st;
    char msg[NVM_ERROR_MESSAGE_MAX];
    char out[4096];   /* test.out lines */
    char audit[8192]; /* "event capability reason|argument" lines */
} run_result;

static nvm_status cap_out(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    (void)result;
    run_result *r = ud;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    nvm_status st = NVM_OK;
    for (uint32_t i = 0; i < argc && st == NVM_OK; i++)
        st = nvm_value_format(vm, args[i], &buf, &len, &cap);
    if (st == NVM_OK) {
        size_t o = strlen(r->out);
        snprintf(r->out + o, sizeof r->out - o, "%.*s\n", (int)len, buf != NULL ? buf : "");
    }
    if (buf != NULL)
        nvm_vm_free_buffer(vm, buf, cap);
    return st;
}

static nvm_status audit_hook(void *ud, const char *event, const char *const *f)
{
    run_result *r = ud;
    size_t o = strlen(r->audit);
    o += (size_t)snprintf(r->audit + o, sizeof r->audit - o, "%s", event);
    for (size_t i = 0; f[i] != NULL && o < sizeof r->audit; i += 2)
        o += (size_t)snprintf(r->audit + o, sizeof r->audit - o, " %s=%s", f[i], f[i + 1]);
    if (o < sizeof r->audit)
        snprintf(r->audit + o, sizeof r->audit - o, "\n");
    return NVM_OK;
}

typedef struct host_opts {
    const char *grants[8];
    const char *denies[4];
    const char *state_dir;
    const char *identity;
    int64_t max_handles, max_connections, wall_ms;
} host_opts;

static void opts_init(host_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_handles = o->max_connections = o->wall_ms = -1;
}

static void run_prog(const host_opts *o, const char *src, run_result *r)
{
    memset(r, 0, sizeof *r);
    nvm_host_config hc;
    nvm_host_config_init(&hc);
    hc.state_dir = o->state_dir;
    hc.identity = o->identity;
    hc.max_handles = o->max_handles;
    hc.max_connections = o->max_connections;
    hc.wall_ms = o->wall_ms;
    hc.audit = audit_hook;
    hc.audit_ud = r;
    nvm_host *h = NULL;
    nvm_error err;
    assert_int_equal(nvm_host_new(&hc, &h, &err), NVM_OK);
    for (int i = 0; i < 8 && o->grants[i] != NULL; i++)
        assert_int_equal(nvm_host_grant(h, o->grants[i], &err), NVM_OK);
    for (int i = 0; i < 4 && o->denies[i] != NULL; i++)
        assert_int_equal(nvm_host_deny_rule(h, o->denies[i], &err), NVM_OK);
    nvm_config cfg;
    nvm_config_init(&cfg);
    nvm_vm *vm = NULL;
    nvm_module *m = NULL;
    assert_int_equal(nvm_vm_new(&cfg, &vm), NVM_OK);
    assert_int_equal(nvm_host_install(h, vm), NVM_OK);
    assert_int_equal(nvm_vm_register_cap(vm, "test.out", NVM_VARIADIC, cap_out, r), NVM_OK);
    nvm_status st = nvm_module_from_casm(&cfg, src, strlen(src), "t.casm", &m, &err);
    if (st != NVM_OK)
        fail_msg("assembly failed: %s", err.message);
    assert_int_equal(nvm_vm_load(vm, m), NVM_OK);
    r->st = nvm_vm_run(vm);
    if (r->st != NVM_OK)
        snprintf(r->msg, sizeof r->msg, "%s", nvm_vm_error(vm)->message);
    nvm_vm_free(vm);
    nvm_module_free(m);
    nvm_host_free(h);
}

static char *fmt(const char *f, ...)
{
    static char bufs[4][4096];
    static int next;
    char *b = bufs[next++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof bufs[0], f, ap);
    va_end(ap);
    return b;
}

/* connect, send "hello", print bytes sent and the reply, close */
static const char *echo_prog(const char *host, int port)
{
    return fmt(".func main\n"
               "    PUSH_STR \"%s\"\n    PUSH %d\n    CAP_CALL \"net.connect\" 2\n    STORE 0\n"
               "    LOAD 0\n    PUSH_STR \"hello\"\n    CAP_CALL \"net.send\" 2\n"
               "    CAP_CALL \"test.out\" 1\n    POP\n"
               "    LOAD 0\n    PUSH 100\n    CAP_CALL \"net.recv\" 2\n"
               "    CAP_CALL \"test.out\" 1\n    POP\n"
               "    LOAD 0\n    CAP_CALL \"net.close\" 1\n    HALT\n",
               host, port);
}

static void wait_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- net tests ---- */

static void test_connect_allowed(void **state)
{
    (void)state;
    server s;
    assert_true(server_start(&s, AF_INET, true));
    host_opts o;
    opts_init(&o);
    o.grants[0] = fmt("net.connect:127.0.0.1:%d", s.port);
    run_result r;
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    assert_string_equal(r.out, "5\nhello\n");
    assert_non_null(strstr(r.audit, "cap.call capability=net.connect"));
    assert_non_null(strstr(r.audit, "cap.call capability=net.send"));
    /* port wildcard */
    o.grants[0] = "net.connect:127.0.0.1:*";
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    assert_string_equal(r.out, "5\nhello\n");
    /* IPv4 octet pattern, and the wide "net.*" grant */
    o.grants[0] = fmt("net.connect:127.0.*.1:%d", s.port);
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    o.grants[0] = "net.*";
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    server_stop(&s);
    assert_int_equal(s.accepted, 4);
}

static void test_connect_denied(void **state)
{
    (void)state;
    server s;
    assert_true(server_start(&s, AF_INET, true));
    host_opts o;
    opts_init(&o);
    run_result r;
    /* no grant at all */
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    /* other host */
    o.grants[0] = fmt("net.connect:127.0.0.2:%d", s.port);
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    assert_non_null(strstr(r.msg, "net.connect"));
    assert_non_null(strstr(r.audit, "cap.denied capability=net.connect"));
    /* other port */
    o.grants[0] = fmt("net.connect:127.0.0.1:%d", s.port + 1);
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    /* listen grant does not allow connect */
    o.grants[0] = "net.listen:127.0.0.1:*";
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    /* deny rule beats the grant */
    o.grants[0] = "net.connect:127.0.0.1:*";
    o.denies[0] = fmt("net.connect:127.0.0.1:%d", s.port);
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    /* a deny rule on the address also applies to a name resolving to it */
    run_prog(&o, echo_prog("localhost", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    /* the denial is catchable */
    o.denies[0] = NULL;
    o.grants[0] = "net.connect:10.0.0.1:*";
    run_prog(&o,
             fmt(".func main\n    ENTER_TRY h\n    PUSH_STR \"127.0.0.1\"\n    PUSH %d\n"
                 "    CAP_CALL \"net.connect\" 2\n    HALT\nh:\n    CAP_CALL \"test.out\" 1\n"
                 "    HALT\n",
                 s.port),
             &r);
    assert_int_equal(r.st, NVM_OK);
    assert_non_null(strstr(r.out, "net.connect(\"127.0.0.1:"));
    wait_ms(100);
    server_stop(&s);
    assert_int_equal(s.accepted, 0); /* no denied call reached the server */
}

static void test_names(void **state)
{
    (void)state;
    server s;
    assert_true(server_start(&s, AF_INET, true));
    host_opts o;
    opts_init(&o);
    run_result r;
    /* does localhost resolve to ::1 too on this machine? then grant it as well */
    int v6 = 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    assert_int_equal(getaddrinfo("localhost", NULL, &hints, &res), 0);
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        v6 |= ai->ai_family == AF_INET6;
    freeaddrinfo(res);
    /* a name allowed by an address grant */
    o.grants[0] = fmt("net.connect:127.0.0.1:%d", s.port);
    o.grants[1] = v6 ? fmt("net.connect:[::1]:%d", s.port) : NULL;
    run_prog(&o, echo_prog("localhost", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    assert_string_equal(r.out, "5\nhello\n");
    /* upper case and a trailing dot are the same name */
    run_prog(&o, echo_prog("LocalHost.", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    /* a name resolving outside the grant */
    o.grants[0] = fmt("net.connect:127.0.0.2:%d", s.port);
    o.grants[1] = NULL;
    run_prog(&o, echo_prog("localhost", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    assert_non_null(strstr(r.msg, "resolves to 127.0.0.1:"));
    /* a name grant: the same name passes, the address or another name does not */
    o.grants[0] = fmt("net.connect:localhost:%d", s.port);
    run_prog(&o, echo_prog("localhost", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    run_prog(&o, echo_prog("127.1", s.port), &r); /* inet_aton form: an address, not a name */
    assert_int_equal(r.st, NVM_E_DENIED);
    /* a wildcard name pattern never matches a name of another shape (no DNS lookup made) */
    o.grants[0] = fmt("net.connect:*.example.invalid:%d", s.port);
    run_prog(&o, echo_prog("localhost", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    /* malformed hosts are program errors */
    o.grants[0] = "net.connect";
    run_prog(&o, echo_prog("bad host", s.port), &r);
    assert_int_equal(r.st, NVM_E_PROGRAM);
    run_prog(&o, echo_prog("127.0.0.1", 70000), &r);
    assert_int_equal(r.st, NVM_E_PROGRAM);
    server_stop(&s);
    assert_int_equal(s.accepted, 3);
}

static void test_ipv6(void **state)
{
    (void)state;
    server s;
    if (!server_start(&s, AF_INET6, true))
        skip();
    host_opts o;
    opts_init(&o);
    run_result r;
    o.grants[0] = fmt("net.connect:[::1]:%d", s.port);
    run_prog(&o, echo_prog("::1", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    assert_string_equal(r.out, "5\nhello\n");
    run_prog(&o, echo_prog("[::1]", s.port), &r);
    assert_int_equal(r.st, NVM_OK);
    o.grants[0] = fmt("net.connect:127.0.0.1:%d", s.port);
    run_prog(&o, echo_prog("::1", s.port), &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    server_stop(&s);
    assert_int_equal(s.accepted, 2);
}

static void test_refused(void **state)
{
    (void)state;
    int port = closed_port();
    host_opts o;
    opts_init(&o);
    o.grants[0] = "net.connect:127.0.0.1:*";
    run_result r;
    run_prog(&o, echo_prog("127.0.0.1", port), &r);
    assert_int_equal(r.st, NVM_E_PROGRAM);
    assert_string_equal(r.msg, fmt("net.connect: 127.0.0.1:%d: Connection refused", port));
    run_prog(&o,
             fmt(".func main\n    ENTER_TRY h\n    PUSH_STR \"127.0.0.1\"\n    PUSH %d\n"
                 "    CAP_CALL \"net.connect\" 2\n    HALT\nh:\n    CAP_CALL \"test.out\" 1\n"
                 "    POP\n    HALT\n",
                 port),
             &r);
    assert_int_equal(r.st, NVM_OK);
    assert_non_null(strstr(r.out, "Connection refused"));
}

typedef struct client_arg {
    int port;
    char reply[64];
} client_arg;

static void *client_main(void *p)
{
    client_arg *c = p;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)c->port);
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            ssize_t n = send(fd, "ping", 4, MSG_NOSIGNAL);
            if (n == 4 && (n = recv(fd, c->reply, sizeof c->reply - 1, 0)) > 0)
                c->reply[n] = '\0';
            close(fd);
            return NULL;
        }
        close(fd);
        wait_ms(20);
    }
    return NULL;
}

static void test_listen_accept(void **state)
{
    (void)state;
    client_arg c;
    memset(&c, 0, sizeof c);
    c.port = closed_port();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &c), 0);
    host_opts o;
    opts_init(&o);
    o.grants[0] = fmt("net.listen:127.0.0.1:%d", c.port);
    run_result r;
    const char *prog =
        fmt(".func main\n    PUSH_STR \"127.0.0.1\"\n    PUSH %d\n"
            "    CAP_CALL \"net.listen\" 2\n    STORE 0\n"
            "    LOAD 0\n    CAP_CALL \"net.accept\" 1\n    STORE 1\n"
            "    LOAD 1\n    PUSH 4\n    CAP_CALL \"net.recv\" 2\n    STORE 2\n"
            "    LOAD 2\n    CAP_CALL \"test.out\" 1\n    POP\n"
            "    LOAD 1\n    PUSH_STR \"pong\"\n    CAP_CALL \"net.send\" 2\n    POP\n"
            "    LOAD 1\n    PUSH 10\n    CAP_CALL \"net.recv\" 2\n    CAP_CALL \"test.out\" 1\n"
            "    POP\n    LOAD 1\n    CAP_CALL \"net.close\" 1\n"
            "    LOAD 0\n    CAP_CALL \"net.close\" 1\n    HALT\n",
            c.port);
    run_prog(&o, prog, &r);
    pthread_join(th, NULL);
    assert_int_equal(r.st, NVM_OK);
    assert_string_equal(r.out, "ping\n\n"); /* then "" at end of stream */
    assert_string_equal(c.reply, "pong");
    assert_non_null(strstr(r.audit, "cap.call capability=net.accept"));
    /* listening elsewhere is denied */
    o.grants[0] = fmt("net.listen:127.0.0.1:%d", c.port + 1);
    run_prog(&o, prog, &r);
    assert_int_equal(r.st, NVM_E_DENIED);
}

static void test_limits_and_handles(void **state)
{
    (void)state;
    server s;
    assert_true(server_start(&s, AF_INET, true));
    host_opts o;
    opts_init(&o);
    o.grants[0] = "net.connect:127.0.0.1:*";
    o.max_handles = 1;
    run_result r;
    const char *two =
        fmt(".func main\n"
            "    PUSH_STR \"127.0.0.1\"\n    PUSH %d\n    CAP_CALL \"net.connect\" 2\n"
            "    PUSH_STR \"127.0.0.1\"\n    PUSH %d\n    CAP_CALL \"net.connect\" 2\n"
            "    HALT\n",
            s.port, s.port);
    run_prog(&o, two, &r);
    assert_int_equal(r.st, NVM_E_HOSTLIMIT);
    o.max_handles = -1;
    o.max_connections = 1;
    run_prog(&o, two, &r);
    assert_int_equal(r.st, NVM_E_HOSTLIMIT);
    assert_non_null(strstr(r.msg, "connections"));
    /* bad handles are program errors */
    o.max_connections = -1;
    run_prog(&o, ".func main\n    PUSH 7\n    PUSH 1\n    CAP_CALL \"net.recv\" 2\n    HALT\n", &r);
    assert_int_equal(r.st, NVM_E_PROGRAM);
    run_prog(&o, ".func main\n    PUSH 1\n    CAP_CALL \"net.close\" 1\n    HALT\n", &r);
    assert_int_equal(r.st, NVM_E_PROGRAM);
    /* recv bounded by the wall-time deadline (a silent server) */
    server_stop(&s);
    assert_true(server_start(&s, AF_INET, false));
    o.wall_ms = 300;
    run_prog(&o, echo_prog("127.0.0.1", s.port), &r);
    assert_int_equal(r.st, NVM_E_TIME);
    server_stop(&s);
}

static void test_scope_valid(void **state)
{
    (void)state;
    (void)state;
    const char *good[] = {"127.0.0.1:80",  "[::1]:8080",  "*.example.org:443", "127.0.0.1:*",
                          "example.org:*", "10.0.*.*:22", "a-b.c_d.org:1",     NULL};
    const char *bad[] = {"127.0.0.1",    "::1:80",   "[::1]",      "ex*.org:80", "**.org:80",
                         "a..b:80",      "host:0",   "host:65536", "host:8o",    "[127.0.0.1]:80",
                         "10.0.*.999:1", "1.2.3:80", "*.*:80x",    "",           NULL};
    for (int i = 0; good[i] != NULL; i++)
        if (!nvm_net_scope_valid(good[i]))
            fail_msg("should be valid: %s", good[i]);
    for (int i = 0; bad[i] != NULL; i++)
        if (nvm_net_scope_valid(bad[i]))
            fail_msg("should be invalid: %s", bad[i]);
}

/* ---- kv tests ---- */

static char g_state[256];

static const char *kv_set_prog =
    ".func main\n"
    "    PUSH_STR \"app/n\"\n    PUSH 42\n    CAP_CALL \"kv.set\" 2\n"
    "    PUSH_STR \"app/s\"\n    PUSH_STR \"hi \\\"there\\\"\"\n    CAP_CALL \"kv.set\" 2\n"
    "    PUSH_STR \"app/f\"\n    PUSH_F64 2.5\n    CAP_CALL \"kv.set\" 2\n"
    "    PUSH_STR \"app/m\"\n    NEW_OBJ\n    PUSH_BOOL true\n    SET_FIELD \"ok\"\n"
    "    PUSH_F64 1.0\n    SET_FIELD \"one\"\n    CAP_CALL \"kv.set\" 2\n"
    "    PUSH_STR \"app/z\"\n    PUSH_NULL\n    CAP_CALL \"kv.set\" 2\n"
    "    PUSH_STR \"app/a\"\n    PUSH 1\n    PUSH_STR \"x\"\n    NEW_ARRAY 2\n"
    "    CAP_CALL \"kv.set\" 2\n"
    "    PUSH_STR \"app/gone\"\n    PUSH 1\n    CAP_CALL \"kv.set\" 2\n"
    "    PUSH_STR \"app/gone\"\n    CAP_CALL \"kv.delete\" 1\n"
    "    HALT\n";

static const char *kv_get_prog =
    ".func main\n"
    "    PUSH_STR \"app/n\"\n    CAP_CALL \"kv.get\" 1\n    CAP_CALL \"test.out\" 1\n    POP\n"
    "    PUSH_STR \"app/s\"\n    CAP_CALL \"kv.get\" 1\n    CAP_CALL \"test.out\" 1\n    POP\n"
    "    PUSH_STR \"app/f\"\n    CAP_CALL \"kv.get\" 1\n    CAP_CALL \"test.out\" 1\n    POP\n"
    "    PUSH_STR \"app/z\"\n    CAP_CALL \"kv.get\" 1\n    CAP_CALL \"test.out\" 1\n    POP\n"
    "    PUSH_STR \"app/a\"\n    CAP_CALL \"kv.get\" 1\n    CAP_CALL \"test.out\" 1\n    POP\n"
    "    PUSH_STR \"app/m\"\n    CAP_CALL \"kv.get\" 1\n    CAP_CALL \"test.out\" 1\n    POP\n"
    "    PUSH_STR \"app/gone\"\n    CAP_CALL \"kv.get\" 1\n    CAP_CALL \"test.out\" 1\n    POP\n"
    "    PUSH_STR \"app/\"\n    CAP_CALL \"kv.list\" 1\n    CAP_CALL \"test.out\" 1\n    POP\n"
    "    HALT\n";

static void test_kv_persist(void **state)
{
    (void)state;
    host_opts o;
    opts_init(&o);
    o.state_dir = g_state;
    o.identity = "demo:signer1";
    o.grants[0] = "kv.set:app/*";
    o.grants[1] = "kv.delete:app/*";
    o.grants[2] = "kv.get:app/*";
    o.grants[3] = "kv.list";
    run_result r;
    run_prog(&o, kv_set_prog, &r);
    if (r.st != NVM_OK)
        fail_msg("kv set: %s", r.msg);
    struct stat sb;
    assert_int_equal(stat(fmt("%s/kv.sqlite", g_state), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    run_prog(&o, kv_get_prog, &r); /* another host, another VM: from the file */
    if (r.st != NVM_OK)
        fail_msg("kv get: %s", r.msg);
    assert_string_equal(r.out, "42\nhi \"there\"\n2.5\nnull\n[1, x]\n{ok: true, one: 1.0}\nnull\n"
                               "[app/a, app/f, app/m, app/n, app/s, app/z]\n");
    /* another identity sees nothing */
    o.identity = "other:signer2";
    run_prog(&o, kv_get_prog, &r);
    assert_int_equal(r.st, NVM_OK);
    assert_string_equal(r.out, "null\nnull\nnull\nnull\nnull\nnull\nnull\n[]\n");
}

static void test_kv_denied(void **state)
{
    (void)state;
    host_opts o;
    opts_init(&o);
    o.state_dir = g_state;
    o.identity = "demo:signer1";
    o.grants[0] = "kv.get:other/*";
    run_result r;
    run_prog(&o, kv_get_prog, &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    assert_non_null(strstr(r.audit, "cap.denied capability=kv.get"));
    /* '*' stops at '/' */
    o.grants[0] = "kv.set:app/*";
    run_prog(&o,
             ".func main\n    PUSH_STR \"app/x/y\"\n    PUSH 1\n    CAP_CALL \"kv.set\" 2\n"
             "    HALT\n",
             &r);
    assert_int_equal(r.st, NVM_E_DENIED);
    /* kv.list returns only granted keys */
    o.grants[0] = "kv.list:app/n";
    run_prog(&o,
             ".func main\n    PUSH_STR \"\"\n    CAP_CALL \"kv.list\" 1\n"
             "    CAP_CALL \"test.out\" 1\n    HALT\n",
             &r);
    assert_int_equal(r.st, NVM_OK);
    assert_string_equal(r.out, "[app/n]\n");
    /* no state_dir */
    o.state_dir = NULL;
    o.grants[0] = "kv.get";
    run_prog(&o, kv_get_prog, &r);
    assert_int_equal(r.st, NVM_E_PROGRAM);
    assert_non_null(strstr(r.msg, "kv storage unavailable (no state_dir in policy)"));
}

static void test_kv_crash(void **state)
{
    (void)state;
    host_opts o;
    opts_init(&o);
    o.state_dir = g_state;
    o.identity = "crash";
    o.grants[0] = "kv.set:c/*";
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        run_result r;
        run_prog(&o,
                 ".func main\n    PUSH 0\n    STORE 0\nloop:\n"
                 "    PUSH_STR \"c/last\"\n    LOAD 0\n    CAP_CALL \"kv.set\" 2\n"
                 "    LOAD 0\n    PUSH 1\n    ADD\n    STORE 0\n    JMP loop\n",
                 &r);
        _exit(3);
    }
    wait_ms(700);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFSIGNALED(wst));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fmt("%s/kv.sqlite", g_state), &db), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
    o.grants[0] = "kv.get:c/*";
    run_result r;
    run_prog(&o,
             ".func main\n    PUSH_STR \"c/last\"\n    CAP_CALL \"kv.get\" 1\n"
             "    CAP_CALL \"test.out\" 1\n    HALT\n",
             &r);
    assert_int_equal(r.st, NVM_OK);
    assert_true(atol(r.out) > 0); /* committed values survived */
}

static int kv_setup(void **state)
{
    (void)state;
    snprintf(g_state, sizeof g_state, "/tmp/nvm_kv_test_XXXXXX");
    return mkdtemp(g_state) == NULL ? -1 : 0;
}

static int kv_teardown(void **state)
{
    (void)state;
    const char *files[] = {"kv.sqlite", "kv.sqlite-wal", "kv.sqlite-shm", NULL};
    for (int i = 0; files[i] != NULL; i++)
        unlink(fmt("%s/%s", g_state, files[i]));
    return rmdir(g_state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_allowed),
        cmocka_unit_test(test_connect_denied),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_listen_accept),
        cmocka_unit_test(test_limits_and_handles),
        cmocka_unit_test(test_scope_valid),
        cmocka_unit_test(test_kv_persist),
        cmocka_unit_test(test_kv_denied),
        cmocka_unit_test(test_kv_crash),
    };
    return cmocka_run_group_tests(tests, kv_setup, kv_teardown);
}
