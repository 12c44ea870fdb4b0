#include "worker/progress.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"

int progress_mode_parse(const char *s, enum progress_mode *out)
{
    static const char *const names[] = { "auto", "tty", "plain", "off" };
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (enum progress_mode)i;
            return 0;
        }
    return -1;
}

enum progress_mode progress_mode_resolve(enum progress_mode m, int stderr_is_tty)
{
    if (m == PROGRESS_AUTO)
        return stderr_is_tty ? PROGRESS_TTY : PROGRESS_PLAIN;
    return m;
}

/* Appends to buf at *n, never past cap - 1; *n stops at cap - 1 once full. */
static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    if (*n + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    *n += (size_t)m;
    if (*n > cap - 1)
        *n = cap - 1;
}

/* The unit for a byte count: its divisor and name (decimal, as network rates are). */
static double unit_of(uint64_t b, const char **name)
{
    if (b >= 1000000000ULL) { *name = "GB"; return 1e9; }
    if (b >= 1000000ULL) { *name = "MB"; return 1e6; }
    if (b >= 1000ULL) { *name = "kB"; return 1e3; }
    *name = "B";
    return 1;
}

static void put_bytes(char *buf, size_t cap, size_t *n, uint64_t b, double div,
                      const char *unit)
{
    if (div == 1)
        put(buf, cap, n, "%" PRIu64 "%s%s", b, unit[0] ? " " : "", unit);
    else
        put(buf, cap, n, "%.1f%s%s", (double)b / div, unit[0] ? " " : "", unit);
}

size_t progress_render(const struct progress_state *s, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    buf[0] = 0;
    if (s->rounds)
        put(buf, cap, &n, "round %" PRIu64 "/%" PRIu64, s->round, s->rounds);
    else
        put(buf, cap, &n, "round %" PRIu64, s->round);
    int pct = s->steps > 0 ? (int)((int64_t)s->step * 100 / s->steps) : 0;
    if (s->phase == PROGRESS_TRAIN)
        put(buf, cap, &n, "  step %d/%d (%d%%)", s->step, s->steps, pct);
    else
        put(buf, cap, &n, "  step %d/%d", s->step, s->steps);
    if (isnan(s->loss))
        put(buf, cap, &n, "  loss -");
    else
        put(buf, cap, &n, "  loss %.4f", s->loss);
    if (s->phase == PROGRESS_TRAIN) {
        if (s->tokens_per_s < 0 || isnan(s->tokens_per_s))
            put(buf, cap, &n, "  - tok/s");
        else
            put(buf, cap, &n, "  %.0f tok/s", s->tokens_per_s);
        if (s->eta_s < 0 || isnan(s->eta_s) || s->eta_s > 359999) {
            put(buf, cap, &n, "  ETA ?");
        } else {
            long t = lround(s->eta_s);
            if (t >= 3600)
                put(buf, cap, &n, "  ETA %ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
            else
                put(buf, cap, &n, "  ETA %ld:%02ld", t / 60, t % 60);
        }
        return n;
    }
    const char *unit;
    double div = unit_of(s->total, &unit);
    if (s->phase == PROGRESS_UPLOAD) {
        uint64_t sent = s->sent > s->total ? s->total : s->sent;
        int up = s->total ? (int)(sent * 100 / s->total) : 100;
        put(buf, cap, &n, "  upload ");
        if (div == 1)
            put(buf, cap, &n, "%" PRIu64 "/", sent);
        else
            put(buf, cap, &n, "%.1f/", (double)sent / div);
        put_bytes(buf, cap, &n, s->total, div, unit);
        put(buf, cap, &n, " (%d%%)", up);
    } else {
        put(buf, cap, &n, "  uploaded ");
        put_bytes(buf, cap, &n, s->total, div, unit);
        put(buf, cap, &n, " in %.2f s", s->upload_s);
    }
    return n;
}

static int tenth_of(const struct progress_state *s)
{
    return s->steps > 0 ? (int)((int64_t)s->step * 10 / s->steps) : 0;
}

int progress_due(const struct progress *p, const struct progress_state *s, int64_t now_ms)
{
    switch (p->mode) {
    case PROGRESS_TTY:
        if (!p->drawn || s->phase != p->last_phase || s->phase == PROGRESS_UPLOAD_DONE)
            return 1;
        if (s->phase == PROGRESS_TRAIN && s->step == s->steps)
            return 1;
        return now_ms - p->last_ms >= PROGRESS_TTY_INTERVAL_MS;
    case PROGRESS_PLAIN:
        if (s->phase == PROGRESS_UPLOAD_DONE)
            return 1;
        if (s->phase == PROGRESS_UPLOAD)
            return p->drawn && now_ms - p->last_ms >= PROGRESS_PLAIN_INTERVAL_MS;
        if (tenth_of(s) > p->last_tenth)
            return 1;
        return s->step > 0 && now_ms - p->last_ms >= PROGRESS_PLAIN_INTERVAL_MS;
    default:
        return 0;
    }
}

void progress_mark(struct progress *p, const struct progress_state *s, int64_t now_ms)
{
    p->drawn = 1;
    p->last_ms = now_ms;
    p->last_phase = s->phase;
    if (s->phase == PROGRESS_TRAIN)
        p->last_tenth = tenth_of(s);
}

void progress_init(struct progress *p, enum progress_mode m)
{
    memset(p, 0, sizeof *p);
    p->mode = progress_mode_resolve(m, isatty(STDERR_FILENO));
}

void progress_begin(struct progress *p)
{
    progress_end(p);
    enum progress_mode m = p->mode;
    memset(p, 0, sizeof *p);
    p->mode = m;
    p->last_ms = time_mono_ms();   /* PLAIN: the interval counts from the round's start */
}

void progress_update(struct progress *p, const struct progress_state *s)
{
    int64_t now = time_mono_ms();
    if (!progress_due(p, s, now))
        return;
    char line[256];
    progress_render(s, line, sizeof line);
    progress_mark(p, s, now);
    if (p->mode == PROGRESS_PLAIN) {
        log_info("progress: %s", line);
        return;
    }
    char out[300];
    int len = snprintf(out, sizeof out, "\r\033[K%s%s", line,
                       s->phase == PROGRESS_UPLOAD_DONE ? "\n" : "");
    if (len > (int)sizeof out - 1)
        len = (int)sizeof out - 1;
    ssize_t w = write(STDERR_FILENO, out, (size_t)len);
    (void)w;
    log_set_live_line(s->phase != PROGRESS_UPLOAD_DONE);
}

void progress_end(struct progress *p)
{
    if (p->mode == PROGRESS_TTY && log_live_line()) {
        ssize_t w = write(STDERR_FILENO, "\n", 1);
        (void)w;
        log_set_live_line(0);
    }
}
