/* Experiments one after another: load an approved experiment's policy and buffers,
 * start it (experiment_started) or resume it after a restart, record it failed when
 * its policy no longer loads, cancel it, and start the next queued one when none runs.
 *
 * Crash safety: each step commits its queue change (coordinator/queue.h), the
 * coord.state record of the loaded experiment and its ledger entry in one LMDB
 * transaction; files (the round-0 checkpoint) are written before it. A restart reads
 * coord.state: the experiment it names is loaded again (running: its open round is
 * re-accumulated; ended: its final model is served), else the queue's first is
 * started. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/why.h"
#include "aggregate/round.h"
#include "coordinator/artifacts.h"
#include "coordinator/coord.h"
#include "coordinator/queue.h"
#include "coordinator/record.h"
#include "coordinator/state.h"
#include "model/gpt2.h"
#include "model/layout.h"
#include "model/model_hash.h"
#include "policies/model_source.h"

#define START_RETRY_MS 10000   /* after a storage error starting the next experiment */
#define WAITING_RECHECK_MS 5000 /* the first queued experiment waits for pinned files: look
                                   again this often (and at once when a file arrives) */

_Static_assert(POLICY_MAX_PARAMETERS == GPT2_MAX_PARAMS,
               "policy check must refuse exactly the models the trainer refuses");

void coord_experiment_dir(const struct coord *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s/experiments/%s", c->opt.data_dir, c->experiment);
}

/* COORD_ERR_WAITING with why when the artifact store lacks some of p's pinned files
 * (coordinator/artifacts.h): which, and the command that uploads them. 0 otherwise. */
static int waits_for_files(const struct coord *c, const char *name, const struct policy *p,
                           char *why, size_t cap)
{
    char missing[700];
    if (artifacts_missing(c, p, missing, sizeof missing) == 0)
        return 0;
    return why_fail(why, cap, COORD_ERR_WAITING, "experiment %s waits for pinned files the "
                    "coordinator does not hold: %s; upload them with aulac artifact put "
                    "FILE... (aulac experiment propose uploads them itself): it starts once "
                    "they are held", name, missing);
}

/* The first queued experiment waits for pinned files: c->waiting says why (logged when
 * it changes) and the timer looks again after WAITING_RECHECK_MS, or at once when a file
 * arrives (artifacts.c). mu held (or single-threaded). */
static void note_waiting_locked(struct coord *c, const char *why)
{
    if (strcmp(c->waiting, why) != 0) {
        log_warn("%s", why);
        snprintf(c->waiting, sizeof c->waiting, "%s", why);
    }
    c->next_start_ms = time_mono_ms() + WAITING_RECHECK_MS;
}

/* 1 when the first queued experiment waits for pinned files (noted as above). Looked at
 * before an ended experiment is unloaded, which stays served meanwhile. mu held. */
static int head_waits_locked(struct coord *c)
{
    struct experiment_info head;
    int found = 0, waits = 0;
    if (queue_head(c, NULL, &head, &found) != 0 || !found)
        return 0;
    struct policy p;
    struct policy_error err;
    char why[sizeof c->waiting];
    if (policy_load_buffer(head.experiment, head.policy_yaml, head.policy_yaml_len, &p,
                           &err) == 0) {
        waits = waits_for_files(c, head.experiment, &p, why, sizeof why) != 0;
        policy_free(&p);
    }
    if (waits)
        note_waiting_locked(c, why);
    experiment_info_free(&head);
    return waits;
}

/* --- the next experiment's model, prepared without mu ------------------------------ */

struct coord_prepared {
    char experiment[COORD_EXPERIMENT_MAX + 1];
    uint8_t policy_hash[32];
    int failed;                     /* its files fail the check or do not load: why */
    char why[900];
    int have_layout;                /* layout not yet taken by load_policy */
    int layout_taken;               /* c->layout is this layout: params match it */
    struct model_layout layout;
    float *params;                  /* round 0 (layout.n_params); NULL once taken */
};

static void prepared_free(struct coord_prepared *pr)
{
    if (!pr)
        return;
    if (pr->have_layout)
        model_layout_free(&pr->layout);
    free(pr->params);
    free(pr);
}

void experiment_prepared_free(struct coord *c)
{
    prepared_free(c->prepared);
    c->prepared = NULL;
}

/* c->prepared when it is info's (mu held); NULL otherwise. */
static struct coord_prepared *prepared_for(struct coord *c, const struct experiment_info *info)
{
    struct coord_prepared *pr = c->prepared;
    if (pr && strcmp(pr->experiment, info->experiment) == 0 &&
        memcmp(pr->policy_hash, info->policy_hash, 32) == 0)
        return pr;
    return NULL;
}

/* The pinned files' check (policy_check_model_files), the layout and the round-0
 * parameters of p into pr; pr->failed with why when the files are not fit. 0, or
 * COORD_ERR_NOMEM. */
static int prepare_model(struct coord *c, const struct policy *p, struct coord_prepared *pr)
{
    char what[800];
    int rc = policy_check_model_files(p, artifacts_resolver, c, what, sizeof what);
    if (rc == POLICY_ERR_NOMEM)
        return COORD_ERR_NOMEM;
    if (rc != 0) {
        pr->failed = 1;
        snprintf(pr->why, sizeof pr->why, "its pinned files fail the check: %s", what);
        return 0;
    }
    rc = policy_model_layout(p, artifacts_resolver, c, &pr->layout, what, sizeof what);
    if (rc == POLICY_ERR_NOMEM)
        return COORD_ERR_NOMEM;
    if (rc != 0) {
        pr->failed = 1;
        snprintf(pr->why, sizeof pr->why, "its model does not load: %s", what);
        return 0;
    }
    pr->have_layout = 1;
    pr->params = malloc((size_t)pr->layout.n_params * sizeof(float) + 1);
    if (!pr->params)
        return COORD_ERR_NOMEM;
    rc = policy_model_init(p, &pr->layout, artifacts_resolver, c, pr->params, what,
                           sizeof what);
    if (rc == POLICY_ERR_NOMEM)
        return COORD_ERR_NOMEM;
    if (rc != 0) {
        pr->failed = 1;
        snprintf(pr->why, sizeof pr->why, "cannot initialize the model: %s", what);
    }
    return 0;
}

void experiment_prepare_next(struct coord *c)
{
    pthread_mutex_lock(&c->mu);
    int busy = c->state == EXP_RUNNING || c->rnd.closing || c->stopping ||
               time_mono_ms() < c->next_start_ms;
    pthread_mutex_unlock(&c->mu);
    if (busy)
        return;
    struct experiment_info head;
    int found = 0;
    if (queue_head(c, NULL, &head, &found) != 0 || !found)
        return;
    pthread_mutex_lock(&c->mu);
    int have = prepared_for(c, &head) != NULL;
    pthread_mutex_unlock(&c->mu);
    struct policy p;
    struct policy_error err;
    char missing[700];
    if (have || policy_load_buffer(head.experiment, head.policy_yaml, head.policy_yaml_len, &p,
                                   &err) != 0) {
        experiment_info_free(&head);   /* prepared already, or load_policy says why */
        return;
    }
    struct coord_prepared *pr = NULL;
    if (artifacts_missing(c, &p, missing, sizeof missing) == 0 &&
        (pr = calloc(1, sizeof *pr)) != NULL) {
        snprintf(pr->experiment, sizeof pr->experiment, "%s", head.experiment);
        memcpy(pr->policy_hash, head.policy_hash, 32);
        double t0 = time_mono_s();
        if (prepare_model(c, &p, pr) != 0) {
            log_warn("experiment %s: out of memory preparing its model; trying at its start",
                     head.experiment);
            prepared_free(pr);
            pr = NULL;
        } else if (!pr->failed) {
            log_info("experiment %s: pinned files checked, model of %" PRIu64 " parameters "
                     "read in %.2f s", head.experiment, pr->layout.n_params,
                     time_mono_s() - t0);
        }
    }
    policy_free(&p);
    experiment_info_free(&head);
    if (!pr)
        return;
    pthread_mutex_lock(&c->mu);
    prepared_free(c->prepared);
    c->prepared = pr;
    c->next_start_ms = 0;
    pthread_mutex_unlock(&c->mu);
}

/* c->policy and what derives from it, from the record's exact text. */
static int load_policy(struct coord *c, const struct experiment_info *info, char *why,
                       size_t cap)
{
    const char *name = info->experiment;
    struct policy_error err;
    c->policy_yaml = malloc(info->policy_yaml_len + 1);
    if (!c->policy_yaml)
        return COORD_ERR_NOMEM;
    memcpy(c->policy_yaml, info->policy_yaml, info->policy_yaml_len);
    c->policy_yaml[info->policy_yaml_len] = 0;
    c->policy_yaml_len = info->policy_yaml_len;
    int rc = policy_load_buffer(name, c->policy_yaml, c->policy_yaml_len, &c->policy, &err);
    if (rc == POLICY_ERR_NOMEM)
        return COORD_ERR_NOMEM;   /* ours, not the policy's */
    if (rc != 0)
        return why_fail(why, cap, COORD_ERR_CONFIG, "its policy no longer loads: %s",
                        err.message);
    if (policy_hash(&c->policy, c->policy_hash) != 0)
        return COORD_ERR_NOMEM;
    if (memcmp(c->policy_hash, info->policy_hash, 32) != 0) {
        char want[65], got[65];
        hex_encode(info->policy_hash, 32, want);
        hex_encode(c->policy_hash, 32, got);
        return why_fail(why, cap, COORD_ERR_CONFIG, "its policy text now hashes to %.16s, "
                        "not the approved %.16s (the policy schema changed)", got, want);
    }
    struct policy_round_plan first;
    char what[300];
    if (policy_round_plan(&c->policy, 1, &first, what, sizeof what) != 0)
        return why_fail(why, cap, COORD_ERR_CONFIG, "%s", what);
    /* The model: its pinned files must all be held (else the experiment waits, queued),
     * and its layout comes from them (external) or from the GPT-2 sizes. */
    if ((rc = waits_for_files(c, name, &c->policy, why, cap)) != 0)
        return rc;
    struct coord_prepared *pr = prepared_for(c, info);
    if (pr && pr->failed) {
        rc = why_fail(why, cap, COORD_ERR_CONFIG, "%s", pr->why);
        experiment_prepared_free(c);
        return rc;
    }
    if (pr && pr->have_layout) {   /* read by the timer without mu */
        c->layout = pr->layout;
        memset(&pr->layout, 0, sizeof pr->layout);
        pr->have_layout = 0;
        pr->layout_taken = 1;
    } else {
        /* Not prepared (at start-up, single-threaded): the same here. A queued one's
         * files are checked before it starts (a running or ended one's were). */
        char checked[800];
        if (info->phase == PHASE_QUEUED &&
            (rc = policy_check_model_files(&c->policy, artifacts_resolver, c, checked,
                                           sizeof checked)) != 0) {
            if (rc == POLICY_ERR_NOMEM)
                return COORD_ERR_NOMEM;
            return why_fail(why, cap, COORD_ERR_CONFIG, "its pinned files fail the check: %s",
                            checked);
        }
        rc = policy_model_layout(&c->policy, artifacts_resolver, c, &c->layout, what,
                                 sizeof what);
        if (rc == POLICY_ERR_NOMEM)
            return COORD_ERR_NOMEM;
        if (rc != 0)
            return why_fail(why, cap, COORD_ERR_CONFIG, "its model does not load: %s", what);
    }
    if (first.n_params && first.n_params != c->layout.n_params)
        return why_fail(why, cap, COORD_ERR_CONFIG, "its model has %llu parameters, its "
                        "GPT-2 sizes say %zu", (unsigned long long)c->layout.n_params,
                        first.n_params);
    c->cfg = c->layout.kind == MODEL_LAYOUT_GPT2 ? c->layout.gpt2 : (struct gpt2_config){ 0 };
    c->n_params = (size_t)c->layout.n_params;
    c->down_on = first.downlink_on;
    c->down_ef = first.downlink_on && first.downlink.error_feedback;
    /* Members that may report: in the policy (all when it lists none) and in the live
     * roster (governance keeps c->roster; it recounts after each change). */
    c->n_eligible = coord_eligible_count_locked(c);
    for (size_t i = 0; i < c->policy.participation.n_members; i++)
        if (!roster_find(&c->roster, c->policy.participation.members[i]))
            log_warn("experiment %s: policy member '%s' is not in the roster: it takes part "
                     "once the members add it (aulac member propose-add)", name,
                     c->policy.participation.members[i]);
    if (c->n_eligible < c->policy.participation.min_members || c->n_eligible == 0)
        return why_fail(why, cap, COORD_ERR_CONFIG, "only %zu %s in the roster, fewer than "
                        "participation.min_members %u", c->n_eligible,
                        policy_all_members(&c->policy) ? "member(s)"
                                                       : "policy member(s) are",
                        c->policy.participation.min_members);
    return 0;
}

#define EVAL_MEASURES ((1u << POLICY_MEASURE_LOO) | (1u << POLICY_MEASURE_SHAPLEY))

/* The evaluation set the policy pins (contribution.evaluation_set) and its evaluator, when
 * loo or shapley is measured: the file in --eval-sets must hash as pinned (the check the
 * proposal passed, credit/evalset.h) and hold a window. COORD_ERR_CONFIG with why, or
 * COORD_ERR_NOMEM. */
static int load_evaluator(struct coord *c, char *why, size_t cap)
{
    const struct policy_contribution *pc = &c->policy.contribution;
    char what[800];
    int rc = evalset_check_policy(pc, c->policy.training.seq_len, c->eval_sets_dir, what, sizeof what);
    if (rc == CREDIT_ERR_NOMEM)
        return COORD_ERR_NOMEM;
    if (rc != 0)
        return why_fail(why, cap, COORD_ERR_CONFIG, "%s", what);
    if (!(pc->measures & EVAL_MEASURES))
        return 0;
    struct policy_round_plan first;
    if (policy_round_plan(&c->policy, 1, &first, what, sizeof what) != 0)
        return why_fail(why, cap, COORD_ERR_CONFIG, "%s", what);
    char path[4096 + POLICY_EVALSET_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", c->eval_sets_dir, pc->evalset_name);
    rc = evalset_load(path, pc->evalset_hash, &c->evalset, what, sizeof what);
    if (rc == 0)
        rc = evaluator_create(&c->cfg, &c->evalset, pc->eval_windows, first.seq_len,
                              &c->evaluator, what, sizeof what);
    if (rc == CREDIT_ERR_NOMEM)
        return COORD_ERR_NOMEM;
    if (rc != 0)
        return why_fail(why, cap, COORD_ERR_CONFIG, "contribution.evaluation_set: %s", what);
    log_info("experiment %s: evaluation set %s (%zu bytes), %u windows of %u bytes",
             c->experiment, path, c->evalset.len, pc->eval_windows, first.seq_len);
    return 0;
}

int experiment_load(struct coord *c, const struct experiment_info *info, char *why, size_t cap)
{
    snprintf(why, cap, "out of memory");
    snprintf(c->experiment, sizeof c->experiment, "%s", info->experiment);
    memcpy(c->proposal_hash, info->proposal_hash, 32);
    c->state = EXP_IDLE;   /* loaded, not started or resumed yet */
    int rc = load_policy(c, info, why, cap);
    if (rc == 0 && round_init(&c->rnd, c->n_params) != 0)
        rc = COORD_ERR_NOMEM;
    /* The outer optimizer as the verifier builds it (aggregate/round.h). */
    if (rc == 0 && agg_outer_init(&c->policy, c->n_params, &c->rnd.outer) != 0)
        rc = COORD_ERR_NOMEM;
    /* Its vectors live in files (models.c, outer_state_open): none in memory. calloc's
     * untouched pages cost nothing resident; they go at once. */
    if (rc == 0)
        outer_free(&c->rnd.outer);
    /* What each close writes, kept free by the admission of uploads (update.c). */
    if (rc == 0) {
        c->close_reserve_bytes = models_close_write_bytes(c);
        char size[32];
        file_size_words(c->close_reserve_bytes, size, sizeof size);
        log_info("experiment %s: a round close writes up to %llu bytes (%s): uploads are "
                 "admitted while that much stays free beside --upload-free-margin",
                 c->experiment, (unsigned long long)c->close_reserve_bytes, size);
    }
    /* An ended experiment is only served: it scores nothing more. */
    if (rc == 0 && !queue_phase_ended(info->phase))
        rc = load_evaluator(c, why, cap);
    char dir[4096];
    coord_experiment_dir(c, dir, sizeof dir - 16);
    strcat(dir, "/outer");
    int mk;
    if (rc == 0 && (mk = file_mkdirs(dir, 0755)) != 0) {
        log_error("cannot create %s: %s", dir, strerror(-mk));
        rc = COORD_ERR_IO;
    }
    if (rc != 0)
        experiment_unload(c);
    return rc;
}

void experiment_unload(struct coord *c)
{
    if (c->rnd.base)
        snapshot_release(c, c->rnd.base);
    c->rnd.base = NULL;
    evaluator_destroy(c->evaluator);
    c->evaluator = NULL;
    evalset_free(&c->evalset);
    memset(&c->evalset, 0, sizeof c->evalset);
    round_free(&c->rnd);   /* buffers, downlink, outer state; number, accepted set 0 */
    free(c->policy_yaml);
    c->policy_yaml = NULL;
    c->policy_yaml_len = 0;
    policy_free(&c->policy);
    memset(&c->policy, 0, sizeof c->policy);
    memset(c->policy_hash, 0, 32);
    memset(c->proposal_hash, 0, 32);
    sodium_memzero(c->dp_seed, sizeof c->dp_seed);
    c->have_dp_seed = 0;
    memset(c->initial_hash, 0, 32);
    c->have_initial_hash = 0;
    memset(&c->cfg, 0, sizeof c->cfg);
    model_layout_free(&c->layout);
    c->down_on = c->down_ef = 0;
    c->n_params = 0;
    c->close_reserve_bytes = 0;
    c->experiment[0] = 0;
    c->state = EXP_IDLE;
    c->total_rounds = 0;
    c->n_eligible = 0;
}

/* The loaded (queued) experiment info starts: round-0 model, experiment_started, the
 * record running and out of the queue, in one transaction. */
static int start_loaded(struct coord *c, const struct experiment_info *info, char *why,
                        size_t cap)
{
    struct model_snapshot *s = snapshot_new(c->n_params, 0);
    if (!s)
        return COORD_ERR_NOMEM;
    /* Round 0: gpt2_init_params from model.seed, or the init file's tensors
     * (policies/model_source.h), hashed as the layout names models. */
    char what[400];
    struct coord_prepared *pr = prepared_for(c, info);
    int rc = 0;
    if (pr && pr->params && pr->layout_taken) {
        free(s->params);   /* read by the timer without mu */
        s->params = pr->params;
        pr->params = NULL;
    } else {
        rc = policy_model_init(&c->policy, &c->layout, artifacts_resolver, c, s->params, what,
                               sizeof what);
    }
    if (pr)
        experiment_prepared_free(c);
    if (rc != 0) {
        snapshot_release(c, s);
        if (rc == POLICY_ERR_NOMEM)
            return COORD_ERR_NOMEM;
        return why_fail(why, cap, COORD_ERR_CONFIG, "cannot initialize the model: %s", what);
    }
    model_layout_hash(&c->layout, s->params, s->hash);
    if ((rc = models_save(c, s->params, s->hash)) != 0) {
        snapshot_release(c, s);
        return rc;
    }
    coord_snapshot_to_file(c, s);   /* else it stays in memory (logged) */
    c->rnd.base = s;
    c->state = EXP_RUNNING;
    c->rnd.number = 1;
    c->total_rounds = c->policy.training.rounds;
    if ((rc = coord_dp_seed_load(c, 1)) != 0) {
        c->rnd.base = NULL;
        c->state = EXP_IDLE;
        snapshot_release(c, s);
        return why_fail(why, cap, rc, "cannot keep the experiment's DP noise seed");
    }
    c->rnd.opened_ms = time_now_unix_ms();

    struct experiment_info rec = *info;
    rec.phase = PHASE_RUNNING;
    /* A privacy budget that round 1 would already pass: started and finished at once,
     * with the reason (no round is opened). */
    char budget[200] = "";
    if (experiment_budget_ends_locked(c, 1, budget, sizeof budget)) {
        c->state = EXP_FINISHED;
        rec.phase = PHASE_FINISHED;
        rec.ended_ms = time_now_unix_ms();
        rec.rounds_done = 0;
        memcpy(rec.final_model_hash, s->hash, 32);
    }
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0) {
        rc = COORD_ERR_STATE;
    } else {
        rc = record_experiment_started(c, txn);
        if (rc == 0 && budget[0])
            rc = record_experiment_finished(c, txn, budget);
        if (rc == 0)
            rc = state_put_experiment(c, txn);
        if (rc == 0)
            rc = queue_record_put_txn(c, txn, &rec);
        if (rc == 0)
            rc = queue_remove_txn(c, txn, info->seq);
        if (rc != 0)
            ledger_txn_abort(c->ledger, txn);
        else if (ledger_txn_commit(c->ledger, txn) != 0)
            rc = COORD_ERR_STATE;
    }
    if (rc != 0) {
        c->state = EXP_IDLE;
        return rc;
    }
    round_open(c, c->rnd.opened_ms);
    char hex[65];
    hex_encode(s->hash, 32, hex);
    log_info("experiment %s started: %llu rounds, %zu parameters, round-0 model %.16s",
             c->experiment, (unsigned long long)c->total_rounds, c->n_params, hex);
    if (budget[0])
        log_warn("experiment %s finished before its first round: %s", c->experiment, budget);
    return 0;
}

/* A queued experiment that cannot run: experiment_failed with why, out of the queue. */
static int fail_queued(struct coord *c, const struct experiment_info *info, const char *why)
{
    log_error("experiment %s cannot start: %s; recorded as failed, the queue moves on",
              info->experiment, why);
    struct experiment_info rec = *info;
    rec.phase = PHASE_FAILED;
    rec.ended_ms = time_now_unix_ms();
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0)
        return COORD_ERR_STATE;
    int rc = record_experiment_event(c, txn, ENTRY_EXPERIMENT_FAILED, info->experiment,
                                     info->policy_hash, info->proposal_hash, NULL, 0, why);
    if (rc == 0)
        rc = queue_record_put_txn(c, txn, &rec);
    if (rc == 0)
        rc = queue_remove_txn(c, txn, info->seq);
    if (rc != 0) {
        ledger_txn_abort(c->ledger, txn);
        return rc;
    }
    return ledger_txn_commit(c->ledger, txn) == 0 ? 0 : COORD_ERR_STATE;
}

/* Loads the first queued experiment that loads (the others are recorded failed) and,
 * with start, starts it. Nothing loaded on entry; 0 also when the queue is empty. */
static int load_queued(struct coord *c, int start)
{
    for (;;) {
        struct experiment_info head;
        int found;
        int rc = queue_head(c, NULL, &head, &found);
        if (rc != 0 || !found)
            return rc;
        char why[sizeof c->waiting];
        rc = experiment_load(c, &head, why, sizeof why);
        if (rc == COORD_ERR_WAITING) {   /* nothing loaded; it stays first in the queue */
            note_waiting_locked(c, why);
            experiment_info_free(&head);
            return 0;
        }
        if (rc == 0)
            c->waiting[0] = 0;
        if (rc == 0 && start && (rc = start_loaded(c, &head, why, sizeof why)) != 0)
            experiment_unload(c);
        if (rc == COORD_ERR_CONFIG)
            rc = fail_queued(c, &head, why);
        else if (rc == 0)
            found = 0;   /* done */
        experiment_info_free(&head);
        if (rc != 0 || !found)
            return rc;
    }
}

int experiment_open(struct coord *c)
{
    struct experiment_record rec;
    int found;
    int rc = state_get_experiment(c, &rec, &found);
    if (rc != 0)
        return rc;
    if (!found)
        return load_queued(c, 0);
    struct experiment_info info;
    if ((rc = queue_get(c, rec.experiment, &info, &found)) != 0)
        return rc;
    if (!found) {
        log_error("%s ran experiment %s, which has no record in its queue (coord.experiments): "
                  "the data directory was made by an older aulac-coordinator; finish that "
                  "experiment with it, or start this one on a new --data-dir",
                  c->opt.data_dir, rec.experiment);
        return COORD_ERR_STATE;
    }
    char why[sizeof c->waiting];
    rc = experiment_load(c, &info, why, sizeof why);
    if (rc == COORD_ERR_WAITING && rec.state == EXP_RUNNING) {
        /* Files it started with are gone from the store (deleted by hand): it cannot
         * resume without them, and failing it for that would be wrong. */
        log_error("%s; the experiment ran with them: put each back as %s/artifacts/<its "
                  "BLAKE2b-256 in hex> and restart",
                  why, c->opt.data_dir);
        experiment_info_free(&info);
        return COORD_ERR_STATE;
    }
    if (rc == COORD_ERR_WAITING)
        rc = COORD_ERR_CONFIG;   /* an ended one: no longer served, as below */
    if (rc != COORD_ERR_CONFIG) {
        experiment_info_free(&info);
        return rc;
    }
    /* Its policy no longer loads (e.g. the schema changed under it): a running one
     * fails; an ended one is no longer served. Either way nothing is loaded after. */
    MDB_txn *txn;
    if (ledger_txn_begin(c->ledger, &txn) != 0) {
        experiment_info_free(&info);
        return COORD_ERR_STATE;
    }
    rc = state_delete_experiment(c, txn);
    if (rc == 0 && rec.state == EXP_RUNNING) {
        log_error("experiment %s cannot resume: %s; recorded as failed", info.experiment, why);
        info.phase = PHASE_FAILED;
        info.ended_ms = time_now_unix_ms();
        info.rounds_done = rec.completed_rounds;
        memcpy(info.final_model_hash, rec.model_hash, 32);
        rc = record_experiment_event(c, txn, ENTRY_EXPERIMENT_FAILED, info.experiment,
                                     info.policy_hash, info.proposal_hash, rec.model_hash, rec.completed_rounds, why);
        if (rc == 0)
            rc = queue_record_put_txn(c, txn, &info);
    } else if (rc == 0) {
        log_warn("experiment %s (ended) is not loaded: %s", info.experiment, why);
    }
    experiment_info_free(&info);
    if (rc != 0) {
        ledger_txn_abort(c->ledger, txn);
        return rc;
    }
    if (ledger_txn_commit(c->ledger, txn) != 0)
        return COORD_ERR_STATE;
    return load_queued(c, 0);
}

static int resume(struct coord *c, const struct experiment_record *rec)
{
    char hex[65];
    if (memcmp(rec->policy_hash, c->policy_hash, 32) != 0) {
        log_error("the experiment record of %s names another policy than its queue record",
                  rec->experiment);
        return COORD_ERR_STATE;
    }
    c->state = (enum coord_exp_state)rec->state;
    c->rnd.number = rec->round;
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
    coord_snapshot_to_file(c, s);   /* else it stays in memory (logged) */
    c->rnd.base = s;
    if (c->state == EXP_RUNNING && (rc = coord_dp_seed_load(c, 0)) != 0)
        return rc;
    if ((rc = outer_state_load(c, rec->completed_rounds)) != 0 ||
        (rc = down_residual_load(c, rec->completed_rounds)) != 0)
        return rc;
    if (c->down_on && (rc = downlink_load(c, rec->model_hash)) != 0)
        return rc;
    round_open(c, rec->round_opened_ms);
    if (c->state == EXP_RUNNING && (rc = round_accumulate_stored(c)) != 0)
        return rc;
    if (round_all_reported_locked(c)) {
        /* The crash came after the last update of the round and before its close: the
         * timer thread closes it once it runs (coord_serve). */
        log_info("round %llu: every member had reported before the restart; the timer "
                 "closes it", (unsigned long long)c->rnd.number);
        c->rnd.close_pending = 1;
    }
    hex_encode(c->rnd.base->hash, 32, hex);
    if (c->state == EXP_RUNNING)
        log_info("resumed experiment %s at round %llu of %llu with %zu accepted update(s); "
                 "base model %.16s", c->experiment, (unsigned long long)c->rnd.number,
                 (unsigned long long)c->total_rounds, c->rnd.n_accepted, hex);
    else
        log_info("experiment %s is %s (%llu rounds); last model %.16s", c->experiment,
                 c->state == EXP_FINISHED ? "finished" : c->state == EXP_CANCELLED
                 ? "cancelled" : "failed", (unsigned long long)c->rnd.base->round, hex);
    return 0;
}

int experiment_resume_or_start(struct coord *c)
{
    int rc = state_load_members(c);
    if (rc != 0)
        return rc;
    if (!c->experiment[0]) {
        if (!c->waiting[0])
            log_info("no experiment approved yet: serving idle until one is queued");
        return 0;
    }
    struct experiment_record rec;
    int found;
    if ((rc = state_get_experiment(c, &rec, &found)) != 0)
        return rc;
    if (found && strcmp(rec.experiment, c->experiment) == 0)
        return resume(c, &rec);
    struct experiment_info head;
    if ((rc = queue_head(c, NULL, &head, &found)) != 0)
        return rc;
    if (!found || strcmp(head.experiment, c->experiment) != 0) {
        experiment_info_free(&head);
        log_error("experiment %s was loaded but is not the first in the queue", c->experiment);
        return COORD_ERR_STATE;
    }
    char why[sizeof c->waiting];
    rc = start_loaded(c, &head, why, sizeof why);
    if (rc != 0)
        experiment_unload(c);
    if (rc == COORD_ERR_CONFIG && (rc = fail_queued(c, &head, why)) == 0)
        rc = load_queued(c, 1);
    experiment_info_free(&head);
    return rc;
}

void experiment_start_next_locked(struct coord *c)
{
    /* validating: an acceptance reads the policy outside mu (update_accept) */
    if (c->state == EXP_RUNNING || c->rnd.closing || c->stopping || c->validating)
        return;
    int64_t now = time_mono_ms();
    if (now < c->next_start_ms)
        return;
    size_t n = 0;
    if (queue_length(c, &n) != 0)
        return;
    if (n == 0) {
        c->waiting[0] = 0;   /* the one that waited was cancelled or withdrawn */
        return;
    }
    if (c->experiment[0] && head_waits_locked(c))
        return;
    if (c->experiment[0])
        log_info("experiment %s has ended; starting the next of %zu queued", c->experiment, n);
    experiment_unload(c);
    int rc = load_queued(c, 1);
    if (rc != 0) {
        log_error("cannot start the next queued experiment: %s; trying again in %d s",
                  coord_strerror(rc), START_RETRY_MS / 1000);
        c->next_start_ms = now + START_RETRY_MS;
    }
    pthread_cond_broadcast(&c->changed);
}

int experiment_cancel_locked(struct coord *c, MDB_txn *txn, const char *experiment,
                             const char *reason, char *why, size_t cap)
{
    struct experiment_info info;
    int found;
    int rc = queue_get_txn(c, txn, experiment, &info, &found);
    if (rc != 0)
        return rc;
    if (!found) {
        snprintf(why, cap, "no experiment %s was approved here", experiment);
        return COORD_ERR_STATE;
    }
    const int running = info.phase == PHASE_RUNNING && c->state == EXP_RUNNING &&
                        strcmp(c->experiment, experiment) == 0;
    if (info.phase != PHASE_QUEUED && !running) {
        snprintf(why, cap, "experiment %s has already ended (%s): only a queued or running "
                 "experiment can be cancelled", experiment, queue_phase_name(info.phase));
        experiment_info_free(&info);
        return COORD_ERR_STATE;
    }
    const uint64_t seq = info.seq;
    info.phase = PHASE_CANCELLED;
    info.ended_ms = time_now_unix_ms();
    if (running) {
        /* A round close computing outside mu now (c->rnd.closing) sees the state and drops
         * its result (experiment.c, close_commit_locked): its model never becomes the
         * experiment's. */
        info.rounds_done = c->rnd.base->round;
        memcpy(info.final_model_hash, c->rnd.base->hash, 32);
        rc = record_experiment_event(c, txn, ENTRY_EXPERIMENT_CANCELLED, experiment,
                                     info.policy_hash, info.proposal_hash, c->rnd.base->hash,
                                     c->rnd.base->round, reason);
        /* The open round's accepted payloads stay in the payload store (spool.h), where
         * their update_accepted entries name them; only their rows go. */
        if (rc == 0)
            rc = state_delete_payloads(c, txn);
        if (rc == 0) {
            c->state = EXP_CANCELLED;
            rc = state_put_experiment(c, txn);
            if (rc != 0)
                c->state = EXP_RUNNING;
        }
    } else {
        rc = record_experiment_event(c, txn, ENTRY_EXPERIMENT_CANCELLED, experiment,
                                     info.policy_hash, info.proposal_hash, NULL, 0, reason);
        if (rc == 0)
            rc = queue_remove_txn(c, txn, seq);
    }
    if (rc == 0)
        rc = queue_record_put_txn(c, txn, &info);
    experiment_info_free(&info);
    if (rc != 0) {
        if (running)
            c->state = EXP_RUNNING;
        snprintf(why, cap, "the cancellation could not be written (storage error)");
        return rc;
    }
    if (running) {
        c->rnd.n_accepted = 0;
        c->rnd.weight_sum = 0;
        log_info("experiment %s cancelled at round %llu: %s", experiment,
                 (unsigned long long)c->rnd.number, reason ? reason : "");
    } else {
        log_info("queued experiment %s cancelled: %s", experiment, reason ? reason : "");
    }
    pthread_cond_broadcast(&c->changed);
    return 0;
}
