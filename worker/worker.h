#ifndef AULAC_WORKER_WORKER_H
#define AULAC_WORKER_WORKER_H
/* The member daemon: joins the coordinator, and for each announced round brings its
 * replica to the base model, trains locally on the member's private corpus, and
 * uploads the signed, compressed pseudo-gradient. Its state directory keeps the
 * replica, the inner optimizer state and the error-feedback residual across restarts.
 *
 * The coordinator runs experiments one after another; the worker stays connected
 * across them. When its experiment ends it asks for the next; a TRAIN task of another
 * experiment makes it join again, check the new policy against its site policy and
 * rebuild its trainer, replica, optimizer and residual from nothing (nothing of one
 * experiment is carried into the next). An experiment its site refuses, or that does
 * not list this member, it sits out (GetTask with sit_out) without exiting. */
#include <stddef.h>
#include <signal.h>
#include <stdint.h>

#include "codec/codec.h"
#include "crypto/keys.h"
#include "model/layout.h"
#include "model/trainer.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "policies/site.h"
#include "proto/client.h"
#include "worker/data.h"
#include "worker/progress.h"

/* Exit statuses of aulac-worker. */
#define WORKER_EXIT_DONE     0   /* --exit-when-idle: the experiment ended and nothing is queued
                                    (or --max-rounds reached, or stopped by a signal) */
#define WORKER_EXIT_ERROR    1   /* a local error (corpus, key, state dir, ...) */
#define WORKER_EXIT_USAGE    2
#define WORKER_EXIT_REFUSED  3   /* the coordinator refused this member, or the site policy
                                    refuses the experiment */
#define WORKER_EXIT_LEDGER   4   /* the coordinator's ledger failed a check (worker/ledger_watch.h) */
#define WORKER_EXIT_NOT_IN_ROSTER 5  /* the coordinator refused a request with PERMISSION_DENIED:
                                        this member, or the key it signs with, is not in the
                                        alliance roster (removed, never added, key rotated out) */

struct auto_vote;
struct ledger_watch;
struct node_leader;
struct plugin;

struct worker_options {
    const char *coordinator;        /* host:port */
    const char *member;
    const char *key_path;
    const char *data_dir;           /* the private corpus */
    const char *state_dir;
    const char *site_path;          /* optional site.yaml */
    const char *coordinator_pub;    /* optional: pin the coordinator's public key file */
    const char *tls_ca, *tls_cert, *tls_key, *tls_server_name;
    int threads;
    int gpus;
    int eval_windows;               /* validation windows per evaluation (default 32) */
    int max_rounds;                 /* stop after this many rounds (0: until finished) */
    int exit_when_idle;             /* exit 0 once an experiment has ended and then none runs
                                       and none is queued (default: wait for the next one) */
    int64_t connect_timeout_ms;     /* give up when the coordinator stays unreachable */
    int insecure;                   /* plaintext channels (--insecure) */
    const char *witnesses;          /* roster file of the ledger's witnesses (worker/witness.h) */
    int witness_quorum;             /* other members' cosignatures needed at first contact */
    int witness_wait_s;             /* how long to wait for them */
    /* Several nodes in one member (worker/node_worker.h); nodes <= 1: one node. */
    int nodes, node_rank;
    const char *node_listen;        /* leader: where followers reach it */
    const char *node_tls_cert, *node_tls_key;   /* leader: its certificate there */
    const char *leader;             /* follower: the leader's host:port */
    int check_nodes;                /* only check the node channel and keys, then exit */
    enum progress_mode progress;    /* --progress (worker/progress.h; default auto) */
#ifdef AULAC_TEST_BYZANTINE
    /* Test-only attacker (build/tests/aulac-worker-byzantine, never aulac-worker):
     * the pseudo-gradient is multiplied by this factor after honest local training and
     * before compression, then signed and uploaded as usual. 0 (unset) or 1: honest.
     * This field changes struct worker's layout, so every object of that binary is
     * built with -DAULAC_TEST_BYZANTINE (Makefile: $(BUILD)/obj-byzantine). */
    float test_byzantine_scale;
#endif
};

struct worker {
    struct worker_options opt;
    struct crypto_key *key;
    struct fed_client *client;
    uint8_t coordinator_key[32];
    struct site_policy site;
    struct policy policy;
    uint8_t policy_hash[32];        /* of policy: a task must name this one */
    int have_policy;
    char experiment[CRYPTO_ID_MAX + 1];   /* "": none (idle, or the last one ended) */
    int sitting_out;                /* experiment is one this member does not run */
    uint64_t experiments_seen;      /* experiments joined or sat out since the start */
    struct gpt2_config cfg;         /* the built-in trainer's GPT-2 (the layout's; zero for
                                       an external model) */
    struct model_layout layout;     /* the replica's tensors (policy_model_layout); the
                                       model hash is model_layout_hash over it */
    size_t n;                       /* layout.n_params when the buffers are set up */
    struct trainer *trainer;        /* the built-in trainer; NULL with a plug-in */
    struct plugin *plugin;          /* site trainer kind command (worker/plugin.h): opened
                                       at the first experiment, closed when the worker exits */
    char *config_path;              /* the experiment's pinned config.json / tokenizer.json */
    char *tokenizer_path;           /* in <state dir>/artifacts, or NULL */
    uint64_t optimizer_step;        /* plug-in: steps its replica took in accepted rounds */
    uint64_t refused_round;         /* the last round the plug-in failed: not trained again */
    int64_t refused_deadline_ms;    /* ... until its deadline (unix ms): a round the
                                       coordinator keeps open past it (min_members) is
                                       tried again */
    struct data *data;
    float *base;                    /* the round's base model */
    uint8_t base_hash[32];
    int have_base;
    float *local;                   /* after local training */
    float *residual;                /* error feedback */
    uint64_t member_seed;           /* from the member id: members draw different windows */
    uint64_t last_round;            /* last round whose update the coordinator accepted */
    uint64_t rounds_done;
    int64_t away_since_ms;          /* monotonic start of the first call of a run that did
                                       not reach the coordinator; 0 while it answers */
    int64_t away_logged_ms;         /* when that run was last logged */
    int not_in_roster;              /* a call was refused with PERMISSION_DENIED: stop */
    struct ledger_watch *ledger_watch;   /* worker/ledger_watch.h */
    struct auto_vote *auto_vote;         /* worker/auto_vote.h: its own thread and channel */
    char *policy_yaml;              /* the approved policy as the coordinator sent it */
    struct node_leader *node_leader;     /* multi-node leader (worker/node_worker.h) */
    uint8_t nccl_id[128];           /* the current group's NCCL id */
    struct progress progress;       /* the round's progress line (worker/progress.h) */
};

/* What the worker makes of a call to the coordinator that returned rc with status code:
 * answered; AWAY (UNAVAILABLE, DEADLINE_EXCEEDED: it waits for the channel and calls
 * again); FAILED (reached and refused or failed, e.g. UNAUTHENTICATED for clock skew or
 * a replayed nonce, RESOURCE_EXHAUSTED: it backs off and calls again);
 * NOT_IN_ROSTER (PERMISSION_DENIED: it stops, WORKER_EXIT_NOT_IN_ROSTER). */
enum worker_call_outcome {
    WORKER_CALL_OK,
    WORKER_CALL_AWAY,
    WORKER_CALL_FAILED,
    WORKER_CALL_NOT_IN_ROSTER,
};
enum worker_call_outcome worker_call_outcome(int rc, grpc_status_code code);

int  worker_run(struct worker *w, const struct worker_options *opt);
/* The TLS options of every channel to the coordinator (--tls-*; none: plaintext). */
void worker_channel_options(const struct worker_options *opt, struct rpc_channel_options *ch);
int  worker_stopping(void);
/* The flag SIGINT/SIGTERM set (worker_request_stop): the long polls' interrupt
 * (fed_client_options.interrupt), so a stop is not held up by a poll. */
const volatile sig_atomic_t *worker_stop_flag(void);
/* A TRAIN task is trained only when the coordinator's key signs it (crypto/README.md,
 * "Task announcement") and it names the policy this member joined with (and its site
 * policy allowed), w->policy_hash: 0, or -1 with the reason logged. */
int  worker_verify_task(const struct worker *w, const Aulac__V1__Task *t);
/* The plan of round `round` of the policy this worker joined with (policies/plan.h):
 * 0, or -1 with the reason logged. Round 1 for what every round shares (the model). */
int  worker_plan(const struct worker *w, uint64_t round, struct policy_round_plan *out);
/* The plan's trainer options into *to (the rest of *to is kept): batch_size split over
 * --gpus on every node, seq_len, lr, weight decay, clip, betas, eps. -1, logged, when
 * the batch does not split evenly. */
int  worker_trainer_opts(const struct worker *w, const struct policy_round_plan *plan,
                         struct trainer_opts *to);
/* Runs steps inner steps (worker.c) at the plan's lr, with its warm-up over the
 * replica's first optimizer steps; progress logged under the plan's round. */
int  worker_train_local(struct worker *w, const struct policy_round_plan *plan, int steps,
                        struct trainer_stats *ts);
void worker_request_stop(void);

#endif
