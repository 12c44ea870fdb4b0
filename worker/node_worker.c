/* Several nodes in one member: the worker's leader hooks and the follower's loop
 * (worker/node_worker.h). */
#include "worker/node_worker.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "model/model_hash.h"
#include "model/trainer_cuda.h"
#include "worker/node.h"
#include "worker/state.h"

#define FOLLOWER_WAIT_MS 20000u
#define CHECK_TIMEOUT_MS 60000

_Static_assert(NODE_TASK_NCCL_ID_BYTES == TRAINER_NCCL_ID_BYTES, "NCCL id size");

uint64_t node_worker_rank_seed(uint64_t s, int r)
{
    return s ^ ((uint64_t)r * 0xd1b54a32d192ed03ULL);
}

int node_worker_preflight(const struct worker_options *o)
{
    if (o->nodes <= 1 && !o->check_nodes)
        return 0;
    if (o->nodes < 2) {
        log_error("--check-nodes needs --nodes N (N >= 2)");
        return WORKER_EXIT_USAGE;
    }
    if (o->node_rank < 0 || o->node_rank >= o->nodes) {
        log_error("--node-rank %d is outside 0..%d (--nodes %d)", o->node_rank, o->nodes - 1,
                  o->nodes);
        return WORKER_EXIT_USAGE;
    }
    if (o->node_rank == 0 && !o->node_listen) {
        log_error("the leader (--node-rank 0) needs --node-listen HOST:PORT for its followers");
        return WORKER_EXIT_USAGE;
    }
    if (o->node_rank == 0 && !o->insecure && (!o->node_tls_cert || !o->node_tls_key)) {
        log_error("the leader needs --node-tls-cert and --node-tls-key (its certificate "
                  "from the alliance CA), or --insecure for a plaintext node channel");
        return WORKER_EXIT_USAGE;
    }
    if (o->node_rank > 0 && !o->leader) {
        log_error("a follower (--node-rank %d) needs --leader HOST:PORT", o->node_rank);
        return WORKER_EXIT_USAGE;
    }
    if (o->check_nodes)
        return 0;   /* the channel check needs no GPU */
    int have = trainer_cuda_device_count();
    int want = o->gpus > 0 ? o->gpus : 1;
    uint8_t probe[TRAINER_NCCL_ID_BYTES];
    if (trainer_nccl_id_new(probe) == MODEL_ERR_NO_CUDA) {
        log_error("--nodes %d: multi-node training needs the CUDA backend and GPUs, and this "
                  "aulac-worker was built without CUDA (make without NO_GPU=1 where nvcc is "
                  "installed); use --check-nodes to test the node channel without GPUs",
                  o->nodes);
        return WORKER_EXIT_USAGE;
    }
    sodium_memzero(probe, sizeof probe);
    if (have < want) {
        log_error("--nodes %d: multi-node training needs the CUDA backend and GPUs: %d GPU(s) "
                  "per node asked (--gpus), %d usable CUDA device(s) found here; use "
                  "--check-nodes to test the node channel without GPUs", o->nodes, want, have);
        return WORKER_EXIT_USAGE;
    }
    return 0;
}

static int start_leader(struct worker *w)
{
    if (w->node_leader)
        return 0;
    struct node_leader_options lo = {
        .listen = w->opt.node_listen,
        .tls_cert = w->opt.insecure ? NULL : w->opt.node_tls_cert,
        .tls_key = w->opt.insecure ? NULL : w->opt.node_tls_key,
        .nodes = w->opt.nodes,
        .gpus = w->opt.gpus > 0 ? w->opt.gpus : 1,
    };
    int port = 0;
    int rc = node_leader_start(&lo, w->key, &w->node_leader, &port);
    if (rc != 0) {
        log_error("cannot serve the follower nodes on %s: %s", lo.listen, rpc_strerror(rc));
        return WORKER_EXIT_ERROR;
    }
    if (w->opt.insecure)
        log_warn("node channel without TLS (--insecure): the NCCL id travels in clear");
    log_info("leader of %d nodes: followers reach it on port %d", w->opt.nodes, port);
    return 0;
}

static void task_base(const struct worker *w, struct node_task *t, uint8_t kind)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
    snprintf(t->experiment, sizeof t->experiment, "%s", w->experiment);
    memcpy(t->nccl_id, w->nccl_id, sizeof t->nccl_id);
    if (w->have_policy)
        memcpy(t->policy_hash, w->policy_hash, sizeof t->policy_hash);
}

int node_worker_create_trainer(struct worker *w, const struct trainer_opts *to)
{
    int rc = start_leader(w);
    if (rc != 0)
        return rc;
    if ((rc = trainer_nccl_id_new(w->nccl_id)) != 0) {
        log_error("cannot create an NCCL id: %s", model_strerror(rc));
        return WORKER_EXIT_ERROR;
    }
    struct node_task t;
    task_base(w, &t, NODE_TASK_GROUP);
    rc = node_leader_publish(w->node_leader, &t, w->policy_yaml);
    sodium_memzero(&t, sizeof t);
    if (rc != 0)
        return WORKER_EXIT_ERROR;
    const int gpus = to->gpus > 0 ? to->gpus : 1;
    struct trainer_nccl_boot boot = { .nranks = w->opt.nodes * gpus, .first_rank = 0 };
    memcpy(boot.id, w->nccl_id, sizeof boot.id);
    log_info("creating the training group: %d node(s), %d GPU(s) in all; waiting for the "
             "followers to join", w->opt.nodes, boot.nranks);
    rc = trainer_create_distributed(&w->cfg, to, &boot, &w->trainer);
    sodium_memzero(&boot, sizeof boot);
    if (rc != 0) {
        log_error("cannot create the multi-node trainer: %s", model_strerror(rc));
        return WORKER_EXIT_ERROR;
    }
    return 0;
}

int node_worker_start_round(struct worker *w, uint64_t round, const uint8_t base_hash[32],
                            uint32_t steps, uint64_t data_seed)
{
    struct node_task t;
    task_base(w, &t, NODE_TASK_TRAIN);
    t.round = round;
    memcpy(t.base_model_hash, base_hash, 32);
    t.inner_steps = steps;
    t.data_seed = data_seed;
    int rc = node_leader_publish(w->node_leader, &t, w->policy_yaml);
    sodium_memzero(&t, sizeof t);
    if (rc != 0)
        return -1;
    if ((rc = trainer_cuda_sync_from_rank0(w->trainer)) != 0) {
        log_error("round %" PRIu64 ": cannot bring the follower nodes to the base model: %s",
                  round, model_strerror(rc));
        return -1;
    }
    uint8_t got[32];
    trainer_get_params(w->trainer, w->local, w->n);
    model_hash(w->local, w->n, got);
    if (!crypto_equal(got, base_hash, 32)) {
        log_error("round %" PRIu64 ": the replica does not hold the base model after the "
                  "sync", round);
        return -1;
    }
    return 0;
}

int node_worker_regroup(struct worker *w)
{
    log_warn("the training group failed (a node lost?): recreating it with a fresh NCCL id");
    struct trainer_opts to;
    trainer_get_opts(w->trainer, &to);
    trainer_destroy(w->trainer);
    w->trainer = NULL;
    int rc = node_worker_create_trainer(w, &to);
    return rc ? rc : worker_state_load(w);
}

void node_worker_stop_followers(struct worker *w)
{
    if (!w->node_leader)
        return;
    struct node_task t;
    task_base(w, &t, NODE_TASK_STOP);
    memset(t.nccl_id, 0, sizeof t.nccl_id);
    /* On SIGINT/SIGTERM the followers were likely stopped too (a scheduler stops every
     * node): a follower still polling takes the task at once, so wait briefly. */
    const int64_t limit = worker_stopping() ? 2000 : 30000;
    if (node_leader_publish(w->node_leader, &t, NULL) == 0 &&
        node_leader_wait_fetched(w->node_leader, limit, NULL) != 0)
        log_warn("not every follower node took the stop task within %" PRId64 " s",
                 limit / 1000);
}

int node_worker_check_leader(struct worker *w)
{
    int rc = start_leader(w);
    if (rc != 0)
        return rc;
    struct node_task t;
    memset(&t, 0, sizeof t);
    t.kind = NODE_TASK_PROBE;
    if (node_leader_publish(w->node_leader, &t, NULL) != 0)
        return WORKER_EXIT_ERROR;
    int64_t limit = w->opt.connect_timeout_ms > 0 ? w->opt.connect_timeout_ms : CHECK_TIMEOUT_MS;
    if (node_leader_wait_fetched(w->node_leader, limit, worker_stop_flag()) != 0) {
        if (worker_stopping()) {
            log_info("--check-nodes: stopping before every follower fetched the probe");
            return WORKER_EXIT_DONE;
        }
        log_error("--check-nodes: not every follower fetched the probe within %" PRId64 " s",
                  limit / 1000);
        return WORKER_EXIT_ERROR;
    }
    /* a short grace so the last follower's reply leaves before the server stops */
    time_sleep_ms(200);
    log_info("--check-nodes: all %d follower node(s) fetched the signed probe", w->opt.nodes - 1);
    return WORKER_EXIT_DONE;
}

/* --- follower ---------------------------------------------------------------------- */

/* Adopts the policy the leader sent, once it hashes to what the task signs; a new
 * policy drops what the follower set up for the previous one. */
static int adopt_policy(struct worker *w, const struct node_task *t, const char *yaml)
{
    uint8_t h[32];
    if (w->have_policy && crypto_equal(w->policy_hash, t->policy_hash, 32))
        return 0;
    struct policy p;
    struct policy_error err;
    if (policy_load_buffer("leader's policy", yaml, strlen(yaml), &p, &err) != 0) {
        log_error("the leader's policy does not parse: %s", err.message);
        return -1;
    }
    if (policy_hash(&p, h) != 0 || !crypto_equal(h, t->policy_hash, 32)) {
        log_error("the leader's policy does not hash to the policy hash its task signs");
        policy_free(&p);
        return -1;
    }
    char why[512];
    if (site_check(&w->site, &p, why, sizeof why) != 0) {
        log_error("this site's policy refuses experiment %s: %s", t->experiment, why);
        policy_free(&p);
        return -1;
    }
    if (w->have_policy) {
        /* Another experiment: its model size, corpus split and group are new too. */
        trainer_destroy(w->trainer);
        w->trainer = NULL;
        data_close(w->data);
        w->data = NULL;
        free(w->local);
        w->local = NULL;
        policy_free(&w->policy);
    }
    w->policy = p;
    memcpy(w->policy_hash, h, 32);
    w->have_policy = 1;
    snprintf(w->experiment, sizeof w->experiment, "%s", t->experiment);
    return 0;
}

static int follower_setup(struct worker *w)
{
    if (w->data)
        return 0;
    struct policy_round_plan plan;
    if (worker_plan(w, 1, &plan) != 0)
        return -1;
    w->cfg = plan.model;
    w->n = plan.n_params;
    struct data_opts dopt = { .val_fraction = w->policy.data.validation_fraction,
                              .seq_len = (int)plan.seq_len, .seed = 0 };
    char why[512];
    if (data_open(w->opt.data_dir, &dopt, &w->data, why, sizeof why) != 0) {
        log_error("cannot use the corpus %s: %s", w->opt.data_dir, why);
        return -1;
    }
    w->local = malloc(w->n * sizeof(float));
    return w->local ? 0 : -1;
}

static int follower_join_group(struct worker *w, const struct node_task *t)
{
    if (w->trainer && crypto_equal(w->nccl_id, t->nccl_id, sizeof w->nccl_id))
        return 0;
    trainer_destroy(w->trainer);
    w->trainer = NULL;
    struct policy_round_plan plan;
    struct trainer_opts to;
    trainer_opts_default(&to);
    if (worker_plan(w, 1, &plan) != 0 || worker_trainer_opts(w, &plan, &to) != 0)
        return -1;
    to.threads = w->opt.threads;
    to.backend = TRAINER_BACKEND_CUDA;
    to.gpus = w->opt.gpus > 0 ? w->opt.gpus : 1;
    struct trainer_nccl_boot boot = { .nranks = (int)t->nranks, .first_rank = (int)t->first_rank };
    memcpy(boot.id, t->nccl_id, sizeof boot.id);
    log_info("joining the training group as ranks %u..%u of %u", t->first_rank,
             t->first_rank + (uint32_t)to.gpus - 1, t->nranks);
    int rc = trainer_create_distributed(&w->cfg, &to, &boot, &w->trainer);
    sodium_memzero(&boot, sizeof boot);
    if (rc != 0) {
        log_error("cannot join the training group: %s", model_strerror(rc));
        return -1;
    }
    memcpy(w->nccl_id, t->nccl_id, sizeof w->nccl_id);
    return 0;
}

static int follower_round(struct worker *w, const struct node_task *t)
{
    struct policy_round_plan plan;
    struct trainer_opts to;
    trainer_get_opts(w->trainer, &to);
    if (worker_plan(w, t->round, &plan) != 0 || worker_trainer_opts(w, &plan, &to) != 0)
        return -1;
    int rc = trainer_set_opts(w->trainer, &to);
    if (rc == 0)
        rc = trainer_cuda_sync_from_rank0(w->trainer);
    if (rc != 0) {
        log_error("round %" PRIu64 ": cannot take the leader's state: %s", t->round,
                  model_strerror(rc));
        return -1;
    }
    uint8_t got[32];
    trainer_get_params(w->trainer, w->local, w->n);
    model_hash(w->local, w->n, got);
    if (!crypto_equal(got, t->base_model_hash, 32)) {
        log_error("round %" PRIu64 ": the replica does not hold the base model the leader "
                  "names after the sync; leaving the group", t->round);
        return -1;
    }
    data_reseed(w->data, node_worker_rank_seed(t->data_seed, w->opt.node_rank));
    struct trainer_stats ts;
    rc = worker_train_local(w, &plan, (int)t->inner_steps, &ts);
    if (rc != 0) {
        log_error("training round %" PRIu64 " failed: %s", t->round, model_strerror(rc));
        return -1;
    }
    log_info("round %" PRIu64 ": %d steps done on node %d, mean loss %.4f", t->round, ts.steps,
             w->opt.node_rank, ts.mean_loss);
    return 0;
}

int node_worker_follow(struct worker *w)
{
    struct rpc_channel_options ch = {
        .tls_ca_file = w->opt.insecure ? NULL : w->opt.tls_ca,
        .tls_cert_file = w->opt.tls_cert,
        .tls_key_file = w->opt.tls_key,
        .tls_server_name_override = w->opt.tls_server_name,
    };
    struct node_follower *f = NULL;
    const int gpus = w->opt.gpus > 0 ? w->opt.gpus : 1;
    int rc = node_follower_open(w->opt.leader, &ch, w->key, w->opt.nodes, gpus,
                                w->opt.node_rank, worker_stop_flag(), &f);
    if (rc != 0) {
        log_error("cannot open a channel to the leader %s: %s", w->opt.leader, rpc_strerror(rc));
        return WORKER_EXIT_ERROR;
    }
    if (w->opt.insecure)
        log_warn("node channel without TLS (--insecure)");
    log_info("node %d of %d: following the leader at %s", w->opt.node_rank, w->opt.nodes,
             w->opt.leader);
    int out = -1;
    int64_t since = time_mono_ms();
    while (out < 0 && !worker_stopping()) {
        struct node_task t;
        char *yaml = NULL, why[512];
        rc = node_follower_next(f, FOLLOWER_WAIT_MS, &t, &yaml, why, sizeof why);
        if (rc == NODE_POLL_NOTHING) {
            since = time_mono_ms();
            continue;
        }
        if (rc == NODE_POLL_UNREACHABLE) {
            if (w->opt.connect_timeout_ms > 0 && time_mono_ms() - since > w->opt.connect_timeout_ms) {
                log_error("cannot reach the leader at %s: %s", w->opt.leader, why);
                out = WORKER_EXIT_ERROR;
                break;
            }
            log_warn("waiting for the leader at %s: %s", w->opt.leader, why);
            time_sleep_ms(1000);
            continue;
        }
        if (rc == NODE_POLL_REFUSED) {
            log_error("refusing the leader at %s: %s", w->opt.leader, why);
            out = WORKER_EXIT_REFUSED;
            break;
        }
        since = time_mono_ms();
        if (w->opt.check_nodes) {
            struct crypto_public_key pk;
            crypto_key_public(w->key, &pk);
            log_info("--check-nodes: the leader at %s sent node %u a task signed by member %s "
                     "(key %s): the node channel works", w->opt.leader, t.node_rank, pk.id,
                     pk.key_id);
            out = WORKER_EXIT_DONE;
        } else if (t.kind == NODE_TASK_STOP) {
            log_info("the leader says the experiment is over");
            out = WORKER_EXIT_DONE;
        } else if (t.kind == NODE_TASK_GROUP || t.kind == NODE_TASK_TRAIN) {
            if (adopt_policy(w, &t, yaml) != 0)
                out = WORKER_EXIT_REFUSED;
            else if (follower_setup(w) != 0 || follower_join_group(w, &t) != 0)
                out = WORKER_EXIT_ERROR;
            else if (t.kind == NODE_TASK_TRAIN && follower_round(w, &t) != 0) {
                /* the leader regroups with a fresh id; wait for it */
                trainer_destroy(w->trainer);
                w->trainer = NULL;
            }
        }
        sodium_memzero(&t, sizeof t);
        free(yaml);
    }
    node_follower_close(f);
    return out < 0 ? WORKER_EXIT_DONE : out;
}
