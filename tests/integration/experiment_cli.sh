#!/usr/bin/env bash
# Experiments the alliance decides, with the real programs (aulac, aulac-coordinator):
#   - a member without the researcher role is refused, naming the role;
#   - a policy that fails the schema comes back as FILE:line:col: path: message;
#   - hust (researcher) proposes, vnpt votes by experiment id, the experiment is queued;
#   - aulac experiment show ID --policy rebuilds the file byte for byte, same hash;
#   - withdraw, propose-cancel with a vote, a charter amendment with its own quorum;
#   - --policy with --operator-key files the proposal once and says so;
#   - the ledger verifies, governance included; every new command has --help.
# Exit 0 on success. Uses $BUILD (default build), a temp dir, an ephemeral port.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

A() { "$BIN/aulac" "$@"; }
as() { local m=$1; shift; A "$@" --coordinator "$ADDR" --member "$m" --key "$T/keys/$m.key" --insecure; }

for c in "experiment" "experiment propose" "charter" "charter show" "vote"; do
    # shellcheck disable=SC2086
    A $c --help >/dev/null || fail "aulac $c --help"
done
help=$("$BIN/aulac-coordinator" --help); grep -q -- "--operator-key" <<<"$help" || fail "coordinator --help"

make_members hust fpt vnpt hust
printf 'charter:\n  quorum: {roster: 0.66, experiments: 0.66, charter: 0.67}\n' >>"$T/roster.yaml"
write_policy 2 fpt vnpt hust
OPERATOR=hust   # the coordinator's --policy shortcut files it-tiny as hust's proposal
start_coordinator
grep -q "filed experiment it-tiny-[0-9a-f]* as a proposal signed by member hust .*open: 1 of 2" \
    "$T/logs/coordinator.log" || fail "the operator's proposal was not filed (open)"
ID0=$(grep -o "filed experiment it-tiny-[0-9a-f]*" "$T/logs/coordinator.log" | head -1 | cut -d' ' -f3)
as fpt vote --proposal "$ID0" --yes | grep -q "state: approved" || fail "it-tiny not approved"
for _ in $(seq 100); do grep -q "experiment $ID0 started" "$T/logs/coordinator.log" && break; sleep 0.1; done
grep -q "experiment $ID0 started" "$T/logs/coordinator.log" || fail "it-tiny did not start"

note "a non-researcher is refused, naming the role"
sed 's/name: it-tiny/name: it-second/' "$T/policy.yaml" >"$T/p.yaml"
as fpt experiment propose "$T/p.yaml" >"$T/out" 2>&1 && fail "fpt's proposal was accepted"
grep -q "member fpt has roles \[member\]; proposing an experiment needs the role researcher (charter.proposers)" "$T/out" \
    || { cat "$T/out"; fail "no role in the refusal"; }

note "schema errors come back as FILE:line:col: path: message, every one"
sed 's/rounds: 2/rounds: two/; s/batch_size: 4/batch_size: 0/' "$T/p.yaml" >"$T/bad.yaml"
as hust experiment propose "$T/bad.yaml" >"$T/out" 2>&1 && fail "a bad policy was accepted"
grep -q "^$T/bad.yaml:6:11: training.rounds:" "$T/out" || { cat "$T/out"; fail "no file:line:col"; }
grep -q "^$T/bad.yaml:8:15: training.batch_size:" "$T/out" || { cat "$T/out"; fail "not every error"; }

note "hust proposes, vnpt votes by experiment id: queued"
as hust experiment propose "$T/p.yaml" --reason "a second run" >"$T/out" || { cat "$T/out"; fail "propose"; }
ID=$(sed -n 's/^experiment \([^ ]*\) (policy.*/\1/p' "$T/out")
[ -n "$ID" ] || { cat "$T/out"; fail "no experiment id printed"; }
as vnpt vote --proposal "$ID" --yes >"$T/out" || { cat "$T/out"; fail "vote"; }
grep -q "state: approved" "$T/out" || { cat "$T/out"; fail "not approved"; }
as fpt experiment list >"$T/out"
grep -q "^$ID *queued *hust *2/2" "$T/out" || { cat "$T/out"; fail "list"; }

note "show --policy gives the file back byte for byte"
as fpt experiment show "$ID" --policy >"$T/back.yaml"
cmp "$T/p.yaml" "$T/back.yaml" || fail "the policy from the ledger differs from the file"
[ "$(A policy check "$T/p.yaml" | grep '^hash')" = "$(A policy check "$T/back.yaml" | grep '^hash')" ] \
    || fail "hashes differ"
as fpt experiment show "$ID" | grep -q "state: queued" || fail "show"

note "policy diff by experiment id (the text from the ledger) and by file"
as fpt policy diff "$ID" "$T/p.yaml" | grep -q "are the same policy" || fail "diff id = file"
rc=0; as fpt policy diff "$ID0" "$ID" >"$T/out" || rc=$?
[ $rc = 1 ] && grep -q "^metadata.name: it-tiny -> it-second$" "$T/out" || { cat "$T/out"; fail "diff of two ids"; }
rc=0; as fpt policy diff "$ID0" nope-12345678 >"$T/out" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "no experiment nope-12345678 is known" "$T/out" || { cat "$T/out"; fail "diff of an unknown id"; }
rc=0; A policy diff "$ID0" "$T/p.yaml" >"$T/out" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q "cannot read\|No such file" "$T/out" || { cat "$T/out"; fail "diff of an id without a connection"; }

note "withdraw; propose-cancel and its vote"
sed 's/name: it-tiny/name: it-third/' "$T/policy.yaml" >"$T/p3.yaml"
as hust experiment propose "$T/p3.yaml" >"$T/out" || fail "propose p3"
ID3=$(sed -n 's/^experiment \([^ ]*\) (policy.*/\1/p' "$T/out")
as fpt experiment withdraw "$ID3" >"$T/out" 2>&1 && fail "fpt withdrew hust's proposal"
grep -q "only its proposer hust may withdraw it" "$T/out" || { cat "$T/out"; fail "withdraw refusal"; }
as hust experiment withdraw "$ID3" >/dev/null || fail "withdraw"
as fpt experiment propose-cancel "$ID" --reason "changed our minds" >"$T/out" || { cat "$T/out"; fail "propose-cancel"; }
H=$(sed -n 's/^proposal \([0-9a-f]\{64\}\)$/\1/p' "$T/out")
as hust vote --proposal "$H" --yes >/dev/null || fail "cancel vote"
as fpt experiment list >"$T/out"
grep -q "^$ID *cancelled" "$T/out" && grep -q "^$ID3 *withdrawn" "$T/out" || { cat "$T/out"; fail "states"; }

note "the charter: shown, amended with its own quorum (all three of three)"
as fpt charter show >"$T/charter.yaml"
grep -q "experiments: 0.66" "$T/charter.yaml" || fail "charter show"
sed 's/experiments: 0.66/experiments: 0.5/' "$T/charter.yaml" >"$T/amend.yaml"
as fpt charter propose "$T/amend.yaml" >"$T/out" || { cat "$T/out"; fail "charter propose"; }
H=$(sed -n 's/^proposal \([0-9a-f]\{64\}\)$/\1/p' "$T/out")
as vnpt vote --proposal "$H" --yes | grep -q "state: open" || fail "one vote passed the charter"
as hust vote --proposal "$H" --yes | grep -q "state: approved" || fail "the charter did not pass"
as fpt charter show | grep -q "experiments: 0.5$" || fail "the new charter is not in force"

note "--policy with --operator-key files the proposal once, and says so"
kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
start_coordinator
grep -q "was already proposed (ledger #" "$T/logs/coordinator.log" || fail "filed twice"
as fpt experiment list | grep -q "^$ID0 *[a-z]* *hust" || fail "operator proposal not listed"

note "the ledger verifies, every motion, vote and decision included"
kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
A ledger verify --data-dir "$T/coord" >"$T/out" || { cat "$T/out"; fail "ledger verify"; }
grep -q "governance: 5 motion(s)" "$T/out" || { cat "$T/out"; fail "governance line"; }
grep -q "the charter was amended 1 time(s)" "$T/out" || { cat "$T/out"; fail "charter line"; }
echo "experiment_cli: ok"
