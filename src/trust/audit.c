/* audit.c - the tamper-evident audit log (format in audit.h and docs/policy.md).
 * Appending: open O_APPEND, take an exclusive flock, find the last record (or the head file when
 * it is ahead of the log), build the next line with jansson in a fixed key order, write it with a
 * single write(2), fsync, update the head (temp file + fsync + rename), unlock. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* flock, realpath, pread, gmtime_r */
#endif
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "crypto.h"

#define HASH_HEX (2 * NVM_SHA256_LEN + 1)
static const char zero_hash[HASH_HEX] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Invariant: fd >= 0 and path != NULL, or the log is a no-op (fd == -1). head_path is NULL
 * when there is no state dir. */
struct nvm_audit {
    int fd;
    char *path;
    char *head_path;
};

static nvm_status aerr(nvm_error *err, nvm_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static nvm_status aerr(nvm_error *err, nvm_status st, const char *fmt, ...)
{
    if (err != NULL) {
        memset(err, 0, sizeof *err);
        err->status = st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* STATE_DIR/audit-head-<sha256(absolute log path)>; malloc'ed. */
static char *head_path_for(const char *log_abs, const char *state_dir)
{
    uint8_t h[NVM_SHA256_LEN];
    char hex[HASH_HEX];
    nvm_sha256(log_abs, strlen(log_abs), h);
    nvm_hex(h, sizeof h, hex);
    size_t n = strlen(state_dir) + sizeof "/audit-head-" + sizeof hex;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s/audit-head-%s", state_dir, hex);
    return s;
}

/* Reads "SEQ HASH\n" from the head file. 1 when present and well-formed, 0 when absent, -1 when
 * unreadable or malformed. */
static int read_head(const char *head_path, uint64_t *seq, char hash[HASH_HEX])
{
    FILE *f = fopen(head_path, "rb");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    char buf[160];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char hx[HASH_HEX];
    uint64_t s;
    if (sscanf(buf, "%" SCNu64 " %64[0-9a-f]", &s, hx) != 2 || strlen(hx) != 64)
        return -1;
    *seq = s;
    memcpy(hash, hx, HASH_HEX);
    return 1;
}

static nvm_status write_head(const char *head_path, uint64_t seq, const char *hash, nvm_error *err)
{
    size_t n = strlen(head_path) + 8;
    char *tmp = malloc(n);
    if (tmp == NULL)
        return aerr(err, NVM_E_INTERNAL, "out of memory");
    snprintf(tmp, n, "%s.tmp", head_path);
    char line[128];
    int len = snprintf(line, sizeof line, "%" PRIu64 " %s\n", seq, hash);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, line, (size_t)len) == len && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (ok && rename(tmp, head_path) != 0)
        ok = false;
    nvm_status st = NVM_OK;
    if (!ok) {
        st = aerr(err, NVM_E_IO, "cannot update the audit head %s: %s", head_path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return st;
}

nvm_status nvm_audit_open(const char *path, const char *state_dir, nvm_audit **out, nvm_error *err)
{
    *out = NULL;
    nvm_audit *a = calloc(1, sizeof *a);
    if (a == NULL)
        return aerr(err, NVM_E_INTERNAL, "out of memory");
    a->fd = -1;
    nvm_status st;
    if (path == NULL) {
        *out = a;
        return NVM_OK;
    }
    a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        st = aerr(err, NVM_E_IO, "cannot open the audit log %s: %s", path, strerror(errno));
        goto fail;
    }
    a->path = realpath(path, NULL);
    if (a->path == NULL) {
        st = aerr(err, NVM_E_IO, "cannot resolve the audit log path %s: %s", path, strerror(errno));
        goto fail;
    }
    if (state_dir != NULL) {
        if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
            st = aerr(err, NVM_E_IO, "cannot create the state directory %s: %s", state_dir,
                      strerror(errno));
            goto fail;
        }
        a->head_path = head_path_for(a->path, state_dir);
        if (a->head_path == NULL) {
            st = aerr(err, NVM_E_INTERNAL, "out of memory");
            goto fail;
        }
    }
    *out = a;
    return NVM_OK;
fail:
    nvm_audit_close(a);
    return st;
}

void nvm_audit_close(nvm_audit *a)
{
    if (a == NULL)
        return;
    if (a->fd >= 0)
        close(a->fd);
    free(a->path);
    free(a->head_path);
    free(a);
}

/* The last complete line of the file (without its newline), or NULL when the file holds no
 * newline-terminated line. *out_len set. malloc'ed. A trailing partial line is ignored. */
static char *last_line(int fd, size_t *out_len, bool *io_error)
{
    *io_error = false;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        *io_error = true;
        return NULL;
    }
    size_t size = (size_t)sb.st_size;
    size_t win = 4096;
    for (;;) {
        if (win > size)
            win = size;
        if (win == 0)
            return NULL;
        char *buf = malloc(win);
        if (buf == NULL) {
            *io_error = true;
            return NULL;
        }
        ssize_t r = pread(fd, buf, win, (off_t)(size - win));
        if (r != (ssize_t)win) {
            free(buf);
            *io_error = true;
            return NULL;
        }
        /* end: the last newline; start: just after the newline before it */
        size_t end = win;
        while (end > 0 && buf[end - 1] != '\n')
            end--;
        if (end == 0) {
            free(buf);
            if (win == size)
                return NULL;
            win *= 2;
            continue;
        }
        size_t start = end - 1;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        if (start == 0 && win < size) {
            free(buf);
            win *= 2;
            continue;
        }
        size_t n = end - 1 - start;
        memmove(buf, buf + start, n);
        buf[n] = '\0';
        *out_len = n;
        return buf;
    }
}

static void now_iso(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = (int)(ts.tv_nsec / 1000000) % 1000;
    snprintf(out + n, 32 - n, ".%03dZ", ms);
}

static const char *const std_keys[] = {"capsule", "signer", "level", "tier", "reason"};
#define NSTD (sizeof std_keys / sizeof std_keys[0])

static bool is_reserved(const char *k)
{
    if (strcmp(k, "seq") == 0 || strcmp(k, "time") == 0 || strcmp(k, "event") == 0 ||
        strcmp(k, "prev") == 0)
        return true;
    for (size_t i = 0; i < NSTD; i++)
        if (strcmp(k, std_keys[i]) == 0)
            return true;
    return false;
}

/* Builds the record line (no newline) in a fixed key order; malloc'ed by jansson's allocator. */
static char *build_line(uint64_t seq, const char *event, const char *const *fields,
                        const char *prev)
{
    char tbuf[32];
    now_iso(tbuf);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    bool ok = json_object_set_new(o, "seq", json_integer((json_int_t)seq)) == 0 &&
              json_object_set_new(o, "time", json_string(tbuf)) == 0 &&
              json_object_set_new(o, "event", json_string(event)) == 0;
    for (size_t s = 0; ok && s < NSTD; s++) {
        const char *val = "";
        for (size_t i = 0; fields != NULL && fields[i] != NULL && fields[i + 1] != NULL; i += 2)
            if (strcmp(fields[i], std_keys[s]) == 0)
                val = fields[i + 1];
        ok = json_object_set_new(o, std_keys[s], json_string(val)) == 0;
    }
    for (size_t i = 0; ok && fields != NULL && fields[i] != NULL && fields[i + 1] != NULL; i += 2)
        if (!is_reserved(fields[i]))
            ok = json_object_set_new(o, fields[i], json_string(fields[i + 1])) == 0;
    ok = ok && json_object_set_new(o, "prev", json_string(prev)) == 0;
    char *line = ok ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    return line;
}

/* seq and prev of the record that the next append follows. Uses the log's last record, or the
 * head when the head is ahead of the log (a truncated log keeps its gap visible). */
static nvm_status find_tail(nvm_audit *a, uint64_t *seq, char hash[HASH_HEX], nvm_error *err)
{
    *seq = 0;
    memcpy(hash, zero_hash, HASH_HEX);
    bool io_error = false;
    size_t n = 0;
    char *line = last_line(a->fd, &n, &io_error);
    if (io_error)
        return aerr(err, NVM_E_IO, "cannot read the audit log %s", a->path);
    if (line != NULL) {
        json_t *o = json_loadb(line, n, 0, NULL);
        json_t *s = o != NULL ? json_object_get(o, "seq") : NULL;
        if (json_is_integer(s) && json_integer_value(s) > 0)
            *seq = (uint64_t)json_integer_value(s);
        json_decref(o);
        uint8_t h[NVM_SHA256_LEN];
        nvm_sha256(line, n, h);
        nvm_hex(h, sizeof h, hash);
        free(line);
    }
    if (a->head_path != NULL) {
        uint64_t hseq;
        char hhash[HASH_HEX];
        if (read_head(a->head_path, &hseq, hhash) == 1 && hseq > *seq) {
            *seq = hseq;
            memcpy(hash, hhash, HASH_HEX);
        }
    }
    return NVM_OK;
}

nvm_status nvm_audit_append(nvm_audit *a, const char *event, const char *const *fields,
                            nvm_error *err)
{
    if (a == NULL || a->fd < 0)
        return NVM_OK;
    nvm_status st;
    char *line = NULL;
    if (flock(a->fd, LOCK_EX) != 0)
        return aerr(err, NVM_E_IO, "cannot lock the audit log %s: %s", a->path, strerror(errno));
    uint64_t seq;
    char prev[HASH_HEX];
    st = find_tail(a, &seq, prev, err);
    if (st != NVM_OK)
        goto done;
    line = build_line(seq + 1, event, fields, prev);
    if (line == NULL) {
        st = aerr(err, NVM_E_INTERNAL, "out of memory building an audit record");
        goto done;
    }
    size_t n = strlen(line);
    uint8_t h[NVM_SHA256_LEN];
    char hex[HASH_HEX];
    nvm_sha256(line, n, h);
    nvm_hex(h, sizeof h, hex);
    line[n] = '\n'; /* json_dumps leaves room only for the NUL: replace it, write n + 1 */
    ssize_t w = write(a->fd, line, n + 1);
    if (w != (ssize_t)(n + 1) || fsync(a->fd) != 0) {
        st = aerr(err, NVM_E_IO, "cannot write the audit log %s: %s", a->path,
                  w < 0 ? strerror(errno) : "short write");
        goto done;
    }
    if (a->head_path != NULL)
        st = write_head(a->head_path, seq + 1, hex, err);
done:
    free(line);
    flock(a->fd, LOCK_UN);
    return st;
}

/* ---- verification ---- */

nvm_status nvm_audit_verify(const char *path, const char *state_dir, uint64_t *nrecords,
                            nvm_error *err)
{
    nvm_status st = NVM_OK;
    char *buf = NULL, *abs = NULL, *head = NULL;
    *nrecords = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return aerr(err, NVM_E_IO, "cannot open %s: %s", path, strerror(errno));
    size_t len = 0, cap = 65536;
    buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            st = aerr(err, NVM_E_INTERNAL, "out of memory");
            goto done;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        st = aerr(err, NVM_E_IO, "cannot read %s", path);
        goto done;
    }
    uint64_t prev_seq = 0;
    char prev_hash[HASH_HEX];
    memcpy(prev_hash, zero_hash, HASH_HEX);
    size_t pos = 0;
    uint64_t lineno = 0;
    while (pos < len) {
        lineno++;
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL) {
            st = aerr(err, NVM_E_TRUST,
                      "line %" PRIu64 ": incomplete record without a newline (truncated)", lineno);
            goto done;
        }
        size_t n = (size_t)(nl - (buf + pos));
        const char *line = buf + pos;
        json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);
        json_t *js = json_object_get(o, "seq");
        json_t *jp = json_object_get(o, "prev");
        if (o == NULL || !json_is_object(o)) {
            json_decref(o);
            st = aerr(err, NVM_E_TRUST, "line %" PRIu64 " is not valid JSON", lineno);
            goto done;
        }
        if (!json_is_integer(js) || json_integer_value(js) <= 0 || !json_is_string(jp) ||
            !json_is_string(json_object_get(o, "event"))) {
            json_decref(o);
            st = aerr(err, NVM_E_TRUST,
                      "line %" PRIu64 ": not an audit record (seq, event or prev missing)", lineno);
            goto done;
        }
        uint64_t seq = (uint64_t)json_integer_value(js);
        bool prev_ok = strcmp(json_string_value(jp), prev_hash) == 0;
        json_decref(o);
        if (seq != prev_seq + 1) {
            if (prev_seq == 0)
                st = aerr(err, NVM_E_TRUST,
                          "line %" PRIu64 ": the log starts at record %" PRIu64
                          ", not 1 (records removed from the start)",
                          lineno, seq);
            else if (seq > prev_seq + 1)
                st = aerr(err, NVM_E_TRUST,
                          "line %" PRIu64 ": seq jumps from %" PRIu64 " to %" PRIu64
                          " (record removed or reordered)",
                          lineno, prev_seq, seq);
            else
                st = aerr(err, NVM_E_TRUST,
                          "line %" PRIu64 ": seq goes back from %" PRIu64 " to %" PRIu64
                          " (records reordered or spliced)",
                          lineno, prev_seq, seq);
            goto done;
        }
        if (!prev_ok) {
            if (prev_seq == 0)
                st = aerr(err, NVM_E_TRUST,
                          "line %" PRIu64 ": the first record's prev hash is not zero (spliced)",
                          lineno);
            else
                st = aerr(err, NVM_E_TRUST,
                          "line %" PRIu64 ": prev hash does not match record %" PRIu64
                          " (edited, reordered or spliced)",
                          lineno, prev_seq);
            goto done;
        }
        uint8_t h[NVM_SHA256_LEN];
        nvm_sha256(line, n, h);
        nvm_hex(h, sizeof h, prev_hash);
        prev_seq = seq;
        pos += n + 1;
    }
    *nrecords = prev_seq;
    if (state_dir != NULL) {
        abs = realpath(path, NULL);
        head = abs != NULL ? head_path_for(abs, state_dir) : NULL;
        if (head == NULL) {
            st = aerr(err, NVM_E_INTERNAL, "cannot resolve %s", path);
            goto done;
        }
        uint64_t hseq = 0;
        char hhash[HASH_HEX];
        int hr = read_head(head, &hseq, hhash);
        if (hr < 0) {
            st = aerr(err, NVM_E_TRUST, "the audit head %s is unreadable or malformed", head);
        } else if (hr == 1 && hseq > prev_seq) {
            st = aerr(err, NVM_E_TRUST,
                      "line %" PRIu64 ": log ends at record %" PRIu64 " but the head says %" PRIu64
                      " (truncated)",
                      lineno + 1, prev_seq, hseq);
        } else if (hr == 1 && hseq == prev_seq && strcmp(hhash, prev_hash) != 0) {
            st = aerr(err, NVM_E_TRUST,
                      "line %" PRIu64 ": record %" PRIu64
                      " does not match the head's hash (last record edited or replaced)",
                      lineno, prev_seq);
        }
    }
done:
    fclose(f);
    free(buf);
    free(abs);
    free(head);
    return st;
}
