/* aotrt.c - the AOT tier's runtime: the on-disk cache of compiled modules, the compiler call,
 * loading (hash check, then dlopen), the run driver and the public cache API.
 *
 * Cache directory: $NVM_CACHE_DIR, else $XDG_CACHE_HOME/nanovm/aot, else ~/.cache/nanovm/aot.
 * It is created 0700 and refused unless it is a real directory owned by the user and not
 * writable by group or others. An entry is KEY.so and KEY.sha256 (the hex SHA-256 of the .so,
 * written after compiling). KEY is the SHA-256 of the module's bytecode, the NanoVM version, the
 * layout fingerprint, the running executable's identity (size, modification time), the compiler's
 * identity (resolved path, size, modification time: no
 * process is started on the cached path) and the flags. Loading re-hashes the .so through an
 * open descriptor, compares, and dlopens that same descriptor (/proc/self/fd), so the bytes that
 * were checked are the bytes that run; the descriptor's ABI fingerprint is checked before any
 * generated function is called.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "aot.h"
#include "../../host/cachedir.h"
#include "../../host/why.h"
#include "../native/nrt.h"
#include "../../trust/api_util.h"
#include "../../trust/crypto.h"

extern char **environ;

struct nvm_aot_lib {
    void *dl;
    const nvm_aot_desc *desc;
};

static const nvm_aot_rt rt_table = {
    nvm_rt_fast,       nvm_rt_truthy, nvm_rt_gas,           nvm_rt_deopt,   nvm_rt_interp_call,
    nvm_rt_call_space, nvm_rt_catch,  nvm_rt_drop_handlers, nvm_rt_prefill,
};

/* Kept out of line: the large path buffers of the compile path (and of the key) then take stack
 * only while they are in use, not in every lookup's frame. */
#if defined(__GNUC__)
#define AOT_NOINLINE __attribute__((noinline))
#else
#define AOT_NOINLINE
#endif

/* ---- the compiler ---- */
#define MAX_CC_ARGS 16

typedef struct ccinfo {
    char path[PATH_MAX];
    char *argv_extra[MAX_CC_ARGS]; /* words of $CC after the program (in `words`) */
    int nextra;
    char words[1024];
    struct stat st;
} ccinfo;

/* realpath(path, out) (out: PATH_MAX bytes) for a file that exists: the name the kernel resolved
 * an opened descriptor to, one lookup instead of a readlink per path component; realpath itself
 * when /proc is not there. */
static char *resolved_path(const char *path, char *out)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd >= 0) {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(link, out, PATH_MAX - 1);
        close(fd);
        if (k > 0 && k < PATH_MAX - 1 && out[0] == '/') {
            out[k] = '\0';
            return out;
        }
    }
    return realpath(path, out);
}

static bool find_exec(const char *name, char *out, size_t n, struct stat *st)
{
    char buf[PATH_MAX];
    if (strchr(name, '/') != NULL) {
        if (realpath(name, out) == NULL || stat(out, st) != 0 || !S_ISREG(st->st_mode) ||
            access(out, X_OK) != 0)
            return false;
        return true;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/bin:/bin";
    while (*path) {
        const char *c = strchr(path, ':');
        size_t l = c != NULL ? (size_t)(c - path) : strlen(path);
        if (l > 0 && l + strlen(name) + 2 < sizeof buf) {
            memcpy(buf, path, l);
            buf[l] = '/';
            strcpy(buf + l + 1, name);
            /* stat follows symbolic links: *st already describes the file `out` names */
            if (stat(buf, st) == 0 && S_ISREG(st->st_mode) && access(buf, X_OK) == 0 &&
                resolved_path(buf, out) != NULL) {
                (void)n;
                return true;
            }
        }
        if (c == NULL)
            break;
        path = c + 1;
    }
    return false;
}

static bool cc_find(ccinfo *cc)
{
    const char *e = getenv("CC");
    snprintf(cc->words, sizeof cc->words, "%s", e != NULL && e[0] != '\0' ? e : "cc");
    char *save = NULL;
    char *prog = strtok_r(cc->words, " \t", &save);
    cc->nextra = 0;
    if (prog == NULL)
        return false;
    char *w;
    while ((w = strtok_r(NULL, " \t", &save)) != NULL && cc->nextra < MAX_CC_ARGS)
        cc->argv_extra[cc->nextra++] = w;
    return find_exec(prog, cc->path, sizeof cc->path, &cc->st);
}

bool nvm_aot_compiler(char *path, size_t n)
{
    ccinfo cc;
    if (!cc_find(&cc))
        return false;
    snprintf(path, n, "%s", cc.path);
    return true;
}

/* The fixed flags of every compile, before and after the source. The object is linked against
 * nothing but libgcc and must leave no symbol undefined (-nostdlib -Wl,-z,defs): it calls the
 * runtime only through the table it is given, so it loads into any nanovm, including a
 * statically linked one, whose symbols a loaded object cannot see. -fno-math-errno makes
 * __builtin_sqrt the sqrtsd instruction alone, where it would otherwise call libm's sqrt for a
 * negative operand to set errno (which nothing reads; the value is the same). */
static const char *const cc_flags[] = {"-fPIC",           "-shared",   "-w",
                                       "-fno-math-errno", "-nostdlib", "-Wl,-z,defs"};
static const char *const cc_libs[] = {"-lgcc"};
#define NFLAGS(a) (sizeof(a) / sizeof((a)[0]))

/* The optimisation flag: -O2 unless NVM_AOT_OPT names another level (tests). */
static const char *opt_flag(void)
{
    const char *o = getenv("NVM_AOT_OPT");
    static const char *const ok[] = {"-O0", "-O1", "-O2", "-O3", "-Os"};
    if (o != NULL)
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
            if (strcmp(o, ok[i]) == 0)
                return ok[i];
    return "-O2";
}

/* ---- keys and hashes ---- */
AOT_NOINLINE static bool cache_key(const nvm_module *m, unsigned flags, const ccinfo *cc,
                                   const char *fp, char key[2 * NVM_SHA256_LEN + 1])
{
    uint8_t *bc = NULL;
    size_t bclen = 0;
    nvm_error e;
    memset(&e, 0, sizeof e);
    if (nvm_module_to_bytecode(m, &bc, &bclen, &e) != NVM_OK)
        return false;
    /* the running executable stands for the generator's identity: a rebuilt nanovm never
     * reuses objects an older generator produced */
    struct stat self;
    if (stat("/proc/self/exe", &self) != 0)
        memset(&self, 0, sizeof self);
    char meta[PATH_MAX + 1024 + 256];
    int ml = snprintf(meta, sizeof meta,
                      "nanovm-aot-key\n%s\n%s\nflags %u\n%lld %lld.%09ld\n%s\n%lld\n%lld.%09ld\n%s",
                      NVM_VERSION_STRING, fp, flags, (long long)self.st_size,
                      (long long)self.st_mtim.tv_sec, (long)self.st_mtim.tv_nsec, cc->path,
                      (long long)cc->st.st_size, (long long)cc->st.st_mtim.tv_sec,
                      (long)cc->st.st_mtim.tv_nsec, opt_flag());
    for (size_t i = 0; i < NFLAGS(cc_flags) && ml > 0 && (size_t)ml < sizeof meta; i++)
        ml += snprintf(meta + ml, sizeof meta - (size_t)ml, " %s", cc_flags[i]);
    for (size_t i = 0; i < NFLAGS(cc_libs) && ml > 0 && (size_t)ml < sizeof meta; i++)
        ml += snprintf(meta + ml, sizeof meta - (size_t)ml, " %s", cc_libs[i]);
    for (int i = 0; i < cc->nextra && ml > 0 && (size_t)ml < sizeof meta; i++)
        ml += snprintf(meta + ml, sizeof meta - (size_t)ml, " %s", cc->argv_extra[i]);
    if (ml < 0 || (size_t)ml >= sizeof meta) {
        nvm_module_free_buffer(m, bc, bclen);
        return false;
    }
    uint8_t h[NVM_SHA256_LEN];
    nvm_sha256_2(meta, (size_t)ml + 1, bc, bclen, h);
    nvm_module_free_buffer(m, bc, bclen);
    nvm_hex(h, sizeof h, key);
    return true;
}

/* SHA-256 (hex) of the `size` bytes of the file open on fd. */
static bool hash_fd_size(int fd, off_t size, char hex[2 * NVM_SHA256_LEN + 1])
{
    if (size <= 0 || size > (off_t)(512u << 20))
        return false;
    size_t n = (size_t)size;
    void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return false;
    uint8_t h[NVM_SHA256_LEN];
    nvm_sha256(p, n, h);
    munmap(p, n);
    nvm_hex(h, sizeof h, hex);
    return true;
}

/* SHA-256 (hex) of everything readable from fd. */
static bool hash_fd(int fd, char hex[2 * NVM_SHA256_LEN + 1])
{
    struct stat st;
    return fstat(fd, &st) == 0 && hash_fd_size(fd, st.st_size, hex);
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

/* ---- loading ---- */
/* Opens dir/key.so after checking it against dir/key.sha256. */
static nvm_aot_lib *load_entry(const char *dir, const char *key, const char *fp,
                               const nvm_module *m, char *why, size_t whylen)
{
    char path[PATH_MAX], hpath[PATH_MAX], want[2 * NVM_SHA256_LEN + 2], got[2 * NVM_SHA256_LEN + 1];
    snprintf(path, sizeof path, "%s/%s.so", dir, key);
    snprintf(hpath, sizeof hpath, "%s/%s.sha256", dir, key);
    int hfd = open(hpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (hfd < 0) {
        nvm_why_set(why, whylen, "no cache entry");
        return NULL;
    }
    ssize_t r = read(hfd, want, sizeof want - 1);
    close(hfd);
    if (r < 2 * NVM_SHA256_LEN) {
        nvm_why_set(why, whylen, "cache entry %s: bad hash record", key);
        return NULL;
    }
    want[2 * NVM_SHA256_LEN] = '\0';
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        nvm_why_set(why, whylen, "cache entry %s: missing object", key);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & (S_IWGRP | S_IWOTH))) {
        close(fd);
        nvm_why_set(why, whylen, "cache entry %s: not a private regular file", key);
        return NULL;
    }
    if (!hash_fd_size(fd, st.st_size, got) || strcmp(got, want) != 0) {
        close(fd);
        nvm_why_set(why, whylen, "cache entry %s: hash mismatch (tampered or stale)", key);
        return NULL;
    }
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
    void *dl = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL);
    close(fd);
    if (dl == NULL) {
        nvm_why_set(why, whylen, "cache entry %s: cannot load: %s", key, dlerror());
        return NULL;
    }
    const nvm_aot_desc *(*describe)(void) = NULL;
    void *sym = dlsym(dl, "nvm_aot_describe");
    if (sym != NULL)
        memcpy(&describe, &sym, sizeof describe);
    const nvm_aot_desc *d = describe != NULL ? describe() : NULL;
    if (d == NULL || d->abi != NVM_AOT_ABI || d->fingerprint == NULL ||
        strcmp(d->fingerprint, fp) != 0 || d->nfuncs != m->nfuncs || d->fns == NULL) {
        dlclose(dl);
        nvm_why_set(why, whylen, "cache entry %s: ABI or layout fingerprint mismatch", key);
        return NULL;
    }
    nvm_aot_lib *lib = calloc(1, sizeof *lib);
    if (lib == NULL) {
        dlclose(dl);
        nvm_why_set(why, whylen, "out of memory");
        return NULL;
    }
    lib->dl = dl;
    lib->desc = d;
    return lib;
}

void nvm_aot_lib_free(nvm_aot_lib *lib)
{
    if (lib == NULL)
        return;
    dlclose(lib->dl);
    free(lib);
}

/* ---- compiling ---- */
static bool run_cc(const ccinfo *cc, const char *src, const char *out, char *why, size_t whylen)
{
    char *argv[MAX_CC_ARGS + NFLAGS(cc_flags) + NFLAGS(cc_libs) + 6];
    size_t k = 0;
    argv[k++] = (char *)cc->path;
    for (int i = 0; i < cc->nextra; i++)
        argv[k++] = cc->argv_extra[i];
    argv[k++] = (char *)opt_flag();
    for (size_t i = 0; i < NFLAGS(cc_flags); i++)
        argv[k++] = (char *)cc_flags[i];
    argv[k++] = "-o";
    argv[k++] = (char *)out;
    argv[k++] = (char *)src;
    for (size_t i = 0; i < NFLAGS(cc_libs); i++)
        argv[k++] = (char *)cc_libs[i];
    argv[k] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int e = posix_spawn(&pid, cc->path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) {
        nvm_why_set(why, whylen, "cannot start the C compiler %s: %s", cc->path, strerror(e));
        return false;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            nvm_why_set(why, whylen, "C compiler: %s", strerror(errno));
            return false;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        nvm_why_set(why, whylen, "the C compiler %s failed", cc->path);
        return false;
    }
    return true;
}

/* Generates, compiles and stores m as dir/key.{so,sha256}. */
AOT_NOINLINE static bool compile_entry(const nvm_module *m, unsigned flags, const ccinfo *cc,
                                       const char *dir, const char *key, char *why, size_t whylen)
{
    char *c = NULL;
    size_t clen = 0;
    nvm_error e;
    memset(&e, 0, sizeof e);
    char src[PATH_MAX], tmp[PATH_MAX], fin[PATH_MAX], htmp[PATH_MAX], hfin[PATH_MAX];
    bool ok = false;
    int fd = -1;
    src[0] = tmp[0] = htmp[0] = '\0';
    /* a refused entry is replaced */
    snprintf(fin, sizeof fin, "%s/%s.so", dir, key);
    unlink(fin);
    snprintf(hfin, sizeof hfin, "%s/%s.sha256", dir, key);
    unlink(hfin);
    if (nvm_aot_emit(m, flags, &c, &clen, &e) != NVM_OK) {
        nvm_why_set(why, whylen, "generating C: %s", e.message);
        return false;
    }
    snprintf(src, sizeof src, "%s/tmp-%s-XXXXXX.c", dir, key);
    fd = mkstemps(src, 2);
    if (fd < 0 || !write_all(fd, c, clen) || close(fd) != 0) {
        nvm_why_set(why, whylen, "cannot write the generated C in %s", dir);
        if (fd >= 0)
            unlink(src);
        src[0] = '\0';
        goto done;
    }
    snprintf(tmp, sizeof tmp, "%s/tmp-%s-%ld.so", dir, key, (long)getpid());
    if (!run_cc(cc, src, tmp, why, whylen))
        goto done;
    chmod(tmp, 0500);
    fd = open(tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    char hex[2 * NVM_SHA256_LEN + 2];
    if (fd < 0 || !hash_fd(fd, hex)) {
        if (fd >= 0)
            close(fd);
        nvm_why_set(why, whylen, "cannot hash the compiled object");
        goto done;
    }
    close(fd);
    snprintf(fin, sizeof fin, "%s/%s.so", dir, key);
    snprintf(hfin, sizeof hfin, "%s/%s.sha256", dir, key);
    snprintf(htmp, sizeof htmp, "%s/tmp-%s-%ld.sha256", dir, key, (long)getpid());
    strcat(hex, "\n");
    fd = open(htmp, O_WRONLY | O_CREAT | O_TRUNC | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0 || !write_all(fd, hex, strlen(hex)) || close(fd) != 0 || rename(tmp, fin) != 0 ||
        rename(htmp, hfin) != 0) {
        nvm_why_set(why, whylen, "cannot store the cache entry in %s: %s", dir, strerror(errno));
        goto done;
    }
    tmp[0] = htmp[0] = '\0';
    ok = true;
done:
    if (src[0])
        unlink(src);
    if (tmp[0])
        unlink(tmp);
    if (htmp[0])
        unlink(htmp);
    free(c);
    return ok;
}

nvm_status nvm_aot_get(const nvm_module *m, unsigned flags, bool compile, nvm_aot_lib **out,
                       char *why, size_t whylen)
{
    *out = NULL;
    if (m == NULL || !m->verified) {
        nvm_why_set(why, whylen, "module not verified");
        return NVM_E_USAGE;
    }
    char dir[PATH_MAX - 128], key[2 * NVM_SHA256_LEN + 1];
    ccinfo cc;
    if (!cc_find(&cc)) {
        nvm_why_set(why, whylen, "no C compiler (cc or $CC)");
        return NVM_E_USAGE;
    }
    if (!nvm_cache_dir(dir, sizeof dir, true, why, whylen))
        return NVM_E_USAGE;
    char fp[NVM_AOT_FP_LEN + 1];
    nvm_aot_fingerprint(fp);
    if (!cache_key(m, flags, &cc, fp, key)) {
        nvm_why_set(why, whylen, "cannot compute the cache key");
        return NVM_E_USAGE;
    }
    char lwhy[512];
    lwhy[0] = '\0';
    *out = load_entry(dir, key, fp, m, lwhy, sizeof lwhy);
    if (*out != NULL)
        return NVM_OK;
    if (!compile) {
        nvm_why_set(why, whylen, "%s", lwhy);
        return NVM_E_USAGE;
    }
    if (!compile_entry(m, flags, &cc, dir, key, why, whylen))
        return NVM_E_USAGE;
    *out = load_entry(dir, key, fp, m, why, whylen);
    return *out != NULL ? NVM_OK : NVM_E_USAGE;
}

/* ---- the run driver ---- */
typedef struct run_args {
    nvm_vm *vm;
    nvm_aot_fn fn;
    int rc;
} run_args;

static void on_stack(unsigned hi, unsigned lo)
{
    uintptr_t p = ((uintptr_t)hi << 32) | (uintptr_t)lo;
    run_args *a = (run_args *)p;
    a->rc = a->fn(a->vm, a->vm->stack, a->vm->slots);
}

/* Native stack of a run: generated frames plus room for the C code they call. */
#define AOT_FRAME_BYTES 192u
#define AOT_C_STACK (8u << 20)
#define AOT_HEADROOM (4u << 20)

static nvm_status aot_runner(nvm_vm *vm, void *ud)
{
    const nvm_aot_lib *lib = ud;
    int64_t gas;
    nvm_status st = nvm_vm_start(vm, &gas);
    if (st != NVM_OK)
        return st;

    size_t size;
    uint8_t *stk =
        nvm_rt_stack_new(vm, (size_t)vm->cfg.max_depth * AOT_FRAME_BYTES + AOT_C_STACK, &size);
    if (stk == NULL)
        return vm->err.status;
    nvm_aot_ctx ctx = {&rt_table, (const char *)stk + AOT_HEADROOM};
    run_args a = {vm, lib->desc->fns[vm->mod->entry], NVM_RT_ERR};
    ucontext_t here, there;
    uintptr_t ap = (uintptr_t)&a;
    int ok = getcontext(&there);
    if (ok == 0) {
        there.uc_stack.ss_sp = stk;
        there.uc_stack.ss_size = size;
        there.uc_link = &here;
        makecontext(&there, (void (*)(void))on_stack, 2, (unsigned)(ap >> 32),
                    (unsigned)(ap & 0xFFFFFFFFu));
        vm->jit_pool = &ctx;
        ok = swapcontext(&here, &there);
        vm->jit_pool = NULL;
    }
    nvm_rt_stack_free(stk, size);
    if (ok != 0)
        return nvm_vm_raise(vm, NVM_E_INTERNAL, "cannot switch to the AOT tier's native stack");
    vm->gas_used = vm->gas_start - vm->gas_rest - vm->jit_gas;
    if (a.rc == NVM_RT_ERR)
        return vm->jit_status != NVM_OK ? vm->jit_status : NVM_E_INTERNAL;
    return NVM_OK;
}

nvm_status nvm_aot_run(nvm_vm *vm, const nvm_aot_lib *lib)
{
    return nvm_vm_run_with(vm, aot_runner, (void *)lib);
}

/* ---- public API: compile, emit, cache listing ---- */

nvm_status nvm_aot_compile(const nvm_module *m, const char *emit_c_path, char **out_text,
                           nvm_error *err)
{
    return nvm_aot_compile_ex(m, 0, emit_c_path, out_text, err);
}

nvm_status nvm_aot_compile_ex(const nvm_module *m, unsigned flags, const char *emit_c_path,
                              char **out_text, nvm_error *err)
{
    if (out_text != NULL)
        *out_text = NULL;
    nvm_tb msg;
    memset(&msg, 0, sizeof msg);
    if (emit_c_path != NULL) {
        char *c = NULL;
        size_t clen = 0;
        nvm_status st = nvm_aot_emit(m, flags, &c, &clen, err);
        if (st != NVM_OK)
            return st;
        st = nvm_api_write_atomic(emit_c_path, (const uint8_t *)c, clen, -1, err);
        free(c);
        if (st != NVM_OK)
            return st;
        nvm_tb_printf(&msg, "wrote %s (%zu bytes of C)\n", emit_c_path, clen);
    } else {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        nvm_aot_lib *lib = NULL;
        char why[512];
        nvm_status st = nvm_aot_get(m, flags, true, &lib, why, sizeof why);
        if (st != NVM_OK)
            return nvm_error_set(err, st, NULL, 0, 0, "AOT: %s", why);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        char dir[PATH_MAX - 128];
        if (!nvm_cache_dir(dir, sizeof dir, false, NULL, 0))
            dir[0] = '\0';
        nvm_tb_printf(
            &msg, "aot: %" PRIu32 " functions, %" PRIu64 " instructions ready in %s (%.1f ms)\n",
            lib->desc->nfuncs, lib->desc->insns, dir, ms);
        nvm_aot_lib_free(lib);
    }
    if (out_text == NULL) {
        nvm_tb_free(&msg);
        return NVM_OK;
    }
    return nvm_tb_take(&msg, out_text, err);
}

static bool is_entry_name(const char *n, const char *ext)
{
    size_t l = strlen(n), el = strlen(ext);
    if (l != 2 * NVM_SHA256_LEN + el || strcmp(n + 2 * NVM_SHA256_LEN, ext) != 0)
        return false;
    for (size_t i = 0; i < 2 * NVM_SHA256_LEN; i++)
        if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f')))
            return false;
    return true;
}

nvm_status nvm_aot_cache_list(char **out_text, nvm_error *err)
{
    *out_text = NULL;
    char dir[PATH_MAX - 128], why[512];
    if (!nvm_cache_dir(dir, sizeof dir, false, why, sizeof why))
        return nvm_error_set(err, NVM_E_IO, NULL, 0, 0, "%s", why);
    DIR *d = opendir(dir);
    if (d == NULL)
        return nvm_error_set(err, NVM_E_IO, dir, 0, 0, "cannot list: %s", strerror(errno));
    nvm_tb t;
    memset(&t, 0, sizeof t);
    nvm_tb_printf(&t, "cache: %s\n", dir);
    uint64_t n = 0, bytes = 0, chains = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        chains += is_entry_name(de->d_name, ".chain");
        if (!is_entry_name(de->d_name, ".so"))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        n++;
        bytes += (uint64_t)st.st_size;
        nvm_tb_printf(&t, "%.*s  %lld bytes\n", 2 * NVM_SHA256_LEN, de->d_name,
                      (long long)st.st_size);
    }
    closedir(d);
    nvm_tb_printf(&t, "%" PRIu64 " entries, %" PRIu64 " bytes\n", n, bytes);
    nvm_tb_printf(&t, "%" PRIu64 " verified chains (docs/security.md)\n", chains);
    return nvm_tb_take(&t, out_text, err);
}

nvm_status nvm_aot_cache_clear(uint64_t *removed, nvm_error *err)
{
    if (removed != NULL)
        *removed = 0;
    char dir[PATH_MAX - 128], why[512];
    if (!nvm_cache_dir(dir, sizeof dir, false, why, sizeof why))
        return nvm_error_set(err, NVM_E_IO, NULL, 0, 0, "%s", why);
    DIR *d = opendir(dir);
    if (d == NULL)
        return nvm_error_set(err, NVM_E_IO, dir, 0, 0, "cannot list: %s", strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        bool so = is_entry_name(de->d_name, ".so");
        /* an entry, a verified chain (chaincache.h), or one being written */
        const char *dot = strchr(de->d_name, '.');
        bool chain = dot != NULL && strncmp(dot, ".chain", 6) == 0 &&
                     (dot[6] == '\0' || strncmp(dot + 6, ".tmp-", 5) == 0);
        if (!so && !chain && !is_entry_name(de->d_name, ".sha256") &&
            strncmp(de->d_name, "tmp-", 4) != 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0 && so && removed != NULL)
            (*removed)++;
    }
    closedir(d);
    return NVM_OK;
}
