#!/usr/bin/env python3
"""Checks worker/plugins/torch_causal_lm.py (family gpt2, CPU fp32) against the built-in
C trainer, with the files tests/tools/gpt2_dump writes (tests/tools/gpt2_dump.c).

  check_torch_gpt2.py DUMP CORPUS WORKDIR        (run with the torch venv's python)

Checked, each to the tolerance printed:
  1. the sampler: the plug-in's first batch is byte for byte the C trainer's;
  2. the loss of that batch at the same init (relative 1e-5);
  3. whole rounds through the oneshot command (plan.json, AdamW moments kept in
     state_dir between rounds, warm-up by optimizer_step): each round's model (relative
     1e-4 per tensor; the names are the input's, without "transformer."), the metrics'
     tokens and steps, train loss and base validation loss (relative 1e-4), and the
     round's update (trained - base) as a whole (relative 1e-4: GELU erf instead of
     tanh already fails it);
  4. serve mode (JSON lines): the same models as oneshot, "done" for each round, and a
     broken plan answered with an "error" line, after which the next round works.
"""
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(HERE, "..", "..", "worker", "plugins", "torch_causal_lm.py")
sys.path.insert(0, os.path.dirname(PLUGIN))
import torch_causal_lm as tcl  # noqa: E402

failures = []


def check(ok, what):
    print("  %s  %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures.append(what)


def rel(a, b):
    a, b = a.double(), b.double()
    nb = float(b.norm())
    return float((a - b).norm()) / (nb if nb > 0 else 1.0)


def compare(label, got, want, tol):
    check(set(got) == set(want), "%s: the same %d tensor names" % (label, len(want)))
    worst, name = 0.0, None
    for k in want:
        if k in got:
            r = rel(got[k], want[k])
            if r > worst:
                worst, name = r, k
    check(worst <= tol, "%s: largest relative difference %.2e (%s) <= %.0e"
          % (label, worst, name, tol))


def main():
    dump, corpus_dir, work = sys.argv[1:4]
    torch.set_num_threads(1)
    summary = json.load(open(os.path.join(dump, "summary.json")))
    st = summary["settings"]
    B, T = st["batch"], st["seq"]
    files = sorted(os.listdir(corpus_dir))
    data = {"dir": corpus_dir, "files": files, "validation_fraction": st["val_fraction"],
            "validation_windows": st["eval_windows"]}
    gpt2 = {"vocab_size": 256, "n_positions": st["positions"], "n_layer": st["layers"],
            "n_head": st["heads"], "n_embd": st["embd"]}

    print("1. the batch sampler (worker/data.h: split, xoshiro256** windows)")
    corpus = tcl.Corpus(torch, data, None, 256)
    batch = corpus.batch(tcl.Rng(summary["rounds"][0]["seed"]), B, T)
    want = open(os.path.join(dump, "step1", "tokens.bin"), "rb").read()
    check(bytes(batch.to(torch.uint8).flatten().tolist()) == want,
          "the plug-in's first batch equals the C trainer's (%d x %d bytes)" % (B, T + 1))

    print("2. the loss of that batch at the same init")
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=256, n_positions=st["positions"], n_embd=st["embd"],
                     n_layer=st["layers"], n_head=st["heads"], activation_function="gelu_new",
                     layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=None, eos_token_id=None)
    model = GPT2LMHeadModel(cfg).float().eval()
    init = load_file(os.path.join(dump, "init", "model.safetensors"))
    init = {k[len("transformer."):] if k.startswith("transformer.") else k: v.float()
            for k, v in init.items()}
    missing = model.transformer.load_state_dict(init, strict=False)
    check(not missing.unexpected_keys, "the dump's names are GPT2Model's")
    toks = batch.long()
    with torch.no_grad():
        logits = model(input_ids=toks[:, :-1]).logits
        loss = float(torch.nn.functional.cross_entropy(logits.reshape(-1, 256),
                                                       toks[:, 1:].reshape(-1)))
    c_loss = summary["step1"]["loss"]
    r = abs(loss - c_loss) / c_loss
    check(r <= 1e-5, "loss: torch %.7f, C %.7f, relative %.1e" % (loss, c_loss, r))

    print("3. rounds through the oneshot command (state_dir keeps the AdamW moments)")
    state_dir = os.path.join(work, "state")
    base_path = os.path.join(dump, "init", "model.safetensors")
    plans, oneshot = [], []
    for rd in summary["rounds"]:
        k = rd["round"]
        outdir = os.path.join(work, "oneshot%d" % k, "out")
        plan = {
            "aulac_trainer": 1, "experiment": "check-torch", "round": k,
            "total_rounds": len(summary["rounds"]), "member": "checker",
            "model": {"family": "gpt2", "n_params": 0, "gpt2": gpt2, "input": base_path,
                      "config": None, "tokenizer": None},
            "output": {"dir": outdir, "model": os.path.join(outdir, "model.safetensors"),
                       "delta": os.path.join(outdir, "delta.safetensors"),
                       "metrics": os.path.join(outdir, "metrics.json")},
            "state_dir": state_dir,
            "training": {"steps": st["steps"], "batch_size": B, "seq_len": T, "lr": st["lr"],
                         "warmup_steps": st["warmup"], "optimizer_step": rd["optimizer_step"],
                         "weight_decay": st["wd"], "beta1": st["beta1"], "beta2": st["beta2"],
                         "eps": st["eps"], "grad_clip": st["clip"]},
            "seed": rd["seed"], "data": data,
            "limits": {"max_tokens": st["steps"] * B * T, "timeout_s": 600}}
        plans.append(plan)
        pp = os.path.join(work, "oneshot%d" % k, "plan.json")
        os.makedirs(os.path.dirname(pp), exist_ok=True)
        json.dump(plan, open(pp, "w"))
        p = subprocess.run([sys.executable, PLUGIN, "--device", "cpu", "--threads", "1", pp],
                           capture_output=True, text=True)
        check(p.returncode == 0, "round %d: the plug-in exits 0 (%s)"
              % (k, (p.stderr.strip().splitlines() or [""])[-1]))
        check(not os.path.exists(plan["output"]["delta"]),
              "round %d: a float32 model writes model.safetensors (F32), no delta" % k)
        got = load_file(plan["output"]["model"])
        check(all(v.dtype == torch.float32 for v in got.values()), "round %d: F32" % k)
        want = load_file(os.path.join(dump, "round%d" % k, "model.safetensors"))
        compare("round %d model (%d steps from optimizer step %d)"
                % (k, st["steps"], rd["optimizer_step"]), got, want, 1e-4)
        # the round's update (trained - base) as a whole: far finer than the parameters
        base = load_file(plan["model"]["input"])
        upd = torch.cat([(got[n] - base[n]).flatten() for n in sorted(want)])
        c_upd = torch.cat([(want[n] - base[n]).flatten() for n in sorted(want)])
        ru = rel(upd, c_upd)
        check(ru <= 1e-4, "round %d update (trained - base) as a whole: relative %.2e <= 1e-4"
              % (k, ru))
        m = json.load(open(plan["output"]["metrics"]))
        check(m["tokens"] == rd["tokens"] and m["steps"] == rd["steps"],
              "round %d metrics: tokens %d, steps %d" % (k, m["tokens"], m["steps"]))
        for key in ("train_loss", "validation_loss"):
            r = abs(m[key] - rd[key]) / rd[key]
            check(r <= 1e-4, "round %d %s: torch %.6f, C %.6f, relative %.1e"
                  % (k, key, m[key], rd[key], r))
        check(os.path.exists(os.path.join(state_dir, "optimizer.pt")),
              "round %d: the AdamW state is in state_dir" % k)
        oneshot.append(got)
        # the next round starts from the C trainer's model, with the plug-in's own state
        base_path = os.path.join(dump, "round%d" % k, "model.safetensors")
        if k < len(summary["rounds"]):
            summary["rounds"][k]["base"] = base_path

    print("4. serve mode")
    lines = []
    for i, plan in enumerate(plans):
        sp = json.loads(json.dumps(plan))
        outdir = os.path.join(work, "serve%d" % (i + 1), "out")
        sp["output"] = {"dir": outdir, "model": os.path.join(outdir, "model.safetensors"),
                        "delta": os.path.join(outdir, "delta.safetensors"),
                        "metrics": os.path.join(outdir, "metrics.json")}
        sp["state_dir"] = os.path.join(work, "serve-state")
        if i > 0:
            sp["model"]["input"] = os.path.join(dump, "round%d" % i, "model.safetensors")
        plans[i] = sp
        pp = os.path.join(work, "serve%d.json" % (i + 1))
        json.dump(sp, open(pp, "w"))
        if i == 1:   # a broken plan between the rounds: answered with an error line
            bad = json.loads(json.dumps(sp))
            bad["round"] = 99
            bad["model"]["gpt2"]["n_embd"] = 65
            json.dump(bad, open(os.path.join(work, "bad.json"), "w"))
            lines.append(json.dumps({"aulac_trainer": 1, "type": "round",
                                     "plan": os.path.join(work, "bad.json")}))
        lines.append(json.dumps({"aulac_trainer": 1, "type": "round", "plan": pp}))
    lines.append(json.dumps({"aulac_trainer": 1, "type": "exit"}))
    env = dict(os.environ)
    env.pop("AULAC_PLAN", None)
    p = subprocess.run([sys.executable, PLUGIN, "--device", "cpu", "--threads", "1"],
                       input="\n".join(lines) + "\n", capture_output=True, text=True,
                       env=env, timeout=300)
    check(p.returncode == 0, "serve: exits 0 after {\"type\": \"exit\"}")
    try:
        out = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    except ValueError:
        out = []
        check(False, "serve: stdout holds JSON lines only: %r" % p.stdout[:200])
    kinds = [(o.get("type"), o.get("round")) for o in out if o.get("type") != "progress"]
    check(kinds == [("done", 1), ("error", 99), ("done", 2)],
          "serve: done 1, error 99, done 2 (got %s)" % kinds)
    err = [o for o in out if o.get("type") == "error"]
    print("      the error line says: %s" % (err[0].get("message") if err else None))
    check(any(o.get("type") == "progress" for o in out), "serve: progress lines")
    for i, sp in enumerate(plans):
        got = load_file(sp["output"]["model"])
        compare("serve round %d against oneshot" % (i + 1), got, oneshot[i], 1e-6)

    print()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("torch_causal_lm.py (family gpt2, CPU) agrees with the C trainer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
