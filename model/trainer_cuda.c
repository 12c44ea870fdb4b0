/* The CUDA trainer (trainer.h backend TRAINER_BACKEND_CUDA, trainer_cuda.h): one
 * gpt2_cuda replica per local GPU, all driven from the calling thread; with more than one
 * rank in all, an nccl_group averages the gradients between backward and optimizer step.
 *
 * A step: for each replica, draw a batch, enqueue forward and backward (the host goes on
 * to the next replica's batch while the device works); enqueue the all-reduce (its own
 * streams, ordered by events); enqueue clipping and AdamW on every replica; then wait and
 * read the loss and gradient norm. The norm, the clip and the non-finite check happen on
 * the device, so nothing waits between backward and update.
 *
 * The optimizer state file is adamw.h's format, with the moments of replica 0 (all
 * replicas hold the same moments), so a member may switch between CPU and CUDA. */
#include "model/trainer_cuda.h"

#include "model/trainer_impl.h"

#ifdef AULAC_HAVE_CUDA
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "model/adamw.h"
#include "model/gpt2_cuda.h"
#include "model/nccl_group.h"

struct cuda_trainer {
    int n_dev;
    struct gpt2_cuda *rep[TRAINER_MAX_GPUS];
    struct nccl_group *nccl; /* NULL with one rank in all */
    int cap_B, cap_T;        /* host buffers and replica activations */
    uint64_t step;           /* AdamW updates applied */
    uint8_t *tokens;         /* cap_B * (cap_T + 1) */
    int32_t *inputs, *targets;
};

int trainer_cuda_device_count(void) { return gpt2_cuda_device_count(); }

static int host_buffers(struct cuda_trainer *c, int B, int T)
{
    size_t bt = (size_t)B * (size_t)T;
    uint8_t *tok = malloc((size_t)B * ((size_t)T + 1));
    int32_t *in = malloc(bt * sizeof(int32_t)), *tg = malloc(bt * sizeof(int32_t));
    if (!tok || !in || !tg) {
        free(tok);
        free(in);
        free(tg);
        return MODEL_ERR_NOMEM;
    }
    free(c->tokens);
    free(c->inputs);
    free(c->targets);
    c->tokens = tok, c->inputs = in, c->targets = tg;
    c->cap_B = B, c->cap_T = T;
    return 0;
}

static void cuda_destroy(struct trainer *t)
{
    struct cuda_trainer *c = t->impl;
    if (!c)
        return;
    nccl_group_destroy(c->nccl);
    for (int i = 0; i < c->n_dev; i++)
        gpt2_cuda_destroy(c->rep[i]);
    free(c->tokens);
    free(c->inputs);
    free(c->targets);
    free(c);
    t->impl = NULL;
}

static int cuda_set_params(struct trainer *t, const float *flat)
{
    struct cuda_trainer *c = t->impl;
    for (int i = 0; i < c->n_dev; i++) {
        int rc = gpt2_cuda_set_params(c->rep[i], flat);
        if (rc)
            return rc;
    }
    return 0;
}

static int cuda_get_params(struct trainer *t, float *flat)
{
    struct cuda_trainer *c = t->impl;
    return gpt2_cuda_get_params(c->rep[0], flat);
}

static int gpus_of(const struct trainer_opts *o) { return o->gpus > 0 ? o->gpus : 1; }

static int cuda_set_opts(struct trainer *t, const struct trainer_opts *o)
{
    struct cuda_trainer *c = t->impl;
    if (gpus_of(o) != c->n_dev)
        return MODEL_ERR_ARG; /* the device set is fixed at creation */
    if (o->batch <= c->cap_B && o->seq_len <= c->cap_T)
        return 0;
    int B = o->batch > c->cap_B ? o->batch : c->cap_B;
    int T = o->seq_len > c->cap_T ? o->seq_len : c->cap_T;
    for (int i = 0; i < c->n_dev; i++) {
        int rc = gpt2_cuda_reserve(c->rep[i], B, T);
        if (rc)
            return rc; /* replicas already grown only have spare room */
    }
    return host_buffers(c, B, T);
}

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

/* One optimizer step over n_dev batches; *loss and *norm as gpt2_cuda_step_result. */
static int train_one_step(struct trainer *t, struct cuda_trainer *c, trainer_batch_fn next_batch,
                          void *batch_ctx, const struct adamw_hparams *h, float *loss,
                          double *norm)
{
    const int B = t->opts.batch, T = t->opts.seq_len;
    int rc;
    for (int i = 0; i < c->n_dev; i++) {
        rc = next_batch(batch_ctx, c->tokens, B, T);
        if (rc)
            return rc < 0 ? rc : MODEL_ERR_BATCH;
        split_batch(c->tokens, c->inputs, c->targets, B, T);
        if ((rc = gpt2_cuda_forward(c->rep[i], c->inputs, c->targets, B, T)) != 0 ||
            (rc = gpt2_cuda_backward(c->rep[i])) != 0)
            return rc;
    }
    if (c->nccl) {
        float *bufs[TRAINER_MAX_GPUS];
        void *streams[TRAINER_MAX_GPUS];
        size_t count = 0;
        for (int i = 0; i < c->n_dev; i++) {
            bufs[i] = gpt2_cuda_grad_buffer(c->rep[i], &count);
            streams[i] = gpt2_cuda_stream(c->rep[i]);
        }
        if ((rc = nccl_group_allreduce_avg(c->nccl, bufs, count, streams)) != 0)
            return rc;
    }
    for (int i = 0; i < c->n_dev; i++)
        if ((rc = gpt2_cuda_optimizer_step(c->rep[i], h, c->step + 1, t->opts.grad_clip)) != 0)
            return rc;
    if (c->nccl && (rc = nccl_group_wait(c->nccl)) != 0)
        return rc;
    for (int i = c->n_dev - 1; i >= 0; i--) /* replica 0 last: its values are reported */
        if ((rc = gpt2_cuda_step_result(c->rep[i], loss, norm)) != 0)
            return rc;
    return 0;
}

static int cuda_train_steps(struct trainer *t, int steps, trainer_batch_fn next_batch,
                            void *batch_ctx, trainer_progress_fn progress, void *pctx,
                            struct trainer_stats *out)
{
    struct cuda_trainer *c = t->impl;
    const uint64_t step_tokens = (uint64_t)c->n_dev * (uint64_t)t->opts.batch *
                                 (uint64_t)t->opts.seq_len;
    const struct adamw_hparams h = {.lr = t->opts.lr, .beta1 = t->opts.beta1,
                                    .beta2 = t->opts.beta2, .eps = t->opts.eps,
                                    .weight_decay = t->opts.weight_decay};
    double t0 = time_mono_s(), loss_sum = 0.0;
    int rc = 0;
    for (int s = 0; s < steps; s++) {
        float loss;
        double norm;
        rc = train_one_step(t, c, next_batch, batch_ctx, &h, &loss, &norm);
        if (rc)
            break;
        if (!isfinite(loss) || !isfinite(norm)) {
            rc = MODEL_ERR_NONFINITE; /* the device skipped the update */
            break;
        }
        c->step++;
        rc = trainer_report_step(out, &loss_sum, s, steps, loss, norm, step_tokens, t0,
                                 progress, pctx);
        if (rc != 0)
            break;
    }
    out->seconds = time_mono_s() - t0;
    return rc;
}

static int cuda_window_loss(void *ctx, int rows, int T, float *loss)
{
    struct cuda_trainer *c = ctx;
    int rc = gpt2_cuda_forward(c->rep[0], c->inputs, c->targets, rows, T);
    return rc ? rc : gpt2_cuda_loss(c->rep[0], loss);
}

/* On replica 0, window chunks of B rows as the CPU trainer does. */
static int cuda_evaluate(struct trainer *t, const uint8_t *tokens, size_t n, int max_windows,
                         float *mean_loss)
{
    struct cuda_trainer *c = t->impl;
    return trainer_eval_windows(tokens, n, t->opts.batch, t->opts.seq_len, max_windows,
                                c->inputs, c->targets, cuda_window_loss, c, mean_loss);
}

static uint64_t cuda_optimizer_step(const struct trainer *t)
{
    const struct cuda_trainer *c = t->impl;
    return c->step;
}

static void cuda_reset_optimizer(struct trainer *t)
{
    struct cuda_trainer *c = t->impl;
    for (int i = 0; i < c->n_dev; i++)
        if (gpt2_cuda_zero_moments(c->rep[i]) != 0)
            log_error("trainer: cannot zero the AdamW moments on GPU %d", i);
    c->step = 0;
}

static int cuda_save_state(struct trainer *t, const char *path)
{
    struct cuda_trainer *c = t->impl;
    struct adamw_state s;
    int rc = adamw_init(&s, t->n_params);
    if (rc)
        return rc;
    rc = gpt2_cuda_get_moments(c->rep[0], s.m, s.v);
    s.step = c->step;
    if (!rc)
        rc = adamw_save(path, &s);
    adamw_free(&s);
    return rc;
}

static int cuda_load_state(struct trainer *t, const char *path)
{
    struct cuda_trainer *c = t->impl;
    struct adamw_state s;
    int rc = adamw_init(&s, t->n_params);
    if (rc)
        return rc;
    rc = adamw_load(path, &s); /* validates everything before we touch the devices */
    for (int i = 0; i < c->n_dev && !rc; i++)
        rc = gpt2_cuda_set_moments(c->rep[i], s.m, s.v);
    if (!rc)
        c->step = s.step;
    adamw_free(&s);
    return rc;
}

int trainer_cuda_sync_from_rank0(struct trainer *t)
{
    if (!t || t->opts.backend != TRAINER_BACKEND_CUDA || !t->impl)
        return MODEL_ERR_ARG;
    struct cuda_trainer *c = t->impl;
    if (!c->nccl)
        return MODEL_ERR_ARG;
    const size_t n = t->n_params, count = 3 * n + 2; /* params, m, v, step (as 2 floats) */
    float *host = malloc(count * sizeof(float));
    if (!host)
        return MODEL_ERR_NOMEM;
    int rc = gpt2_cuda_get_params(c->rep[0], host); /* what rank 0 sends; others' is overwritten */
    if (!rc)
        rc = gpt2_cuda_get_moments(c->rep[0], host + n, host + 2 * n);
    memcpy(host + 3 * n, &c->step, sizeof c->step);
    if (!rc)
        rc = nccl_group_broadcast_host(c->nccl, host, count);
    for (int i = 0; i < c->n_dev && !rc; i++) {
        rc = gpt2_cuda_set_params(c->rep[i], host);
        if (!rc)
            rc = gpt2_cuda_set_moments(c->rep[i], host + n, host + 2 * n);
    }
    if (!rc)
        memcpy(&c->step, host + 3 * n, sizeof c->step);
    free(host);
    return rc;
}

static const struct trainer_ops cuda_ops = {
    .destroy = cuda_destroy,
    .set_params = cuda_set_params,
    .get_params = cuda_get_params,
    .set_opts = cuda_set_opts,
    .train_steps = cuda_train_steps,
    .evaluate = cuda_evaluate,
    .optimizer_step = cuda_optimizer_step,
    .reset_optimizer = cuda_reset_optimizer,
    .save_state = cuda_save_state,
    .load_state = cuda_load_state,
};

int trainer_cuda_init(struct trainer *t, const struct trainer_nccl_boot *boot)
{
    const int want = gpus_of(&t->opts);
    if (want > TRAINER_MAX_GPUS)
        return MODEL_ERR_ARG;
    if (boot && (boot->nranks < want || boot->first_rank < 0 ||
                 boot->first_rank > boot->nranks - want))
        return MODEL_ERR_ARG;
    const int have = gpt2_cuda_device_count();
    if (have < want) {
        log_error("trainer: %d GPU(s) requested, %d usable CUDA device(s) found", want, have);
        return MODEL_ERR_NO_DEVICE;
    }
    struct cuda_trainer *c = calloc(1, sizeof *c);
    if (!c)
        return MODEL_ERR_NOMEM;
    t->impl = c;
    t->ops = &cuda_ops;
    const int B = t->opts.batch, T = t->opts.seq_len;
    int rc = host_buffers(c, B, T);
    for (int i = 0; i < want && !rc; i++) {
        rc = gpt2_cuda_create(&t->cfg, i, B, T, &c->rep[i]);
        if (!rc)
            c->n_dev = i + 1;
    }
    if (!rc && (want > 1 || boot)) {
        int devices[TRAINER_MAX_GPUS];
        for (int i = 0; i < want; i++)
            devices[i] = i;
        rc = nccl_group_create(devices, want, boot, &c->nccl);
    }
    if (rc) {
        cuda_destroy(t);
        return rc;
    }
    log_info("trainer: CUDA, %d GPU(s) here%s, %.1f MiB of device memory each", want,
             boot ? " (multi-node group)" : "",
             (double)gpt2_cuda_memory_bytes(c->rep[0]) / (1 << 20));
    return 0;
}

#else /* no CUDA in this build */

int trainer_cuda_device_count(void) { return 0; }

int trainer_cuda_init(struct trainer *t, const struct trainer_nccl_boot *boot)
{
    return MODEL_ERR_NO_CUDA;
}

int trainer_cuda_sync_from_rank0(struct trainer *t) { return MODEL_ERR_NO_CUDA; }

#endif
