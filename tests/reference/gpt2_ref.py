#!/usr/bin/env python3
"""Independent PyTorch reference for aulac's built-in GPT-2 (model/gpt2.h).

1. A GPT-2 written here from the math (not from transformers), on a flat fp32
   parameter vector in aulac's canonical order (wte, wpe, per layer ln_1, attn.c_attn,
   attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, then ln_f; linear weights [in, out]).
2. Checked against Hugging Face transformers' GPT2LMHeadModel on the same weights.
3. Optionally: a checkpoint directory written by the C code (model/export.c) must load
   with GPT2LMHeadModel.from_pretrained without missing or unexpected weights, give
   the reference's logits, and (when tests/reference/export_check.c wrote it, with
   eval.bin + eval.json) the loss aulac measured on the same bytes, within 1e-4
   relative.
4. Writes golden files (safetensors) for tests/unit/test_model_golden.c: parameters,
   input bytes, loss, logits, gradients, and a 10-step AdamW trajectory (global-norm
   clipping, weight decay on matrices only) with the batches it used; and one golden's
   parameters as a transformers save_pretrained directory, which the C loader reads.

Usage: gpt2_ref.py --out tests/reference/golden [--c-checkpoint DIR]
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

CONFIGS = {
    # name: (vocab, positions, layers, heads, embd, B, T)
    "gpt2_l2_c32": (256, 16, 2, 2, 32, 2, 16),
    "gpt2_l1_c16_h4": (256, 8, 1, 4, 16, 3, 7),
}
HPARAMS = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0)
STEPS = 10


def tensor_table(V, P, L, C):
    """(name, shape) in canonical order, as gpt2_tensor() in model/gpt2.c."""
    t = [("wte.weight", (V, C)), ("wpe.weight", (P, C))]
    for i in range(L):
        t += [
            (f"h.{i}.ln_1.weight", (C,)), (f"h.{i}.ln_1.bias", (C,)),
            (f"h.{i}.attn.c_attn.weight", (C, 3 * C)), (f"h.{i}.attn.c_attn.bias", (3 * C,)),
            (f"h.{i}.attn.c_proj.weight", (C, C)), (f"h.{i}.attn.c_proj.bias", (C,)),
            (f"h.{i}.ln_2.weight", (C,)), (f"h.{i}.ln_2.bias", (C,)),
            (f"h.{i}.mlp.c_fc.weight", (C, 4 * C)), (f"h.{i}.mlp.c_fc.bias", (4 * C,)),
            (f"h.{i}.mlp.c_proj.weight", (4 * C, C)), (f"h.{i}.mlp.c_proj.bias", (C,)),
        ]
    return t + [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]


def unflatten(flat, table):
    out, off = {}, 0
    for name, shape in table:
        n = math.prod(shape)
        out[name] = flat[off:off + n].view(shape)
        off += n
    assert off == flat.numel()
    return out


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def forward(p, idx, L, H):
    """Logits [B, T, V] of the GPT-2 with parameters p (dict of views)."""
    B, T = idx.shape
    C = p["wte.weight"].shape[1]
    hs = C // H
    x = p["wte.weight"][idx] + p["wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(L):
        h = layer_norm(x, p[f"h.{i}.ln_1.weight"], p[f"h.{i}.ln_1.bias"])
        qkv = h @ p[f"h.{i}.attn.c_attn.weight"] + p[f"h.{i}.attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p[f"h.{i}.attn.c_proj.weight"] + p[f"h.{i}.attn.c_proj.bias"]
        h = layer_norm(x, p[f"h.{i}.ln_2.weight"], p[f"h.{i}.ln_2.bias"])
        h = gelu_tanh(h @ p[f"h.{i}.mlp.c_fc.weight"] + p[f"h.{i}.mlp.c_fc.bias"])
        x = x + h @ p[f"h.{i}.mlp.c_proj.weight"] + p[f"h.{i}.mlp.c_proj.bias"]
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"])
    return x @ p["wte.weight"].T


def rough_params(table, gen):
    """Parameters away from the init so every path carries signal."""
    parts = []
    for name, shape in table:
        if len(shape) == 2:
            t = torch.randn(shape, generator=gen) * 0.2
        elif name.endswith(".weight"):  # LayerNorm gain
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            t = 0.1 * torch.randn(shape, generator=gen)
        parts.append(t.reshape(-1))
    return torch.cat(parts).float()


def hf_model(V, P, L, H, C):
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=V, n_positions=P, n_embd=C, n_layer=L, n_head=H,
                     activation_function="gelu_new", layer_norm_epsilon=1e-5,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=None, eos_token_id=None)  # bytes: no special tokens
    try:
        m = GPT2LMHeadModel(cfg, attn_implementation="eager")
    except TypeError:
        m = GPT2LMHeadModel(cfg)
    return m.eval()


def check_against_hf(flat, table, idx, L, H, ref_logits):
    V, C = table[0][1]
    P = table[1][1][0]
    m = hf_model(V, P, L, H, C)
    state = {"transformer." + k: v.clone() for k, v in unflatten(flat, table).items()}
    missing, unexpected = m.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))
               and k != "lm_head.weight"]
    assert not missing and not unexpected, (missing, unexpected)
    with torch.no_grad():
        hf = m(idx).logits
    err = (hf - ref_logits).abs().max().item()
    print(f"  transformers GPT2LMHeadModel vs reference: max |dlogits| = {err:.2e}")
    assert err < 1e-4, err


def save_hf_checkpoint(flat, table, L, H, path):
    """The golden's parameters saved by transformers itself (save_pretrained), for
    the C loader (gpt2_load) to read in test_model_golden.c."""
    V, C = table[0][1]
    P = table[1][1][0]
    m = hf_model(V, P, L, H, C)
    state = {"transformer." + k: v.clone() for k, v in unflatten(flat, table).items()}
    m.load_state_dict(state, strict=False)
    m.save_pretrained(path, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(path, extra)):
            os.remove(os.path.join(path, extra))
    print(f"  wrote {path} with transformers' save_pretrained")


def check_c_checkpoint(path):
    """from_pretrained on the directory model/export.c wrote."""
    from transformers import GPT2LMHeadModel
    import json
    m, info = GPT2LMHeadModel.from_pretrained(path, output_loading_info=True)
    m.eval()
    bad = [k for k in info["missing_keys"] if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    assert not bad and not info["unexpected_keys"] and not info["mismatched_keys"], info
    cfg = json.load(open(os.path.join(path, "config.json")))
    V, P, L, H, C = (cfg[k] for k in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd"))
    table = tensor_table(V, P, L, C)
    st = load_file(os.path.join(path, "model.safetensors"))
    flat = torch.cat([st[name].reshape(-1) for name, _ in table])
    idx = torch.randint(0, V, (2, P), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = forward(unflatten(flat, table), idx, L, H)
        hf = m(idx).logits
    # the LM head is the tied wte
    assert torch.equal(m.lm_head.weight, m.transformer.wte.weight)
    err = (hf - ref).abs().max().item()
    print(f"  C checkpoint {path}: from_pretrained OK, max |dlogits| vs reference = {err:.2e}")
    assert err < 1e-4, err
    check_c_loss(m, path)


def check_c_loss(m, path):
    """The loss aulac measured (trainer_evaluate, written by export_check.c) against
    GPT2LMHeadModel's own loss (labels=input_ids) on the same bytes: window k is bytes
    [kT, kT+T], predicting bytes kT+1..kT+T, as trainer_evaluate splits them."""
    import json
    meta_path = os.path.join(path, "eval.json")
    if not os.path.exists(meta_path):
        print(f"  {path}: no eval.json (not written by tests/reference/export_check.c); "
              "loss check skipped")
        return
    meta = json.load(open(meta_path))
    T, W = meta["seq_len"], meta["windows"]
    data = open(os.path.join(path, "eval.bin"), "rb").read()
    assert len(data) == W * T + 1, (len(data), W, T)
    rows = torch.tensor([list(data[k * T:k * T + T + 1]) for k in range(W)], dtype=torch.long)
    with torch.no_grad():
        hf_loss = m(input_ids=rows, labels=rows).loss.item()
    c_loss = meta["aulac_loss"]
    rel = abs(hf_loss - c_loss) / abs(hf_loss)
    print(f"  same {W}x{T + 1} bytes: aulac loss {c_loss:.6f}, transformers GPT2LMHeadModel "
          f"loss {hf_loss:.6f}, relative difference {rel:.2e} (limit 1e-4)")
    if not rel <= 1e-4:
        raise SystemExit(f"reference: the exported model's loss differs: aulac {c_loss} vs "
                         f"transformers {hf_loss}")


def save_deterministic(tensors, path, metadata):
    """safetensors, byte for byte the same on every run (save_file orders the metadata
    by hash, so rerunning `make reference` would rewrite the committed goldens):
    header keys sorted, data in insertion order, header padded with spaces to 8."""
    import json
    import struct
    dtypes = {torch.float32: "F32", torch.int32: "I32", torch.uint8: "U8"}
    header, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def make_golden(name, V, P, L, H, C, B, T, seed):
    table = tensor_table(V, P, L, C)
    gen = torch.Generator().manual_seed(seed)
    flat0 = rough_params(table, gen)
    n = flat0.numel()
    # one forward/backward with arbitrary targets
    idx = torch.randint(0, V, (B, T), generator=gen)
    tgt = torch.randint(0, V, (B, T), generator=gen)
    flat = flat0.clone().requires_grad_(True)
    logits = forward(unflatten(flat, table), idx, L, H)
    loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
    loss.backward()
    print(f"{name}: {n} params, B={B} T={T}, loss {loss.item():.6f}")
    check_against_hf(flat0, table, idx, L, H, logits.detach())

    # 10 AdamW steps through the trainer's path: rows of T+1 bytes -> inputs, targets
    leaves = [t.clone().requires_grad_(True) for t in unflatten(flat0, table).values()]
    decay = [t for (nm, s), t in zip(table, leaves) if len(s) == 2]
    no_decay = [t for (nm, s), t in zip(table, leaves) if len(s) != 2]
    hp = HPARAMS
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    rows = torch.randint(0, V, (STEPS, B, T + 1), generator=gen)
    # some structure so the loss moves: repeat a short pattern in half the rows
    rows[:, 0, :] = torch.arange(T + 1) % 5 + 65
    losses, norms, step1 = [], [], None
    for s in range(STEPS):
        opt.zero_grad()
        p = {nm: t for (nm, _), t in zip(table, leaves)}
        lg = forward(p, rows[s, :, :T], L, H)
        l = F.cross_entropy(lg.reshape(-1, V), rows[s, :, 1:].reshape(-1))
        l.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(leaves, hp["grad_clip"]).item())
        opt.step()
        losses.append(l.item())
        if s == 0:
            step1 = torch.cat([t.detach().reshape(-1) for t in leaves])
    final = torch.cat([t.detach().reshape(-1) for t in leaves])
    print(f"  AdamW losses {losses[0]:.4f} -> {losses[-1]:.4f}, grad norms {norms[0]:.3f} -> "
          f"{norms[-1]:.3f}")

    meta = {k: str(v) for k, v in dict(vocab_size=V, max_seq_len=P, n_layer=L, n_head=H,
                                         n_embd=C, batch=B, seq_len=T, steps=STEPS,
                                         **HPARAMS).items()}
    meta["producer"] = "tests/reference/gpt2_ref.py"
    meta["torch"] = torch.__version__
    tensors = {
        "params": flat0.contiguous(),
        "inputs": idx.to(torch.int32).contiguous(),
        "targets": tgt.to(torch.int32).contiguous(),
        "loss": torch.tensor([loss.item()], dtype=torch.float32),
        "logits": logits.detach().contiguous(),
        "grads": flat.grad.detach().contiguous(),
        "adamw.rows": rows.to(torch.uint8).contiguous(),
        "adamw.losses": torch.tensor(losses, dtype=torch.float32),
        "adamw.grad_norms": torch.tensor(norms, dtype=torch.float32),
        "adamw.step1_params": step1.contiguous(),
        "adamw.final_params": final.contiguous(),
    }
    return tensors, meta, flat0, table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--c-checkpoint")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    try:  # transformers' loading/saving progress bars say nothing here
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    os.makedirs(args.out, exist_ok=True)
    for i, (name, (V, P, L, H, C, B, T)) in enumerate(CONFIGS.items()):
        tensors, meta, flat0, table = make_golden(name, V, P, L, H, C, B, T, seed=1000 + i)
        path = os.path.join(args.out, name + ".safetensors")
        save_deterministic(tensors, path, meta)
        back = load_file(path)  # the file reads back as written
        assert all(torch.equal(back[k], v) for k, v in tensors.items())
        print(f"  wrote {path} ({os.path.getsize(path)} bytes)")
        if name == "gpt2_l1_c16_h4":
            save_hf_checkpoint(flat0, table, L, H, os.path.join(args.out, "hf_" + name))
    if args.c_checkpoint:
        check_c_checkpoint(args.c_checkpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
