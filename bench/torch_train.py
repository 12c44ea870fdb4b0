#!/usr/bin/env python3
"""PyTorch CPU baseline for bench/train: the same GPT-2 training step as aulac's CPU
trainer (fp32 forward, backward, global-norm clipping, AdamW with weight decay on the
matrices), on the same configuration, batch and thread count, timed the same way
(warm-up steps, then timed steps). Prints one line:

    torch tokens_per_s=<float> median_s=<float> best_s=<float> cpu_s=<float> steps=<int>
          loss=<float> ...

tokens_per_s is B*T over the median step time (a step: zero_grad, forward, backward,
clip_grad_norm_, AdamW step; loss.item() synchronizes); cpu_s is the median CPU time
of the process per step (all threads, spinning included).

The model is written the way a PyTorch user would write it (nanoGPT style: nn.Linear,
nn.LayerNorm, GELU tanh, F.scaled_dot_product_attention with is_causal, tied LM head),
in eager mode, with torch's fused CPU AdamW where this torch has it.

Usage: torch_train.py --vocab V --positions P --layers L --heads H --embd C
                      --batch B --seq T --threads N [--warmup W] [--steps S]
"""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(B, T, C))
        h = F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")
        return x + self.mlp_proj(h)


class GPT2(nn.Module):
    def __init__(self, V, P, L, H, C):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(P, C)
        self.h = nn.ModuleList(Block(C, H) for _ in range(L))
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # tied LM head
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    for k in ("vocab", "positions", "layers", "heads", "embd", "batch", "seq", "threads"):
        ap.add_argument("--" + k, type=int, required=True)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = GPT2(a.vocab, a.positions, a.layers, a.heads, a.embd).float()
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() != 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    fused = False
    try:
        opt = torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
        fused = True
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), eps=1e-8)

    gen = torch.Generator().manual_seed(a.seed)
    n_batches = a.warmup + a.steps
    rows = torch.randint(0, 256, (n_batches, a.batch, a.seq + 1), generator=gen)

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = model(rows[i, :, :a.seq], rows[i, :, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for i in range(a.warmup):
        step(i)
    times, cpu, loss = [], [], float("nan")
    for i in range(a.warmup, n_batches):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step(i)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)

    def median(v):
        v, n = sorted(v), len(v)
        return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])

    med = median(times)
    print(f"torch tokens_per_s={a.batch * a.seq / med:.3f} median_s={med:.4f} "
          f"best_s={min(times):.4f} cpu_s={median(cpu):.4f} steps={len(times)} loss={loss:.4f} "
          f"threads={torch.get_num_threads()} "
          f"fused_adamw={int(fused)} version={torch.__version__}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
