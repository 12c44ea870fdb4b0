#include "common/why.h"

#include <stdarg.h>
#include <stdio.h>

int why_fail(char *why, size_t cap, int rc, const char *fmt, ...)
{
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}
