#!/usr/bin/env bash
# The demo alliance: three members (fpt, vnpt, hust) train a small Vietnamese
# byte-level GPT-2 together through a real coordinator on loopback. Nothing runs
# until the alliance approves it: hust (researcher) proposes the experiment, fpt
# votes by hand, vnpt's worker votes from its site policy; a second, small
# experiment is approved while the first runs and follows it with the same workers.
# Then each member trains the same model alone with the same compute (aulac solo), and
# the demo prints what joining is worth to each (scripts/value-of-joining.sh).
#
#   scripts/demo.sh                 everything under demo-run/ (RUN_DIR=... to move it)
#   scripts/demo.sh --prepare-only  keys, roster, policy and corpora, no processes
#   HOLD=1 scripts/demo.sh          keep the coordinator (and its dashboard) up after the
#                                   demo, until Ctrl-C, to browse the finished run
#   CORPUS_BYTES=40000 scripts/demo.sh   smaller private corpora (default 400000 bytes a
#                                   member; the policy asks for at least 20000)
#
# The coordinator serves its dashboard (coordinator/HTTP.md) on loopback while the demo
# runs: the URL is printed as soon as it listens. HTTP_PORT=8080 picks the port (default:
# any free one).
#
# Everything runs over TLS on loopback: the demo makes an alliance CA and the
# coordinator's certificate (aulac tls). MTLS=1 also gives every member a client
# certificate and makes the coordinator require one; INSECURE=1 runs plaintext.
# Either way every member request is signed with the member's key.
#
# Stops every process it started on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUN_DIR=${RUN_DIR:-demo-run}
POLICY=${POLICY:-policies/examples/demo.yaml}
DEMO=demo
# shellcheck source=scripts/lib/alliance.sh
. scripts/lib/alliance.sh
prepare_only=0
[ "${1:-}" = "--prepare-only" ] && prepare_only=1

start=$(date +%s)
alliance_setup_traps
alliance_check_programs

rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"/{keys,logs,state}
say "private corpora (Vietnamese text from Debian documentation packages)"
scripts/demo-corpus.sh "$RUN_DIR/corpus" "$BUILD/demo-cache" "${CORPUS_BYTES:-400000}"

say "keys and roster"
# The charter: an experiment needs two thirds of the members (here all three: the
# proposer, fpt by hand, vnpt's worker from its site policy); researchers propose.
alliance_keys_roster
"$bin/aulac" roster show --roster "$RUN_DIR/roster.yaml" | sed 's/^/  /'
say "alliance evaluation set (public text no member trains on; credit is measured on it)"
evalset_hash=$(scripts/evalset.sh "$RUN_DIR/evalsets/vi-firefox-ui.txt" "$BUILD/demo-cache")
echo "  $RUN_DIR/evalsets/vi-firefox-ui.txt: $(wc -c <"$RUN_DIR/evalsets/vi-firefox-ui.txt") bytes, BLAKE2b-256 $evalset_hash"
# The policy pins the hash of the file this coordinator holds (Debian updates the package).
sed "s/^    blake2b: [0-9a-f]*$/    blake2b: $evalset_hash/" "$POLICY" >"$RUN_DIR/policy.yaml"
"$bin/aulac" policy check "$RUN_DIR/policy.yaml" --eval-sets "$RUN_DIR/evalsets" | sed 's/^/  /'
# The follow-up experiment: the same recipe from another seed, for a few rounds.
sed -e 's/^  name: demo-gpt2-bytes$/  name: demo-followup/' -e 's/^  rounds: 12$/  rounds: 3/' \
    -e 's/^  seed: 1337$/  seed: 2024/' "$RUN_DIR/policy.yaml" >"$RUN_DIR/followup.yaml"
"$bin/aulac" policy check "$RUN_DIR/followup.yaml" >/dev/null
"$bin/aulac" policy diff "$RUN_DIR/policy.yaml" "$RUN_DIR/followup.yaml" | sed 's/^/  followup: /' || true
# vnpt's site policy: its worker votes for vnpt on every proposal it can judge.
cat >"$RUN_DIR/site-vnpt.yaml" <<'YAML'
schema: 1
member: vnpt
limits: { max_parameters: 10000000 }
governance: { auto_vote: approve-if-allowed }
YAML
"$bin/aulac" site check "$RUN_DIR/site-vnpt.yaml" --policy "$RUN_DIR/policy.yaml" | sed 's/^/  vnpt site: /'

if [ "${INSECURE:-0}" != 1 ]; then
    say "TLS: the alliance CA and the coordinator's certificate"
    alliance_tls
    # the HTTP view's bearer token, for a coordinator serving it beyond loopback
    # (docker/compose.yaml: --http 0.0.0.0:8080 --http-token-file /alliance/http.token)
    [ -s "$RUN_DIR/http.token" ] || (umask 077; openssl rand -hex 32 >"$RUN_DIR/http.token")
    if [ "${MTLS:-0}" = 1 ]; then
        coord_tls+=(--tls-client-ca "$RUN_DIR/tls/ca.pem" --require-client-cert)
        for m in "${MEMBERS[@]}"; do
            "$bin/aulac" tls issue --ca-dir "$RUN_DIR/tls" --name "$m" --client >/dev/null
            member_tls[$m]="--tls-cert $RUN_DIR/tls/$m.pem --tls-key $RUN_DIR/tls/$m.key"
        done
        "$bin/aulac" tls issue --ca-dir "$RUN_DIR/tls" --name secretariat --client >/dev/null
        client_tls+=(--tls-cert "$RUN_DIR/tls/secretariat.pem" --tls-key "$RUN_DIR/tls/secretariat.key")
        echo "  mutual TLS: a client certificate for each member and the secretariat"
    fi
fi
[ $prepare_only -eq 1 ] && { echo "prepared $RUN_DIR"; exit 0; }

say "coordinator (no experiment yet: it runs only what the alliance approves)"
alliance_start_coordinator --eval-sets "$RUN_DIR/evalsets" --http "127.0.0.1:${HTTP_PORT:-0}"
echo "  listening on $addr ($([ "${coord_tls[0]}" = --insecure ] && echo plaintext || echo TLS); log: $RUN_DIR/logs/coordinator.log)"
# The dashboard: the coordinator logs the HTTP view's port (and whether it has TLS: with
# the demo's certificate, whose CA the browser does not know, unless INSECURE=1).
for _ in $(seq 100); do grep -q "serving the HTTP view" "$RUN_DIR/logs/coordinator.log" && break; sleep 0.1; done
http_line=$(grep -m1 "serving the HTTP view" "$RUN_DIR/logs/coordinator.log" || true)
[ -n "$http_line" ] || { tail "$RUN_DIR/logs/coordinator.log"; echo "demo: the coordinator's HTTP view did not start" >&2; exit 1; }
http_port=$(sed -n 's/.*serving the HTTP view on [^ ]* (port \([0-9]*\)).*/\1/p' <<<"$http_line")
case $http_line in
    *"with TLS"*) dashboard="https://127.0.0.1:$http_port/"
                  dash_note="TLS with the demo's CA: trust $RUN_DIR/tls/ca.pem in the browser or accept the warning" ;;
    *) dashboard="http://127.0.0.1:$http_port/"; dash_note="plain HTTP, loopback only" ;;
esac
echo "$dashboard" >"$RUN_DIR/dashboard-url"
printf '  \033[1mdashboard: %s\033[0m (%s)\n' "$dashboard" "$dash_note"

say "workers (waiting for an approved experiment)"
for m in "${MEMBERS[@]}"; do
    site=(); [ "$m" = vnpt ] && site=(--site "$RUN_DIR/site-vnpt.yaml")
    alliance_start_worker "$m" "${site[@]}"
    echo "  $m: pid $!, corpus $RUN_DIR/corpus/$m${site:+, site policy site-vnpt.yaml} (log: $RUN_DIR/logs/$m.log)"
done

# propose_and_approve FILE REASON: hust proposes, fpt votes by hand, vnpt's worker votes.
propose_and_approve() {
    local out id
    out=$(as hust experiment propose "$1" --reason "$2") || { echo "$out" >&2; exit 1; }
    id=$(sed -n 's/^experiment \([^ ]*\) (policy.*/\1/p' <<<"$out")
    ids+=("$id")
    echo "  hust proposes $id ($2)"
    as fpt vote --proposal "$id" --yes | sed -n 's/^ *state: /  fpt votes yes by hand; state: /p' | tail -1
    for _ in $(seq 300); do
        as fpt experiment show "$id" >"$RUN_DIR/show.txt" 2>/dev/null
        grep -q "state: \(queued\|running\|finished\)" "$RUN_DIR/show.txt" && break
        sleep 0.1
    done
    grep -q "state: \(queued\|running\|finished\)" "$RUN_DIR/show.txt" ||
        { cat "$RUN_DIR/show.txt"; echo "demo: $id was not approved" >&2; exit 1; }
    grep "$id" "$RUN_DIR/logs/vnpt.log" | grep -i "vote" | tail -1 | sed 's/^[^ ]* worker [a-z]*: /  vnpt worker: /'
    sed -n 's/^ *state: /  approved: /p' "$RUN_DIR/show.txt"
}

say "experiments, by signed vote"
ids=()
propose_and_approve "$RUN_DIR/policy.yaml" "the demo recipe"

say "rounds"
# Print the coordinator's round closes as they happen, until every worker has left.
followup=0
# Once the first experiment runs, the follow-up is proposed and approved behind it.
followup_tick() {
    if [ $followup -eq 0 ] && grep -q "round 2 closed" "$RUN_DIR/logs/coordinator.log"; then
        followup=1
        propose_and_approve "$RUN_DIR/followup.yaml" "a short follow-up, queued behind"
    fi
}
alliance_follow_rounds 'round [0-9]+ closed|rejected update|experiment .* (started|finished)' followup_tick

say "validation loss of the global model on each member's held-out text (${ids[0]})"
"$bin/aulac" status --coordinator "$addr" "${client_tls[@]}" --experiment "${ids[0]}" --json \
    >"$RUN_DIR/status.json"
python3 - "$RUN_DIR" "${MEMBERS[@]}" <<'PY'
import json, re, sys
run, members = sys.argv[1], sys.argv[2:]
s = json.load(open(run + "/status.json"))
final = {}
for m in members:
    for line in open("%s/logs/%s.log" % (run, m), encoding="utf-8", errors="replace"):
        g = re.search(r"final model: validation loss ([0-9.]+)", line)
        if g and m not in final: final[m] = float(g.group(1))   # the first experiment's
def row(name, by):   # the members' losses and their mean (when every member has one)
    cells = ["%8s" % ("%.4f" % by[m] if by.get(m) is not None else "-") for m in members]
    have = [by[m] for m in members if by.get(m) is not None]
    mean = "%.4f" % (sum(have) / len(have)) if len(have) == len(members) else "-"
    print("  %-12s %s  %8s" % (name, "  ".join(cells), mean))
print("  %-12s %s  %8s" % ("model", "  ".join("%8s" % m for m in members), "mean"))
for r in s["rounds"]:
    by = {x["member"]: x["val_loss"] for x in r["members"]}
    row("round 0" if r["round"] == 1 else "round %d" % (r["round"] - 1), by)
row("final", final)
up = [x["upload_bytes"] for r in s["rounds"] for x in r["members"]]
PY

# The value of joining: each member alone, from the same round-0 model, with the compute it
# gave the alliance, against the federated model on its own held-out text.
say "the value of joining: each member alone, same compute, same round-0 model (${ids[0]})"
fed_hash=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_hash"])' \
    "$RUN_DIR/status.json")
joins=(); for m in "${MEMBERS[@]}"; do joins+=("$m=$RUN_DIR/corpus/$m"); done
BUILD=$BUILD scripts/value-of-joining.sh "$RUN_DIR/policy.yaml" \
    "$RUN_DIR/coordinator/models/$fed_hash" "$RUN_DIR/solo" "${joins[@]}"

say "contributions"
"$bin/aulac" status --coordinator "$addr" "${client_tls[@]}" | sed -n '/^member/,$p' | sed 's/^/  /'
python3 - "$RUN_DIR" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/status.json"))
ups = [x["upload_bytes"] for r in s["rounds"] for x in r["members"]]
dense = None
import re
for line in open(sys.argv[1] + "/logs/fpt.log", errors="replace"):
    g = re.search(r"dense fp32: (\d+)", line)
    if g: dense = int(g.group(1))
if ups and dense:
    print("  upload per member per round: mean %.0f bytes vs %d dense fp32 (%.1fx smaller)"
          % (sum(ups) / len(ups), dense, dense / (sum(ups) / len(ups))))
PY

say "experiments"
as fpt experiment list | sed 's/^/  /'

say "credits (contribution scores of every round, from the ledger)"
"$bin/aulac" credits --data-dir "$RUN_DIR/coordinator" | sed 's/^/  /'
"$bin/aulac" report --data-dir "$RUN_DIR/coordinator" --experiment "${ids[0]}" \
    --out "$RUN_DIR/report.html" | sed 's/^/  /'
echo "  the secretariat's report: $RUN_DIR/report.html"
say "credits verify (every score and credit recomputed from ledger + payloads + evaluation set)"
"$bin/aulac" credits verify --data-dir "$RUN_DIR/coordinator" --eval-sets "$RUN_DIR/evalsets" 2>&1 | sed 's/^/  /'

say "ledger"
"$bin/aulac" ledger verify --data-dir "$RUN_DIR/coordinator" | sed 's/^/  /'
say "ledger replay (every round's model rebuilt from round 0 + the stored payloads)"
"$bin/aulac" ledger replay --data-dir "$RUN_DIR/coordinator" 2>/dev/null | tail -3 | sed 's/^/  /'
"$bin/aulac" ledger show --data-dir "$RUN_DIR/coordinator" --json >"$RUN_DIR/ledger.jsonl"
python3 - "$RUN_DIR/ledger.jsonl" <<'PY'
import json, sys
trail, last = [], None
for line in open(sys.argv[1]):
    t = json.loads(line)["type"]
    if t == "update_accepted" and t == last:
        trail[-1][1] += 1
    else:
        trail.append([t, 1])
    last = t
words = [t if n == 1 else "%s x%d" % (t, n) for t, n in trail]
out = []   # a round (updates, round_closed, contribution_scores) repeated: "(...) x k"
i = 0
while i < len(words):
    g = words[i:i + 3]
    k = 1
    if len(g) == 3 and g[1] == "round_closed" and g[2] == "contribution_scores":
        while words[i + 3 * k:i + 3 * k + 3] == g:
            k += 1
    if k > 1:
        out.append("(%s) x%d" % (" ".join(g), k)); i += 3 * k
    else:
        out.append(words[i]); i += 1
print("  trail: " + " ".join(out))
PY
echo
echo "demo finished in $(( $(date +%s) - start )) s; everything is under $RUN_DIR/"
if [ "${HOLD:-0}" = 1 ]; then
    say "holding the coordinator up (HOLD=1)"
    echo "  dashboard: $dashboard ($dash_note)"
    echo "  coordinator: $addr, pid $coord_pid, log $RUN_DIR/logs/coordinator.log"
    echo "  press Ctrl-C to stop it"
    trap 'trap - INT TERM; echo; echo "demo: coordinator stopped"; exit 0' INT TERM
    wait "$coord_pid" || { echo "demo: the coordinator exited on its own" >&2; exit 1; }
fi
