#!/usr/bin/env python3
"""bench/peers table: report.py RUN_ROOT ROW... (rows: dense, compressed).

Reads what run.sh left: RUN_ROOT/ROW/aulac/ and RUN_ROOT/flower/ each hold run.json
(wall_s), bytes.json (the proxy's counts), rss.json (peak RSS per process tree) and
eval-MEMBER.txt (aulac eval's loss). Columns: wall time from submitting the job to the
final model, per round; bytes through the proxy per member per round; peak RSS of the
server's and of the largest worker's process tree (MB); CPU seconds of the server's tree
and the mean of the workers' trees; aulac eval's loss per member and their mean; RUN_ROOT/ROW.yaml gives the rounds. Flower runs
once (dense): it is the baseline of every row."""
import json
import os
import sys

import yaml

MEMBERS = ["fpt", "vnpt", "hust"]


def load(d):
    r = json.load(open(os.path.join(d, "run.json")))
    r["bytes"] = json.load(open(os.path.join(d, "bytes.json")))
    r["rss"] = json.load(open(os.path.join(d, "rss.json")))
    r["loss"] = {}
    for m in MEMBERS:
        with open(os.path.join(d, "eval-%s.txt" % m)) as f:
            r["loss"][m] = float(f.read().strip())
    return r


def figures(r, rounds):
    n = len(MEMBERS)
    loss = [r["loss"][m] for m in MEMBERS]
    return {
        "wall s": r["wall_s"],
        "s/round": r["wall_s"] / rounds,
        "up B/m/r": r["bytes"]["uplink_bytes"] / n / rounds,
        "down B/m/r": r["bytes"]["downlink_bytes"] / n / rounds,
        "server MB": r["rss"]["server"] / 1e6,
        "worker MB": max(r["rss"][m] for m in MEMBERS) / 1e6,
        "server cpu": r["rss"]["cpu_s"]["server"],
        "worker cpu": sum(r["rss"]["cpu_s"][m] for m in MEMBERS) / n,
        **{"loss " + m: r["loss"][m] for m in MEMBERS},
        "loss mean": sum(loss) / len(loss),
    }


def main(argv):
    root, rows = argv[0], argv[1:]
    flower = load(os.path.join(root, "flower"))
    cols = ["wall s", "s/round", "up B/m/r", "down B/m/r", "server MB", "worker MB",
            "server cpu", "worker cpu"] + \
        ["loss " + m for m in MEMBERS] + ["loss mean"]
    fmt = {"wall s": "%.1f", "s/round": "%.2f", "up B/m/r": "%.0f", "down B/m/r": "%.0f",
           "server MB": "%.0f", "worker MB": "%.0f", "server cpu": "%.1f",
           "worker cpu": "%.1f"}
    w = 11
    print("%-26s" % "" + "".join("%*s" % (w, c) for c in cols))
    for row in rows:
        rounds = yaml.safe_load(open(os.path.join(root, row + ".yaml")))["training"]["rounds"]
        a = figures(load(os.path.join(root, row, "aulac")), rounds)
        f = figures(flower, rounds)
        for name, v in (("%s: aulac" % row, a), ("%s: Flower (dense)" % row, f)):
            print("%-26s" % name + "".join("%*s" % (w, fmt.get(c, "%.4f") % v[c]) for c in cols))
        print("%-26s" % "  aulac / Flower" + "".join(
            "%*s" % (w, ("%.4f" if c.startswith("loss") else "%.3g") % (a[c] / f[c]) if f[c] else "-")
            for c in cols))
        # the ledger's view of aulac's uplink: the accepted payloads' bytes
        led = os.path.join(root, row, "aulac", "ledger.jsonl")
        ups = [json.loads(l).get("bytes", 0) for l in open(led)
               if json.loads(l)["type"] == "update_accepted"]
        if ups:
            print("%-26s%s" % ("", "aulac %s: the ledger's accepted payloads average %.0f bytes "
                               "(%d updates)" % (row, sum(ups) / len(ups), len(ups))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
