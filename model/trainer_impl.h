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

/* Backends: fill t->ops and t->impl; t->cfg, t->opts, t->n_params are set. */
int trainer_cpu_init(struct trainer *t);
/* boot: NULL, or this process's place in a multi-node group (trainer_cuda.h).
 * MODEL_ERR_NO_CUDA in builds without CUDA. */
struct trainer_nccl_boot;
int trainer_cuda_init(struct trainer *t, const struct trainer_nccl_boot *boot);

#endif
