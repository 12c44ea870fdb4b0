#!/usr/bin/env python3
"""numpy_gpt2.py: aulac's reference plug-in trainer (worker/TRAINER.md), in NumPy.

It trains the built-in GPT-2 (model/gpt2.h) exactly as the worker's C trainer does:
learned positions, pre-LayerNorm blocks (eps 1e-5), GELU (tanh approximation), an LM
head tied to the token embedding, linear weights stored [in, out]; fp32; byte tokens;
AdamW with the linear warm-up of TRAINER.md, decoupled weight decay on tensors of two
or more dimensions, global-norm clipping. The corpus split (4096-byte chunks) and the
random windows (xoshiro256** from the plan's seed) are worker/data.h's, so given the
same base model and plan it draws the same batches as the built-in trainer and its
result agrees with it to float rounding (tests/plugins/check_numpy_gpt2.py checks it).

Only `model.family: gpt2` without a tokenizer: anything else is refused with a message
(and exit status 2 in oneshot mode; an "error" line in serve mode).

Needs NumPy only (Debian: python3-numpy, which /usr/bin/python3 sees; a python3 of
pyenv or a venv earlier on PATH may not).

  numpy_gpt2.py PLAN.json        oneshot: train one round, write the outputs, exit 0
  numpy_gpt2.py                  oneshot with the plan named by $AULAC_PLAN; without
                                 AULAC_PLAN: serve (as --serve)
  numpy_gpt2.py --serve          serve: rounds as JSON lines on stdin (TRAINER.md)

site.yaml (run it with Debian's python3, which has python3-numpy):
  trainer: {kind: command, command: [/usr/bin/python3, /path/to/numpy_gpt2.py]}
  trainer: {kind: command, mode: serve, command: [/usr/bin/python3, /path/to/numpy_gpt2.py]}

The AdamW moments persist between rounds: in oneshot mode in <state_dir>/adamw.safetensors
(written atomically after the round's outputs), in serve mode in memory.
"""

import json
import math
import os
import sys
import time

try:
    import numpy as np
except ImportError:  # pragma: no cover - what a member without numpy sees
    sys.stderr.write("numpy_gpt2: NumPy is not installed for %s (Debian: apt-get install "
                     "python3-numpy, then run the plug-in with /usr/bin/python3)\n"
                     % sys.executable)
    sys.exit(3)

# the protocol pieces both reference plug-ins share, next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aulac_trainer import CHUNK, PROTOCOL, Rng, read_message, serve_rounds, \
    validation_before, validation_ppm  # noqa: E402,F401

LN_EPS = np.float32(1e-5)
GELU_SCALE = np.float32(0.7978845608028654)  # sqrt(2/pi)
GELU_COEF = np.float32(0.044715)
STATE_FILE = "adamw.safetensors"
STATE_FORMAT = "aulac-numpy-gpt2-adamw-v1"


class Refusal(Exception):
    """A plan or input this plug-in does not train: the round fails with this message."""


def log(msg):
    sys.stderr.write("numpy_gpt2: %s\n" % msg)
    sys.stderr.flush()


# ---- safetensors (https://github.com/huggingface/safetensors), NumPy only -----------

_DTYPES = {"F32": (np.dtype("<f4"), 4), "F16": (np.dtype("<f2"), 2), "BF16": (np.dtype("<u2"), 2)}


def read_safetensors(path):
    """Returns ({name: float32 ndarray}, metadata dict). F32, F16 and BF16 are accepted
    (converted exactly to fp32); the header and offsets are checked."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise Refusal("%s: %d bytes, not a safetensors file" % (path, len(raw)))
    n = int.from_bytes(raw[:8], "little")
    if n < 2 or 8 + n > len(raw):
        raise Refusal("%s: header length %d does not fit in %d bytes" % (path, n, len(raw)))
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Refusal("%s: header is not JSON: %s" % (path, e))
    if not isinstance(header, dict):
        raise Refusal("%s: header is not a JSON object" % path)
    data = memoryview(raw)[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, d in header.items():
        try:
            dtype, size = _DTYPES[d["dtype"]]
        except KeyError:
            raise Refusal("%s: tensor %s has dtype %s; F32, F16 or BF16 expected"
                          % (path, name, d.get("dtype") if isinstance(d, dict) else d))
        shape = [int(x) for x in d["shape"]]
        b, e = (int(x) for x in d["data_offsets"])
        numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != numel * size:
            raise Refusal("%s: tensor %s: offsets [%d, %d) do not hold shape %s of %s in %d "
                          "data bytes" % (path, name, b, e, shape, d["dtype"], len(data)))
        a = np.frombuffer(data[b:e], dtype=dtype)
        if d["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        else:
            a = a.astype(np.float32)
        out[name] = a.reshape(shape)
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes [(name, ndarray)] as F32 in the given order, atomically (tmp, fsync,
    rename). The header is padded with spaces to a multiple of 8."""
    header, off = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    arrays = []
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        arrays.append(a)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for a in arrays:
            f.write(a.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path, obj):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- the model: names and shapes of model/gpt2.h -------------------------------------

class Config:
    def __init__(self, g):
        try:
            self.V = int(g["vocab_size"])
            self.P = int(g["n_positions"])
            self.L = int(g["n_layer"])
            self.H = int(g["n_head"])
            self.C = int(g["n_embd"])
        except (KeyError, TypeError, ValueError):
            raise Refusal("plan.json model.gpt2 needs vocab_size, n_positions, n_layer, "
                          "n_head and n_embd")
        if min(self.V, self.P, self.L, self.H, self.C) < 1 or self.C % self.H:
            raise Refusal("model.gpt2 sizes are invalid (all positive, n_embd a multiple "
                          "of n_head)")
        if self.V < 256:
            raise Refusal("byte tokens need vocab_size >= 256; the plan's is %d" % self.V)


def tensor_specs(cfg):
    """[(name, shape)] in gpt2.h's canonical order."""
    C, L = cfg.C, cfg.L
    s = [("wte.weight", (cfg.V, C)), ("wpe.weight", (cfg.P, C))]
    for i in range(L):
        p = "h.%d." % i
        s += [(p + "ln_1.weight", (C,)), (p + "ln_1.bias", (C,)),
              (p + "attn.c_attn.weight", (C, 3 * C)), (p + "attn.c_attn.bias", (3 * C,)),
              (p + "attn.c_proj.weight", (C, C)), (p + "attn.c_proj.bias", (C,)),
              (p + "ln_2.weight", (C,)), (p + "ln_2.bias", (C,)),
              (p + "mlp.c_fc.weight", (C, 4 * C)), (p + "mlp.c_fc.bias", (4 * C,)),
              (p + "mlp.c_proj.weight", (4 * C, C)), (p + "mlp.c_proj.bias", (C,))]
    s += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return s


def load_params(path, cfg):
    """The base model's tensors by name, checked against the config."""
    t, _ = read_safetensors(path)
    specs = tensor_specs(cfg)
    params = {}
    for name, shape in specs:
        a = t.pop(name, None)
        if a is None:
            a = t.pop("transformer." + name, None)
        if a is None:
            raise Refusal("%s: tensor %s is missing" % (path, name))
        if tuple(a.shape) != shape:
            raise Refusal("%s: tensor %s has shape %s; the model's is %s"
                          % (path, name, list(a.shape), list(shape)))
        params[name] = np.array(a, dtype=np.float32, order="C")
    if t:
        raise Refusal("%s: tensor %s is not in the model" % (path, sorted(t)[0]))
    return params


# ---- forward and backward -------------------------------------------------------------

def _layernorm(x, w, b):
    mu = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    d = x - mu
    var = (d * d).mean(axis=-1, keepdims=True, dtype=np.float32)
    rstd = np.float32(1.0) / np.sqrt(var + LN_EPS)
    xhat = d * rstd
    return xhat * w + b, (xhat, rstd)


def _layernorm_backward(dy, w, cache):
    xhat, rstd = cache
    C = xhat.shape[-1]
    dn = dy * w
    dw = (dy * xhat).reshape(-1, C).sum(axis=0)
    db = dy.reshape(-1, C).sum(axis=0)
    m1 = dn.mean(axis=-1, keepdims=True)
    m2 = (dn * xhat).mean(axis=-1, keepdims=True)
    dx = (dn - m1 - xhat * m2) * rstd
    return dx, dw, db


def _gelu(x):
    th = np.tanh(GELU_SCALE * (x + GELU_COEF * x * x * x))
    return np.float32(0.5) * x * (np.float32(1.0) + th), th


def _gelu_backward(dy, x, th):
    one = np.float32(1.0)
    g = (np.float32(0.5) * (one + th) + np.float32(0.5) * x * (one - th * th) * GELU_SCALE *
         (one + np.float32(3.0) * GELU_COEF * x * x))
    return dy * g


def forward(p, cfg, inputs, targets=None, need_cache=False):
    """inputs, targets [B, T] int. Returns (mean loss as float or None, logits, cache)."""
    B, T = inputs.shape
    C, H = cfg.C, cfg.H
    hs = C // H
    scale = np.float32(1.0 / math.sqrt(hs))
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    x = p["wte.weight"][inputs] + p["wpe.weight"][:T]
    caches = []
    for i in range(cfg.L):
        q_ = "h.%d." % i
        ln1, c1 = _layernorm(x, p[q_ + "ln_1.weight"], p[q_ + "ln_1.bias"])
        qkv = ln1 @ p[q_ + "attn.c_attn.weight"] + p[q_ + "attn.c_attn.bias"]
        qkv4 = qkv.reshape(B, T, 3, H, hs).transpose(2, 0, 3, 1, 4)  # [3, B, H, T, hs]
        q, k, v = qkv4[0], qkv4[1], qkv4[2]
        s = (q @ k.transpose(0, 1, 3, 2)) * scale
        s[..., mask] = -np.inf
        s -= s.max(axis=-1, keepdims=True)
        P = np.exp(s)
        P /= P.sum(axis=-1, keepdims=True)
        y = (P @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + (y @ p[q_ + "attn.c_proj.weight"] + p[q_ + "attn.c_proj.bias"])
        ln2, c2 = _layernorm(x, p[q_ + "ln_2.weight"], p[q_ + "ln_2.bias"])
        h = ln2 @ p[q_ + "mlp.c_fc.weight"] + p[q_ + "mlp.c_fc.bias"]
        g, th = _gelu(h)
        x = x + (g @ p[q_ + "mlp.c_proj.weight"] + p[q_ + "mlp.c_proj.bias"])
        if need_cache:
            caches.append((ln1, c1, q, k, v, P, y, ln2, c2, h, g, th))
    xf, cf = _layernorm(x, p["ln_f.weight"], p["ln_f.bias"])
    logits = xf @ p["wte.weight"].T  # [B, T, V]
    loss = None
    probs = None
    if targets is not None:
        mx = logits.max(axis=-1, keepdims=True)
        e = np.exp(logits - mx)
        se = e.sum(axis=-1, keepdims=True)
        lse = (mx + np.log(se))[..., 0]
        tl = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        loss = float(np.mean((lse - tl).astype(np.float64)))
        if need_cache:
            probs = e / se
    cache = (inputs, targets, caches, xf, cf, probs) if need_cache else None
    return loss, logits, cache


def backward(p, cfg, cache):
    """Gradients of the mean loss of the forward whose cache is given, by name."""
    inputs, targets, caches, xf, cf, probs = cache
    B, T = inputs.shape
    C, H = cfg.C, cfg.H
    hs = C // H
    scale = np.float32(1.0 / math.sqrt(hs))
    g = {}
    dlogits = probs
    bi, ti = np.meshgrid(np.arange(B), np.arange(T), indexing="ij")
    dlogits[bi, ti, targets] -= np.float32(1.0)
    dlogits *= np.float32(1.0 / (B * T))
    wte = p["wte.weight"]
    g["wte.weight"] = dlogits.reshape(-1, cfg.V).T @ xf.reshape(-1, C)
    dxf = dlogits @ wte
    dx, g["ln_f.weight"], g["ln_f.bias"] = _layernorm_backward(dxf, p["ln_f.weight"], cf)
    for i in reversed(range(cfg.L)):
        q_ = "h.%d." % i
        ln1, c1, q, k, v, P, y, ln2, c2, h, gl, th = caches[i]
        # x = x + gelu(ln2 Wfc + bfc) Wp + bp
        W = p[q_ + "mlp.c_proj.weight"]
        g[q_ + "mlp.c_proj.weight"] = gl.reshape(-1, 4 * C).T @ dx.reshape(-1, C)
        g[q_ + "mlp.c_proj.bias"] = dx.reshape(-1, C).sum(axis=0)
        dh = _gelu_backward(dx @ W.T, h, th)
        g[q_ + "mlp.c_fc.weight"] = ln2.reshape(-1, C).T @ dh.reshape(-1, 4 * C)
        g[q_ + "mlp.c_fc.bias"] = dh.reshape(-1, 4 * C).sum(axis=0)
        dln2 = dh @ p[q_ + "mlp.c_fc.weight"].T
        d, g[q_ + "ln_2.weight"], g[q_ + "ln_2.bias"] = _layernorm_backward(
            dln2, p[q_ + "ln_2.weight"], c2)
        dx = dx + d
        # x = x + attn(ln1) Wo + bo
        g[q_ + "attn.c_proj.weight"] = y.reshape(-1, C).T @ dx.reshape(-1, C)
        g[q_ + "attn.c_proj.bias"] = dx.reshape(-1, C).sum(axis=0)
        dy = (dx @ p[q_ + "attn.c_proj.weight"].T).reshape(B, T, H, hs).transpose(0, 2, 1, 3)
        dP = dy @ v.transpose(0, 1, 3, 2)
        dv = P.transpose(0, 1, 3, 2) @ dy
        dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
        dq = (dS @ k) * scale
        dk = (dS.transpose(0, 1, 3, 2) @ q) * scale
        dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * C)
        g[q_ + "attn.c_attn.weight"] = ln1.reshape(-1, C).T @ dqkv.reshape(-1, 3 * C)
        g[q_ + "attn.c_attn.bias"] = dqkv.reshape(-1, 3 * C).sum(axis=0)
        dln1 = dqkv @ p[q_ + "attn.c_attn.weight"].T
        d, g[q_ + "ln_1.weight"], g[q_ + "ln_1.bias"] = _layernorm_backward(
            dln1, p[q_ + "ln_1.weight"], c1)
        dx = dx + d
    # embeddings: the tied head's part is already in g["wte.weight"]
    np.add.at(g["wte.weight"], inputs.reshape(-1), dx.reshape(-1, C))
    dwpe = np.zeros_like(p["wpe.weight"])
    dwpe[:T] = dx.sum(axis=0)
    g["wpe.weight"] = dwpe
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in g.items()}


# ---- AdamW (model/adamw.h, the same float32 operations in the same order) -----------

class AdamW:
    def __init__(self, params):
        self.step = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def matches(self, params):
        return (set(self.m) == set(params) and
                all(self.m[k].shape == params[k].shape for k in params))

    def update(self, params, grads, lr, hp):
        """Clips grads to the global norm hp["grad_clip"] (0: off), then one AdamW step
        at lr. Returns the norm before clipping; applies nothing when it is not finite."""
        f32 = np.float32
        ss = 0.0
        for k in params:
            g64 = grads[k].astype(np.float64).ravel()
            ss += float(g64 @ g64)
        norm = math.sqrt(ss) if math.isfinite(ss) else float("nan")
        if not math.isfinite(norm):
            return norm
        clip = float(f32(hp["grad_clip"]))
        scale = f32(1.0)
        if clip > 0:
            coef = clip / (norm + 1e-6)
            if coef < 1.0:
                scale = f32(coef)
        self.step += 1
        lr32, wd32 = f32(lr), f32(hp["weight_decay"])
        b1, b2, eps = f32(hp["beta1"]), f32(hp["beta2"]), f32(hp["eps"])
        bc1 = 1.0 - float(b1) ** self.step
        bc2 = 1.0 - float(b2) ** self.step
        step_size = f32(float(lr32) / bc1)
        ib = f32(1.0 / math.sqrt(bc2))
        decay = f32(f32(1.0) - lr32 * wd32)
        c1, c2 = f32(1.0) - b1, f32(1.0) - b2
        for k, p in params.items():
            g = grads[k]
            if scale != f32(1.0):
                g = g * scale
            m = b1 * self.m[k] + c1 * g
            v = b2 * self.v[k] + c2 * g * g
            self.m[k], self.v[k] = m, v
            dm = decay if p.ndim >= 2 else f32(1.0)
            params[k] = p * dm - step_size * (m / (np.sqrt(v) * ib + eps))
        return norm

    def save(self, path, experiment):
        t = []
        for k in sorted(self.m):
            t.append(("m." + k, self.m[k]))
            t.append(("v." + k, self.v[k]))
        write_safetensors(path, t, {"format": STATE_FORMAT, "step": str(self.step),
                                    "experiment": experiment})

    @classmethod
    def load(cls, path, params, experiment):
        """The saved state when it is for these tensors and this experiment, else None."""
        try:
            t, meta = read_safetensors(path)
        except (OSError, Refusal, ValueError, KeyError) as e:
            log("ignoring the optimizer state %s: %s" % (path, e))
            return None
        if meta.get("format") != STATE_FORMAT or meta.get("experiment") != experiment:
            log("ignoring the optimizer state %s: another format or experiment" % path)
            return None
        s = cls(params)
        for k in params:
            m, v = t.get("m." + k), t.get("v." + k)
            if m is None or v is None or m.shape != params[k].shape or v.shape != m.shape:
                log("ignoring the optimizer state %s: tensor %s missing or misshaped"
                    % (path, k))
                return None
            s.m[k], s.v[k] = m, v
        s.step = int(meta.get("step", "0"))
        return s


# ---- data: worker/data.h's corpus stream, split and window sampler --------------------

class Corpus:
    """The member's files concatenated in the plan's order, cut into 4096-byte chunks;
    chunk i is validation exactly when floor((i+1)f + 1/2) > floor(i f + 1/2), with f
    in parts per million (worker/data.h)."""

    def __init__(self, data):
        d = data["dir"]
        parts = []
        for rel in data["files"]:
            parts.append(np.fromfile(os.path.join(d, rel), dtype=np.uint8))
        stream = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        f = float(data.get("validation_fraction", 0.0))
        if not 0.0 <= f <= 0.5:
            raise Refusal("data.validation_fraction %g is outside [0, 0.5]" % f)
        ppm = validation_ppm(f)
        n_chunks = (len(stream) + CHUNK - 1) // CHUNK
        before = validation_before(np.arange(n_chunks + 1, dtype=np.int64), ppm)
        is_val = before[1:] > before[:-1]
        byte_val = np.repeat(is_val, CHUNK)[:len(stream)]
        self.train = stream[~byte_val]
        self.val = stream[byte_val]
        self.total = len(stream)

    def sampler(self, seed, B, T):
        w = T + 1
        if w > len(self.train):
            raise Refusal("the corpus holds %d training bytes; one window needs %d "
                          "(seq_len %d + 1)" % (len(self.train), w, T))
        rng = Rng(seed)
        n = len(self.train) - w + 1
        idx = np.arange(w)

        def next_batch():
            starts = np.array([rng.below(n) for _ in range(B)], dtype=np.int64)
            return self.train[starts[:, None] + idx].astype(np.int64)
        return next_batch


def evaluate(params, cfg, tokens, T, B, max_windows):
    """trainer_evaluate: mean loss over non-overlapping windows of T+1 tokens stepping by
    T (T = n-1 when shorter), the first max_windows of them (<= 0: all)."""
    n = len(tokens)
    if n < 2:
        return None
    if n - 1 < T:
        T = n - 1
    windows = (n - 1) // T
    if max_windows > 0:
        windows = min(windows, max_windows)
    total = 0.0
    for w0 in range(0, windows, B):
        rows = min(B, windows - w0)
        starts = (np.arange(rows) + w0) * T
        win = tokens[starts[:, None] + np.arange(T + 1)].astype(np.int64)
        loss, _, _ = forward(params, cfg, win[:, :-1], win[:, 1:])
        total += loss * rows
    return total / windows


# ---- one round ---------------------------------------------------------------------

def _plan_field(plan, *keys):
    v = plan
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            raise Refusal("plan.json has no %s" % ".".join(keys))
        v = v[k]
    return v


class Trainer:
    """The optimizer state across rounds (serve mode keeps one; oneshot makes one)."""

    def __init__(self):
        self.opt = None
        self.opt_key = None  # (experiment, tensor names and shapes)

    def round(self, plan, progress=None, persist=True):
        if plan.get("aulac_trainer") != PROTOCOL:
            raise Refusal("plan.json aulac_trainer is %r; this plug-in speaks version %d"
                          % (plan.get("aulac_trainer"), PROTOCOL))
        model = _plan_field(plan, "model")
        family = model.get("family")
        if family != "gpt2":
            raise Refusal("this plug-in trains only model.family gpt2 (the built-in GPT-2 "
                          "on bytes); the plan's family is %r: use torch_causal_lm.py" % family)
        if model.get("tokenizer"):
            raise Refusal("this plug-in trains on bytes; the plan names a tokenizer (%s)"
                          % model["tokenizer"])
        cfg = Config(_plan_field(plan, "model", "gpt2"))
        tr = _plan_field(plan, "training")
        steps, B, T = int(tr["steps"]), int(tr["batch_size"]), int(tr["seq_len"])
        if steps < 1 or B < 1 or not 1 <= T <= cfg.P:
            raise Refusal("training.steps %d, batch_size %d, seq_len %d: need steps, batch "
                          ">= 1 and 1 <= seq_len <= n_positions %d" % (steps, B, T, cfg.P))
        out = _plan_field(plan, "output")
        experiment = str(plan.get("experiment", ""))
        rnd = plan.get("round")
        params = load_params(_plan_field(plan, "model", "input"), cfg)
        corpus = Corpus(_plan_field(plan, "data"))
        data = plan["data"]

        # the base model's validation loss, as the built-in trainer reports it
        vw = int(data.get("validation_windows", 0) or 0)
        val_loss = evaluate(params, cfg, corpus.val, T, B, vw)

        state_dir = plan.get("state_dir")
        state_path = os.path.join(state_dir, STATE_FILE) if state_dir else None
        key = (experiment, tuple((k, v.shape) for k, v in params.items()))
        if self.opt is None or self.opt_key != key:
            self.opt = None
            if persist and state_path and os.path.exists(state_path):
                self.opt = AdamW.load(state_path, params, experiment)
            if self.opt is None:
                self.opt = AdamW(params)
            self.opt_key = key
        k0 = int(tr.get("optimizer_step", 0))
        if self.opt.step != k0:
            log("round %s: the optimizer state has taken %d steps; the plan says %d (the "
                "moments are kept; the learning rate follows the plan)"
                % (rnd, self.opt.step, k0))

        lr, warm = np.float32(tr["lr"]), int(tr.get("warmup_steps", 0))
        next_batch = corpus.sampler(int(plan["seed"]), B, T)
        losses = []
        t0 = time.monotonic()
        for s in range(steps):
            k = k0 + s
            # worker.c: lr * (float)(k + 1) / (float)warm in float arithmetic
            lr_k = np.float32(lr * np.float32(k + 1)) / np.float32(warm) if k < warm else lr
            win = next_batch()
            loss, _, cache = forward(params, cfg, win[:, :-1], win[:, 1:], need_cache=True)
            if not math.isfinite(loss):
                raise Refusal("round %s step %d: the loss is not finite" % (rnd, s + 1))
            grads = backward(params, cfg, cache)
            norm = self.opt.update(params, grads, lr_k, tr)
            if not math.isfinite(norm):
                raise Refusal("round %s step %d: the gradient is not finite" % (rnd, s + 1))
            losses.append(loss)
            if progress:
                progress(s + 1, steps, loss, time.monotonic() - t0)

        os.makedirs(out["dir"], exist_ok=True)
        specs = tensor_specs(cfg)
        write_safetensors(out["model"], [(n, params[n]) for n, _ in specs],
                          {"format": "pt", "producer": "aulac numpy_gpt2.py"})
        metrics = {"tokens": steps * B * T, "steps": steps,
                   "train_loss": sum(losses) / len(losses), "validation_loss": val_loss}
        write_json_atomic(out["metrics"], metrics)
        if persist and state_path:
            os.makedirs(state_dir, exist_ok=True)
            self.opt.save(state_path, experiment)
        return metrics


def read_plan(path):
    try:
        with open(path) as f:
            plan = json.load(f)
    except (OSError, ValueError) as e:
        raise Refusal("cannot read the plan %s: %s" % (path, e))
    if not isinstance(plan, dict):
        raise Refusal("%s is not a JSON object" % path)
    return plan


def oneshot(path):
    plan = read_plan(path)
    rnd = plan.get("round")

    def progress(step, steps, loss, secs):
        if step == steps or step % max(1, steps // 5) == 0:
            log("round %s step %d/%d loss %.4f (%.1fs)" % (rnd, step, steps, loss, secs))
    m = Trainer().round(plan, progress)
    log("round %s: %d steps, %d tokens, train loss %.4f, base validation loss %s"
        % (rnd, m["steps"], m["tokens"], m["train_loss"],
           "%.4f" % m["validation_loss"] if m["validation_loss"] is not None else "none"))
    return 0


def serve():
    """JSON lines (TRAINER.md, serve): a "round" line per round, "exit" to stop."""
    trainer = Trainer()

    def send(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    return serve_rounds(lambda: read_message(sys.stdin, log), send, read_plan,
                        lambda plan, progress: trainer.round(plan, progress, persist=False),
                        Refusal, log)


def main(argv):
    if len(argv) > 1 and argv[1] in ("-h", "--help"):
        sys.stdout.write(__doc__.lstrip())
        return 0
    if len(argv) > 1 and argv[1] == "--serve":
        return serve()
    path = argv[1] if len(argv) > 1 else os.environ.get("AULAC_PLAN")
    if not path:
        return serve()  # the worker starts a serve-mode trainer without AULAC_PLAN
    try:
        return oneshot(path)
    except Refusal as e:
        log(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
