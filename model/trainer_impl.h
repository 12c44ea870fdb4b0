#ifndef AULAC_MODEL_TRAINER_IMPL_H
#define AULAC_MODEL_TRAINER_IMPL_H
/* What a trainer backend provides to model/trainer.c. Internal to model/. */
#include "model/trainer.h"

struct trainer_ops {
    void (*destroy)(struct trainer *t);
    int (*set_params)(struct trainer *t, const float *flat);
    int (*get_params)(struct trainer *t, float *flat);
    /* opts are validated; t->opts still holds the old ones during the call */
    int (*set_opts)(struct trainer *t, const struct trainer_opts *opts);
    int (*train_steps)(struct trainer *t, int steps, trainer_batch_fn next_batch,
                       void *batch_ctx, trainer_progress_fn progress, void *pctx,
                       struct trainer_stats *out);
    int (*evaluate)(struct trainer *t, const uint8_t *tokens, size_t n, int max_windows,
                    float *mean_loss);
    uint64_t (*optimizer_step)(const struct trainer *t);
    void (*reset_optimizer)(struct trainer *t);
    int (*save_state)(struct trainer *t, const char *path);
    int (*load_state)(struct trainer *t, const char *path);
};

struct trainer {
    const struct trainer_ops *ops;
    struct gpt2_config cfg;
    struct trainer_opts opts;
    size_t n_params;
    void *impl; /* the backend's state */
};

/* Shared by the backends (trainer.c). */

/* Books step s (0-based) of `steps` into *out (loss_sum carries the running sum) and
 * calls progress when given; MODEL_ERR_CANCELLED when progress asks to stop, else 0. */
int trainer_report_step(struct trainer_stats *out, double *loss_sum, int s, int steps,
                        float loss, double grad_norm, uint64_t step_tokens, double t0,
                        trainer_progress_fn progress, void *pctx);

/* The loss of one batch of rows x T windows (inputs and targets filled). */
typedef int (*trainer_window_loss_fn)(void *ctx, int rows, int T, float *loss);

/* Mean loss over non-overlapping windows of tokens[n] (at most max_windows; T shrinks to
 * n - 1 for short input), B rows at a time packed into inputs/targets (B*T each). */
int trainer_eval_windows(const uint8_t *tokens, size_t n, int B, int T, int max_windows,
                         int32_t *inputs, int32_t *targets, trainer_window_loss_fn fn,
                         void *ctx, float *mean_loss);

/* Backends: fill t->ops and t->impl; t->cfg, t->opts, t->n_params are set. */
int trainer_cpu_init(struct trainer *t);
/* boot: NULL, or this process's place in a multi-node group (trainer_cuda.h).
 * MODEL_ERR_NO_CUDA in builds without CUDA. */
struct trainer_nccl_boot;
int trainer_cuda_init(struct trainer *t, const struct trainer_nccl_boot *boot);

#endif
