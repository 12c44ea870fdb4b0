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
  const state = { lastOk: 0, refreshes: 0, failures: 0, deadline: null, charts: {} };

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
  /* A time as unix seconds, unix milliseconds or an ISO string: a Date or null. */
  function when(v) {
    if (v === null || v === undefined || v === 0 || v === "") return null;
    if (typeof v === "number") return new Date(v > 1e12 ? v : v * 1000);
    const d = new Date(v);
    return isNaN(d.getTime()) ? null : d;
  }
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
  /* The first of several field names an object has (older and newer API replies). */
  function pick(o, ...names) {
    if (!o) return undefined;
    for (const n of names) if (o[n] !== undefined && o[n] !== null) return o[n];
    return undefined;
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
    if (!e) return;
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
                                          headers: { Accept: "application/json" } });
      if (r.status === 404) return null;        // not offered by this coordinator
      if (!r.ok) throw new Error(what + ": HTTP " + r.status);
      return await r.json();
    } finally { clearTimeout(t); }
  }
  async function getOptional(what) {
    try { return await get(what); } catch (e) { return undefined; }
  }

  /* --- sections ---------------------------------------------------------------------- */
  function showExperiment(st) {
    const exp = pick(st, "experiment", "experiment_id");
    setText("alliance-exp", pick(st, "policy", "policy_name") || "coordinator");
    setText("exp-id", exp ? short(exp, 16) : "none");
    if (exp) $("exp-id").title = exp;
    setText("exp-policy", pick(st, "policy", "policy_name"));
    setState("exp-state", pick(st, "state"));
    const total = num(pick(st, "total_rounds"));
    const round = num(pick(st, "round"));
    setText("exp-round", round === null ? "–" : round + (total ? " of " + total : ""));
    setText("exp-model", short(pick(st, "model_hash"), 16));
    setText("exp-queue", pick(st, "queue_length"));

    const prog = pick(st, "round_progress", "progress", "current_round") || st;
    const reported = num(pick(prog, "reported", "members_reported", "received"));
    const eligible = num(pick(prog, "eligible", "members_eligible", "expected"));
    setText("round-label", round === null ? "round" : "round " + round);
    setText("round-reported", reported === null ? "–" : reported);
    setText("round-eligible", eligible === null ? "–" : eligible);
    const m = $("round-meter");
    m.max = eligible || 1;
    m.value = reported || 0;
    state.deadline = when(pick(prog, "deadline", "deadline_unix", "deadline_unix_ms", "deadline_at"));
    tick();

    const p = pick(st, "privacy");
    const pe = $("privacy");
    if (p && num(p.epsilon) !== null) {
      pe.hidden = false;
      pe.textContent = "privacy: ε " + p.epsilon.toPrecision(4) + " spent at δ " + p.delta +
        (num(p.target_epsilon) !== null ? " (target ε " + p.target_epsilon + ")" : "");
    } else pe.hidden = true;
  }

  function memberRows(st, mem) {
    // /api/v1/members when offered, else the members of the status reply
    const rows = list(mem, "members");
    return rows.length ? rows : list(st, "members");
  }

  function lastValLoss(rounds, member) {
    for (let i = rounds.length - 1; i >= 0; i--)
      for (const m of list(rounds[i], "members"))
        if (m.member === member && num(m.val_loss) !== null) return m.val_loss;
    return null;
  }

  function reasonsText(m) {
    const r = pick(m, "rejected_reasons", "rejections", "reasons");
    if (!r) return "";
    if (Array.isArray(r))
      return r.map((x) => typeof x === "string" ? x :
        (pick(x, "reason") || "?") + (num(pick(x, "count")) !== null ? " ×" + x.count : "")).join(", ");
    if (typeof r === "object")
      return Object.keys(r).sort().map((k) => k + " ×" + r[k]).join(", ");
    return String(r);
  }

  function showMembers(st, mem, rounds) {
    const rows = memberRows(st, mem);
    fillTable("members-body", rows, 9, (tr, m) => {
      const id = pick(m, "member", "member_id", "id");
      tr.dataset.member = id;
      const seen = when(pick(m, "last_seen", "last_seen_unix", "last_seen_at"));
      if (seen && Date.now() - seen.getTime() > 5 * 60 * 1000) tr.className = "silent";
      cell(tr, id);
      cell(tr, pick(m, "organization", "org") || "");
      const s = cell(tr, ago(seen));
      if (seen) s.title = seen.toISOString();
      cell(tr, int(pick(m, "rounds_joined", "rounds")), "n");
      cell(tr, int(pick(m, "tokens")), "n");
      cell(tr, bytes(pick(m, "bytes_sent", "upload_bytes", "bytes")), "n");
      cell(tr, int(pick(m, "rejected", "rejected_updates")), "n");
      cell(tr, reasonsText(m), "reasons");
      const v = pick(m, "val_loss", "last_val_loss");
      cell(tr, loss(v !== undefined ? v : lastValLoss(rounds, id)), "n");
    });
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
    // what the chart shows, for people with screen readers and for the browser test
    const pts = datasets.reduce((n, d) => n + d.data.length, 0);
    $(id).dataset.points = String(pts);
    $(id).dataset.rounds = JSON.stringify([...new Set(datasets.flatMap((d) => d.data.map((p) => p.x)))].sort((a, b) => a - b));
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

  function showExperiments(exps, st) {
    let rows = list(exps, "experiments");
    if (!rows.length && pick(st, "experiment"))
      rows = [{ experiment: st.experiment, policy: st.policy, state: st.state,
                round: st.round, total_rounds: st.total_rounds }];
    fillTable("experiments-body", rows, 4, (tr, x) => {
      const id = pick(x, "experiment", "experiment_id", "id");
      tr.dataset.experiment = id;
      const td = cell(tr, short(id, 12), "hash");
      td.title = id || "";
      cell(tr, pick(x, "policy", "policy_name", "name"));
      const s = document.createElement("span");
      const sv = pick(x, "state", "status") || "";
      s.textContent = sv;
      s.className = "state " + String(sv).replace(/[^a-z_-]/gi, "");
      const tds = cell(tr, "");
      tds.replaceChildren(s);
      const rd = num(pick(x, "round")), tot = num(pick(x, "total_rounds", "rounds"));
      cell(tr, (rd !== null ? rd : "–") + (tot !== null ? " / " + tot : ""), "n");
    });
  }

  function votesText(p) {
    const v = pick(p, "votes");
    if (Array.isArray(v))
      return v.map((x) => typeof x === "string" ? x :
        (pick(x, "member", "voter") || "?") + ": " + (pick(x, "vote", "choice", "decision") || "?")).join(", ") || "none yet";
    const yes = num(pick(p, "yes", "approvals")), no = num(pick(p, "no", "rejections"));
    const need = pick(p, "quorum", "needed");
    if (yes !== null || no !== null)
      return (yes || 0) + " yes, " + (no || 0) + " no" + (need !== undefined ? " (quorum " + need + ")" : "");
    return "–";
  }

  function showProposals(props) {
    const open = list(props, "proposals").filter((p) => {
      const s = pick(p, "state", "status");
      return s === undefined || s === "open" || s === "pending";
    });
    fillTable("proposals-body", open, 4, (tr, p) => {
      const id = pick(p, "proposal", "proposal_id", "id");
      const td = cell(tr, short(id, 12), "hash");
      td.title = id || "";
      cell(tr, pick(p, "kind", "type"));
      cell(tr, pick(p, "proposer"));
      cell(tr, votesText(p), "reasons");
    });
  }

  function showLedger(led, st) {
    const l = led || {};
    setText("ledger-size", int(pick(l, "size", "ledger_size") !== undefined ? pick(l, "size", "ledger_size") : pick(st, "ledger_size")));
    const root = pick(l, "root", "ledger_root") || pick(st, "ledger_root");
    setText("ledger-root", root || "–");
    const ck = pick(l, "checkpoint", "latest_checkpoint");
    let ckText = "–";
    if (ck && typeof ck === "object") {
      const at = when(pick(ck, "time", "timestamp", "at"));
      ckText = "size " + int(pick(ck, "size")) + ", root " + short(pick(ck, "root"), 16) + (at ? ", " + ago(at) : "");
    } else if (ck) ckText = String(ck);
    setText("ledger-checkpoint", ckText);
    const v = pick(l, "verify", "verify_status");
    let vs = "–", cls = "";
    if (v && typeof v === "object") {
      const ok = pick(v, "ok", "valid");
      const s = pick(v, "status", "state") || (ok === true ? "ok" : ok === false ? "failed" : "unknown");
      const at = when(pick(v, "checked_at", "at", "time"));
      vs = s + (at ? " (" + ago(at) + ")" : "") + (pick(v, "error", "why") ? ": " + pick(v, "error", "why") : "");
      cls = ok === false || /fail|bad|mismatch/.test(s) ? "bad" : ok === true || s === "ok" ? "ok" : "";
    } else if (v !== undefined) {
      vs = String(v); cls = v === "ok" || v === true ? "ok" : /fail|bad/.test(String(v)) ? "bad" : "";
    }
    const e = $("ledger-verify");
    e.textContent = vs;
    e.className = "state " + cls;
  }

  function showCredits(cr) {
    const sec = $("credits");
    const exps = list(cr, "experiments");
    const x = exps.length ? exps[exps.length - 1] : null;
    if (!x || !list(x, "members").length) { sec.hidden = true; return; }
    sec.hidden = false;
    const st = pick(x, "state") || "";
    setText("credits-sub", "experiment " + short(pick(x, "experiment"), 12) + ", " + st +
      (num(pick(x, "rounds")) !== null ? ", " + x.rounds + " rounds scored" : "") +
      (Array.isArray(x.measures) ? "; measures " + x.measures.join(", ") : ""));
    fillTable("credits-body", list(x, "members"), 3, (tr, m) => {
      tr.dataset.member = pick(m, "member");
      cell(tr, pick(m, "member"));
      const s = num(pick(m, "share", "credit"));
      cell(tr, s === null ? "–" : (100 * s).toFixed(1) + " %", "n");
      cell(tr, int(pick(m, "rounds")), "n");
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
    } else if (!state.lastOk && state.failures > 0) {
      st.hidden = false;
      st.textContent = "The coordinator does not answer.";
    } else st.hidden = true;
  }

  async function refresh() {
    try {
      const st = await get("status");
      if (!st) throw new Error("no /api/v1/status");
      const [mem, rnd, exps, props, led, cr] = await Promise.all(
        ["members", "rounds", "experiments", "proposals", "ledger", "credits"].map(getOptional));
      const rounds = list(rnd, "rounds").length ? list(rnd, "rounds") : list(st, "rounds");
      showExperiment(st);
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
