#!/usr/bin/env bash
# The whole flow of experiments the alliance decides (issue 11), over TLS, with the
# coordinator killed (SIGKILL) and restarted without --policy in each phase:
#   1. roster fpt, vnpt, hust (researcher) and viettel; the charter needs 0.67 of the
#      members for an experiment (3 of 4) and lets only researchers propose. vnpt's
#      worker votes from its site policy; viettel's site refuses every model over 1000
#      parameters: it stays up, sits every experiment out, says why and never uploads.
#   2. mid-vote: hust proposes A, vnpt's worker votes yes; a second vote is refused;
#      restart: A is still open with both votes; fpt votes: A is approved and runs.
#   3. mid-queue: hust proposes B while A's only round waits for hust's worker (held
#      with SIGSTOP); fpt votes by hand, vnpt's worker from its site: B is queued;
#      restart: A resumes with its two updates, B still queued, then runs after A.
#   4. mid-experiment: B's first round waits for fpt's worker (held); restart: B
#      resumes and finishes. No worker is ever restarted; all exit 0 when idle.
#   5. refusals over the real programs, each message asserted; the coordinator still
#      serves after each and its ledger did not grow.
#   6. the ledger verifies; its governance and experiment trail is the expected one.
# A runs for every member (participation.members: all), viettel included, and needs
# min_members 3 with a 2 s deadline: its round closes once fpt, vnpt and hust reported
# and the deadline passed (viettel never reports). B lists fpt, vnpt and hust only:
# viettel, which sat A out, is told of B (it is not one of B's members) and sits it out
# too. The held workers make each phase deterministic: no round reaches 3 updates
# without the held member, however fast or slow the machine.
# Exit 0 on success. Uses $BUILD (default build), a temp dir, an ephemeral port.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
MEMBERS=(fpt vnpt hust viettel)
declare -A CORPUS=([fpt]=alpha [vnpt]=beta [hust]=gamma [viettel]=alpha)
make_members hust "${MEMBERS[@]}"
printf 'charter:\n  quorum: {roster: 0.66, experiments: 0.67, charter: 0.75}\n  proposers: [researcher]\n' \
    >>"$T/roster.yaml"
"$BIN/aulac" tls init --dir "$T/tls" --name "flow test" >/dev/null
"$BIN/aulac" tls issue --ca-dir "$T/tls" --name coordinator --server >/dev/null
TLS=(--tls-ca "$T/tls/ca.pem")

# A: one round, every member; B: two rounds from another seed, fpt, vnpt and hust.
LOCAL_STEPS=6 write_policy 1 hust fpt vnpt
sed 's/^participation: .*/participation: { members: all, min_members: 3, round_deadline_s: 2, grace_s: 0 }/' \
    "$T/policy.yaml" >"$T/a.yaml"
sed -e 's/name: it-tiny/name: it-b/' -e 's/seed: 7/seed: 8/' -e 's/^  rounds: 1$/  rounds: 2/' \
    -e 's/members: all/members: [fpt, vnpt, hust]/' "$T/a.yaml" >"$T/b.yaml"
grep -q "^  rounds: 2$" "$T/b.yaml" && grep -q "members: all" "$T/a.yaml" &&
    grep -q "members: \[fpt, vnpt, hust\]" "$T/b.yaml" || fail "a.yaml, b.yaml"
printf 'schema: 1\nmember: vnpt\ngovernance: { auto_vote: approve-if-allowed }\n' >"$T/site-vnpt.yaml"
printf 'schema: 1\nmember: viettel\nlimits: { max_parameters: 1000 }\n' >"$T/site-viettel.yaml"
for p in a b; do
    "$BIN/aulac" site check "$T/site-vnpt.yaml" --policy "$T/$p.yaml" >/dev/null ||
        fail "vnpt's site should allow $p.yaml"
    "$BIN/aulac" site check "$T/site-viettel.yaml" --policy "$T/$p.yaml" >/dev/null 2>&1 &&
        fail "viettel's site should refuse $p.yaml"
done

CLOG=$T/logs/coordinator.log
coordinator() {   # coordinator PORT: the same command line at the start and each restart
    rm -f "$T/port"
    start_bg coordinator "$BIN/aulac-coordinator" --data-dir "$T/coord" \
        --key "$T/keys/coordinator.key" --roster "$T/roster.yaml" --listen "127.0.0.1:$1" \
        --port-file "$T/port" --tls-cert "$T/tls/coordinator.pem" --tls-key "$T/tls/coordinator.key"
    COORD_PID=$LAST_PID
    local i   # (the port file is written once it serves)
    for i in $(seq 300); do [ -s "$T/port" ] && break; sleep 0.1; done
    [ -s "$T/port" ] || fail "the coordinator did not start"
    PORT=$(cat "$T/port")
    ADDR=127.0.0.1:$PORT
}
RESTARTS=0
restart() {   # restart PHASE: SIGKILL, then the same command line on the same port
    kill -9 "$COORD_PID"
    wait "$COORD_PID" 2>/dev/null || true
    RESTARTS=$((RESTARTS + 1))
    mv "$CLOG" "$T/logs/coordinator-$RESTARTS.log"
    for p in "${WPIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || fail "a worker exited while the coordinator was down"
    done
    coordinator "$PORT"
    note "$1: killed the coordinator (SIGKILL) and restarted it without --policy"
}
# wait_log FILE REGEX SECONDS: until FILE has a line matching REGEX (grep -E).
wait_log() {
    local i
    for i in $(seq $(($3 * 10))); do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
as() { local m=$1; shift; "$BIN/aulac" "$@" --coordinator "$ADDR" --member "$m" --key "$T/keys/$m.key" "${TLS[@]}"; }
status() { "$BIN/aulac" status --coordinator "$ADDR" "${TLS[@]}" --json; }
field() { status | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
show_state() { as fpt experiment show "$1" | sed -n 's/^  state: //p'; }
# wait_state ID STATE SECONDS
wait_state() {
    local i
    for i in $(seq $(($3 * 5))); do [ "$(show_state "$1")" = "$2" ] && return 0; sleep 0.2; done
    return 1
}
# refused WHAT REGEX CMD...: CMD fails with a message matching REGEX (grep -E); the
# coordinator still answers aulac status, and its ledger did not grow.
refused() {
    local what=$1 re=$2 before after
    shift 2
    before=$(field ledger_size) || fail "status before: $what"
    if "$@" >"$T/out" 2>&1; then cat "$T/out"; fail "$what was accepted"; fi
    grep -qE -- "$re" "$T/out" || { cat "$T/out"; fail "$what: not the expected refusal"; }
    after=$(field ledger_size) || fail "the coordinator stopped serving after: $what"
    [ "$before" = "$after" ] || fail "$what: the ledger grew from $before to $after entries"
    note "refused, $what: $(grep -E -- "$re" "$T/out" | head -1)"
}

coordinator 0
grep -q "no experiment approved yet" "$CLOG" || fail "the coordinator is not idle"
WPIDS=()
declare -A WPID
for m in "${MEMBERS[@]}"; do
    site=()
    [ -f "$T/site-$m.yaml" ] && site=(--site "$T/site-$m.yaml")
    start_bg "worker-$m" "$BIN/aulac-worker" --coordinator "$ADDR" --member "$m" \
        --key "$T/keys/$m.key" --data "$T/corpus/${CORPUS[$m]}" --state-dir "$T/state/$m" \
        "${TLS[@]}" --threads 1 --eval-windows 4 --exit-when-idle "${site[@]}"
    WPIDS+=("$LAST_PID")
    WPID[$m]=$LAST_PID
done
for m in "${MEMBERS[@]}"; do
    wait_log "$T/logs/worker-$m.log" "runs no experiment yet" 60 || fail "$m's worker did not connect"
done

note "phase 2, mid-vote: hust proposes A; vnpt's worker votes; restart before fpt votes"
propose() {   # propose FILE: hust's proposal; prints the experiment id
    as hust experiment propose "$1" >"$T/out" || { cat "$T/out" >&2; return 1; }
    sed -n 's/^experiment \([^ ]*\) (policy.*/\1/p' "$T/out"
}
A=$(propose "$T/a.yaml") && [ -n "$A" ] || fail "propose A"
wait_log "$T/logs/worker-vnpt.log" "voted yes for vnpt on experiment $A " 60 ||
    fail "vnpt's worker did not vote on $A"
as fpt experiment show "$A" >"$T/show"
grep -q "^  state: proposed$" "$T/show" || { cat "$T/show"; fail "$A is not open after 2 of 3 votes"; }
refused "a second vote" "'vnpt' has already voted yes on it \(ledger #[0-9]+\)" \
    as vnpt vote --proposal "$A" --yes
restart "phase 2"
as fpt experiment show "$A" >"$T/show"
grep -q "^  state: proposed$" "$T/show" &&
    grep -q "^  votes: 2 of 3 needed, 0 no, 4 voter(s); voted: hust vnpt$" "$T/show" ||
    { cat "$T/show"; fail "$A did not keep its votes across the restart"; }
refused "a second vote after the restart" "'vnpt' has already voted yes on it" \
    as vnpt vote --proposal "$A" --yes
# hust's worker is held until phase 3: A's round waits for it.
kill -STOP "${WPID[hust]}"
as fpt vote --proposal "$A" --yes >"$T/out" || { cat "$T/out"; fail "fpt's vote"; }
grep -q "state: approved" "$T/out" || { cat "$T/out"; fail "$A not approved by fpt's vote"; }
wait_log "$CLOG" "experiment $A started" 30 || fail "$A did not start"
wait_log "$CLOG" "round 1: accepted .* 2/4," 60 || fail "fpt's and vnpt's updates for $A"
wait_log "$T/logs/worker-viettel.log" "refuses experiment $A: .*max_parameters 1000; sitting it out" 30 ||
    fail "viettel did not say why it sits $A out"

note "phase 3, mid-queue: hust proposes B while A runs; restart with B queued"
B=$(propose "$T/b.yaml") && [ -n "$B" ] || fail "propose B"
as fpt vote --proposal "$B" --yes >/dev/null || fail "fpt's vote on $B"
wait_log "$T/logs/worker-vnpt.log" "voted yes for vnpt on experiment $B " 60 ||
    fail "vnpt's worker did not vote on $B"
wait_state "$B" queued 30 || fail "$B is not queued: $(show_state "$B")"
wait_log "$CLOG" "round 1 passed its deadline with 2 update\(s\); waiting for min_members = 3" 30 ||
    fail "A's round is not held for hust"
[ "$(field queue_length)" = 1 ] && [ "$(field experiment)" = "$A" ] ||
    { status; fail "status before the restart"; }
restart "phase 3"
grep -q "resumed experiment $A at round 1 of 1 with 2 accepted update(s)" "$CLOG" ||
    fail "A did not resume with its two updates"
[ "$(field queue_length)" = 1 ] && [ "$(show_state "$B")" = queued ] || fail "B is no longer queued"
# fpt's worker is held until phase 4: B's first round waits for it.
kill -STOP "${WPID[fpt]}"
kill -CONT "${WPID[hust]}"
wait_log "$CLOG" "experiment $A finished" 60 || fail "A did not finish"
wait_log "$CLOG" "experiment $B started" 30 || fail "B did not start after A"

note "phase 4, mid-experiment: restart during B"
b_updates() { sed -n "/experiment $B started/,\$p" "$CLOG" | grep -q "round 1: accepted .* 2/3,"; }
for _ in $(seq 600); do b_updates && break; sleep 0.1; done
b_updates || fail "vnpt's and hust's updates for $B"
restart "phase 4"
grep -q "resumed experiment $B at round 1 of 2 with 2 accepted update(s)" "$CLOG" ||
    fail "B did not resume with its two updates"
kill -CONT "${WPID[fpt]}"
for i in "${!MEMBERS[@]}"; do
    rc=0; wait_pid "${WPIDS[$i]}" 120 || rc=$?
    [ $rc -eq 0 ] || fail "${MEMBERS[$i]}'s worker exited $rc"
done
grep -q "experiment $B finished after 2 rounds" "$CLOG" || fail "B did not finish"
for m in fpt vnpt hust; do
    grep -q "joined experiment $B " "$T/logs/worker-$m.log" || fail "$m's worker did not move on to B"
done
grep -q "refuses experiment $B: experiment it-b: this site (viettel) is not among its participation.members; sitting it out" \
    "$T/logs/worker-viettel.log" || fail "viettel did not say why it sits B out"
grep -q "no experiment runs and none is queued" "$T/logs/worker-viettel.log" || fail "viettel left early"
note "viettel: $(grep -o "this site's policy refuses experiment $B.*" "$T/logs/worker-viettel.log")"

note "phase 5: refusals"
sed -e 's/name: it-tiny/name: it-c/' "$T/a.yaml" >"$T/c.yaml"
refused "a proposal from a non-researcher" \
    "member fpt has roles \[member\]; proposing an experiment needs the role researcher \(charter.proposers\)" \
    as fpt experiment propose "$T/c.yaml"
sed 's/rounds: 1/rounds: one/; s/batch_size: 4/batch_size: 0/' "$T/c.yaml" >"$T/bad.yaml"
refused "a policy failing the schema" \
    "^$T/bad.yaml:6:11: training.rounds: expected a positive integer, got \"one\"$" \
    as hust experiment propose "$T/bad.yaml"
grep -qx "$T/bad.yaml:8:15: training.batch_size: expected an integer in \[1, 65536\], got 0" "$T/out" ||
    { cat "$T/out"; fail "not every schema error"; }
refused "a duplicate proposal of A" \
    "this policy \(hash [0-9a-f]{16}…\) was already proposed by hust as experiment $A \(ledger #1, approved\); a policy is proposed once: change metadata.name or model.seed to propose it again$" \
    as hust experiment propose "$T/a.yaml"
refused "a vote on an unknown experiment" \
    "no experiment it-nope-12345678 is known to the coordinator \(aulac experiment list shows them\)" \
    as fpt vote --proposal it-nope-12345678 --yes
refused "a vote on an unknown proposal" \
    "aulac vote: the coordinator knows no proposal 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef$" \
    as fpt vote --proposal 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --yes
refused "a vote after the proposal is decided" \
    "the coordinator refused the vote: the proposal is approved: votes are closed$" \
    as viettel vote --proposal "$A" --no
refused "a propose-cancel of finished A" \
    "experiment $A has finished after 1 round\(s\), last model [0-9a-f]{16}…; there is nothing to cancel \(its last model and ledger trail stay\)$" \
    as fpt experiment propose-cancel "$A"

note "phase 6: the ledger"
as fpt experiment list >"$T/list"
grep -qE "^$A +finished +hust +3/3 " "$T/list" && grep -qE "^$B +finished +hust +3/3 " "$T/list" ||
    { cat "$T/list"; fail "experiment list"; }
"$BIN/aulac" ledger verify --data-dir "$T/coord" >"$T/out" || { cat "$T/out"; fail "ledger verify"; }
grep -q ": OK" "$T/out" || { cat "$T/out"; fail "ledger verify"; }
"$BIN/aulac" ledger show --data-dir "$T/coord" --json >"$T/ledger.jsonl"
python3 - "$T/ledger.jsonl" "$A" "$B" <<'PY' || fail "ledger contents"
import json, sys
path, a, b = sys.argv[1:]
entries = [json.loads(l) for l in open(path)]
trail, shown = [], []
for e in entries:
    t = e["type"]
    if t.startswith("update_") or t in ("round_closed", "contribution_scores", "credits"):
        continue
    trail.append(t)
    x = e.get("experiment", "")
    shown.append("%s(%s)" % (t, e["voter"]) if t == "vote" else "%s %s" % (t, x) if x else t)
want = ["genesis", "policy_proposed", "vote", "vote", "proposal_decided", "experiment_started",
        "policy_proposed", "vote", "vote", "proposal_decided", "experiment_finished",
        "experiment_started", "experiment_finished"]
print("trail: " + ", ".join(shown))
assert trail == want, trail
ids = [e.get("experiment") for e in entries if e["type"] in ("policy_proposed", "experiment_started", "experiment_finished")]
assert ids == [a, a, b, a, b, b], ids
votes = {}
for e in entries:
    if e["type"] == "vote":
        votes.setdefault(e["policy_hash"], set()).add((e["voter"], e["approve"]))
assert sorted(votes.values(), key=sorted) == sorted([{("vnpt", True), ("fpt", True)}] * 2, key=sorted), votes
for e in entries:
    if e["type"] == "proposal_decided":
        assert e["outcome"] == 1 and (e["yes"], e["needed"], e["voters"]) == (3, 3, 4), e
acc = {}
for e in entries:
    if e["type"] == "update_accepted":
        acc.setdefault(e["experiment"], []).append((e["round"], e["member"]))
    if e["type"] == "round_closed":
        assert "viettel" not in e["participants"], e
assert not [e for e in entries if e["type"].startswith("update_") and e["member"] == "viettel"], acc
assert sorted(acc[a]) == [(1, m) for m in ("fpt", "hust", "vnpt")], acc[a]
assert sorted(acc[b]) == [(r, m) for r in (1, 2) for m in ("fpt", "hust", "vnpt")], acc[b]
PY
note "ok: proposals, votes, queue and experiments survived $RESTARTS restarts; viettel sat both out"
