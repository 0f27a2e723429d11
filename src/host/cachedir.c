/* cachedir.c - the per-user cache directory (cachedir.h). */
#define _GNU_SOURCE
#include "cachedir.h"
#include "why.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(path, 0700);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

bool nvm_cache_dir(char *out, size_t n, bool create, char *why, size_t whylen)
{
    const char *d = getenv("NVM_CACHE_DIR");
    const char *x = getenv("XDG_CACHE_HOME");
    const char *h = getenv("HOME");
    int k;
    if (d != NULL && d[0] != '\0')
        k = snprintf(out, n, "%s", d);
    else if (x != NULL && x[0] == '/')
        k = snprintf(out, n, "%s/nanovm/aot", x);
    else if (h != NULL && h[0] == '/')
        k = snprintf(out, n, "%s/.cache/nanovm/aot", h);
    else {
        nvm_why_set(why, whylen, "no cache directory (set NVM_CACHE_DIR or HOME)");
        return false;
    }
    if (k < 0 || (size_t)k >= n - 80) {
        nvm_why_set(why, whylen, "cache directory path too long");
        return false;
    }
    /* an existing directory needs no mkdir of every component (all of them would fail with
     * EEXIST) */
    struct stat st;
    bool exists = create && lstat(out, &st) == 0;
    if (create && !exists && mkdirs(out) != 0) {
        nvm_why_set(why, whylen, "cannot create the cache directory %s: %s", out, strerror(errno));
        return false;
    }
    if (!exists && lstat(out, &st) != 0) {
        nvm_why_set(why, whylen, "cache directory %s: %s", out, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        nvm_why_set(why, whylen, "cache directory %s is not a directory", out);
        return false;
    }
    if (st.st_uid != geteuid()) {
        nvm_why_set(why, whylen, "cache directory %s is not owned by this user", out);
        return false;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        nvm_why_set(why, whylen, "cache directory %s is writable by group or others", out);
        return false;
    }
    return true;
}
