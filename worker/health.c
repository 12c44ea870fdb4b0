#include "worker/health.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/timeutil.h"

static char health_path[PATH_MAX];
static const char *last_phase;
static int64_t last_write_ms;
static int write_failed_logged;

static void health_write(const char *phase, int64_t away_since_ms)
{
    int64_t now_ms = time_now_unix_ms(), mono = time_mono_ms();
    int64_t away_s = away_since_ms ? (now_ms - (mono - away_since_ms)) / 1000 : 0;
    char buf[256];
    int n = snprintf(buf, sizeof buf, "aulac-worker-health v1\npid: %ld\nphase: %s\nbeat: %" PRId64
                     "\naway_since: %" PRId64 "\n", (long)getpid(), phase, now_ms / 1000, away_s);
    int rc = file_write_atomic(health_path, buf, (size_t)n, 0600);
    if (rc != 0) {
        if (!write_failed_logged)
            log_warn("cannot write the health file %s: %s (aulac-worker --check-health will "
                     "call this worker unhealthy)", health_path, strerror(-rc));
        write_failed_logged = 1;
        return;
    }
    write_failed_logged = 0;
    last_phase = phase;
    last_write_ms = mono;
}

void health_start(const char *state_dir)
{
    health_path[0] = 0;
    last_phase = NULL;
    last_write_ms = 0;
    if (!state_dir || !state_dir[0])
        return;
    snprintf(health_path, sizeof health_path, "%s/%s", state_dir, HEALTH_FILE);
    health_write("waiting", 0);
}

void health_beat(const char *phase, int64_t away_since_ms)
{
    if (!health_path[0])
        return;
    if (last_phase && strcmp(last_phase, phase) == 0 &&
        time_mono_ms() - last_write_ms < HEALTH_BEAT_MS)
        return;
    health_write(phase, away_since_ms);
}

void health_stop(void)
{
    if (!health_path[0])
        return;
    health_write("stopped", 0);
    health_path[0] = 0;
}

int health_parse(const char *text, struct health_report *r)
{
    memset(r, 0, sizeof *r);
    long long beat = 0, away = 0;
    int n = sscanf(text, "aulac-worker-health v1\npid: %ld\nphase: %15s\nbeat: %lld\n"
                   "away_since: %lld", &r->pid, r->phase, &beat, &away);
    if (n != 4 || beat <= 0 || away < 0)
        return -1;
    r->beat_s = beat;
    r->away_since_s = away;
    return 0;
}

int health_judge(const struct health_report *r, int64_t now_s, int max_age_s, char *msg,
                 size_t cap)
{
    int64_t age = now_s - r->beat_s;
    if (strcmp(r->phase, "stopped") == 0) {
        snprintf(msg, cap, "unhealthy: the worker (pid %ld) stopped %" PRId64 " s ago", r->pid,
                 age);
        return 1;
    }
    if (age > max_age_s) {
        snprintf(msg, cap, "unhealthy: the worker (pid %ld) has not reported for %" PRId64
                 " s (more than %d; last phase %s): stuck, or gone", r->pid, age, max_age_s,
                 r->phase);
        return 1;
    }
    if (r->away_since_s > 0 && now_s - r->away_since_s > max_age_s) {
        snprintf(msg, cap, "unhealthy: the coordinator has not answered worker pid %ld for "
                 "%" PRId64 " s (more than %d)", r->pid, now_s - r->away_since_s, max_age_s);
        return 1;
    }
    if (r->away_since_s > 0)
        snprintf(msg, cap, "healthy: pid %ld, coordinator away for %" PRId64 " s, last report %"
                 PRId64 " s ago", r->pid, now_s - r->away_since_s, age);
    else
        snprintf(msg, cap, "healthy: pid %ld %s, last report %" PRId64 " s ago", r->pid,
                 r->phase, age < 0 ? 0 : age);
    return 0;
}

int health_check(const char *state_dir, int max_age_s, char *msg, size_t cap)
{
    char path[PATH_MAX], why[128];
    snprintf(path, sizeof path, "%s/%s", state_dir, HEALTH_FILE);
    uint8_t *buf;
    size_t len;
    if (file_read_all_why(path, 4096, &buf, &len, why, sizeof why) != 0) {
        snprintf(msg, cap, "unhealthy: cannot read %s: %s (is a worker running with "
                 "--state-dir %s?)", path, why, state_dir);
        return 1;
    }
    struct health_report r;
    int bad = health_parse((const char *)buf, &r);   /* (file_read_all ends it with a NUL) */
    free(buf);
    if (bad) {
        snprintf(msg, cap, "unhealthy: %s is not an aulac-worker health file", path);
        return 1;
    }
    return health_judge(&r, time_now_unix_ms() / 1000, max_age_s, msg, cap);
}
