#!/usr/bin/env bash
# Fault test: a worker follows its coordinator through restarts. The coordinator is
# killed (SIGKILL) three times while the worker trains round after round, stays down
# 4, 6 and 8 s, and comes back on the same port and data directory. Each time the
# worker's first call that gets through must start within RECONNECT_BOUND_S (5 s) of
# the restarted coordinator's "serving" line; the worker says so in its log ("the
# coordinator answers again ... which took T s"). Before channels reconnected at least
# every second and the worker waited on its channel while the coordinator was away,
# this took 6-14 s (bench/reconnect.sh measures the distribution).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
BOUND=${RECONNECT_BOUND_S:-5}

make_corpora
make_alliance alpha
# One member, so every round closes at its update and the next opens at once: the
# worker is always calling, and its first call after a restart is answered at once.
LOCAL_STEPS=20 write_policy 1000 alpha
sed -i 's/min_members: 2/min_members: 1/' "$T/policy.yaml"
start_coordinator
start_worker alpha
worker=$LAST_PID
for _ in $(seq 300); do grep -q "update accepted" "$T/logs/worker-alpha.log" && break; sleep 0.1; done
grep -q "update accepted" "$T/logs/worker-alpha.log" || fail "the worker did not train a round"

for down in 4 6 8; do
    kill_ts=$(iso_now)
    restart_coordinator "$down" "coordinator-down-$down"
    # Wait (bounded) for the worker's line; the assertion is on the log timestamps.
    line=""
    for _ in $(seq 600); do
        line=$(answered_after "$T/logs/worker-alpha.log" "$kill_ts")
        [ -n "$line" ] && break
        kill -0 "$worker" 2>/dev/null || fail "the worker exited"
        sleep 0.05
    done
    [ -n "$line" ] || fail "the worker did not get through within 30 s of a $down s restart"
    python3 - "$SERVE_TS" "$line" "$down" "$BOUND" <<'PY' || fail "reconnection too slow"
import datetime, re, sys
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
serve, line, down, bound = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
took = float(re.search(r"which took ([0-9.]+) s", line).group(1))
after = t(line.split()[0]) - took - t(serve)
print(f"-- down {down} s: the worker's first call got through {after:.2f} s after the "
      f"coordinator served again (bound {bound:g} s)")
sys.exit(0 if after <= bound else 1)
PY
done
kill -0 "$worker" 2>/dev/null || fail "the worker exited"
note "ok: the worker followed three coordinator restarts"
