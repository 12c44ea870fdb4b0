#!/usr/bin/env bash
# Bad input is refused with a message that says what and where, and the coordinator
# keeps serving: a malformed policy, a malformed roster, policy, site and roster files
# that are FIFOs, devices, too large or ambiguous YAML, a port in use, missing and
# empty corpus directories, a world-readable key, unknown command-line arguments
# (bench/compression --diloco's too).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

expect() {  # expect NAME RC PATTERN CMD...: CMD exits RC and prints PATTERN
    local name=$1 want=$2 pattern=$3 rc=0; shift 3
    timeout 60 "$@" >"$T/logs/$name.log" 2>&1 || rc=$?
    [ "$rc" -eq "$want" ] || { cat "$T/logs/$name.log" >&2; fail "$name: exit $rc, expected $want"; }
    grep -qE -- "$pattern" "$T/logs/$name.log" || { cat "$T/logs/$name.log" >&2; fail "$name: no '$pattern'"; }
    note "$name: $(grep -E -- "$pattern" "$T/logs/$name.log" | head -1 | sed 's/^[^ ]*Z [a-z]* [a-z]*: //')"
}

make_corpora
make_alliance alpha beta
write_policy 2 alpha beta

# Policies and rosters with errors name file:line:column.
sed 's/local_steps: 12/local_steps: twelve/' "$T/policy.yaml" >"$T/bad-policy.yaml"
expect bad-policy 1 'bad-policy.yaml:[0-9]+:[0-9]+: training.local_steps' \
    "$BIN/aulac-coordinator" --data-dir "$T/c1" --key "$T/keys/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/bad-policy.yaml" --operator-key "$T/keys/alpha.key" --listen 127.0.0.1:0 --insecure
printf 'schema: 1\nmetadata: { name: x }\nmodel: { n_layer: 1, n_head: 3, n_embd: 32 }\n' >"$T/bad2.yaml"
expect bad-policy-heads 1 'bad2.yaml:[0-9]+:[0-9]+' "$BIN/aulac" policy check "$T/bad2.yaml"
sed 's/public_key: .*/public_key: not-base64!/' "$T/roster.yaml" >"$T/bad-roster.yaml"
expect bad-roster 1 'bad-roster.yaml:[0-9]+:[0-9]+: members\[0\].public_key' \
    "$BIN/aulac-coordinator" --data-dir "$T/c2" --key "$T/keys/coordinator.key" \
    --roster "$T/bad-roster.yaml" --policy "$T/policy.yaml" --operator-key "$T/keys/alpha.key" --listen 127.0.0.1:0 --insecure
# A rule the members cannot run is refused at start too, with the checker's message:
# multi_krum tolerating one faulty member needs 2f + 3 = 5, and the policy lists 2.
sed 's/rule: fedavg,/rule: multi_krum, byzantine: 1,/' "$T/policy.yaml" >"$T/krum.yaml"
expect coord-policy-krum 1 'krum.yaml:[0-9]+:[0-9]+: aggregation.byzantine: multi_krum with byzantine 1 needs 2f \+ 3 = 5 updates a round, and participation.members lists only 2 members' \
    "$BIN/aulac-coordinator" --data-dir "$T/c6" --key "$T/keys/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/krum.yaml" --operator-key "$T/keys/alpha.key" --listen 127.0.0.1:0 --insecure
expect missing-policy 1 'nope.yaml' \
    "$BIN/aulac-coordinator" --data-dir "$T/c3" --key "$T/keys/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/nope.yaml" --operator-key "$T/keys/alpha.key" --listen 127.0.0.1:0 --insecure

# Policy, site and roster files: nothing but a regular file is read (a FIFO would hang
# the reader), the size limit is stated, and what YAML readers disagree on is refused.
mkfifo "$T/fifo.yaml"
expect policy-fifo 1 'fifo.yaml: cannot read: is a FIFO \(named pipe\), not a regular file' \
    "$BIN/aulac" policy check "$T/fifo.yaml"
expect coord-policy-fifo 1 'fifo.yaml: cannot read: is a FIFO' \
    "$BIN/aulac-coordinator" --data-dir "$T/c5" --key "$T/keys/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/fifo.yaml" --operator-key "$T/keys/alpha.key" --listen 127.0.0.1:0 --insecure
expect roster-fifo 1 'fifo.yaml: cannot read: is a FIFO' \
    "$BIN/aulac" roster show --roster "$T/fifo.yaml"
expect policy-dev-zero 1 '/dev/zero: cannot read: is a character device, not a regular file' \
    "$BIN/aulac" policy check /dev/zero
expect policy-dir 1 'cannot read: is a directory' "$BIN/aulac" policy check "$T"
{ cat "$T/policy.yaml"; head -c 1100000 /dev/zero | tr '\0' '#'; } >"$T/big.yaml"
expect policy-too-large 1 'big.yaml: is [0-9]+ bytes, over the 1 MiB limit for policy files' \
    "$BIN/aulac" policy check "$T/big.yaml"
{ printf '%%YAML 1.1\n---\n'; cat "$T/policy.yaml"; } >"$T/yaml11.yaml"
expect policy-yaml11 1 'yaml11.yaml:1:1: %YAML 1.1: policy files are YAML 1.2' \
    "$BIN/aulac" policy check "$T/yaml11.yaml"
sed 's/rounds: \([0-9]*\)/rounds: 0\1/' "$T/policy.yaml" >"$T/octal.yaml"
expect policy-leading-zero 1 'octal.yaml:[0-9]+:[0-9]+: training.rounds: 02 has a leading zero' \
    "$BIN/aulac" policy check "$T/octal.yaml"
sed 's/n_layer: 1, n_head: 2, n_embd: 32/n_layer: 1024, n_head: 64, n_embd: 65536/' \
    "$T/policy.yaml" >"$T/huge.yaml"
expect policy-too-many-params 1 'huge.yaml:3:1: model: the model has [0-9]+ parameters' \
    "$BIN/aulac" policy check "$T/huge.yaml"
expect policy-help 0 'usage: aulac policy check FILE' "$BIN/aulac" policy check --help
sed 's/members: \[[^]]*\]/members: all/' "$T/policy.yaml" >"$T/everyone.yaml"
expect policy-everyone 0 'every roster member' "$BIN/aulac" policy check "$T/everyone.yaml"
sed 's/members: \[[^]]*\]/members: []/' "$T/policy.yaml" >"$T/nobody.yaml"
expect policy-nobody 1 'nobody.yaml:[0-9]+:[0-9]+: participation.members: an empty list names nobody; write `all`' \
    "$BIN/aulac" policy check "$T/nobody.yaml"
printf 'schema: 1\nmember: alpha\nlimits: { max_rounds: 1 }\n' >"$T/site.yaml"
expect site-ok 0 'site.yaml: ok' "$BIN/aulac" site check "$T/site.yaml"
expect site-refuses 1 'site.yaml: refuses experiment it-tiny: .*max_rounds 1' \
    "$BIN/aulac" site check "$T/site.yaml" --policy "$T/policy.yaml"
printf 'schema: 1\nlimits: { max_rounds: 010 }\n' >"$T/bad-site.yaml"
expect site-bad 1 'bad-site.yaml:2:23: limits.max_rounds: 010 has a leading zero' \
    "$BIN/aulac" site check "$T/bad-site.yaml"
expect site-fifo 1 'fifo.yaml: cannot read: is a FIFO' "$BIN/aulac" site check "$T/fifo.yaml"
expect site-help 0 'usage: aulac site check FILE' "$BIN/aulac" site check --help

# A port in use: the second coordinator says which address, the first keeps serving.
start_coordinator
expect port-in-use 1 "cannot serve on 127.0.0.1:$PORT" \
    "$BIN/aulac-coordinator" --data-dir "$T/c4" --key "$T/keys/coordinator.key" \
    --roster "$T/roster.yaml" --policy "$T/policy.yaml" --operator-key "$T/keys/alpha.key" --listen "127.0.0.1:$PORT" --insecure
status_json | grep -q '"state":"running"' || fail "the first coordinator stopped serving"

# Corpora: missing, empty.
expect missing-corpus 1 "$T/no-such-dir" \
    "$BIN/aulac-worker" --coordinator "$ADDR" --member alpha --key "$T/keys/alpha.key" \
    --data "$T/no-such-dir" --state-dir "$T/state/a1" --insecure --connect-timeout 20
mkdir -p "$T/empty"
expect empty-corpus 1 "$T/empty" \
    "$BIN/aulac-worker" --coordinator "$ADDR" --member alpha --key "$T/keys/alpha.key" \
    --data "$T/empty" --state-dir "$T/state/a2" --insecure --connect-timeout 20

# The policy's batch (4 sequences a step) must split evenly over the member's GPUs: a
# worker that cannot run the experiment says why and sits it out (it stays for the next).
start_bg gpus-split "$BIN/aulac-worker" --coordinator "$ADDR" --member alpha \
    --key "$T/keys/alpha.key" --data "$T/corpus/alpha" --state-dir "$T/state/a3" --insecure \
    --gpus 3 --connect-timeout 20
for _ in $(seq 200); do grep -q "sitting experiment .* out" "$T/logs/gpus-split.log" && break; sleep 0.1; done
grep -q "batch_size 4 does not split evenly over --gpus 3" "$T/logs/gpus-split.log" &&
    grep -q "sitting experiment .* out" "$T/logs/gpus-split.log" || fail "gpus-split: $(tail -3 "$T/logs/gpus-split.log")"
kill -0 "$LAST_PID" 2>/dev/null || fail "gpus-split: the worker exited instead of sitting the experiment out"
# SIGTERM cuts the GetTask long poll it sits in (up to 20 s) short: it stops at once, exit 0.
kill -TERM "$LAST_PID"
rc=0; wait_pid "$LAST_PID" 5 || rc=$?
[ $rc -eq 0 ] || fail "gpus-split: SIGTERM during a long poll: exit $rc (124: still running after 5 s)"
grep -q "stopping" "$T/logs/gpus-split.log" || fail "gpus-split: no 'stopping' after SIGTERM"
note "gpus-split: $(grep -m1 -o 'the policy.s batch_size.*' "$T/logs/gpus-split.log"); SIGTERM mid-poll: exit 0"

# A worker still waiting for its coordinator (nothing listens on port 1) stops on
# SIGTERM at once with exit 0, as from a long poll (hello's retries; --connect-timeout 60).
start_bg no-coordinator "$BIN/aulac-worker" --coordinator 127.0.0.1:1 --member alpha \
    --key "$T/keys/alpha.key" --data "$T/corpus/alpha" --state-dir "$T/state/a4" --insecure \
    --connect-timeout 60
for _ in $(seq 100); do grep -q "does not answer" "$T/logs/no-coordinator.log" && break; sleep 0.1; done
kill -TERM "$LAST_PID"
rc=0; wait_pid "$LAST_PID" 5 || rc=$?
[ $rc -eq 0 ] || fail "no-coordinator: SIGTERM while waiting for the coordinator: exit $rc (124: still running after 5 s)"
grep -q "stopping" "$T/logs/no-coordinator.log" || fail "no-coordinator: no 'stopping' after SIGTERM"
note "no-coordinator: SIGTERM while waiting for it: exit 0"

# A site that requires differential privacy sits out an experiment without it when its
# worker joins, saying why (site_check; the vote path: tests/unit/test_auto_vote.c), and
# aulac site check says the same.
printf 'schema: 1\nmember: alpha\nrequire: { min_noise_multiplier: 1.0 }\n' >"$T/site-dp.yaml"
expect site-requires-dp 1 'site-dp.yaml: refuses experiment it-tiny: it has no privacy section .*require.min_noise_multiplier 1\)' \
    "$BIN/aulac" site check "$T/site-dp.yaml" --policy "$T/policy.yaml"
start_bg site-dp "$BIN/aulac-worker" --coordinator "$ADDR" --member alpha \
    --key "$T/keys/alpha.key" --data "$T/corpus/alpha" --state-dir "$T/state/a4" --insecure \
    --site "$T/site-dp.yaml" --connect-timeout 20
for _ in $(seq 200); do grep -q "sitting it out" "$T/logs/site-dp.log" && break; sleep 0.1; done
grep -q "this site's policy refuses experiment .*: experiment it-tiny: it has no privacy section (its updates are neither clipped nor noised), and this site requires differential privacy (require.min_noise_multiplier 1); sitting it out" \
    "$T/logs/site-dp.log" || fail "site-dp: $(tail -3 "$T/logs/site-dp.log")"
kill -0 "$LAST_PID" 2>/dev/null || fail "site-dp: the worker exited instead of sitting the experiment out"
kill -9 "$LAST_PID"; wait "$LAST_PID" 2>/dev/null || true
note "site-dp: $(grep -m1 -o 'refuses experiment.*' "$T/logs/site-dp.log")"

# A corpus too small to hold any held-out text (one 4 KiB chunk, which is training) is
# refused when the worker joins, not at every round's evaluation.
mkdir -p "$T/corpus/tiny"; head -c 2000 /usr/share/common-licenses/GPL-3 >"$T/corpus/tiny/t.txt"
start_bg tiny-corpus "$BIN/aulac-worker" --coordinator "$ADDR" --member alpha \
    --key "$T/keys/alpha.key" --data "$T/corpus/tiny" --state-dir "$T/state/a5" --insecure \
    --connect-timeout 20
for _ in $(seq 200); do grep -q "sitting .* out" "$T/logs/tiny-corpus.log" && break; sleep 0.1; done
grep -q "the corpus has 0 validation bytes (data.validation_fraction 0.1 of its 4096-byte chunks); each round evaluates on at least 2" \
    "$T/logs/tiny-corpus.log" || fail "tiny-corpus: $(tail -3 "$T/logs/tiny-corpus.log")"
kill -9 "$LAST_PID"; wait "$LAST_PID" 2>/dev/null || true
note "tiny-corpus: $(grep -m1 -o 'the corpus has 0 validation.*' "$T/logs/tiny-corpus.log")"

# A secret key others can read is refused before it is used.
cp "$T/keys/beta.key" "$T/beta-open.key"; chmod 644 "$T/beta-open.key"
expect open-key 1 "beta-open.key" \
    "$BIN/aulac-worker" --coordinator "$ADDR" --member beta --key "$T/beta-open.key" \
    --data "$T/corpus/beta" --state-dir "$T/state/b1" --insecure

# Command lines.
expect worker-usage 2 "--member is required" "$BIN/aulac-worker" --coordinator "$ADDR" --insecure
expect worker-bad-int 2 "--threads expects an integer" "$BIN/aulac-worker" --threads lots
expect coord-usage 2 "--data-dir is required" "$BIN/aulac-coordinator" --insecure
expect cli-unknown 2 "unknown command 'frobnicate'" "$BIN/aulac" frobnicate
expect roster-duplicate 1 "member 'alpha' has the same id as member 'alpha'" \
    "$BIN/aulac" roster add --roster "$T/roster.yaml" --pub "$T/keys/alpha.pub"
expect roster-no-alliance 2 "give --alliance to create it" \
    "$BIN/aulac" roster add --roster "$T/new-roster.yaml" --pub "$T/keys/alpha.pub"
expect roster-bad-roles 2 "roles are member, researcher, secretariat" \
    "$BIN/aulac" roster add --roster "$T/roster.yaml" --pub "$T/keys/alpha.pub" --roles king
expect cli-ledger-dir 1 "cannot open the ledger" "$BIN/aulac" ledger verify --data-dir "$T/none"
# aulac solo (the value of joining: a member alone with the same compute)
SOLO=("$BIN/aulac" solo --policy "$T/policy.yaml" --member alpha --data "$T/corpus/alpha")
expect solo-usage 2 "aulac solo: --policy, --member, --data and --out are required" \
    "${SOLO[@]}"
expect solo-bad-member 2 "aulac solo: --member 'Alpha Corp' is not a member id" \
    "$BIN/aulac" solo --policy "$T/policy.yaml" --member "Alpha Corp" --data "$T/corpus/alpha" \
    --out "$T/solo"
expect solo-bad-int 2 "aulac solo: --steps expects a non-negative integer, got 'many'" \
    "${SOLO[@]}" --out "$T/solo" --steps many
expect solo-extra 2 "aulac solo: unexpected argument 'now'" "${SOLO[@]}" --out "$T/solo" now
expect solo-bad-policy 1 'bad-policy.yaml:[0-9]+:[0-9]+: training.local_steps' \
    "$BIN/aulac" solo --policy "$T/bad-policy.yaml" --member alpha --data "$T/corpus/alpha" \
    --out "$T/solo"
expect solo-no-corpus 1 "aulac solo: .*$T/none" \
    "$BIN/aulac" solo --policy "$T/policy.yaml" --member alpha --data "$T/none" --out "$T/solo"
sed 's/min_tokens_per_member: 1000,/min_tokens_per_member: 100000000,/' "$T/policy.yaml" >"$T/big-min.yaml"
expect solo-small-corpus 1 "aulac solo: the corpus .* training bytes; the policy asks for at least 100000000" \
    "$BIN/aulac" solo --policy "$T/big-min.yaml" --member alpha --data "$T/corpus/alpha" \
    --out "$T/solo"
[ ! -e "$T/solo" ] || fail "a refused aulac solo wrote $T/solo"
for p in aulac aulac-coordinator aulac-worker "aulac solo"; do
    # shellcheck disable=SC2086  # "aulac solo" is a program and its command
    "$BIN/"$p --help >"$T/help.txt" && grep -q usage "$T/help.txt" || fail "$p --help"
done
# bench/compression --diloco refuses a grid it cannot run before it loads anything.
BC="$BIN/bench/compression"
expect diloco-divide 2 "--H 30 does not divide --total-steps 500" "$BC" --diloco --H 5,30
expect diloco-steps 2 "--total-steps '0': inner steps per member" "$BC" --diloco --total-steps 0
expect diloco-h 2 "--H '5x': local steps per round" "$BC" --diloco --H 5x
expect diloco-twice 2 "--H: '20' given twice" "$BC" --diloco --H 20,20
expect diloco-outer 2 "--outer 'adam': fedavg, nesterov or fedadam" "$BC" --diloco --outer adam
expect diloco-uplink 2 "--uplink '2%': no variant of that name" "$BC" --diloco --uplink dense,2%
expect diloco-needs 2 "need --diloco" "$BC" --total-steps 500
expect diloco-mixed 2 "no --rounds, --steps, --variants, --add or --curve" "$BC" --diloco --steps 5
expect diloco-outer-lr 2 "--outer 'nesterov:0': the lr after ':' is a number in" "$BC" --diloco --outer nesterov:0
expect diloco-warm-w 2 "--warm-start '-3': synchronous steps before the grid" "$BC" --diloco --warm-start -3
expect diloco-warm-file 2 "--warm-start-file needs --warm-start W" "$BC" --diloco --warm-start-file "$T/w.bin"
# --warm-start on the tiny policy (seconds): the warm start is sync's own training (its
# loss is a W-step sync run's), it is saved, reused as saved, and refused for another W.
TINY=(--diloco --policy "$T/policy.yaml" --corpus "$T/corpus" --H 2 --outer fedavg --uplink dense --jobs 1)
expect diloco-sync2 0 "^sync +1 dense +2 " "$BC" "${TINY[@]}" --total-steps 2
expect diloco-warm 0 "warm start: 2 synchronous steps, loss" "$BC" "${TINY[@]}" --total-steps 4 \
    --warm-start 2 --warm-start-file "$T/w.bin"
warm=$(sed -n 's/^warm start: 2 synchronous steps, loss \([0-9.]*\),.*/\1/p' "$T/logs/diloco-warm.log")
grep -qE "^sync +1 dense +2 +$warm " "$T/logs/diloco-sync2.log" ||
    fail "the warm start's loss $warm is not a 2-step sync run's"
expect diloco-warm-reuse 0 "read from $T/w.bin: loss $warm" "$BC" "${TINY[@]}" --total-steps 4 \
    --warm-start 2 --warm-start-file "$T/w.bin"
[ "$(grep -E '^(sync|fedavg) ' "$T/logs/diloco-warm.log")" = \
  "$(grep -E '^(sync|fedavg) ' "$T/logs/diloco-warm-reuse.log")" ] || fail "a reused warm start changed the table"
expect diloco-warm-other 1 "holds a warm start of 2 steps, not --warm-start 3" "$BC" "${TINY[@]}" \
    --total-steps 4 --warm-start 3 --warm-start-file "$T/w.bin"

# After all that, the experiment still runs to the end.
for m in alpha beta; do start_worker "$m"; done
pids=("${BG[@]: -2}")
for p in "${pids[@]}"; do rc=0; wait_pid "$p" 200 || rc=$?; [ $rc -eq 0 ] || fail "worker exited $rc"; done
status_json | grep -q '"state":"finished"' || fail "the experiment did not finish"

# The value of joining (scripts/value-of-joining.sh, as scripts/demo.sh prints it): each
# member alone for the experiment's rounds x local_steps from round 0, both models
# evaluated on the member's held-out text.
fed_hash=$(status_json | sed -n 's/.*"model_hash":"\([0-9a-f]*\)".*/\1/p')
BUILD=$BIN scripts/value-of-joining.sh "$T/policy.yaml" "$T/coord/models/$fed_hash" "$T/joining" \
    alpha="$T/corpus/alpha" beta="$T/corpus/beta" >"$T/logs/joining.log" 2>&1 ||
    { cat "$T/logs/joining.log"; fail "value-of-joining.sh"; }
cat "$T/logs/joining.log"
grep -qE "^  member +federated +solo +gain +federated +solo +gain$" "$T/logs/joining.log" ||
    fail "joining: no table"
N='[0-9]+\.[0-9]{4}' G='[-+][0-9]+\.[0-9]{4}'
for m in alpha beta; do
    grep -qE "^  $m +$N +$N +$G +$N +$N +$G$" "$T/logs/joining.log" || fail "joining: no line for $m"
    # the solo run is the member's worker's steps: rounds x local_steps from round 0, and
    # its first round is exactly the worker's round 1 (same model, options, seed, batches)
    grep -q "^solo model [0-9a-f]\{16\} of $m (24 steps)" "$T/joining/solo-$m.log" ||
        { cat "$T/joining/solo-$m.log"; fail "joining: $m's solo run is not 2 x 12 steps"; }
    solo1=$(sed -n 's/^round 1\/2: 12 steps, train loss \([0-9.]*\),.*/\1/p' "$T/joining/solo-$m.log")
    fed1=$(status_json | python3 -c 'import json, sys
r = json.load(sys.stdin)["rounds"][0]
print("%.4f" % [x for x in r["members"] if x["member"] == sys.argv[1]][0]["train_loss"])' "$m")
    [ -n "$solo1" ] && [ "$solo1" = "$fed1" ] ||
        fail "joining: $m's solo round 1 trained to $solo1, its worker's round 1 to $fed1"
done
grep -qE "^  on its own held-out text: .*; on every member's: " "$T/logs/joining.log" ||
    fail "joining: no verdict"
note "ok"
