#!/usr/bin/env python3
"""torch_causal_lm: an aulac plug-in trainer (worker/TRAINER.md) in PyTorch + transformers.

Trains any Hugging Face causal LM a round at a time:
  family external  AutoModelForCausalLM.from_config(in/config.json) (Llama, Mistral,
                   Qwen2, ... whatever the installed transformers knows); tokens from
                   in/tokenizer.json (the `tokenizers` library)
  family gpt2      GPT2LMHeadModel of the plan's model.gpt2 sizes (GELU tanh, LayerNorm
                   eps 1e-5, tied LM head, no dropout: model/gpt2.h); the input's names
                   are GPT2Model's ("wte.weight", "h.0.attn.c_attn.weight", ...: the
                   "transformer." prefix is added and the output keeps the input's
                   names); tokens are bytes unless the plan gives a tokenizer

Usage (site.yaml `trainer.command`; the worker appends the plan in oneshot mode):

  python3 torch_causal_lm.py [options] PLAN.json     oneshot: one round, then exit
                                                      (AULAC_PLAN=PLAN.json works too)
  python3 torch_causal_lm.py [options]                serve: rounds as JSON lines on
                                                      stdin until {"type": "exit"}

In serve mode the model, the AdamW state, the tokenized corpus and the CUDA context stay
in memory across rounds (a new experiment id starts them afresh). In oneshot mode the
AdamW state is kept in the plan's state_dir (optimizer.pt) between rounds.

Training (TRAINER.md): the plan's steps of AdamW (beta1, beta2, eps; decoupled weight
decay on tensors of 2 or more dimensions only; global-norm clipping at grad_clip, 0 =
off); the learning rate of the k-th optimizer step of the experiment is
lr (k+1)/warmup_steps while k < warmup_steps, then lr, with k starting at the plan's
optimizer_step. Each step trains on batch_size windows of seq_len+1 tokens at uniformly
random offsets of the member's training stream, drawn from xoshiro256** seeded with the
plan's seed (the built-in trainer's sampler, worker/data.h: with bytes as tokens, the
same windows as the built-in trainer). The loss is the mean next-token cross-entropy over
all batch_size x seq_len positions.

Data: the files of the plan's data section, concatenated, cut into 4096-byte chunks;
chunk i is held out exactly when floor((i+1) f + 1/2) > floor(i f + 1/2) (f = the
validation fraction, in parts per million, as worker/data.c). With a tokenizer, every
run of consecutive training chunks (and of held-out chunks) is decoded as UTF-8 (invalid
bytes replaced) and tokenized on its own, and the runs' tokens are concatenated.
metrics.json: tokens = steps x batch_size x seq_len, train_loss the mean of the round's
step losses, validation_loss the BASE model's mean loss over the first
data.validation_windows non-overlapping seq_len windows of the held-out tokens (null
when there are fewer than 2 held-out tokens).

Precision: fp32 weights and AdamW state always. On CUDA, forward and backward run under
bf16 autocast (--precision fp32 turns it off); on the CPU everything is fp32.

Output (--write auto): a model whose config says dtype bfloat16 (or float16) writes
out/delta.safetensors (trained - base) in that dtype: rounding the small difference
keeps the update's precision, where rounding the trained weights would lose most of a
few steps' change. A float32 model writes out/model.safetensors in F32. Files are
written to a temporary name and renamed.

Several GPUs of the member (one node): launch with torchrun, e.g.
  command: [torchrun, --standalone, --nproc_per_node=8, /opt/aulac/plugins/torch_causal_lm.py]
Every rank builds the same model; the plan's batch_size windows are drawn once (same
seed) and split evenly across ranks (batch_size must be a multiple of the world size),
and DistributedDataParallel averages the gradients, so the result is the
single-process one up to the order of floating-point sums (checked on CPU with gloo:
torchrun --nproc_per_node=2 gives the same losses, parameters within 3e-4). Only rank 0
reads stdin, writes stdout and writes the outputs.
Backend: NCCL on CUDA, gloo on CPU.

stdout carries only the protocol's JSON lines (serve) and nothing else: everything a
library prints goes to stderr, which the worker logs.
"""
import argparse
import json
import math
import os
import sys
import time

# the protocol pieces both reference plug-ins share, next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aulac_trainer import CHUNK, PROTOCOL, Rng, read_message, serve_rounds, \
    validation_before, validation_ppm  # noqa: E402,F401


def log(msg):
    sys.stderr.write("torch_causal_lm: %s\n" % msg)
    sys.stderr.flush()


class RoundError(Exception):
    """A round that cannot be trained: the message says why (sent to the worker)."""


# ---- the member's corpus ------------------------------------------------------------

def split_runs(stream, fraction):
    """Runs of consecutive chunks, (is_validation, bytes), in stream order (worker/data.c)."""
    ppm = validation_ppm(fraction)
    n_chunks = (len(stream) + CHUNK - 1) // CHUNK
    runs = []
    for i in range(n_chunks):
        is_val = validation_before(i + 1, ppm) > validation_before(i, ppm)
        piece = stream[i * CHUNK:(i + 1) * CHUNK]
        if runs and runs[-1][0] == is_val:
            runs[-1][1].append(piece)
        else:
            runs.append((is_val, [piece]))
    return [(v, b"".join(p)) for v, p in runs]


class Corpus:
    """The training and held-out token streams of the plan's data (int64 tensors)."""

    def __init__(self, torch, data, tokenizer_path, vocab_size):
        files = data.get("files")
        d = data.get("dir")
        if not isinstance(d, str) or not isinstance(files, list) or not files:
            raise RoundError("plan.json: data.dir and data.files (a non-empty list) are required")
        parts = []
        for f in files:
            p = os.path.join(d, f)
            try:
                with open(p, "rb") as fh:
                    parts.append(fh.read())
            except OSError as e:
                raise RoundError("corpus file %s: %s" % (p, e.strerror))
        stream = b"".join(parts)
        fraction = float(data.get("validation_fraction", 0.0))
        runs = split_runs(stream, fraction)
        self.bytes = len(stream)
        if tokenizer_path:
            from tokenizers import Tokenizer
            tok = Tokenizer.from_file(tokenizer_path)
            texts = [b.decode("utf-8", errors="replace") for _, b in runs]
            encs = tok.encode_batch(texts, add_special_tokens=False) if texts else []
            train, val = [], []
            for (is_val, _), e in zip(runs, encs):
                (val if is_val else train).extend(e.ids)
            self.train = torch.tensor(train, dtype=torch.long)
            self.val = torch.tensor(val, dtype=torch.long)
        else:
            import numpy as np
            tr = b"".join(b for v, b in runs if not v)
            va = b"".join(b for v, b in runs if v)
            self.train = torch.from_numpy(np.frombuffer(tr, dtype=np.uint8).astype(np.int64))
            self.val = torch.from_numpy(np.frombuffer(va, dtype=np.uint8).astype(np.int64))
        if len(self.train) and int(self.train.max()) >= vocab_size:
            raise RoundError("the tokenizer gives token id %d; the model's vocabulary has %d"
                             % (int(self.train.max()), vocab_size))

    def batch(self, rng, B, T):
        """B windows of T+1 training tokens (the built-in sampler's draws), [B, T+1]."""
        n = len(self.train)
        if n < T + 1:
            raise RoundError("the corpus has %d training tokens; one window needs %d "
                             "(seq_len %d + 1)" % (n, T + 1, T))
        starts = [rng.below(n - (T + 1) + 1) for _ in range(B)]
        import torch
        idx = torch.tensor(starts, dtype=torch.long)[:, None] + torch.arange(T + 1)[None, :]
        return self.train[idx]


# ---- the trainer ----------------------------------------------------------------------

class Trainer:
    def __init__(self, args):
        import torch
        self.torch = torch
        self.args = args
        if args.threads:
            torch.set_num_threads(args.threads)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want = args.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want == "cuda":
            if not torch.cuda.is_available():
                raise SystemExit("torch_causal_lm: --device cuda, but torch sees no CUDA device")
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        self.bf16 = self.device.type == "cuda" and args.precision in ("auto", "bf16")
        if self.world > 1:
            import torch.distributed as dist
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.dist = dist
        else:
            self.dist = None
        self.key = None          # (experiment, model signature) of the live model
        self.model = None
        self.opt = None
        self.corpus = None
        self.corpus_key = None
        log("rank %d/%d on %s%s (torch %s)" % (self.rank, self.world, self.device,
            ", bf16 autocast" if self.bf16 else ", fp32", torch.__version__))

    # -- model ---------------------------------------------------------------------------

    def _build(self, plan):
        """A new model and AdamW for the plan; self changes only when everything was
        built (a plan that cannot be built leaves the live model and its state as they
        were)."""
        torch = self.torch
        m = plan["model"]
        fam = m.get("family")
        if fam == "gpt2":
            from transformers import GPT2Config, GPT2LMHeadModel
            g = m.get("gpt2") or {}
            try:
                cfg = GPT2Config(vocab_size=int(g["vocab_size"]), n_positions=int(g["n_positions"]),
                                 n_embd=int(g["n_embd"]), n_layer=int(g["n_layer"]),
                                 n_head=int(g["n_head"]), activation_function="gelu_new",
                                 layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0,
                                 attn_pdrop=0.0, tie_word_embeddings=True,
                                 bos_token_id=None, eos_token_id=None)
            except (KeyError, TypeError, ValueError):
                raise RoundError("plan.json: model.gpt2 needs vocab_size, n_positions, n_embd, "
                                 "n_layer and n_head")
            model = GPT2LMHeadModel(cfg)
            prefix = "transformer."
            vocab = cfg.vocab_size
            out_dtype = "F32"
        elif fam == "external":
            from transformers import AutoConfig, AutoModelForCausalLM
            path = m.get("config")
            if not path:
                raise RoundError("family external without a config.json: this plug-in builds "
                                 "the model from its config (pin one in the policy)")
            try:
                cfg = AutoConfig.from_pretrained(path)
            except Exception as e:   # transformers raises many kinds
                raise RoundError("config.json %s: %s" % (path, e))
            # the config's own dtype (from_config below replaces it with float32)
            dt = str(getattr(cfg, "dtype", None) or "")
            out_dtype = "BF16" if "bfloat16" in dt else "F16" if "float16" in dt else "F32"
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
            prefix = ""
            vocab = int(cfg.vocab_size)
        else:
            raise RoundError("plan.json: model.family %r is neither gpt2 nor external" % fam)
        model.to(device=self.device, dtype=torch.float32)
        model.train()
        params = dict(model.named_parameters(remove_duplicate=False))
        # AdamW: decay on tensors of two or more dimensions only (tied tensors once)
        decay, other, seen = [], [], set()
        for p in model.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            (decay if p.dim() >= 2 else other).append(p)
        t = plan["training"]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": float(t["weight_decay"])},
             {"params": other, "weight_decay": 0.0}],
            lr=float(t["lr"]), betas=(float(t["beta1"]), float(t["beta2"])), eps=float(t["eps"]))
        ddp = None
        if self.dist:
            from torch.nn.parallel import DistributedDataParallel
            ddp = DistributedDataParallel(
                model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)
        self.vocab, self.prefix, self.model_dtype = vocab, prefix, out_dtype
        self.model, self.params, self.opt, self.ddp = model, params, opt, ddp
        self.corpus_key = None          # the vocabulary may differ

    def _bind(self, names):
        """Maps every tensor name of the input file to a parameter; each parameter (tied
        ones count once) must be covered."""
        binding = {}
        for n in names:
            p = self.params.get(n)
            if p is None and self.prefix and not n.startswith(self.prefix):
                p = self.params.get(self.prefix + n)
            if p is None:
                raise RoundError("model.safetensors has tensor %s, which the model has not" % n)
            binding[n] = p
        covered = {id(p) for p in binding.values()}
        for n, p in self.params.items():
            if id(p) not in covered:
                raise RoundError("the model's parameter %s is not in model.safetensors" % n)
        return binding

    def _load(self, path):
        torch = self.torch
        from safetensors import safe_open
        base = {}
        try:
            with safe_open(path, framework="pt", device="cpu") as f:
                names = list(f.keys())
                binding = self._bind(names)
                for n in names:
                    t = f.get_tensor(n)
                    p = binding[n]
                    if tuple(t.shape) != tuple(p.shape):
                        raise RoundError("model.safetensors: tensor %s has shape %s; the model's "
                                         "is %s" % (n, list(t.shape), list(p.shape)))
                    base[n] = t.to(torch.float32)
        except RoundError:
            raise
        except Exception as e:
            raise RoundError("model.safetensors %s: %s" % (path, e))
        with torch.no_grad():
            for n, t in base.items():
                binding[n].copy_(t.to(self.device))
        self.binding = binding
        return base

    # -- state -------------------------------------------------------------------------

    def _state_path(self, plan):
        sd = plan.get("state_dir")
        return os.path.join(sd, "optimizer.pt") if sd else None

    def _save_state(self, plan):
        p = self._state_path(plan)
        if not p or self.rank != 0:
            return
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = p + ".tmp"
        self.torch.save({"key": list(self.key), "optimizer": self.opt.state_dict()}, tmp)
        os.replace(tmp, p)

    def _load_state(self, plan):
        p = self._state_path(plan)
        if not p or not os.path.exists(p):
            return False
        try:
            st = self.torch.load(p, map_location=self.device, weights_only=True)
            if tuple(st.get("key", ())) != self.key:
                return False
            self.opt.load_state_dict(st["optimizer"])
            return True
        except Exception as e:
            log("ignoring the optimizer state %s (%s); starting with zero moments" % (p, e))
            return False

    # -- one round ---------------------------------------------------------------------

    def _forward_loss(self, model, x, y):
        torch = self.torch
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                            enabled=self.bf16):
            logits = model(input_ids=x).logits
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    def _validation_loss(self, T, B, max_windows):
        torch = self.torch
        val = self.corpus.val
        n = len(val)
        if n < 2:
            return None
        if n - 1 < T:
            T = n - 1
        windows = (n - 1) // T
        if max_windows and max_windows > 0:
            windows = min(windows, max_windows)
        model = self.model
        model.eval()
        total = 0.0
        with torch.no_grad():
            for w in range(0, windows, B):
                rows = min(B, windows - w)
                idx = (torch.arange(w, w + rows)[:, None] * T + torch.arange(T + 1)[None, :])
                tok = val[idx].to(self.device)
                loss = self._forward_loss(model, tok[:, :-1], tok[:, 1:])
                total += float(loss) * rows
        model.train()
        return total / windows

    def round(self, plan, progress):
        torch = self.torch
        t = plan["training"]
        m = plan["model"]
        steps = int(t["steps"])
        B = int(t["batch_size"])
        T = int(t["seq_len"])
        if steps < 1 or B < 1 or T < 1:
            raise RoundError("plan.json: training.steps, batch_size and seq_len must be >= 1")
        if B % self.world:
            raise RoundError("batch_size %d is not a multiple of the %d ranks" % (B, self.world))
        sig = json.dumps({"family": m.get("family"), "gpt2": m.get("gpt2"),
                          "config": _read_or_none(m.get("config")) if m.get("family") != "gpt2" else None,
                          "training": {k: t.get(k) for k in ("lr", "weight_decay", "beta1", "beta2", "eps")}},
                         sort_keys=True)
        key = (str(plan.get("experiment")), sig)
        if key != self.key:
            if self.key is not None and key[0] != self.key[0]:
                # another experiment: free the old model before building the new one
                self.key = self.model = self.opt = self.ddp = None
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            self._build(plan)
            self.key = key
            if self._load_state(plan):
                log("experiment %s: AdamW state from %s" % (key[0], self._state_path(plan)))
            else:
                log("experiment %s: new model and AdamW state" % key[0])
        base = self._load(m["input"])

        tok_path = m.get("tokenizer")
        if m.get("family") == "external" and not tok_path:
            raise RoundError("family external without a tokenizer.json: this plug-in needs the "
                             "policy's pinned tokenizer")
        data = plan.get("data") or {}
        ckey = json.dumps([data.get("dir"), data.get("files"), data.get("validation_fraction"),
                           _file_id(tok_path) if tok_path else None, self.vocab])
        if ckey != self.corpus_key:
            t0 = time.time()
            self.corpus = Corpus(torch, data, tok_path, self.vocab)
            self.corpus_key = ckey
            log("corpus: %d bytes -> %d training, %d held-out %s (%.1f s)" % (
                self.corpus.bytes, len(self.corpus.train), len(self.corpus.val),
                "tokens" if tok_path else "bytes", time.time() - t0))

        val_loss = None
        if self.rank == 0:
            val_loss = self._validation_loss(T, B, int(data.get("validation_windows") or 0))

        lr_max = float(t["lr"])
        warm = int(t.get("warmup_steps") or 0)
        clip = float(t.get("grad_clip") or 0.0)
        k0 = int(t.get("optimizer_step") or 0)
        rng = Rng(int(plan["seed"]))
        share = B // self.world
        net = self.ddp or self.model
        losses = []
        t0 = time.time()
        for s in range(steps):
            k = k0 + s
            lr = lr_max * (k + 1) / warm if k < warm else lr_max
            for g in self.opt.param_groups:
                g["lr"] = lr
            tok = self.corpus.batch(rng, B, T)[self.rank * share:(self.rank + 1) * share]
            tok = tok.to(self.device, non_blocking=True)
            loss = self._forward_loss(net, tok[:, :-1], tok[:, 1:])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            # the global gradient norm (the same on every rank: DDP averaged the
            # gradients); a NaN or infinite one stops the round before AdamW is touched
            norm = float(torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), clip if clip > 0 else float("inf")))
            if not math.isfinite(norm):
                raise RoundError("step %d: the gradient norm is %s (training loss %s)"
                                 % (s + 1, norm, float(loss)))
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            lv = loss.detach()
            if self.dist:
                self.dist.all_reduce(lv)
                lv = lv / self.world
            lv = float(lv)
            losses.append(lv)
            progress(s + 1, steps, lv)
        secs = time.time() - t0
        if self.rank == 0:
            wrote = self._write(plan, base, steps, B, T, losses, val_loss)
            if self.args.verbose:
                log("round %s: %d steps in %.1f s, loss %.4f -> %.4f, base validation %s; "
                    "wrote %s" % (plan.get("round"), steps, secs, losses[0], losses[-1],
                                  "%.4f" % val_loss if val_loss is not None else "-", wrote))
        if plan.get("state_dir") and self.args.mode == "oneshot":
            self._save_state(plan)

    def _write(self, plan, base, steps, B, T, losses, val_loss):
        torch = self.torch
        from safetensors.torch import save_file
        out = plan["output"]
        write = self.args.write
        dtype = {"auto": self.model_dtype, "f32": "F32", "bf16": "BF16", "f16": "F16"}[self.args.dtype]
        if write == "auto":
            write = "model" if dtype == "F32" else "delta"
        tdt = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}[dtype]
        tensors = {}
        with torch.no_grad():
            for n, b in base.items():
                v = self.binding[n].detach().to("cpu", torch.float32)
                if write == "delta":
                    v = v - b
                tensors[n] = v.to(tdt).contiguous()
        os.makedirs(out["dir"], exist_ok=True)
        target = out["model"] if write == "model" else out["delta"]
        tmp = target + ".tmp"
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, target)
        metrics = {"tokens": steps * B * T, "steps": steps,
                   "train_loss": sum(losses) / len(losses),
                   "validation_loss": val_loss}
        tmp = out["metrics"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(metrics, f)
            f.write("\n")
        os.replace(tmp, out["metrics"])
        return "%s (%s)" % (os.path.basename(target), dtype)


def _read_or_none(path):
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def _file_id(path):
    import hashlib
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def read_plan(path):
    try:
        with open(path, "rb") as f:
            plan = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise RoundError("plan %s: %s" % (path, e))
    if not isinstance(plan, dict) or plan.get("aulac_trainer") != PROTOCOL:
        raise RoundError("plan %s: not an aulac_trainer %d plan" % (path, PROTOCOL))
    for k in ("model", "output", "training", "data", "seed"):
        if k not in plan:
            raise RoundError("plan %s: %s is missing" % (path, k))
    return plan


# ---- modes ----------------------------------------------------------------------------

def protocol_stdout():
    """The real stdout for protocol lines; fd 1 becomes stderr, so that nothing a library
    prints (Python or C) can corrupt the protocol."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def run_oneshot(args, plan_path):
    tr = Trainer(args)
    try:
        plan = read_plan(plan_path)
        last = [0.0]

        def progress(step, steps, loss):
            if args.verbose and (time.time() - last[0] > 2 or step == steps):
                last[0] = time.time()
                log("step %d/%d loss %.4f" % (step, steps, loss))
        tr.round(plan, progress)
    except RoundError as e:
        log(str(e))
        return 1
    finally:
        if tr.dist:
            tr.dist.destroy_process_group()
    return 0


def run_serve(args):
    out = protocol_stdout() if int(os.environ.get("RANK", "0")) == 0 else None
    tr = Trainer(args)

    def send(obj):
        if out:
            out.write(json.dumps(obj) + "\n")
            out.flush()

    def next_message():
        msg = read_message(sys.stdin, log) if tr.rank == 0 else None
        if tr.dist:
            box = [msg]
            tr.dist.broadcast_object_list(box, src=0)
            msg = box[0]
        return msg

    serve_rounds(next_message, send, read_plan, tr.round, RoundError, log)
    if tr.dist:
        tr.dist.destroy_process_group()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="torch_causal_lm.py", description=__doc__,
        epilog="The plug-in contract: worker/TRAINER.md. Without PLAN and without AULAC_PLAN "
               "it serves rounds on stdin.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("plan", nargs="?", help="plan.json (oneshot mode)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto: CUDA when torch sees a device (default)")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="auto/bf16: bf16 autocast on CUDA; the CPU always runs fp32")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--write", choices=["auto", "model", "delta"], default="auto",
                    help="output file: auto = delta for a bf16/f16 model, model for f32")
    ap.add_argument("--dtype", choices=["auto", "f32", "bf16", "f16"], default="auto",
                    help="output dtype: auto = the model's (gpt2: f32)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every round's losses")
    args = ap.parse_args(argv)
    plan = args.plan or os.environ.get("AULAC_PLAN")
    args.mode = "oneshot" if plan else "serve"
    if plan:
        return run_oneshot(args, plan)
    return run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
