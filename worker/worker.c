#include "worker/worker.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "crypto/envelope.h"
#include "model/model_hash.h"
#include "proto/service.h"
#include "proto/update_msg.h"
#include "policies/model_source.h"
#include "worker/artifacts.h"
#include "worker/auto_vote.h"
#include "worker/health.h"
#include "worker/inner.h"
#include "worker/ledger_watch.h"
#include "worker/node.h"
#include "worker/node_worker.h"
#include "worker/plugin.h"
#include "worker/state.h"

#define TASK_WAIT_MS 20000u

static volatile sig_atomic_t stop_flag;
void worker_request_stop(void) { stop_flag = 1; }

/* hello and join on SIGINT/SIGTERM: worker_run exits 0 (WORKER_EXIT_DONE), as when the
 * task loop stops. */
#define STOPPED (-100)

/* Sleeps up to ms, waking early on stop. */
static void nap(int64_t ms)
{
    while (ms > 0 && !stop_flag) {
        int64_t s = ms < 100 ? ms : 100;
        time_sleep_ms(s);
        ms -= s;
    }
}

/* --- the coordinator's answers ---------------------------------------------------- */

/* While the coordinator is away, calls fail at once; the worker waits on the channel
 * instead (fed_client_wait_ready), which retries the connection at least every
 * RPC_RECONNECT_BACKOFF_MAX_MS and returns as soon as it is up: the next call goes
 * out within about a second of the coordinator serving again. */
#define AWAY_WAIT_MS       1000    /* then retry the call (and look at the stop flag) */
#define AWAY_MIN_GAP_MS    100     /* between calls, even when the channel says ready */
#define AWAY_LOG_EVERY_MS  30000
#define RETRY_MIN_MS       250     /* other failures: exponential backoff ... */
#define RETRY_MAX_MS       5000    /* ... up to this */

enum worker_call_outcome worker_call_outcome(int rc, grpc_status_code code)
{
    if (rc == 0)
        return WORKER_CALL_OK;
    if (code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED)
        return WORKER_CALL_AWAY;
    if (code == GRPC_STATUS_PERMISSION_DENIED)
        return WORKER_CALL_NOT_IN_ROSTER;
    return WORKER_CALL_FAILED;
}

/* Every call to the coordinator reports its outcome here, with the monotonic time it
 * started. A run of calls that did not reach it is logged once (and every
 * AWAY_LOG_EVERY_MS), and the first call that gets through says how long the
 * coordinator was away and how long that call took (a long poll holds its answer up to
 * TASK_WAIT_MS). A roster refusal is logged with what to do and sets w->not_in_roster. */
static enum worker_call_outcome coordinator_outcome(struct worker *w, int64_t call_start_ms,
                                                    int rc, const struct rpc_status *st)
{
    const enum worker_call_outcome o = worker_call_outcome(rc, st->code);
    if (o == WORKER_CALL_AWAY) {
        int64_t now = time_mono_ms();
        if (!w->away_since_ms) {
            w->away_since_ms = now;
            w->away_logged_ms = now;
            log_warn("the coordinator at %s does not answer (%s); waiting for it",
                     w->opt.coordinator, st->details);
        } else if (now - w->away_logged_ms >= AWAY_LOG_EVERY_MS) {
            w->away_logged_ms = now;
            log_warn("the coordinator at %s has not answered for %.0f s (%s)", w->opt.coordinator,
                     (double)(now - w->away_since_ms) / 1e3, st->details);
        }
        return o;
    }
    if (w->away_since_ms)
        log_info("the coordinator answers again: unreachable for %.2f s until the call "
                 "that got through, which took %.2f s", (double)(call_start_ms -
                 w->away_since_ms) / 1e3, (double)(time_mono_ms() - call_start_ms) / 1e3);
    w->away_since_ms = 0;
    if (o == WORKER_CALL_NOT_IN_ROSTER) {
        if (!w->not_in_roster)
            log_error("the coordinator refuses member %s: the member, or the key it signs "
                      "with, is no longer in the alliance roster (%s). Stopping (exit %d): "
                      "no retry can pass. If the member was removed, this worker has nothing "
                      "more to do; if its key was rotated, restart it with the new --key; "
                      "`aulac member list` shows the roster", w->opt.member, st->details,
                      WORKER_EXIT_NOT_IN_ROSTER);
        w->not_in_roster = 1;
    }
    return o;
}

/* The wait before retrying a call that reached the coordinator and failed: *backoff,
 * which doubles from RETRY_MIN_MS up to RETRY_MAX_MS. */
static int64_t backoff_next(int64_t *backoff)
{
    int64_t ms = *backoff < RETRY_MIN_MS ? RETRY_MIN_MS : *backoff;
    *backoff = ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : ms * 2;
    return ms;
}

/* Before retrying a call with outcome o: while the coordinator is away, until the
 * channel is connected again (at most AWAY_WAIT_MS); else backoff_next(backoff), with
 * what failed logged as `what`. */
static void retry_pause(struct worker *w, enum worker_call_outcome o, int64_t *backoff,
                        const char *what, const struct rpc_status *st)
{
    health_beat(o == WORKER_CALL_AWAY ? "away" : "waiting", w->away_since_ms);
    if (o == WORKER_CALL_AWAY) {
        int64_t t0 = time_mono_ms();
        (void)fed_client_wait_ready(w->client, AWAY_WAIT_MS);
        nap(AWAY_MIN_GAP_MS - (time_mono_ms() - t0));
        return;
    }
    int64_t ms = backoff_next(backoff);
    log_warn("%s (%s); retrying in %.1f s", what, st->details, ms / 1e3);
    nap(ms);
}

/* --- connecting ------------------------------------------------------------- */

static int hello(struct worker *w)
{
    int64_t start = time_mono_ms(), backoff = 0;
    for (;;) {
        Aulac__V1__HelloRequest q = AULAC__V1__HELLO_REQUEST__INIT;
        q.client_version = "aulac-worker 0.1";
        q.member_id = (char *)w->opt.member;
        Aulac__V1__HelloReply *r = NULL;
        struct rpc_status st = { 0 };
        int64_t t0 = time_mono_ms();
        int rc = fed_hello(w->client, &q, &r, &st);
        enum worker_call_outcome o = coordinator_outcome(w, t0, rc, &st);
        if (rc == 0) {
            int ok = r->coordinator_public_key.len == 32;
            if (ok)
                memcpy(w->coordinator_key, r->coordinator_public_key.data, 32);
            log_info("connected to %s (%s, alliance %s)", w->opt.coordinator, r->server_version,
                     r->alliance);
            aulac__v1__hello_reply__free_unpacked(r, NULL);
            if (!ok) {
                log_error("the coordinator sent no valid public key");
                return WORKER_EXIT_ERROR;
            }
            if (w->opt.coordinator_pub) {
                struct crypto_public_key pk;
                rc = crypto_public_key_load(w->opt.coordinator_pub, &pk);
                if (rc != 0) {
                    log_error("cannot read %s: %s", w->opt.coordinator_pub, crypto_strerror(rc));
                    return WORKER_EXIT_ERROR;
                }
                if (!crypto_equal(pk.key, w->coordinator_key, 32)) {
                    log_error("the coordinator at %s is not the one pinned by %s: its key "
                              "differs; refusing to work for it", w->opt.coordinator,
                              w->opt.coordinator_pub);
                    return WORKER_EXIT_REFUSED;
                }
            }
            return 0;
        }
        if (stop_flag)
            return STOPPED;
        if (w->opt.connect_timeout_ms > 0 && time_mono_ms() - start > w->opt.connect_timeout_ms) {
            log_error("cannot reach the coordinator at %s: %s", w->opt.coordinator, st.details);
            return WORKER_EXIT_ERROR;
        }
        retry_pause(w, o, &backoff, "Hello failed", &st);
    }
}

/* One Join call: authenticated by its request signature (a fresh timestamp and nonce
 * each call, as every member RPC), so the JoinRequest names the member only. */
static int join_call(struct worker *w, Aulac__V1__JoinReply **r, struct rpc_status *st,
                     enum worker_call_outcome *o)
{
    Aulac__V1__JoinRequest q = AULAC__V1__JOIN_REQUEST__INIT;
    q.member_id = (char *)w->opt.member;
    int64_t t0 = time_mono_ms();
    int rc = fed_join(w->client, &q, r, st);
    *o = coordinator_outcome(w, t0, rc, st);
    return 0;
}

static int setup_training(struct worker *w);

/* Everything of the current experiment goes: trainer, corpus reader, replica, residual,
 * policy. The next experiment starts from nothing (its state in --state-dir too:
 * worker_state_load discards another experiment's files). */
static void leave_experiment(struct worker *w)
{
    /* the experiment is over for this member: a serve-mode plug-in gets "exit" and its
     * state_dir is emptied (a worker that stops closes the plug-in first, keeping it) */
    char why[512];
    if (w->plugin && w->experiment[0] && !w->sitting_out &&
        plugin_reset(w->plugin, why, sizeof why) != 0)
        log_warn("%s", why);
    trainer_destroy(w->trainer);
    w->trainer = NULL;
    data_close(w->data);
    w->data = NULL;
    free(w->base);
    free(w->local);
    free(w->residual);
    w->base = w->local = w->residual = NULL;
    w->have_base = 0;
    w->last_round = 0;
    model_layout_free(&w->layout);
    memset(&w->cfg, 0, sizeof w->cfg);
    w->n = 0;
    free(w->config_path);
    free(w->tokenizer_path);
    w->config_path = w->tokenizer_path = NULL;
    w->optimizer_step = 0;
    w->refused_round = 0;
    w->refused_deadline_ms = 0;
    if (w->have_policy)
        policy_free(&w->policy);
    w->have_policy = 0;
    memset(w->policy_hash, 0, sizeof w->policy_hash);
    w->experiment[0] = 0;
    w->sitting_out = 0;
}

/* The experiment a JoinReply names: none (idle), one this member sits out (its site
 * refuses it, or it does not list the member), or one it trains for (trainer and
 * state set up). 0, or the exit status. */
static int enter_experiment(struct worker *w, const Aulac__V1__JoinReply *r)
{
    const char *id = r->experiment_id ? r->experiment_id : "";
    if (id[0] && strcmp(id, w->experiment) == 0)
        return 0;   /* joined again into the same one: nothing changes */
    if (w->experiment[0])
        log_info("leaving experiment %s", w->experiment);
    leave_experiment(w);
    if (!id[0]) {
        log_info("the coordinator runs no experiment yet; waiting for one");
        return 0;
    }
    if (!r->policy_yaml) {
        log_error("the coordinator named experiment %s without its policy", id);
        return WORKER_EXIT_ERROR;
    }
    struct policy_error err;
    struct policy p;
    int rc = policy_load_buffer("experiment policy", r->policy_yaml, strlen(r->policy_yaml), &p,
                                &err);
    if (rc != 0) {
        log_error("the coordinator's policy does not parse: %s", err.message);
        return WORKER_EXIT_ERROR;
    }
    uint8_t h[32];
    if (policy_hash(&p, h) != 0 || r->policy_hash.len != 32 ||
        !crypto_equal(h, r->policy_hash.data, 32)) {
        log_error("the coordinator's policy does not hash to the policy hash it announced");
        policy_free(&p);
        return WORKER_EXIT_REFUSED;
    }
    snprintf(w->experiment, sizeof w->experiment, "%s", id);
    w->experiments_seen++;
    free(w->policy_yaml);   /* follower nodes get the policy as the coordinator sent it */
    w->policy_yaml = strdup(r->policy_yaml);
    if (!w->policy_yaml) {
        log_error("out of memory keeping the experiment policy");
        policy_free(&p);
        return WORKER_EXIT_ERROR;
    }
    char why[512];
    if (site_check(&w->site, &p, why, sizeof why) != 0) {
        log_warn("this site's policy refuses experiment %s: %s; sitting it out", id, why);
        w->sitting_out = 1;
        policy_free(&p);
        return 0;
    }
    if (!policy_takes_part(&p, w->opt.member)) {
        log_info("experiment %s does not list member %s (participation.members); sitting "
                 "it out", id, w->opt.member);
        w->sitting_out = 1;
        policy_free(&p);
        return 0;
    }
    w->policy = p;
    memcpy(w->policy_hash, h, 32);
    w->have_policy = 1;
    log_info("joined experiment %s (%s: %u rounds of %u local steps)", w->experiment,
             p.metadata.name, p.training.rounds, p.training.local_steps);
    rc = setup_training(w);
    if (rc == WORKER_EXIT_REFUSED) {   /* this member cannot run it (logged why) */
        log_warn("sitting experiment %s out", id);
        leave_experiment(w);
        snprintf(w->experiment, sizeof w->experiment, "%s", id);
        w->sitting_out = 1;
        return 0;
    }
    return rc;
}

static int join(struct worker *w)
{
    Aulac__V1__JoinReply *r = NULL;
    int64_t backoff = 0;
    for (;;) {
        struct rpc_status st = { 0 };
        enum worker_call_outcome o;
        int rc = join_call(w, &r, &st, &o);
        if (rc != 0)
            return rc;
        if (o == WORKER_CALL_OK)
            break;
        if (o == WORKER_CALL_NOT_IN_ROSTER)
            return WORKER_EXIT_NOT_IN_ROSTER;
        /* Away, or a refusal a fresh request may pass (clock skew, a replayed nonce, a
         * busy coordinator): try again. Anything else will not change. */
        if (o == WORKER_CALL_FAILED && st.code != GRPC_STATUS_UNAUTHENTICATED &&
            st.code != GRPC_STATUS_RESOURCE_EXHAUSTED) {
            log_error("join failed: %s", st.details);
            return WORKER_EXIT_ERROR;
        }
        if (stop_flag)
            return STOPPED;
        retry_pause(w, o, &backoff, "join refused for now", &st);
    }
    int rc;
    if (!r->accepted) {
        log_error("the coordinator refused member %s: %s", w->opt.member, r->reason);
        rc = WORKER_EXIT_REFUSED;
    } else {
        rc = enter_experiment(w, r);
    }
    aulac__v1__join_reply__free_unpacked(r, NULL);
    return rc;
}

/* 1 when the coordinator runs no experiment and none waits in its queue (Status). */
static int coordinator_idle(struct worker *w)
{
    Aulac__V1__StatusRequest q = AULAC__V1__STATUS_REQUEST__INIT;
    Aulac__V1__StatusReply *r = NULL;
    struct rpc_status st = { 0 };
    int64_t t0 = time_mono_ms();
    int rc = fed_status(w->client, &q, &r, &st);
    if (coordinator_outcome(w, t0, rc, &st) != WORKER_CALL_OK)
        return 0;
    int idle = strcmp(r->state, "running") != 0 && r->queue_length == 0;
    if (idle)
        log_info("no experiment runs and none is queued (coordinator %s)", r->state);
    aulac__v1__status_reply__free_unpacked(r, NULL);
    return idle;
}

/* --- local training ------------------------------------------------------------ */

int worker_plan(const struct worker *w, uint64_t round, struct policy_round_plan *out)
{
    char why[300];
    if (policy_round_plan(&w->policy, round, out, why, sizeof why) != 0) {
        log_error("experiment %s: no plan for round %" PRIu64 " from its policy: %s",
                  w->experiment, round, why);
        return -1;
    }
    return 0;
}

/* The plan's batch_size is the member's sequences per inner step; with --gpus N each
 * GPU draws batch_size / N of them, so a round trains what the policy says whatever
 * hardware the member has. */
int worker_trainer_opts(const struct worker *w, const struct policy_round_plan *plan,
                        struct trainer_opts *to)
{
    int gpus = w->opt.gpus > 1 ? w->opt.gpus : 1;
    int nodes = w->opt.nodes > 1 ? w->opt.nodes : 1;   /* all the member's GPUs share it */
    if (inner_trainer_opts(plan, gpus * nodes, to) != 0) {
        log_error("the policy's batch_size %u does not split evenly over --gpus %d on %d "
                  "node(s): use a GPU count that divides it", plan->batch_size, gpus, nodes);
        return -1;
    }
    return 0;
}

/* The experiment's model: its layout (policy_model_layout, pinned files fetched into
 * <state>/artifacts), checked against the site's limits.max_parameters, and the paths
 * of its pinned config and tokenizer. WORKER_EXIT_REFUSED (logged) sits it out. */
static int setup_model(struct worker *w)
{
    char why[768];
    model_layout_free(&w->layout);
    if (policy_model_layout(&w->policy, worker_artifact_resolver, w, &w->layout, why,
                            sizeof why) != 0) {
        log_warn("experiment %s: cannot set up its model: %s", w->experiment, why);
        return WORKER_EXIT_REFUSED;
    }
    if (w->site.max_parameters && w->layout.n_params > w->site.max_parameters) {
        log_warn("experiment %s: its model has %" PRIu64 " parameters; this site's "
                 "limits.max_parameters is %" PRIu64, w->experiment, w->layout.n_params,
                 w->site.max_parameters);
        return WORKER_EXIT_REFUSED;
    }
    /* The pinned files as `aulac policy check` checks them (the init's tensors against
     * the config, every value finite, config and tokenizer within their limits): the
     * coordinator checked its copies, this site checks what it will train on. */
    if (policy_check_model_files(&w->policy, worker_artifact_resolver, w, why,
                                 sizeof why) != 0) {
        log_warn("experiment %s: its pinned files fail the check: %s", w->experiment, why);
        return WORKER_EXIT_REFUSED;
    }
    w->n = (size_t)w->layout.n_params;
    memset(&w->cfg, 0, sizeof w->cfg);
    if (w->layout.kind == MODEL_LAYOUT_GPT2)
        w->cfg = w->layout.gpt2;
    const struct { const char *key; const struct policy_file *f; char **out; } pinned[] = {
        { "model.config", &w->policy.model.config, &w->config_path },
        { "model.tokenizer", &w->policy.model.tokenizer, &w->tokenizer_path },
    };
    for (size_t i = 0; i < 2; i++) {
        free(*pinned[i].out);
        *pinned[i].out = NULL;
        if (!pinned[i].f->present)
            continue;
        char path[PATH_MAX];
        if (worker_artifact_resolver(w, pinned[i].key, pinned[i].f, path, sizeof path, why,
                                     sizeof why) != 0) {
            log_warn("experiment %s: %s", w->experiment, why);
            return WORKER_EXIT_REFUSED;
        }
        if (!(*pinned[i].out = strdup(path)))
            return WORKER_EXIT_ERROR;
    }
    log_info("experiment %s: model of %zu tensors, %" PRIu64 " parameters (%s)%s",
             w->experiment, w->layout.n_tensors, w->layout.n_params,
             w->policy.model.family == POLICY_FAMILY_EXTERNAL ? "external" : "gpt2",
             w->plugin ? "; trained by the site's command trainer" : "");
    return 0;
}

/* Everything a round needs: the model, the trainer (built in, or the site's command),
 * the corpus, the replica's buffers, the state. Parts already there are kept (a
 * regrouped multi-node trainer comes back through here). */
static int setup_training(struct worker *w)
{
    const int command = w->site.trainer.kind == SITE_TRAINER_COMMAND;
    if (w->base && (command ? w->plugin != NULL : w->trainer != NULL))
        return 0;
    struct policy_round_plan plan;
    if (worker_plan(w, 1, &plan) != 0)
        return WORKER_EXIT_REFUSED;
    int rc;
    char why[512];
    if (command && !w->plugin &&
        plugin_open(&w->site.trainer, w->opt.state_dir, &w->plugin, why, sizeof why) != 0) {
        log_error("cannot set up the site's command trainer: %s", why);
        return WORKER_EXIT_ERROR;
    }
    if (!w->base && (rc = setup_model(w)) != 0)
        return rc;
    struct trainer_opts to;
    trainer_opts_default(&to);
    to.seq_len = (int)plan.seq_len;
    if (!command) {
        if (worker_trainer_opts(w, &plan, &to) != 0)
            return WORKER_EXIT_REFUSED;
        to.threads = w->opt.threads;
        to.backend = w->opt.gpus > 0 ? TRAINER_BACKEND_CUDA : TRAINER_BACKEND_CPU;
        to.gpus = w->opt.gpus;
        if (!w->trainer && w->opt.nodes > 1 && node_worker_create_trainer(w, &to) != 0)
            return WORKER_EXIT_ERROR;
        rc = w->trainer ? 0 : trainer_create(&w->cfg, &to, &w->trainer);
        if (rc != 0) {
            log_error("cannot create the trainer: %s", model_strerror(rc));
            return WORKER_EXIT_ERROR;
        }
    }
    if (to.backend == TRAINER_BACKEND_CUDA)
        log_info("trainer: CUDA on %d GPU(s) per node, %d node(s)", to.gpus,
                 w->opt.nodes > 1 ? w->opt.nodes : 1);
    else
        log_info("trainer: CPU");
    const uint64_t seed = inner_member_seed(w->opt.member);
    w->member_seed = seed;
    if (!w->data) {
        struct data_opts dopt = { .val_fraction = w->policy.data.validation_fraction,
                                  .seq_len = to.seq_len, .seed = seed };
        rc = data_open(w->opt.data_dir, &dopt, &w->data, why, sizeof why);
        if (rc != 0) {
            log_error("cannot use the corpus %s: %s", w->opt.data_dir, why);
            return WORKER_EXIT_ERROR;
        }
        log_info("corpus %s: %zu file(s), %" PRIu64 " bytes (%" PRIu64 " train, %" PRIu64
                 " validation)", w->opt.data_dir, data_num_files(w->data),
                 data_total_bytes(w->data), data_train_bytes(w->data), data_val_bytes(w->data));
    }
    if (data_train_bytes(w->data) < w->policy.data.min_tokens_per_member) {
        log_error("the corpus has %" PRIu64 " training bytes; the policy asks for at least %"
                  PRIu64 " per member", data_train_bytes(w->data),
                  w->policy.data.min_tokens_per_member);
        return WORKER_EXIT_REFUSED;
    }
    /* Each round reports the base model's loss on the held-out text (update val_loss):
     * with fewer than 2 validation bytes there is none, and every round would fail. (A
     * plug-in reports its own, or null.) */
    if (!command && data_val_bytes(w->data) < 2) {
        log_error("the corpus has %" PRIu64 " validation bytes (data.validation_fraction %g of "
                  "its %d-byte chunks); each round evaluates on at least 2: give this member "
                  "more text", data_val_bytes(w->data), w->policy.data.validation_fraction,
                  DATA_CHUNK);
        return WORKER_EXIT_REFUSED;
    }
    if (!w->base) {
        w->base = malloc(w->n * sizeof(float));
        w->local = malloc(w->n * sizeof(float));
        w->residual = calloc(w->n, sizeof(float));
        if (!w->base || !w->local || !w->residual)
            return WORKER_EXIT_ERROR;
    }
    if ((rc = worker_state_load(w)) != 0)
        return rc;
    /* A model pinned by an init file (held in <state>/artifacts already): the replica
     * starts as round 0 from it, so round 1 needs no download when the coordinator's
     * round 0 is that init (fetch_model compares the hashes). */
    if (!w->have_base && w->policy.model.init.present) {
        if (policy_model_init(&w->policy, &w->layout, worker_artifact_resolver, w, w->base,
                              why, sizeof why) == 0) {
            model_layout_hash(&w->layout, w->base, w->base_hash);
            w->have_base = 1;
            char hex[65];
            hex_encode(w->base_hash, 32, hex);
            log_info("experiment %s: round 0 built from the pinned init here (model %.16s); "
                     "round 1 downloads nothing when it starts from it", w->experiment, hex);
        } else {
            log_warn("experiment %s: cannot build round 0 from its init locally (%s); it "
                     "is downloaded", w->experiment, why);
        }
    }
    return 0;
}

/* A download is either the whole model, straight into w->base, or (when the replica
 * holds the previous round's model) the compressed round update, which is applied to
 * the replica once complete. The first chunk says which. */
struct download_ctx {
    struct worker *w;
    uint64_t model_bytes;
    int started, is_update;
    uint64_t total;
    uint8_t *update;
};

/* Where a chunk's data goes (fed_download_model_into copies it there once): the
 * replica's model, or the update's buffer. NULL refuses the chunk. */
static uint8_t *chunk_dest(const Aulac__V1__ModelChunk *ch, void *arg)
{
    struct download_ctx *d = arg;
    if (stop_flag)
        return NULL;   /* stopping: the download ends at this chunk */
    health_beat("downloading", 0);
    if (!d->started) {
        d->started = 1;
        d->is_update = ch->is_update;
        d->total = ch->total_bytes;
        if (d->is_update) {
            /* A compressed update is never larger than twice the dense model. */
            if (d->total == 0 || d->total > 2 * d->model_bytes || ch->from_model_hash.len != 32 ||
                !crypto_equal(ch->from_model_hash.data, d->w->base_hash, 32))
                return NULL;
            d->update = malloc(d->total);
            if (!d->update)
                return NULL;
        } else if (d->total != d->model_bytes) {
            return NULL;
        }
    }
    if (ch->is_update != d->is_update || ch->total_bytes != d->total ||
        ch->offset + ch->data.len > d->total)
        return NULL;
    uint8_t *dst = d->is_update ? d->update : (uint8_t *)d->w->base;
    return dst + ch->offset;
}

static int download(struct worker *w, const uint8_t hash[32], int as_update,
                    struct download_ctx *d)
{
    Aulac__V1__ModelRequest q = AULAC__V1__MODEL_REQUEST__INIT;
    q.member_id = (char *)w->opt.member;
    q.experiment_id = w->experiment;
    q.model_hash.data = (uint8_t *)hash;
    q.model_hash.len = 32;
    if (as_update) {
        q.from_model_hash.data = w->base_hash;
        q.from_model_hash.len = 32;
    }
    memset(d, 0, sizeof *d);
    d->w = w;
    d->model_bytes = (uint64_t)w->n * sizeof(float);
    struct rpc_status st = { 0 };
    int64_t t0 = time_mono_ms();
    int rc = fed_download_model_into(w->client, &q, chunk_dest, NULL, d, &st);
    if (coordinator_outcome(w, t0, rc, &st) != WORKER_CALL_OK) {
        if (!w->away_since_ms && !w->not_in_roster && !stop_flag)   /* those are logged already */
            log_warn("model download failed: %s", st.details[0] ? st.details : rpc_strerror(rc));
        free(d->update);
        d->update = NULL;
        return -1;
    }
    if (d->is_update) {
        char why[200];
        rc = codec_decode_accumulate(d->update, d->total, w->n, 1.0f, w->base, why, sizeof why);
        free(d->update);
        d->update = NULL;
        if (rc != 0) {
            log_warn("the round update does not decode (%s); downloading the whole model", why);
            return -1;
        }
    }
    return 0;
}

/* Brings the replica to the model `hash`: by the compressed round update when the
 * replica holds `prev` and the coordinator offers one, else by a full download. */
static int fetch_model(struct worker *w, const uint8_t hash[32], const uint8_t *prev)
{
    if (w->have_base && crypto_equal(w->base_hash, hash, 32))
        return 0;   /* (also round 0 built from a pinned init: worker_state_save_model
                       is not needed, model.f32 is only a cache of it) */
    char hex[65];
    hex_encode(hash, 32, hex);
    double t0 = time_mono_s();
    struct download_ctx d;
    int as_update = prev && w->have_base && crypto_equal(w->base_hash, prev, 32);
    w->have_base = 0;
    uint8_t got[32];
    int rc = download(w, hash, as_update, &d);
    if (rc == 0) {
        model_layout_hash(&w->layout, w->base, got);
        if (!crypto_equal(got, hash, 32)) {
            log_warn("the %s does not lead to model %.16s; %s", d.is_update ? "round update" :
                     "downloaded model", hex, d.is_update ? "downloading the whole model" :
                     "discarding it");
            rc = -1;
        }
    }
    if (rc != 0 && as_update && !w->not_in_roster) {
        rc = download(w, hash, 0, &d);
        if (rc == 0) {
            model_layout_hash(&w->layout, w->base, got);
            rc = crypto_equal(got, hash, 32) ? 0 : -1;
        }
    }
    if (rc != 0)
        return -1;
    memcpy(w->base_hash, hash, 32);
    w->have_base = 1;
    double dt = time_mono_s() - t0;
    log_info("model %.16s: %s, %.3f MB in %.2f s", hex,
             d.is_update ? "applied the compressed round update" : "downloaded",
             (double)d.total / 1e6, dt);
    return worker_state_save_model(w);
}

struct progress_ctx {
    uint64_t round;
    int every;
    struct progress *prog;  /* NULL: a log line every `every` steps (follower nodes) */
    struct progress_state *st;
};

static int on_progress(void *arg, const struct trainer_progress *p)
{
    struct progress_ctx *pc = arg;
    int step = p->step;   /* inner_train counts over the whole round */
    double secs = p->seconds;
    double tps = secs > 0 ? (double)p->tokens / secs : -1;
    double eta = step > 0 ? secs / step * (p->steps - step) : -1;
    health_beat("training", 0);
    if (pc->prog) {
        pc->st->phase = PROGRESS_TRAIN;
        pc->st->step = step;
        pc->st->steps = p->steps;
        pc->st->loss = p->loss;
        pc->st->tokens_per_s = tps;
        pc->st->eta_s = eta;
        progress_update(pc->prog, pc->st);
    } else if (step == p->steps || step % pc->every == 0) {
        log_info("round %" PRIu64 " step %d/%d loss %.4f  %.0f tok/s  eta %.1fs", pc->round,
                 step, p->steps, p->loss, tps < 0 ? 0 : tps, eta < 0 ? 0 : eta);
    }
    return stop_flag ? 1 : 0;
}

/* The round's inner steps (worker/inner.h: the plan's learning rate and warm-up). */
static int train_local(struct worker *w, const struct policy_round_plan *plan, int steps,
                       struct progress_ctx *pc, struct trainer_stats *ts)
{
    return inner_train(w->trainer, w->data, plan, steps, on_progress, pc, ts);
}

int worker_train_local(struct worker *w, const struct policy_round_plan *plan, int steps,
                       struct trainer_stats *ts)
{
    struct progress_ctx pc = { plan->round, steps >= 10 ? steps / 5 : 1, NULL, NULL };
    return train_local(w, plan, steps, &pc, ts);
}

int worker_stopping(void) { return stop_flag; }
const volatile sig_atomic_t *worker_stop_flag(void) { return &stop_flag; }

int worker_verify_task(const struct worker *w, const Aulac__V1__Task *t)
{
    struct task_announcement a = { 0 };
    int ok = t->base_model_hash.len == 32 && t->policy_hash.len == 32 && t->signature.len == 64;
    if (ok) {
        snprintf(a.experiment, sizeof a.experiment, "%s", t->experiment_id);
        memcpy(a.policy_hash, t->policy_hash.data, 32);
        a.round = t->round;
        memcpy(a.base_model_hash, t->base_model_hash.data, 32);
        a.deadline_unix_ms = t->deadline_unix_ms;
        a.total_rounds = t->total_rounds;
        ok = envelope_task_verify(&a, w->coordinator_key, t->signature.data) == 0;
    }
    if (!ok) {
        log_warn("ignoring a task for round %" PRIu64 " whose signature does not verify with "
                 "the coordinator's key", t->round);
        return -1;
    }
    if (!crypto_equal(a.policy_hash, w->policy_hash, 32)) {
        char got[65], want[65];
        hex_encode(a.policy_hash, 32, got);
        hex_encode(w->policy_hash, 32, want);
        log_warn("refusing the task for round %" PRIu64 " of experiment %s: it is for policy "
                 "%.16s, and this member joined the experiment with policy %.16s (the one its "
                 "site policy allowed); it trains no other", t->round, t->experiment_id, got,
                 want);
        return -1;
    }
    return 0;
}

struct upload_progress {
    struct progress *prog;
    struct progress_state *st;
    int64_t t0;
};

static void on_upload(void *arg, uint64_t sent, uint64_t total)
{
    struct upload_progress *u = arg;
    health_beat("uploading", 0);
    u->st->phase = PROGRESS_UPLOAD;
    u->st->sent = sent;
    u->st->total = total;
    u->st->upload_s = (double)(time_mono_ms() - u->t0) / 1e3;
    progress_update(u->prog, u->st);
}

static int submit(struct worker *w, const Aulac__V1__Task *t,
                  const struct policy_round_plan *plan, const uint8_t *payload, size_t len,
                  const struct trainer_stats *ts, float val_loss, struct progress_state *ps)
{
    struct update_envelope e = { 0 };
    snprintf(e.experiment, sizeof e.experiment, "%s", t->experiment_id);
    snprintf(e.member, sizeof e.member, "%s", w->opt.member);
    e.round = t->round;
    memcpy(e.base_model_hash, t->base_model_hash.data, 32);
    crypto_blake2b256(payload, len, e.payload_hash);
    e.payload_bytes = len;
    e.samples = (uint64_t)ts->steps * plan->batch_size;
    e.tokens = ts->tokens;
    update_envelope_set_codec(&e, &plan->uplink);
    uint8_t sig[CRYPTO_SIGNATURE_BYTES];
    if (envelope_sign(&e, w->key, sig) != 0)
        return -1;

    Aulac__V1__CodecParams hc;
    Aulac__V1__UpdateHeader h;
    update_envelope_to_msg(&e, sig, &h, &hc);
    h.train_loss = (float)ts->mean_loss;
    h.val_loss = val_loss;

    /* The trained update is worth keeping: retry until the round's deadline (and a
     * minute past it, for the grace period and a coordinator restart), not a fixed count. */
    const int64_t give_up = t->deadline_unix_ms + 60000;
    int64_t backoff = 500;
    for (int attempt = 1; !stop_flag; attempt++) {
        Aulac__V1__Receipt *r = NULL;
        struct rpc_status st = { 0 };
        int64_t t0 = time_mono_ms();
        struct upload_progress up = { &w->progress, ps, t0 };
        ps->phase = PROGRESS_UPLOAD;
        ps->sent = 0;
        ps->total = len;
        ps->upload_s = 0;
        progress_update(&w->progress, ps);
        int rc = fed_submit_update_progress(w->client, &h, payload, len, 0, on_upload, &up, &r,
                                            &st);
        if (rc == 0) {
            ps->phase = PROGRESS_UPLOAD_DONE;
            ps->upload_s = (double)(time_mono_ms() - t0) / 1e3;
            progress_update(&w->progress, ps);
        }
        enum worker_call_outcome o = coordinator_outcome(w, t0, rc, &st);
        if (o == WORKER_CALL_NOT_IN_ROSTER)
            return -1;   /* every retry would be refused, and recorded in the ledger */
        if (rc != 0) {
            if (time_now_unix_ms() > give_up) {
                log_error("giving up the upload of round %" PRIu64 " after %d attempts: the "
                          "round's deadline has passed (%s)", e.round, attempt,
                          st.details[0] ? st.details : rpc_strerror(rc));
                return -1;
            }
            char what[96];
            snprintf(what, sizeof what, "upload of round %" PRIu64 " failed (attempt %d)",
                     e.round, attempt);
            retry_pause(w, o, &backoff, what, &st);
            continue;
        }
        struct update_receipt rec = { 0 };
        snprintf(rec.experiment, sizeof rec.experiment, "%s", e.experiment);
        snprintf(rec.member, sizeof rec.member, "%s", e.member);
        rec.round = e.round;
        memcpy(rec.payload_hash, e.payload_hash, 32);
        rec.accepted = r->accepted ? 1 : 0;
        rec.ledger_index = r->ledger_index;
        rec.ledger_size = r->ledger_size;
        int sig_ok = r->ledger_root.len == 32 && r->signature.len == 64;
        if (sig_ok) {
            memcpy(rec.ledger_root, r->ledger_root.data, 32);
            sig_ok = envelope_receipt_verify(&rec, w->coordinator_key, r->signature.data) == 0;
        }
        if (!sig_ok)
            log_warn("the receipt for round %" PRIu64 " is not signed by the coordinator key",
                     e.round);
        ledger_watch_receipt(w, r, &e, sig);
        if (!r->accepted && r->duplicate &&
            ledger_watch_confirm_accepted(w, r->accepted_index, &e)) {
            log_info("round %" PRIu64 ": the coordinator had already accepted this update "
                     "(ledger entry #%" PRIu64 "); its first receipt was lost", e.round,
                     r->accepted_index);
            w->last_round = e.round;
            aulac__v1__receipt__free_unpacked(r, NULL);
            return 0;
        }
        if (r->accepted) {
            log_info("round %" PRIu64 ": update accepted, %zu bytes (dense fp32: %zu, %.0fx "
                     "smaller), ledger entry #%" PRIu64 " of %" PRIu64, e.round, len,
                     w->n * sizeof(float), (double)(w->n * sizeof(float)) / (double)len,
                     r->ledger_index, r->ledger_size);
            w->last_round = e.round;
        } else {
            log_warn("round %" PRIu64 ": update rejected: %s", e.round, r->reason);
        }
        int accepted = r->accepted;
        aulac__v1__receipt__free_unpacked(r, NULL);
        return accepted ? 0 : 1;
    }
    return -1;
}

/* The built-in trainer's part of a round: the base model's validation loss, then the
 * plan's local steps; the trained model in w->local. 0, or -1 (logged). */
static int train_builtin(struct worker *w, const Aulac__V1__Task *t,
                         const struct policy_round_plan *plan, struct trainer_stats *ts,
                         float *val_loss_out, struct progress_state *ps)
{
    struct trainer_opts to;
    trainer_get_opts(w->trainer, &to);
    if (worker_trainer_opts(w, plan, &to) != 0)
        return -1;
    int rc = trainer_set_opts(w->trainer, &to);
    if (rc == 0)
        rc = trainer_set_params(w->trainer, w->base, w->n);
    const uint64_t data_seed = inner_round_seed(plan->seed, w->member_seed, t->round);
    if (rc == 0 && w->opt.nodes > 1 &&
        node_worker_start_round(w, t->round, t->base_model_hash.data, plan->local_steps,
                                data_seed) != 0) {
        node_worker_regroup(w);
        return -1;
    }
    float val_loss = NAN;
    if (rc == 0) {
        const uint8_t *val;
        size_t vlen;
        if (data_validation(w->data, 0, &val, &vlen) == 0)
            rc = trainer_evaluate(w->trainer, val, vlen, w->opt.eval_windows, &val_loss);
    }
    if (rc != 0) {
        log_error("cannot prepare round %" PRIu64 ": %s", t->round, model_strerror(rc));
        return -1;
    }
    log_info("round %" PRIu64 "/%" PRIu64 ": base model validation loss %.4f on %s's "
             "held-out text; training %u steps", t->round, t->total_rounds, val_loss,
             w->opt.member, plan->local_steps);
    data_reseed(w->data, data_seed);
    const int steps = (int)plan->local_steps;
    ps->steps = steps;
    struct progress_ctx pc = { t->round, steps >= 10 ? steps / 5 : 1, &w->progress, ps };
    progress_begin(&w->progress);
    progress_update(&w->progress, ps);
    rc = train_local(w, plan, steps, &pc, ts);
    if (rc != 0 && stop_flag) {
        progress_end(&w->progress);
        log_info("round %" PRIu64 ": training stopped (the worker is stopping); the round is "
                 "not sent", t->round);
        return -1;
    }
    if (rc != 0) {
        progress_end(&w->progress);
        log_error("training round %" PRIu64 " failed: %s", t->round, model_strerror(rc));
        if (w->opt.nodes > 1 && rc == MODEL_ERR_CUDA)
            node_worker_regroup(w);
        return -1;
    }
    trainer_get_params(w->trainer, w->local, w->n);
    *val_loss_out = val_loss;
    return 0;
}

struct plugin_progress {
    struct worker *w;
    struct progress_state *ps;
    double t0;
};

/* A serve-mode plug-in's "progress" line on the round's progress line. */
static void on_plugin_progress(void *arg, uint64_t step, uint64_t steps, double loss)
{
    struct plugin_progress *pp = arg;
    struct progress_state *ps = pp->ps;
    if (steps > 0 && steps <= INT32_MAX)
        ps->steps = (int)steps;
    ps->step = step <= (uint64_t)ps->steps ? (int)step : ps->steps;
    ps->phase = PROGRESS_TRAIN;
    ps->loss = loss;
    double secs = time_mono_s() - pp->t0;
    ps->eta_s = ps->step > 0 ? secs / ps->step * (ps->steps - ps->step) : -1;
    progress_update(&pp->w->progress, ps);
}

/* The site's command trainer's part of a round (worker/plugin.h): the trained model in
 * w->local, its metrics as the built-in trainer's stats. A refusal is logged with its
 * reason, uploads nothing, and marks the round so it is not trained again. */
static int train_plugin(struct worker *w, const Aulac__V1__Task *t,
                        const struct policy_round_plan *plan, struct trainer_stats *ts,
                        float *val_loss, struct progress_state *ps)
{
    const uint64_t data_seed = inner_round_seed(plan->seed, w->member_seed, t->round);
    size_t nf = data_num_files(w->data);
    const char **files = calloc(nf ? nf : 1, sizeof *files);
    char *data_dir = realpath(w->opt.data_dir, NULL);   /* the plug-in runs in its workdir */
    if (!files || !data_dir) {
        log_error("round %" PRIu64 ": cannot name the corpus %s for the trainer", t->round,
                  w->opt.data_dir);
        free(files);
        free(data_dir);
        return -1;
    }
    for (size_t i = 0; i < nf; i++)
        files[i] = data_file_path(w->data, i);
    struct plugin_progress pp = { w, ps, time_mono_s() };
    ps->steps = (int)plan->local_steps;
    struct plugin_round r = {
        .experiment = w->experiment, .member = w->opt.member, .round = t->round,
        .total_rounds = t->total_rounds, .plan = plan, .policy = &w->policy,
        .layout = &w->layout, .base = w->base, .config_path = w->config_path,
        .tokenizer_path = w->tokenizer_path, .data_dir = data_dir, .data_files = files,
        .n_data_files = nf, .optimizer_step = w->optimizer_step, .seed = data_seed,
        .validation_windows = w->opt.eval_windows, .on_progress = on_plugin_progress,
        .progress_arg = &pp,
    };
    log_info("round %" PRIu64 "/%" PRIu64 ": training %u steps with the site's command "
             "trainer (%s)", t->round, t->total_rounds, plan->local_steps,
             w->site.trainer.argv[0]);
    progress_begin(&w->progress);
    progress_update(&w->progress, ps);
    struct plugin_metrics m;
    char why[1024];
    int rc = plugin_train_round(w->plugin, &r, w->local, &m, worker_stopping, why, sizeof why);
    free(files);
    free(data_dir);
    if (rc != 0) {
        progress_end(&w->progress);
        if (rc == PLUGIN_ERR_STOPPED) {
            log_info("%s", why);
            return -1;
        }
        log_warn("%s; nothing of round %" PRIu64 " is uploaded, this member waits for the "
                 "next round", why, t->round);
        w->refused_round = t->round;
        w->refused_deadline_ms = t->deadline_unix_ms;
        return -1;
    }
    memset(ts, 0, sizeof *ts);
    ts->steps = (int)m.steps;
    ts->tokens = m.tokens;
    ts->mean_loss = m.train_loss;
    ts->last_loss = m.train_loss;
    ts->seconds = m.seconds;
    *val_loss = (float)m.validation_loss;
    ps->step = ps->steps = (int)m.steps;
    ps->loss = m.train_loss;
    log_info("round %" PRIu64 ": the trainer took %" PRIu64 " steps on %" PRIu64 " tokens in "
             "%.1f s: train loss %.4f, base model validation loss %.4f on %s's held-out text",
             t->round, m.steps, m.tokens, m.seconds, m.train_loss, m.validation_loss,
             w->opt.member);
    return 0;
}

static int train_round(struct worker *w, const Aulac__V1__Task *t)
{
    ledger_watch_refresh(w);
    if (ledger_watch_failed(w))
        return -1;
    if (worker_verify_task(w, t) != 0)
        return -1;
    if (w->plugin && t->round == w->refused_round && time_now_unix_ms() < w->refused_deadline_ms)
        return 1;   /* its trainer failed it: nothing of it is uploaded */
    struct policy_round_plan plan;
    if (worker_plan(w, t->round, &plan) != 0)
        return -1;
    /* A regroup that failed (node_worker_regroup) left no trainer: build the group again,
     * as the regroup would have, before anything uses it. */
    if (!w->trainer && !w->plugin && (setup_training(w) != 0 || worker_state_load(w) != 0))
        return -1;
    if (w->trainer && plan.n_params != w->n) {
        log_error("round %" PRIu64 ": the policy's model has %zu parameters; this worker's "
                  "replica was set up with %zu", t->round, plan.n_params, w->n);
        return -1;
    }
    const uint8_t *prev = t->prev_model_hash.len == 32 ? t->prev_model_hash.data : NULL;
    if (fetch_model(w, t->base_model_hash.data, prev) != 0)
        return -1;
    struct progress_state ps = { .round = t->round, .rounds = t->total_rounds,
                                 .phase = PROGRESS_TRAIN, .tokens_per_s = -1, .loss = NAN,
                                 .eta_s = -1 };
    struct trainer_stats ts;
    float val_loss = NAN;
    int rc = w->plugin ? train_plugin(w, t, &plan, &ts, &val_loss, &ps)
                       : train_builtin(w, t, &plan, &ts, &val_loss, &ps);
    if (rc != 0)
        return -1;
    for (size_t i = 0; i < w->n; i++)
        w->local[i] = w->base[i] - w->local[i];   /* pseudo-gradient */
#ifdef AULAC_TEST_BYZANTINE
    /* The test attacker: a legitimate member's honest update, scaled. With error feedback
     * the residual then carries the scaled stream too, so what it sends over the rounds is
     * exactly the honest worker's uplink times the factor. */
    if (w->opt.test_byzantine_scale != 0 && w->opt.test_byzantine_scale != 1) {
        for (size_t i = 0; i < w->n; i++)
            w->local[i] *= w->opt.test_byzantine_scale;
        log_warn("round %" PRIu64 ": TEST BYZANTINE WORKER: the update is multiplied by %g "
                 "before it is compressed and signed", t->round,
                 (double)w->opt.test_byzantine_scale);
    }
#endif

    const struct codec_params *cp = &plan.uplink;
    codec_residual_decay(cp, w->residual, w->n, plan.error_feedback_decay);
    uint8_t *payload;
    size_t len;
    rc = codec_encode(w->local, w->n, cp, cp->error_feedback ? w->residual : NULL, &payload,
                      &len);
    if (rc != 0) {
        log_error("cannot compress the update of round %" PRIu64 ": %s", t->round,
                  codec_strerror(rc));
        return -1;
    }
    worker_state_save_training(w);
    rc = submit(w, t, &plan, payload, len, &ts, val_loss, &ps);
    progress_end(&w->progress);
    free(payload);
    if (rc == 0) {
        w->rounds_done++;
        if (w->plugin)
            w->optimizer_step += (uint64_t)ts.steps;
        worker_state_commit_training(w);
    }
    return rc;
}

/* The member's experiment ended: keep its last model (when it trained for it). */
static void finish(struct worker *w, const Aulac__V1__Task *t)
{
    log_info("%s", t->message && t->message[0] ? t->message : "the experiment ended");
    if (w->sitting_out || (!w->trainer && !w->plugin) || !w->base)
        return;
    const uint8_t *prev = t->prev_model_hash.len == 32 ? t->prev_model_hash.data : NULL;
    if (t->base_model_hash.len == 32 && fetch_model(w, t->base_model_hash.data, prev) == 0) {
        const uint8_t *val;
        size_t vlen;
        float loss = NAN;
        if (w->trainer && trainer_set_params(w->trainer, w->base, w->n) == 0 &&
            data_validation(w->data, 0, &val, &vlen) == 0 &&
            trainer_evaluate(w->trainer, val, vlen, w->opt.eval_windows, &loss) == 0)
            log_info("final model: validation loss %.4f on %s's held-out text", loss,
                     w->opt.member);
        worker_state_save_final(w);
    }
}

static int task_loop(struct worker *w)
{
    int64_t backoff = 0;
    while (!stop_flag) {
        if (ledger_watch_failed(w))
            return WORKER_EXIT_LEDGER;
        health_beat(w->away_since_ms ? "away" : "waiting", w->away_since_ms);
        Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
        q.member_id = (char *)w->opt.member;
        q.experiment_id = w->experiment;
        q.sit_out = w->sitting_out;
        /* (a round the plug-in failed is not asked for again before its deadline: the
         * next one is) */
        const uint64_t skip = w->refused_round && time_now_unix_ms() < w->refused_deadline_ms
                            ? w->refused_round : 0;
        q.after_round = skip > w->last_round ? skip : w->last_round;
        q.have_round = !w->sitting_out && q.after_round > 0;
        q.wait_ms = TASK_WAIT_MS;
        Aulac__V1__Task *t = NULL;
        struct rpc_status st = { 0 };
        int64_t t0 = time_mono_ms();
        int rc = fed_get_task(w->client, &q, &t, &st);
        if (rc == RPC_ERR_INTERRUPTED)
            break;   /* stopping: the poll was cut short */
        enum worker_call_outcome o = coordinator_outcome(w, t0, rc, &st);
        if (o == WORKER_CALL_NOT_IN_ROSTER)
            return WORKER_EXIT_NOT_IN_ROSTER;
        if (rc != 0) {
            retry_pause(w, o, &backoff, "no task from the coordinator", &st);
            continue;
        }
        backoff = 0;
        int out = -1, between = 0;
        const char *tid = t->experiment_id ? t->experiment_id : "";
        if (t->kind == AULAC__V1__TASK__KIND__FINISHED && strcmp(tid, w->experiment) == 0 &&
            w->experiment[0]) {
            finish(w, t);
            log_info("experiment %s is over for %s; asking for the next one", w->experiment,
                     w->opt.member);
            leave_experiment(w);
            between = 1;
        } else if ((t->kind == AULAC__V1__TASK__KIND__TRAIN ||
                    (t->kind == AULAC__V1__TASK__KIND__NONE && tid[0])) &&
                   strcmp(tid, w->experiment) != 0) {
            /* (a NONE names an experiment that runs without this member: join to learn it
             * and sit it out) */
            log_info("experiment %s runs now: joining it", tid);
            aulac__v1__task__free_unpacked(t, NULL);
            if ((rc = join(w)) != 0)
                return rc;
            continue;
        } else if (t->kind == AULAC__V1__TASK__KIND__TRAIN && !w->sitting_out) {
            /* (while the coordinator is away, the next GetTask waits for it) */
            if (train_round(w, t) != 0 && !w->not_in_roster && !w->away_since_ms)
                nap(1000);
            if (w->opt.max_rounds > 0 && w->rounds_done >= (uint64_t)w->opt.max_rounds)
                out = WORKER_EXIT_DONE;
        } else if (t->kind == AULAC__V1__TASK__KIND__NONE) {
            between = !w->experiment[0] || w->sitting_out;
        }
        aulac__v1__task__free_unpacked(t, NULL);
        if (w->not_in_roster)
            out = WORKER_EXIT_NOT_IN_ROSTER;
        /* (a worker that has seen no experiment yet waits for the first one) */
        if (out < 0 && between && w->opt.exit_when_idle && w->experiments_seen > 0 &&
            coordinator_idle(w))
            out = WORKER_EXIT_DONE;
        if (out >= 0)
            return out;
    }
    log_info("stopping");
    return WORKER_EXIT_DONE;
}

void worker_channel_options(const struct worker_options *opt, struct rpc_channel_options *ch)
{
    memset(ch, 0, sizeof *ch);
    ch->tls_ca_file = opt->tls_ca;
    ch->tls_cert_file = opt->tls_cert;
    ch->tls_key_file = opt->tls_key;
    ch->tls_server_name_override = opt->tls_server_name;
}

int worker_run(struct worker *w, const struct worker_options *opt)
{
    memset(w, 0, sizeof *w);
    w->opt = *opt;
    progress_init(&w->progress, opt->progress);
    if (w->opt.eval_windows <= 0)
        w->opt.eval_windows = 32;
    site_policy_init(&w->site);
    int rc = WORKER_EXIT_ERROR, r;
    if (crypto_init() != 0)
        goto out;
    if ((r = crypto_key_load(opt->key_path, &w->key)) != 0) {
        log_error("cannot load the member key %s: %s", opt->key_path, crypto_strerror(r));
        goto out;
    }
    if (strcmp(crypto_key_member(w->key), opt->member) != 0) {
        log_error("the key %s belongs to member '%s', not '%s'", opt->key_path,
                  crypto_key_member(w->key), opt->member);
        goto out;
    }
    if (opt->site_path) {
        struct policy_error err;
        site_policy_free(&w->site);
        if (site_load_file(opt->site_path, &w->site, &err) != 0) {
            log_error("%s", err.message);
            site_policy_init(&w->site);
            goto out;
        }
    }
    if (opt->nodes > 1 && opt->node_rank > 0) {   /* a follower node: never the coordinator */
        rc = node_worker_follow(w);
        goto out;
    }
    if (opt->check_nodes) {
        rc = node_worker_check_leader(w);
        goto out;
    }
    if ((r = worker_state_open(w)) != 0)
        goto out;
    health_start(opt->state_dir);
    struct fed_client_options co = { 0 };
    worker_channel_options(opt, &co.channel);
    co.identity = w->key;   /* every member RPC is signed (crypto/request.h) */
    co.interrupt = &stop_flag;   /* SIGTERM ends a GetTask long poll at once */
    if ((r = fed_client_open(opt->coordinator, &co, &w->client)) != 0) {
        log_error("cannot open a channel to %s: %s", opt->coordinator, rpc_strerror(r));
        goto out;
    }
    /* (votes go out while the worker waits for an experiment, and while it trains) */
    if ((rc = hello(w)) != 0 || (rc = auto_vote_start(w)) != 0 || (rc = join(w)) != 0 ||
        (rc = ledger_watch_start(w)) != 0)
        goto out;
    rc = task_loop(w);
out:
    if (rc == STOPPED) {
        log_info("stopping");
        rc = WORKER_EXIT_DONE;
    }
    health_stop();
    if (w->node_leader && !opt->check_nodes)
        node_worker_stop_followers(w);
    node_leader_stop(w->node_leader);
    auto_vote_stop(w);
    ledger_watch_stop(w);
    plugin_close(w->plugin);   /* serve mode: "exit"; its state_dir stays for a restart */
    w->plugin = NULL;
    leave_experiment(w);
    fed_client_close(w->client);
    site_policy_free(&w->site);
    free(w->policy_yaml);
    crypto_key_free(w->key);
    return rc;
}
