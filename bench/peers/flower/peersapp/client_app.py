"""bench/peers ClientApp: one member's round, the same computation as an aulac worker's.

It trains with worker/plugins/torch_causal_lm.py's Trainer (aulac's PyTorch plug-in,
whose steps match the built-in C trainer: the same AdamW, warm-up, clipping, batch
sampler and validation split; worker/TRAINER.md) on a plan built the way the worker
builds one:
  data      the member's corpus files in the worker's order (every non-empty regular
            file under the directory, dotfiles skipped, sorted by relative path)
  seed      model.seed ^ member seed ^ round x 0x9e3779b97f4a7c15, where the member
            seed is the first 8 bytes (little-endian) of BLAKE2b-256(member name)
            (worker/worker.c)
  optimizer (round - 1) x local_steps steps taken before this round, so the warm-up
            and the AdamW moments continue across rounds; the moments live in
            <state-dir>/optimizer.pt between rounds (Flower starts a new ClientApp
            process for every message, as aulac's one-shot plug-ins do)
The reply carries the trained model (the received tensor names) and "num-examples",
the round's token count (local_steps x batch_size x seq_len), which Flower's FedAvg
weights by, as aulac's policy weighs by tokens.

Node config (flower-supernode --node-config): member, data-dir, state-dir.
"""
import argparse
import hashlib
import json
import os
import sys

from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()
MASK64 = (1 << 64) - 1


def corpus_files(root):
    """The worker's corpus order (worker/data.c: walk, skip dotfiles, sort by path)."""
    found = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        for f in files:
            if f.startswith("."):
                continue
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) == 0:
                continue
            found.append(os.path.relpath(p, root))
    return sorted(found, key=lambda s: s.encode("utf-8"))


def member_seed(member):
    h = hashlib.blake2b(member.encode("utf-8"), digest_size=32).digest()
    return int.from_bytes(h[:8], "little")


@app.train()
def train(msg: Message, context: Context) -> Message:
    import numpy as np
    from safetensors.numpy import load_file, save_file

    cfg = context.run_config
    node = context.node_config
    sys.path.insert(0, str(cfg["plugins-dir"]))
    import torch_causal_lm as tcl

    member = str(node["member"])
    state = str(node["state-dir"])
    rnd = int(msg.content["config"]["server-round"])
    steps = int(cfg["local-steps"])
    work = os.path.join(state, "round")
    os.makedirs(work, exist_ok=True)
    inp = os.path.join(work, "in.safetensors")
    arrays = msg.content["arrays"]
    save_file({n: np.ascontiguousarray(a.numpy()) for n, a in arrays.items()}, inp)
    with open(os.path.join(str(cfg["round0"]), "config.json")) as f:
        c = json.load(f)
    seed = int(cfg["seed"])
    plan = {
        "aulac_trainer": tcl.PROTOCOL,
        "experiment": "flower-run-%s" % context.run_id,
        "round": rnd,
        "seed": (seed ^ member_seed(member) ^ ((rnd * 0x9E3779B97F4A7C15) & MASK64)) & MASK64,
        "state_dir": state,
        "model": {"family": "gpt2", "input": inp,
                  "gpt2": {k: int(c[k]) for k in ("vocab_size", "n_positions", "n_embd",
                                                  "n_layer", "n_head")}},
        "training": {"steps": steps, "batch_size": int(cfg["batch-size"]),
                     "seq_len": int(cfg["seq-len"]), "lr": float(cfg["lr"]),
                     "weight_decay": float(cfg["weight-decay"]), "beta1": float(cfg["beta1"]),
                     "beta2": float(cfg["beta2"]), "eps": float(cfg["eps"]),
                     "grad_clip": float(cfg["grad-clip"]),
                     "warmup_steps": int(cfg["warmup-steps"]),
                     "optimizer_step": (rnd - 1) * steps},
        "data": {"dir": str(node["data-dir"]), "files": corpus_files(str(node["data-dir"])),
                 "validation_fraction": float(cfg["validation-fraction"]),
                 "validation_windows": int(cfg["eval-windows"])},
        "output": {"dir": work, "model": os.path.join(work, "model.safetensors"),
                   "delta": os.path.join(work, "delta.safetensors"),
                   "metrics": os.path.join(work, "metrics.json")},
    }
    args = argparse.Namespace(threads=1, device="cpu", precision="fp32", write="model",
                              dtype="f32", verbose=False, mode="oneshot")
    tcl.Trainer(args).round(plan, lambda *a: None)
    trained = load_file(plan["output"]["model"])
    with open(plan["output"]["metrics"]) as f:
        m = json.load(f)
    reply = RecordDict({
        "arrays": ArrayRecord({n: Array.from_numpy_ndarray(trained[n]) for n in trained}),
        "metrics": MetricRecord({"num-examples": int(m["tokens"]),
                                 "train-loss": float(m["train_loss"]),
                                 "base-val-loss": float(m["validation_loss"] or 0.0)}),
    })
    return Message(content=reply, reply_to=msg)
