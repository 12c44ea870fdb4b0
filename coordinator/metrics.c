/* The coordinator's Prometheus metrics (coordinator/HTTP.md, "Metrics", lists every
 * name, type and label). Event counters live here under m->mu, which is never held
 * while c->mu is taken: hooks may be called with c->mu held (order c->mu -> m->mu);
 * metrics_reply copies what it shows of the coordinator under c->mu, releases it, then
 * copies the counters under m->mu, and renders without any lock.
 *
 * Label cardinality is bounded: member labels are roster members (callers pass
 * METRICS_MEMBER_UNKNOWN for anyone else), at most METRICS_MAX_MEMBERS of them, the rest
 * counted under METRICS_MEMBER_OTHER; reasons come from a fixed vocabulary (reasons[]),
 * anything else counted as "other". */
#include "coordinator/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "coordinator/coord.h"
#include "coordinator/http.h"
#include "coordinator/queue.h"
#include "privacy/rdp.h"

/* The rejection reasons (HTTP.md lists what each means); the last is the catch-all. */
static const char *const reasons[] = {
    "malformed", "auth", "unknown_member", "signature", "duplicate", "no_experiment",
    "not_eligible", "policy", "round", "base_model", "payload", "truncated", "invalid_update",
    "removed", "other",
};
#define N_REASONS (sizeof reasons / sizeof reasons[0])

/* Upload payload sizes (bytes): powers of 4 from 1 KiB to 1 GiB. */
static const double bytes_buckets[] = {
    1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456,
    1073741824,
};
#define N_BYTES_BUCKETS (sizeof bytes_buckets / sizeof bytes_buckets[0])

/* Round durations (seconds): from a second (tests, demos) to a day. */
static const double round_buckets[] = {
    1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400,
};
#define N_ROUND_BUCKETS (sizeof round_buckets / sizeof round_buckets[0])

struct histogram {
    uint64_t count;                 /* observations */
    double sum;
    uint64_t le[16];                /* per bucket (not cumulative; rendered cumulative) */
};

struct member_row {
    char id[METRICS_MEMBER_LABEL_MAX + 1];
    uint64_t accepted, rejected;
    uint64_t reasons[N_REASONS];
    int64_t last_seen_ms;           /* 0: not seen since the coordinator started */
};

struct coord_metrics {
    pthread_mutex_t mu;
    struct member_row *rows;        /* n_rows of METRICS_MAX_MEMBERS + 1 (the last: other) */
    size_t n_rows;
    struct histogram upload_bytes, round_seconds;
    uint64_t rounds_closed;
    uint64_t round_updates_closed;  /* updates the closed rounds had, in all */
    uint64_t close_failures;        /* closes abandoned on a storage failure */
};

struct coord_metrics *metrics_new(void)
{
    struct coord_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->rows = calloc(METRICS_MAX_MEMBERS + 1, sizeof *m->rows);
    if (!m->rows) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(struct coord_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->rows);
    free(m);
}

const char *metrics_reason_label(const char *reason)
{
    for (size_t i = 0; reason && i < N_REASONS; i++)
        if (strcmp(reason, reasons[i]) == 0)
            return reasons[i];
    return "other";
}

static size_t reason_index(const char *reason)
{
    for (size_t i = 0; i < N_REASONS; i++)
        if (strcmp(reason, reasons[i]) == 0)
            return i;
    return N_REASONS - 1;
}

/* The member's row, added when new; past METRICS_MAX_MEMBERS rows, the shared
 * METRICS_MEMBER_OTHER row. m->mu held. */
static struct member_row *row_locked(struct coord_metrics *m, const char *member)
{
    if (!member || !member[0] || strlen(member) > METRICS_MEMBER_LABEL_MAX)
        member = METRICS_MEMBER_UNKNOWN;
    for (size_t i = 0; i < m->n_rows; i++)
        if (strcmp(m->rows[i].id, member) == 0)
            return &m->rows[i];
    if (m->n_rows < METRICS_MAX_MEMBERS) {
        struct member_row *r = &m->rows[m->n_rows++];
        snprintf(r->id, sizeof r->id, "%s", member);
        return r;
    }
    struct member_row *other = &m->rows[METRICS_MAX_MEMBERS];
    if (!other->id[0])
        snprintf(other->id, sizeof other->id, "%s", METRICS_MEMBER_OTHER);
    return other;
}

static void observe(struct histogram *h, const double *bounds, size_t n, double v)
{
    h->count++;
    h->sum += v;
    for (size_t i = 0; i < n; i++)
        if (v <= bounds[i]) {
            h->le[i]++;
            return;
        }
    /* above the last bound: only +Inf (count) holds it */
}

void metrics_upload(struct coord_metrics *m, const char *member, uint64_t bytes,
                    const char *rejected_reason)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    struct member_row *r = row_locked(m, member);
    if (rejected_reason) {
        r->rejected++;
        r->reasons[reason_index(rejected_reason)]++;
    } else {
        r->accepted++;
        observe(&m->upload_bytes, bytes_buckets, N_BYTES_BUCKETS, (double)bytes);
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_round_closed(struct coord_metrics *m, double seconds, size_t n)
{
    if (!m)
        return;
    if (!(seconds >= 0) || !isfinite(seconds))   /* a clock step: not a duration */
        seconds = 0;
    pthread_mutex_lock(&m->mu);
    m->rounds_closed++;
    m->round_updates_closed += n;
    observe(&m->round_seconds, round_buckets, N_ROUND_BUCKETS, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_close_failed(struct coord_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->close_failures++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_member_seen(struct coord_metrics *m, const char *member, int64_t unix_ms)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    struct member_row *r = row_locked(m, member);
    if (unix_ms > r->last_seen_ms)
        r->last_seen_ms = unix_ms;
    pthread_mutex_unlock(&m->mu);
}

/* --- rendering ------------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value as the text exposition format wants it: \ " and newline escaped. */
static void put_label(struct buf *b, const char *v)
{
    char tmp[2 * (METRICS_MEMBER_LABEL_MAX + POLICY_NAME_MAX) + 8];
    size_t o = 0;
    for (const char *s = v; *s && o + 3 < sizeof tmp; s++) {
        if (*s == '\\' || *s == '"') {
            tmp[o++] = '\\';
            tmp[o++] = *s;
        } else if (*s == '\n') {
            tmp[o++] = '\\';
            tmp[o++] = 'n';
        } else {
            tmp[o++] = *s;
        }
    }
    tmp[o] = 0;
    put(b, "%s", tmp);
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample value: integers exactly, others in the fewest digits that read back exactly. */
static void put_double(struct buf *b, double v)
{
    if (isnan(v))
        put(b, "NaN");
    else if (isinf(v))
        put(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        put(b, "%.0f", v);
    else {
        /* the shortest of 15..17 significant digits that reads back as v */
        char t[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, v);
            if (strtod(t, NULL) == v)
                break;
        }
        put(b, "%s", t);
    }
}

static void put_histogram(struct buf *b, const char *name, const struct histogram *h,
                          const double *bounds, size_t n)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += h->le[i];
        put(b, "%s_bucket{le=\"", name);
        put_double(b, bounds[i]);
        put(b, "\"} %" PRIu64 "\n", cum);
    }
    put(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum ", name, h->count, name);
    put_double(b, h->sum);
    put(b, "\n%s_count %" PRIu64 "\n", name, h->count);
}

/* What metrics_reply shows of the coordinator, copied under c->mu. */
struct coord_view {
    char experiment[COORD_EXPERIMENT_MAX + 1];
    char policy_name[POLICY_NAME_MAX + 1];
    enum coord_exp_state state;
    uint64_t round, total_rounds, closed_rounds;
    size_t updates, eligible;
    int64_t deadline_ms;
    struct policy_privacy privacy;
    struct member_stats *members;   /* n_members, malloc'd */
    size_t n_members;
    struct datadir_usage disk;
    int close_failing;              /* a close abandoned on storage waits for its retry */
};

static int view_copy(struct coord *c, struct coord_view *v)
{
    memset(v, 0, sizeof *v);
    pthread_mutex_lock(&c->mu);
    snprintf(v->experiment, sizeof v->experiment, "%s", c->experiment);
    snprintf(v->policy_name, sizeof v->policy_name, "%s",
             c->state == EXP_IDLE ? "" : c->policy.metadata.name);
    v->state = c->state;
    if (c->state != EXP_IDLE) {
        v->round = c->rnd.number;
        v->total_rounds = c->total_rounds;
        v->closed_rounds = c->rnd.base ? c->rnd.base->round : 0;
        v->updates = c->rnd.n_accepted;
        v->eligible = c->n_eligible;
        v->deadline_ms = c->rnd.deadline_ms;
        v->privacy = c->policy.privacy;
    }
    v->disk = c->disk;
    v->close_failing = c->storage_error[0] != 0;
    v->n_members = c->roster.n_members;
    v->members = calloc(v->n_members + 1, sizeof *v->members);
    if (v->members && c->members)
        memcpy(v->members, c->members, v->n_members * sizeof *v->members);
    pthread_mutex_unlock(&c->mu);
    return v->members ? 0 : COORD_ERR_NOMEM;
}

/* process_* from /proc/self, as the official Prometheus client libraries name them. */
static void put_process(struct buf *b)
{
    FILE *f = fopen("/proc/self/stat", "r");
    char line[1024];
    int have_stat = 0;
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    if (f) {
        if (fgets(line, sizeof line, f)) {
            /* after "pid (comm) ": fields 3.. ; comm may hold spaces and ')' */
            char *p = strrchr(line, ')');
            if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                            "%*d %*d %*d %*d %*d %*d %llu %llu %lld", &utime, &stime, &start,
                            &vsize, &rss) == 5)
                have_stat = 1;
        }
        fclose(f);
    }
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    double btime = -1;
    if ((f = fopen("/proc/stat", "r"))) {
        while (fgets(line, sizeof line, f)) {
            unsigned long long bt;
            if (sscanf(line, "btime %llu", &bt) == 1) {
                btime = (double)bt;
                break;
            }
        }
        fclose(f);
    }
    if (have_stat && ticks > 0) {
        head(b, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.");
        put(b, "process_cpu_seconds_total ");
        put_double(b, (double)(utime + stime) / (double)ticks);
        put(b, "\n");
        head(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        put(b, "process_virtual_memory_bytes %llu\n", vsize);
        if (page > 0) {
            head(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
            put(b, "process_resident_memory_bytes %lld\n", rss * (long long)page);
        }
        if (btime >= 0) {
            head(b, "process_start_time_seconds", "gauge",
                 "Start time of the process since unix epoch in seconds.");
            put(b, "process_start_time_seconds ");
            put_double(b, btime + (double)start / (double)ticks);
            put(b, "\n");
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        head(b, "process_open_fds", "gauge", "Number of open file descriptors.");
        put(b, "process_open_fds %ld\n", n - 1);   /* less the one opendir holds */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        head(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        if (rl.rlim_cur == RLIM_INFINITY)
            put(b, "process_max_fds +Inf\n");
        else
            put(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

static const char *const state_names[] = { "idle", "running", "finished", "failed",
                                           "cancelled" };

int metrics_render(struct coord *c, struct coord_metrics *mm, char **out, size_t *len)
{
    struct coord_view v;
    if (view_copy(c, &v) != 0)
        return COORD_ERR_NOMEM;
    size_t queued = 0;
    int have_queue = queue_length(c, &queued) == 0;
    uint64_t ledger_entries = 0;
    int have_ledger = c->ledger && ledger_size(c->ledger, &ledger_entries) == 0;
    double epsilon = NAN;
    if (v.privacy.enabled && v.closed_rounds > 0 &&
        rdp_epsilon(1.0, v.privacy.noise_multiplier, v.closed_rounds, v.privacy.delta,
                    &epsilon) != 0)
        epsilon = NAN;

    /* The counters, copied under m->mu (no c->mu held). */
    struct coord_metrics m = { 0 };
    struct member_row *rows = calloc(METRICS_MAX_MEMBERS + 1, sizeof *rows);
    if (!rows) {
        free(v.members);
        return COORD_ERR_NOMEM;
    }
    int have_other = 0;
    if (mm) {
        pthread_mutex_lock(&mm->mu);
        m.n_rows = mm->n_rows;
        m.upload_bytes = mm->upload_bytes;
        m.round_seconds = mm->round_seconds;
        m.rounds_closed = mm->rounds_closed;
        m.round_updates_closed = mm->round_updates_closed;
        m.close_failures = mm->close_failures;
        memcpy(rows, mm->rows, (METRICS_MAX_MEMBERS + 1) * sizeof *rows);
        pthread_mutex_unlock(&mm->mu);
        have_other = rows[METRICS_MAX_MEMBERS].id[0] != 0;
    }
    if (have_other)
        rows[m.n_rows++] = rows[METRICS_MAX_MEMBERS];

    struct buf b = { .cap = 16384 };
    b.p = malloc(b.cap);
    if (!b.p) {
        free(rows);
        free(v.members);
        return COORD_ERR_NOMEM;
    }
    b.p[0] = 0;

    /* --- the experiment and its open round --- */
    head(&b, "aulac_experiment_info", "gauge",
         "The loaded experiment (value 1): its id and its policy's metadata.name.");
    if (v.state != EXP_IDLE) {
        put(&b, "aulac_experiment_info{experiment=\"");
        put_label(&b, v.experiment);
        put(&b, "\",policy=\"");
        put_label(&b, v.policy_name);
        put(&b, "\"} 1\n");
    }
    head(&b, "aulac_experiment_state", "gauge",
         "The loaded experiment's state: 1 for the state it is in, 0 for the others.");
    for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
        put(&b, "aulac_experiment_state{state=\"%s\"} %d\n", state_names[i],
            (int)v.state == (int)i);
    head(&b, "aulac_experiment_rounds", "gauge", "Rounds the loaded experiment's policy runs.");
    put(&b, "aulac_experiment_rounds %" PRIu64 "\n", v.total_rounds);
    head(&b, "aulac_experiments_queued", "gauge", "Approved experiments waiting to run.");
    if (have_queue)
        put(&b, "aulac_experiments_queued %zu\n", queued);
    head(&b, "aulac_round", "gauge",
         "The open round of the loaded experiment (1-based; 0 when none is loaded; past "
         "aulac_experiment_rounds once it finished).");
    put(&b, "aulac_round %" PRIu64 "\n", v.round);
    head(&b, "aulac_rounds_completed", "gauge", "Rounds the loaded experiment has closed.");
    put(&b, "aulac_rounds_completed %" PRIu64 "\n", v.closed_rounds);
    head(&b, "aulac_round_updates", "gauge", "Updates accepted in the open round.");
    put(&b, "aulac_round_updates %zu\n", v.updates);
    head(&b, "aulac_round_eligible_members", "gauge",
         "Members that take part in the loaded experiment (the open round waits for them).");
    put(&b, "aulac_round_eligible_members %zu\n", v.eligible);
    head(&b, "aulac_round_deadline_timestamp_seconds", "gauge",
         "When the open round's deadline passes (unix seconds; 0: no deadline or no round).");
    put(&b, "aulac_round_deadline_timestamp_seconds ");
    put_double(&b, v.state == EXP_RUNNING ? (double)v.deadline_ms / 1000.0 : 0);
    put(&b, "\n");
    if (v.privacy.enabled) {
        head(&b, "aulac_privacy_epsilon", "gauge",
             "Differential privacy spent by the loaded experiment's closed rounds (epsilon "
             "at aulac_privacy_delta, RDP accountant).");
        put(&b, "aulac_privacy_epsilon ");
        put_double(&b, v.closed_rounds ? epsilon : 0);
        put(&b, "\n");
        head(&b, "aulac_privacy_delta", "gauge", "The delta epsilon is spent at.");
        put(&b, "aulac_privacy_delta ");
        put_double(&b, v.privacy.delta);
        put(&b, "\n");
        head(&b, "aulac_privacy_epsilon_target", "gauge",
             "The policy's privacy.target_epsilon (0: none).");
        put(&b, "aulac_privacy_epsilon_target ");
        put_double(&b, v.privacy.target_epsilon);
        put(&b, "\n");
    }
    head(&b, "aulac_ledger_entries", "gauge", "Entries in the ledger.");
    if (have_ledger)
        put(&b, "aulac_ledger_entries %" PRIu64 "\n", ledger_entries);
    head(&b, "aulac_round_close_failing", "gauge",
         "1 while a round close abandoned on a storage failure (disk full, LMDB map full, "
         "I/O error) waits for its retry; 0 otherwise.");
    put(&b, "aulac_round_close_failing %d\n", v.close_failing);
    if (v.disk.measured_ms) {   /* measured by the timer (coord_measure_disk) */
        head(&b, "aulac_data_dir_bytes", "gauge",
             "Bytes the data directory holds on disk, by kind (ledger: the LMDB files; "
             "checkpoints: models/; payloads: the payload store; experiment_files: outer "
             "state, downlink files; artifacts; spool: uploads in flight; other).");
        const struct { const char *k; uint64_t v; } kinds[] = {
            { "ledger", v.disk.ledger }, { "checkpoints", v.disk.checkpoints },
            { "payloads", v.disk.payloads }, { "experiment_files", v.disk.experiment_files },
            { "artifacts", v.disk.artifacts }, { "spool", v.disk.spool },
            { "other", v.disk.other },
        };
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            put(&b, "aulac_data_dir_bytes{kind=\"%s\"} %" PRIu64 "\n", kinds[i].k, kinds[i].v);
        head(&b, "aulac_data_dir_free_bytes", "gauge",
             "Bytes still available to the coordinator on the data directory's file system.");
        put(&b, "aulac_data_dir_free_bytes %" PRIu64 "\n", v.disk.free_bytes);
        head(&b, "aulac_data_dir_low_space", "gauge",
             "1 when the data directory's file system has under 10 GiB or under 5 % free.");
        put(&b, "aulac_data_dir_low_space %d\n", datadir_low(&v.disk));
    }

    /* --- events since the coordinator started --- */
    head(&b, "aulac_rounds_closed_total", "counter",
         "Rounds closed since the coordinator started.");
    put(&b, "aulac_rounds_closed_total %" PRIu64 "\n", m.rounds_closed);
    head(&b, "aulac_round_closed_updates_total", "counter",
         "Updates aggregated by the rounds closed since the coordinator started.");
    put(&b, "aulac_round_closed_updates_total %" PRIu64 "\n", m.round_updates_closed);
    head(&b, "aulac_round_close_failures_total", "counter",
         "Round closes abandoned on a storage failure since the coordinator started (each "
         "is retried).");
    put(&b, "aulac_round_close_failures_total %" PRIu64 "\n", m.close_failures);
    head(&b, "aulac_round_duration_seconds", "histogram",
         "Time from a round's opening to its close, in seconds.");
    put_histogram(&b, "aulac_round_duration_seconds", &m.round_seconds, round_buckets,
                  N_ROUND_BUCKETS);
    head(&b, "aulac_upload_bytes", "histogram", "Payload size of each accepted update, in bytes.");
    put_histogram(&b, "aulac_upload_bytes", &m.upload_bytes, bytes_buckets, N_BYTES_BUCKETS);
    head(&b, "aulac_uploads_total", "counter",
         "Update uploads since the coordinator started, by member and result "
         "(accepted or rejected).");
    for (size_t i = 0; i < m.n_rows; i++) {
        if (!rows[i].accepted && !rows[i].rejected)
            continue;
        for (int acc = 1; acc >= 0; acc--) {
            put(&b, "aulac_uploads_total{member=\"");
            put_label(&b, rows[i].id);
            put(&b, "\",result=\"%s\"} %" PRIu64 "\n", acc ? "accepted" : "rejected",
                acc ? rows[i].accepted : rows[i].rejected);
        }
    }
    head(&b, "aulac_upload_rejections_total", "counter",
         "Rejected update uploads since the coordinator started, by member and reason "
         "(coordinator/HTTP.md lists the reasons).");
    for (size_t i = 0; i < m.n_rows; i++)
        for (size_t r = 0; r < N_REASONS; r++) {
            if (!rows[i].reasons[r])
                continue;
            put(&b, "aulac_upload_rejections_total{member=\"");
            put_label(&b, rows[i].id);
            put(&b, "\",reason=\"%s\"} %" PRIu64 "\n", reasons[r], rows[i].reasons[r]);
        }
    head(&b, "aulac_member_last_seen_timestamp_seconds", "gauge",
         "When the member's last authenticated request came (unix seconds), since the "
         "coordinator started.");
    for (size_t i = 0; i < m.n_rows; i++) {
        if (!rows[i].last_seen_ms)
            continue;
        put(&b, "aulac_member_last_seen_timestamp_seconds{member=\"");
        put_label(&b, rows[i].id);
        put(&b, "\"} ");
        put_double(&b, (double)rows[i].last_seen_ms / 1000.0);
        put(&b, "\n");
    }

    /* --- the members' contribution counters (kept across restarts) --- */
    head(&b, "aulac_member_tokens_total", "counter",
         "Training tokens of the member's accepted updates, all experiments.");
    for (size_t i = 0; i < v.n_members; i++) {
        put(&b, "aulac_member_tokens_total{member=\"");
        put_label(&b, v.members[i].id);
        put(&b, "\"} %" PRIu64 "\n", v.members[i].tokens);
    }
    head(&b, "aulac_member_bytes_total", "counter",
         "Payload bytes of the member's accepted updates, all experiments.");
    for (size_t i = 0; i < v.n_members; i++) {
        put(&b, "aulac_member_bytes_total{member=\"");
        put_label(&b, v.members[i].id);
        put(&b, "\"} %" PRIu64 "\n", v.members[i].bytes_sent);
    }
    head(&b, "aulac_member_rounds_total", "counter",
         "Closed rounds the member's update was aggregated in, all experiments.");
    for (size_t i = 0; i < v.n_members; i++) {
        put(&b, "aulac_member_rounds_total{member=\"");
        put_label(&b, v.members[i].id);
        put(&b, "\"} %" PRIu64 "\n", v.members[i].rounds_joined);
    }
    head(&b, "aulac_member_rejected_updates_total", "counter",
         "The member's rejected updates as the ledger records them, all experiments.");
    for (size_t i = 0; i < v.n_members; i++) {
        put(&b, "aulac_member_rejected_updates_total{member=\"");
        put_label(&b, v.members[i].id);
        put(&b, "\"} %" PRIu64 "\n", v.members[i].rejected);
    }

    put_process(&b);

    free(rows);
    free(v.members);
    if (b.oom) {
        free(b.p);
        return COORD_ERR_NOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

int metrics_reply(struct coord *c, struct http_reply *out)
{
    memset(out, 0, sizeof *out);
    char *body;
    size_t len;
    int rc = metrics_render(c, c->metrics, &body, &len);
    if (rc != 0)
        return rc;
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    out->body = body;
    out->len = len;
    return 0;
}
