#ifndef AULAC_COMMON_WHY_H
#define AULAC_COMMON_WHY_H
/* The one way a function that refuses says why: writes the printf-formatted
 * reason into why (truncated to cap bytes; nothing when why is NULL or cap 0)
 * and returns rc, so a refusal is one line: return why_fail(why, cap, ERR, "..."). */
#include <stddef.h>

int why_fail(char *why, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
