#!/usr/bin/env python3
"""bench/peers policies (PyYAML for --flower-config and --get).

  policy.py POLICY OUT_DIR
      OUT_DIR/compressed.yaml: POLICY as it is, less its contribution section (credit
      scoring evaluates extra models every round; Flower has no counterpart);
      OUT_DIR/dense.yaml: the same, with its compression section replaced by dense fp32
      both ways (the uplink keeps aulac's lossless zstd stage) and with training.outer replaced by FedAvg at lr 1 (plain averaging).
      Text is edited line by line, so everything else stays byte for byte.
  policy.py --flower-config DENSE_POLICY ROUND0_DIR PLUGINS_DIR OUT_DIR
      The Flower app's run config (TOML) for the policy's schedule.
  policy.py --get POLICY KEY.PATH
      One value of the policy (defaults as aulac's policy parser fills them).
"""
import os
import sys

# aulac's defaults for keys the demo policy may leave out (policies/policy.c)
DEFAULTS = {"training.inner.eps": 1e-8, "training.inner.warmup_steps": 0,
            "training.inner.grad_clip": 0.0, "data.validation_fraction": 0.0}


# dense fp32 both ways; the uplink keeps aulac's default lossless zstd stage (level 3)
DENSE_LINKS = """
compression:           # bench/peers: dense fp32 both ways (zstd, lossless, on the uplink)
  uplink:
    method: none
    quant: fp32
    error_feedback: false
  downlink:
    method: none
    quant: fp32
"""


def drop_block(lines, key, indent, replacement=""):
    """lines with the block that starts with `key:` at indent (the line and every
    following blank or deeper line) replaced by replacement."""
    out, skipping = [], False
    head = " " * indent + key + ":"
    for ln in lines:
        body = ln.rstrip("\n")
        lead = len(body) - len(body.lstrip(" "))
        if skipping:
            if body.strip() == "" or lead > indent:
                continue
            skipping = False
        if body.startswith(head):
            skipping = True
            if replacement:
                out.append(replacement)
            continue
        out.append(ln)
    return out


def write_policies(src, out_dir):
    with open(src) as f:
        lines = f.readlines()
    base = drop_block(lines, "contribution", 0)
    with open(os.path.join(out_dir, "compressed.yaml"), "w") as f:
        f.writelines(base)
    dense = drop_block(base, "compression", 0) + [DENSE_LINKS]
    dense = drop_block(dense, "outer", 2, "  outer:\n    kind: fedavg\n    lr: 1.0\n\n")
    with open(os.path.join(out_dir, "dense.yaml"), "w") as f:
        f.writelines(dense)


def get(policy, path):
    node = policy
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            if path in DEFAULTS:
                return DEFAULTS[path]
            raise SystemExit("policy.py: %s is not in the policy" % path)
        node = node[k]
    return node


def flower_config(policy_path, round0, plugins, out):
    import yaml
    with open(policy_path) as f:
        p = yaml.safe_load(f)
    vals = {
        "rounds": get(p, "training.rounds"),
        "local-steps": get(p, "training.local_steps"),
        "batch-size": get(p, "training.batch_size"),
        "seq-len": get(p, "training.seq_len"),
        "lr": float(get(p, "training.inner.lr")),
        "weight-decay": float(get(p, "training.inner.weight_decay")),
        "beta1": float(get(p, "training.inner.beta1")),
        "beta2": float(get(p, "training.inner.beta2")),
        "eps": float(get(p, "training.inner.eps")),
        "grad-clip": float(get(p, "training.inner.grad_clip")),
        "warmup-steps": get(p, "training.inner.warmup_steps"),
        "seed": get(p, "model.seed"),
        "validation-fraction": float(get(p, "data.validation_fraction")),
        "members": len(get(p, "participation.members")),
        "round0": round0, "plugins-dir": plugins, "out-dir": out,
    }
    for k, v in vals.items():
        if isinstance(v, str):
            print('%s = "%s"' % (k, v))
        elif isinstance(v, float):
            print("%s = %r" % (k, v))
        else:
            print("%s = %d" % (k, int(v)))


def main(argv):
    if len(argv) == 5 and argv[0] == "--flower-config":
        flower_config(*argv[1:])
    elif len(argv) == 3 and argv[0] == "--get":
        import yaml
        with open(argv[1]) as f:
            print(get(yaml.safe_load(f), argv[2]))
    elif len(argv) == 2:
        write_policies(argv[0], argv[1])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
