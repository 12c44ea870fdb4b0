#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char component[32] = "aulac";
static enum log_level min_level = LOG_INFO;
static int level_from_env_done;
static volatile int live_line;

void log_set_live_line(int on) { live_line = on; }
int log_live_line(void) { return live_line; }

void log_set_component(const char *name)
{
    snprintf(component, sizeof component, "%s", name ? name : "aulac");
}

void log_set_level(enum log_level min) { min_level = min; level_from_env_done = 1; }

static const char *level_name(enum log_level l)
{
    switch (l) {
    case LOG_DEBUG: return "debug";
    case LOG_INFO: return "info";
    case LOG_WARN: return "warning";
    default: return "error";
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!level_from_env_done) {
        const char *e = getenv("AULAC_LOG");
        if (e && strcasecmp(e, "debug") == 0)
            min_level = LOG_DEBUG;
        level_from_env_done = 1;
    }
    if (level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = 0;
    if (live_line) {   /* erase the progress line this one replaces */
        memcpy(line, "\r\033[K", 4);
        n = 4;
        live_line = 0;
    }
    n += snprintf(line + n, sizeof line - (size_t)n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, component, level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
