#!/usr/bin/env bash
# The coordinator's dashboard in a real browser: a three-member experiment with the
# coordinator's --http on loopback; headless Chromium (Debian's chromium, chromium-driver
# and python3-selenium, driven by tests/integration/dashboard_browser.py) opens it, waits
# for a round to close without reloading, and checks the members table has three rows,
# the validation-loss chart a point per member for each closed round and the uplink chart
# a bar per round, "updated hh:mm:ss" moving on; screenshot dashboard.png under the test's
# output directory. Then the same page at a phone's width (390x844): no horizontal
# scroll, screenshot dashboard-phone.png; the coordinator stops and the page says its
# data is stale.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

PY=/usr/bin/python3          # Debian's python, where python3-selenium lives
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
have_browser() {
    [ -n "$CHROMIUM" ] && [ -x /usr/bin/chromedriver ] && "$PY" -c 'import selenium' 2>/dev/null &&
        { [ -e /usr/share/javascript/chart.js/chart.min.js ] ||
          [ -e /usr/share/javascript/chart.js/chart.umd.min.js ]; }
}
if ! have_browser; then
    echo "SKIP: dashboard.sh needs Debian's chromium, chromium-driver, python3-selenium and" \
         "libjs-chart.js (scripts/deps.sh installs them; they could not be installed here)"
    exit 0
fi
OUT=${AULAC_TEST_OUTPUT:-$(mktemp -d "${TMPDIR:-/tmp}/aulac-dashboard-out.XXXXXX")}/dashboard
mkdir -p "$OUT"
export CHROMIUM CHROME_PROFILE="$T/chrome-profile" CHROME_LOGS="$T/logs" HOME="$T/chrome-home"

make_corpora
make_alliance alpha beta gamma
ROUNDS=30 LOCAL_STEPS=12
LOCAL_STEPS=$LOCAL_STEPS write_policy $ROUNDS alpha beta gamma
HTTP_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# with a token, as a coordinator serving beyond loopback has: the page is opened with it
# in the fragment (#token=), keeps it out of the address bar and sends it itself
export AULAC_HTTP_TOKEN; AULAC_HTTP_TOKEN=$(openssl rand -hex 32)
(umask 077; echo "$AULAC_HTTP_TOKEN" >"$T/http.token")
start_coordinator --http "127.0.0.1:$HTTP_PORT" --http-token-file "$T/http.token"
URL="http://127.0.0.1:$HTTP_PORT/"
for _ in $(seq 100); do curl -fs -o /dev/null "${URL}healthz" && break; sleep 0.1; done
curl -fsS -o /dev/null "$URL" || fail "the dashboard does not answer at $URL"
[ "$(curl -s -o /dev/null -w '%{http_code}' "${URL}api/v1/status")" = 401 ] ||
    fail "the API answers without the token"
note "dashboard at $URL"

# The page is open before any round closes (the workers start once it shows its first
# data), so that it has to update by itself to show them.
export READY_FILE="$T/page-ready"
start_bg browser-desktop "$PY" tests/integration/dashboard_browser.py desktop "$URL" "$OUT" \
    alpha,beta,gamma
BROWSER_PID=$LAST_PID
for _ in $(seq 300); do [ -e "$READY_FILE" ] || ! kill -0 "$BROWSER_PID" 2>/dev/null && break; sleep 0.1; done
[ -e "$READY_FILE" ] || { cat "$T/logs/browser-desktop.log" >&2; fail "the page did not load"; }
for m in alpha beta gamma; do start_worker "$m"; done
rc=0; wait_pid "$BROWSER_PID" 90 || rc=$?
cat "$T/logs/browser-desktop.log"
[ $rc -eq 0 ] || fail "the dashboard at desktop width (rc $rc, above)"
"$PY" tests/integration/dashboard_browser.py phone "$URL" "$OUT" alpha,beta,gamma "$COORD_PID" \
    || fail "the dashboard at phone width (above)"
wait "$COORD_PID" 2>/dev/null || true
note "ok: the dashboard updated by itself, 3 member rows, a loss point per closed round," \
     "no horizontal scroll on a phone; screenshots $OUT/dashboard.png $OUT/dashboard-phone.png"
