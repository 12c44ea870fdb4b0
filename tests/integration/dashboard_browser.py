#!/usr/bin/python3
"""Drives the coordinator's dashboard in headless Chromium (Debian's chromium and
chromium-driver, python3-selenium) for tests/integration/dashboard.sh.

  dashboard_browser.py desktop URL OUT_DIR MEMBERS   (MEMBERS: alpha,beta,gamma)
      opens URL, touches $READY_FILE once the page has shown its first data (the test
      then starts the workers), waits (without reloading) until the page shows a round
      closed after it loaded, then checks: one members-table row per member, a point in the validation-
      loss chart for every member's loss of every closed round (as /api/v1/rounds has
      them) and a bar per closed round in the uplink chart, "updated hh:mm:ss" moving on,
      no console error, and (loaded before any round closed) round 1's progress "0 of 3"
      with its deadline counting down; saves OUT_DIR/dashboard.png (the whole page).
  dashboard_browser.py phone URL OUT_DIR MEMBERS COORD_PID
      the same page at 390x844 (a phone, device pixel ratio 3): no horizontal scroll
      (document.documentElement.scrollWidth <= innerWidth); saves OUT_DIR/dashboard-
      phone.png; then stops the coordinator (COORD_PID, SIGTERM) and checks the stale
      warning appears while the last data stays on the page.
Prints what it checked; exits non-zero with the reason on the first failed check."""
import base64, json, os, re, signal, sys, time, urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

REFRESH_S = 3          # app.js REFRESH_MS
CLOSE_WAIT_S = 45      # a round of the test's tiny experiment closes well within this


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def browser(width, height, phone):
    o = webdriver.ChromeOptions()
    o.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--hide-scrollbars", "--disable-extensions",
              "--user-data-dir=" + os.environ["CHROME_PROFILE"]):
        o.add_argument(a)
    if phone:
        o.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 3.0},
            "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                         "(KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"})
    else:
        o.add_argument("--window-size=%d,%d" % (width, height))
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    svc = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"),
                  log_path=os.path.join(os.environ["CHROME_LOGS"], "chromedriver.log"))
    d = webdriver.Chrome(service=svc, options=o)
    d.set_page_load_timeout(20)
    d.set_script_timeout(10)
    return d


# The coordinator's HTTP token (--http-token-file), when the test gives one: the API is
# read with it, and the page is opened with it in the fragment, as an operator does.
TOKEN = os.environ.get("AULAC_HTTP_TOKEN", "")


def api(url, what):
    req = urllib.request.Request(url.rstrip("/") + "/api/v1/" + what)
    if TOKEN:
        req.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def open_page(d, url):
    d.get(url + ("#token=" + TOKEN if TOKEN else ""))
    if TOKEN and "token" in d.current_url:
        fail("the token stays in the address bar: %s" % d.current_url)


def closed_rounds(url):
    """The closed rounds as the API has them: /api/v1/rounds, else the status reply's."""
    try:
        j = api(url, "rounds")
        rounds = j["rounds"] if isinstance(j, dict) else j
        if rounds:
            return rounds
    except Exception:
        pass
    return api(url, "status")["rounds"]


def page(d):
    return d.execute_script("""
        const b = document.body, c = (window.Chart && Chart.getChart) ?
            (id) => Chart.getChart(id) : () => null;
        const pts = (id) => { const ch = c(id); return ch ? ch.data.datasets.map(
            (s) => ({label: s.label, xs: s.data.map((p) => p.x)})) : null; };
        return {
          refreshes: +(b.dataset.refreshes || 0),
          closed: +(b.dataset.closedRounds || 0),
          probe: window.__dashboardProbe || null,
          updated: document.getElementById('updated').textContent,
          stale: !document.getElementById('stale').hidden,
          staleText: document.getElementById('stale').textContent,
          rows: [...document.querySelectorAll('#members-body tr[data-member]')]
                  .map((tr) => tr.dataset.member),
          loss: pts('loss-chart'), bytes: pts('bytes-chart'),
          chartsOff: !document.querySelector('.charts-off').hidden,
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
          ledgerSize: document.getElementById('ledger-size').textContent,
          progress: document.getElementById('progress').hidden ? null :
            ['round-label', 'round-reported', 'round-eligible', 'round-deadline']
              .map((id) => document.getElementById(id).textContent),
        };""")


def wait_for(d, what, cond, limit):
    t0 = time.time()
    while time.time() - t0 < limit:
        p = page(d)
        if cond(p):
            return p
        time.sleep(0.25)
    fail("%s within %d s; the page shows %s" % (what, limit, json.dumps(page(d))[:600]))


def screenshot(d, path, scale, restore=None):
    """The whole page: the viewport is made as tall as the page first (and the charts given
    time to redraw at that size), since a capture beyond the viewport resizes the canvases
    while it shoots."""
    m = d.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = m.get("cssContentSize") or m["contentSize"]
    w, h = int(size["width"]), int(size["height"]) + 1
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": w, "height": h, "deviceScaleFactor": scale, "mobile": scale > 1})
    time.sleep(0.8)
    shot = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    if restore:
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", restore)
    else:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    if os.path.getsize(path) < 1000:
        fail("the screenshot %s is empty" % path)
    print("screenshot: %s (%dx%d CSS px)" % (path, w, h))


def check_charts(url, d, members):
    """Every member's validation loss of every closed round is a point of the loss chart,
    and every closed round a bar of the uplink chart (the chart may lag the API by one
    refresh, so it is given two to catch up)."""
    rounds = closed_rounds(url)
    want = {}
    for r in rounds:
        for m in r.get("members", []):
            if m.get("val_loss") is not None:
                want.setdefault(m["member"], set()).add(r["round"])
    want_bytes = {r["round"] for r in rounds}
    if not want:
        fail("the API's closed rounds carry no validation loss: %s" % json.dumps(rounds)[:300])

    def ok(p):
        if p["loss"] is None or p["bytes"] is None:
            return False
        got = {s["label"]: set(s["xs"]) for s in p["loss"]}
        return all(want[m] <= got.get(m, set()) for m in want) and \
            want_bytes <= set(p["bytes"][0]["xs"] if p["bytes"] else [])
    p = wait_for(d, "the charts showing every closed round", ok, 2 * REFRESH_S + 2)
    for s in p["loss"]:
        if len(s["xs"]) != len(set(s["xs"])):
            fail("member %s has two points for one round: %s" % (s["label"], s["xs"]))
    if sorted(want) != sorted(members):
        fail("losses in the API for %s, members %s" % (sorted(want), members))
    n = sum(len(v) for v in want.values())
    print("loss chart: a point per member for each of the %d closed rounds (%d points); "
          "uplink chart: %d bars" % (len(rounds), n, len(want_bytes)))
    return p


def desktop(url, out, members):
    d = browser(1280, 900, False)
    try:
        open_page(d, url)
        if d.title != "aulac coordinator":
            fail("the page's title is %r" % d.title)
        p = wait_for(d, "a first refresh", lambda p: p["refreshes"] >= 1, 15)
        d.execute_script("window.__dashboardProbe = 'loaded-once';")
        closed0, refreshes0, updated0 = p["closed"], p["refreshes"], p["updated"]
        print("loaded: %d closed rounds, %r; progress %s" % (closed0, updated0, p["progress"]))
        # round 1 waits for its members (the workers start after this): 0 of 3, and the
        # deadline counts down from the policy's round_deadline_s (60)
        pr = p["progress"]
        if closed0 == 0 and (not pr or pr[0] != "round 1" or pr[1:3] != ["0", str(len(members))]
                             or not re.fullmatch(r"in (1 min 0|[1-5]?\d) s", pr[3])):
            fail("round progress at load: %s, want round 1, 0 of %d, a deadline within 60 s" %
                 (pr, len(members)))
        if os.environ.get("READY_FILE"):
            open(os.environ["READY_FILE"], "w").close()
        # it updates by itself: a round closes and the page shows it, with no reload
        p = wait_for(d, "a round closing after the page loaded",
                     lambda p: p["closed"] > closed0 and p["closed"] >= 1, CLOSE_WAIT_S)
        if p["probe"] != "loaded-once":
            fail("the page was reloaded (its probe is gone): it should update by itself")
        if p["refreshes"] <= refreshes0 or p["updated"] == updated0:
            fail("'updated' did not move on: %r then %r" % (updated0, p["updated"]))
        if not re.fullmatch(r"updated \d\d:\d\d:\d\d", p["updated"]):
            fail("the freshness line reads %r" % p["updated"])
        print("updated by itself: %d -> %d closed rounds after %d refreshes, %r" %
              (closed0, p["closed"], p["refreshes"] - refreshes0, p["updated"]))
        if p["chartsOff"]:
            fail("the page says charts are off: /assets/chart.js is not served")
        if sorted(p["rows"]) != sorted(members):
            fail("members table rows %s, want %s" % (p["rows"], members))
        print("members table: %d rows (%s)" % (len(p["rows"]), ", ".join(p["rows"])))
        check_charts(url, d, members)
        if p["stale"]:
            fail("the stale warning shows while the coordinator answers: %r" % p["staleText"])
        # script errors and CSP refusals (a 404 of an optional /api/v1/ part is no error)
        errors = [e for e in d.get_log("browser")
                  if e.get("level") == "SEVERE" and e.get("source") != "network"]
        if errors:
            fail("console errors: %s" % errors[:3])
        screenshot(d, os.path.join(out, "dashboard.png"), 1)
    finally:
        d.quit()


def phone(url, out, members, coord_pid):
    d = browser(390, 844, True)
    try:
        open_page(d, url)
        p = wait_for(d, "a first refresh with the members and charts",
                     lambda p: p["refreshes"] >= 1 and len(p["rows"]) == len(members)
                     and p["loss"] is not None, 15)
        time.sleep(0.5)                       # let the charts lay themselves out
        p = page(d)
        # (a mobile browser widens its layout viewport to content wider than the screen,
        # so innerWidth over 390 is the same failure)
        if p["scrollWidth"] > p["innerWidth"] or p["innerWidth"] != 390:
            fail("horizontal scroll at phone width: scrollWidth %d, innerWidth %d on a 390 px "
                 "screen" % (p["scrollWidth"], p["innerWidth"]))
        print("phone 390x844: scrollWidth %d <= innerWidth %d: no horizontal scroll" %
              (p["scrollWidth"], p["innerWidth"]))
        screenshot(d, os.path.join(out, "dashboard-phone.png"), 3,
                   {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
        # the coordinator stops answering: the page says so and keeps the last data
        os.kill(coord_pid, signal.SIGTERM)
        p = wait_for(d, "the stale warning after the coordinator stopped",
                     lambda p: p["stale"], 3 * REFRESH_S + 6)
        if sorted(p["rows"]) != sorted(members):
            fail("the members table emptied when the coordinator stopped: %s" % p["rows"])
        print("coordinator stopped: %r" % p["staleText"])
    finally:
        d.quit()


def main():
    mode, url, out, members = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    os.makedirs(out, exist_ok=True)
    if mode == "desktop":
        desktop(url, out, members)
    elif mode == "phone":
        phone(url, out, members, int(sys.argv[5]))
    else:
        fail("unknown mode %r" % mode)


if __name__ == "__main__":
    main()
