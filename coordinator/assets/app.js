/* The coordinator's dashboard: reads /api/v1/* every REFRESH_MS and redraws itself.
 * Served under CSP default-src 'self': no inline script or style, and every piece of
 * server data enters the page through textContent, never parsed as HTML. Fields follow
 * coordinator/HTTP.md; /api/v1/status has the fields of `aulac status --json`. */
"use strict";

(function () {
  const REFRESH_MS = 3000;
  const STALE_MS = 2.5 * REFRESH_MS;   // no answer for this long: the stale banner
  const API = "/api/v1/";

  const $ = (id) => document.getElementById(id);

  /* The HTTP view's bearer token, when the coordinator asks for one (--http-token-file):
   * opened with #token=TOKEN after its address, the page keeps it in this tab's
   * sessionStorage, takes it out of the address bar, and sends it with every request. The
   * fragment never leaves the browser. */
  const TOKEN_KEY = "aulac-http-token";
  function takeToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash || "");
    if (m) {
      try { sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1])); } catch (e) { /* none */ }
      history.replaceState(null, "", location.pathname + location.search);
    }
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }
  const token = takeToken();
  function headers(accept) {
    const h = { Accept: accept };
    if (token) h.Authorization = "Bearer " + token;
    return h;
  }
  // skew: this screen's clock minus the coordinator's (from /api/v1/members' now_ms)
  const state = { lastOk: 0, refreshes: 0, failures: 0, deadline: null, skew: 0, charts: {} };

  /* --- formatting ------------------------------------------------------------------- */
  const hhmmss = (d) => d.toTimeString().slice(0, 8);
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function int(v) { return num(v) === null ? "–" : Math.round(v).toLocaleString("en"); }
  function bytes(v) {
    if (num(v) === null) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + " " + u[i];
  }
  function loss(v) { return num(v) === null ? "–" : v.toFixed(4); }
  function short(h, n) { return typeof h === "string" && h.length > n ? h.slice(0, n) + "…" : (h || "–"); }
  /* unix milliseconds (the API's *_ms): a Date, or null for null/0 */
  function when(v) { return num(v) ? new Date(v) : null; }
  function ago(d) {
    if (!d) return "never";
    let s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function countdown(d) {
    if (!d) return "–";
    let s = Math.round((d.getTime() - Date.now()) / 1000);
    const sign = s < 0 ? "passed " : "in ";
    s = Math.abs(s);
    const m = Math.floor(s / 60), r = s % 60;
    return sign + (m ? m + " min " : "") + r + " s";
  }
  function list(o, key) {
    if (Array.isArray(o)) return o;
    const v = o && o[key];
    return Array.isArray(v) ? v : [];
  }

  /* --- DOM helpers: text only ------------------------------------------------------- */
  function setText(id, v) { const e = $(id); if (e) e.textContent = v === undefined || v === null ? "–" : String(v); }
  function setState(id, v) {
    const e = $(id);
    e.textContent = v || "–";
    e.className = "state " + String(v || "").replace(/[^a-z_-]/gi, "");
  }
  function cell(tr, v, cls) {
    const td = document.createElement("td");
    td.textContent = v === undefined || v === null ? "–" : String(v);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function fillTable(id, rows, cols, render) {
    const body = $(id);
    const trs = rows.map((r) => { const tr = document.createElement("tr"); render(tr, r); return tr; });
    if (!trs.length) {
      const tr = document.createElement("tr");
      const td = cell(tr, "none", "empty");
      td.colSpan = cols;
      trs.push(tr);
    }
    body.replaceChildren(...trs);
  }

  /* --- fetching ---------------------------------------------------------------------- */
  async function get(what) {
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), REFRESH_MS * 2);
    try {
      const r = await fetch(API + what, { cache: "no-store", signal: ctl.signal,
                                          headers: headers("application/json") });
      if (r.status === 404) return null;        // not offered by this coordinator
      if (r.status === 401) state.unauthorized = true;
      if (!r.ok) throw new Error(what + ": HTTP " + r.status);
      return await r.json();
    } finally { clearTimeout(t); }
  }
  async function getOptional(what) {
    try { return await get(what); } catch (e) { return undefined; }
  }
  async function getMetrics() {
    try {
      const r = await fetch("/metrics", { cache: "no-store", headers: headers("text/plain") });
      return r.ok ? parseMetrics(await r.text()) : null;
    } catch (e) { return null; }
  }

  /* --- sections (fields: coordinator/HTTP.md) --------------------------------------- */
  function stateClass(v) { return "state " + String(v || "").replace(/[^a-z_-]/gi, ""); }

  /* The unlabelled samples of a Prometheus text exposition: {name: value}. */
  function parseMetrics(text) {
    const out = {};
    for (const line of String(text || "").split("\n")) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*) ([^ ]+)/.exec(line);
      if (m) out[m[1]] = Number(m[2]);
    }
    return out;
  }

  /* The open round's progress comes from /metrics (HTTP.md, Metrics: aulac_round_updates,
   * aulac_round_eligible_members, aulac_round_deadline_timestamp_seconds). */
  function showExperiment(st, met) {
    const exp = st.experiment;
    setText("alliance-exp", st.policy || "coordinator");
    setText("exp-id", exp ? short(exp, 16) : "none (idle)");
    $("exp-id").title = exp || "";
    setText("exp-policy", st.policy || "–");
    setState("exp-state", st.state);
    const total = num(st.total_rounds), round = num(st.round);
    // an ended experiment's "round" is the one after its last
    const shown = round !== null && total && round > total ? total : round;
    setText("exp-round", shown === null || !exp ? "–" : shown + (total ? " of " + total : ""));
    setText("exp-model", short(st.model_hash, 16));
    $("exp-model").title = st.model_hash || "";
    setText("exp-queue", num(st.queue_length) === null ? "–" : st.queue_length);

    const reported = met ? num(met.aulac_round_updates) : null;
    const eligible = met ? num(met.aulac_round_eligible_members) : null;
    const deadline = met ? num(met.aulac_round_deadline_timestamp_seconds) : null;
    setText("round-label", round === null || !exp ? "round" : "round " + round);
    setText("round-reported", reported === null ? "–" : reported);
    setText("round-eligible", eligible === null ? "–" : eligible);
    const m = $("round-meter");
    m.max = eligible || 1;
    m.value = reported || 0;
    state.deadline = deadline ? new Date(deadline * 1000 + state.skew) : null;
    $("progress").hidden = st.state !== "running";

    const p = st.privacy, pe = $("privacy");
    if (p) {   // present only for an experiment with privacy; epsilon null: infinite (z = 0)
      pe.hidden = false;
      pe.textContent = (num(p.epsilon) !== null
        ? "privacy: ε " + p.epsilon.toPrecision(4) + " spent at δ " + p.delta
        : "privacy: ε ∞ at δ " + p.delta + " (noise multiplier 0: clipping only)") +
        (num(p.target_epsilon) !== null ? " (target ε " + p.target_epsilon + ")" : "");
    } else pe.hidden = true;

    // The data directory (HTTP.md, status: disk, storage_error), as the timer measured it.
    const se = $("storage-error");
    se.hidden = !st.storage_error;
    se.textContent = st.storage_error ? "storage: " + st.storage_error + " (retrying)" : "";
    const d = st.disk, de = $("disk");
    if (d) {
      de.hidden = false;
      de.className = d.low_space ? "warn" : "";
      de.textContent = "disk: " + bytes(d.total_bytes) + " in the data directory (ledger " +
        bytes(d.ledger_bytes) + ", checkpoints " + bytes(d.checkpoint_bytes) + ", payloads " +
        bytes(d.payload_bytes) + ", outer state and downlink " + bytes(d.experiment_file_bytes) +
        ", artifacts " + bytes(d.artifact_bytes) + ", spool " + bytes(d.spool_bytes) + "); " +
        bytes(d.free_bytes) + " free" + (d.low_space ? " — low" : "");
    } else de.hidden = true;
  }

  /* /api/v1/members; the status reply's members (no last seen, no reasons) if it fails. */
  function showMembers(st, mem, rounds) {
    const rows = mem ? list(mem, "members") : list(st, "members");
    const skew = state.skew;
    fillTable("members-body", rows, 9, (tr, m) => {
      tr.dataset.member = m.member;
      // ages by the coordinator's clock, so a skewed wall screen shows them right
      const seen = num(m.last_seen_ms) !== null ? new Date(m.last_seen_ms + skew) : null;
      if (seen && Date.now() - seen.getTime() > 5 * 60 * 1000) tr.className = "silent";
      cell(tr, m.member);
      cell(tr, m.organization || "", "org");
      const s = cell(tr, mem ? ago(seen) : "–");
      if (seen) s.title = seen.toISOString();
      cell(tr, int(m.rounds_joined), "n");
      cell(tr, int(m.tokens), "n");
      cell(tr, bytes(m.bytes_sent), "n");
      cell(tr, int(m.rejected), "n");
      const rej = list(m, "recent_rejections");
      cell(tr, rej.map((r) => "round " + r.round + ": " + r.reason).join("; "), "reasons");
      let v = m.last_val_loss && num(m.last_val_loss.val_loss);
      if (v === null || v === undefined) v = lastValLoss(rounds, m.member);
      cell(tr, loss(v), "n");
    });
  }

  function lastValLoss(rounds, member) {
    for (let i = rounds.length - 1; i >= 0; i--)
      for (const m of list(rounds[i], "members"))
        if (m.member === member && num(m.val_loss) !== null) return m.val_loss;
    return null;
  }

  const PALETTE = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf",
                   "#ff7b72", "#a5d6ff", "#7ee787", "#e3b341"];

  function chartsAvailable() {
    const ok = typeof window.Chart === "function";
    for (const e of document.querySelectorAll(".charts-off")) e.hidden = ok;
    for (const e of document.querySelectorAll(".chart")) e.hidden = !ok;
    return ok;
  }

  function baseOptions(yTitle) {
    return {
      responsive: true, maintainAspectRatio: false, animation: false,
      parsing: false, normalized: true,
      scales: {
        x: { type: "linear", title: { display: true, text: "round", color: "#93a1b0" },
             ticks: { precision: 0, color: "#93a1b0" }, grid: { color: "#2b3643" } },
        y: { title: { display: true, text: yTitle, color: "#93a1b0" },
             ticks: { color: "#93a1b0" }, grid: { color: "#2b3643" } },
      },
      plugins: { legend: { labels: { color: "#e6edf3", boxWidth: 12 } } },
    };
  }

  function upsertChart(id, type, datasets, yTitle) {
    let c = state.charts[id];
    if (!c) {
      c = new window.Chart($(id), { type, data: { datasets }, options: baseOptions(yTitle) });
      state.charts[id] = c;
    } else {
      c.data.datasets = datasets;
      c.update("none");
    }
    $(id).dataset.points = String(datasets.reduce((n, d) => n + d.data.length, 0));
  }

  function showCharts(rounds) {
    if (!chartsAvailable()) return;
    const byMember = new Map();
    for (const r of rounds)
      for (const m of list(r, "members")) {
        if (num(m.val_loss) === null) continue;
        if (!byMember.has(m.member)) byMember.set(m.member, []);
        byMember.get(m.member).push({ x: r.round, y: m.val_loss });
      }
    const names = [...byMember.keys()].sort();
    upsertChart("loss-chart", "line", names.map((n, i) => ({
      label: n, data: byMember.get(n), borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length], pointRadius: 3, tension: 0,
    })), "validation loss");
    upsertChart("bytes-chart", "bar", [{
      label: "uplink bytes",
      data: rounds.filter((r) => num(r.upload_bytes) !== null).map((r) => ({ x: r.round, y: r.upload_bytes })),
      backgroundColor: "#58a6ff",
    }], "bytes");
  }

  /* The loaded and queued experiments, then the most recent ended ones (8 rows at most). */
  function showExperiments(exps, st) {
    let rows = list(exps, "experiments");
    if (!exps && st.experiment)
      rows = [{ experiment: st.experiment, policy: st.policy, phase: st.state,
                rounds_done: Math.max(0, (st.round || 1) - 1), total_rounds: st.total_rounds }];
    const live = rows.filter((x) => x.phase === "running" || x.phase === "queued");
    const ended = rows.filter((x) => x.phase !== "running" && x.phase !== "queued");
    rows = live.concat(ended.slice(-Math.max(0, 8 - live.length)).reverse());
    const loaded = exps && exps.loaded;       // its rounds_done is stored when it ends
    fillTable("experiments-body", rows, 4, (tr, x) => {
      tr.dataset.experiment = x.experiment;
      const td = cell(tr, short(x.experiment, 12), "hash");
      td.title = x.experiment || "";
      cell(tr, x.policy || "–");
      const s = document.createElement("span");
      s.textContent = x.phase || "–";
      s.className = stateClass(x.phase);
      cell(tr, "").replaceChildren(s);
      const done = loaded && loaded.experiment === x.experiment && num(loaded.closed_rounds) !== null
        ? loaded.closed_rounds : x.rounds_done;
      cell(tr, int(done) + (num(x.total_rounds) !== null ? " / " + x.total_rounds : ""), "n");
    });
  }

  function showProposals(props) {
    const open = list(props, "proposals").filter((p) => !p.state || p.state === "open");
    fillTable("proposals-body", open, 4, (tr, p) => {
      const td = cell(tr, short(p.proposal_hash, 12), "hash");
      td.title = p.proposal_hash || "";
      cell(tr, (p.family ? p.family + " " : "") + (p.kind || "") + (p.subject ? " " + short(p.subject, 12) : ""));
      cell(tr, p.proposer || "–");
      const votes = list(p, "votes").map((v) => v.member + (v.approve ? " yes" : " no"));
      cell(tr, int(p.yes) + " yes, " + int(p.no) + " no of " + int(p.needed) + " needed" +
        (votes.length ? " (" + votes.join(", ") + ")" : ""), "reasons");
    });
  }

  function showLedger(led, st) {
    const l = led || { size: st.ledger_size, root: st.ledger_root };
    setText("ledger-size", int(l.size));
    setText("ledger-root", l.root || "–");
    const ck = l.checkpoint;
    setText("ledger-checkpoint", ck ? "at " + int(ck.size) + " entries" : (led ? "none yet" : "–"));
    $("ledger-checkpoint").title = ck && ck.note ? ck.note : "";
    const v = l.verify, e = $("ledger-verify");
    if (!v) { e.textContent = "–"; e.className = "state"; setText("ledger-verify-detail", ""); return; }
    const at = when(v.checked_ms);
    e.textContent = v.status;
    e.className = stateClass(v.status === "ok" ? "ok" : v.status === "failed" ? "bad" : "pending");
    setText("ledger-verify-detail", (at ? ago(at) + (num(v.size) !== null ? ", " + int(v.size) + " entries" : "") : "") +
      (v.running ? (at ? "; " : "") + "checking now" : "") + (v.why ? ": " + v.why : ""));
  }

  function showCredits(cr) {
    const sec = $("credits");
    const c = cr && cr.credits;
    if (!c || !list(c, "members").length) { sec.hidden = true; return; }
    sec.hidden = false;
    setText("credits-sub", "experiment " + short(cr.experiment, 12) + ", " +
      (cr.final ? "final" : "running") + ", " + int(c.rounds) + " rounds scored; measures " +
      list(c, "measures").map((m) => m.name + " ×" + m.weight).join(", "));
    fillTable("credits-body", list(c, "members"), 3, (tr, m) => {
      tr.dataset.member = m.member;
      cell(tr, m.member);
      cell(tr, num(m.share) === null ? "–" : (100 * m.share).toFixed(1) + " %", "n");
      cell(tr, int(m.rounds), "n");
    });
  }

  /* --- the refresh loop -------------------------------------------------------------- */
  function tick() {
    setText("round-deadline", countdown(state.deadline));
    const st = $("stale");
    if (state.lastOk && Date.now() - state.lastOk > STALE_MS) {
      st.hidden = false;
      st.textContent = "The coordinator has not answered since " + hhmmss(new Date(state.lastOk)) +
        " (" + ago(new Date(state.lastOk)) + "): what you see may be out of date.";
    } else if (state.unauthorized && !state.lastOk) {
      st.hidden = false;
      st.textContent = (token ? "The coordinator refused this page's token." :
        "This coordinator's HTTP view needs its token.") +
        " Open the dashboard as " + location.origin + "/#token=<the token of --http-token-file>.";
    } else if (!state.lastOk && state.failures > 0) {
      st.hidden = false;
      st.textContent = "The coordinator does not answer.";
    } else st.hidden = true;
  }

  async function refresh() {
    try {
      const st = await get("status");
      if (!st) throw new Error("no /api/v1/status");
      const [mem, rnd, exps, props, led, cr, met] = await Promise.all(
        ["members", "rounds", "experiments", "proposals", "ledger", "credits"].map(getOptional)
          .concat([getMetrics()]));
      const rounds = rnd ? list(rnd, "rounds") : list(st, "rounds");
      if (mem && num(mem.now_ms) !== null) state.skew = Date.now() - mem.now_ms;
      showExperiment(st, met);
      showMembers(st, mem, rounds);
      showCharts(rounds);
      showExperiments(exps, st);
      showProposals(props);
      showLedger(led, st);
      showCredits(cr);
      state.lastOk = Date.now();
      state.refreshes++;
      document.body.dataset.refreshes = String(state.refreshes);
      document.body.dataset.closedRounds = String(rounds.length);
      setText("updated", "updated " + hhmmss(new Date(state.lastOk)));
    } catch (e) {
      state.failures++;
      if (window.console) console.warn("dashboard refresh:", e && e.message ? e.message : e);
    }
    tick();
  }

  let running = false;
  async function loop() {
    if (running) return;
    running = true;
    try { await refresh(); } finally { running = false; }
  }
  function start() {
    loop();
    setInterval(loop, REFRESH_MS);
    setInterval(tick, 1000);
  }
  // a deferred script runs once the document is parsed
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
