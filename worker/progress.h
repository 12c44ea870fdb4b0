#ifndef AULAC_WORKER_PROGRESS_H
#define AULAC_WORKER_PROGRESS_H
/* The worker's round progress (aulac-worker --progress): training steps, tokens/s, loss,
 * the round's ETA, then the upload's bytes sent.
 *
 * On a terminal (PROGRESS_TTY) one live line per round, rewritten in place ("\r" then
 * ANSI erase-line "\033[K"), at most PROGRESS_TTY_INTERVAL_MS apart (a phase change and
 * the last step are always drawn); the line ends with a newline when the upload ends, so
 * the finished round stays on screen. While the live line is up, log lines clear it first
 * (log_set_live_line) and the next update draws it again.
 * In a log file (PROGRESS_PLAIN) the same fields as ordinary log lines: one each time the
 * round crosses a tenth of its steps, or PROGRESS_PLAIN_INTERVAL_MS after the last one,
 * and one when the upload ends.
 *
 * progress_render and progress_due are pure (no I/O, no clock): the unit tests drive
 * them with states and times. */
#include <stddef.h>
#include <stdint.h>

#define PROGRESS_TTY_INTERVAL_MS   250
#define PROGRESS_PLAIN_INTERVAL_MS 30000

enum progress_mode { PROGRESS_AUTO = 0, PROGRESS_TTY, PROGRESS_PLAIN, PROGRESS_OFF };

enum progress_phase {
    PROGRESS_TRAIN = 0,     /* step of steps done */
    PROGRESS_UPLOAD,        /* sent of total bytes sent */
    PROGRESS_UPLOAD_DONE,   /* all total bytes sent, in upload_s seconds */
};

struct progress_state {
    uint64_t round, rounds;     /* rounds: the experiment's total (0: unknown) */
    enum progress_phase phase;
    int step, steps;            /* steps done in this round, of steps */
    double tokens_per_s;        /* < 0: unknown */
    double loss;                /* the last step's training loss (NaN: none yet) */
    double eta_s;               /* seconds left in the round's training (< 0: unknown) */
    uint64_t sent, total;       /* upload bytes */
    double upload_s;            /* seconds the upload has taken */
};

/* "auto", "tty", "plain" or "off": 0 and *out, or -1 (out untouched). */
int progress_mode_parse(const char *s, enum progress_mode *out);
/* AUTO resolves to TTY when stderr_is_tty, else PLAIN; the others stay as they are. */
enum progress_mode progress_mode_resolve(enum progress_mode m, int stderr_is_tty);

/* Writes the line for s into buf (always NUL-terminated when cap > 0, truncated to
 * cap - 1 bytes), without a newline or escape codes; returns strlen(buf). Layout:
 *   train:  "round 3/12  step 40/100 (40%)  loss 4.1234  5210 tok/s  ETA 0:12"
 *   upload: "round 3/12  step 100/100  loss 3.9000  upload 1.2/2.5 MB (48%)"
 *   done:   "round 3/12  step 100/100  loss 3.9000  uploaded 2.5 MB in 0.31 s"
 * Unknown values read "-" (loss, tok/s) or "?" (ETA); rounds 0 shows "round 3". */
size_t progress_render(const struct progress_state *s, char *buf, size_t cap);

/* The reporter's memory between updates. Zero it at each round's start
 * (progress_begin does). */
struct progress {
    enum progress_mode mode;    /* resolved: TTY, PLAIN or OFF */
    int drawn;                  /* something drawn this round */
    int64_t last_ms;            /* when the last line was drawn */
    int last_tenth;             /* PLAIN: the last tenth of the steps logged */
    enum progress_phase last_phase;
};

/* Whether an update with s at now_ms should be drawn, given what p drew before: OFF
 * never; TTY on the first update, a phase change, the last step, upload done, or
 * PROGRESS_TTY_INTERVAL_MS after the last line; PLAIN when the steps cross a new tenth,
 * at upload done, or PROGRESS_PLAIN_INTERVAL_MS after the last line (not upload chunks
 * otherwise). Pure: progress_mark records a drawn line. */
int progress_due(const struct progress *p, const struct progress_state *s, int64_t now_ms);
void progress_mark(struct progress *p, const struct progress_state *s, int64_t now_ms);

/* The worker's side (I/O): mode resolved against isatty(STDERR_FILENO). */
void progress_init(struct progress *p, enum progress_mode m);
void progress_begin(struct progress *p);        /* a new round */
/* Draws s when progress_due says so: TTY "\r\033[K<line>" on stderr, PLAIN log_info. */
void progress_update(struct progress *p, const struct progress_state *s);
/* Ends the live line (TTY: a newline) if one is up; the round's failure paths call it. */
void progress_end(struct progress *p);

#endif
