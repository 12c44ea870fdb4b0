/* The CPU trainer: gpt2.c (fp32, OpenBLAS) + adamw.c. */
#include "model/trainer_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "model/adamw.h"
#include "model/parallel.h"

#define MAX_THREADS 1024

/* The optimizer step on the model's threads: global norm, clipping, AdamW. */
struct opt_job {
    struct cpu_trainer *c;
    float *params, *grads;
    float scale;
    struct adamw_coefs coefs;
    double partial[MAX_THREADS];
};

struct cpu_trainer {
    struct gpt2 *model;
    int cap_B, cap_T; /* the model's activation capacity */
    struct adamw_state opt;
    struct adamw_group *groups;
    int n_groups;
    uint8_t *tokens;  /* cap_B * (cap_T + 1) */
    int32_t *inputs, *targets;
    struct opt_job *job; /* the optimizer step's shared state (large: one per trainer) */
};

/* Model and batch buffers for B x T; params copied from the old model if any. */
static int cpu_alloc(struct trainer *t, struct cpu_trainer *c, int B, int T)
{
    struct gpt2 *m;
    int rc = gpt2_create(&t->cfg, B, T, &m);
    if (rc)
        return rc;
    size_t bt = (size_t)B * (size_t)T;
    uint8_t *tok = malloc((size_t)B * ((size_t)T + 1));
    int32_t *in = malloc(bt * sizeof(int32_t)), *tg = malloc(bt * sizeof(int32_t));
    if (!tok || !in || !tg) {
        gpt2_destroy(m);
        free(tok);
        free(in);
        free(tg);
        return MODEL_ERR_NOMEM;
    }
    if ((rc = gpt2_set_threads(m, t->opts.threads)) != 0) {
        gpt2_destroy(m);
        free(tok);
        free(in);
        free(tg);
        return rc;
    }
    if (c->model) {
        memcpy(gpt2_params(m), gpt2_params(c->model), t->n_params * sizeof(float));
        gpt2_destroy(c->model);
    }
    free(c->tokens);
    free(c->inputs);
    free(c->targets);
    c->model = m, c->cap_B = B, c->cap_T = T;
    c->tokens = tok, c->inputs = in, c->targets = tg;
    return 0;
}

static void cpu_destroy(struct trainer *t)
{
    struct cpu_trainer *c = t->impl;
    if (!c)
        return;
    gpt2_destroy(c->model);
    adamw_free(&c->opt);
    free(c->groups);
    free(c->tokens);
    free(c->inputs);
    free(c->targets);
    free(c->job);
    free(c);
    t->impl = NULL;
}

static int cpu_set_params(struct trainer *t, const float *flat)
{
    struct cpu_trainer *c = t->impl;
    memcpy(gpt2_params(c->model), flat, t->n_params * sizeof(float));
    return 0;
}

static int cpu_get_params(struct trainer *t, float *flat)
{
    struct cpu_trainer *c = t->impl;
    memcpy(flat, gpt2_params(c->model), t->n_params * sizeof(float));
    return 0;
}

static int cpu_set_opts(struct trainer *t, const struct trainer_opts *o)
{
    struct cpu_trainer *c = t->impl;
    if (o->batch > c->cap_B || o->seq_len > c->cap_T) {
        int B = o->batch > c->cap_B ? o->batch : c->cap_B;
        int T = o->seq_len > c->cap_T ? o->seq_len : c->cap_T;
        int rc = cpu_alloc(t, c, B, T);
        if (rc)
            return rc;
    }
    return gpt2_set_threads(c->model, o->threads);
}

static void sumsq_range(void *ctx, size_t b, size_t e, int chunk)
{
    struct opt_job *j = ctx;
    j->partial[chunk] = grad_sum_squares(j->grads + b, e - b);
}

/* Clipping and the update in one pass over memory: each block of gradients is scaled
 * while it is still in cache for the AdamW update that reads it next. */
#define OPT_BLOCK 4096

static void adamw_range(void *ctx, size_t b, size_t e, int tid)
{
    struct opt_job *j = ctx;
    for (size_t lo = b; lo < e; lo += OPT_BLOCK) {
        size_t hi = e - lo < OPT_BLOCK ? e : lo + OPT_BLOCK;
        if (j->scale != 1.0f)
            for (size_t i = lo; i < hi; i++)
                j->grads[i] *= j->scale;
        adamw_apply_range(&j->c->opt, j->params, j->grads, &j->coefs, j->c->groups,
                          j->c->n_groups, lo, hi);
    }
}

/* As grad_clip_global_norm + adamw_step; returns the norm before clipping, and
 * applies nothing when it is not finite. The parts per chunk are summed in chunk
 * order, so the result depends only on the thread count. */
static double optimizer_step(struct trainer *t, struct cpu_trainer *c,
                             const struct adamw_hparams *h)
{
    struct parallel *pool = gpt2_parallel(c->model);
    static const size_t grain = 1 << 15;
    struct opt_job *j = c->job;
    memset(j->partial, 0, sizeof j->partial);
    j->c = c;
    j->params = gpt2_params(c->model);
    j->grads = gpt2_grads(c->model);
    parallel_for(pool, t->n_params, grain, sumsq_range, j);
    double ss = 0.0;
    for (int i = 0; i < parallel_threads(pool) && i < MAX_THREADS; i++)
        ss += j->partial[i];
    double norm = sqrt(ss);
    if (isfinite(norm)) {
        double coef = (double)t->opts.grad_clip / (norm + 1e-6);
        j->scale = t->opts.grad_clip > 0.0f && coef < 1.0 ? (float)coef : 1.0f;
        adamw_begin_step(&c->opt, h, &j->coefs);
        parallel_for(pool, t->n_params, grain, adamw_range, j);
    }
    return norm;
}

/* Splits B rows of T+1 bytes into inputs and targets. */
static void split_batch(const uint8_t *tok, int32_t *in, int32_t *tg, int B, int T)
{
    for (int b = 0; b < B; b++) {
        const uint8_t *row = tok + (size_t)b * ((size_t)T + 1);
        for (int i = 0; i < T; i++) {
            in[(size_t)b * T + i] = row[i];
            tg[(size_t)b * T + i] = row[i + 1];
        }
    }
}

static int cpu_train_steps(struct trainer *t, int steps, trainer_batch_fn next_batch,
                           void *batch_ctx, trainer_progress_fn progress, void *pctx,
                           struct trainer_stats *out)
{
    struct cpu_trainer *c = t->impl;
    const int B = t->opts.batch, T = t->opts.seq_len;
    const struct adamw_hparams h = {.lr = t->opts.lr, .beta1 = t->opts.beta1,
                                    .beta2 = t->opts.beta2, .eps = t->opts.eps,
                                    .weight_decay = t->opts.weight_decay};
    double t0 = time_mono_s(), loss_sum = 0.0;
    int rc = 0;
    for (int s = 0; s < steps; s++) {
        rc = next_batch(batch_ctx, c->tokens, B, T);
        if (rc) {
            rc = rc < 0 ? rc : MODEL_ERR_BATCH;
            break;
        }
        split_batch(c->tokens, c->inputs, c->targets, B, T);
        float loss;
        rc = gpt2_forward(c->model, c->inputs, c->targets, B, T, &loss);
        if (rc)
            break;
        if (!isfinite(loss)) {
            rc = MODEL_ERR_NONFINITE;
            break;
        }
        rc = gpt2_backward(c->model);
        if (rc)
            break;
        double norm = optimizer_step(t, c, &h);
        if (!isfinite(norm)) {
            rc = MODEL_ERR_NONFINITE;
            break;
        }
        rc = trainer_report_step(out, &loss_sum, s, steps, loss, norm,
                                 (uint64_t)B * (uint64_t)T, t0, progress, pctx);
        if (rc != 0)
            break;
    }
    out->seconds = time_mono_s() - t0;
    return rc;
}

static int cpu_window_loss(void *ctx, int rows, int T, float *loss)
{
    struct cpu_trainer *c = ctx;
    return gpt2_forward(c->model, c->inputs, c->targets, rows, T, loss);
}

static int cpu_evaluate(struct trainer *t, const uint8_t *tokens, size_t n, int max_windows,
                        float *mean_loss)
{
    struct cpu_trainer *c = t->impl;
    return trainer_eval_windows(tokens, n, t->opts.batch, t->opts.seq_len, max_windows,
                                c->inputs, c->targets, cpu_window_loss, c, mean_loss);
}

static uint64_t cpu_optimizer_step(const struct trainer *t)
{
    const struct cpu_trainer *c = t->impl;
    return c->opt.step;
}

static void cpu_reset_optimizer(struct trainer *t)
{
    struct cpu_trainer *c = t->impl;
    adamw_reset(&c->opt);
}

static int cpu_save_state(struct trainer *t, const char *path)
{
    struct cpu_trainer *c = t->impl;
    return adamw_save(path, &c->opt);
}

static int cpu_load_state(struct trainer *t, const char *path)
{
    struct cpu_trainer *c = t->impl;
    return adamw_load(path, &c->opt);
}

static const struct trainer_ops cpu_ops = {
    .destroy = cpu_destroy,
    .set_params = cpu_set_params,
    .get_params = cpu_get_params,
    .set_opts = cpu_set_opts,
    .train_steps = cpu_train_steps,
    .evaluate = cpu_evaluate,
    .optimizer_step = cpu_optimizer_step,
    .reset_optimizer = cpu_reset_optimizer,
    .save_state = cpu_save_state,
    .load_state = cpu_load_state,
};

int trainer_cpu_init(struct trainer *t)
{
    struct cpu_trainer *c = calloc(1, sizeof *c);
    if (!c)
        return MODEL_ERR_NOMEM;
    t->impl = c;
    t->ops = &cpu_ops;
    c->job = calloc(1, sizeof *c->job);
    int rc = c->job ? cpu_alloc(t, c, t->opts.batch, t->opts.seq_len) : MODEL_ERR_NOMEM;
    if (!rc)
        rc = adamw_init(&c->opt, t->n_params);
    if (!rc)
        rc = adamw_groups_gpt2(&t->cfg, &c->groups, &c->n_groups);
    if (rc) {
        cpu_destroy(t);
        return rc;
    }
    return 0;
}
