#!/usr/bin/env bash
# aulac-worker --progress (worker/progress.h) with real rounds: a worker logging to a
# file (auto) writes plain "progress:" log lines, a tenth of the round's steps apart and
# one at the upload's end; a worker on a terminal (a pty from script(1)) draws one live
# line per round rewritten in place ("\r\033[K") and no "progress:" log lines; with
# --progress off neither.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
command -v script >/dev/null || fail "script(1) (util-linux) is needed for the terminal run"

make_corpora
make_alliance alpha beta gamma
LOCAL_STEPS=20 write_policy 2 alpha beta gamma
start_coordinator

start_worker alpha; pa=$LAST_PID
# beta on a terminal: script gives it a pty and copies what it draws into the log.
cmd=$(printf '%q ' "$BIN/aulac-worker" --coordinator "$ADDR" --member beta \
    --key "$T/keys/beta.key" --data "$T/corpus/beta" --state-dir "$T/state/beta" --insecure \
    --threads 1 --eval-windows 16 --exit-when-idle)
start_bg worker-beta script -qfec "$cmd" /dev/null; pb=$LAST_PID
start_worker gamma "" --progress off; pg=$LAST_PID
for p in $pa $pb $pg; do
    rc=0; wait_pid "$p" 240 || rc=$?
    [ $rc -eq 0 ] || fail "a worker (pid $p) exited $rc"
done

# The log file: per round, steps 2, 4, ..., 20 of 20 (each tenth) and the upload's end.
a=$T/logs/worker-alpha.log
for r in 1 2; do
    n=$(grep -cE "worker info: progress: round $r/2  step [0-9]+/20 \([0-9]+%\)  loss [0-9.]+  [0-9]+ tok/s  ETA [0-9]+:[0-9]{2}$" "$a" || true)
    [ "$n" -eq 10 ] || fail "round $r: $n plain training progress lines in $a, expected 10"
    grep -qE "worker info: progress: round $r/2  step 20/20  loss [0-9.]+  uploaded [0-9.]+ (B|kB|MB) in [0-9.]+ s$" "$a" ||
        fail "round $r: no plain upload-end line in $a"
done
! grep -q $'\r' "$a" || fail "the log file has carriage returns"
! grep -q $'\033' "$a" || fail "the log file has escape codes"
note "log file: $(grep -m1 "progress: round 1/2  step 10/20" "$a" | cut -d' ' -f2-)"
note "log file: $(grep -m1 "progress: round 1/2  step 20/20  loss [0-9.]*  uploaded" "$a" | cut -d' ' -f2-)"

# The terminal: live lines, rewritten in place, ending with the upload; no log lines.
b=$T/logs/worker-beta.log
grep -q $'\r\033\\[Kround 1/2  step [0-9]*/20 (' "$b" || fail "no live training line in $b"
grep -qE $'\r\033\\[Kround 2/2  step 20/20  loss [0-9.]+  uploaded [0-9.]+ (B|kB|MB) in [0-9.]+ s\r?$' "$b" ||
    fail "no live upload-end line in $b"
! grep -q "progress: round" "$b" || fail "the terminal got plain progress log lines"
live=$(grep -o $'\r\033\\[Kround [12]/2  step' "$b" | wc -l)
note "terminal: $live live redraws over 2 rounds of 20 steps"

c=$T/logs/worker-gamma.log
! grep -qE "progress: round|round [12]/2  step" "$c" || fail "--progress off still shows progress"
grep -q "update accepted" "$c" || fail "gamma (--progress off) did not train"

"$BIN/aulac-worker" --help >"$T/help.txt"; grep -q -- "--progress MODE" "$T/help.txt" || fail "--help does not list --progress"
rc=0; "$BIN/aulac-worker" --progress loud >/dev/null 2>"$T/usage.txt" || rc=$?
[ $rc -eq 2 ] && grep -q "expects auto, tty, plain or off, got 'loud'" "$T/usage.txt" ||
    fail "--progress loud: exit $rc, $(cat "$T/usage.txt")"
echo "PASS worker_progress"
