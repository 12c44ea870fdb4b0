#!/usr/bin/env python3
"""A fake plug-in trainer (worker/TRAINER.md) for the worker's tests: python3 standard
library only, safetensors read and written by hand.

It "trains" by multiplying every parameter by (1 - FAKE_TRAINER_SHRINK) (default 1e-3),
then writes what the chosen behaviour says. The behaviour comes from the environment:

  FAKE_TRAINER_MODE        good_model (default) | good_delta | missing | extra | shape |
                           i64 | nan | zero | truncated | both | no_metrics | tokens_over |
                           negative_loss | exit3 | sleep | late_write | null_validation |
                           fifo_link | escape | slow_model |
                           garbage | wrong_round | long_line | error | truncating |
                           fifo_race | stale_progress
                           (the last seven are serve-mode behaviours)
                           fifo_link: model.safetensors a symbolic link to a FIFO;
                           escape: a helper in a session of its own (setsid) that writes
                           its pid to <state_dir>/escaped.pid and, 2 s later, a model
                           (every parameter + 100) to this round's output; the trainer
                           itself hangs; slow_model: good_model, then 2.5 s asleep;
                           truncating: after "done" a thread truncates model.safetensors
                           to 0 bytes and back over and over until the next line;
                           fifo_race: after "done" a thread swaps model.safetensors
                           between the file and a symbolic link to a FIFO until the next
                           line; stale_progress: a progress line of the round after its
                           "done"
  FAKE_TRAINER_BAD_ROUNDS  comma-separated rounds that get the mode; every other round
                           is good_model (unset: every round gets it)
  FAKE_TRAINER_LOG         a file each call appends "round N mode M\n" to (optional)
  FAKE_TRAINER_SAVE        a directory the round's plan.json and in/ files are copied
                           to (the last round's stay; optional)

Oneshot when called with the plan's path (argv[1]); serve mode (JSON lines on stdin)
when called without it.
"""
import json
import math
import os
import signal
import struct
import sys
import threading
import time
from array import array


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        b, e = info["data_offsets"]
        a = array("f")
        a.frombytes(data[b:e])
        if sys.byteorder != "little":
            a.byteswap()
        tensors[name] = (list(info["shape"]), a)
    return tensors


def safetensors_bytes(tensors, dtypes=None):
    """tensors: name -> (shape, array('f') or bytes); dtypes: name -> dtype (default F32)."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        if isinstance(values, (bytes, bytearray)):
            blob = bytes(values)
        else:
            a = array("f", values)
            if sys.byteorder != "little":
                a.byteswap()
            blob = a.tobytes()
        dtype = (dtypes or {}).get(name, "F32")
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path, obj):
    write_atomic(path, json.dumps(obj).encode("utf-8"))


def save_inputs(plan_path, plan):
    dest = os.environ.get("FAKE_TRAINER_SAVE")
    if not dest:
        return
    import shutil
    os.makedirs(dest, exist_ok=True)
    shutil.copy(plan_path, os.path.join(dest, "plan.json"))
    for key in ("input", "config", "tokenizer"):
        if plan["model"][key]:
            shutil.copy(plan["model"][key], os.path.join(dest, os.path.basename(plan["model"][key])))


def mode_for(plan):
    mode = os.environ.get("FAKE_TRAINER_MODE", "good_model")
    bad = os.environ.get("FAKE_TRAINER_BAD_ROUNDS")
    if bad is not None and str(plan["round"]) not in [r.strip() for r in bad.split(",")]:
        mode = "good_model"
    log = os.environ.get("FAKE_TRAINER_LOG")
    if log:
        with open(log, "a") as f:
            f.write("round %d mode %s\n" % (plan["round"], mode))
    return mode


def train(plan, mode):
    """Writes the round's outputs the way `mode` says."""
    out = plan["output"]
    t = plan["training"]
    base = read_safetensors(plan["model"]["input"])
    shrink = float(os.environ.get("FAKE_TRAINER_SHRINK", "1e-3"))
    trained = {k: (s, array("f", [v * (1.0 - shrink) for v in a])) for k, (s, a) in base.items()}
    metrics = {"tokens": t["steps"] * t["batch_size"] * t["seq_len"], "steps": t["steps"],
               "train_loss": 2.5, "validation_loss": 2.75}
    first = sorted(trained)[0]
    dtypes = None
    target = out["model"]
    if mode == "good_delta":
        target = out["delta"]
        trained = {k: (s, array("f", [b - a for a, b in zip(base[k][1], trained[k][1])]))
                   for k, (s, _) in trained.items()}
    elif mode == "missing":
        del trained[first]
    elif mode == "extra":
        trained["zz.extra.weight"] = ([2], array("f", [0.0, 0.0]))
    elif mode == "shape":
        s, a = trained[first]
        trained[first] = ([len(a)] if len(s) != 1 else [1, len(a)], a)
    elif mode == "i64":
        s, a = trained[first]
        trained[first] = (s, struct.pack("<%dq" % len(a), *([0] * len(a))))
        dtypes = {first: "I64"}
    elif mode == "nan":
        s, a = trained[first]
        a[len(a) // 2] = float("nan")
    elif mode == "tokens_over":
        metrics["tokens"] += 1
    elif mode == "negative_loss":
        metrics["train_loss"] = -0.5
    elif mode == "null_validation":
        metrics["validation_loss"] = None
    elif mode == "exit3":
        print("fake trainer: failing on purpose", file=sys.stderr)
        sys.exit(3)
    elif mode == "sleep":
        time.sleep(3600)
    elif mode == "escape":
        if os.fork() == 0:
            try:
                os.setsid()
                with open(os.path.join(plan["state_dir"], "escaped.pid"), "w") as f:
                    f.write("%d\n" % os.getpid())
                os.close(1)
                os.close(2)
                time.sleep(2.0)
                bad = {k: (s, array("f", [v + 100.0 for v in a])) for k, (s, a) in base.items()}
                write_atomic(out["model"], safetensors_bytes(bad))
                write_json(out["metrics"], metrics)
            finally:
                os._exit(0)
        time.sleep(3600)
    elif mode == "fifo_link":
        fifo = os.path.join(plan["state_dir"], "fifo")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        os.symlink(fifo, out["model"])
        write_json(out["metrics"], metrics)
        return
    elif mode == "late_write":
        def late(signum, frame):
            write_atomic(out["model"], safetensors_bytes(trained))
            write_json(out["metrics"], metrics)
            sys.exit(0)
        signal.signal(signal.SIGTERM, late)
        time.sleep(3600)

    data = safetensors_bytes(trained, dtypes)
    if mode == "zero":
        data = b""
    elif mode == "truncated":
        data = data[:len(data) - 5]
    write_atomic(target, data)
    if mode == "both":
        write_atomic(out["delta"], safetensors_bytes(trained))
    if mode != "no_metrics":
        write_json(out["metrics"], metrics)
    if mode == "slow_model":
        time.sleep(2.5)


def truncator(path, stop):
    """Truncates path to 0 bytes and back to its size until stop is set."""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDWR)
    try:
        while not stop.is_set():
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
    finally:
        os.close(fd)


def fifo_swapper(path, state_dir, stop):
    """Swaps path between a hard link to the file and a symbolic link to a FIFO."""
    reg = os.path.join(state_dir, "reg")
    fifo = os.path.join(state_dir, "fifo")
    if os.path.exists(reg):
        os.unlink(reg)
    os.link(path, reg)
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    while not stop.is_set():
        try:
            os.link(reg, path + ".a")
            os.replace(path + ".a", path)
            os.symlink(fifo, path + ".b")
            os.replace(path + ".b", path)
        except (FileExistsError, FileNotFoundError):
            pass


def no_worker_settings():
    """The worker passes none of its own AULAC_* variables (TRAINER.md)."""
    leaked = sorted(k for k in os.environ if k.startswith("AULAC_") and k != "AULAC_PLAN")
    assert not leaked, "the worker's own variables reached the plug-in: %s" % leaked


def oneshot(plan_path):
    no_worker_settings()
    assert os.environ.get("AULAC_PLAN") == plan_path, "AULAC_PLAN is not the plan's path"
    with open(plan_path) as f:
        plan = json.load(f)
    print("fake trainer: round %d, %d steps" % (plan["round"], plan["training"]["steps"]))
    save_inputs(plan_path, plan)
    train(plan, mode_for(plan))


def serve():
    assert "AULAC_PLAN" not in os.environ, "AULAC_PLAN is set in serve mode"
    no_worker_settings()
    log = os.environ.get("FAKE_TRAINER_LOG")
    if log:
        with open(log, "a") as f:
            f.write("start\n")
    stop = threading.Event()
    helper = None
    for line in sys.stdin:
        stop.set()
        if helper:
            helper.join()
            helper = None
        stop = threading.Event()
        msg = json.loads(line)
        if msg.get("type") == "exit":
            return
        assert msg.get("type") == "round" and msg.get("aulac_trainer") == 1, msg
        with open(msg["plan"]) as f:
            plan = json.load(f)
        r = plan["round"]
        save_inputs(msg["plan"], plan)
        mode = mode_for(plan)
        steps = plan["training"]["steps"]
        print(json.dumps({"type": "progress", "round": r, "step": 1, "steps": steps,
                          "loss": 3.25}), flush=True)
        if mode == "garbage":
            print("Loading checkpoint shards: 100%", flush=True)
            continue
        if mode == "wrong_round":
            train(plan, "good_model")
            print(json.dumps({"type": "done", "round": r + 1}), flush=True)
            continue
        if mode == "long_line":
            print(json.dumps({"type": "progress", "round": r, "note": "x" * 70000}), flush=True)
            continue
        if mode == "error":
            print(json.dumps({"type": "error", "round": r, "message": "CUDA out of memory"}),
                  flush=True)
            continue
        train(plan, "good_model" if mode in ("truncating", "fifo_race", "stale_progress")
              else mode)
        if mode == "truncating":
            helper = threading.Thread(target=truncator, args=(plan["output"]["model"], stop))
        elif mode == "fifo_race":
            helper = threading.Thread(target=fifo_swapper,
                                      args=(plan["output"]["model"], plan["state_dir"], stop))
        if helper:
            helper.start()
            time.sleep(0.05)   # the helper is at work when the worker reads
        print(json.dumps({"type": "done", "round": r}), flush=True)
        if mode == "stale_progress":
            time.sleep(0.3)   # after the worker took the "done"
            print(json.dumps({"type": "progress", "round": r, "step": 2, "steps": steps,
                              "loss": 3.0}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        oneshot(sys.argv[1])
    else:
        serve()
