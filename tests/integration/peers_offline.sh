#!/usr/bin/env bash
# bench/peers without the network (issue 17, bad input), and its meters, in seconds:
#  - run.sh with no venv and a package index on a closed port says that the index is not
#    reachable and that bench/peers needs PyPI once (or PEERS_VENV), exits 3, and has
#    created nothing (no venv, no run directory) and started nothing;
#  - policy.py derives the dense and compressed policies from the demo policy, and
#    `aulac policy check` accepts both (dense: FedAvg, no compression, no credit);
#  - meter.py's proxy counts exactly the bytes each side sent through it.
# Never touches the network: the index URL is a loopback port nobody listens on.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rc=0
PEERS_VENV="$T/venv" RUN_DIR="$T/run" BUILD="$BUILD" PIP_INDEX_URL="http://127.0.0.1:$closed/simple" \
    bench/peers/run.sh >"$T/out" 2>"$T/err" || rc=$?
[ $rc -eq 3 ] || { cat "$T/out" "$T/err"; fail "run.sh without the network: exit $rc, expected 3"; }
grep -q "^peers: cannot install Flower: the package index http://127.0.0.1:$closed/simple is not reachable (" "$T/err" ||
    { cat "$T/err"; fail "run.sh without the network: no message naming the index"; }
grep -q "needs network access to PyPI once" "$T/err" && grep -q "set PEERS_VENV" "$T/err" ||
    { cat "$T/err"; fail "run.sh without the network: the message does not say what to do"; }
[ ! -e "$T/venv" ] && [ ! -e "$T/run" ] || fail "run.sh without the network left a venv or a run directory"
[ ! -s "$T/out" ] || { cat "$T/out"; fail "run.sh without the network printed on stdout"; }
note "bench/peers without the network: exit 3, names the index, creates nothing"

mkdir -p "$T/pol"
python3 bench/peers/policy.py policies/examples/demo.yaml "$T/pol"
for row in dense compressed; do
    "$BIN/aulac" policy check "$T/pol/$row.yaml" >"$T/check-$row" 2>&1 ||
        { cat "$T/check-$row"; fail "the $row policy does not pass policy check"; }
    ! grep -q "^contribution:" "$T/pol/$row.yaml" || fail "the $row policy kept its contribution section"
done
grep -A2 "^  outer:" "$T/pol/dense.yaml" | grep -q "kind: fedavg" || fail "dense: outer is not fedavg"
grep -A2 "^  uplink:" "$T/pol/dense.yaml" | grep -q "method: none" || fail "dense: uplink is not dense"
diff <(sed '/^contribution:/,$d' policies/examples/demo.yaml | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}') \
     <(sed '/^contribution:/,$d' "$T/pol/compressed.yaml" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}') >/dev/null ||
    fail "compressed: not the demo policy as shipped (less its contribution section)"
note "bench/peers policies: dense (FedAvg, dense fp32) and compressed (the demo's) pass policy check"

# the proxy: a server that reads 300000 bytes and answers 123457, twice
python3 - "$T/srv.port" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
open(sys.argv[1], "w").write("%d\n" % s.getsockname()[1])
for _ in range(2):
    c, _ = s.accept(); n = 0
    while n < 300000:
        n += len(c.recv(65536))
    c.sendall(b"y" * 123457); c.close()
PY
BG+=($!)
for _ in $(seq 50); do [ -s "$T/srv.port" ] && break; sleep 0.1; done
python3 bench/peers/meter.py proxy "$T/proxy.port" "$(cat "$T/srv.port")" "$T/bytes.json" &
proxy=$!; BG+=("$proxy")
for _ in $(seq 50); do [ -s "$T/proxy.port" ] && break; sleep 0.1; done
python3 - "$(cat "$T/proxy.port")" <<'PY'
import socket, sys
for _ in range(2):
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.sendall(b"x" * 300000); got = 0
    while True:
        b = c.recv(65536)
        if not b: break
        got += len(b)
    assert got == 123457, got
    c.close()
PY
kill "$proxy"; wait "$proxy" 2>/dev/null || true
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d == {"uplink_bytes": 600000, "downlink_bytes": 246914, "connections": 2}, d' \
    "$T/bytes.json" || fail "the proxy's counts are wrong: $(cat "$T/bytes.json")"
note "bench/peers proxy: counts 600000 bytes up, 246914 down over 2 connections"
