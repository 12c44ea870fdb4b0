/* What every aulac command shares (cli/cli.h): its error lines and option parsing. Apart
 * from main.c so that tests can run the commands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

int cli_usage_error(const char *cmd, const char *u, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "aulac %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n%s", u);
    va_end(ap);
    return 2;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "aulac %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_parse_u64(const char *cmd, const char *flag, const char *s, unsigned long long *out)
{
    char *end;
    if (!s[0] || s[0] == '-') {
        cli_fail(cmd, "%s expects a non-negative integer, got '%s'", flag, s);
        return -1;
    }
    *out = strtoull(s, &end, 10);
    if (*end) {
        cli_fail(cmd, "%s expects a non-negative integer, got '%s'", flag, s);
        return -1;
    }
    return 0;
}
