#!/usr/bin/env bash
# Workers that vote for their members from their site policy (site.yaml
# governance.auto_vote: approve-if-allowed; worker/auto_vote.h), over TLS:
#   - the charter needs every member's approval for an experiment (quorum 1.0: 3 of 3);
#   - the coordinator starts with no --policy (idle); alpha's and beta's workers start
#     with auto_vote, beta's site refusing models over 50000 parameters;
#   - gamma proposes a charter amendment: both workers leave it alone, saying so once;
#   - alpha (researcher) proposes it-tiny and it-second (a larger model) with aulac
#     experiment propose: beta's worker votes yes on the first and no on the second,
#     logging its site's reason; alpha's worker never votes on its member's proposals;
#   - gamma votes by hand: it-tiny has 3 of 3, is approved and runs to completion;
#   - the ledger holds those votes and decisions; the workers exit 0 when idle.
# Exit 0 on success. Uses $BUILD (default build), a temp dir, an ephemeral port.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
make_members alpha alpha beta gamma
printf 'charter: {quorum: {roster: 0.5, experiments: 1.0, charter: 1.0}, proposers: [researcher]}\n' \
    >>"$T/roster.yaml"
"$BIN/aulac" tls init --dir "$T/tls" --name "auto vote test" >/dev/null
"$BIN/aulac" tls issue --ca-dir "$T/tls" --name coordinator --server >/dev/null

LOCAL_STEPS=6 write_policy 2 alpha beta
mv "$T/policy.yaml" "$T/first.yaml"
sed -e 's/name: it-tiny/name: it-second/' -e 's/n_embd: 32/n_embd: 64/' "$T/first.yaml" \
    >"$T/second.yaml"
printf 'schema: 1\nmember: alpha\ngovernance: { auto_vote: approve-if-allowed }\n' \
    >"$T/site-alpha.yaml"
printf 'schema: 1\nmember: beta\nlimits: { max_parameters: 50000 }\ngovernance:\n  auto_vote: approve-if-allowed\n' \
    >"$T/site-beta.yaml"
"$BIN/aulac" site check "$T/site-beta.yaml" --policy "$T/first.yaml" >"$T/out" ||
    fail "beta's site should allow the first experiment"
grep -q "^governance.auto_vote: approve-if-allowed" "$T/out" || { cat "$T/out"; fail "site check"; }
"$BIN/aulac" site check "$T/site-beta.yaml" --policy "$T/second.yaml" >/dev/null 2>&1 &&
    fail "beta's site should refuse the second experiment"
printf 'schema: 1\n' >"$T/site-none.yaml"
"$BIN/aulac" site check "$T/site-none.yaml" >"$T/out"
grep -q "^governance.auto_vote: never" "$T/out" || fail "site check: auto_vote's default"
"$BIN/aulac-worker" --help >"$T/help"
grep -q "auto_vote: approve-if-allowed" "$T/help" || fail "worker --help"

start_bg coordinator "$BIN/aulac-coordinator" --data-dir "$T/coord" \
    --key "$T/keys/coordinator.key" --roster "$T/roster.yaml" --listen 127.0.0.1:0 \
    --port-file "$T/port" --tls-cert "$T/tls/coordinator.pem" --tls-key "$T/tls/coordinator.key"
for _ in $(seq 150); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "the coordinator did not start"
ADDR=127.0.0.1:$(cat "$T/port")
grep -q "no experiment approved yet" "$T/logs/coordinator.log" || fail "the coordinator is not idle"
as() { local m=$1; shift; "$BIN/aulac" "$@" --coordinator "$ADDR" --member "$m" --key "$T/keys/$m.key" --tls-ca "$T/tls/ca.pem"; }

pids=()
for m in alpha beta; do
    start_bg "worker-$m" "$BIN/aulac-worker" --coordinator "$ADDR" --member "$m" \
        --key "$T/keys/$m.key" --data "$T/corpus/$m" --state-dir "$T/state/$m" \
        --tls-ca "$T/tls/ca.pem" --threads 1 --eval-windows 4 --exit-when-idle \
        --site "$T/site-$m.yaml" --verbose
    pids+=($LAST_PID)
done

note "gamma proposes a charter amendment: the workers leave it to a vote by hand"
as gamma charter show | sed -n '/^schema\|^quorum\|^proposers\|^proposal_expiry\|^concurrent\|^  /p' >"$T/charter.yaml"
sed -i 's/proposal_expiry_days: 7/proposal_expiry_days: 9/' "$T/charter.yaml"
grep -q "proposal_expiry_days: 9" "$T/charter.yaml" || { cat "$T/charter.yaml"; fail "charter text"; }
as gamma charter propose "$T/charter.yaml" >"$T/out" || { cat "$T/out"; fail "charter propose"; }
CHARTER=$(sed -n 's/^proposal \([0-9a-f]\{64\}\)$/\1/p' "$T/out")
[ -n "$CHARTER" ] || { cat "$T/out"; fail "no charter proposal hash"; }

note "alpha proposes it-tiny and it-second (a larger model, which beta's site refuses)"
propose() {   # propose FILE: prints the experiment id
    as alpha experiment propose "$1" --reason "auto vote test" >"$T/out" || { cat "$T/out" >&2; return 1; }
    sed -n 's/^experiment \([^ ]*\) (policy.*/\1/p' "$T/out"
}
ID1=$(propose "$T/first.yaml") && [ -n "$ID1" ] || fail "propose it-tiny"
ID2=$(propose "$T/second.yaml") && [ -n "$ID2" ] || fail "propose it-second"
voted() { grep -q "voted $1 for beta on experiment $2 " "$T/logs/worker-beta.log"; }
for _ in $(seq 200); do voted yes "$ID1" && voted no "$ID2" && break; sleep 0.1; done
voted yes "$ID1" || fail "beta's worker did not vote yes on $ID1"
voted no "$ID2" || fail "beta's worker did not vote no on $ID2"
grep -q "voted yes for beta on experiment $ID1 .*this site allows experiment it-tiny" \
    "$T/logs/worker-beta.log" || fail "beta's yes without the reason"
grep -q "voted no for beta on experiment $ID2 .*this site refuses it: experiment it-second: the model has [0-9]* parameters, over this site's limits.max_parameters 50000" \
    "$T/logs/worker-beta.log" || fail "beta's no without the site's reason"
note "beta: $(grep -o "voted no for beta.*" "$T/logs/worker-beta.log")"

# (each worker lists the proposals again before it-tiny runs: the charter is said once)
# (the listing that left it alone ends with one such line: the next is a second)
listed_after() { [ "$(sed -n "/$1/,\$p" "$T/logs/worker-$2.log" | grep -c "auto_vote: listed [0-9]* open")" -ge 2 ]; }
for m in alpha beta; do
    for _ in $(seq 200); do listed_after "leaves proposal" $m && break; sleep 0.1; done
    listed_after "leaves proposal" $m || fail "$m's worker did not list the proposals again"
done

note "gamma votes by hand: it-tiny has 3 of 3 and runs"
as gamma vote --proposal "$ID1" --yes >"$T/out" || { cat "$T/out"; fail "gamma's vote"; }
grep -q "state: approved" "$T/out" || { cat "$T/out"; fail "$ID1 not approved by gamma's vote"; }
as gamma experiment show "$ID1" >"$T/show1" || fail "show $ID1"
note "$ID1: $(grep -o 'votes:.*' "$T/show1")"

for i in 0 1; do
    rc=0; wait_pid "${pids[$i]}" 120 || rc=$?
    [ $rc -eq 0 ] || fail "worker $i exited $rc"
done
grep -q "experiment $ID1 finished" "$T/logs/coordinator.log" || fail "$ID1 did not run to completion"
grep -q "voted" "$T/logs/worker-alpha.log" && fail "alpha's worker voted on its own member's proposals"
for m in alpha beta; do
    [ "$(grep -c "leaves proposal ${CHARTER:0:16}… by gamma alone: .*a charter proposal is left to a vote by hand" \
        "$T/logs/worker-$m.log")" = 1 ] || fail "$m's worker did not say once that it leaves the charter alone"
done

as gamma experiment show "$ID2" >"$T/show2" || fail "show $ID2"
"$BIN/aulac" ledger verify --data-dir "$T/coord" | grep -q ": OK" || fail "ledger verify"
"$BIN/aulac" ledger show --data-dir "$T/coord" --json >"$T/ledger.jsonl"
H1=$(sed -n 's/^  proposal: //p' "$T/show1")
H2=$(sed -n 's/^  proposal: //p' "$T/show2")
python3 - "$T/ledger.jsonl" "$H1" "$H2" "$CHARTER" "$ID1" <<'PY' || fail "ledger contents"
import json, sys
path, h1, h2, charter, id1 = sys.argv[1:]
entries = [json.loads(l) for l in open(path)]
votes = {}
for e in entries:
    if e["type"] == "vote":
        votes.setdefault(e["policy_hash"], []).append((e["voter"], e["approve"]))
assert sorted(votes.get(h1, [])) == [("beta", True), ("gamma", True)], votes
assert votes.get(h2) == [("beta", False)], votes
assert charter not in votes, votes
decided = [e for e in entries if e["type"] == "proposal_decided" and e["proposal_hash"] == h1]
assert len(decided) == 1 and decided[0]["outcome"] == 1, decided   # approved
assert (decided[0]["yes"], decided[0]["needed"], decided[0]["voters"]) == (3, 3, 3), decided
decided = [e for e in entries if e["type"] == "proposal_decided" and e["proposal_hash"] == h2]
assert len(decided) == 1 and decided[0]["outcome"] == 2 and decided[0]["no"] == 1, decided  # rejected
kinds = [(e["type"], e.get("experiment", "")) for e in entries]
assert ("experiment_started", id1) in kinds and ("experiment_finished", id1) in kinds, kinds
print("ledger: " + " ".join(e["type"] for e in entries if not e["type"].startswith("update_")))
PY
note "ok: the workers voted from their site policies; it-tiny ran, it-second got beta's no"
