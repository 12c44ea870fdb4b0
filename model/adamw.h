#ifndef AULAC_MODEL_ADAMW_H
#define AULAC_MODEL_ADAMW_H
/* AdamW (Loshchilov & Hutter) with bias correction, exactly as torch.optim.AdamW:
 *
 *   t += 1
 *   m = beta1 m + (1 - beta1) g
 *   v = beta2 v + (1 - beta2) g^2
 *   p = p (1 - lr wd)                                  (decayed parameters only)
 *   p = p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * Weight decay rule: decoupled decay applies to 2-D tensors (token and position
 * embeddings and every linear weight) and never to biases or LayerNorm weights and
 * biases; adamw_groups_gpt2() builds those groups from the tensor table.
 *
 * Global-norm clipping as torch.nn.utils.clip_grad_norm_: when max_norm > 0 and the
 * L2 norm of all gradients exceeds it, every gradient is scaled by
 * max_norm / (norm + 1e-6). */
#include <stddef.h>
#include <stdint.h>

#include "model/errors.h"
#include "model/gpt2.h"

struct adamw_hparams {
    float lr, beta1, beta2, eps, weight_decay;
};

/* A contiguous run of parameters and whether weight decay applies to it. */
struct adamw_group {
    size_t offset, count;
    int decay;
};

struct adamw_state {
    size_t n;
    uint64_t step; /* updates applied so far */
    float *m, *v;  /* first and second moments, n floats each */
};

/* Zeroed moments for n parameters. MODEL_ERR_ARG (n == 0), MODEL_ERR_NOMEM. */
int adamw_init(struct adamw_state *s, size_t n);
void adamw_free(struct adamw_state *s);
/* Moments to zero, step to 0. */
void adamw_reset(struct adamw_state *s);

/* Groups for a GPT-2 flat vector: runs of matrices (decay) and of 1-D tensors
 * (no decay), merged when adjacent. Caller frees *out. MODEL_ERR_CONFIG/NOMEM. */
int adamw_groups_gpt2(const struct gpt2_config *cfg, struct adamw_group **out, int *n_groups);

/* L2 norm of g[n], and its square, accumulated in double. */
double grad_global_norm(const float *g, size_t n);
double grad_sum_squares(const float *g, size_t n);

/* Clips g in place to global norm max_norm (no-op when max_norm <= 0) and returns the
 * norm before clipping (NaN/Inf when g holds non-finite values; then g is untouched). */
double grad_clip_global_norm(float *g, size_t n, float max_norm);

/* One AdamW update of params[s->n] with grads; the groups must cover [0, n) exactly
 * once (n_groups == 0 means one group with decay on everything). MODEL_ERR_ARG. */
int adamw_step(struct adamw_state *s, float *params, const float *grads,
               const struct adamw_hparams *h, const struct adamw_group *groups, int n_groups);

/* The same update in parts, for callers that spread it over threads: begin once per
 * step (increments the step, computes the bias corrections), then apply disjoint
 * ranges [begin, end) of the parameters in any order; together they equal adamw_step.
 * adamw_groups_check validates groups as adamw_step does (MODEL_ERR_ARG). */
struct adamw_coefs {
    float beta1, beta2, eps, step_size, inv_sqrt_bc2, decay_mul;
};
int adamw_groups_check(const struct adamw_state *s, const struct adamw_group *groups,
                       int n_groups);
void adamw_begin_step(struct adamw_state *s, const struct adamw_hparams *h,
                      struct adamw_coefs *c);
void adamw_apply_range(struct adamw_state *s, float *params, const float *grads,
                       const struct adamw_coefs *c, const struct adamw_group *groups,
                       int n_groups, size_t begin, size_t end);

/* The state as a safetensors file (written atomically: tmp, fsync, rename): tensors
 * "adamw.m" and "adamw.v" [n] F32, metadata format=aulac-adamw-v1 and step.
 * MODEL_ERR_IO (logged), or a safetensors code. */
int adamw_save(const char *path, const struct adamw_state *s);
/* Reads a file written by adamw_save into s, which must already be initialized for
 * the same n: MODEL_ERR_STATE on a different count, MODEL_ERR_FORMAT on a file that
 * is not an AdamW state, safetensors codes for a malformed file. s is unchanged on
 * error. */
int adamw_load(const char *path, struct adamw_state *s);

#endif
