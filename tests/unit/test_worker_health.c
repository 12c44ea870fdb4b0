/* worker/health.{h,c}: the worker's health file (aulac-worker --check-health): its text,
 * the verdict on it, and the worker's side writing it at phase changes and beats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/timeutil.h"
#include "worker/health.h"

static const char good[] = "aulac-worker-health v1\npid: 4242\nphase: training\nbeat: 1000\n"
                           "away_since: 0\n";

static void parses_the_file(void **state)
{
    (void)state;
    struct health_report r;
    assert_int_equal(health_parse(good, &r), 0);
    assert_int_equal(r.pid, 4242);
    assert_string_equal(r.phase, "training");
    assert_int_equal(r.beat_s, 1000);
    assert_int_equal(r.away_since_s, 0);
    assert_int_equal(health_parse("aulac-worker-health v1\npid: 1\nphase: away\nbeat: 900\n"
                                  "away_since: 850\n", &r), 0);
    assert_int_equal(r.away_since_s, 850);
    /* not a health file, another version, a field missing, a beat of 0 */
    assert_int_equal(health_parse("", &r), -1);
    assert_int_equal(health_parse("aulac-worker-health v2\npid: 1\nphase: waiting\nbeat: 9\n"
                                  "away_since: 0\n", &r), -1);
    assert_int_equal(health_parse("aulac-worker-health v1\npid: 1\nphase: waiting\nbeat: 9\n",
                                  &r), -1);
    assert_int_equal(health_parse("aulac-worker-health v1\npid: 1\nphase: waiting\nbeat: 0\n"
                                  "away_since: 0\n", &r), -1);
}

static void judges_age_stop_and_absence_of_the_coordinator(void **state)
{
    (void)state;
    char msg[512];
    struct health_report r;
    assert_int_equal(health_parse(good, &r), 0);
    assert_int_equal(health_judge(&r, 1000 + 120, 120, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "healthy: pid 4242 training"));
    assert_int_equal(health_judge(&r, 1000 + 121, 120, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "has not reported for 121 s"));

    strcpy(r.phase, "stopped");
    assert_int_equal(health_judge(&r, 1001, 120, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "stopped"));

    strcpy(r.phase, "away");
    r.away_since_s = 950;   /* away 50 s at 1000: still healthy; 171 s at 1121: not */
    assert_int_equal(health_judge(&r, 1000, 120, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "coordinator away for 50 s"));
    r.beat_s = 1100;
    assert_int_equal(health_judge(&r, 1101, 120, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "the coordinator has not answered"));
}

static char dir[] = "/tmp/aulac-health-test.XXXXXX";

static void worker_side_writes_and_check_reads(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    char path[512], msg[512];
    snprintf(path, sizeof path, "%s/health", dir);

    /* no worker has run: unhealthy, naming the file */
    assert_int_equal(health_check(dir, 120, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, path));

    health_start(dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(health_check(dir, 120, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "waiting"));

    /* the same phase within HEALTH_BEAT_MS is not written again; a new phase is */
    unlink(path);
    health_beat("waiting", 0);
    assert_int_equal(file_exists(path), 0);
    health_beat("training", 0);
    assert_int_equal(file_exists(path), 1);
    assert_int_equal(health_check(dir, 120, msg, sizeof msg), 0);
    assert_non_null(strstr(msg, "training"));

    /* away for 5 s (monotonic): the file says since when, in wall-clock seconds */
    health_beat("away", time_mono_ms() - 5000);
    uint8_t *buf;
    size_t len;
    assert_int_equal(file_read_all(path, 4096, &buf, &len), 0);
    struct health_report r;
    assert_int_equal(health_parse((const char *)buf, &r), 0);
    free(buf);
    int64_t now = time_now_unix_ms() / 1000;
    assert_string_equal(r.phase, "away");
    assert_true(r.away_since_s >= now - 6 && r.away_since_s <= now - 4);
    assert_int_equal(r.pid, (long)getpid());
    assert_int_equal(health_check(dir, 120, msg, sizeof msg), 0);
    assert_int_equal(health_check(dir, 2, msg, sizeof msg), 1);   /* away 5 s > 2 s */

    health_stop();
    assert_int_equal(health_check(dir, 120, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "stopped"));
    health_beat("training", 0);   /* after stop: nothing written */
    assert_int_equal(health_check(dir, 120, msg, sizeof msg), 1);

    /* garbage in the file */
    assert_int_equal(file_write_atomic(path, "hello\n", 6, 0600), 0);
    assert_int_equal(health_check(dir, 120, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "not an aulac-worker health file"));
    unlink(path);
    rmdir(dir);
}

static void no_state_dir_writes_nothing(void **state)
{
    (void)state;
    health_start(NULL);
    health_beat("training", 0);
    health_stop();
    health_start("");
    health_beat("training", 0);
    health_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_the_file),
        cmocka_unit_test(judges_age_stop_and_absence_of_the_coordinator),
        cmocka_unit_test(worker_side_writes_and_check_reads),
        cmocka_unit_test(no_state_dir_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
