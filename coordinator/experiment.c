/* The loaded experiment's rounds: the accepted set (coordinator/round.h); the close, on
 * the timer thread only (the policy's aggregation rule via round_combine, the contribution
 * scores of credit/score.h, outer step, checkpoint, ledger); and the timer's round work:
 * a close requested by the last acceptance, the deadline, and the next queued experiment
 * when none runs (lifecycle.c).
 *
 * The close is a function of what is stored, not of the order updates arrived in: the
 * round's accepted payloads as kept in LMDB, summed in member-id order (aggregate/round.h),
 * the base model, the outer optimizer state before the step, the policy and the
 * evaluation set; the scores' seed is ledger data (credit_round_seed). So a restart that
 * redoes a close gets the same model and the same scores, byte for byte, and so does
 * `aulac credits verify` from the ledger and the retained payloads.
 *
 * Crash safety: a round's accepted payloads are in LMDB until the round closes, so a
 * restart rebuilds the accepted set from them. Closing first writes files: each payload to the retention
 * store (named by its hash), the new checkpoint (named by its hash), the outer optimizer
 * state and downlink residual (named by round) and the downlink update; then it commits in
 * one transaction the round summary, the payload deletion, the member counters,
 * round_closed, contribution_scores, the credit totals (coord.credit), the experiment
 * record and, at the last round, credits, experiment_finished and the queue record. A
 * crash before that commit leaves the round open with every payload still stored and the
 * previous round's outer state file in place: the restart's close writes the same files
 * again and commits the same entries.
 *
 * Storage failures (a file write or an LMDB transaction failing: disk full, LMDB map
 * full, I/O error; an accepted payload file that cannot be opened or mapped: missing,
 * EMFILE, EIO, another length) do not stop the process: the close is abandoned (close_abandon: the
 * outer optimizer state and downlink residual are read back from the files of the
 * previous round, nothing in memory changed), the round stays open with every accepted
 * update, the failure is logged with the data directory's free space and shown by
 * status (c->storage_error), and the timer retries the close after 1, 2, 4 ... s (at most
 * 5 min). Only what cannot be retried (out of memory, an inconsistent state) stops it. */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "aggregate/round.h"
#include "codec/codec.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/coord.h"
#include "coordinator/metrics.h"
#include "coordinator/queue.h"
#include "coordinator/record.h"
#include "coordinator/state.h"
#include "credit/score.h"
#include "credit/shares.h"
#include "model/gpt2.h"
#include "model/model_hash.h"
#include "privacy/rdp.h"

struct model_snapshot *snapshot_new(size_t n, uint64_t round)
{
    struct model_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->params = malloc(n * sizeof(float));
    if (!s->params) {
        free(s);
        return NULL;
    }
    s->n = n;
    s->round = round;
    s->refs = 1;
    return s;
}

void snapshot_release(struct coord *c, struct model_snapshot *s)
{
    if (s && --s->refs == 0) {
        if (c->archived == s)
            c->archived = NULL;
        snapshot_free(s);
    }
}

int coord_snapshot_to_file(struct coord *c, struct model_snapshot *s)
{
    int rc = snapshot_to_file(c->opt.data_dir, s);
    if (rc != 0) {
        char hex[65];
        hex_encode(s->hash, 32, hex);
        log_warn("model %.16s stays in memory (%zu bytes): its file in %s cannot be written: "
                 "%s", hex, s->n * sizeof(float), c->opt.data_dir, strerror(-rc));
    }
    return rc;
}

int round_member_reported_locked(const struct coord *c, const char *member)
{
    return round_has(&c->rnd, member);
}

int round_all_reported_locked(const struct coord *c)
{
    return c->state == EXP_RUNNING && round_all_reported(&c->rnd, &c->roster, &c->policy);
}

size_t coord_eligible_count_locked(const struct coord *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->roster.n_members; i++)
        n += policy_takes_part(&c->policy, c->roster.members[i].id);
    return n;
}

struct member_stats *coord_member_stats(struct coord *c, const char *id)
{
    for (size_t i = 0; i < c->roster.n_members; i++)
        if (strcmp(c->members[i].id, id) == 0)
            return &c->members[i];
    return NULL;
}

void round_open(struct coord *c, int64_t opened_ms)
{
    round_reset(&c->rnd, c->rnd.number, &c->policy, opened_ms);
    c->storage_error[0] = 0;   /* a new round (or experiment): no close has failed */
    pthread_cond_broadcast(&c->changed);
}

static int accept_stored(struct coord *c, const struct round_member *m, double weight,
                         const uint8_t payload_hash[32], size_t len, void *arg)
{
    (void)payload_hash;
    (void)len;
    (void)arg;
    if (round_accept(&c->rnd, m, weight) != 0) {
        log_error("round %llu has more stored updates than a round takes (%d)",
                  (unsigned long long)c->rnd.number, COORD_ROUND_MAX_UPDATES);
        return COORD_ERR_STATE;
    }
    return 0;
}

/* The open round's accepted set from its updates' rows in LMDB, in key order (metadata
 * only: no payload is read). Their payloads were validated at acceptance and are in the
 * payload store; the close maps and decodes them. */
int round_accumulate_stored(struct coord *c)
{
    c->rnd.n_accepted = 0;
    c->rnd.weight_sum = 0;
    return state_each_payload(c, accept_stored, NULL);
}

void round_request_close_locked(struct coord *c)
{
    if (!round_all_reported_locked(c))
        return;
    c->rnd.close_pending = 1;
    pthread_cond_signal(&c->timer_wake);
}

static void close_failed(const char *what) __attribute__((noreturn));

/* The experiment's queue record at its last close: finished, with its final model. */
static int record_queue_finished(struct coord *c, MDB_txn *txn)
{
    struct experiment_info info;
    int found;
    int rc = queue_get_txn(c, txn, c->experiment, &info, &found);
    if (rc != 0)
        return rc;
    if (!found) {
        log_error("experiment %s has no queue record", c->experiment);
        return COORD_ERR_STATE;
    }
    info.phase = PHASE_FINISHED;
    info.ended_ms = time_now_unix_ms();
    info.rounds_done = c->rnd.base->round;
    memcpy(info.final_model_hash, c->rnd.base->hash, 32);
    rc = queue_record_put_txn(c, txn, &info);
    experiment_info_free(&info);
    return rc;
}

/* The plan of the round being closed; the policy gave one for round 1 at start, so it
 * gives one for every round. */
static void close_plan(const struct coord *c, struct policy_round_plan *plan)
{
    char why[300];
    if (policy_round_plan(&c->policy, c->rnd.number, plan, why, sizeof why) != 0)
        close_failed(why);
}

/* Fatal: the round's outcome cannot be made durable. Everything acknowledged is in
 * LMDB, so the safe course is to stop and let a restart redo the close. */
static void close_failed(const char *what)
{
    log_error("cannot close the round: %s; stopping so that a restart redoes the close "
              "from the stored updates", what);
    exit(70);
}

/* The close's result is dropped: the experiment was cancelled while the round closed
 * outside mu (experiment_cancel_locked), so the round never closes. Files it wrote
 * (checkpoint, outer state) are left unreferenced. mu held. */
static int close_dropped(struct coord *c)
{
    log_info("round %llu of experiment %s: the experiment was cancelled during its close; "
             "its result is dropped", (unsigned long long)c->rnd.number, c->experiment);
    c->rnd.closing = 0;
    c->rnd.close_pending = 0;
    pthread_cond_broadcast(&c->changed);
    return 0;
}

/* Free bytes of the data directory's file system (for unprivileged users); UINT64_MAX
 * when unknown. */
static uint64_t data_dir_free(const struct coord *c)
{
    struct statvfs v;
    if (statvfs(c->opt.data_dir, &v) != 0)
        return UINT64_MAX;
    return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Storage failure of a close (what: what failed; the callee logged the path): noted for
 * status, the retry scheduled. mu held. The caller has restored the state (close_abandon). */
static void close_storage_failed_locked(struct coord *c, const char *what)
{
    const uint64_t free_b = data_dir_free(c);
    int64_t wait = c->opt.close_retry_ms > 0 ? c->opt.close_retry_ms : COORD_CLOSE_RETRY_MS;
    for (unsigned i = 0; i < c->rnd.close_failures && wait < COORD_CLOSE_RETRY_MAX_MS; i++)
        wait *= 2;
    if (wait > COORD_CLOSE_RETRY_MAX_MS)
        wait = COORD_CLOSE_RETRY_MAX_MS;
    c->rnd.close_failures++;
    c->rnd.close_retry_at_ms = time_mono_ms() + wait;
    char free_s[48] = "unknown";
    if (free_b != UINT64_MAX)
        snprintf(free_s, sizeof free_s, "%llu bytes", (unsigned long long)free_b);
    snprintf(c->storage_error, sizeof c->storage_error,
             "round %llu could not close: %s; %s free in %s", (unsigned long long)c->rnd.number,
             what, free_s, c->opt.data_dir);
    c->storage_error_ms = time_now_unix_ms();
    log_error("cannot close round %llu of experiment %s: %s (%s free on the file system of "
              "%s); the round stays open with its %zu accepted update(s); retrying in %lld ms "
              "(failure %u)", (unsigned long long)c->rnd.number, c->experiment, what, free_s,
              c->opt.data_dir, c->rnd.n_accepted, (long long)wait, c->rnd.close_failures);
    metrics_close_failed(c->metrics);
    c->next_disk_ms = 0;   /* status shows the free space of now */
    c->rnd.closing = 0;
    c->rnd.close_pending = 0;
    pthread_cond_broadcast(&c->changed);
}

/* Undoes what a close changed before its outcome was durable. The outer optimizer state
 * and the downlink residual live in files (coordinator/models.c): the close stepped a
 * copy of them (outer/<r+1>.bin.tmp, .down.tmp), never the committed files of the last
 * closed round, so the copies are dropped and the step count read back from that round's
 * file (0 before round 1); the retry makes new copies. Without mu: the close owns them
 * while closing. A state that cannot be read back stops the process (a restart reads it
 * from the same files). */
static void close_abandon(struct coord *c, uint64_t completed_rounds)
{
    struct outer_opt *o = &c->rnd.outer;
    state_map_close(&c->rnd.outer_map, 1);
    state_map_close(&c->rnd.down_map, 1);
    o->m = o->v = NULL;
    o->release = NULL;
    o->release_arg = NULL;
    c->rnd.down_residual = NULL;
    if (outer_state_load(c, completed_rounds) != 0 || down_residual_load(c, completed_rounds) != 0)
        close_failed("the outer optimizer state of the previous round cannot be read back");
}

/* The round's accepted updates where they lie: *out the payloads, each a read-only
 * private mapping of its file in the payload store (mapped = 1;
 * state_round_updates_release unmaps them), sorted by member id; exactly the n accepted
 * ones. 0; 1 when they are gone because the experiment was cancelled meanwhile (its
 * transaction deletes the rows); 2 when a payload file cannot be read (missing, EMFILE,
 * EIO, another length): a storage failure of the close, which is abandoned and retried
 * (why[cap] names the member, round, file and error; for a missing file what the
 * operator can do). A row that cannot be read stops the process (close_failed). */
static int close_updates(struct coord *c, size_t n, struct agg_update **out, size_t *n_found,
                         char *why, size_t cap)
{
    *out = NULL;
    struct agg_update *u = calloc(n, sizeof *u);
    if (!u)
        close_failed("out of memory");
    MDB_txn *rtxn;
    if (ledger_read_begin(c->ledger, &rtxn) != 0)
        close_failed("no LMDB read transaction");
    const int rc = state_round_updates(c, rtxn, u, n, n_found, why, cap);
    ledger_read_end(c->ledger, rtxn);
    if (rc != 0 && why[0]) {
        free(u);   /* nothing stays mapped */
        return 2;
    }
    if (rc != 0)
        close_failed("the stored updates could not be read");
    if (*n_found != n) {
        state_round_updates_release(u, *n_found);
        free(u);
        pthread_mutex_lock(&c->mu);
        const int running = c->state == EXP_RUNNING;
        pthread_mutex_unlock(&c->mu);
        if (running)
            close_failed("the stored updates are not the accepted ones");
        return 1;
    }
    agg_sort(u, n);
    *out = u;
    return 0;
}

/* The round's contribution scores (credit/score.h), with the outer state before the
 * step. 1 when scored; 0 when the evaluation model fails (CREDIT_ERR_MODEL; a
 * non-finite loss is not one: it counts as CREDIT_LOSS_CAP. Deterministic, so a restart
 * would fail the same way): the round then closes without a
 * contribution_scores entry, which credits count as 0 for every member (logged). Any
 * other failure stops the process (close_failed). *ms: time spent. */
static int close_score(struct coord *c, const struct policy_round_plan *plan,
                       const struct model_snapshot *base, const struct agg_update *u,
                       size_t n, float *model_scratch, uint8_t seed[32],
                       struct credit_round_scores *out, int64_t *ms)
{
    struct credit_round_input in = {
        .policy = &c->policy, .plan = plan, .outer = &c->rnd.outer, .base = base->params,
        .n_params = c->n_params, .updates = u, .n = n, .ev = c->evaluator,
        .model_scratch = model_scratch,
        /* The close's average, when no DP noise was added to it: agg_combine over all the
         * updates, which is what the scores would compute again. */
        .avg_full = c->policy.privacy.enabled ? NULL : c->rnd.avg,
    };
    credit_round_seed(c->experiment, c->rnd.number, base->hash, u, n, in.seed);
    memcpy(seed, in.seed, 32);
    char why[400];
    const int64_t t0 = time_mono_ms();
    int rc = credit_score_round(&in, out, why, sizeof why);
    *ms = time_mono_ms() - t0;
    if (rc == 0)
        return 1;
    if (rc == CREDIT_ERR_MODEL) {
        log_error("round %llu of experiment %s: no contribution scores: %s; the round closes "
                  "without a contribution_scores entry (every member's credit counts 0 for "
                  "it)", (unsigned long long)c->rnd.number, c->experiment, why);
        return 0;
    }
    char what[480];
    snprintf(what, sizeof what, "the contribution scores could not be computed: %s", why);
    close_failed(what);
}

/* The credit totals after this round, in txn: coord.credit plus scores (when scored),
 * written back; at the experiment's last round (finished) its credits entry. */
static int close_credit(struct coord *c, MDB_txn *txn, const struct entry_contribution_scores *scores,
                        int finished)
{
    struct credit_totals t;
    int found;
    int rc = state_get_credit(c, txn, c->experiment, &t, &found);
    if (rc == 0 && scores) {
        int cr = credit_totals_add(&t, scores);
        rc = cr == 0 ? state_put_credit(c, txn, &t)
                     : cr == CREDIT_ERR_NOMEM ? COORD_ERR_NOMEM : COORD_ERR_STATE;
        if (cr != 0 && cr != CREDIT_ERR_NOMEM)
            log_error("the credit totals of %s do not take round %llu's scores (%d)",
                      c->experiment, (unsigned long long)scores->round, cr);
    }
    if (rc == 0 && finished && t.rounds == 0)
        log_warn("experiment %s finished without a scored round: no credits entry",
                 c->experiment);
    if (rc == 0 && finished && t.rounds > 0) {
        struct entry_credits cr = { 0 };
        rc = credit_shares(&t, &c->policy.contribution, &cr) == 0 ? record_credits(c, txn, &cr)
                                                                   : COORD_ERR_NOMEM;
        free(cr.members);
    }
    credit_totals_free(&t);
    return rc;
}

int experiment_budget_ends_locked(const struct coord *c, uint64_t round, char *why, size_t cap)
{
    const struct policy_privacy *pp = &c->policy.privacy;
    if (!pp->enabled || !(pp->target_epsilon > 0))
        return 0;
    double eps = 0;
    if (rdp_epsilon(1.0, pp->noise_multiplier, round, pp->delta, &eps) != 0)
        eps = INFINITY;   /* parameters the policy check refuses: spend nothing more */
    if (eps <= pp->target_epsilon)
        return 0;
    snprintf(why, cap, "privacy budget: round %llu would spend epsilon %.3g > %g",
             (unsigned long long)round, eps, pp->target_epsilon);
    return 1;
}

/* One round close: what it captured under mu, what it computed without mu, and what it
 * commits under mu again. */
struct close_job {
    size_t n_params, n_accepted;
    struct model_snapshot *base;
    struct policy_round_plan plan;
    struct round_outcome outcome;
    char rule_log[1024];            /* what the rule did (round_outcome_describe) */
    int scored;
    struct credit_round_scores scores;
    struct entry_contribution_scores se;
    int64_t score_ms, t_close;
    struct model_snapshot *next;
    int down_fd;                    /* downlink/close.tmp while the close writes it, or -1 */
    uint64_t down_len;
    struct down_payload *down;      /* the saved update, mapped (refs 1), until installed */
    char what[900];                 /* a storage failure described here (close_updates) */
};

/* Phase 1, mu held: 1 when the round closes now (closing set: from here on the close owns
 * avg, scratch, outer, down_residual, the evaluator and the base model; updates wait for
 * it (check_round_locked), the loaded experiment stays; only a cancel may end the
 * experiment meanwhile (experiment_cancel_locked), and the close then drops its result). */
static int close_begin_locked(struct coord *c, struct close_job *j)
{
    c->rnd.close_pending = 0;
    if (c->state != EXP_RUNNING || c->rnd.n_accepted == 0 || c->rnd.closing)
        return 0;
    c->rnd.closing = 1;
    memset(j, 0, sizeof *j);
    j->down_fd = -1;
    j->n_params = c->n_params;
    j->n_accepted = c->rnd.n_accepted;   /* a cancel meanwhile zeroes rnd.n_accepted */
    j->base = c->rnd.base;
    return 1;
}

/* What the round's uploads freed (gRPC's read buffers of 1 MiB chunks, the validating
 * decode's buffers, freed by many threads) glibc keeps in its per-thread arenas, a few
 * MB each, and gives back only from the top of each heap: ~100-300 MB at 16-32 members
 * (bench/README.md, Scale). Given back before the close touches its two model-sized
 * buffers, so that the close's peak is those and what is live. One pass over the
 * arenas' free lists: milliseconds. */
static void give_back_freed_memory(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* Phase 2, without mu (the heavy part: sums, scores, outer step, hashes, downlink, file
 * fsyncs: seconds at 124M; Status, long polls and downloads are served meanwhile).
 * 0, or 1 when the stored updates are gone
 * (cancelled meanwhile): the close is dropped; 2 on a storage failure (logged; *what says
 * which, e.g. a payload file that cannot be read, with its path and errno): the caller
 * abandons the close (close_abandon). */
static int close_compute_work(struct coord *c, struct close_job *j, const char **what)
{
    if (c->opt.close_hook)
        c->opt.close_hook(c->opt.close_hook_arg);
    j->t_close = time_mono_ms();
    give_back_freed_memory();
    const size_t n = j->n_params;
    close_plan(c, &j->plan);
    size_t n_up;
    struct agg_update *up;
    const int got = close_updates(c, j->n_accepted, &up, &n_up, j->what, sizeof j->what);
    if (got == 2)
        *what = j->what;
    if (got != 0)
        return got;
    char why[400];
    /* Privacy needs the experiment's noise seed (loaded at its start or resume; here only
     * if privacy was switched on in a loaded policy, as tests do). */
    if (c->policy.privacy.enabled && !c->have_dp_seed && coord_dp_seed_load(c, 0) != 0)
        close_failed("the experiment's DP noise seed cannot be kept");
    /* The round's average update by the policy's rule, in member-id order, into avg. */
    if (round_combine(&c->rnd, &c->policy, &j->plan, n, up, n_up,
                      c->have_dp_seed ? c->dp_seed : NULL, c->dp_scheme, &j->outcome, why,
                      sizeof why) != 0)
        close_failed(why);
    round_outcome_describe(&j->outcome, &c->policy, up, j->rule_log, sizeof j->rule_log);
    /* The outer state and the downlink residual: the next round's files, mapped, their
     * pages dropped as the step and the encode consume them (models.c). */
    if (outer_state_open(c, j->base->round) != 0 || down_residual_open(c, j->base->round) != 0)
        close_failed("the outer optimizer state could not be set up");
    /* The new model's buffer (kept, its pages given back after each close:
     * round_release_buffers); the scores use it as their model buffer before the new
     * model is made in it. */
    if (!c->rnd.next && !(c->rnd.next = model_buf_alloc(c->rnd.buf_n)))
        close_failed("out of memory");
    float *next = c->rnd.next;
    uint8_t seed[32];
    j->scored = close_score(c, &j->plan, j->base, up, n_up, next, seed, &j->scores,
                            &j->score_ms);
    snapshot_drop(j->base, 0, n);   /* loo and shapley evaluate the base model whole */
    if (j->scored &&
        scores_entry_fill(c, c->rnd.number, up, n_up, seed, &j->scores, &j->se) != 0)
        close_failed("out of memory");
    /* The downlink update goes straight into its file (never whole in memory). */
    if (j->plan.downlink_on && downlink_begin(c, j->base->hash, &j->down_fd) != 0) {
        state_round_updates_release(up, n_up);
        free(up);
        *what = "the downlink update could not be written";
        return 2;
    }
    /* The base model's pages are dropped behind each pass that reads it. */
    int arc = j->plan.downlink_on
        ? agg_next_model_fd(&j->plan, &c->rnd.outer, c->rnd.down_residual, state_map_release,
                            &c->rnd.down_map, j->base->params, snapshot_drop_range, j->base,
                            c->rnd.avg, n, next, j->down_fd, 32, &j->down_len, why, sizeof why)
        : agg_next_model_released(&j->plan, &c->rnd.outer, c->rnd.down_residual,
                                  state_map_release, &c->rnd.down_map, j->base->params,
                                  snapshot_drop_range, j->base, c->rnd.avg, n, next, NULL, NULL,
                                  why, sizeof why);
    if (arc == AGG_ERR_IO) {
        log_error("round %llu: %s", (unsigned long long)c->rnd.number, why);
        state_round_updates_release(up, n_up);
        free(up);
        *what = "the downlink update could not be written";
        return 2;
    }
    if (arc != 0)
        close_failed(why);
    uint8_t hash[32];
    model_layout_hash(&c->layout, next, hash);   /* v1 GPT-2, v2 named */
    const uint64_t round = j->base->round + 1;
    /* The payloads are in the store since their acceptance (spool.h): only unmapped. */
    *what = NULL;
    state_round_updates_release(up, n_up);
    free(up);
    /* The next round's base model first, before any file of the round is saved: in its
     * own unnamed file, its blocks reserved (posix_fallocate: a full disk shows here, not
     * as a lost write-back later), mapped read-only. A full disk (ENOSPC, EDQUOT) abandons
     * the close (retried, close_storage_failed_locked); any other failure (a file system
     * without shared mappings: ENODEV...) keeps it in memory, copied from next, as the
     * start and the resume do. next's pages go after the close (close_compute). */
    int src = snapshot_map(c->opt.data_dir, next, n, &j->next);
    if (src == -ENOSPC || src == -EDQUOT) {
        log_error("round %llu: the new model's file in %s cannot be written: %s",
                  (unsigned long long)c->rnd.number, c->opt.data_dir, strerror(-src));
        *what = "the new model's file could not be written";
        return 2;
    }
    if (src != 0) {
        char hex[65];
        hex_encode(hash, 32, hex);
        log_warn("round %llu: model %.16s stays in memory (%zu bytes): its file in %s cannot "
                 "be written: %s", (unsigned long long)c->rnd.number, hex,
                 n * sizeof(float), c->opt.data_dir, strerror(-src));
        if (!(j->next = snapshot_new(n, round)))
            close_failed("out of memory");
        memcpy(j->next->params, next, n * sizeof(float));
    }
    j->next->round = round;
    memcpy(j->next->hash, hash, 32);
    if (models_save(c, next, hash) != 0)
        *what = "the checkpoint could not be written";
    if (!*what &&
        (outer_state_save(c, round) != 0 || down_residual_save(c, round) != 0))
        *what = "the outer optimizer state could not be written";
    if (!*what && j->down_fd >= 0 && downlink_save(c, hash, &j->down_fd, &j->down) != 0)
        *what = "the downlink update could not be written";
    return *what ? 2 : 0;
}

/* Phase 2 (close_compute_work), then avg's, scratch's and next's pages given back
 * (round_release_buffers, ~135 ms per GiB): here, without mu, on every outcome, while the
 * close still owns them (closing set, so experiment_unload cannot unmap them) and after
 * the last read of next (the new model's snapshot is made from it in phase 2); phase 3
 * reads none of them. */
static int close_compute(struct coord *c, struct close_job *j, const char **what)
{
    const int rc = close_compute_work(c, j, what);
    round_release_buffers(&c->rnd);   /* the timer thread's: no other close runs */
    return rc;
}

static void close_job_free(struct coord *c, struct close_job *j)
{
    if (j->next)
        snapshot_release(c, j->next);
    downlink_abandon(c, &j->down_fd);
    down_payload_release(j->down);   /* not shared yet */
    free(j->se.members);
    credit_round_scores_free(&j->scores);
    round_outcome_free(&j->outcome);
}

/* Phase 3, mu held: the round's outcome in one transaction, then the next round opens.
 * 0; 2 on a storage failure (*what): nothing committed, the memory as before (the caller
 * abandons the close). */
static int close_commit_locked(struct coord *c, struct close_job *j, const char **what)
{
    if (c->state != EXP_RUNNING) {
        close_job_free(c, j);
        close_dropped(c);
        return 0;
    }
    struct model_snapshot *next = j->next;
    struct round_summary sum = { 0 };
    sum.round = c->rnd.number;
    memcpy(sum.model_hash, next->hash, 32);
    sum.members = c->rnd.accepted;
    sum.n_members = c->rnd.n_accepted;
    sum.closed_ms = time_now_unix_ms();
    double loss_w = 0;
    for (size_t i = 0; i < c->rnd.n_accepted; i++) {
        sum.tokens += c->rnd.accepted[i].tokens;
        sum.bytes += c->rnd.accepted[i].bytes;
        loss_w += (double)c->rnd.accepted[i].train_loss * (double)c->rnd.accepted[i].tokens;
    }
    sum.mean_train_loss = sum.tokens ? (float)(loss_w / (double)sum.tokens) : 0.0f;

    const uint64_t closed_round = c->rnd.number;
    const int64_t opened_ms = c->rnd.opened_ms;
    const size_t n_closed = c->rnd.n_accepted;
    struct model_snapshot *prev = c->rnd.base;
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0) {
        *what = "no LMDB write transaction";
        return 2;
    }
    const enum coord_exp_state state_before = c->state;
    size_t n_joined = 0;   /* members whose rounds_joined was counted */
    int rc = state_put_round(c, txn, &sum);
    if (rc == 0)
        rc = state_delete_payloads(c, txn);
    for (size_t i = 0; rc == 0 && i < c->rnd.n_accepted; i++) {
        struct member_stats *m = coord_member_stats(c, c->rnd.accepted[i].id);
        if (m) {
            m->rounds_joined++;
            n_joined = i + 1;
            rc = state_put_member(c, txn, m);
        }
    }
    /* DP: the epsilon spent after this round (q = 1: every reporting member). */
    double epsilon = 0;
    const int dp = c->policy.privacy.enabled;
    if (dp && rdp_epsilon(1.0, c->policy.privacy.noise_multiplier, closed_round,
                          c->policy.privacy.delta, &epsilon) != 0)
        close_failed("the privacy accountant refused the policy's privacy parameters");
    if (rc == 0)
        rc = record_round_closed(c, txn, &sum, j->outcome.aggregate_hash, dp ? &epsilon : NULL);
    if (rc == 0 && j->scored)
        rc = record_contribution_scores(c, txn, &j->se);
    c->rnd.base = next;
    j->next = NULL;
    c->rnd.number++;
    char budget[200] = "";
    if (c->rnd.number > c->total_rounds)
        c->state = EXP_FINISHED;
    else if (experiment_budget_ends_locked(c, c->rnd.number, budget, sizeof budget))
        c->state = EXP_FINISHED;   /* the next round would pass privacy.target_epsilon */
    int64_t now = time_now_unix_ms();
    c->rnd.opened_ms = now;
    if (rc == 0)
        rc = close_credit(c, txn, j->scored ? &j->se : NULL, c->state == EXP_FINISHED);
    if (rc == 0)
        rc = state_put_experiment(c, txn);
    if (rc == 0 && c->state == EXP_FINISHED)
        rc = record_experiment_finished(c, txn, budget[0] ? budget : NULL);
    if (rc == 0 && c->state == EXP_FINISHED)
        rc = record_queue_finished(c, txn);
    if (rc != 0)
        ledger_txn_abort(c->ledger, txn);
    else if (ledger_txn_commit(c->ledger, txn) != 0)
        rc = COORD_ERR_IO;
    if (rc != 0) {   /* nothing committed: the memory back as it was */
        for (size_t i = 0; i < n_joined; i++) {
            struct member_stats *m = coord_member_stats(c, c->rnd.accepted[i].id);
            if (m)
                m->rounds_joined--;
        }
        j->next = c->rnd.base;
        c->rnd.base = prev;
        c->rnd.number = closed_round;
        c->state = state_before;
        c->rnd.opened_ms = opened_ms;
        *what = rc == COORD_ERR_NOMEM ? "out of memory" : "the state could not be written";
        if (rc == COORD_ERR_NOMEM)
            close_failed(*what);
        return 2;
    }
    c->rnd.close_failures = 0;
    c->rnd.close_retry_at_ms = 0;
    c->storage_error[0] = 0;
    metrics_round_closed(c->metrics, (double)(sum.closed_ms - opened_ms) / 1000.0, n_closed);

    down_payload_release(c->rnd.down);
    /* None (downlink off, or the file could not be mapped): members fetch the whole model. */
    c->rnd.down = j->down;
    j->down = NULL;
    memcpy(c->rnd.down_from, prev->hash, 32);
    char hex[65];
    hex_encode(next->hash, 32, hex);
    log_info("round %llu closed: %zu member(s), %llu tokens, %llu upload bytes, train loss "
             "%.4f, model %.16s", (unsigned long long)closed_round, c->rnd.n_accepted,
             (unsigned long long)sum.tokens, (unsigned long long)sum.bytes,
             sum.mean_train_loss, hex);
    log_info("round %llu aggregation: %s", (unsigned long long)closed_round, j->rule_log);
    if (dp)
        log_info("round %llu: epsilon %.4g spent at delta %g (noise multiplier %g)",
                 (unsigned long long)closed_round, epsilon, c->policy.privacy.delta,
                 c->policy.privacy.noise_multiplier);
    if (j->scored)
        log_info("round %llu scored: %llu evaluation(s)%s in %lld ms of the close's %lld ms; "
                 "evaluation loss %.4f -> %.4f", (unsigned long long)closed_round,
                 (unsigned long long)j->scores.evaluations,
                 j->scores.exact ? " (exact Shapley)" : "", (long long)j->score_ms,
                 (long long)(time_mono_ms() - j->t_close), j->scores.base_loss,
                 j->scores.model_loss);
    close_job_free(c, j);
    snapshot_release(c, prev);
    coord_retain_checkpoints(c);   /* the last N rounds and every K-th stay */
    round_open(c, now);   /* clears closing; wakes whoever waits for the close */
    if (c->state == EXP_FINISHED && budget[0])
        log_warn("experiment %s finished after %llu of %llu rounds: %s", c->experiment,
                 (unsigned long long)closed_round, (unsigned long long)c->total_rounds, budget);
    else if (c->state == EXP_FINISHED)
        log_info("experiment %s finished after %llu rounds", c->experiment,
                 (unsigned long long)c->total_rounds);
    return 0;
}

/* The round close, on the timer thread only (called without mu). */
static void round_close(struct coord *c)
{
    if (c->timer_running && !pthread_equal(pthread_self(), c->timer)) {
        log_error("a round close was started off the timer thread");
        abort();
    }
    struct close_job j;
    pthread_mutex_lock(&c->mu);
    int go = close_begin_locked(c, &j);
    pthread_mutex_unlock(&c->mu);
    if (!go)
        return;
    const char *what = NULL;
    const uint64_t completed = j.base->round;
    int rc = close_compute(c, &j, &what);
    if (rc == 2)
        close_abandon(c, completed);   /* still closing: the close owns the state */
    pthread_mutex_lock(&c->mu);
    if (rc == 1) {
        close_dropped(c);
    } else if (rc == 2) {
        close_job_free(c, &j);
    } else if ((rc = close_commit_locked(c, &j, &what)) == 2) {
        pthread_mutex_unlock(&c->mu);   /* nothing committed; closing still set */
        close_abandon(c, completed);
        pthread_mutex_lock(&c->mu);
        close_job_free(c, &j);
    }
    if (rc == 2)
        close_storage_failed_locked(c, what);
    pthread_mutex_unlock(&c->mu);
}

/* What the timer should do about the open round now; mu held. */
static int close_due_locked(struct coord *c)
{
    if (c->state != EXP_RUNNING || c->rnd.closing) {
        c->rnd.close_pending = 0;   /* nothing to close (only this thread closes) */
        return 0;
    }
    if (c->rnd.close_retry_at_ms) {   /* a close abandoned on a storage failure */
        if (time_mono_ms() < c->rnd.close_retry_at_ms)
            return 0;
        c->rnd.close_retry_at_ms = 0;
        log_info("round %llu: retrying the close (failure %u before)",
                 (unsigned long long)c->rnd.number, c->rnd.close_failures);
        c->rnd.close_pending = 1;   /* then as any requested close, or by the deadline */
    }
    const size_t need = round_min_updates(&c->policy);
    if (c->rnd.close_pending) {
        /* Left set until close_begin_locked sets closing: whoever waits for the close
         * (tests) sees one or the other throughout. */
        if (round_all_reported_locked(c) && c->rnd.n_accepted >= agg_rule_min_updates(&c->policy)) {
            log_info("round %llu: every remaining member has reported; closing",
                     (unsigned long long)c->rnd.number);
            return 1;
        }
        c->rnd.close_pending = 0;
    }
    int64_t now = time_now_unix_ms();
    if (now < c->rnd.deadline_ms)
        return 0;
    int64_t grace_end = c->rnd.deadline_ms + (int64_t)c->policy.participation.grace_s * 1000;
    if (c->rnd.n_accepted >= need) {
        if (now >= grace_end) {
            log_info("round %llu: deadline and grace period passed with %zu of %zu "
                     "member(s); closing", (unsigned long long)c->rnd.number,
                     c->rnd.n_accepted, c->n_eligible);
            return 1;
        }
    } else if (!c->rnd.deadline_logged) {
        const size_t rule_min = agg_rule_min_updates(&c->policy);
        char rule[160] = "";
        if (rule_min > c->policy.participation.min_members)
            snprintf(rule, sizeof rule, " (aggregation.rule %s needs at least %zu updates)",
                     policy_agg_rule_name(c->policy.aggregation.rule), rule_min);
        log_warn("round %llu passed its deadline with %zu update(s); waiting for "
                 "min_members = %zu%s", (unsigned long long)c->rnd.number, c->rnd.n_accepted,
                 need, rule);
        c->rnd.deadline_logged = 1;
    }
    return 0;
}

void round_timer_tick(struct coord *c)
{
    pthread_mutex_lock(&c->mu);
    int due = close_due_locked(c);
    pthread_mutex_unlock(&c->mu);
    if (due)
        round_close(c);
    experiment_prepare_next(c);   /* reads the model files without mu */
    pthread_mutex_lock(&c->mu);
    experiment_start_next_locked(c);
    pthread_mutex_unlock(&c->mu);
}
