#!/usr/bin/env bash
# docker/grafana-dashboard.json, the example Grafana dashboard over /metrics: valid JSON
# with the panels HTTP.md promises (round duration, uploads, rejections by reason, bytes,
# memory); every metric it queries is one coordinator/HTTP.md documents and
# coordinator/metrics.c renders; every query is PromQL that `promtool check rules`
# parses (Grafana's variables replaced). Also: every metric HTTP.md documents is
# rendered by metrics.c.
set -euo pipefail
cd "$(dirname "$0")/../.."
T=$(mktemp -d "${TMPDIR:-/tmp}/aulac-grafana.XXXXXX")
trap 'rm -rf "$T"' EXIT

python3 - "$T/rules.yml" <<'PY'
import json, re, sys
dash = json.load(open("docker/grafana-dashboard.json"))
doc = open("coordinator/HTTP.md").read()
src = open("coordinator/metrics.c").read()
documented = set(re.findall(r"^\| `((?:aulac|process)_[a-z_]+)`", doc, re.M))
assert len(documented) >= 30, f"HTTP.md documents only {len(documented)} metrics"
for name in sorted(documented):
    if f'"{name}' not in src:
        sys.exit(f"HTTP.md documents {name} but coordinator/metrics.c does not render it")
exprs, titles = [], []
def walk(panels):
    for p in panels:
        titles.append(p.get("title", ""))
        for t in p.get("targets", []):
            exprs.append((p.get("title"), t["expr"]))
        walk(p.get("panels", []))
walk(dash["panels"])
assert dash.get("uid") and dash.get("title") and dash.get("schemaVersion")
ids = [p["id"] for p in dash["panels"]]
assert len(ids) == len(set(ids)), "duplicate panel ids"
want = ["round duration", "uploads", "rejections by reason", "bytes", "memory"]
low = " | ".join(titles).lower()
for w in want:
    if w not in low:
        sys.exit(f"no panel about {w!r} (panels: {titles})")
used = set()
for title, e in exprs:
    for name in re.findall(r"\b((?:aulac|process)_[a-z_]+)", e):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base not in documented:
            sys.exit(f"panel {title!r} queries {name}, which HTTP.md does not document")
        used.add(base)
print(f"dashboard: {len(titles)} panels, {len(exprs)} queries over {len(used)} metrics")
with open(sys.argv[1], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$member", ".*")
        f.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
PY

if ! command -v promtool >/dev/null; then
    echo "SKIP (PromQL parse): promtool is not installed (Debian package prometheus;" \
         "scripts/deps.sh installs it)"
    exit 0
fi
promtool check rules "$T/rules.yml"
echo "grafana_dashboard: ok"
