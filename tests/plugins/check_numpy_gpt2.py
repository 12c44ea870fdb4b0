#!/usr/bin/env python3
"""Checks worker/plugins/numpy_gpt2.py against the built-in C trainer.

  check_numpy_gpt2.py DUMP CORPUS WORKDIR

DUMP is what build/tests/tools/gpt2_dump wrote from CORPUS (tests/tools/gpt2_dump.c says
what each file is). Checked, each to the tolerance printed:
  1. the sampler: the plug-in's first batch is byte for byte the C trainer's (data.c);
  2. one step at the same init and batch: the loss, every tensor's gradient, and every
     tensor after one clipped AdamW step (relative 1e-4);
  3. whole rounds through the plug-in's oneshot command (plan.json per TRAINER.md, AdamW
     moments kept in state_dir between the rounds, warm-up by optimizer_step): each
     round's model (relative 1e-4 per tensor), train loss and base validation loss;
  4. serve mode (JSON lines) gives the same models as oneshot, bit for bit, and says
     "progress" and "done" for each round; a plan of family external is refused with a
     message (oneshot: exit status 2; serve: an "error" line, and the next round works).
Exit status 0 when everything holds; it prints every figure it compares.
"""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(HERE, "..", "..", "worker", "plugins", "numpy_gpt2.py")
sys.path.insert(0, os.path.dirname(PLUGIN))
import numpy_gpt2 as ng  # noqa: E402

TOL = 1e-4
failures = []


def check(ok, what):
    print("  %s  %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures.append(what)


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (nb if nb > 0 else 1.0))


def compare_tensors(label, got, want, tol):
    worst, worst_name = 0.0, None
    for name in want:
        r = rel(got[name], want[name])
        if r > worst:
            worst, worst_name = r, name
    check(set(got) == set(want), "%s: the same %d tensor names" % (label, len(want)))
    check(worst <= tol, "%s: largest relative difference %.2e (%s) <= %.0e"
          % (label, worst, worst_name, tol))
    return worst


def main():
    dump, corpus_dir, work = sys.argv[1:4]
    summary = json.load(open(os.path.join(dump, "summary.json")))
    st = summary["settings"]
    cfg = ng.Config({"vocab_size": 256, "n_positions": st["positions"],
                     "n_layer": st["layers"], "n_head": st["heads"], "n_embd": st["embd"]})
    B, T = st["batch"], st["seq"]
    files = sorted(os.listdir(corpus_dir))
    data = {"dir": corpus_dir, "files": files, "validation_fraction": st["val_fraction"],
            "validation_windows": st["eval_windows"]}
    init, _ = ng.read_safetensors(os.path.join(dump, "init", "model.safetensors"))
    params = ng.load_params(os.path.join(dump, "init", "model.safetensors"), cfg)

    print("1. the batch sampler (worker/data.h: split, xoshiro256** windows)")
    corpus = ng.Corpus(data)
    batch = corpus.sampler(summary["rounds"][0]["seed"], B, T)()
    want = np.fromfile(os.path.join(dump, "step1", "tokens.bin"), dtype=np.uint8)
    check(np.array_equal(batch.astype(np.uint8).ravel(), want),
          "the plug-in's first batch equals the C trainer's (%d x %d bytes)" % (B, T + 1))

    print("2. one step at the same init and batch")
    toks = want.reshape(B, T + 1).astype(np.int64)
    loss, _, cache = ng.forward(params, cfg, toks[:, :-1], toks[:, 1:], need_cache=True)
    c_loss = summary["step1"]["loss"]
    r = abs(loss - c_loss) / abs(c_loss)
    check(r <= TOL, "loss: numpy %.7f, C %.7f, relative %.1e" % (loss, c_loss, r))
    grads = ng.backward(params, cfg, cache)
    c_grads, _ = ng.read_safetensors(os.path.join(dump, "step1", "grads", "model.safetensors"))
    compare_tensors("gradients", grads, c_grads, TOL)
    opt = ng.AdamW(params)
    hp = {"grad_clip": st["clip"], "weight_decay": st["wd"], "beta1": st["beta1"],
          "beta2": st["beta2"], "eps": st["eps"]}
    norm = opt.update(params, grads, np.float32(summary["step1"]["lr"]), hp)
    c_norm = summary["step1"]["grad_norm"]
    check(abs(norm - c_norm) / c_norm <= TOL and norm > st["clip"],
          "gradient norm before clipping: numpy %.6f, C %.6f (clip %g: clipped)"
          % (norm, c_norm, st["clip"]))
    c_after, _ = ng.read_safetensors(os.path.join(dump, "step1", "after", "model.safetensors"))
    compare_tensors("parameters after one AdamW step", params, c_after, TOL)
    # the update itself (after - init), a far finer test than the parameters
    upd = {k: params[k] - init[k] for k in params}
    c_upd = {k: c_after[k] - init[k] for k in params}
    ru = rel(np.concatenate([upd[k].ravel() for k in upd]),
             np.concatenate([c_upd[k].ravel() for k in upd]))
    check(ru <= 1e-2, "the step's update (after - init) as a whole: relative %.2e <= 1e-2" % ru)

    print("3. rounds through the oneshot command (state_dir keeps the AdamW moments)")
    state_dir = os.path.join(work, "state")
    base_path = os.path.join(dump, "init", "model.safetensors")
    oneshot_models = []

    def plan_for(rd, base, outdir, sdir, family="gpt2"):
        return {
            "aulac_trainer": 1, "experiment": "check-numpy", "round": rd["round"],
            "total_rounds": len(summary["rounds"]), "member": "checker",
            "model": {"family": family, "n_params": 0,
                      "gpt2": {"vocab_size": 256, "n_positions": st["positions"],
                               "n_layer": st["layers"], "n_head": st["heads"],
                               "n_embd": st["embd"]} if family == "gpt2" else None,
                      "input": base, "config": None, "tokenizer": None},
            "output": {"dir": outdir, "model": os.path.join(outdir, "model.safetensors"),
                       "delta": os.path.join(outdir, "delta.safetensors"),
                       "metrics": os.path.join(outdir, "metrics.json")},
            "state_dir": sdir,
            "training": {"steps": st["steps"], "batch_size": B, "seq_len": T,
                         "lr": st["lr"], "warmup_steps": st["warmup"],
                         "optimizer_step": rd["optimizer_step"], "weight_decay": st["wd"],
                         "beta1": st["beta1"], "beta2": st["beta2"], "eps": st["eps"],
                         "grad_clip": st["clip"]},
            "seed": rd["seed"], "data": data,
            "limits": {"max_tokens": st["steps"] * B * T, "timeout_s": 600}}

    plans = []
    for rd in summary["rounds"]:
        k = rd["round"]
        outdir = os.path.join(work, "oneshot%d" % k, "out")
        plan = plan_for(rd, base_path, outdir, state_dir)
        plans.append(plan)
        pp = os.path.join(work, "oneshot%d" % k, "plan.json")
        os.makedirs(os.path.dirname(pp), exist_ok=True)
        json.dump(plan, open(pp, "w"))
        p = subprocess.run([sys.executable, PLUGIN, pp], capture_output=True, text=True)
        check(p.returncode == 0, "round %d: the plug-in exits 0 (%s)"
              % (k, (p.stderr.strip().splitlines() or [""])[-1]))
        got, _ = ng.read_safetensors(plan["output"]["model"])
        want, _ = ng.read_safetensors(os.path.join(dump, "round%d" % k, "model.safetensors"))
        compare_tensors("round %d model (%d steps from optimizer step %d)"
                        % (k, st["steps"], rd["optimizer_step"]), got, want, TOL)
        m = json.load(open(plan["output"]["metrics"]))
        check(m["tokens"] == rd["tokens"] and m["steps"] == rd["steps"],
              "round %d metrics: tokens %d, steps %d" % (k, m["tokens"], m["steps"]))
        for key in ("train_loss", "validation_loss"):
            r = abs(m[key] - rd[key]) / rd[key]
            check(r <= TOL, "round %d %s: numpy %.6f, C %.6f, relative %.1e"
                  % (k, key, m[key], rd[key], r))
        check(os.path.exists(os.path.join(state_dir, ng.STATE_FILE)),
              "round %d: the AdamW state is in state_dir" % k)
        oneshot_models.append(got)
        # the next round starts from the C trainer's model (as from an aggregate), with
        # the plug-in's own optimizer state
        base_path = os.path.join(dump, "round%d" % k, "model.safetensors")

    # TRAINER.md "Optimizer state": round 1 again, as after a round the coordinator
    # rejected (optimizer_step unchanged): the moments that went ahead are dropped, so
    # the model is round 1's again, bit for bit
    again = json.loads(json.dumps(plans[0]))
    outdir = os.path.join(work, "again", "out")
    again["output"] = {"dir": outdir, "model": os.path.join(outdir, "model.safetensors"),
                       "delta": os.path.join(outdir, "delta.safetensors"),
                       "metrics": os.path.join(outdir, "metrics.json")}
    pp = os.path.join(work, "again", "plan.json")
    os.makedirs(outdir, exist_ok=True)
    json.dump(again, open(pp, "w"))
    p = subprocess.run([sys.executable, PLUGIN, pp], capture_output=True, text=True)
    check(p.returncode == 0 and "start again from zero" in p.stderr,
          "round 1 again (optimizer_step %d, state ahead): the plug-in drops its moments"
          % again["training"]["optimizer_step"])
    got, _ = ng.read_safetensors(again["output"]["model"])
    check(all(np.array_equal(got[k], oneshot_models[0][k]) for k in got),
          "round 1 again gives round 1's model bit for bit")

    print("4. serve mode, and refusals")
    serve_plans = []
    for i, plan in enumerate(plans):
        sp = json.loads(json.dumps(plan))
        outdir = os.path.join(work, "serve%d" % (i + 1), "out")
        sp["output"] = {"dir": outdir, "model": os.path.join(outdir, "model.safetensors"),
                        "delta": os.path.join(outdir, "delta.safetensors"),
                        "metrics": os.path.join(outdir, "metrics.json")}
        sp["state_dir"] = os.path.join(work, "serve-state")
        serve_plans.append(sp)
    bad = json.loads(json.dumps(serve_plans[0]))
    bad["round"] = 99
    bad["model"]["family"] = "external"
    bad["model"]["gpt2"] = None
    lines = []
    for name, sp in [("s1", serve_plans[0]), ("bad", bad), ("s2", serve_plans[1])]:
        pp = os.path.join(work, "serve-%s.json" % name)
        json.dump(sp, open(pp, "w"))
        lines.append(json.dumps({"aulac_trainer": 1, "type": "round", "plan": pp}))
    lines.append(json.dumps({"aulac_trainer": 1, "type": "exit"}))
    env = dict(os.environ)
    env.pop("AULAC_PLAN", None)
    p = subprocess.run([sys.executable, PLUGIN], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, env=env, timeout=300)
    check(p.returncode == 0, "serve: exits 0 after {\"type\": \"exit\"}")
    out = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    kinds = [(o.get("type"), o.get("round")) for o in out if o.get("type") != "progress"]
    check(kinds == [("done", 1), ("error", 99), ("done", 2)],
          "serve: done 1, error 99, done 2 (got %s)" % kinds)
    err = [o for o in out if o.get("type") == "error"]
    check(bool(err) and "gpt2" in err[0].get("message", ""),
          "serve: the refusal says why: %s" % (err[0].get("message") if err else None))
    prog = [o for o in out if o.get("type") == "progress"]
    check(len(prog) >= 2 and all(o["steps"] == st["steps"] for o in prog),
          "serve: progress lines (%d)" % len(prog))
    for i, sp in enumerate(serve_plans):
        got, _ = ng.read_safetensors(sp["output"]["model"])
        same = all(np.array_equal(got[k], oneshot_models[i][k]) for k in got)
        check(same, "serve round %d: the same model as oneshot, bit for bit" % (i + 1))
    check(not os.path.exists(os.path.join(work, "serve-state", ng.STATE_FILE)),
          "serve: the optimizer state stays in memory")
    pp = os.path.join(work, "serve-bad.json")
    p = subprocess.run([sys.executable, PLUGIN, pp], capture_output=True, text=True)
    check(p.returncode == 2 and "family" in p.stderr,
          "oneshot: family external is refused (exit %d: %s)"
          % (p.returncode, p.stderr.strip()))

    print()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("numpy_gpt2.py agrees with the C trainer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
