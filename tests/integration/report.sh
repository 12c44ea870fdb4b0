#!/usr/bin/env bash
# The secretariat's credit report: a three-member experiment measured by tokens,
# alignment, leave-one-out and Shapley (an evaluation set pinned by its hash), then
#   - aulac credits while it runs: totals so far, marked "running, N rounds so far";
#   - aulac credits --format csv / json once it finished: one row per member, shares that
#     sum to 1, the same from the data directory and over RPC;
#   - aulac report: loaded in headless Chromium (a screenshot is kept under the test's
#     output directory) whose DOM has a credit row per member, a chart point for every
#     round of every member in each measure's chart and in the validation-loss chart, no
#     external reference, and the root of `aulac ledger checkpoint --json`.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "SKIP: report.sh needs Debian's chromium (scripts/deps.sh installs it; it could not" \
         "be installed here)"
    exit 0
fi
OUT=${AULAC_TEST_OUTPUT:-$(mktemp -d "${TMPDIR:-/tmp}/aulac-report-out.XXXXXX")}/report
mkdir -p "$OUT"

make_corpora
make_alliance alpha beta gamma
ROUNDS=4
LOCAL_STEPS=8 write_policy $ROUNDS alpha beta gamma
# An evaluation set no member trains on, pinned by its BLAKE2b-256.
mkdir -p "$T/evalsets"
cp /usr/share/common-licenses/MPL-2.0 "$T/evalsets/eval-mpl.txt"
EVAL_HASH=$(b2sum -l 256 "$T/evalsets/eval-mpl.txt" | cut -d' ' -f1)
cat >>"$T/policy.yaml" <<YAML
contribution:
  measures: [tokens, alignment, loo, shapley]
  credit_weights: { shapley: 2, tokens: 1, alignment: 1, loo: 1 }
  evaluation_set: { name: eval-mpl.txt, blake2b: $EVAL_HASH, windows: 4 }
  shapley: { budget: 64 }
YAML
MEASURES="tokens alignment loo shapley"
"$BIN/aulac" policy check "$T/policy.yaml" --eval-sets "$T/evalsets" >/dev/null \
    || fail "the policy with a contribution section does not check"
start_coordinator --eval-sets "$T/evalsets"

pids=()
for m in alpha beta gamma; do start_worker "$m"; pids+=($LAST_PID); done

# While it runs: the credits so far, from the scores entries of the rounds closed.
seen_running=""
for _ in $(seq 1200); do
    table=$("$BIN/aulac" credits --data-dir "$T/coord" 2>/dev/null || true)
    if grep -qE "\(running, [0-9]+ rounds? so far\)" <<<"$table"; then
        seen_running=$(grep -m1 -oE "running, [0-9]+ rounds? so far" <<<"$table")
        printf '%s\n' "$table" >"$T/credits-running.txt"
        break
    fi
    grep -q "finished" <<<"$table" && break
    sleep 0.1
done
[ -n "$seen_running" ] || fail "aulac credits never showed the running experiment's totals so far"
grep -qE "^  (alpha|beta|gamma) " "$T/credits-running.txt" || fail "no member in the running table"
note "while running: $seen_running"

for i in 0 1 2; do
    rc=0; wait_pid "${pids[$i]}" 300 || rc=$?
    [ $rc -eq 0 ] || fail "worker $i exited $rc"
done

"$BIN/aulac" credits --data-dir "$T/coord" | tee "$T/credits.txt"
grep -qE "\(finished, $ROUNDS rounds scored\)" "$T/credits.txt" || fail "credits table: not finished"
"$BIN/aulac" credits --data-dir "$T/coord" --format csv >"$T/credits.csv" || fail "credits --format csv"
"$BIN/aulac" credits --data-dir "$T/coord" --format json >"$T/credits.json" || fail "credits --format json"
"$BIN/aulac" credits --coordinator "$ADDR" --insecure --format json >"$T/credits-rpc.json" \
    || fail "credits over RPC"
cmp -s "$T/credits.json" "$T/credits-rpc.json" || fail "credits over RPC differ from the data directory's"
EXP=$(python3 - "$T" "$ROUNDS" "$MEASURES" <<'PY'
import csv, json, sys
t, rounds, measures = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
rows = list(csv.DictReader(open(t + "/credits.csv")))
assert [r["member"] for r in rows] == ["alpha", "beta", "gamma"], rows
assert all(r["state"] == "finished" and r["final"] == "1" and int(r["rounds_scored"]) == rounds
           for r in rows), rows
assert abs(sum(float(r["credit"]) for r in rows) - 1) < 1e-9, rows
for m in measures:
    assert abs(sum(float(r["share_" + m]) for r in rows) - 1) < 1e-9 or \
        all(float(r["share_" + m]) == 0 for r in rows), (m, rows)
for m in ("rounds", "bytes"):                       # not measured: empty
    assert all(r["share_" + m] == "" for r in rows), rows
j = json.load(open(t + "/credits.json"))
assert len(j["experiments"]) == 1, j
x = j["experiments"][0]
assert x["final"] is True and x["state"] == "finished" and x["rounds"] == rounds, x
assert x["measures"] == measures, x["measures"]
assert x["weights"] == {"tokens": 1, "alignment": 1, "loo": 1, "shapley": 2}, x["weights"]
for r, m in zip(rows, x["members"]):
    assert m["member"] == r["member"] and abs(m["share"] - float(r["credit"])) < 1e-15, (m, r)
    assert m["rounds"] == rounds, m
print(x["experiment"])
PY
) || fail "credits csv / json checks"
note "credits of $EXP: $(tr '\n' ' ' <"$T/credits.csv" | cut -c1-200)..."

# The report over RPC, then from the data directory with the coordinator stopped (so that
# the ledger and its latest checkpoint stay as the report saw them): the same page but for
# the line naming the source.
"$BIN/aulac" report --coordinator "$ADDR" --insecure --experiment "$EXP" \
    --out "$T/report-rpc.html" || fail "aulac report over RPC"
kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
"$BIN/aulac" report --data-dir "$T/coord" --experiment "$EXP" --out "$T/report.html" \
    || fail "aulac report"
diff <(grep -v "^<tr><td>ledger</td>" "$T/report-rpc.html") \
     <(grep -v "^<tr><td>ledger</td>" "$T/report.html") >&2 \
    || fail "the report over RPC differs from the data directory's (above)"
cp "$T/report.html" "$OUT/report.html"
"$BIN/aulac" ledger checkpoint --data-dir "$T/coord" --json >"$T/checkpoint.json" \
    || fail "ledger checkpoint"
"$BIN/aulac" ledger show --data-dir "$T/coord" --json >"$T/entries.jsonl"

# No external reference of any kind, in the file as written.
if grep -nEi "(src|href)[[:space:]]*=|https?:|url\(|@import|<script" "$T/report.html"; then
    fail "the report refers to something outside itself (above)"
fi

chrome() {
    HOME="$T/chrome-home" timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
        --user-data-dir="$T/chrome-profile" --no-first-run --hide-scrollbars "$@" \
        "file://$T/report.html"
}
rm -f "$OUT/report.png"
chrome --screenshot="$OUT/report.png" --window-size=1200,2000 >"$T/logs/chromium-shot.log" 2>&1 \
    || fail "chromium --screenshot failed (logs/chromium-shot.log)"
[ -s "$OUT/report.png" ] || fail "chromium wrote no screenshot"
chrome --dump-dom >"$T/dom.html" 2>"$T/logs/chromium-dom.log" || fail "chromium --dump-dom failed"
python3 - "$T" "$ROUNDS" "$MEASURES" <<'PY' || fail "report DOM checks"
import html.parser, json, sys
t, rounds, measures = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
members = ["alpha", "beta", "gamma"]

class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.points, self.chart, self.stack = [], set(), None, []
        self.text_of, self.capture, self.refs = {}, None, []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href", "xlink:href", "action", "srcset", "poster"):
            if k in a:
                self.refs.append((tag, k, a[k]))
        if tag == "svg":
            self.chart = a.get("data-chart")
        if tag == "tr" and "data-member" in a and self.stack and "credit-table" in self.stack:
            self.rows.append(a["data-member"])
        if tag == "circle" and "data-member" in a:
            self.points.add((self.chart, a["data-member"], int(a["data-round"])))
            float(a["data-value"])
        if tag == "table":
            self.stack.append(a.get("id", ""))
        if "id" in a:
            self.capture = a["id"]; self.text_of[self.capture] = ""
    def handle_endtag(self, tag):
        if tag == "table" and self.stack:
            self.stack.pop()
        if tag == "svg":
            self.chart = None
        self.capture = None
    def handle_data(self, d):
        if self.capture:
            self.text_of[self.capture] += d

d = Dom()
d.feed(open(t + "/dom.html").read())
assert d.rows == members, d.rows
assert not d.refs, d.refs
charts = ["measure-" + m for m in measures] + ["val-loss", "train-loss"]
for c in charts:
    for m in members:
        for r in range(1, rounds + 1):
            assert (c, m, r) in d.points, ("no point", c, m, r)
ck = json.load(open(t + "/checkpoint.json"))
assert d.text_of["ledger-root"].strip() == ck["root"], (d.text_of["ledger-root"], ck["root"])
assert int(d.text_of["ledger-size"]) == ck["size"], (d.text_of["ledger-size"], ck["size"])
n = sum(1 for _ in open(t + "/entries.jsonl"))
assert ck["size"] == n, (ck["size"], n)
print("DOM: %d member rows, %d chart points in %d charts; root %s… of %d entries" %
      (len(d.rows), len(d.points), len(charts), ck["root"][:16], ck["size"]))
PY
note "ok: credits (running, then final; csv, json, RPC) and the report; screenshot $OUT/report.png"
