#ifndef AULAC_MODEL_GPT2_H
#define AULAC_MODEL_GPT2_H
/* The built-in GPT-2: fp32 forward and backward on the CPU with OpenBLAS.
 *
 * Architecture, exactly as OpenAI GPT-2 / Hugging Face GPT2LMHeadModel:
 * token + learned position embeddings; n_layer blocks of
 *     x = x + attn(ln_1(x)),  x = x + mlp(ln_2(x))
 * with LayerNorm eps 1e-5, causal multi-head attention scaled by 1/sqrt(head size),
 * MLP n_embd -> 4*n_embd -> n_embd with GELU (tanh approximation, "gelu_new"); a
 * final LayerNorm ln_f and an LM head tied to the token embedding (logits = x wte^T).
 * No dropout. The loss is the mean cross-entropy over all B*T positions.
 *
 * Parameters: one flat fp32 vector, the wire format of the model (proto/aulac.proto
 * transfers it as little-endian fp32; model/model_hash.h hashes those bytes after the
 * domain "aulac/model/v1" 0x00). Canonical order, with
 * C = n_embd, V = vocab_size, P = max_seq_len, every tensor row-major:
 *
 *   wte.weight                    [V, C]
 *   wpe.weight                    [P, C]
 *   for each layer i = 0 .. n_layer-1:
 *     h.i.ln_1.weight             [C]
 *     h.i.ln_1.bias               [C]
 *     h.i.attn.c_attn.weight      [C, 3C]   q | k | v along the output axis
 *     h.i.attn.c_attn.bias        [3C]
 *     h.i.attn.c_proj.weight      [C, C]
 *     h.i.attn.c_proj.bias        [C]
 *     h.i.ln_2.weight             [C]
 *     h.i.ln_2.bias               [C]
 *     h.i.mlp.c_fc.weight         [C, 4C]
 *     h.i.mlp.c_fc.bias           [4C]
 *     h.i.mlp.c_proj.weight       [4C, C]
 *     h.i.mlp.c_proj.bias         [C]
 *   ln_f.weight                   [C]
 *   ln_f.bias                     [C]
 *
 * Linear weights are stored [in, out] (HF Conv1D layout, y = x W + b), so the flat
 * vector is byte for byte the tensors of a GPT-2 checkpoint in this order, and the
 * names above are the Hugging Face GPT2Model state-dict names. The LM head is wte.
 *
 * Heads: head j of q (and k, v) is columns [j*C/H, (j+1)*C/H) of its C-wide third.
 */
#include <stddef.h>
#include <stdint.h>

#include "model/errors.h"

#define GPT2_LN_EPS 1e-5f
#define GPT2_NAME_MAX 48

struct gpt2_config {
    int vocab_size;  /* 256 for the byte vocabulary */
    int max_seq_len; /* number of learned positions (HF n_positions) */
    int n_layer;
    int n_head;
    int n_embd;      /* must be divisible by n_head */
};

#define GPT2_MAX_PARAMS (1ull << 36)   /* n_params must stay below (policies check it too) */

/* Checks sizes: all positive, n_embd % n_head == 0, and small enough that every
 * count fits comfortably (n_params < GPT2_MAX_PARAMS, vocab_size <= 2^24). MODEL_ERR_CONFIG. */
int gpt2_config_check(const struct gpt2_config *cfg);

/* Number of fp32 parameters; 0 when the config fails gpt2_config_check(). */
size_t gpt2_num_params(const struct gpt2_config *cfg);

/* One tensor of the canonical order. */
struct gpt2_tensor_info {
    char name[GPT2_NAME_MAX]; /* HF name, e.g. "h.3.mlp.c_fc.weight" */
    size_t offset;            /* in floats from the start of the flat vector */
    size_t numel;
    int ndim;                 /* 1 or 2 */
    int shape[2];
    int is_matrix;            /* 2-D: embeddings and linear weights (decayed by AdamW) */
};

/* Number of tensors: 4 + 12 * n_layer (0 for an invalid config). */
int gpt2_num_tensors(const struct gpt2_config *cfg);

/* Fills *out for tensor index i in canonical order. MODEL_ERR_CONFIG, MODEL_ERR_ARG. */
int gpt2_tensor(const struct gpt2_config *cfg, int i, struct gpt2_tensor_info *out);

/* Deterministic GPT-2 initialization into flat[gpt2_num_params(cfg)]: every matrix
 * normal(0, 0.02) except attn.c_proj.weight and mlp.c_proj.weight, whose std is
 * 0.02 / sqrt(2 * n_layer); biases 0; LayerNorm weight 1, bias 0. The normal deviates
 * come from xoshiro256** seeded through splitmix64 and the Marsaglia polar method
 * with a logarithm of our own in strict double arithmetic, so the result is bit for
 * bit the same on every machine and compiler. Tensors are filled in canonical order
 * from one stream. MODEL_ERR_CONFIG. */
int gpt2_init_params(const struct gpt2_config *cfg, uint64_t seed, float *flat);

/* A model instance: parameters, gradients and activations for up to max_B x max_T,
 * each in one allocation, and a pool of worker threads. One caller at a time. */
struct gpt2;

/* MODEL_ERR_CONFIG, MODEL_ERR_ARG (max_B < 1, max_T < 1 or > max_seq_len),
 * MODEL_ERR_NOMEM. Parameters start zeroed: call gpt2_init_params or copy in.
 * Memory: 2 x 4 bytes per parameter, and activations of about
 * 4 B T (n_layer (16 C + H T) + 13 C + V) bytes (attention probabilities are kept). */
int gpt2_create(const struct gpt2_config *cfg, int max_B, int max_T, struct gpt2 **out);
void gpt2_destroy(struct gpt2 *m);

/* Threads for forward and backward (the caller's thread counts as one); threads <= 0
 * means one per online CPU. The model parallelizes around single-threaded BLAS calls,
 * so it sets OpenBLAS to one thread (process-wide) when it runs. Results are
 * reproducible for a given thread count; across counts they differ by float rounding.
 * Starts at 1. MODEL_ERR_NOMEM (the old pool stays). */
int gpt2_set_threads(struct gpt2 *m, int threads);

/* The model's thread pool (model/parallel.h), for model/ code that runs its own loops
 * on the same threads between passes (the trainer's optimizer step). Owned by m. */
struct parallel;
struct parallel *gpt2_parallel(struct gpt2 *m);

const struct gpt2_config *gpt2_get_config(const struct gpt2 *m);
/* Flat parameter and gradient vectors (gpt2_num_params floats each), owned by m and
 * valid until gpt2_destroy. Write the parameters only between a backward (or a
 * forward without targets) and the next forward. */
float *gpt2_params(struct gpt2 *m);
float *gpt2_grads(struct gpt2 *m);

/* Forward pass over inputs[B*T] (token ids, row b at b*T). With targets[B*T]
 * (may be NULL) it computes the mean cross-entropy into *loss (may be NULL then).
 * The logits [B, T, V] are valid from here until the next gpt2_backward/forward.
 * MODEL_ERR_ARG (B, T out of the created range), MODEL_ERR_TOKEN. */
int gpt2_forward(struct gpt2 *m, const int32_t *inputs, const int32_t *targets, int B,
                 int T, float *loss);

/* Logits of the last forward pass, [B, T, V] row-major; owned by m. */
const float *gpt2_logits(const struct gpt2 *m);

/* Backward pass of the last forward (which must have had targets): overwrites the
 * gradient vector with d(mean loss)/d(params). Destroys the logits.
 * MODEL_ERR_ARG when no forward with targets precedes it. */
int gpt2_backward(struct gpt2 *m);

/* ---- checkpoints (model/export.c) ----------------------------------------------
 * A model directory as Hugging Face expects it, so that
 * transformers.GPT2LMHeadModel.from_pretrained(dir) loads it:
 *   model.safetensors  the tensors above under their names, F32, weights [in, out]
 *                      (Conv1D), data in canonical order (so the data region is the
 *                      flat vector); the tied lm_head is not stored
 *   config.json        model_type gpt2, vocab_size, n_positions, n_embd, n_layer,
 *                      n_head, layer_norm_epsilon 1e-5, activation_function gelu_new,
 *                      dropouts 0, tie_word_embeddings true
 * Both files are written atomically (tmp, fsync, rename); dir is created if needed.
 * MODEL_ERR_CONFIG, MODEL_ERR_ARG, MODEL_ERR_IO (logged), safetensors codes. */
int gpt2_save(const char *dir, const struct gpt2_config *cfg, const float *flat);
/* Only the config.json above, written atomically to path (a plug-in trainer's round
 * input, worker/TRAINER.md). MODEL_ERR_CONFIG, MODEL_ERR_ARG, MODEL_ERR_IO (logged). */
int gpt2_save_config(const char *path, const struct gpt2_config *cfg);

/* Reads a directory written by gpt2_save or by transformers' save_pretrained of a
 * GPT-2 (names with or without "transformer."; F32, F16 or BF16; buffers
 * attn.bias/attn.masked_bias and a tied lm_head.weight are ignored). *flat is
 * malloc'd (gpt2_num_params(*cfg) floats); the caller frees it.
 * MODEL_ERR_FORMAT (logged: which key or tensor) for a config this model cannot
 * run (other activation, epsilon, n_inner, attention scaling) or missing/misshaped
 * tensors; MODEL_ERR_IO; safetensors codes for a malformed file. */
int gpt2_load(const char *dir, struct gpt2_config *cfg, float **flat);

#endif
