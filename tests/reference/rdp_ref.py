#!/usr/bin/env python3
"""Goldens for aulac's RDP accountant (privacy/rdp.c) from Google's dp-accounting.

`make reference-rdp` (scripts/reference-rdp.sh) runs this in a venv with dp-accounting
from PyPI and writes tests/reference/golden/rdp.tsv, which tests/unit/test_rdp.c checks
privacy/rdp.c against (1e-6 relative; the C tests never need Python).

Every value comes from dp_accounting.rdp.RdpAccountant with its default orders,
composing SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(z)), steps), as
a DP-SGD or DP-FedAvg user of the library would. Floats are written with repr() (the
shortest string that reads back as the same double); "inf" is infinity.

Rows (tab-separated, '#' starts a comment line):
  orders  <o1> <o2> ...                        the accountant's default orders
  rdp     q z steps order rdp                  RDP at one of the default orders
  eps     q z steps delta epsilon opt_order    get_epsilon_and_optimal_order(delta)
  max     q z delta target limit steps         the most steps in [0, limit] whose
                                               epsilon <= target (binary search)
"""
import argparse
import logging
import math
import os
import sys

import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant as rdp_mod

# The grid (issue 13): q x z x steps at delta 1e-5, and a few other deltas and points.
QS = [1e-3, 0.01, 0.1, 0.5, 1.0]
ZS = [0.5, 0.8, 1.0, 2.0, 5.0]
STEPS = [1, 10, 100, 1000]
DELTA = 1e-5
# Orders whose RDP is written per grid point: fractional (the erfc series), small and
# large integers (the binomial sum), the extremes of the default list.
RDP_ORDERS = [1.1, 1.5, 1.9, 2.0, 2.5, 3.0, 4.5, 7.3, 10.9, 16, 32, 63, 128, 1024]
# Extra points: other deltas on a sub-grid, and q, z off the main grid.
EXTRA_DELTAS = [1e-3, 1e-8, 1e-12]
EXTRA_POINTS = [  # (q, z, steps)
    (0.05, 1.1, 250), (0.2, 0.6, 7), (0.003, 3.0, 10000), (0.9, 1.3, 3),
    (1.0, 0.3, 1), (1.0, 10.0, 100000), (1e-4, 0.7, 100000), (0.25, 1.5, 40),
    (0.5, 1.0, 0), (0.0, 1.0, 100), (0.5, 0.0, 10), (1.0, 0.0, 1),  # zero and infinite
]
MAX_CASES = [  # (q, z, delta, target, limit): rdp_max_steps
    (1.0, 1.0, 1e-5, 30.0, 1 << 20), (1.0, 2.0, 1e-5, 8.0, 1000), (1.0, 0.5, 1e-5, 2.0, 1000),
    (1.0, 5.0, 1e-5, 3.0, 100000), (1.0, 1.1, 1e-8, 10.0, 1 << 40),
    (0.01, 1.0, 1e-5, 2.0, 1 << 16), (0.1, 0.8, 1e-5, 10.0, 10000),
    (1.0, 1.0, 1e-5, 100.0, 50), (1.0, 0.0, 1e-5, 1.0, 10),
]


def fmt(x):
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def accountant(q, z, steps):
    acc = dp_accounting.rdp.RdpAccountant()  # default orders, add-or-remove-one
    if steps:
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
        acc.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return acc


def max_steps(q, z, delta, target, limit):
    lo, hi = 0, limit  # epsilon(lo) <= target
    while lo < hi:
        mid = lo + (hi - lo + 1) // 2
        if accountant(q, z, mid).get_epsilon(delta) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "golden", "rdp.tsv"))
    args = ap.parse_args()
    # dp-accounting warns (absl) for each fractional order whose series does not converge
    # and is excluded (its RDP is inf): expected at small orders with large q.
    logging.getLogger("absl").setLevel(logging.ERROR)

    orders = [float(o) for o in rdp_mod.DEFAULT_RDP_ORDERS]
    index = {o: i for i, o in enumerate(orders)}
    for o in RDP_ORDERS:
        assert float(o) in index, f"{o} is not a default order"

    try:
        from importlib.metadata import version
        ver = version("dp-accounting")
    except Exception:  # pragma: no cover
        ver = "unknown"
    lines = [
        "# aulac RDP goldens: written by tests/reference/rdp_ref.py (make reference-rdp)",
        f"# dp-accounting {ver}, numpy {__import__('numpy').__version__}, "
        f"scipy {__import__('scipy').__version__}, python {sys.version.split()[0]}",
        "# rows: orders o...; rdp q z steps order rdp; eps q z steps delta epsilon order;",
        "#       max q z delta target limit steps",
        "orders\t" + "\t".join(fmt(o) for o in orders),
    ]

    def point(q, z, steps, deltas, with_rdp):
        acc = accountant(q, z, steps)
        rdp = acc.rdp
        if with_rdp:
            for o in RDP_ORDERS:
                lines.append("\t".join(["rdp", fmt(q), fmt(z), str(steps), fmt(o),
                                        fmt(rdp[index[float(o)]])]))
        for d in deltas:
            eps, order = acc.get_epsilon_and_optimal_order(d)
            lines.append("\t".join(["eps", fmt(q), fmt(z), str(steps), fmt(d), fmt(eps),
                                    fmt(order)]))

    for q in QS:
        for z in ZS:
            for steps in STEPS:
                deltas = [DELTA] + (EXTRA_DELTAS if steps in (10, 1000) else [])
                point(q, z, steps, deltas, True)
    for q, z, steps in EXTRA_POINTS:
        point(q, z, steps, [DELTA] + EXTRA_DELTAS, True)
    for q, z, delta, target, limit in MAX_CASES:
        lines.append("\t".join(["max", fmt(q), fmt(z), fmt(delta), fmt(target), str(limit),
                                str(max_steps(q, z, delta, target, limit))]))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    n_eps = sum(1 for l in lines if l.startswith("eps\t"))
    n_rdp = sum(1 for l in lines if l.startswith("rdp\t"))
    print(f"reference-rdp: {args.out}: {n_eps} epsilons, {n_rdp} RDP values, "
          f"{len(MAX_CASES)} max-steps cases (dp-accounting {ver})")


if __name__ == "__main__":
    main()
