/* api_util.c - text buffer, error records and file helpers of the public capsule and trust API. */
#define _POSIX_C_SOURCE 200809L
#include "api_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool tb_reserve(nvm_tb *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->p != NULL && b->len + extra < b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap <= b->len + extra) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (np == NULL) {
        b->oom = true;
        return false;
    }
    if (b->p == NULL)
        np[0] = '\0';
    b->p = np;
    b->cap = cap;
    return true;
}

void nvm_tb_printf(nvm_tb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if (!tb_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void nvm_tb_puts(nvm_tb *b, const char *s)
{
    size_t n = strlen(s);
    if (!tb_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

nvm_status nvm_tb_take(nvm_tb *b, char **out, nvm_error *err)
{
    *out = NULL;
    if (!b->oom)
        tb_reserve(b, 0);
    if (b->oom) {
        nvm_tb_free(b);
        return nvm_api_fail(err, NVM_E_INTERNAL, NULL, "out of memory");
    }
    *out = b->p;
    memset(b, 0, sizeof *b);
    return NVM_OK;
}

void nvm_tb_free(nvm_tb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void nvm_free_text(char *text)
{
    free(text);
}

nvm_status nvm_api_fail(nvm_error *err, nvm_status st, const char *file, const char *fmt, ...)
{
    if (err == NULL)
        return st;
    memset(err, 0, sizeof *err);
    err->status = st;
    if (file != NULL)
        snprintf(err->file, sizeof err->file, "%s", file);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return st;
}

void nvm_api_locate(nvm_error *err, const char *file)
{
    if (err == NULL)
        return;
    if (err->file[0] && strcmp(err->file, file) != 0) {
        char msg[sizeof err->file + sizeof err->message + 2];
        snprintf(msg, sizeof msg, "%s: %s", err->file, err->message);
        snprintf(err->message, sizeof err->message, "%.*s", (int)(sizeof err->message - 1), msg);
    }
    snprintf(err->file, sizeof err->file, "%s", file);
    err->line = 0;
    err->col = 0;
    err->backtrace[0] = '\0';
}

void nvm_api_default_file(nvm_error *err, const char *file)
{
    if (err == NULL)
        return;
    if (!err->file[0])
        snprintf(err->file, sizeof err->file, "%s", file);
    err->line = 0;
    err->col = 0;
    err->backtrace[0] = '\0';
}

nvm_status nvm_api_read_file(const char *path, uint8_t **out, size_t *out_len, nvm_error *err)
{
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return nvm_api_fail(err, NVM_E_FORMAT, path, "%s", strerror(errno));
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    nvm_status st = NVM_OK;
    if (buf == NULL)
        goto oom;
    for (;;) {
        if (len == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (nb == NULL)
                goto oom;
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        st = nvm_api_fail(err, NVM_E_FORMAT, path, "read error");
        free(buf);
        goto done;
    }
    *out = buf;
    *out_len = len;
    goto done;
oom:
    free(buf);
    st = nvm_api_fail(err, NVM_E_INTERNAL, NULL, "out of memory reading %s", path);
done:
    fclose(f);
    return st;
}

nvm_status nvm_api_write_atomic(const char *path, const uint8_t *data, size_t len, int mode,
                                nvm_error *err)
{
    size_t tlen = strlen(path) + 48;
    char *tmp = malloc(tlen);
    int fd = -1;
    if (tmp == NULL)
        return nvm_api_fail(err, NVM_E_IO, NULL, "out of memory");
    /* O_EXCL on a name of our own: the kernel applies the umask to a default mode. */
    for (unsigned n = 0; fd < 0 && n < 1000; n++) {
        snprintf(tmp, tlen, "%s.tmp%ld.%u", path, (long)getpid(), n);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode < 0 ? 0666 : (mode_t)mode);
        if (fd < 0 && errno != EEXIST)
            goto fail;
    }
    if (fd < 0)
        goto fail;
    if (mode >= 0 && fchmod(fd, (mode_t)mode) != 0)
        goto fail_unlink;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail_unlink;
        off += (size_t)n;
    }
    if (fsync(fd) != 0)
        goto fail_unlink;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_unlink;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail_unlink;
    free(tmp);
    return NVM_OK;
fail_unlink : {
    int e = errno;
    unlink(tmp);
    errno = e;
}
fail:
    nvm_api_fail(err, NVM_E_IO, NULL, "cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(tmp);
    return NVM_E_IO;
}
