/* fs.c - the file system capabilities: fs.read fs.write fs.append fs.exists fs.list fs.remove
 * fs.mkdir.
 *
 * A path from the program is checked in this order, before anything touches the file system:
 *   1. it must be a string without NUL bytes, at most NVM_FS_PATH_MAX bytes once made absolute;
 *   2. a relative path is made absolute against the current directory, then normalized
 *      lexically ("//" and "." dropped, ".." removes the previous segment; a trailing '/' is
 *      kept, so "f.txt/" never matches a pattern for "f.txt");
 *   3. the normalized path is matched against the grants' patterns (nvm_scope_match) and the
 *      deny rules;
 *   4. the granted directory, opened at grant time, must still be the directory its path names
 *      (a granted directory replaced during the run is refused);
 *   5. the path, relative to that directory, is resolved with openat2(RESOLVE_BENEATH |
 *      RESOLVE_NO_MAGICLINKS): a symlink leading outside (EXDEV) or a loop (ELOOP) is refused.
 *      Where the kernel has no openat2 (ENOSYS) a component-by-component walk with O_NOFOLLOW
 *      from the same directory is used instead, which refuses every symlink.
 * Refusals are audited "cap.denied" and leave no side effect; an allowed call is audited
 * "cap.call" with the normalized path before it acts. Failures of the operation itself (missing
 * file, not a directory, ...) are program errors carrying the OS reason. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "host/hal.h"
#include "trust/policy.h"

#define NVM_FS_PATH_MAX 4095

typedef struct fs_target {
    char path[NVM_FS_PATH_MAX + 2]; /* normalized absolute path */
    char rel[NVM_FS_PATH_MAX + 2];  /* relative to the grant's directory; "." for itself */
    const nvm_capgrant *g;
} fs_target;

/* ---- resolution beneath a directory ---- */

/* The fallback walk: every component opened with O_NOFOLLOW; any symlink is refused (ELOOP). */
static int walk_open(int dirfd, const char *rel, int flags, mode_t mode, int *out)
{
    char buf[NVM_FS_PATH_MAX + 2];
    snprintf(buf, sizeof buf, "%s", rel);
    int cur = dirfd, rc = 0;
    char *save = NULL;
    char *comp = strtok_r(buf, "/", &save);
    if (comp == NULL) {
        int fd = openat(dirfd, ".", flags | O_CLOEXEC, mode);
        if (fd < 0)
            return errno;
        *out = fd;
        return 0;
    }
    while (comp != NULL) {
        char *next = strtok_r(NULL, "/", &save);
        struct stat st;
        if (strcmp(comp, "..") == 0) {
            rc = EXDEV;
            break;
        }
        if (strcmp(comp, ".") == 0 && next != NULL) {
            comp = next;
            continue;
        }
        if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            rc = ELOOP;
            break;
        }
        if (next == NULL) {
            int fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
            if (fd < 0)
                rc = errno;
            else
                *out = fd;
            break;
        }
        int fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            rc = errno;
            break;
        }
        if (cur != dirfd)
            close(cur);
        cur = fd;
        comp = next;
    }
    if (cur != dirfd)
        close(cur);
    return rc;
}

/* Opens rel beneath dirfd; 0 and *out, or an errno value. */
static int beneath_open(int dirfd, const char *rel, int flags, mode_t mode, int *out)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
    if (fd >= 0) {
        *out = (int)fd;
        return 0;
    }
    if (errno != ENOSYS)
        return errno;
    return walk_open(dirfd, rel, flags, mode, out);
}

/* rel without trailing slashes split into parent (or ".") and base name. */
static void split_rel(const char *rel, char *parent, size_t plen, char *base, size_t blen)
{
    char tmp[NVM_FS_PATH_MAX + 2];
    snprintf(tmp, sizeof tmp, "%s", rel);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/')
        tmp[--n] = '\0';
    char *slash = strrchr(tmp, '/');
    if (slash == NULL) {
        snprintf(parent, plen, ".");
        snprintf(base, blen, "%s", tmp);
    } else {
        *slash = '\0';
        snprintf(parent, plen, "%s", tmp);
        snprintf(base, blen, "%s", slash + 1);
    }
}

/* Resolves without side effects: 0, or the errno of the path (or, when the path does not exist
 * yet and `parent_too`, of its parent directory). */
static int probe(const fs_target *t, bool parent_too)
{
    int fd = -1;
    int rc = beneath_open(t->g->dirfd, t->rel, O_PATH, 0, &fd);
    if (rc == 0) {
        close(fd);
        return 0;
    }
    if (rc == ENOENT && parent_too) {
        char parent[NVM_FS_PATH_MAX + 2], base[NVM_FS_PATH_MAX + 2];
        split_rel(t->rel, parent, sizeof parent, base, sizeof base);
        int rc2 = beneath_open(t->g->dirfd, parent, O_PATH | O_DIRECTORY, 0, &fd);
        if (rc2 == 0) {
            close(fd);
            return ENOENT;
        }
        return rc2 == EXDEV || rc2 == ELOOP ? rc2 : ENOENT;
    }
    return rc;
}

/* ---- the check ---- */

/* Lexical normalization of an absolute path into out (outlen > NVM_FS_PATH_MAX). */
static void normalize(const char *in, char *out)
{
    size_t o = 0;
    size_t n = strlen(in);
    bool trailing = n > 1 && in[n - 1] == '/';
    const char *p = in;
    out[o++] = '/';
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - p);
        if (len == 0)
            break;
        if (len == 1 && p[0] == '.') {
            /* skip */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 1 && out[o - 1] != '/')
                o--;
            if (o > 1)
                o--;
        } else {
            if (o > 1)
                out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p = e;
    }
    if (trailing && o > 1)
        out[o++] = '/';
    out[o] = '\0';
}

static bool root_replaced(const nvm_capgrant *g)
{
    struct stat a, b;
    if (fstat(g->dirfd, &a) != 0 || stat(g->root, &b) != 0)
        return true;
    return a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

/* Everything before the operation: on NVM_OK the call is allowed, audited, and t is filled. */
static nvm_status fs_check(nvm_host *h, nvm_vm *vm, const char *capname, nvm_value arg,
                           bool parent_too, fs_target *t)
{
    size_t len = 0;
    const char *s = nvm_value_str(vm, arg, &len);
    if (s == NULL)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: the path must be a str, got %s", capname,
                            nvm_type_name((nvm_type)arg.type));
    nvm_status st = nvm_host_check_deadline(h, vm);
    if (st != NVM_OK)
        return st;
    char shown[300];
    nvm_host_arg_text(s, len, shown, sizeof shown);
    if (memchr(s, '\0', len) != NULL)
        return nvm_host_deny(h, vm, capname, shown, "NUL byte inside the path");
    if (len == 0)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: empty path", capname);
    char abs[NVM_FS_PATH_MAX + 2];
    if (len > NVM_FS_PATH_MAX)
        return nvm_host_deny(h, vm, capname, shown, "path longer than 4095 bytes");
    if (s[0] == '/') {
        memcpy(abs, s, len);
        abs[len] = '\0';
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s(\"%s\"): no current directory: %s", capname,
                                shown, strerror(errno));
        size_t cl = strlen(cwd);
        if (cl + 1 + len > NVM_FS_PATH_MAX)
            return nvm_host_deny(h, vm, capname, shown, "path longer than 4095 bytes");
        memcpy(abs, cwd, cl);
        abs[cl] = '/';
        memcpy(abs + cl + 1, s, len);
        abs[cl + 1 + len] = '\0';
    }
    normalize(abs, t->path);
    t->g = nvm_host_find_grant(h, capname, t->path);
    if (t->g == NULL)
        return nvm_host_deny(h, vm, capname, t->path, nvm_host_why_not(h, capname));
    if (nvm_host_denied_by_rule(h, capname, t->path))
        return nvm_host_deny(h, vm, capname, t->path, "denied by a policy rule");
    const char *root = t->g->root;
    size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (t->g->dirfd < 0 || strncmp(t->path, root, rl) != 0 ||
        (t->path[rl] != '/' && t->path[rl] != '\0'))
        return nvm_host_deny(h, vm, capname, t->path, "outside the granted directory");
    const char *rest = t->path + rl;
    while (*rest == '/')
        rest++;
    snprintf(t->rel, sizeof t->rel, "%s", *rest ? rest : ".");
    if (root_replaced(t->g))
        return nvm_host_deny(h, vm, capname, t->path,
                             "the granted directory was moved or replaced during the run");
    int rc = probe(t, parent_too);
    if (rc == EXDEV)
        return nvm_host_deny(h, vm, capname, t->path,
                             "resolves outside the granted directory (symlink or ..)");
    if (rc == ELOOP)
        return nvm_host_deny(h, vm, capname, t->path, "symlink loop or refused symlink");
    char scope[sizeof t->g->capname + sizeof t->g->scope + 1];
    snprintf(scope, sizeof scope, "%s%s%s", t->g->capname, t->g->scope[0] ? ":" : "", t->g->scope);
    if (nvm_host_audit_call(h, capname, scope, t->path, false) != NVM_OK)
        return nvm_cap_fail(vm, NVM_E_IO, "%s: cannot write the audit log", capname);
    return NVM_OK;
}

static nvm_status os_fail(nvm_vm *vm, const char *capname, const fs_target *t, int e)
{
    char shown[300];
    nvm_host_arg_text(t->path, strlen(t->path), shown, sizeof shown);
    if (e == EXDEV || e == ELOOP)
        return nvm_cap_fail(vm, NVM_E_DENIED, "%s(\"%s\"): resolves outside the grant", capname,
                            shown);
    return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s(\"%s\"): %s", capname, shown, strerror(e));
}

/* ---- the capabilities ---- */

static nvm_status fs_read(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    (void)argc;
    nvm_host *h = ud;
    fs_target t;
    char *buf = NULL;
    int fd = -1;
    nvm_status st = fs_check(h, vm, "fs.read", args[0], false, &t);
    if (st != NVM_OK)
        return st;
    int rc = beneath_open(t.g->dirfd, t.rel, O_RDONLY, 0, &fd);
    if (rc != 0) {
        st = os_fail(vm, "fs.read", &t, rc);
        goto done;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        st = os_fail(vm, "fs.read", &t, EISDIR);
        goto done;
    }
    size_t len = 0, cap = 0;
    int64_t room = h->cfg.max_read_bytes >= 0 ? h->cfg.max_read_bytes - h->bytes_read : INT64_MAX;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > UINT32_MAX) {
                st = nvm_cap_fail(vm, NVM_E_PROGRAM, "fs.read: file too large for a string");
                goto done;
            }
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                st = nvm_cap_fail(vm, NVM_E_MEMORY, "fs.read: out of memory");
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = os_fail(vm, "fs.read", &t, errno);
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if ((int64_t)len > room)
            break; /* the accounting below reports the limit */
    }
    st = nvm_host_account(h, vm, (int64_t)len, 0);
    if (st == NVM_OK)
        st = nvm_value_new_str(vm, buf, len, result);
done:
    if (fd >= 0)
        close(fd);
    free(buf);
    return st;
}

static nvm_status write_common(nvm_vm *vm, nvm_host *h, const char *capname, const nvm_value *args,
                               int oflags)
{
    fs_target t;
    int fd = -1;
    if (args[1].type != NVM_T_STR)
        return nvm_cap_fail(vm, NVM_E_PROGRAM, "%s: the data must be a str, got %s", capname,
                            nvm_type_name((nvm_type)args[1].type));
    nvm_status st = fs_check(h, vm, capname, args[0], true, &t);
    if (st != NVM_OK)
        return st;
    size_t len = 0;
    nvm_value_str(vm, args[1], &len);
    st = nvm_host_account(h, vm, 0, (int64_t)len);
    if (st != NVM_OK)
        return st;
    int rc = beneath_open(t.g->dirfd, t.rel, O_WRONLY | O_CREAT | oflags, 0666, &fd);
    if (rc != 0)
        return os_fail(vm, capname, &t, rc);
    size_t off = 0;
    while (off < len) {
        const char *data = nvm_value_str(vm, args[1], NULL);
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = os_fail(vm, capname, &t, errno);
            break;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 && st == NVM_OK)
        st = os_fail(vm, capname, &t, errno);
    return st;
}

static nvm_status fs_write(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)argc;
    (void)result;
    return write_common(vm, ud, "fs.write", args, O_TRUNC);
}

static nvm_status fs_append(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)argc;
    (void)result;
    return write_common(vm, ud, "fs.append", args, O_APPEND);
}

static nvm_status fs_exists(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)argc;
    fs_target t;
    nvm_status st = fs_check(ud, vm, "fs.exists", args[0], false, &t);
    if (st != NVM_OK)
        return st;
    int rc = probe(&t, false);
    if (rc == 0 || rc == ENOENT || rc == ENOTDIR) {
        *result = nvm_int(rc == 0 ? 1 : 0);
        return NVM_OK;
    }
    return os_fail(vm, "fs.exists", &t, rc);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static nvm_status fs_list(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                          nvm_value *result)
{
    (void)argc;
    fs_target t;
    char **names = NULL;
    size_t n = 0, cap = 0;
    uint32_t rooted = 0;
    DIR *d = NULL;
    int fd = -1;
    nvm_status st = fs_check(ud, vm, "fs.list", args[0], false, &t);
    if (st != NVM_OK)
        return st;
    int rc = beneath_open(t.g->dirfd, t.rel, O_RDONLY | O_DIRECTORY, 0, &fd);
    if (rc != 0) {
        st = os_fail(vm, "fs.list", &t, rc);
        goto done;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        st = os_fail(vm, "fs.list", &t, errno);
        goto done;
    }
    fd = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (nn == NULL) {
                st = nvm_cap_fail(vm, NVM_E_MEMORY, "fs.list: out of memory");
                goto done;
            }
            names = nn;
            cap = ncap;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) {
            st = nvm_cap_fail(vm, NVM_E_MEMORY, "fs.list: out of memory");
            goto done;
        }
        n++;
    }
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_names);
    nvm_value arr;
    st = nvm_value_new_array(vm, &arr);
    if (st == NVM_OK && (st = nvm_value_root(vm, arr)) == NVM_OK)
        rooted = 1;
    for (size_t i = 0; st == NVM_OK && i < n; i++) {
        nvm_value s;
        st = nvm_value_new_str(vm, names[i], strlen(names[i]), &s);
        if (st == NVM_OK)
            st = nvm_array_push_value(vm, arr, s);
    }
    if (st == NVM_OK)
        *result = arr;
done:
    nvm_value_unroot(vm, rooted);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (d != NULL)
        closedir(d);
    if (fd >= 0)
        close(fd);
    return st;
}

/* Opens the parent directory of t->rel beneath the grant; 0 and *pfd, or an errno. */
static int open_parent(const fs_target *t, int *pfd, char *base, size_t blen)
{
    char parent[NVM_FS_PATH_MAX + 2];
    split_rel(t->rel, parent, sizeof parent, base, blen);
    if (strcmp(base, ".") == 0 || base[0] == '\0')
        return EBUSY; /* the granted directory itself */
    return beneath_open(t->g->dirfd, parent, O_PATH | O_DIRECTORY, 0, pfd);
}

static nvm_status fs_remove(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                            nvm_value *result)
{
    (void)argc;
    (void)result;
    fs_target t;
    char base[NVM_FS_PATH_MAX + 2];
    int pfd = -1;
    nvm_status st = fs_check(ud, vm, "fs.remove", args[0], false, &t);
    if (st != NVM_OK)
        return st;
    int rc = open_parent(&t, &pfd, base, sizeof base);
    if (rc == 0) {
        struct stat sb;
        if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            rc = errno;
        else if (unlinkat(pfd, base, S_ISDIR(sb.st_mode) ? AT_REMOVEDIR : 0) != 0)
            rc = errno;
        close(pfd);
    }
    return rc == 0 ? NVM_OK : os_fail(vm, "fs.remove", &t, rc);
}

static nvm_status fs_mkdir(nvm_vm *vm, void *ud, const nvm_value *args, uint32_t argc,
                           nvm_value *result)
{
    (void)argc;
    (void)result;
    fs_target t;
    char base[NVM_FS_PATH_MAX + 2];
    int pfd = -1;
    nvm_status st = fs_check(ud, vm, "fs.mkdir", args[0], true, &t);
    if (st != NVM_OK)
        return st;
    int rc = open_parent(&t, &pfd, base, sizeof base);
    if (rc == EBUSY)
        rc = EEXIST;
    if (rc == 0) {
        if (mkdirat(pfd, base, 0777) != 0)
            rc = errno;
        close(pfd);
    }
    return rc == 0 ? NVM_OK : os_fail(vm, "fs.mkdir", &t, rc);
}

nvm_status nvm_host_install_fs(nvm_host *h, nvm_vm *vm)
{
    static const struct {
        const char *name;
        uint32_t argc;
        nvm_cap_fn fn;
    } caps[] = {
        {"fs.read", 1, fs_read},     {"fs.write", 2, fs_write}, {"fs.append", 2, fs_append},
        {"fs.exists", 1, fs_exists}, {"fs.list", 1, fs_list},   {"fs.remove", 1, fs_remove},
        {"fs.mkdir", 1, fs_mkdir},
    };
    nvm_status st = NVM_OK;
    for (size_t i = 0; st == NVM_OK && i < sizeof caps / sizeof caps[0]; i++)
        st = nvm_vm_register_cap(vm, caps[i].name, caps[i].argc, caps[i].fn, h);
    return st;
}
