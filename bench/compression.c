/* bench/compression: model quality against uplink bytes of the update codec (issue 5).
 * An experiment, not a test: prints figures, asserts nothing.
 *
 *   bench/compression [--policy FILE] [--corpus DIR] [--rounds R] [--steps H]
 *                     [--variants LIST|all|list] [--add NAME:key=value,...]
 *                     [--jobs N] [--downlink] [--curve N]
 *
 * A federated run simulated in one process, round for round what the coordinator
 * and the workers do (coordinator/experiment.c, worker/worker.c), on the policy's
 * model, data split, inner and outer optimizers (default policies/examples/sparse.yaml,
 * corpora DIR/<member> for each member of participation.members, default
 * build/demo-corpus, made by scripts/demo-corpus.sh; scripts/bench-compression.sh
 * does both):
 *
 *   each member has its own trainer (AdamW state kept across rounds), corpus, split
 *   and error-feedback residual; per round it loads the global model, trains H local
 *   steps, decays its residual (error_feedback_decay) and encodes Δ = θ_base − θ_local
 *   with codec_encode(); the "coordinator" adds every payload into one accumulator with
 *   codec_decode_accumulate_support() weighted by tokens, averages it with
 *   outer_average() (over all members, or coordinate by coordinate over the senders,
 *   and times sparse_scale in sparse rounds) and takes the outer step
 *   (aggregate/outer.h).
 *
 * The downlink is exact unless --downlink, which applies the policy's downlink
 * compression (server-side error feedback, replicas take prev + decoded change) as
 * the coordinator does. Only the uplink varies between variants; everything else --
 * initial model, batches, order -- is the same, so differences are the codec's.
 *
 * Final loss: the mean over the members of trainer_evaluate() of the final global
 * model on each member's whole held-out text. Bytes: payload bytes per round per
 * member, averaged over all rounds (dense warm-up rounds included) and over the
 * sparse rounds alone; ratio: 4n (the fp32 vector) over that.
 *
 * Variants (--variants list): by default the five runs on the policy (dense;
 * top-k 1% and 0.3% in blocks of 4096, int8 + zstd 3, with and without error
 * feedback), then 1%+ef and 0.3%+ef without the policy's sparse-uplink knobs, one knob
 * at a time, and in blocks of 65536 (bench/README.md); 'all' adds earlier
 * investigations on the demo's Nesterov outer step. --add defines more without
 * recompiling.
 *
 * Variants run in parallel (--jobs, default: online CPUs), one trainer thread each;
 * everything is seeded from the policy, so the results do not depend on --jobs or the
 * machine's load. --curve N prints every variant's loss after every N-th round (one
 * evaluation each: slower). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec/codec.h"
#include "aggregate/outer.h"
#include "crypto/digest.h"
#include "model/gpt2.h"
#include "model/trainer.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "worker/data.h"
#include "bench/lib/fedsim.h"

#define MAX_MEMBERS 8
#define MAX_ROUNDS 1000

/* One uplink configuration. Everything not named here comes from the policy. */
struct variant {
    char name[32];
    char what[200];
    uint32_t block, k;       /* k >= block: dense */
    enum codec_quant quant;
    int zstd, ef;
    uint32_t dense_warmup;   /* first rounds sent dense (same quant and zstd) */
    int outer;               /* -1: the policy's outer optimizer, else enum outer_kind */
    float outer_lr, outer_momentum;
    int set;                 /* 1: the five runs, 2: what the knobs do, 0: other */
    /* The policy's sparse-uplink knobs (policies/README.md) unless PLAIN: */
    int plain;               /* 1: decay 1, average members, sparse_scale 1 */
    float decay;             /* > 0: error_feedback_decay instead of the policy's */
    int average;             /* >= 0: enum policy_average instead of the policy's */
    float scale;             /* > 0: sparse_scale instead of the policy's */
};

#define POLICY_OUTER -1, 0, 0
#define FEDAVG(lr) OUTER_FEDAVG, lr, 0
#define NESTEROV(lr, mu) OUTER_NESTEROV, lr, mu
#define KNOBS 0, 0, -1, 0       /* the policy's decay, average and sparse_scale */
#define PLAIN 1, 0, -1, 0       /* none of them: plain error feedback and averaging */

/* set 1: the five runs on the policy (default policies/examples/sparse.yaml:
 * blocks of 4096, outer fedavg, error_feedback_decay 0.8, average senders, sparse_scale
 * 2); set 2: the same without those knobs, and in blocks of 65536; set 0: earlier
 * investigations, on the demo's Nesterov outer step (bench/README.md). */
static const struct variant builtin[] = {
    {"dense", "compression off: dense fp32, no zstd",
     65536, 65536, CODEC_QUANT_FP32, 0, 0, 0, POLICY_OUTER, 1, KNOBS},
    {"1%", "top-k 1% (B 4096, k 41), int8 + zstd 3, no error feedback",
     4096, 41, CODEC_QUANT_INT8, 3, 0, 0, POLICY_OUTER, 1, KNOBS},
    {"1%+ef", "top-k 1% (B 4096, k 41), int8 + zstd 3, error feedback",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 1, KNOBS},
    {"0.3%", "top-k 0.3% (B 4096, k 12), int8 + zstd 3, no error feedback",
     4096, 12, CODEC_QUANT_INT8, 3, 0, 0, POLICY_OUTER, 1, KNOBS},
    {"0.3%+ef", "top-k 0.3% (B 4096, k 12), int8 + zstd 3, error feedback",
     4096, 12, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 1, KNOBS},

    {"1%+ef/plain", "1%+ef with plain error feedback and averaging (decay 1, average "
     "members, scale 1)", 4096, 41, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, PLAIN},
    {"1%+ef/decay", "1%+ef with the residual's decay only (average members, scale 1)",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, 0, 0, POLICY_AVERAGE_MEMBERS, 1},
    {"1%+ef/senders", "1%+ef with average senders only (decay 1, scale 1)",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, 0, 1, POLICY_AVERAGE_SENDERS, 1},
    {"1%+ef/64k", "1%+ef in blocks of 65536 (k 656)",
     65536, 656, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, KNOBS},
    {"0.3%+ef/plain", "0.3%+ef with plain error feedback and averaging",
     4096, 12, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 2, PLAIN},

    {"n/dense", "dense fp32 on the demo's outer step (Nesterov lr 0.7, momentum 0.9)",
     65536, 65536, CODEC_QUANT_FP32, 0, 0, 0, NESTEROV(0.7f, 0.9f), 0, PLAIN},
    {"n/1%+ef", "top-k 1% (B 4096, k 41), int8 + zstd 3, error feedback, Nesterov",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 0, NESTEROV(0.7f, 0.9f), 0, PLAIN},
    {"n/1%+ef+w1", "n/1%+ef after one dense int8 warm-up round",
     4096, 41, CODEC_QUANT_INT8, 3, 1, 1, NESTEROV(0.7f, 0.9f), 0, PLAIN},
    {"n/0.3%+ef", "top-k 0.3% (B 4096, k 12), int8 + zstd 3, error feedback, Nesterov",
     4096, 12, CODEC_QUANT_INT8, 3, 1, 0, NESTEROV(0.7f, 0.9f), 0, PLAIN},
    {"dense-int8", "dense int8 + zstd 3 (no top-k), no error feedback",
     65536, 65536, CODEC_QUANT_INT8, 3, 0, 0, POLICY_OUTER, 0, KNOBS},
    {"1.5%i4+ef", "top-k 1.5% (B 4096, k 62), int4 + zstd 3 (about the bytes of 1% int8), "
     "error feedback", 4096, 62, CODEC_QUANT_INT4, 3, 1, 0, POLICY_OUTER, 0, KNOBS},
    {"0.6%i4+ef", "top-k 0.6% (B 4096, k 25), int4 + zstd 3 (about the bytes of 0.3% int8), "
     "error feedback", 4096, 25, CODEC_QUANT_INT4, 3, 1, 0, POLICY_OUTER, 0, KNOBS},
    {"6%+ef", "top-k 6.25% (B 4096, k 256), int8 + zstd 3, error feedback",
     4096, 256, CODEC_QUANT_INT8, 3, 1, 0, POLICY_OUTER, 0, KNOBS},
    {"demo-uplink", "the demo policy's own uplink: B 1024, k 64 (6.25%), int8 + zstd 3, error "
     "feedback, one dense warm-up round, Nesterov", 1024, 64, CODEC_QUANT_INT8, 3, 1, 1,
     NESTEROV(0.7f, 0.9f), 0, PLAIN},
};
#define N_BUILTIN (sizeof builtin / sizeof builtin[0])
#define MAX_VARIANTS 64

/* --add NAME:key=value,...: a variant of one's own, starting from 1%+ef. Keys: block,
 * k, density, quant (fp32|int8|fp16|fp8|int4), zstd, ef, warmup, decay, average
 * (members|senders), scale, outer (policy|fedavg|nesterov|fedadam), lr, momentum. */
static int parse_variant(const char *spec, struct variant *v)
{
    *v = builtin[2];
    v->set = 0;
    const char *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (nl == 0 || nl >= sizeof v->name)
        return -1;
    memcpy(v->name, spec, nl);
    v->name[nl] = 0;
    snprintf(v->what, sizeof v->what, "1%%+ef with %s", colon ? colon + 1 : "nothing changed");
    if (!colon)
        return 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", colon + 1);
    double density = 0;
    for (char *save, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return -1;
        *eq = 0;
        const char *key = kv, *val = eq + 1;
        char *end;
        double x = strtod(val, &end);
        int num = end != val && *end == 0;
        if (!strcmp(key, "block") && num) v->block = (uint32_t)x;
        else if (!strcmp(key, "k") && num) v->k = (uint32_t)x;
        else if (!strcmp(key, "density") && num) density = x;
        else if (!strcmp(key, "zstd") && num) v->zstd = (int)x;
        else if (!strcmp(key, "ef") && num) v->ef = x != 0;
        else if (!strcmp(key, "warmup") && num) v->dense_warmup = (uint32_t)x;
        else if (!strcmp(key, "decay") && num && x > 0 && x <= 1) v->decay = (float)x;
        else if (!strcmp(key, "scale") && num && x > 0) v->scale = (float)x;
        else if (!strcmp(key, "average") && !strcmp(val, "members"))
            v->average = POLICY_AVERAGE_MEMBERS;
        else if (!strcmp(key, "average") && !strcmp(val, "senders"))
            v->average = POLICY_AVERAGE_SENDERS;
        else if (!strcmp(key, "lr") && num) v->outer_lr = (float)x;
        else if (!strcmp(key, "momentum") && num) v->outer_momentum = (float)x;
        else if (!strcmp(key, "quant")) {
            int q;
            for (q = 0; q < CODEC_QUANT_COUNT; q++)
                if (!strcmp(val, codec_quant_name((enum codec_quant)q)))
                    break;
            if (q == CODEC_QUANT_COUNT)
                return -1;
            v->quant = (enum codec_quant)q;
        } else if (!strcmp(key, "outer")) {
            if (!strcmp(val, "policy")) v->outer = -1;
            else if (!strcmp(val, "fedavg")) v->outer = OUTER_FEDAVG;
            else if (!strcmp(val, "nesterov")) v->outer = OUTER_NESTEROV;
            else if (!strcmp(val, "fedadam")) v->outer = OUTER_FEDADAM;
            else return -1;
        } else
            return -1;
    }
    if (density > 0)
        v->k = (uint32_t)ceil(density * v->block);
    if (v->outer >= 0 && v->outer_lr == 0)
        v->outer_lr = 1.0f;
    struct codec_params cp = {CODEC_FORMAT_VERSION, v->block, v->k < v->block ? v->k : v->block,
                              v->quant, v->zstd, v->ef};
    return codec_params_validate(&cp, NULL, 0) == 0 ? 0 : -1;
}

struct sim {
    struct policy policy;
    struct policy_round_plan first;   /* round 1's plan: the model and the trainer options */
    size_t n;
    int n_members;
    char corpus[MAX_MEMBERS][4096];
    uint32_t rounds, steps;
    int downlink, curve;        /* curve: evaluate after every curve-th round (0: never) */
};

struct result {
    int rc;
    char why[600];
    double loss;                   /* final: mean over members */
    double member_loss[MAX_MEMBERS];
    double bytes_all, bytes_sparse; /* mean payload bytes per round per member */
    double curve[MAX_ROUNDS];
    double down_bytes;             /* --downlink: mean bytes per round */
    double kept;                   /* mean over sparse payloads of |decoded|^2 / |delta + e|^2 */
    double seconds;
};

static int fail(struct result *r, int rc, const char *fmt, const char *what)
{
    r->rc = rc ? rc : -1;
    snprintf(r->why, sizeof r->why, fmt, what);
    return r->rc;
}

/* Mean validation loss of params over the members' held-out text. */
static int evaluate(const struct sim *s, struct trainer **tr, struct data **dt,
                    const float *params, double *mean, double *per_member)
{
    double sum = 0;
    for (int m = 0; m < s->n_members; m++) {
        const uint8_t *val;
        size_t len;
        float loss;
        int rc = trainer_set_params(tr[m], params, s->n);
        if (rc == 0)
            rc = data_validation(dt[m], 0, &val, &len);
        if (rc == 0)
            rc = trainer_evaluate(tr[m], val, len, 0, &loss);
        if (rc != 0)
            return rc;
        if (per_member)
            per_member[m] = loss;
        sum += loss;
    }
    *mean = sum / s->n_members;
    return 0;
}

static int simulate(const struct sim *s, const struct variant *v, struct result *res)
{
    const struct policy *p = &s->policy;
    const size_t n = s->n;
    const double t0 = fedsim_now();
    struct trainer *tr[MAX_MEMBERS] = {0};
    struct data *dt[MAX_MEMBERS] = {0};
    float *residual[MAX_MEMBERS] = {0};
    float *theta = malloc(n * sizeof(float)), *acc = malloc(n * sizeof(float));
    float *local = malloc(n * sizeof(float)), *prev = malloc(n * sizeof(float));
    float *down_residual = calloc(n, sizeof(float)), *scratch = malloc(n * sizeof(float));
    const struct policy_link *up = &p->compression.uplink;
    const float decay = v->plain ? 1.0f : v->decay > 0 ? v->decay : (float)up->error_feedback_decay;
    const int senders = v->plain ? 0 : v->average >= 0 ? v->average == POLICY_AVERAGE_SENDERS
                                                       : up->average == POLICY_AVERAGE_SENDERS;
    const float scale = v->plain ? 1.0f : v->scale > 0 ? v->scale : (float)up->sparse_scale;
    float *support = senders ? malloc(n * sizeof(float)) : NULL;
    struct outer_opt outer = {0};
    int rc = 0;
    uint64_t bytes_all = 0, bytes_sparse = 0, down_bytes = 0, sparse_rounds = 0;
    memset(res, 0, sizeof *res);
    double kept_sum = 0;
    if (!theta || !acc || !local || !prev || !down_residual || !scratch || (senders && !support)) {
        fail(res, -1, "%s", "out of memory");
        goto out;
    }
    if ((rc = gpt2_init_params(&s->first.model, s->first.seed, theta)) != 0) {
        fail(res, rc, "gpt2_init_params: %s", model_strerror(rc));
        goto out;
    }

    const struct policy_training *t = &p->training;
    const struct policy_round_plan *f = &s->first;
    struct trainer_opts to;
    fedsim_trainer_options(f, &to);
    for (int m = 0; m < s->n_members; m++) {
        if ((rc = trainer_create(&s->first.model, &to, &tr[m])) != 0) {
            fail(res, rc, "trainer_create: %s", model_strerror(rc));
            goto out;
        }
        uint8_t h[32];
        const char *id = p->participation.members[m];
        crypto_blake2b256(id, strlen(id), h);
        struct data_opts dopt = {.val_fraction = p->data.validation_fraction,
                                 .seq_len = to.seq_len};
        memcpy(&dopt.seed, h, sizeof dopt.seed);
        char why[512];
        if ((rc = data_open(s->corpus[m], &dopt, &dt[m], why, sizeof why)) != 0) {
            fail(res, rc, "%s", why);
            goto out;
        }
        if (v->ef && !(residual[m] = calloc(n, sizeof(float)))) {
            fail(res, -1, "%s", "out of memory");
            goto out;
        }
    }

    enum outer_kind ok = v->outer >= 0 ? (enum outer_kind)v->outer
                       : t->outer.kind == POLICY_OUTER_NESTEROV ? OUTER_NESTEROV
                       : t->outer.kind == POLICY_OUTER_FEDADAM ? OUTER_FEDADAM : OUTER_FEDAVG;
    float olr = v->outer >= 0 ? v->outer_lr : (float)t->outer.lr;
    float omu = v->outer >= 0 ? v->outer_momentum : (float)t->outer.momentum;
    if ((rc = outer_init(&outer, ok, n, olr, omu)) != 0) {
        fail(res, rc, "%s", "outer_init failed");
        goto out;
    }
    if (ok == OUTER_FEDADAM && v->outer < 0) {
        outer.beta1 = (float)t->outer.beta1;
        outer.beta2 = (float)t->outer.beta2;
        outer.tau = (float)t->outer.eps;
    }
    for (uint32_t r = 1; r <= s->rounds; r++) {
        struct codec_params cp = {CODEC_FORMAT_VERSION, v->block, v->k, v->quant, v->zstd, v->ef};
        if (cp.k_per_block > cp.block_size || r <= v->dense_warmup)
            cp.k_per_block = cp.block_size;
        const int sparse = cp.k_per_block < cp.block_size;
        memset(acc, 0, n * sizeof(float));
        if (support)
            memset(support, 0, n * sizeof(float));
        double wsum = 0;
        for (int m = 0; m < s->n_members; m++) {
            struct trainer_stats st;
            if ((rc = trainer_set_params(tr[m], theta, n)) != 0) {
                fail(res, rc, "trainer_set_params: %s", model_strerror(rc));
                goto out;
            }
            /* The worker's reseed (worker/worker.c): the model seed, round and size. */
            data_reseed(dt[m], p->model.seed ^ (r * 0x9e3779b97f4a7c15ULL) ^ n);
            rc = trainer_train_steps(tr[m], (int)s->steps, data_next_batch, dt[m], NULL, NULL,
                                     &st);
            if (rc == 0)
                rc = trainer_get_params(tr[m], local, n);
            if (rc != 0) {
                fail(res, rc, "training: %s", model_strerror(rc));
                goto out;
            }
            for (size_t i = 0; i < n; i++)
                local[i] = theta[i] - local[i];   /* pseudo-gradient */
            if (v->ef && decay != 1.0f)   /* as worker/worker.c does */
                for (size_t i = 0; i < n; i++)
                    residual[m][i] *= decay;
            double sent_norm2 = 0, norm2 = 0;   /* what the codec was asked to carry */
            for (size_t i = 0; i < n; i++) {
                double x = (double)local[i] + (v->ef ? residual[m][i] : 0.0);
                norm2 += x * x;
            }
            uint8_t *payload;
            size_t len;
            if ((rc = codec_encode(local, n, &cp, residual[m], &payload, &len)) != 0) {
                fail(res, rc, "codec_encode: %s", codec_strerror(rc));
                goto out;
            }
            bytes_all += len;
            char why[200];
            if (sparse) {
                bytes_sparse += len;
                memset(scratch, 0, n * sizeof(float));
                rc = codec_decode_accumulate(payload, len, n, 1.0f, scratch, why, sizeof why);
                for (size_t i = 0; rc == 0 && i < n; i++)
                    sent_norm2 += (double)scratch[i] * scratch[i];
                kept_sum += norm2 > 0 ? sent_norm2 / norm2 : 0;
            }
            if (rc == 0)
                rc = codec_decode_accumulate_support(payload, len, n, (float)st.tokens, acc,
                                                     support, why, sizeof why);
            free(payload);
            if (rc != 0) {
                fail(res, rc, "codec_decode_accumulate: %s", why);
                goto out;
            }
            wsum += (double)st.tokens;
        }
        sparse_rounds += sparse;
        /* As coordinator/experiment.c closes a round. */
        outer_average(acc, sparse ? support : NULL, n, wsum, sparse ? scale : 1.0f);
        memcpy(prev, theta, n * sizeof(float));
        outer_step(&outer, theta, acc);
        struct policy_round_plan plan = { 0 };   /* the coordinator's downlink of round r */
        char why[300];
        if (s->downlink && policy_round_plan(p, r, &plan, why, sizeof why) != 0) {
            fail(res, -1, "%s", why);
            goto out;
        }
        if (s->downlink && plan.downlink_on) {
            const struct codec_params *dl = &plan.downlink;
            for (size_t i = 0; i < n; i++)
                acc[i] = theta[i] - prev[i];
            uint8_t *payload;
            size_t len;
            rc = codec_encode(acc, n, dl, dl->error_feedback ? down_residual : NULL, &payload,
                              &len);
            if (rc == 0) {
                memcpy(theta, prev, n * sizeof(float));
                rc = codec_decode_accumulate(payload, len, n, 1.0f, theta, why, sizeof why);
                free(payload);
                down_bytes += len;
            }
            if (rc != 0) {
                fail(res, rc, "downlink: %s", codec_strerror(rc));
                goto out;
            }
        }
        for (size_t i = 0; i < n; i++)
            if (!isfinite(theta[i])) {
                fail(res, -1, "%s", "the global model became non-finite");
                goto out;
            }
        if (s->curve && r < MAX_ROUNDS && (r % (uint32_t)s->curve == 0 || r == s->rounds) &&
            (rc = evaluate(s, tr, dt, theta, &res->curve[r], NULL)) != 0) {
            fail(res, rc, "evaluate: %s", model_strerror(rc));
            goto out;
        }
    }
    if ((rc = evaluate(s, tr, dt, theta, &res->loss, res->member_loss)) != 0) {
        fail(res, rc, "evaluate: %s", model_strerror(rc));
        goto out;
    }
    res->bytes_all = (double)bytes_all / ((double)s->rounds * s->n_members);
    res->bytes_sparse = sparse_rounds
        ? (double)bytes_sparse / ((double)sparse_rounds * s->n_members) : res->bytes_all;
    res->down_bytes = (double)down_bytes / s->rounds;
    res->kept = sparse_rounds ? kept_sum / ((double)sparse_rounds * s->n_members) : 1.0;
out:
    res->seconds = fedsim_now() - t0;
    for (int m = 0; m < s->n_members; m++) {
        trainer_destroy(tr[m]);
        data_close(dt[m]);
        free(residual[m]);
    }
    outer_free(&outer);
    free(theta);
    free(acc);
    free(local);
    free(prev);
    free(down_residual);
    free(scratch);
    free(support);
    return res->rc;
}

/* ---- jobs --------------------------------------------------------------------- */

struct pool {
    const struct sim *sim;
    const struct variant **queued;
    struct result *results;
    pthread_mutex_t lock;
};

static void run_variant(void *arg, int at)
{
    struct pool *pl = arg;
    const size_t i = (size_t)at;
    simulate(pl->sim, pl->queued[i], &pl->results[i]);
    pthread_mutex_lock(&pl->lock);
    const struct result *r = &pl->results[i];
    if (r->rc)
        fprintf(stderr, "  %-15s failed: %s\n", pl->queued[i]->name, r->why);
    else
        fprintf(stderr, "  %-15s loss %.4f, %.0f bytes/round/member, %.1f s\n",
                pl->queued[i]->name, r->loss, r->bytes_all, r->seconds);
    pthread_mutex_unlock(&pl->lock);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: compression [--policy FILE] [--corpus DIR] [--rounds R] [--steps H]\n"
            "                   [--variants LIST|all|list] [--add NAME:key=value,...]\n"
            "                   [--jobs N] [--downlink] [--curve N]\n"
            "  --policy FILE   model, data, training and outer settings "
            "(policies/examples/sparse.yaml)\n"
            "  --corpus DIR    DIR/<member> per policy member (build/demo-corpus; "
            "scripts/demo-corpus.sh makes it)\n"
            "  --rounds R      rounds (policy's training.rounds)\n"
            "  --steps H       local steps per round (policy's training.local_steps)\n"
            "  --variants L    comma-separated names; 'all'; 'list' prints them "
            "(default: issue 5's five, then the\n"
            "                  same budgets improved)\n"
            "  --add SPEC      one more variant, from 1%%+ef: NAME:key=value,... with keys block, k,\n"
            "                  density, quant (fp32|int8|fp16|fp8|int4), zstd, ef (0|1), warmup\n"
            "                  (dense rounds), decay (error_feedback_decay), average\n"
            "                  (members|senders), scale (sparse_scale), outer\n"
            "                  (policy|fedavg|nesterov|fedadam), lr, momentum; repeatable\n"
            "  --jobs N        variants run at once (online CPUs)\n"
            "  --downlink      apply the policy's downlink compression (default: exact)\n"
            "  --curve N       print the validation loss after every N-th round\n");
}

int main(int argc, char **argv)
{
    const char *policy_path = "policies/examples/sparse.yaml", *corpus = "build/demo-corpus";
    const char *list = NULL;
    long rounds = 0, steps = 0, jobs = sysconf(_SC_NPROCESSORS_ONLN);
    static struct sim s;
    static struct variant added[MAX_VARIANTS];
    size_t n_added = 0;
    static const struct option opts[] = {
        {"policy", required_argument, 0, 'p'}, {"corpus", required_argument, 0, 'c'},
        {"rounds", required_argument, 0, 'r'}, {"steps", required_argument, 0, 's'},
        {"variants", required_argument, 0, 'v'}, {"add", required_argument, 0, 'a'},
        {"jobs", required_argument, 0, 'j'}, {"downlink", no_argument, 0, 'd'},
        {"curve", required_argument, 0, 'C'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': policy_path = optarg; break;
        case 'c': corpus = optarg; break;
        case 'r': rounds = strtol(optarg, NULL, 10); break;
        case 's': steps = strtol(optarg, NULL, 10); break;
        case 'v': list = optarg; break;
        case 'a':
            if (n_added == MAX_VARIANTS || parse_variant(optarg, &added[n_added]) != 0) {
                fprintf(stderr, "compression: bad variant '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            n_added++;
            break;
        case 'j': jobs = strtol(optarg, NULL, 10); break;
        case 'd': s.downlink = 1; break;
        case 'C': s.curve = (int)strtol(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (list && !strcmp(list, "list")) {
        for (size_t i = 0; i < N_BUILTIN; i++)
            printf("%-15s %s%s\n", builtin[i].name, builtin[i].what,
                   builtin[i].set ? "  [default]" : "");
        return 0;
    }
    if (rounds < 0 || rounds >= MAX_ROUNDS || steps < 0 || jobs < 1 || s.curve < 0) {
        usage(stderr);
        return 2;
    }

    struct policy_error perr;
    if (policy_load_file(policy_path, &s.policy, &perr) != 0) {
        fprintf(stderr, "compression: %s\n", perr.message);
        return 1;
    }
    const struct policy *p = &s.policy;
    s.rounds = rounds ? (uint32_t)rounds : p->training.rounds;
    s.policy.training.rounds = s.rounds;   /* so that every round run has its plan */
    char why[300];
    if (policy_round_plan(p, 1, &s.first, why, sizeof why) != 0) {
        fprintf(stderr, "compression: %s: %s\n", policy_path, why);
        return 1;
    }
    s.n = s.first.n_params;
    s.steps = steps ? (uint32_t)steps : p->training.local_steps;
    if (p->participation.n_members > MAX_MEMBERS) {
        fprintf(stderr, "compression: at most %d members\n", MAX_MEMBERS);
        return 1;
    }
    s.n_members = (int)p->participation.n_members;
    for (int m = 0; m < s.n_members; m++) {
        snprintf(s.corpus[m], sizeof s.corpus[m], "%s/%s", corpus, p->participation.members[m]);
        if (access(s.corpus[m], R_OK) != 0) {
            fprintf(stderr, "compression: no corpus %s; make the demo corpora with "
                    "scripts/demo-corpus.sh %s\n", s.corpus[m], corpus);
            return 1;
        }
    }

    /* The uncompressed run comes first: every gap is against it. */
    const struct variant *queued[MAX_VARIANTS + N_BUILTIN];
    size_t n_queued = 0;
    queued[n_queued++] = &builtin[0];
    if (!list) {
        for (size_t i = 1; i < N_BUILTIN; i++)
            if (builtin[i].set && n_added == 0)
                queued[n_queued++] = &builtin[i];
    } else if (!strcmp(list, "all")) {
        for (size_t i = 1; i < N_BUILTIN; i++)
            queued[n_queued++] = &builtin[i];
    } else {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", list);
        for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            size_t i;
            for (i = 0; i < N_BUILTIN && strcmp(builtin[i].name, tok); i++)
                ;
            if (i == N_BUILTIN) {
                fprintf(stderr, "compression: no variant '%s' (--variants list)\n", tok);
                return 2;
            }
            if (i > 0 && n_queued < N_BUILTIN)
                queued[n_queued++] = &builtin[i];
        }
    }
    for (size_t i = 0; i < n_added; i++)
        queued[n_queued++] = &added[i];

    printf("bench/compression: policy %s (%s), %zu parameters (%zu bytes fp32)\n",
           policy_path, p->metadata.name, s.n, 4 * s.n);
    printf("  %d members, corpora %s/{", s.n_members, corpus);
    for (int m = 0; m < s.n_members; m++)
        printf("%s%s", m ? "," : "", p->participation.members[m]);
    printf("}\n  %u rounds x %u local steps of %u x %u tokens, inner AdamW lr %g (constant: the "
           "policy's warm-up of %u steps is not simulated), outer %s lr %g momentum %g\n",
           s.rounds, s.steps, p->training.batch_size, p->training.seq_len,
           p->training.inner.lr, p->training.inner.warmup_steps,
           policy_outer_kind_name(p->training.outer.kind), p->training.outer.lr,
           p->training.outer.momentum);
    const struct policy_link *up = &p->compression.uplink;
    printf("  sparse uplinks: error_feedback_decay %g, average %s, sparse_scale %g (unless a "
           "variant says otherwise)\n", up->error_feedback_decay,
           up->average == POLICY_AVERAGE_SENDERS ? "senders" : "members", up->sparse_scale);
    printf("  downlink: %s; %zu variant(s), %ld at a time\n",
           s.downlink ? "the policy's compression" : "exact (the uplink alone varies)", n_queued,
           jobs);
    fflush(stdout);

    struct result *results = calloc(n_queued, sizeof *results);
    if (!results)
        return 1;
    struct pool pl = {.sim = &s, .queued = queued, .results = results};
    pthread_mutex_init(&pl.lock, NULL);
    const double t0 = fedsim_now();
    fedsim_parallel((int)n_queued, jobs > 64 ? 64 : (int)jobs, run_variant, &pl);
    const double wall = fedsim_now() - t0;

    const double dense_bytes = 4.0 * (double)s.n;
    const struct result *ref = results[0].rc == 0 ? &results[0] : NULL;
    const struct result *best = NULL;   /* the best uncompressed run, whatever its outer */
    for (size_t i = 0; i < n_queued; i++)
        if (!results[i].rc && queued[i]->k >= queued[i]->block && queued[i]->quant == CODEC_QUANT_FP32 &&
            (!best || results[i].loss < best->loss))
            best = &results[i];
    printf("\n%-15s %11s %7s %11s %7s %6s %9s %8s %8s", "variant", "bytes/round", "ratio",
           "sparse rnds", "ratio", "kept", "val loss", "gap", "vs best");
    for (int m = 0; m < s.n_members; m++)
        printf(" %7.7s", p->participation.members[m]);
    printf("\n");
    for (size_t i = 0; i < n_queued; i++) {
        const struct result *r = &results[i];
        if (r->rc) {
            printf("%-15s failed: %s\n", queued[i]->name, r->why);
            continue;
        }
        printf("%-15s %11.0f %6.1fx %11.0f %6.1fx %5.1f%% %9.4f", queued[i]->name, r->bytes_all,
               dense_bytes / r->bytes_all, r->bytes_sparse, dense_bytes / r->bytes_sparse,
               100.0 * r->kept, r->loss);
        if (ref)
            printf(" %+7.2f%%", 100.0 * (r->loss - ref->loss) / ref->loss);
        else
            printf(" %8s", "-");
        if (best)
            printf(" %+7.2f%%", 100.0 * (r->loss - best->loss) / best->loss);
        else
            printf(" %8s", "-");
        for (int m = 0; m < s.n_members; m++)
            printf(" %7.4f", r->member_loss[m]);
        printf("\n");
    }
    printf("\nbytes/round: payload bytes per round per member, mean over all rounds; sparse "
           "rnds: over the rounds after the dense warm-up; ratio: the %.0f bytes of the fp32 "
           "vector over that; kept: |decoded|^2 / |delta + residual|^2, mean over sparse "
           "payloads; val loss: the final model's loss (nats/byte) on each member's held-out "
           "text, mean over members; gap: vs dense (the policy's outer optimizer); vs best: vs "
           "the best uncompressed run in this table.\n", dense_bytes);
    if (s.downlink)
        printf("downlink (%s): %.0f bytes per round (%.1fx)\n", queued[0]->name,
               results[0].down_bytes, dense_bytes / results[0].down_bytes);
    if (s.curve) {
        printf("\nvalidation loss after round\n%-15s", "round");
        for (uint32_t r = 1; r <= s.rounds && r < MAX_ROUNDS; r++)
            if (r % (uint32_t)s.curve == 0 || r == s.rounds)
                printf(" %6u", r);
        printf("\n");
        for (size_t i = 0; i < n_queued; i++) {
            if (results[i].rc)
                continue;
            printf("%-15s", queued[i]->name);
            for (uint32_t r = 1; r <= s.rounds && r < MAX_ROUNDS; r++)
                if (r % (uint32_t)s.curve == 0 || r == s.rounds)
                    printf(" %6.3f", results[i].curve[r]);
            printf("\n");
        }
    }
    printf("\nvariants:\n");
    for (size_t i = 0; i < n_queued; i++)
        printf("  %-15s %s\n", queued[i]->name, queued[i]->what);
    printf("wall time %.1f s on %ld job(s)\n", wall, jobs);
    free(results);
    policy_free(&s.policy);
    return 0;
}
