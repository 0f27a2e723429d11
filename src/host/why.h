/* why.h - the reason text of a failure, written into a caller's buffer. */
#ifndef NVM_HOST_WHY_H
#define NVM_HOST_WHY_H

#include <stddef.h>

/* printf into why (whylen bytes, truncated); nothing when why is NULL or whylen 0 */
void nvm_why_set(char *why, size_t whylen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
