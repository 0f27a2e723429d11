/* why.c - the reason text of a failure (why.h). */
#include "why.h"

#include <stdarg.h>
#include <stdio.h>

void nvm_why_set(char *why, size_t whylen, const char *fmt, ...)
{
    if (why == NULL || whylen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}
