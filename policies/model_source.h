#ifndef AULAC_POLICIES_MODEL_SOURCE_H
#define AULAC_POLICIES_MODEL_SOURCE_H
/* Where an experiment's model comes from: its layout (names and shapes) and its round-0
 * parameters, derived from the policy and the files it pins, in one place that the
 * coordinator (round 0), every worker (its replica, and the check that round 0 is the
 * voted init), `aulac policy check` and `aulac credits verify` call.
 *
 *   family gpt2, no init    layout of the GPT-2 sizes; round 0 from model.seed
 *                           (gpt2_init_params)
 *   family gpt2, init       same layout; round 0 = the init file's tensors (checked
 *                           against the sizes: names, shapes)
 *   family external         layout of the init file (model/layout.h, sorted names);
 *                           round 0 = its tensors; when model.config is given and its
 *                           model_type is known (model/hf_config.h) the init's tensors
 *                           must be exactly the config's
 *
 * Pinned files are found through a resolver the caller provides: the CLI looks next to
 * the policy file, the coordinator in its artifact store, the worker in its state
 * directory after fetching. Every file is hashed and compared with its pin before it is
 * used (POLICY_ERR_INVALID: "model.init: model.safetensors has BLAKE2b-256 3f2a...,
 * the policy pins 9c41...").
 *
 * Errors (why, cap bytes, names the key and the file): POLICY_ERR_IO (a pinned file
 * cannot be found or read), POLICY_ERR_INVALID (hash mismatch, a file that is no valid
 * safetensors / config, an init whose tensors differ from the config or the GPT-2
 * sizes), POLICY_ERR_NOMEM. */
#include <stddef.h>

#include "model/layout.h"
#include "policies/policy.h"

/* Writes the path of the pinned file f (key "model.init", "model.config",
 * "model.tokenizer") into path[cap]: 0, or nonzero with a reason in why. The file at
 * the path is hashed by the caller of the resolver, never trusted. */
typedef int (*policy_file_resolver)(void *ctx, const char *key, const struct policy_file *f,
                                    char *path, size_t cap, char *why, size_t why_cap);

/* Resolver for `aulac policy check` / propose: f->file relative to dir. ctx = dir. */
int policy_file_next_to(void *dir, const char *key, const struct policy_file *f, char *path,
                        size_t cap, char *why, size_t why_cap);

/* The model's layout. For family gpt2 the resolver is not called (may be NULL) unless
 * init is given. */
int policy_model_layout(const struct policy *p, policy_file_resolver find, void *ctx,
                        struct model_layout *out, char *why, size_t cap)
    __attribute__((warn_unused_result));

/* Round-0 parameters into flat[L->n_params] (L from policy_model_layout on the same
 * policy). */
int policy_model_init(const struct policy *p, const struct model_layout *L,
                      policy_file_resolver find, void *ctx, float *flat, char *why, size_t cap)
    __attribute__((warn_unused_result));

/* Checks every pinned file of p (init, config, tokenizer): present, hash as pinned, and
 * the init's tensors against the config or GPT-2 sizes. What `aulac policy check` runs
 * when the files are at hand. In detail (policy_model_check):
 *   model.init       the layout as policy_model_layout() takes it, and every value of
 *                    every tensor finite (read a chunk at a time, not the whole model)
 *   model.config     valid JSON (common/json.h) of at most HF_CONFIG_MAX bytes, an
 *                    object; with a model_type model/hf_config.h knows, the layout it
 *                    describes must be the init's (names and shapes; model_layout_compare);
 *                    another model_type is accepted unchecked (summary config_checked 0)
 *   model.tokenizer  valid JSON of at most POLICY_TOKENIZER_MAX bytes, an object
 * policy_model_layout() and policy_model_init() read only model.init: the coordinator
 * and the workers rely on this check having passed (at proposal time and here). */
int policy_check_model_files(const struct policy *p, policy_file_resolver find, void *ctx,
                             char *why, size_t cap) __attribute__((warn_unused_result));

#define POLICY_TOKENIZER_MAX (64u << 20)   /* bytes of a pinned tokenizer.json */

/* What policy_model_check() found, for a person (`aulac policy check`). */
struct policy_model_summary {
    int family;                 /* enum policy_model_family */
    size_t n_tensors;
    uint64_t n_params;
    unsigned dtypes;            /* bit set of 1u << enum st_dtype: the stored dtypes of the
                                   init file (ST_F32 alone for a GPT-2 from model.seed) */
    char config_type[64];       /* model.config's model_type; "" without a config (or a
                                   config without a string model_type) */
    int config_checked;         /* 1: the init's tensors are the config's (compared); 0: no
                                   config, or a model_type model/hf_config.h does not know */
};

/* policy_check_model_files() with what it found in *out (may be NULL; zeroed first). */
int policy_model_check(const struct policy *p, policy_file_resolver find, void *ctx,
                       struct policy_model_summary *out, char *why, size_t cap)
    __attribute__((warn_unused_result));

#endif
