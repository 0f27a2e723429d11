/* cachedir.h - the per-user cache directory of NanoVM (compiled AOT objects, verified
 * certificate chains): $NVM_CACHE_DIR, else $XDG_CACHE_HOME/nanovm/aot, else
 * $HOME/.cache/nanovm/aot. Whatever is kept there is trusted as this user's own work, so the
 * directory must be owned by the user and writable by nobody else. */
#ifndef NVM_HOST_CACHEDIR_H
#define NVM_HOST_CACHEDIR_H

#include <stdbool.h>
#include <stddef.h>

/* The cache directory into out (n bytes, at least 80 of them left free for a file name),
 * created when missing (create) and checked: a directory owned by this user, not writable by
 * group or others. false with a reason in why (whylen bytes, may be NULL) otherwise. */
bool nvm_cache_dir(char *out, size_t n, bool create, char *why, size_t whylen);

#endif
