#!/usr/bin/env python3
"""Makes the initial model of policies/examples/llama-tiny.yaml: a Llama-architecture
causal LM of about 1.6 million parameters for the Vietnamese byte-level BPE tokenizer
of scripts/train-tokenizer.py.

    REFERENCE_VENV/bin/python scripts/make-llama-tiny.py policies/examples/llama-tiny

Reads DIR/tokenizer.json (its vocabulary size and special tokens) and writes
  DIR/config.json         transformers LlamaConfig (model_type llama)
  DIR/model.safetensors   the seeded random init (transformers' own init of
                          LlamaForCausalLM, torch.manual_seed(--seed)), stored BF16
and prints the BLAKE2b-256 of the three files, the hashes the policy pins.

Sizes: hidden 128, 4 layers, 4 heads of 32 (2 key/value heads: grouped-query attention),
SwiGLU MLP 352, RoPE theta 10000, RMSNorm eps 1e-5, 256 positions, untied LM head.
The same seed and transformers version give the same bytes; the committed files are
the pinned ones.
"""
import argparse
import hashlib
import json
import os
import sys


def b2(path):
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="directory holding tokenizer.json; config.json and "
                    "model.safetensors are written there")
    ap.add_argument("--seed", type=int, default=20240915)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=352)
    ap.add_argument("--positions", type=int, default=256)
    a = ap.parse_args()

    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = Tokenizer.from_file(os.path.join(a.dir, "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    pad = tok.token_to_id("<|pad|>")
    if eos is None:
        sys.exit("make-llama-tiny: %s/tokenizer.json has no <|endoftext|> token" % a.dir)
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=a.hidden, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
        intermediate_size=a.intermediate, max_position_embeddings=a.positions,
        hidden_act="silu", rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
        attention_bias=False, mlp_bias=False, initializer_range=0.02,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=pad, torch_dtype="bfloat16")
    torch.manual_seed(a.seed)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    n = sum(v.numel() for v in sd.values())

    cfg_path = os.path.join(a.dir, "config.json")
    model_path = os.path.join(a.dir, "model.safetensors")
    d = cfg.to_dict()
    d["architectures"] = ["LlamaForCausalLM"]
    for k in ("transformers_version",):   # keep the file independent of the version
        d.pop(k, None)
    with open(cfg_path + ".tmp", "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(cfg_path + ".tmp", cfg_path)
    save_file(sd, model_path + ".tmp", metadata={"format": "pt"})
    os.replace(model_path + ".tmp", model_path)

    # the directory loads as it will at every member and in the final checkpoint
    from transformers import AutoModelForCausalLM
    m2 = AutoModelForCausalLM.from_pretrained(a.dir)
    got = m2.state_dict()
    for k, v in sd.items():
        if not torch.equal(got[k].to(torch.bfloat16), v):
            sys.exit("make-llama-tiny: %s differs after from_pretrained" % k)
    print("make-llama-tiny: %d parameters, %d tensors, %d bytes BF16" % (
        n, len(sd), os.path.getsize(model_path)))
    for p in ("model.safetensors", "config.json", "tokenizer.json"):
        print("  %-18s blake2b %s" % (p, b2(os.path.join(a.dir, p))))


if __name__ == "__main__":
    main()
