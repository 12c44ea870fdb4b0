/* worker/progress.{h,c}: the round progress line's text, its rate, and what the terminal
 * and a log file receive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/progress.h"

static struct progress_state training(int step, int steps)
{
    struct progress_state s = { .round = 3, .rounds = 12, .phase = PROGRESS_TRAIN,
                                .step = step, .steps = steps, .tokens_per_s = 5210.4,
                                .loss = 4.12341, .eta_s = 72.4 };
    return s;
}

static void renders_training_upload_and_done(void **state)
{
    (void)state;
    char b[256];
    struct progress_state s = training(40, 100);
    size_t n = progress_render(&s, b, sizeof b);
    assert_int_equal(n, strlen(b));
    assert_string_equal(b, "round 3/12  step 40/100 (40%)  loss 4.1234  5210 tok/s  ETA 1:12");
    s.eta_s = 3725;
    progress_render(&s, b, sizeof b);
    assert_string_equal(b, "round 3/12  step 40/100 (40%)  loss 4.1234  5210 tok/s  ETA 1:02:05");

    s = training(100, 100);
    s.loss = 3.9;
    s.phase = PROGRESS_UPLOAD;
    s.sent = 1200000;
    s.total = 2500000;
    progress_render(&s, b, sizeof b);
    assert_string_equal(b, "round 3/12  step 100/100  loss 3.9000  upload 1.2/2.5 MB (48%)");
    s.sent = 300;
    s.total = 900;
    progress_render(&s, b, sizeof b);
    assert_string_equal(b, "round 3/12  step 100/100  loss 3.9000  upload 300/900 B (33%)");
    s.sent = 5000;   /* never more than total */
    s.total = 4096;
    progress_render(&s, b, sizeof b);
    assert_string_equal(b, "round 3/12  step 100/100  loss 3.9000  upload 4.1/4.1 kB (100%)");

    s.phase = PROGRESS_UPLOAD_DONE;
    s.total = 2500000;
    s.upload_s = 0.3142;
    progress_render(&s, b, sizeof b);
    assert_string_equal(b, "round 3/12  step 100/100  loss 3.9000  uploaded 2.5 MB in 0.31 s");
}

static void unknown_values_and_truncation(void **state)
{
    (void)state;
    char b[256];
    struct progress_state s = { .round = 7, .phase = PROGRESS_TRAIN, .step = 0, .steps = 50,
                                .tokens_per_s = -1, .loss = NAN, .eta_s = -1 };
    progress_render(&s, b, sizeof b);
    assert_string_equal(b, "round 7  step 0/50 (0%)  loss -  - tok/s  ETA ?");
    s.steps = 0;   /* no division by zero */
    progress_render(&s, b, sizeof b);
    assert_string_equal(b, "round 7  step 0/0 (0%)  loss -  - tok/s  ETA ?");

    char small[12];
    s = training(40, 100);
    assert_int_equal(progress_render(&s, small, sizeof small), 11);
    assert_string_equal(small, "round 3/12 ");
    char one[1] = { 'x' };
    assert_int_equal(progress_render(&s, one, 1), 0);
    assert_int_equal(one[0], 0);
}

static void mode_names(void **state)
{
    (void)state;
    enum progress_mode m = PROGRESS_OFF;
    assert_int_equal(progress_mode_parse("auto", &m), 0);
    assert_int_equal(m, PROGRESS_AUTO);
    assert_int_equal(progress_mode_parse("tty", &m), 0);
    assert_int_equal(m, PROGRESS_TTY);
    assert_int_equal(progress_mode_parse("plain", &m), 0);
    assert_int_equal(m, PROGRESS_PLAIN);
    assert_int_equal(progress_mode_parse("off", &m), 0);
    assert_int_equal(m, PROGRESS_OFF);
    assert_int_equal(progress_mode_parse("TTY", &m), -1);
    assert_int_equal(progress_mode_parse("", &m), -1);
    assert_int_equal(m, PROGRESS_OFF);
    assert_int_equal(progress_mode_resolve(PROGRESS_AUTO, 1), PROGRESS_TTY);
    assert_int_equal(progress_mode_resolve(PROGRESS_AUTO, 0), PROGRESS_PLAIN);
    assert_int_equal(progress_mode_resolve(PROGRESS_PLAIN, 1), PROGRESS_PLAIN);
    assert_int_equal(progress_mode_resolve(PROGRESS_OFF, 1), PROGRESS_OFF);
}

/* Feeds steps 0..steps at step_ms apart, then upload chunks and done; counts lines drawn. */
static int drawn_lines(enum progress_mode mode, int steps, int step_ms, int *upload_lines)
{
    struct progress p = { .mode = mode };
    int64_t now = 1000000;
    p.last_ms = now;
    int n = 0;
    for (int i = 0; i <= steps; i++, now += step_ms) {
        struct progress_state s = training(i, steps);
        if (progress_due(&p, &s, now)) {
            progress_mark(&p, &s, now);
            n++;
        }
    }
    *upload_lines = 0;
    struct progress_state s = training(steps, steps);
    s.phase = PROGRESS_UPLOAD;
    s.total = 10 << 20;
    for (uint64_t sent = 0; sent <= s.total; sent += 1 << 20, now += 10) {
        s.sent = sent;
        if (progress_due(&p, &s, now)) {
            progress_mark(&p, &s, now);
            (*upload_lines)++;
        }
    }
    s.phase = PROGRESS_UPLOAD_DONE;
    if (progress_due(&p, &s, now)) {
        progress_mark(&p, &s, now);
        (*upload_lines)++;
    }
    return n;
}

static void rates(void **state)
{
    (void)state;
    int up;
    /* PLAIN: 1000 fast steps give one line per tenth; the upload one line at its end. */
    assert_int_equal(drawn_lines(PROGRESS_PLAIN, 1000, 1, &up), 10);
    assert_int_equal(up, 1);
    /* PLAIN, slow steps (10 steps of 70 s): every tenth and no more (each is > 30 s). */
    assert_int_equal(drawn_lines(PROGRESS_PLAIN, 10, 70000, &up), 10);
    /* PLAIN, 4 steps of 100 s: a tenth crossed at each (25%, 50%, ...) = 4 lines. */
    assert_int_equal(drawn_lines(PROGRESS_PLAIN, 4, 100000, &up), 4);
    /* PLAIN, 1000 steps at 100 ms (100 s): tenths every 10 s, no extra interval lines. */
    assert_int_equal(drawn_lines(PROGRESS_PLAIN, 1000, 100, &up), 10);
    /* TTY: 1000 steps 1 ms apart (1 s): the first, one per 250 ms, and the last step;
     * at most a few a second. */
    int n = drawn_lines(PROGRESS_TTY, 1000, 1, &up);
    assert_in_range(n, 5, 6);
    /* the upload: its first chunk (phase change), then 250 ms apart (11 chunks 10 ms
     * apart: none), and done. */
    assert_int_equal(up, 2);
    assert_int_equal(drawn_lines(PROGRESS_OFF, 1000, 1, &up), 0);
    assert_int_equal(up, 0);

    /* PLAIN: a slow round whose tenth is not reached in 30 s still logs every 30 s. */
    struct progress p = { .mode = PROGRESS_PLAIN, .last_ms = 0 };
    struct progress_state s = training(1, 1000);
    assert_false(progress_due(&p, &s, PROGRESS_PLAIN_INTERVAL_MS - 1));
    assert_true(progress_due(&p, &s, PROGRESS_PLAIN_INTERVAL_MS));
    progress_mark(&p, &s, PROGRESS_PLAIN_INTERVAL_MS);
    s.step = 2;
    assert_false(progress_due(&p, &s, PROGRESS_PLAIN_INTERVAL_MS + 1000));
    assert_true(progress_due(&p, &s, 2 * PROGRESS_PLAIN_INTERVAL_MS));
}

/* stderr into a pipe for the I/O side; returns the read end, *saved the old stderr. */
static int capture_stderr(int *saved)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    *saved = dup(STDERR_FILENO);
    assert_true(*saved >= 0);
    assert_int_equal(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    close(fds[1]);
    return fds[0];
}

static size_t release_stderr(int rd, int saved, char *buf, size_t cap)
{
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(rd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(rd);
    return n;
}

static void tty_output_rewrites_in_place_and_logs_erase_it(void **state)
{
    (void)state;
    int saved, rd = capture_stderr(&saved);
    struct progress p;
    progress_init(&p, PROGRESS_TTY);
    assert_int_equal(p.mode, PROGRESS_TTY);
    progress_begin(&p);
    struct progress_state s = training(0, 10);
    s.loss = NAN;
    progress_update(&p, &s);   /* drawn: the first */
    s = training(1, 10);
    progress_update(&p, &s);   /* not drawn: within 250 ms */
    log_info("a message");     /* erases the live line */
    s = training(10, 10);
    progress_update(&p, &s);   /* the last step: drawn */
    s.phase = PROGRESS_UPLOAD_DONE;
    s.total = 2000;
    s.upload_s = 0.5;
    progress_update(&p, &s);   /* done: drawn, with a newline */
    progress_end(&p);          /* nothing more: the line ended */
    char out[2048];
    release_stderr(rd, saved, out, sizeof out);
    assert_true(strncmp(out, "\r\033[Kround 3/12  step 0/10 (0%)  loss -  5210 tok/s", 46) == 0);
    const char *log = strstr(out, "\r\033[K20");   /* the log line's timestamp */
    assert_non_null(log);
    assert_non_null(strstr(log, "info: a message\n"));
    const char *last = strstr(log, "\r\033[Kround 3/12  step 10/10 (100%)");
    assert_non_null(last);
    assert_non_null(strstr(last, "\r\033[Kround 3/12  step 10/10  loss 4.1234  uploaded 2.0 kB "
                                 "in 0.50 s\n"));
    assert_null(strstr(out, "step 1/10"));
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_int_equal(out[strlen(out) - 2], 's');   /* progress_end added no empty line */
    assert_false(log_live_line());

    /* a round that fails mid-way: progress_end ends the live line. */
    rd = capture_stderr(&saved);
    progress_begin(&p);
    s = training(4, 10);
    progress_update(&p, &s);
    assert_true(log_live_line());
    progress_end(&p);
    release_stderr(rd, saved, out, sizeof out);
    assert_string_equal(out, "\r\033[Kround 3/12  step 4/10 (40%)  loss 4.1234  5210 tok/s  "
                             "ETA 1:12\n");
    assert_false(log_live_line());
}

static void plain_output_is_log_lines(void **state)
{
    (void)state;
    int saved, rd = capture_stderr(&saved);
    struct progress p;
    progress_init(&p, PROGRESS_PLAIN);
    progress_begin(&p);
    for (int i = 0; i <= 20; i++) {
        struct progress_state s = training(i, 20);
        progress_update(&p, &s);
    }
    struct progress_state s = training(20, 20);
    s.phase = PROGRESS_UPLOAD_DONE;
    s.total = 1500;
    s.upload_s = 0.02;
    progress_update(&p, &s);
    progress_end(&p);
    char out[8192];
    release_stderr(rd, saved, out, sizeof out);
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\033'));
    int lines = 0;
    for (const char *q = out; (q = strstr(q, " info: progress: round 3/12  ")); q++)
        lines++;
    assert_int_equal(lines, 11);   /* steps 2, 4, ..., 20 and the upload's end */
    assert_non_null(strstr(out, "progress: round 3/12  step 2/20 (10%)  loss 4.1234"));
    assert_non_null(strstr(out, "progress: round 3/12  step 20/20  loss 4.1234  uploaded "
                                "1.5 kB in 0.02 s\n"));
    assert_null(strstr(out, "step 3/20"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(renders_training_upload_and_done),
        cmocka_unit_test(unknown_values_and_truncation),
        cmocka_unit_test(mode_names),
        cmocka_unit_test(rates),
        cmocka_unit_test(tty_output_rewrites_in_place_and_logs_erase_it),
        cmocka_unit_test(plain_output_is_log_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
