/* api_util.h - helpers shared by the public capsule and trust API (api.c, api_capsule.c,
 * api_report.c): a growable text buffer, error records in the API's shape, whole-file reads and
 * atomic writes. */
#ifndef NVM_API_UTIL_H
#define NVM_API_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"

/* A growable NUL-terminated text. Invariant: p == NULL or p[len] == '\0' and len < cap; oom is
 * sticky: after a failed allocation further appends do nothing. */
typedef struct nvm_tb {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} nvm_tb;

void nvm_tb_printf(nvm_tb *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void nvm_tb_puts(nvm_tb *b, const char *s);
/* Hands the text to *out (NULL and NVM_E_INTERNAL "out of memory" in err after an allocation
 * failure); the buffer is empty afterwards. */
nvm_status nvm_tb_take(nvm_tb *b, char **out, nvm_error *err);
void nvm_tb_free(nvm_tb *b);

/* Fill err: status, file (may be NULL), formatted one-line message; returns st. */
nvm_status nvm_api_fail(nvm_error *err, nvm_status st, const char *file, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Re-anchor an error from a lower layer on `file`: err->file becomes `file` and a different file
 * the lower layer named moves into the message ("inner.pem: reason"); line, col and backtrace are
 * cleared. */
void nvm_api_locate(nvm_error *err, const char *file);
/* Name `file` as the file at fault when the lower layer named none; line, col and backtrace are
 * cleared. */
void nvm_api_default_file(nvm_error *err, const char *file);

/* Read a whole file into malloc'ed memory (*out, *out_len). Cannot open or read: NVM_E_FORMAT
 * with file = path and the reason; out of memory: NVM_E_INTERNAL. */
nvm_status nvm_api_read_file(const char *path, uint8_t **out, size_t *out_len, nvm_error *err);
/* Write through a temporary file in the same directory and a rename; `mode` is the new file's
 * permission bits, or -1 for 0666 less the umask. NVM_E_IO "cannot write PATH: reason". */
nvm_status nvm_api_write_atomic(const char *path, const uint8_t *data, size_t len, int mode,
                                nvm_error *err);

#endif
