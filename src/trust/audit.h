/* audit.h - the tamper-evident audit log: JSON lines, each with the SHA-256 of the previous line.
 * Record: {"seq":N,"time":"2026-11-29T20:00:00.123Z","event":"...","capsule":"hex","signer":"...",
 *          "level":"...","tier":"...","reason":"...", ...extra string fields...,"prev":"hex64"}
 * "prev" of the first record is 64 zeros; prev of record N is SHA-256 of record N-1's line bytes
 * (without its newline). Records are appended with O_APPEND, one write(2) per record, fsync'ed,
 * under an flock, before the action they describe takes effect. The head (last seq and hash) is
 * also kept in STATE_DIR/audit-head-<sha256(log path)> when a state dir is set, so a log
 * truncated at a record boundary is detected too. */
#ifndef NVM_AUDIT_H
#define NVM_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "nanovm.h"

typedef struct nvm_audit nvm_audit;

/* Opens (creating 0600) the log; NULL path gives a no-op log. */
nvm_status nvm_audit_open(const char *path, const char *state_dir, nvm_audit **out, nvm_error *err);
/* Append one record; fields are key/value string pairs (NULL-terminated list: k1, v1, k2, v2,
 * ..., NULL). "seq", "time" and "prev" are added. */
nvm_status nvm_audit_append(nvm_audit *a, const char *event, const char *const *fields,
                            nvm_error *err);
void nvm_audit_close(nvm_audit *a);

/* Verify a log: NVM_OK, or NVM_E_TRUST with err->message naming the first bad record (line
 * number) and why (edited, reordered, spliced, truncated). */
nvm_status nvm_audit_verify(const char *path, const char *state_dir, uint64_t *nrecords,
                            nvm_error *err);

#endif
