#ifndef AULAC_MODEL_TRAINER_H
#define AULAC_MODEL_TRAINER_H
/* The interface through which the worker drives a trainer: a GPT-2 replica, its
 * AdamW inner optimizer, and the loop of H local steps per round.
 *
 *   trainer_create(cfg, opts)            once per experiment
 *   trainer_set_params(base model)       each round (the AdamW moments are kept:
 *   trainer_set_opts(round's hparams)     the inner optimizer state lives across rounds)
 *   trainer_train_steps(H, batches)      local training
 *   trainer_get_params(local model)      for the pseudo-gradient
 *   trainer_evaluate(validation bytes)   validation loss
 *   trainer_save_state / load_state      the worker persists the optimizer state
 *
 * Data is bytes: a batch is B rows of T+1 byte tokens; row b feeds inputs
 * tokens[b*(T+1) + 0..T-1] and targets tokens[b*(T+1) + 1..T]. The model's
 * vocab_size must therefore be at least 256.
 *
 * Backends: TRAINER_BACKEND_CPU (fp32, OpenBLAS) is always present.
 * TRAINER_BACKEND_CUDA (bf16 matmuls, fp32 master weights, NCCL across local GPUs;
 * model/trainer_cuda.h, model/README.md) answers MODEL_ERR_NO_CUDA in builds without
 * CUDA and MODEL_ERR_NO_DEVICE when fewer than opts.gpus devices are usable; its
 * CUDA/cuBLAS/NCCL failures are MODEL_ERR_CUDA, after which the trainer may only be
 * destroyed. Both backends read and write the same optimizer state files.
 *
 * Errors: model/errors.h (model_strerror). Codes returned by the batch callback
 * (e.g. worker/data.h's) are passed through unchanged. A trainer is not thread-safe
 * (one caller at a time). It runs its own threads and sets OpenBLAS to one thread
 * for the whole process (model/gpt2.h, gpt2_set_threads). */
#include <stddef.h>
#include <stdint.h>

#include "model/errors.h"
#include "model/gpt2.h"

enum trainer_backend {
    TRAINER_BACKEND_CPU = 0,
    TRAINER_BACKEND_CUDA = 1,
};

struct trainer_opts {
    int batch, seq_len;    /* B >= 1; 1 <= T <= cfg.max_seq_len */
    float lr;              /* >= 0 */
    float weight_decay;    /* >= 0; matrices only (model/adamw.h) */
    float beta1, beta2;    /* in [0, 1) */
    float eps;             /* > 0 */
    float grad_clip;       /* global-norm clip; 0 disables */
    int threads;           /* CPU threads (the model's own pool; BLAS calls inside run
                              single-threaded); 0: one per online CPU */
    enum trainer_backend backend;
    int gpus;              /* CUDA: data-parallel over local devices 0..gpus-1, each
                              drawing its own batch per step (model/trainer_cuda.h);
                              0 means 1; at most 64; fixed after creation */
};

/* B 8, T 256, lr 6e-4, weight_decay 0.1, betas 0.9/0.95, eps 1e-8, clip 1.0,
 * threads 0, CPU, gpus 0. */
void trainer_opts_default(struct trainer_opts *o);

struct trainer_stats {
    int steps;             /* steps completed */
    double mean_loss;      /* mean of the steps' training losses */
    double last_loss;
    double last_grad_norm; /* before clipping */
    uint64_t tokens;       /* steps * B * T */
    double seconds;        /* wall time inside trainer_train_steps */
};

/* Fills tokens[B*(T+1)]; returns 0, or a negative error code that
 * trainer_train_steps returns unchanged (a positive value becomes MODEL_ERR_BATCH). */
typedef int (*trainer_batch_fn)(void *ctx, uint8_t *tokens, int B, int T);

struct trainer_progress {
    int step, steps;       /* 1-based step just finished, of steps */
    float loss;
    double grad_norm;
    uint64_t tokens;       /* so far in this call */
    double seconds;        /* so far in this call */
};

/* Called after every step; a non-zero return stops training (MODEL_ERR_CANCELLED). */
typedef int (*trainer_progress_fn)(void *ctx, const struct trainer_progress *p);

struct trainer;

/* Validates cfg and opts and allocates everything for opts->batch x opts->seq_len.
 * Parameters start at zero: call trainer_set_params. MODEL_ERR_CONFIG, MODEL_ERR_ARG
 * (bad option or vocab_size < 256), MODEL_ERR_NOMEM, MODEL_ERR_NO_CUDA,
 * MODEL_ERR_BACKEND, MODEL_ERR_NO_DEVICE, MODEL_ERR_CUDA. *out is NULL on error. */
int trainer_create(const struct gpt2_config *cfg, const struct trainer_opts *opts,
                   struct trainer **out);
void trainer_destroy(struct trainer *t);

size_t trainer_num_params(const struct trainer *t);
const struct gpt2_config *trainer_config(const struct trainer *t); /* owned by t */

/* Copies the flat parameter vector (gpt2.h order) in or out; n must equal
 * trainer_num_params (MODEL_ERR_ARG). Setting parameters keeps the AdamW state. */
int trainer_set_params(struct trainer *t, const float *flat, size_t n);
int trainer_get_params(struct trainer *t, float *flat, size_t n);

/* New hyperparameters, e.g. for a new round. B and T may change (buffers grow as
 * needed); the backend and gpus may not (MODEL_ERR_ARG). MODEL_ERR_NOMEM leaves t as
 * it was. */
int trainer_set_opts(struct trainer *t, const struct trainer_opts *opts);
void trainer_get_opts(const struct trainer *t, struct trainer_opts *out);

/* Runs `steps` optimizer steps, each on one batch from next_batch (one per GPU with
 * CUDA and gpus > 1). progress may be NULL; out (may be NULL) describes the steps
 * completed, also on error.
 * MODEL_ERR_NONFINITE: a loss or gradient was NaN/Inf; that step's update was not
 * applied and training stopped. MODEL_ERR_CANCELLED, MODEL_ERR_BATCH or the batch
 * callback's own code. */
int trainer_train_steps(struct trainer *t, int steps, trainer_batch_fn next_batch,
                        void *batch_ctx, trainer_progress_fn progress, void *pctx,
                        struct trainer_stats *out);

/* Mean cross-entropy (nats per byte) over non-overlapping windows of tokens[n]:
 * window k predicts tokens[kT+1 .. kT+T] from tokens[kT .. kT+T-1], with T the
 * current seq_len (or n-1 when n-1 < seq_len), for the first max_windows windows
 * (max_windows <= 0: all). Deterministic; the parameters and optimizer are not
 * touched. MODEL_ERR_SHORT (n < 2). */
int trainer_evaluate(struct trainer *t, const uint8_t *tokens, size_t n, int max_windows,
                     float *mean_loss);

/* AdamW steps applied since creation or the last reset/load. */
uint64_t trainer_optimizer_step(const struct trainer *t);
/* Zero moments and step (e.g. for a new experiment on the same replica). */
void trainer_reset_optimizer(struct trainer *t);

/* The AdamW moments and step as a safetensors file (model/adamw.h format), written
 * atomically with mode 0600. Loading requires the same parameter count
 * (MODEL_ERR_STATE) and leaves the trainer unchanged on any error. */
int trainer_save_state(struct trainer *t, const char *path);
int trainer_load_state(struct trainer *t, const char *path);

#endif
