#ifndef AULAC_COMMON_LOG_H
#define AULAC_COMMON_LOG_H
/* Timestamped log lines on stderr: "2026-11-22T17:55:27.123Z coordinator info: ...".
 * The component name is set once per process with log_set_component(). Thread-safe:
 * each line is written with a single write(). */

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_set_component(const char *name);     /* copied; default "aulac" */
void log_set_level(enum log_level min);        /* default LOG_INFO; AULAC_LOG=debug too */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A live progress line (worker/progress.h) is on stderr without its newline: the next
 * log line starts with "\r\033[K" (erasing it) and turns the flag off. */
void log_set_live_line(int on);
int  log_live_line(void);                      /* the flag: the line is still on screen */

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
