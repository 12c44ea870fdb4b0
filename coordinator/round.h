#ifndef AULAC_COORDINATOR_ROUND_H
#define AULAC_COORDINATOR_ROUND_H
/* The open round of the loaded experiment: one struct (struct coord_round, c->rnd) and
 * the small interface the rest of the coordinator goes through.
 *
 *   round_init / round_free   its buffers, for an experiment of n_params parameters
 *   round_reset               opens round `number` (empty accepted set, deadline)
 *   round_validate            an update's payload as acceptance checks it: the whole
 *                             payload decodes (NaN/Inf refused by the codec), its L2
 *                             norm is finite and within the policy's bound; nothing is
 *                             decoded into any aggregate
 *   round_accept              adds a durably accepted update to the accepted set
 *   round_has / round_all_reported
 *   round_combine             the close's aggregate: the policy's rule over the stored
 *                             updates, into r->avg (the aggregation rules plug in here)
 *
 * Ownership and threads: the struct is embedded in struct coord and guarded by coord.mu,
 * except while `closing` is set: the round close (coordinator/experiment.c, on the timer
 * thread only) then owns avg, scratch, next, outer, down_residual, outer_map, down_map and
 * the base model outside mu; others wait for closing to clear (coord.changed) or return. Acceptance never closes
 * a round: when the last eligible member reports it sets close_pending and wakes the
 * timer (coord.timer_wake), and its receipt goes out at once. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate/outer.h"
#include "aggregate/robust.h"
#include "aggregate/round.h"
#include "crypto/keys.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "policies/roster.h"

/* The file mapping of a mapped snapshot, counted apart from the snapshot and without
 * coord.mu: a download lends chunks of it to gRPC (snapshot_pages_lend), which may refer
 * to them after the download and the snapshot are gone (until its connection has written
 * them, or is closed: rpc_part); the last reference, the
 * snapshot's own or a lent chunk's, unmaps it, in whatever thread drops it. */
struct snapshot_pages {
    _Atomic long refs;
    void *addr;
    size_t len;
};

/* An immutable model version; downloads hold a reference while they stream it.
 * Mapped (map_len > 0; what the coordinator serves and closes from: snapshot_map): params
 * is a read-only shared mapping of a file in the data directory that no name points to
 * (the mapping keeps it; nothing is left on disk after a crash), so the model's bytes
 * sit in the kernel's page cache and in this process only the pages a pass reads, until
 * it drops them (snapshot_drop); writing to params faults. Else (map_len 0: snapshot_new,
 * or a file that could not be written) params is malloc'd. */
struct model_snapshot {
    int refs;                       /* guarded by coord.mu */
    int loading;                    /* guarded by coord.mu: params not read yet (archived) */
    uint64_t round;                 /* rounds completed when it was made */
    uint8_t hash[32];
    size_t n;
    float *params;
    size_t map_len;                 /* bytes mapped at params; 0: params malloc'd */
    struct snapshot_pages *pages;   /* the mapping at params (NULL: malloc'd) */
};

/* A mapped snapshot (refs 1, round 0, hash zero: the caller sets them) of params' n
 * floats: a new file of dir that is unlinked at once (O_TMPFILE where the file system has
 * it), its n x 4 bytes reserved first (posix_fallocate: a full disk is ENOSPC or EDQUOT
 * here, never a write-back failure later), then written sequentially, mapped PROT_READ
 * MAP_SHARED, the descriptor closed. No fsync: the file lives only while mapped; the
 * checkpoint is the durable copy. It takes n x 4 bytes of dir's file system until
 * snapshot_free. 0, or -errno (ENOSPC, EDQUOT, EIO, ENOMEM, ENODEV where the file system
 * cannot map it shared...): nothing created, nothing left in dir. */
int  snapshot_map(const char *dir, const float *params, size_t n, struct model_snapshot **out);
/* s (malloc'd params) made mapped in place as snapshot_map does, its malloc'd buffer
 * freed; refs, round, hash and loading unchanged. 0 (also when already mapped), or -errno
 * with s unchanged. */
int  snapshot_to_file(const char *dir, struct model_snapshot *s);
/* Drops the pages of params[from, from + n) from this process (rounded out to whole
 * pages: a page another pass still reads comes back from the file on its next touch).
 * The values stay readable. No-op for a malloc'd snapshot or NULL. */
void snapshot_drop(const struct model_snapshot *s, size_t from, size_t n);
/* snapshot_drop of values [lo, hi) as a codec_release_fn / outer release hook (arg: the
 * snapshot): for passes in aggregate/ that read the base model chunk by chunk. */
void snapshot_drop_range(void *s, size_t lo, size_t hi);
/* One more reference to the pages of a mapped snapshot, for a chunk lent to gRPC: give
 * it back with snapshot_pages_return(pages) (an rpc_part's release). */
void snapshot_pages_lend(struct snapshot_pages *pages);
void snapshot_pages_return(void *pages);
/* Unmaps (mapped: the snapshot's reference to its pages) or frees params, then s.
 * Reference counting is the caller's (snapshot_release in coordinator/coord.h). NULL:
 * no-op. */
void snapshot_free(struct model_snapshot *s);

/* Model-sized work buffers of n floats (the close's average, support and new model):
 * private anonymous mappings, zero when made. model_buf_drop gives their pages back to
 * the system (MADV_DONTNEED): the buffer then reads as zeros again, exactly as when made,
 * and costs no resident memory until written. NULL from alloc: no memory. */
float *model_buf_alloc(size_t n);
void   model_buf_drop(float *p, size_t n);
void   model_buf_free(float *p, size_t n);

/* A state vector set held in a file during a round close (coordinator/models.c): the
 * next round's file, written as `tmp` and mapped MAP_SHARED read-write; `vectors`
 * vectors of n floats from byte `at`. Pages are written back and dropped as the close
 * consumes them (state_map_release), so they never stay resident together. fd -1: none. */
struct state_map {
    int fd;
    uint8_t *map;
    size_t len, at, n, vectors;
    char tmp[4096];
};

/* Creates tmp (replacing any) as hdr (hdr_len bytes, may be 0) followed by `vectors`
 * vectors of n floats: a copy of bytes [hdr_len, end) of `from` (which must be that long;
 * the copy is made by the kernel, copy_file_range, so it never passes through this
 * process's memory), or zeros when from is NULL; maps it MAP_SHARED read-write into sm
 * (sm->at = hdr_len). 0, or -errno (nothing left open; tmp removed). */
int  state_map_create(struct state_map *sm, const char *tmp, const char *from,
                      const uint8_t *hdr, size_t hdr_len, size_t n, size_t vectors);
/* The release hook of outer_opt and codec_encode_released (arg: a struct state_map):
 * values [lo, hi) of each vector are done with: their pages are dropped from this
 * process (MADV_DONTNEED: on a shared file mapping the data stays in the file's page
 * cache, dirty pages included) and their writeback starts (sync_file_range). */
void state_map_release(void *sm, size_t lo, size_t hi);
/* Makes sm's file durable as path: hdr (hdr_len bytes, may be 0) rewritten at offset 0,
 * unmapped, fsynced, renamed from tmp to path, directory fsynced. 0 or -errno; sm is
 * closed either way (tmp removed on failure). */
int  state_map_commit(struct state_map *sm, const char *path, const uint8_t *hdr,
                      size_t hdr_len);
/* Unmaps and closes sm (no-op when none); unlink_tmp: its temporary file goes too. */
void state_map_close(struct state_map *sm, int unlink_tmp);

/* The compressed downlink update to the current model, shared by the downloads that
 * stream it (each holds a reference, guarded by coord.mu), never copied per download and
 * never read into memory: bytes point into a read-only shared mapping of its file
 * (downlink/<hex>.bin, which is never written again once renamed there), whose pages a
 * sender may drop (MADV_DONTNEED) behind what it sent; they come back from the file. */
struct down_payload {
    int refs;
    uint8_t from[32];               /* the model the update applies to */
    const uint8_t *bytes;           /* the codec payload: map + 32 */
    size_t len;
    uint8_t *map;                   /* the whole file, unmapped with the last reference */
    size_t map_len;
};
/* A reference-1 mapping of the downlink file at path (32 bytes `from`, then the payload).
 * 0; -errno when it cannot be opened or mapped; -EINVAL when it is 32 bytes or shorter. */
int down_payload_map(const char *path, struct down_payload **out);
/* Drops a reference (coord.mu held when shared); the last unmaps it. NULL: no-op. */
void down_payload_release(struct down_payload *d);
/* Drops the pages of d's payload range [lo, hi) from this process (whole pages inside
 * it); they come back from the file if touched again. */
void down_payload_drop(const struct down_payload *d, size_t lo, size_t hi);

struct round_member {
    char id[CRYPTO_ID_MAX + 1];
    uint64_t tokens, samples, bytes;
    float train_loss, val_loss;
};

#define COORD_ROUND_MAX_UPDATES ROSTER_MAX_MEMBERS   /* accepted updates of one round */

struct coord_round {
    uint64_t number;                /* the open round, 1-based; > total when finished */
    struct model_snapshot *base;    /* the open round's base model (after the end: the
                                       final model, which stays served) */
    /* The compressed update from the previous model to base (downlink). */
    struct down_payload *down;      /* NULL: none (members download the whole model) */
    uint8_t down_from[32];
    float *down_residual;           /* server-side error feedback of the downlink: NULL but
                                       during a close, when it points into down_map (the
                                       state lives in outer/<n>.down between closes) */
    struct outer_opt outer;         /* the outer optimizer's kind, step and parameters; its
                                       vectors m, v are NULL but during a close, when they
                                       point into outer_map (outer/<n>.bin between closes) */
    struct state_map outer_map, down_map;
    float *avg;                     /* n_params: the close's average update (round_combine) */
    float *scratch;                 /* n_params: the senders' support, allocated by the
                                       first close whose plan averages over senders, then
                                       kept; NULL until then */
    float *next;                    /* n_params: the close's new model, made here (and the
                                       scores' model buffer before that) then copied into
                                       the next base model's file (snapshot_map); allocated
                                       by the first close, then kept; NULL until then */
    size_t buf_n;                   /* avg's, scratch's and next's n_params: model_buf_alloc'd,
                                       their pages given back after each close
                                       (round_release_buffers) */
    struct round_member *accepted;  /* n_accepted of COORD_ROUND_MAX_UPDATES slots */
    size_t n_accepted;
    double weight_sum;              /* sum of the accepted updates' agg_weight */
    int64_t opened_ms, deadline_ms; /* unix ms */
    int deadline_logged;            /* "passed its deadline, waiting" logged once */
    int closing;                    /* a close computes outside mu: see above */
    int close_pending;              /* the timer closes the round at its next wake */
    /* A close abandoned on a storage failure (disk full, LMDB map full, I/O error): the
     * round stays open with its accepted updates and the timer retries the close at
     * close_retry_at_ms (monotonic; 0: none), after 1, 2, 4 ... s up to 5 min
     * (close_failures: consecutive failures). */
    int64_t close_retry_at_ms;
    unsigned close_failures;
};

/* The accepted set's slots (once, at coord_open). 0 or -1 (no memory). */
int  round_init_members(struct coord_round *r);
/* avg for n_params (model_buf_alloc: resident only while a close writes it); 0 or -1
 * (no memory: nothing allocated). The outer optimizer is set up by the caller
 * (agg_outer_init); its state and the downlink residual live in files (models.c). */
int  round_init(struct coord_round *r, size_t n_params);
/* After a close (done or abandoned): avg's, scratch's and next's pages are given back
 * (model_buf_drop); each close recomputes them from zeros, so nothing is lost. */
void round_release_buffers(struct coord_round *r);
/* Frees what round_init set up, the downlink payload and the outer state (not base, not
 * the accepted slots); zeroes the round, keeping the accepted slots. */
void round_free(struct coord_round *r);
/* Frees the accepted set's slots. */
void round_free_members(struct coord_round *r);

/* Opens round `number` at opened_ms: no update accepted, deadline from the policy's
 * participation.round_deadline_s, closing and close_pending clear. */
void round_reset(struct coord_round *r, uint64_t number, const struct policy *p,
                 int64_t opened_ms);

/* An update payload as acceptance checks it, before anything is recorded: it must decode
 * as n_params values of the codec (every block, count, position, scale and value: NaN and
 * Inf are refused), its L2 norm times weight times (n_eligible + 1) must stay finite in
 * the sums (< 1e36), and the norm must be within the policy's bound: aggregation.norm_bound
 * for every rule but clip (0: none), aggregation.norm_cap for clip (which scales updates
 * above norm_bound down instead; 0: none). *norm: the L2 norm. 0; -1 with why (the reason
 * the member is told); CODEC_ERR_NOMEM when the coordinator is short of memory. */
int round_validate(const struct policy *p, size_t n_params, size_t n_eligible, double weight,
                   const uint8_t *payload, size_t len, double *norm, char *why, size_t cap);

/* 1 when member has an accepted update in the round. */
int round_has(const struct coord_round *r, const char *member);
/* Adds m (weight: its agg_weight) to the accepted set; -1 when the set is full. */
int round_accept(struct coord_round *r, const struct round_member *m, double weight);
/* 1 when at least one update is in and every roster member that takes part in the
 * policy (policy_takes_part) has reported. */
int round_all_reported(const struct coord_round *r, const struct roster *roster,
                       const struct policy *p);

/* The fewest updates the round may close with: participation.min_members, and the
 * policy's rule's own minimum (agg_rule_min_updates: multi_krum 2f + 3), at least 1. The
 * timer does not close a round with fewer, at its deadline or when every member has
 * reported: it waits (logged as waiting for min_members). */
size_t round_min_updates(const struct policy *p);

/* What the close's aggregation did (the log; the aggregate's hash for round_closed). */
struct round_outcome {
    size_t n;                       /* updates given */
    size_t used;                    /* that entered the average (multi_krum: selected) */
    size_t clipped;                 /* scaled down (clip rule, or privacy.clip) */
    struct agg_member_stat *stats;  /* n entries (aggregate/robust.h), malloc'd */
    uint8_t aggregate_hash[32];     /* model_hash of the average, after the DP noise under
                                       privacy: what a verifier recomputes (credit/replay.c;
                                       the noise once the seed is revealed) */
    int noised;                     /* 1: privacy on: agg_dp_noise was added after */
};

/* r->avg = the round's average update over the n stored updates u (sorted by member id):
 * agg_combine under the policy's rule (aggregate/robust.h; fedavg is agg_average bit for
 * bit), with privacy on DP-FedAvg's Gaussian noise over the `used` clipped updates
 * (agg_dp_noise_scheme of dp_seed, round r->number and the experiment's dp_scheme: a
 * function of the seed and the round alone), then its hash. r->scratch is the rules' scratch.
 * 0, or AGG_ERR_* with why (AGG_ERR_RULE: fewer updates than the rule needs; the timer
 * never closes such a round). out->stats is set on success (round_outcome_free). */
int round_combine(struct coord_round *r, const struct policy *p,
                  const struct policy_round_plan *plan, size_t n_params,
                  const struct agg_update *u, size_t n, const uint8_t *dp_seed,
                  unsigned dp_scheme, struct round_outcome *out, char *why, size_t cap);
void round_outcome_free(struct round_outcome *out);

/* One log line of what the rule did in round `round` (u as given to round_combine):
 * the rule, updates used of given, the clipped members with their norms, multi_krum's
 * selected and left-out members. Into buf (cap bytes, truncated with "..."). */
void round_outcome_describe(const struct round_outcome *out, const struct policy *p,
                            const struct agg_update *u, char *buf, size_t cap);

#endif
