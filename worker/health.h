#ifndef AULAC_WORKER_HEALTH_H
#define AULAC_WORKER_HEALTH_H
/* The worker's health file, for container healthchecks and monitoring
 * (aulac-worker --check-health; docker/compose.yaml, docs/OPERATIONS.md).
 *
 * While it runs, a worker with a --state-dir keeps STATE_DIR/health, rewritten whole
 * (file_write_atomic, mode 0600) when its phase changes and otherwise at most every
 * HEALTH_BEAT_MS, from the points its loop passes through: each task poll (a long poll
 * returns within 20 s), each training step, each chunk of a model download or upload,
 * and each retry while the coordinator is away. Text, one field a line:
 *
 *   aulac-worker-health v1
 *   pid: 4242
 *   phase: waiting          (waiting, training, downloading, uploading, away, stopped)
 *   beat: 1764754000        (unix seconds of this write)
 *   away_since: 0           (unix seconds since the coordinator stopped answering; 0: it answers)
 *
 * The check (health_judge) calls the worker healthy when the last beat is at most
 * max_age_s old and, if the coordinator is away, it has been away at most max_age_s;
 * unhealthy when the file is missing or unreadable, the phase is "stopped" (the worker
 * exited), the beat is older (the worker is stuck, or gone without writing "stopped")
 * or the coordinator has been away longer. */
#include <stddef.h>
#include <stdint.h>

#define HEALTH_FILE            "health"
#define HEALTH_BEAT_MS         10000
#define HEALTH_DEFAULT_MAX_AGE 120     /* seconds */

/* The worker's side. One worker per process: the file's path is process state, set by
 * health_start (NULL or "" state_dir: no file, every call below does nothing). Called
 * from the worker's main thread only. */
void health_start(const char *state_dir);
/* phase: a static string (above); away_since_ms: the monotonic time the coordinator
 * stopped answering (0: it answers). Writes when the phase changed or HEALTH_BEAT_MS
 * passed since the last write; a failed write is logged once and retried at the next. */
void health_beat(const char *phase, int64_t away_since_ms);
/* Writes phase "stopped" and forgets the path. */
void health_stop(void);

/* The check's side: pure parse and verdict, and the file read. */
struct health_report {
    long pid;
    char phase[16];
    int64_t beat_s;
    int64_t away_since_s;
};
/* 0 and *r from the file's text, or -1 when it is not a v1 health file. */
int health_parse(const char *text, struct health_report *r);
/* 0 healthy, 1 unhealthy; a one-line reason (or the state, when healthy) in msg. */
int health_judge(const struct health_report *r, int64_t now_s, int max_age_s, char *msg,
                 size_t cap);
/* Reads STATE_DIR/health and judges it now: 0 healthy, 1 unhealthy, with the line in
 * msg (a missing or unreadable file names the path and why). */
int health_check(const char *state_dir, int max_age_s, char *msg, size_t cap);

#endif
