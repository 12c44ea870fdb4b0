#!/usr/bin/env bash
# Bad input on the coordinator's HTTP view (coordinator/HTTP.md, "Server"), against the
# real binary while a 2-member experiment runs: a missing or wrong token (401), path
# traversal (404, never a file), oversized headers (431 or closed), a non-GET method,
# slowloris clients (cut at the header deadline while others are served), a flood past
# the connection limits (refused; the server answers afterwards) -- and the experiment's
# rounds carry on to the end. Also: a non-loopback --http without TLS and a token is
# refused at start.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

make_corpora
make_alliance alpha beta
LOCAL_STEPS=4 write_policy 5 alpha beta

# 0.0.0.0 binds every interface: refused without TLS and authentication
if "$BIN/aulac-coordinator" --data-dir "$T/refused" --key "$T/keys/coordinator.key" \
        --roster "$T/roster.yaml" --listen 127.0.0.1:0 --insecure --http 0.0.0.0:0 \
        >"$T/logs/refused.log" 2>&1; then
    fail "the coordinator served HTTP on 0.0.0.0 without TLS or a token"
fi
grep -q "refusing to serve HTTP on 0.0.0.0:0, which is not a loopback address, without TLS and authentication" \
    "$T/logs/refused.log" || fail "no clear refusal: $(cat "$T/logs/refused.log")"
note "--http 0.0.0.0 without TLS and a token: refused at start"

TOKEN=$(openssl rand -hex 32)
(umask 077; echo "$TOKEN" >"$T/http.token")
start_coordinator --http 127.0.0.1:0 --http-token-file "$T/http.token"
for _ in $(seq 100); do grep -q "serving the HTTP view" "$T/logs/coordinator.log" && break; sleep 0.1; done
HP=$(sed -n 's/.*serving the HTTP view on [^ ]* (port \([0-9]*\)).*/\1/p' "$T/logs/coordinator.log" | head -1)
[ -n "$HP" ] || fail "the coordinator did not say where it serves HTTP"
URL=http://127.0.0.1:$HP
AUTH="Authorization: Bearer $TOKEN"

code() { curl -s -o "$T/body" -w '%{http_code}' --max-time 5 "$@" || true; }

# tokens
[ "$(code "$URL/api/v1/status")" = 401 ] || fail "no token: not 401"
[ "$(code -H "Authorization: Bearer not-$TOKEN" "$URL/api/v1/status")" = 401 ] || fail "wrong token: not 401"
[ "$(code -H "Authorization: Bearer ${TOKEN:0:63}" "$URL/metrics")" = 401 ] || fail "a token's prefix: not 401"
[ "$(code -H "$AUTH" "$URL/api/v1/status")" = 200 ] || fail "the token: not 200"
[ "$(code "$URL/healthz")" = 200 ] || fail "/healthz needs no token"
[ "$(code "$URL/readyz")" = 200 ] || fail "/readyz: not ready: $(cat "$T/body")"
note "missing/wrong token 401, the token 200, health checks open"

# traversal: 404, never a file
for p in /assets/../../etc/passwd /assets/%2e%2e/%2e%2e/etc/passwd /../../../../etc/passwd \
         /assets/..%2f..%2f..%2fetc%2fpasswd /api/v1/../../etc/passwd '/assets/..\..\etc\passwd'; do
    c=$(code --path-as-is -H "$AUTH" "$URL$p")
    [ "$c" = 404 ] || fail "$p: HTTP $c, want 404"
    grep -q "root:" "$T/body" && fail "$p served /etc/passwd"
done
note "path traversal: 404"

# oversized headers, a method that writes
big=$(head -c 9000 /dev/zero | tr '\0' a)
c=$(code -H "X-Big: $big" "$URL/healthz")
[ "$c" = 431 ] || fail "a 9000-byte header: HTTP $c, want 431"
huge=$(head -c 60000 /dev/zero | tr '\0' a)
c=$(code -H "X-Big: $huge" "$URL/healthz")
case $c in 431|000) ;; *) fail "a 60000-byte header: HTTP $c, want 431 or closed" ;; esac
[ "$(code -X POST -H "$AUTH" "$URL/api/v1/status")" = 405 ] || fail "POST: not 405"
[ "$(code -X DELETE -H "$AUTH" "$URL/")" = 405 ] || fail "DELETE: not 405"
note "oversized headers 431, POST/DELETE 405"

# a flood (held while the members run the experiment), then slowloris clients (python:
# raw sockets from distinct 127.0.0.x source addresses, as distinct clients)
cat >"$T/attack.py" <<'PY'
import socket, sys, time, urllib.request
port, ready = int(sys.argv[1]), sys.argv[2]

def conn(src):
    s = socket.socket()
    s.bind(("127.0.0.%d" % src, 0))
    s.connect(("127.0.0.1", port))
    return s

def healthz():
    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
        return r.status

def closed(s, timeout):
    s.settimeout(timeout)
    try:
        return s.recv(64) == b""
    except (socket.timeout, BlockingIOError):
        return False
    except ConnectionResetError:
        return True

# flood: 60 silent connections from 3 addresses (20 each, over the per-address limit),
# then 48 from 3 more (over the total): held 5 s
socks = []
for src, n in ((40, 20), (41, 20), (42, 20), (43, 16), (44, 16), (45, 16)):
    for _ in range(n):
        try:
            socks.append(conn(src))
        except OSError:
            pass
open(ready, "w").close()
time.sleep(0.3)
refused = sum(1 for s in socks[:60] if closed(s, 0.001))
assert refused >= 3 * (20 - 16), "only %d refused past the per-address limit" % refused
time.sleep(5)
for s in socks:
    s.close()
for _ in range(50):
    try:
        if healthz() == 200:
            break
    except Exception:
        pass
    time.sleep(0.2)
else:
    raise SystemExit("the server does not answer after the flood")
print("-- flood of %d connections: %d refused at once; served afterwards" % (len(socks), refused))

# slowloris: 8 clients each sending a header byte a second
slow = [conn(20 + i) for i in range(8)]
t0 = time.time()
alive = list(slow)
msg = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
i = 0
while alive and time.time() - t0 < 25:
    for s in list(alive):
        try:
            s.send(msg[i:i + 1])
        except OSError:
            alive.remove(s)
            continue
        if closed(s, 0.05):
            alive.remove(s)
    if i % 3 == 0:
        assert healthz() == 200, "not served during the slowloris"
    i += 1
    time.sleep(1)
took = time.time() - t0
assert not alive, "slowloris clients still connected after %.0f s" % took
assert 8 <= took <= 18, "slowloris clients cut after %.1f s, want about 10" % took
print("-- 8 slowloris clients cut after %.1f s, others served meanwhile" % took)
PY
start_bg attack python3 "$T/attack.py" "$HP" "$T/attack.ready"
attack=$LAST_PID
for _ in $(seq 100); do [ -e "$T/attack.ready" ] && break; sleep 0.1; done
[ -e "$T/attack.ready" ] || fail "the flood did not start"
start_worker alpha
wa=$LAST_PID
start_worker beta
wb=$LAST_PID
wait_pid "$attack" 120 || fail "slowloris/flood: $(cat "$T/logs/attack.log")"
cat "$T/logs/attack.log"

# the rounds carried on
wait_pid "$wa" 300 || fail "worker alpha did not finish"
wait_pid "$wb" 300 || fail "worker beta did not finish"
curl -sf -H "$AUTH" "$URL/api/v1/status" >"$T/status.json" || fail "status after the run"
grep -q '"state":"finished"' "$T/status.json" || fail "the experiment did not finish: $(cat "$T/status.json")"
status_json | grep -q '"state":"finished"' || fail "aulac status: not finished"
note "the experiment finished its 5 rounds while the HTTP view was attacked"
echo "http_bad_input: ok"
