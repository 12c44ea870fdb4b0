#ifndef AULAC_MODEL_HF_CONFIG_H
#define AULAC_MODEL_HF_CONFIG_H
/* What a Hugging Face config.json says the model's tensors are, so that a policy's
 * init file is checked against its config before anything runs (policy model.family
 * external, model.config).
 *
 * Known architectures (config "model_type"):
 *   llama, mistral, qwen2   model.embed_tokens.weight [V, H]; per layer i:
 *                           model.layers.i.{input_layernorm,post_attention_layernorm}.weight [H],
 *                           model.layers.i.self_attn.{q_proj [nh*hd, H], k_proj [kv*hd, H],
 *                           v_proj [kv*hd, H], o_proj [H, nh*hd]}.weight,
 *                           qwen2: q/k/v .bias [nh*hd], [kv*hd], [kv*hd] always;
 *                           llama with attention_bias: q/k/v .bias and o_proj.bias [H];
 *                           llama with mlp_bias: gate/up .bias [I], down_proj.bias [H];
 *                           mistral: no biases (transformers ignores attention_bias),
 *                           model.layers.i.mlp.{gate_proj [I, H], up_proj [I, H],
 *                           down_proj [H, I]}.weight; model.norm.weight [H];
 *                           lm_head.weight [V, H] unless tie_word_embeddings (default false)
 *                           (hd = head_dim, or H / num_attention_heads;
 *                           kv = num_key_value_heads, or num_attention_heads)
 *   gpt2                    the tensors GPT2LMHeadModel.save_pretrained writes: model/gpt2.h's
 *                           names under "transformer." (transformer.wte.weight, ...),
 *                           mlp width n_inner (or 4 n_embd), lm_head.weight [V, C] only when
 *                           tie_word_embeddings is false (default true); keys n_positions
 *                           (or n_ctx), n_embd, n_layer, n_head, vocab_size
 * Checked against transformers 5.24's state dicts (tests/unit/test_hf_config.c).
 * model/README.md, "Hugging Face configs", lists the keys read.
 *
 * The file is hostile bytes: at most HF_CONFIG_MAX bytes of UTF-8 JSON (common/json.h).
 * Errors: MODEL_ERR_FORMAT (why: not JSON, a key missing or of the wrong type, sizes
 * out of range), MODEL_ERR_UNSUPPORTED_ARCH (why names the model_type: the tensor set
 * can then not be checked against the config), MODEL_ERR_NOMEM. */
#include <stddef.h>

#include "model/layout.h"

#define HF_CONFIG_MAX (1u << 20)
#define MODEL_ERR_UNSUPPORTED_ARCH (-1415)

/* The layout (MODEL_LAYOUT_NAMED, names sorted, stored F32) config.json describes. */
int hf_config_layout(const char *json, size_t len, struct model_layout *out, char *why,
                     size_t cap);

#endif
