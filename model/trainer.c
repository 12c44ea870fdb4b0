/* Backend-independent half of model/trainer.h: option checks and dispatch. */
#include "model/trainer_impl.h"
#include "common/timeutil.h"
#include "model/trainer_cuda.h"

#include <math.h>
#include <stdlib.h>

void trainer_opts_default(struct trainer_opts *o)
{
    o->batch = 8;
    o->seq_len = 256;
    o->lr = 6e-4f;
    o->weight_decay = 0.1f;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->grad_clip = 1.0f;
    o->threads = 0;
    o->backend = TRAINER_BACKEND_CPU;
    o->gpus = 0;
}

static int opts_check(const struct gpt2_config *cfg, const struct trainer_opts *o)
{
    if (!o || o->batch < 1 || o->batch > (1 << 20) || o->seq_len < 1 ||
        o->seq_len > cfg->max_seq_len || o->threads < 0 || o->threads > 4096 || o->gpus < 0 ||
        o->gpus > TRAINER_MAX_GPUS)
        return MODEL_ERR_ARG;
    if (!isfinite(o->lr) || o->lr < 0 || !isfinite(o->weight_decay) || o->weight_decay < 0 ||
        !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) ||
        !isfinite(o->eps) || !(o->eps > 0) || !isfinite(o->grad_clip) || o->grad_clip < 0)
        return MODEL_ERR_ARG;
    return 0;
}

static int create(const struct gpt2_config *cfg, const struct trainer_opts *opts,
                  const struct trainer_nccl_boot *boot, struct trainer **out)
{
    *out = NULL;
    if (gpt2_config_check(cfg) != 0)
        return MODEL_ERR_CONFIG;
    if (cfg->vocab_size < 256)
        return MODEL_ERR_ARG; /* byte tokens */
    int rc = opts_check(cfg, opts);
    if (rc)
        return rc;
    if (opts->backend != TRAINER_BACKEND_CPU && opts->backend != TRAINER_BACKEND_CUDA)
        return MODEL_ERR_BACKEND;
    if (boot) {
        int local = opts->gpus > 0 ? opts->gpus : 1;
        if (opts->backend != TRAINER_BACKEND_CUDA || boot->nranks < local ||
            boot->first_rank < 0 || boot->first_rank > boot->nranks - local)
            return MODEL_ERR_ARG;
    }
    struct trainer *t = calloc(1, sizeof *t);
    if (!t)
        return MODEL_ERR_NOMEM;
    t->cfg = *cfg;
    t->opts = *opts;
    t->n_params = gpt2_num_params(cfg);
    rc = opts->backend == TRAINER_BACKEND_CUDA ? trainer_cuda_init(t, boot) : trainer_cpu_init(t);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int trainer_create(const struct gpt2_config *cfg, const struct trainer_opts *opts,
                   struct trainer **out)
{
    return create(cfg, opts, NULL, out);
}

int trainer_create_distributed(const struct gpt2_config *cfg, const struct trainer_opts *opts,
                               const struct trainer_nccl_boot *boot, struct trainer **out)
{
    if (!boot) {
        *out = NULL;
        return MODEL_ERR_ARG;
    }
    return create(cfg, opts, boot, out);
}

void trainer_destroy(struct trainer *t)
{
    if (!t)
        return;
    t->ops->destroy(t);
    free(t);
}

size_t trainer_num_params(const struct trainer *t) { return t->n_params; }
const struct gpt2_config *trainer_config(const struct trainer *t) { return &t->cfg; }

int trainer_set_params(struct trainer *t, const float *flat, size_t n)
{
    if (!t || !flat || n != t->n_params)
        return MODEL_ERR_ARG;
    return t->ops->set_params(t, flat);
}

int trainer_get_params(struct trainer *t, float *flat, size_t n)
{
    if (!t || !flat || n != t->n_params)
        return MODEL_ERR_ARG;
    return t->ops->get_params(t, flat);
}

int trainer_set_opts(struct trainer *t, const struct trainer_opts *opts)
{
    if (!t)
        return MODEL_ERR_ARG;
    int rc = opts_check(&t->cfg, opts);
    if (rc)
        return rc;
    if (opts->backend != t->opts.backend || opts->gpus != t->opts.gpus)
        return MODEL_ERR_ARG;
    rc = t->ops->set_opts(t, opts);
    if (rc == 0)
        t->opts = *opts;
    return rc;
}

void trainer_get_opts(const struct trainer *t, struct trainer_opts *out) { *out = t->opts; }

int trainer_train_steps(struct trainer *t, int steps, trainer_batch_fn next_batch,
                        void *batch_ctx, trainer_progress_fn progress, void *pctx,
                        struct trainer_stats *out)
{
    struct trainer_stats local;
    if (!out)
        out = &local;
    *out = (struct trainer_stats){0};
    if (!t || steps < 0 || !next_batch)
        return MODEL_ERR_ARG;
    return t->ops->train_steps(t, steps, next_batch, batch_ctx, progress, pctx, out);
}

int trainer_evaluate(struct trainer *t, const uint8_t *tokens, size_t n, int max_windows,
                     float *mean_loss)
{
    if (!t || !mean_loss || (n && !tokens))
        return MODEL_ERR_ARG;
    if (n < 2)
        return MODEL_ERR_SHORT;
    return t->ops->evaluate(t, tokens, n, max_windows, mean_loss);
}

uint64_t trainer_optimizer_step(const struct trainer *t) { return t->ops->optimizer_step(t); }
void trainer_reset_optimizer(struct trainer *t) { t->ops->reset_optimizer(t); }

int trainer_save_state(struct trainer *t, const char *path)
{
    if (!t || !path)
        return MODEL_ERR_ARG;
    return t->ops->save_state(t, path);
}

int trainer_load_state(struct trainer *t, const char *path)
{
    if (!t || !path)
        return MODEL_ERR_ARG;
    return t->ops->load_state(t, path);
}

int trainer_report_step(struct trainer_stats *out, double *loss_sum, int s, int steps,
                        float loss, double grad_norm, uint64_t step_tokens, double t0,
                        trainer_progress_fn progress, void *pctx)
{
    *loss_sum += loss;
    out->steps = s + 1;
    out->mean_loss = *loss_sum / (s + 1);
    out->last_loss = loss;
    out->last_grad_norm = grad_norm;
    out->tokens += step_tokens;
    out->seconds = time_mono_s() - t0;
    if (!progress)
        return 0;
    struct trainer_progress p = {.step = s + 1, .steps = steps, .loss = loss,
                                 .grad_norm = grad_norm, .tokens = out->tokens,
                                 .seconds = out->seconds};
    return progress(pctx, &p) != 0 ? MODEL_ERR_CANCELLED : 0;
}

int trainer_eval_windows(const uint8_t *tokens, size_t n, int B, int T, int max_windows,
                         int32_t *inputs, int32_t *targets, trainer_window_loss_fn fn,
                         void *ctx, float *mean_loss)
{
    if (n - 1 < (size_t)T)
        T = (int)(n - 1);
    size_t windows = (n - 1) / (size_t)T;
    if (max_windows > 0 && windows > (size_t)max_windows)
        windows = (size_t)max_windows;
    double total = 0.0;
    for (size_t w = 0; w < windows; w += (size_t)B) {
        int rows = windows - w < (size_t)B ? (int)(windows - w) : B;
        for (int b = 0; b < rows; b++) {
            const uint8_t *src = tokens + (w + (size_t)b) * (size_t)T;
            for (int i = 0; i < T; i++) {
                inputs[(size_t)b * T + i] = src[i];
                targets[(size_t)b * T + i] = src[i + 1];
            }
        }
        float loss;
        int rc = fn(ctx, rows, T, &loss);
        if (rc)
            return rc;
        total += (double)loss * rows;
    }
    *mean_loss = (float)(total / (double)windows);
    return 0;
}
