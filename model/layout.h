#ifndef AULAC_MODEL_LAYOUT_H
#define AULAC_MODEL_LAYOUT_H
/* A model as named tensors: the layout (names, shapes, where each tensor sits in the
 * flat fp32 vector) of any model the coordinator aggregates, and the one place that
 * turns safetensors files into that flat vector and back.
 *
 * Two kinds:
 *   MODEL_LAYOUT_GPT2   the built-in GPT-2 (model/gpt2.h): its tensors in gpt2.h's
 *                       canonical order, Hugging Face names; hashed as
 *                       "aulac/model/v1" (model/model_hash.h), as always.
 *   MODEL_LAYOUT_NAMED  any model given as a safetensors file (policy model.family
 *                       external): its tensors sorted by name (byte-wise), each
 *                       row-major, concatenated; hashed as "aulac/model/v2", which
 *                       covers the names and shapes too (model/README.md, "Named
 *                       models", with a test vector).
 *
 * Files are stored as F32, BF16 or F16 (converted exactly to fp32 on reading); every
 * other dtype is refused. Updates, aggregation and the flat vector are fp32. Files are
 * written F32.
 *
 * Errors: model/errors.h (model_strerror), and safetensors' ST_ERR_* passed through;
 * every function that reads a file or compares layouts also writes one sentence naming
 * the tensor and what is wrong into why (cap bytes, may be NULL):
 *   "tensor model.layers.3.mlp.up_proj.weight has shape [352, 128]; the model's is [352, 96]"
 */
#include <stddef.h>
#include <stdint.h>

#include "common/safetensors.h"
#include "model/errors.h"
#include "model/gpt2.h"

#define MODEL_NAME_MAX 256               /* bytes of a tensor name */
#define MODEL_LAYOUT_MAX_TENSORS 100000
#define MODEL_MAX_PARAMS GPT2_MAX_PARAMS /* the flat vector holds fewer than 2^36 values */

#define MODEL_HASH_DOMAIN_NAMED "aulac/model/v2"

enum model_layout_kind { MODEL_LAYOUT_GPT2 = 0, MODEL_LAYOUT_NAMED = 1 };

struct model_tensor {
    char *name;                 /* owned by the layout; 1..MODEL_NAME_MAX bytes, no NUL */
    int ndim;                   /* 0 (scalar) .. ST_MAX_DIMS */
    uint64_t shape[ST_MAX_DIMS];
    uint64_t numel;             /* product of shape (1 for a scalar); >= 1 */
    uint64_t offset;            /* index of its first value in the flat vector */
    enum st_dtype stored;       /* F32, BF16 or F16: the dtype of the file the layout came
                                   from (F32 for a built-in GPT-2) */
};

struct model_layout {
    enum model_layout_kind kind;
    struct gpt2_config gpt2;    /* MODEL_LAYOUT_GPT2 only; zero otherwise */
    size_t n_tensors;
    struct model_tensor *tensors;   /* flat order; owned */
    uint64_t n_params;          /* sum of numel */
};

/* The built-in GPT-2's layout (gpt2.h order and names). MODEL_ERR_CONFIG, MODEL_ERR_NOMEM. */
int model_layout_gpt2(const struct gpt2_config *cfg, struct model_layout *out);

/* The layout of a model file: its tensors sorted by name. MODEL_ERR_FORMAT (why: a
 * dtype other than F32/BF16/F16, an empty tensor, a name too long, too many tensors or
 * parameters). MODEL_ERR_NOMEM. *out zeroed on error. */
int model_layout_from_safetensors(const struct safetensors *f, struct model_layout *out,
                                  char *why, size_t cap);

/* 0 when a and b have the same tensors (names, shapes, order) and kind; MODEL_ERR_FORMAT
 * with the first difference in why, a being the model and b the one checked against it ("tensor lm_head.weight is missing", "... is not in the
 * model", "... has shape ..."). The stored dtypes may differ. */
int model_layout_compare(const struct model_layout *a, const struct model_layout *b,
                         char *why, size_t cap);

/* A MODEL_LAYOUT_NAMED layout of n tensor descriptions (name, ndim, shape, stored;
 * numel and offset are computed): names copied, sorted byte-wise, offsets assigned.
 * MODEL_ERR_FORMAT (why: no tensors, a name empty or longer than MODEL_NAME_MAX, a
 * name twice, an empty tensor, a dtype other than F32/BF16/F16, too many tensors or
 * parameters), MODEL_ERR_NOMEM. *out zeroed on error. */
int model_layout_named(const struct model_tensor *tensors, size_t n, struct model_layout *out,
                       char *why, size_t cap);

/* Index of the tensor named name, or -1. For a GPT-2 layout the name may also carry
 * the "transformer." prefix of Hugging Face's GPT2LMHeadModel. */
long model_layout_find(const struct model_layout *L, const char *name);

void model_layout_free(struct model_layout *L);

/* Reads the tensors of f into flat[L->n_params], converting BF16/F16 to fp32. f must
 * hold exactly L's names (none missing, none extra; for a GPT-2 layout the names with
 * or without the "transformer." prefix), each with L's shape and a dtype of F32, BF16
 * or F16, and every value finite. MODEL_ERR_FORMAT (why names the tensor: missing,
 * extra, shape, dtype), MODEL_ERR_NONFINITE (why names the tensor and the index of the
 * first NaN/Inf). flat may be partly written on error. */
int model_read_tensors(const struct model_layout *L, const struct safetensors *f, float *flat,
                       char *why, size_t cap);

/* Converts n values starting at element `first` of t (F32, BF16 or F16, little-endian,
 * any alignment) to fp32 exactly (every BF16 and F16 value, subnormals, infinities and
 * NaN included, is representable in fp32). MODEL_ERR_FORMAT for another dtype or a
 * range outside the tensor. The one conversion of the model stack (gpt2_load uses it). */
int model_tensor_to_f32(const struct st_tensor *t, uint64_t first, uint64_t n, float *dst);

/* Writes flat as a safetensors file of L's tensors (F32, metadata "format": "pt" and the
 * caller's meta, which must not hold "format"), atomically (tmp, fsync, rename) with mode
 * `mode`, data in flat order (the data region is the flat vector). ST_ERR_*, MODEL_ERR_ARG. */
int model_write_safetensors(const char *path, const struct model_layout *L, const float *flat,
                            const struct st_meta *meta, size_t n_meta, unsigned mode);

/* The hash that names the model (flat[L->n_params]) everywhere: model_hash() for a
 * GPT-2 layout; for a named one BLAKE2b-256 over
 *   "aulac/model/v2" 0x00
 *   u32 big-endian n_tensors
 *   per tensor, in flat order: u16 big-endian name length, the name bytes,
 *                              u8 ndim, ndim x u64 big-endian dims
 *   the flat vector as little-endian fp32.
 * model/README.md has the vector. */
void model_layout_hash(const struct model_layout *L, const float *flat, uint8_t out[32]);

#endif
