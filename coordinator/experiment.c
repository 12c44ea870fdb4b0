/* The experiment and its rounds: start or resume, accept into the accumulator,
 * close (outer step, checkpoint, ledger), and the deadline timer.
 *
 * Crash safety: a round's accepted payloads are in LMDB until the round closes, so a
 * restart re-accumulates them. Closing writes the new checkpoint and the outer
 * optimizer state first (files named by hash / round), then commits the round summary,
 * the next round, the payload deletion and the ledger entry in one transaction. A
 * crash before that commit leaves the round open with every payload still stored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "coordinator/coord.h"
#include "coordinator/record.h"
#include "coordinator/state.h"
#include "model/gpt2.h"
#include "model/model_hash.h"

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
        free(s->params);
        free(s);
    }
}

int round_member_reported_locked(const struct coord *c, const char *member)
{
    for (size_t i = 0; i < c->n_accepted; i++)
        if (strcmp(c->accepted[i].id, member) == 0)
            return 1;
    return 0;
}

int round_all_reported_locked(const struct coord *c)
{
    if (c->state != EXP_RUNNING || c->n_accepted == 0)
        return 0;
    for (size_t i = 0; i < c->roster.n_members; i++) {
        const char *id = c->roster.members[i].id;
        if (policy_takes_part(&c->policy, id) && !round_member_reported_locked(c, id))
            return 0;
    }
    return 1;
}

size_t coord_eligible_count_locked(const struct coord *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->roster.n_members; i++)
        n += policy_takes_part(&c->policy, c->roster.members[i].id);
    return n;
}

void coord_round_codec(const struct coord *c, uint64_t round, struct codec_params *out)
{
    *out = c->uplink;
    if (round <= c->policy.compression.uplink.dense_warmup_rounds)
        out->k_per_block = out->block_size;
}

struct member_stats *coord_member_stats(struct coord *c, const char *id)
{
    for (size_t i = 0; i < c->roster.n_members; i++)
        if (strcmp(c->members[i].id, id) == 0)
            return &c->members[i];
    return NULL;
}

static void round_sum_clear(struct coord *c)
{
    memset(c->acc, 0, c->n_params * sizeof(float));
    if (c->support)
        memset(c->support, 0, c->n_params * sizeof(float));
    c->weight_sum = 0;
    c->n_accepted = 0;
}

static void round_open(struct coord *c, int64_t opened_ms)
{
    round_sum_clear(c);
    c->round_opened_ms = opened_ms;
    c->deadline_ms = opened_ms + (int64_t)c->policy.participation.round_deadline_s * 1000;
    c->deadline_logged = 0;
    pthread_cond_broadcast(&c->changed);
}

static int accumulate_stored(struct coord *c, const struct round_member *m, double weight,
                             const uint8_t *payload, size_t len, void *arg)
{
    (void)arg;
    char why[200];
    int rc = codec_decode_accumulate_support(payload, len, c->n_params, (float)weight, c->acc,
                                             c->support, why, sizeof why);
    if (rc != 0) {
        log_error("stored update of %s for round %llu no longer decodes: %s", m->id,
                  (unsigned long long)c->round, why);
        return COORD_ERR_STATE;
    }
    c->accepted[c->n_accepted++] = *m;
    c->weight_sum += weight;
    return 0;
}

/* The open round's sum from its accepted updates stored in LMDB, in key order. */
static int round_accumulate_stored(struct coord *c)
{
    round_sum_clear(c);
    return state_each_payload(c, accumulate_stored, NULL);
}

static void round_failed(const char *what) __attribute__((noreturn));

void round_reaccumulate_locked(struct coord *c)
{
    if (round_accumulate_stored(c) != 0)
        round_failed("its accepted updates could not be summed again");
}

static int start_new(struct coord *c)
{
    struct model_snapshot *s = snapshot_new(c->n_params, 0);
    if (!s)
        return COORD_ERR_NOMEM;
    int rc = gpt2_init_params(&c->cfg, c->policy.model.seed, s->params);
    if (rc != 0) {
        log_error("cannot initialize the model: %s", model_strerror(rc));
        snapshot_release(c, s);
        return COORD_ERR_CONFIG;
    }
    model_hash(s->params, s->n, s->hash);
    if ((rc = models_save(c, s->params, s->hash)) != 0) {
        snapshot_release(c, s);
        return rc;
    }
    policy_experiment_id(&c->policy, c->policy_hash, c->experiment, sizeof c->experiment);
    c->model = s;
    c->state = EXP_RUNNING;
    c->round = 1;
    c->total_rounds = c->policy.training.rounds;
    round_open(c, time_now_unix_ms());

    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0)
        return COORD_ERR_STATE;
    uint64_t size;
    rc = ledger_size_txn(c->ledger, txn, &size) == 0 ? 0 : COORD_ERR_STATE;
    if (rc == 0 && size == 0)
        rc = record_genesis(c, txn);
    if (rc == 0)
        rc = record_experiment_started(c, txn);
    if (rc == 0)
        rc = state_put_experiment(c, txn);
    if (rc != 0) {
        ledger_txn_abort(c->ledger, txn);
        return rc;
    }
    if (ledger_txn_commit(c->ledger, txn) != 0)
        return COORD_ERR_STATE;
    char hex[65];
    hex_encode(s->hash, 32, hex);
    log_info("experiment %s started: %llu rounds, %zu parameters, round-0 model %.16s",
             c->experiment, (unsigned long long)c->total_rounds, c->n_params, hex);
    return 0;
}

static int resume(struct coord *c, const struct experiment_record *rec)
{
    char hex[65];
    if (memcmp(rec->policy_hash, c->policy_hash, 32) != 0) {
        hex_encode(rec->policy_hash, 32, hex);
        log_error("%s runs experiment %s with policy hash %.16s; the policy given now "
                  "hashes differently. Use the same policy file, or another --data-dir "
                  "for a new experiment", c->opt.data_dir, rec->experiment, hex);
        return COORD_ERR_CONFIG;
    }
    memcpy(c->experiment, rec->experiment, sizeof c->experiment);
    c->state = (enum coord_exp_state)rec->state;
    c->round = rec->round;
    c->total_rounds = rec->total_rounds;
    struct model_snapshot *s = snapshot_new(c->n_params, rec->completed_rounds);
    if (!s)
        return COORD_ERR_NOMEM;
    memcpy(s->hash, rec->model_hash, 32);
    int rc = models_load(c, rec->model_hash, s->params);
    if (rc != 0) {
        snapshot_release(c, s);
        return rc;
    }
    c->model = s;
    if ((rc = outer_state_load(c, rec->completed_rounds)) != 0 ||
        (rc = down_residual_load(c, rec->completed_rounds)) != 0)
        return rc;
    if (c->down_on && (rc = downlink_load(c, rec->model_hash)) != 0)
        return rc;
    round_open(c, rec->round_opened_ms);
    if (c->state == EXP_RUNNING && (rc = round_accumulate_stored(c)) != 0)
        return rc;
    if (round_all_reported_locked(c)) {
        /* The crash came after the last update of the round and before its close. */
        log_info("round %llu: every member had reported before the restart; closing",
                 (unsigned long long)c->round);
        pthread_mutex_lock(&c->mu);   /* no other thread yet; round_close_locked lets mu go */
        round_close_locked(c);
        pthread_mutex_unlock(&c->mu);
    }
    hex_encode(c->model->hash, 32, hex);   /* s is freed if the round closed just above */
    if (c->state == EXP_RUNNING)
        log_info("resumed experiment %s at round %llu of %llu with %zu accepted update(s); "
                 "base model %.16s", c->experiment, (unsigned long long)c->round,
                 (unsigned long long)c->total_rounds, c->n_accepted, hex);
    else
        log_info("experiment %s is finished (%llu rounds); final model %.16s", c->experiment,
                 (unsigned long long)c->total_rounds, hex);
    return 0;
}

int experiment_resume_or_start(struct coord *c)
{
    struct experiment_record rec;
    int found;
    int rc = state_get_experiment(c, &rec, &found);
    if (rc != 0)
        return rc;
    if ((rc = state_load_members(c)) != 0)
        return rc;
    return found ? resume(c, &rec) : start_new(c);
}

static void close_failed(const char *what) __attribute__((noreturn));

/* The downlink: the round's model change is itself compressed (with server-side
 * error feedback), and the new global model is defined as the previous one plus the
 * decoded change, so that every replica that applies the same payload holds exactly
 * the coordinator's model (members check the hash). c->acc is free as scratch here. */
static void downlink_compress(struct coord *c, const struct model_snapshot *prev,
                              struct model_snapshot *next, uint8_t **out, size_t *out_len)
{
    const size_t n = c->n_params;
    struct codec_params dl = c->downlink;
    if (c->round <= c->policy.compression.downlink.dense_warmup_rounds)
        dl.k_per_block = dl.block_size;
    for (size_t i = 0; i < n; i++)
        c->acc[i] = next->params[i] - prev->params[i];
    if (codec_encode(c->acc, n, &dl, dl.error_feedback ? c->down_residual : NULL, out,
                     out_len) != 0)
        close_failed("the downlink update could not be compressed");
    memcpy(next->params, prev->params, n * sizeof(float));
    char why[200];
    if (codec_decode_accumulate(*out, *out_len, n, 1.0f, next->params, why, sizeof why) != 0)
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

/* Fatal: the open round in memory no longer matches LMDB; a restart rebuilds it. */
static void round_failed(const char *what)
{
    log_error("the open round is inconsistent: %s; stopping so that a restart rebuilds it "
              "from the stored updates", what);
    exit(70);
}

/* c->acc becomes the round's average update: the weighted sum over the weight of every
 * member that reported or, with average: senders, of those that carried each value;
 * sparse rounds are then multiplied by the policy's sparse_scale. */
static void average_round(struct coord *c)
{
    struct codec_params cp;
    coord_round_codec(c, c->round, &cp);
    const int sparse = cp.k_per_block < cp.block_size;
    outer_average(c->acc, sparse ? c->support : NULL, c->n_params, c->weight_sum,
                  sparse ? (float)c->policy.compression.uplink.sparse_scale : 1.0f);
}

int round_close_locked(struct coord *c)
{
    if (c->state != EXP_RUNNING || c->n_accepted == 0 || c->closing)
        return 0;
    /* The heavy part (outer step, hashes, downlink, checkpoint fsyncs: seconds at 124M)
     * runs without mu, so Status, long polls and downloads are served meanwhile. Nothing
     * else touches acc, support, outer, down_residual, model or round while closing is
     * set: updates wait for it (check_round_locked), other closes return. */
    c->closing = 1;
    const size_t n = c->n_params;
    struct model_snapshot *const base = c->model;
    pthread_mutex_unlock(&c->mu);
    if (c->opt.close_hook)
        c->opt.close_hook(c->opt.close_hook_arg);

    average_round(c);
    struct model_snapshot *next = snapshot_new(n, base->round + 1);
    if (!next)
        close_failed("out of memory");
    memcpy(next->params, base->params, n * sizeof(float));
    outer_step(&c->outer, next->params, c->acc);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(next->params[i]))
            close_failed("the new model has non-finite parameters");
    }
    uint8_t aggregate_hash[32];
    model_hash(c->acc, n, aggregate_hash);
    uint8_t *down = NULL;
    size_t down_len = 0;
    if (c->down_on)
        downlink_compress(c, base, next, &down, &down_len);
    model_hash(next->params, n, next->hash);
    if (models_save(c, next->params, next->hash) != 0)
        close_failed("the checkpoint could not be written");
    if (outer_state_save(c, next->round) != 0 || down_residual_save(c, next->round) != 0)
        close_failed("the outer optimizer state could not be written");
    if (down && downlink_save(c, next->hash, base->hash, down, down_len) != 0)
        close_failed("the downlink update could not be written");

    pthread_mutex_lock(&c->mu);
    struct round_summary sum = { 0 };
    sum.round = c->round;
    memcpy(sum.model_hash, next->hash, 32);
    sum.members = c->accepted;
    sum.n_members = c->n_accepted;
    sum.closed_ms = time_now_unix_ms();
    double loss_w = 0;
    for (size_t i = 0; i < c->n_accepted; i++) {
        sum.tokens += c->accepted[i].tokens;
        sum.bytes += c->accepted[i].bytes;
        loss_w += (double)c->accepted[i].train_loss * (double)c->accepted[i].tokens;
    }
    sum.mean_train_loss = sum.tokens ? (float)(loss_w / (double)sum.tokens) : 0.0f;

    const uint64_t closed_round = c->round;
    struct model_snapshot *prev = c->model;
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0)
        close_failed("no LMDB write transaction");
    int rc = state_put_round(c, txn, &sum);
    if (rc == 0)
        rc = state_delete_payloads(c, txn);
    for (size_t i = 0; rc == 0 && i < c->n_accepted; i++) {
        struct member_stats *m = coord_member_stats(c, c->accepted[i].id);
        if (m) {
            m->rounds_joined++;
            rc = state_put_member(c, txn, m);
        }
    }
    if (rc == 0)
        rc = record_round_closed(c, txn, &sum, aggregate_hash);
    c->model = next;
    c->round++;
    if (c->round > c->total_rounds)
        c->state = EXP_FINISHED;
    int64_t now = time_now_unix_ms();
    c->round_opened_ms = now;
    if (rc == 0)
        rc = state_put_experiment(c, txn);
    if (rc == 0 && c->state == EXP_FINISHED)
        rc = record_experiment_finished(c, txn);
    if (rc != 0) {
        ledger_txn_abort(c->ledger, txn);
        close_failed("the state could not be written");
    }
    if (ledger_txn_commit(c->ledger, txn) != 0)
        close_failed("the state could not be committed");

    free(c->down_payload);
    c->down_payload = down;
    c->down_len = down_len;
    memcpy(c->down_from, prev->hash, 32);
    char hex[65];
    hex_encode(next->hash, 32, hex);
    log_info("round %llu closed: %zu member(s), %llu tokens, %llu upload bytes, train loss "
             "%.4f, model %.16s", (unsigned long long)closed_round, c->n_accepted,
             (unsigned long long)sum.tokens, (unsigned long long)sum.bytes,
             sum.mean_train_loss, hex);
    uint8_t keep[2][32];
    memcpy(keep[0], next->hash, 32);
    memcpy(keep[1], prev->hash, 32);
    snapshot_release(c, prev);
    if (c->opt.keep_checkpoints > 0)
        models_prune(c, (const uint8_t(*)[32])keep, 2);
    c->closing = 0;
    c->close_pending = 0;
    round_open(c, now);   /* wakes whoever waits for the close */
    if (c->state == EXP_FINISHED)
        log_info("experiment %s finished after %llu rounds", c->experiment,
                 (unsigned long long)c->total_rounds);
    return 0;
}

void round_timer_tick(struct coord *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t now = time_now_unix_ms();
    if (c->close_pending) {
        c->close_pending = 0;
        if (round_all_reported_locked(c)) {
            log_info("round %llu: every remaining member has reported; closing",
                     (unsigned long long)c->round);
            round_close_locked(c);
        }
    }
    if (c->state == EXP_RUNNING && now >= c->deadline_ms) {
        uint32_t min = c->policy.participation.min_members;
        int64_t grace_end = c->deadline_ms + (int64_t)c->policy.participation.grace_s * 1000;
        if (c->n_accepted >= min && c->n_accepted > 0) {
            if (now >= grace_end) {
                log_info("round %llu: deadline and grace period passed with %zu of %zu "
                         "member(s); closing", (unsigned long long)c->round, c->n_accepted,
                         c->n_eligible);
                round_close_locked(c);
            }
        } else if (!c->deadline_logged) {
            log_warn("round %llu passed its deadline with %zu update(s); waiting for "
                     "min_members = %u", (unsigned long long)c->round, c->n_accepted, min);
            c->deadline_logged = 1;
        }
    }
    pthread_mutex_unlock(&c->mu);
}
