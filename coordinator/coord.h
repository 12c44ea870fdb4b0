#ifndef AULAC_COORDINATOR_COORD_H
#define AULAC_COORDINATOR_COORD_H
/* The coordinator daemon's state: one struct, passed explicitly.
 *
 * Life cycle: coord_open() loads the key and roster, opens the data directory (LMDB:
 * ledger, state, the experiment queue of coordinator/queue.h), records the genesis
 * roster on first start, empties the upload spool and converts payload rows of an
 * earlier version (coordinator/spool.h, state.h), resumes the experiment that ran (its
 * open round's accepted set rebuilt from the rows kept in LMDB, whose payloads are in
 * the payload store; a round every member had reported is closed by the timer once it
 * runs) or starts the first queued one;
 * coord_serve() starts the gRPC service and the timer; coord_close() stops both and
 * frees everything. With nothing queued the coordinator serves idle (no experiment
 * loaded: c->state EXP_IDLE, c->rnd.base NULL). Experiments run one after another: the
 * timer thread starts the next queued one once none runs (coordinator/lifecycle.c).
 * An experiment that ended stays loaded (its final model served) until the next starts.
 *
 * Locking: c->mu guards the experiment (c->rnd: the open round, coordinator/round.h,
 * except what its close owns while closing) and c->roster / c->members, which
 * governance.c keeps equal to the live roster. Rounds close on the timer thread only.
 * LMDB write transactions are taken inside c->mu, never the other way round. An upload's
 * payload is received, hashed, validated and synced without mu (update.h); only the
 * re-check, the rename into the payload store and the commit hold it. */
#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "aggregate/outer.h"
#include "credit/evalset.h"
#include "crypto/keys.h"
#include "ledger/ledger.h"
#include "model/gpt2.h"
#include "model/layout.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "policies/roster.h"
#include "coordinator/datadir.h"
#include "coordinator/round.h"

/* Error codes of the coordinator (range -1600..-1649; outer.h has -1650..). */
#define COORD_ERR_CONFIG   (-1600)  /* key, roster, policy or data dir unusable (logged) */
#define COORD_ERR_STATE    (-1601)  /* stored state unreadable or inconsistent (logged) */
#define COORD_ERR_NOMEM    (-1602)
#define COORD_ERR_IO       (-1603)
#define COORD_ERR_SERVE    (-1604)  /* cannot listen (logged with the address) */
#define COORD_ERR_NOT_FOUND (-1605) /* no checkpoint of that model hash is held */
#define COORD_ERR_BUSY     (-1606)  /* another older model is being served: retry later */
#define COORD_ERR_WAITING  (-1607)  /* the experiment's pinned files are not all held yet */

#define COORD_EXPERIMENT_MAX 64
#define COORD_KEEP_CHECKPOINTS   3
#define COORD_CHECKPOINT_EVERY   10
#define COORD_CHECKPOINT_EVERY_NONE (-1)
#define COORD_CLOSE_RETRY_MS     1000
#define COORD_CLOSE_RETRY_MAX_MS (5 * 60 * 1000)
#define COORD_MAX_UPLOAD_BYTES (2ULL << 30)
/* Largest pinned file (coordinator/artifacts.h) the coordinator takes by default
 * (--max-artifact-bytes). */
#define COORD_DEFAULT_MAX_ARTIFACT_BYTES (64ULL << 30)
/* All pinned files together (--max-artifact-store-bytes), and the free space an upload
 * must leave on the data directory's file system. */
#define COORD_DEFAULT_MAX_ARTIFACT_STORE_BYTES (256ULL << 30)
#define COORD_ARTIFACT_FREE_MARGIN_BYTES (1ULL << 30)
/* Member uploads (SubmitUpdate) received at once (--max-uploads); each holds a chunk in
 * RAM and its spool file on disk (coordinator/spool.h). */
#define COORD_DEFAULT_MAX_UPLOADS 32
/* The free space an upload must leave on the data directory's file system beside the
 * payload_bytes of every upload in flight (--upload-free-margin). */
#define COORD_DEFAULT_UPLOAD_FREE_MARGIN_BYTES (1ULL << 30)
/* Payload validations (round_validate) that run at once: each maps a whole payload. */
#define COORD_MAX_VALIDATIONS 2

struct coord_options {
    const char *data_dir;
    const char *listen_addr;        /* default 127.0.0.1:7443 */
    const char *key_path;           /* the coordinator's secret key file */
    const char *roster_path;
    /* --policy: each file is filed at start, in order, as an experiment proposal signed
     * by the operator's member key (governance_propose_operator), unless a policy of the
     * same hash was proposed before; it runs once members approve it. */
    const char *const *policy_paths;
    size_t n_policy_paths;
    const char *operator_key_path;
    const char *tls_cert, *tls_key, *tls_client_ca;
    int require_client_cert;
    const char *port_file;          /* written with the bound port once serving */
    /* Checkpoint retention (coord_retain_checkpoints): the last keep_checkpoints rounds'
     * checkpoints (0: COORD_KEEP_CHECKPOINTS; at least 1: resume needs the latest) and
     * every checkpoint_every-th round's (0: COORD_CHECKPOINT_EVERY; COORD_CHECKPOINT_EVERY_NONE:
     * none), with their outer state, downlink residual and downlink files. */
    int keep_checkpoints;
    int checkpoint_every;
    int max_calls;                  /* concurrent RPCs; default 64 */
    /* 0: proto/rpc.h defaults (struct rpc_server_options) */
    int max_unauthenticated_calls;  /* of those, before a request signature verifies */
    int max_calls_per_peer;         /* unauthenticated, from one client address */
    int first_message_ms;           /* a call's first request message must come by */
    int message_gap_ms;             /* ...and each next message of an upload */
    size_t memory_quota_bytes;      /* gRPC buffers of all connections */
    /* --eval-sets: the evaluation sets policies name (contribution.evaluation_set.name);
     * NULL: data_dir/evalsets. */
    const char *eval_sets_dir;
    /* --http ADDR:PORT: the read-only HTTP view (coordinator/http.h; NULL: off). It uses
     * tls_cert/tls_key and tls_client_ca above; http_token_file: the bearer token;
     * http_chartjs: Chart.js to serve (NULL: Debian's libjs-chart.js). */
    const char *http_listen;
    const char *http_token_file;
    const char *http_chartjs;
    /* Tests: called by a round close (on the timer thread) while it computes outside mu. */
    void (*close_hook)(void *arg);
    void *close_hook_arg;
    /* The first wait before a round close abandoned on a storage failure is retried
     * (doubling up to COORD_CLOSE_RETRY_MAX_MS); 0: COORD_CLOSE_RETRY_MS. */
    int64_t close_retry_ms;
    /* How often the ledger audits itself (coordinator/ledger_check.h); 0: every 5 minutes. */
    int64_t ledger_check_interval_ms;
    /* --max-artifact-bytes: the largest pinned file PutArtifact takes; 0:
     * COORD_DEFAULT_MAX_ARTIFACT_BYTES. */
    uint64_t max_artifact_bytes;
    /* --max-artifact-store-bytes: all held pinned files and the uploads under way
     * together; 0: COORD_DEFAULT_MAX_ARTIFACT_STORE_BYTES. */
    uint64_t max_artifact_store_bytes;
    /* --max-uploads: member uploads received at once; 0: COORD_DEFAULT_MAX_UPLOADS. */
    int max_uploads;
    /* --upload-free-margin: bytes an upload must leave free on the data directory's file
     * system; 0: COORD_DEFAULT_UPLOAD_FREE_MARGIN_BYTES. */
    uint64_t upload_free_margin_bytes;
};

/* A member upload in flight (update_upload_begin .. update_upload_end). */
struct upload_slot {
    char member[CRYPTO_ID_MAX + 1];
    uint64_t bytes;                 /* its declared payload_bytes, reserved on the disk */
};

/* EXP_IDLE: no experiment loaded. The others are the loaded one's (stored in
 * coord.state); an ended one stays loaded until the next starts. */
enum coord_exp_state { EXP_IDLE = 0, EXP_RUNNING = 1, EXP_FINISHED = 2, EXP_FAILED = 3,
                       EXP_CANCELLED = 4 };

struct governance;
struct auth;
struct witness_store;
struct coord_metrics;
struct http_server;
struct artifact_upload;
struct coord_prepared;

/* A rejected update as the HTTP API shows it (coordinator/HTTP.md, /api/v1/members). */
#define COORD_RECENT_REJECTIONS 4
struct member_rejection {
    uint64_t round;
    int64_t at_ms;                  /* unix ms */
    char reason[200];               /* the refusal's reason, cut to fit */
};

struct member_stats {
    char id[CRYPTO_ID_MAX + 1];
    uint64_t rounds_joined, tokens, bytes_sent, rejected;   /* stored (coord.members) */
    /* Since this coordinator process started; in memory only, never stored: */
    int64_t last_seen_ms;           /* unix ms of its last authenticated request; 0: none */
    int has_val_loss;               /* 1: an accepted update reported val_loss */
    double last_val_loss;           /* the validation loss of its last accepted update... */
    uint64_t last_val_round;        /* ...in this round */
    struct member_rejection recent[COORD_RECENT_REJECTIONS];   /* a ring of the latest */
    uint64_t n_recent;              /* rejections put in the ring (recent[(n - 1) % N] latest) */
};

/* Anyone who reaches the port can send unauthenticated uploads; recording each refusal
 * would let them grow the ledger without bound, so only so many are recorded a minute
 * (every one is still logged). */
#define COORD_REFUSALS_PER_MINUTE 60

struct coord {
    struct coord_options opt;
    struct crypto_key *key;
    struct crypto_public_key pub;
    struct roster roster;
    /* The loaded experiment (experiment_load .. experiment_unload); changed only by the
     * timer thread (or coord_open) with mu held: readers on other threads hold mu. */
    struct policy policy;
    uint8_t policy_hash[32];
    uint8_t proposal_hash[32];      /* the approved proposal it runs (zero: none) */
    /* Privacy on: the experiment's DP noise seed (aggregate/robust.h agg_dp_noise), drawn
     * from the CSPRNG at its start, kept in <experiment dir>/dp-noise-seed (0600) and
     * nowhere else until the end entry reveals it; BLAKE2b-256 of it is in
     * experiment_started (PRIVACY.md). have_dp_seed 0 without privacy. */
    uint8_t dp_seed[32];
    int have_dp_seed;
    unsigned dp_scheme;             /* how its noise is drawn (AGG_DP_SCHEME_*): recorded in
                                       experiment_started, kept on resume (record.h) */
    /* Its initial (round-0) model's hash, as its experiment_started records it: read by
     * checkpoint retention when first needed (have_initial_hash), which never removes
     * that model. */
    uint8_t initial_hash[32];
    int have_initial_hash;
    uint8_t *policy_yaml;
    size_t policy_yaml_len;
    /* The model's layout (model/layout.h: names, shapes, the flat vector's order), from
     * policy_model_layout with the artifact store as resolver (coordinator/artifacts.h);
     * n_params = layout.n_params; cfg = layout.gpt2 for the built-in GPT-2, zero for an
     * external model. Models are named by model_layout_hash (v1 for GPT-2, v2 named).
     * The codecs of a round come from policy_round_plan(&policy, round). */
    struct model_layout layout;
    struct gpt2_config cfg;
    size_t n_params;
    int down_on;                    /* broadcast compressed round updates */
    int down_ef;                    /* ... with server-side error feedback (down_residual) */

    struct ledger *ledger;
    MDB_dbi db_state;               /* "coord.state": experiment record */
    MDB_dbi db_payloads;            /* "coord.payloads": open round's accepted updates */
    MDB_dbi db_members;             /* "coord.members": contribution counters */
    MDB_dbi db_rounds;              /* "coord.rounds": closed round summaries */
    MDB_dbi db_replay;              /* "coord.replay": accepted request nonces (auth.c) */
    MDB_dbi db_experiments;         /* "coord.experiments": every queued experiment (queue.h) */
    MDB_dbi db_queue;               /* "coord.queue": those waiting, in order */
    MDB_dbi db_credit;              /* "coord.credit": running credit totals per experiment */
    char eval_sets_dir[4096];       /* opt.eval_sets_dir or data_dir/evalsets */

    pthread_mutex_t mu;
    pthread_cond_t changed;         /* broadcast when a round opens or an experiment starts
                                       or ends */

    /* Everything below is guarded by mu. */
    char experiment[COORD_EXPERIMENT_MAX + 1];
    enum coord_exp_state state;
    uint64_t total_rounds;
    /* The open round (coordinator/round.h): number, base model, downlink, outer state,
     * accepted set, deadline, closing flags. */
    struct coord_round rnd;
    struct model_snapshot *archived;/* an older model that downloads stream (models_acquire);
                                       NULL once the last of them releases it */
    /* The loaded experiment's evaluation set and evaluator (credit/evalset.h), when its
     * policy measures loo or shapley and it has not ended; else evaluator NULL. Used by
     * the round close outside mu (closing). */
    struct evalset evalset;
    struct evaluator *evaluator;
    size_t n_eligible;              /* roster members that take part in the experiment */
    int64_t next_start_ms;          /* monotonic: the timer's next try at starting the next
                                       queued experiment after a storage error */
    int64_t next_prune_ms;          /* monotonic: the timer's next payload retention pass
                                       (timer thread only) */
    int64_t next_disk_ms;           /* monotonic: the timer's next disk use measurement
                                       (timer thread only) */
    struct datadir_usage disk;      /* the data directory's disk use, measured by the timer
                                       (coord_measure_disk); guarded by mu */
    struct member_stats *members;   /* one per roster member */
    /* Member uploads in flight (coordinator/update.h): opt.max_uploads slots, one per
     * member; the sum of their declared bytes. */
    struct upload_slot *uploading;
    size_t n_uploading;
    uint64_t upload_reserved_bytes;
    /* models_close_write_bytes of the loaded experiment (set by experiment_load): kept
     * free beside the margin so that the close of the uploads admitted can be written. */
    uint64_t close_reserve_bytes;
    /* Acceptances validating a payload outside mu (update_accept): while > 0 the loaded
     * experiment is not unloaded (experiment_start_next_locked waits). */
    int validating;
    /* Pinned files being uploaded now (coordinator/artifacts.c): one upload per hash. */
    struct artifact_upload *uploads;
    /* The first queued experiment's model, prepared by the timer without mu (its
     * pinned files checked, layout, round-0 parameters): taken by load_policy and
     * start_loaded when it is still the one to start (lifecycle.c). Guarded by mu. */
    struct coord_prepared *prepared;
    /* Why the first queued experiment cannot start yet ("" when none waits): its pinned
     * files that the artifact store lacks and the command that uploads them. Set by the
     * timer's start attempts (lifecycle.c), shown by status. */
    char waiting[1024];
    /* The last storage failure that stopped a round close ("" since a close succeeded):
     * what failed, the data directory's free bytes then; shown by status. */
    char storage_error[1024];
    int64_t storage_error_ms;       /* unix ms of it */

    int64_t refusals_window_ms;     /* unauthenticated refusals recorded in the ledger */
    int refusals_in_window;         /* this minute, at most COORD_REFUSALS_PER_MINUTE */

    struct governance *gov;         /* live roster, proposals, votes (governance.h) */
    struct auth *auth;              /* request nonce replay cache (auth.h) */
    struct witness_store *witness;  /* members' cosigned checkpoints (ledger/witness.h) */
    struct coord_metrics *metrics;  /* Prometheus counters (metrics.h; their own mutex) */

    struct ledger_check *ledger_check;  /* the periodic ledger audit (ledger_check.h);
                                       started by coord_serve, stopped by coord_close */

    struct rpc_server *srv;
    int port;
    struct http_server *http;       /* --http (NULL: off); started after the gRPC service,
                                       stopped before anything it reads */
    pthread_t timer;
    int timer_running;
    pthread_cond_t timer_wake;      /* signalled (mu held) when the timer has work now: a
                                       round to close (rnd.close_pending) or a stop */
    int stopping;
};

int  coord_open(struct coord *c, const struct coord_options *opt);
int  coord_serve(struct coord *c);
void coord_close(struct coord *c);
const char *coord_strerror(int rc);

/* --- used across coordinator/ ------------------------------------------- */

/* experiment.c: the rounds of the loaded experiment */
int  round_member_reported_locked(const struct coord *c, const char *member);
/* 1 when the experiment runs, at least one update is in, and every member that may
 * report (in the policy and the live roster) has reported. mu held. */
int  round_all_reported_locked(const struct coord *c);
/* Members of c->roster that take part in the experiment (policy_takes_part): those
 * listed in participation.members, or all of them when the list is empty. */
size_t coord_eligible_count_locked(const struct coord *c);
/* Opens round c->rnd.number at opened_ms and wakes whoever waits for it (changed). */
void round_open(struct coord *c, int64_t opened_ms);
/* The open round's accepted set from its updates stored in LMDB (a restart). */
int  round_accumulate_stored(struct coord *c);
/* Asks the timer thread to close the round when every eligible member has reported:
 * sets rnd.close_pending and signals timer_wake. mu held; returns at once. Rounds close
 * only on the timer thread (round_timer_tick), never on an RPC thread. */
void round_request_close_locked(struct coord *c);
/* The timer thread's round work: a requested close (every member reported), the
 * deadline (close with at least min_members, else wait and log), then the next queued
 * experiment. Takes mu; the close computes without it. */
void round_timer_tick(struct coord *c);
/* 1 when opening round `round` would take the experiment's privacy spending past
 * privacy.target_epsilon (rdp_epsilon(1, noise_multiplier, round, delta) > target), with
 * why = "privacy budget: round N would spend epsilon X > target Y" (the ledger's
 * experiment_finished reason); 0 without privacy or a target. mu held. */
int  experiment_budget_ends_locked(const struct coord *c, uint64_t round, char *why,
                                   size_t cap);          /* takes mu */
/* A snapshot with malloc'd params (refs 1; NULL: no memory): filled by its maker, then
 * made file-backed (coord_snapshot_to_file) before it is shared. */
struct model_snapshot *snapshot_new(size_t n, uint64_t round);
/* Drops a reference; the last frees it (snapshot_free: a mapped one is unmapped, its
 * unnamed file goes with it). mu held. */
void snapshot_release(struct coord *c, struct model_snapshot *s);
/* snapshot_to_file of s into the data directory: 0; -errno when the file cannot be
 * written (logged as a warning: s stays in memory, as valid). */
int  coord_snapshot_to_file(struct coord *c, struct model_snapshot *s);
struct member_stats *coord_member_stats(struct coord *c, const char *id);

/* lifecycle.c: experiments one after another (coordinator/queue.h has the queue).
 * experiment_open: after governance_open (the live roster, in which the policy's
 * members are counted), loads the experiment that ran (coord.state) or else the first
 * queued one (policy, buffers); experiment_resume_or_start: then resumes the loaded
 * one (model, outer state, open round) or starts it. Queued experiments whose policy
 * no longer loads are recorded as failed and skipped. */
struct experiment_info;
int  experiment_open(struct coord *c);
int  experiment_resume_or_start(struct coord *c);
/* The running experiment's policy, parsed from info's text (its hash must be
 * info->policy_hash), and its buffers; COORD_ERR_CONFIG with why when the policy does
 * not load or cannot run here, COORD_ERR_NOMEM. Nothing loaded on failure. */
int  experiment_load(struct coord *c, const struct experiment_info *info, char *why,
                     size_t cap);
/* Frees what experiment_load set up and the model reference; c->state EXP_IDLE. mu held
 * (or single-threaded), no round closing. */
void experiment_unload(struct coord *c);
/* Timer: when no experiment runs (and none closes), unloads the ended one and starts
 * the next queued one. mu held. */
void experiment_start_next_locked(struct coord *c);
/* Timer, without mu, before experiment_start_next_locked: when nothing runs and the
 * first queued experiment's pinned files are all held, checks them
 * (policy_check_model_files: the init's tensors against the config, finite values,
 * config and tokenizer sizes), reads its layout and round-0 parameters, and hands them
 * to c->prepared; a check that fails is kept there and the start records the
 * experiment failed with the reason. Reading a large init so stalls no RPC. */
void experiment_prepare_next(struct coord *c);
/* Frees c->prepared (coord_close). */
void experiment_prepared_free(struct coord *c);
/* data_dir/experiments/<id>: the loaded experiment's own files (outer state, downlink,
 * payloads/: the retention store). */
void coord_experiment_dir(const struct coord *c, char *out, size_t cap);

/* retention.c: the retention store of accepted payloads,
 * data_dir/experiments/<id>/payloads/<BLAKE2b-256 hex>.bin (the exact bytes the member
 * sent), written by each acceptance (spool.h) before it commits.
 * coord_prune_payloads: deletes the store of every experiment that ended (finished,
 * cancelled, failed) more than its policy's contribution.payload_retention_days before
 * now_ms (unix ms), logging what it removed; returns how many files it removed. The timer
 * calls it every COORD_PRUNE_INTERVAL_MS; it takes no lock (reads its own snapshot). */
#define COORD_PRUNE_INTERVAL_MS (10 * 60 * 1000)
/* Checkpoint retention of the loaded experiment, after each round close (mu held): of
 * the checkpoints its closed rounds 1..R made (data_dir/models/<hash>/, named in its
 * round summaries), those of rounds R-N+1..R (N: opt.keep_checkpoints) and of every
 * K-th round (K: opt.checkpoint_every) stay; the others are deleted unless the same
 * model is also one kept, the current model, the older model a download is reading, or
 * an ended experiment's final model, or the experiment's initial (round-0) model (its
 * experiment_started's model_hash). The experiment's outer state and downlink residual
 * files (outer/<r>.bin, outer/<r>.down) and downlink updates (downlink/<hash>.bin) follow
 * the same rounds. Each experiment's initial model (round 0) is not touched. Returns
 * the checkpoints removed. */
size_t coord_retain_checkpoints(struct coord *c);
size_t coord_prune_payloads(struct coord *c, int64_t now_ms);

/* coord.c: measures the data directory's disk use (datadir_measure) into c->disk, warning
 * once when free space becomes low; the timer calls it every COORD_DISK_INTERVAL_MS, after
 * each retention pass and after a close that failed on storage. Without mu (takes it). */
#define COORD_DISK_INTERVAL_MS (60 * 1000)
void coord_measure_disk(struct coord *c);

/* models.c: checkpoints named by hash under data_dir/models/. models_save writes
 * models/<hex>.tmp/ and renames it; on failure nothing of it is left (the .tmp directory
 * and its files are removed). */
int models_save(struct coord *c, const float *params, const uint8_t hash[32]);
/* The most bytes one round close of the loaded experiment writes to the data directory
 * (c->n_params, the outer optimizer's kind, the downlink settings; the pinned config and
 * tokenizer as held in the artifact store); experiment_load keeps it in
 * c->close_reserve_bytes, which the admission of uploads (update_upload_begin) keeps
 * free on top of opt.upload_free_margin_bytes. 0 when no experiment is loaded. */
uint64_t models_close_write_bytes(const struct coord *c);
int models_load(struct coord *c, const uint8_t hash[32], float *params);
/* Deletes every checkpoint but keep[] and the last models of ended experiments. */
void models_prune(struct coord *c, const uint8_t keep[][32], size_t n_keep);
/* The model named hash (NULL: the current one) for a download, with a reference the
 * caller gives back with snapshot_release (mu held). Any model whose checkpoint the
 * coordinator still holds is served: the current one (c->rnd.base), an older one read
 * from data_dir/models/ (hash checked) once, moved into an unnamed file mapping
 * (coord_snapshot_to_file) and shared by the downloads that stream it meanwhile; senders
 * drop the pages behind what they sent (snapshot_drop). One older model is held at a
 * time, so memory and disk stay bounded: a request for another while it streams gets
 * COORD_ERR_BUSY. Takes mu.
 * COORD_ERR_NOT_FOUND (no such checkpoint: never made, or pruned), COORD_ERR_BUSY,
 * COORD_ERR_NOMEM, COORD_ERR_STATE (the checkpoint does not load; logged). */
int models_acquire(struct coord *c, const uint8_t hash[32], struct model_snapshot **out);
/* The outer optimizer state after completed_rounds (models.c: outer/<n>.bin): load checks
 * the file and takes its step (the vectors stay in the file); open (at a close) maps a
 * copy as the next round's file and points c->rnd.outer's m and v into it; save makes
 * that file durable as completed_rounds' (the close's new count). */
int outer_state_open(struct coord *c, uint64_t completed_rounds);
int outer_state_save(struct coord *c, uint64_t completed_rounds);
int outer_state_load(struct coord *c, uint64_t completed_rounds);
/* The downlink update that leads to model `to` (downlink/<hex>.bin: the previous model's
 * hash, then the codec payload), never whole in memory. begin opens the close's file,
 * downlink/close.tmp (truncated), with `from` as its first 32 bytes, into *fd (the encode
 * writes the payload behind them: agg_next_model_fd); abandon closes and removes it (no-op
 * when *fd < 0); save fsyncs it, renames it to its name, fsyncs the directory and maps it
 * read-only as *out (NULL when it cannot be mapped: logged, members fetch the whole
 * model); *fd is -1 after either. load maps the file of `to` as c->rnd.down. 0 or
 * COORD_ERR_IO (logged). */
int downlink_begin(struct coord *c, const uint8_t from[32], int *fd);
void downlink_abandon(struct coord *c, int *fd);
int downlink_save(struct coord *c, const uint8_t to[32], int *fd, struct down_payload **out);
int downlink_load(struct coord *c, const uint8_t to[32]);   /* sets c->down_*; 0 if absent */
int down_residual_open(struct coord *c, uint64_t completed_rounds);   /* as outer_state_open */
int down_residual_save(struct coord *c, uint64_t completed_rounds);
int down_residual_load(struct coord *c, uint64_t completed_rounds);

/* service.c */
int service_start(struct coord *c);

#endif
