#ifndef AULAC_BENCH_FEDSIM_H
#define AULAC_BENCH_FEDSIM_H
/* The member side of a federation simulated in one process, shared by the benches that
 * simulate one (bench/contribution.c, bench/robust.c; bench/compression.c uses the clock
 * and the trainer options): the demo corpora cut into members' shards, each member's
 * trainer, data and error-feedback residual, and one round as worker/worker.c runs it
 * (load the global model, reseed the sampler, train H steps with the member's own AdamW
 * state, Δ = θ_base − θ_local, decay the residual, codec_encode()), split into its
 * training and its encoding so that a bench can change Δ in between. Everything is
 * seeded from the policy and the member ids. Not a test harness: benches only. */
#include <stddef.h>
#include <stdint.h>

#include "aggregate/round.h"
#include "model/trainer.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "worker/data.h"

/* One simulated member. */
struct fedsim_member {
    char id[AGG_MEMBER_MAX + 1];
    char dir[4096];              /* its corpus ("" when it has none) */
    uint64_t seed;               /* first 8 bytes of BLAKE2b-256(id), as the worker's */
    struct trainer *tr;          /* NULL when it has no data */
    struct data *dt;
    float *residual;             /* n floats, zero at first */
    float *local;                /* n floats: after fedsim_train, Δ of the round */
    /* this round */
    uint8_t *payload;            /* malloc'd by fedsim_encode */
    size_t len;
    uint64_t tokens, samples;
    double seconds, norm;        /* training + encoding time; decoded L2 norm */
    int rc;
    char why[300];
};

double fedsim_now(void);   /* CLOCK_MONOTONIC seconds */

/* The regular files directly under dir in byte order of their names, concatenated (a
 * demo corpus is flat). *buf malloc'd. */
int fedsim_read_corpus(const char *dir, uint8_t **buf, size_t *len, char *why, size_t cap);

/* Writes b[0..n) to dir/text.txt (dir made when missing). */
int fedsim_write_text(const char *dir, const uint8_t *b, size_t n, char *why, size_t cap);

/* Cuts the demo corpora corpus/{fpt,vnpt,hust} into `pieces` shards written to
 * base/<id>/text.txt (base made when missing): corpus c (in that order) gets pieces / 3
 * + (c < pieces % 3) pieces, each cut at line ends at about equal byte offsets; ids are
 * the corpus's name when it gets one piece, else "<name>-1", "<name>-2", ... m[0..pieces)
 * get id, dir and seed; the rest of each entry is zeroed. */
int fedsim_make_shards(const char *corpus, const char *base, int pieces,
                       struct fedsim_member *m, char *why, size_t cap);

/* 0 when corpus/{fpt,vnpt,hust} are readable; else -1 after telling stderr, as prog,
 * how to make them. */
int fedsim_check_corpora(const char *corpus, const char *prog);

/* Removes dir/text.txt and dir of a member made by fedsim_make_shards (or by a bench). */
void fedsim_remove_shard(const struct fedsim_member *x);

/* x->seed from x->id, as worker/worker.c derives it. */
void fedsim_seed(struct fedsim_member *x);

/* The round plan's inner optimizer and batch shape, one thread. */
void fedsim_trainer_options(const struct policy_round_plan *plan, struct trainer_opts *to);

/* Allocates x's local and residual vectors (n_params of plan), and when with_data its
 * trainer and its data (x->dir, the policy's validation fraction). */
int fedsim_open(const struct policy *p, const struct policy_round_plan *first,
                struct fedsim_member *x, int with_data, char *why, size_t cap);
void fedsim_close(struct fedsim_member *x);   /* frees all fedsim_open and the round made */

/* The worker's sampler seed of round r: plan seed ^ member seed ^ r * 0x9e37... */
uint64_t fedsim_round_seed(const struct policy_round_plan *plan,
                           const struct fedsim_member *x, uint32_t r);

/* Trains `steps` local steps of round r from theta: x->local = theta - θ_local,
 * x->tokens, x->samples, x->seconds (training time). x->why on failure. */
int fedsim_train(const struct policy *p, uint32_t steps, struct fedsim_member *x,
                 const float *theta, size_t n, uint32_t r);

/* Encodes x->local with round r's uplink as the worker does: the residual decayed by
 * error_feedback_decay, codec_encode() with it (error feedback on), x->payload, x->len,
 * x->norm (the decoded L2 norm, codec_payload_norm); adds the time to x->seconds. */
int fedsim_encode(const struct policy *p, struct fedsim_member *x, size_t n, uint32_t r);

/* fedsim_train then fedsim_encode. */
int fedsim_round(const struct policy *p, uint32_t steps, struct fedsim_member *x,
                 const float *theta, size_t n, uint32_t r);

/* x's loss (nats per byte) of params on its whole held-out text. */
int fedsim_val_loss(struct fedsim_member *x, const float *params, size_t n, double *loss);

/* splitmix64, and a standard normal by Box-Muller from it. */
uint64_t fedsim_mix64(uint64_t *state);
double fedsim_normal(uint64_t *state);

/* Calls fn(arg, i) for every i in [0, count) on up to `jobs` threads (at most 64);
 * returns when all are done. */
void fedsim_parallel(int count, int jobs, void (*fn)(void *arg, int i), void *arg);

#endif
