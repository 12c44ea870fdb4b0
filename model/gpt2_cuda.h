#ifndef AULAC_MODEL_GPT2_CUDA_H
#define AULAC_MODEL_GPT2_CUDA_H
/* One GPT-2 replica on one CUDA device: the model of gpt2.h (same architecture, same
 * flat parameter order), trained in bf16 with fp32 master weights. Internal to model/:
 * the worker drives it through model/trainer.h (TRAINER_BACKEND_CUDA); the tests use it
 * directly to compare logits and gradients with the CPU model.
 *
 * Only in builds with CUDA (AULAC_HAVE_CUDA); without it this header declares nothing
 * that links.
 *
 * Numerics:
 *   - master weights, gradients, AdamW moments: fp32 (one flat vector each, gpt2.h order)
 *   - a bf16 copy of every parameter feeds the matmuls; it is refreshed by set_params
 *     and by every optimizer step
 *   - every matmul is bf16 x bf16 with fp32 accumulation and an fp32 result (cuBLASLt,
 *     falling back to cublasGemmEx); tensors whose only consumers are matmuls (LayerNorm
 *     outputs, attention probabilities, GELU outputs, the gradients flowing into a
 *     matmul) are stored in bf16, everything else (residual stream, LayerNorm statistics,
 *     pre-GELU activations, logits, losses) in fp32
 *   - reductions (LayerNorm, softmax, cross-entropy, bias and LayerNorm parameter
 *     gradients, embedding gradients, the gradient norm) have a fixed order: the same
 *     inputs give the same bits on the same device and library versions
 *
 * Work is enqueued on the replica's own stream and returns before the device finishes,
 * except where a function says it waits. Calls for one replica come from one thread at
 * a time; each call makes the replica's device current for the calling thread.
 *
 * Errors: MODEL_ERR_CUDA (the CUDA runtime, cuBLAS or a kernel failed; logged with
 * file:line and the library's words), MODEL_ERR_NO_DEVICE, MODEL_ERR_ARG,
 * MODEL_ERR_TOKEN, MODEL_ERR_NOMEM, MODEL_ERR_CONFIG. After MODEL_ERR_CUDA the replica
 * may only be destroyed. */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "model/adamw.h"
#include "model/errors.h"
#include "model/gpt2.h"

struct gpt2_cuda;

/* Usable CUDA devices: 0 when there is no driver, no device, or no CUDA in this build. */
int gpt2_cuda_device_count(void);

/* A replica on `device` with activations for up to max_B x max_T; parameters, gradients
 * and moments start at zero. MODEL_ERR_CONFIG, MODEL_ERR_ARG (sizes; max_B * max_T must
 * fit an int), MODEL_ERR_NO_DEVICE, MODEL_ERR_NOMEM (host or device memory), MODEL_ERR_CUDA. */
int gpt2_cuda_create(const struct gpt2_config *cfg, int device, int max_B, int max_T,
                     struct gpt2_cuda **out);
void gpt2_cuda_destroy(struct gpt2_cuda *m);

/* Grows the activation memory to hold max_B x max_T (never shrinks). Parameters and
 * moments are kept; on MODEL_ERR_NOMEM the old activations stay. Waits. */
int gpt2_cuda_reserve(struct gpt2_cuda *m, int max_B, int max_T);

int gpt2_cuda_device(const struct gpt2_cuda *m);
size_t gpt2_cuda_num_params(const struct gpt2_cuda *m);
/* The replica's stream (a cudaStream_t). */
void *gpt2_cuda_stream(struct gpt2_cuda *m);

/* Parameters in and out as the flat fp32 vector of gpt2.h (host memory, n_params floats).
 * Both wait. Setting parameters keeps the moments. */
int gpt2_cuda_set_params(struct gpt2_cuda *m, const float *flat);
int gpt2_cuda_get_params(struct gpt2_cuda *m, float *flat);

/* Enqueues the forward pass over inputs[B*T] (and the cross-entropy against
 * targets[B*T] when targets is not NULL). The ids are checked and copied before the
 * call returns, so the caller may reuse its arrays. MODEL_ERR_ARG (B, T out of the
 * reserved range), MODEL_ERR_TOKEN. */
int gpt2_cuda_forward(struct gpt2_cuda *m, const int32_t *inputs, const int32_t *targets,
                      int B, int T);
/* The mean loss of the last forward with targets. Waits. */
int gpt2_cuda_loss(struct gpt2_cuda *m, float *loss);
/* The logits [B, T, V] of the last forward (fp32, host memory of B*T*V floats). Waits. */
int gpt2_cuda_get_logits(struct gpt2_cuda *m, float *logits);

/* Enqueues the backward pass of the last forward, which must have had targets
 * (MODEL_ERR_ARG otherwise): the gradient buffer is overwritten with d(mean loss)/dparams,
 * and its extra last float with the mean loss, so that one all-reduce averages both. */
int gpt2_cuda_backward(struct gpt2_cuda *m);

/* The device gradient buffer: n_params gradients, then the loss; *count = n_params + 1.
 * Owned by m. Another stream may reduce it in place between backward and the optimizer
 * step when it is ordered after the backward and before the step (trainer_cuda.c). */
float *gpt2_cuda_grad_buffer(struct gpt2_cuda *m, size_t *count);
/* The gradients (n_params floats, without the loss) into host memory. Waits. */
int gpt2_cuda_get_grads(struct gpt2_cuda *m, float *flat);

/* Enqueues global-norm clipping and one AdamW update (adamw.h, exactly its arithmetic
 * and decay groups) as step number `step` (1-based). The gradient norm is computed on the
 * device; when it or the loss in the gradient buffer is not finite the update is skipped
 * on the device. grad_clip <= 0 disables clipping. */
int gpt2_cuda_optimizer_step(struct gpt2_cuda *m, const struct adamw_hparams *h,
                             uint64_t step, float grad_clip);
/* The loss in the gradient buffer and the gradient norm of the last optimizer step
 * (before clipping); the update was applied iff both are finite. Waits. */
int gpt2_cuda_step_result(struct gpt2_cuda *m, float *loss, double *grad_norm);

/* AdamW moments (n_params floats each, host memory). get and set wait. */
int gpt2_cuda_get_moments(struct gpt2_cuda *m, float *mom1, float *mom2);
int gpt2_cuda_set_moments(struct gpt2_cuda *m, const float *mom1, const float *mom2);
int gpt2_cuda_zero_moments(struct gpt2_cuda *m);

/* Test hook: 1 (the default) lets the linear layers use cuBLASLt with fused bias and
 * residual epilogues, 0 forces cublasGemmEx and separate kernels. Both paths compute
 * the same function. */
void gpt2_cuda_use_cublaslt(struct gpt2_cuda *m, int on);

/* Device memory the replica holds, in bytes. */
size_t gpt2_cuda_memory_bytes(const struct gpt2_cuda *m);

#ifdef __cplusplus
}
#endif

#endif
