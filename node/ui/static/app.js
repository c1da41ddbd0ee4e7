// The gpunode dashboard: reads the node's control API through the dashboard's read-only
// /api routes and renders one page per concern. No framework, nothing from elsewhere.
"use strict";

const token = new URLSearchParams(location.hash.replace(/^#[^&]*&?/, "").replace(/^#/, "")).get("token")
  || sessionStorage.getItem("gpunode-token") || "";
if (token) sessionStorage.setItem("gpunode-token", token);

async function get(path, text) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch("/api" + path, { headers, cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()).trim());
  return text ? r.text() : r.json();
}

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const dash = (v, unit = "") => (v === undefined || v === null ? "—" : v + unit);
const gib = (b) => (b === undefined || b === null ? "—" : (b / 2 ** 30).toFixed(1) + " GiB");
function ether(wei) {
  if (wei === undefined || wei === null || wei === "") return "—";
  const v = BigInt(wei), whole = v / 10n ** 18n, frac = (v % 10n ** 18n).toString().padStart(18, "0").replace(/0+$/, "");
  return whole + (frac ? "." + frac : "") + " ETH";
}
const amount = (e) => (e.token ? e.wei + " of " + e.token : ether(e.wei));
const when = (t) => (t ? new Date(t).toLocaleString() : "—");
function table(cols, rows, id) {
  return `<table${id ? ` id="${id}"` : ""}><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>` +
    (rows.length ? rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")
      : `<tr><td colspan="${cols.length}" class="dim">none</td></tr>`) + "</tbody></table>";
}
const set = (id, html) => { document.getElementById(id).innerHTML = html; };

const pages = {
  async rig() {
    const s = await get("/v1/status");
    set("rig-summary", table(["GPU mode", "Driver", "CUDA", "Version", "Peer ID", "Uptime"], [[
      esc(s.gpu_mode) + (s.gpu_note ? ` <span class="dim">(${esc(s.gpu_note)})</span>` : ""),
      esc(dash(s.driver)), esc(dash(s.cuda)), esc(s.version), esc(dash(s.peer_id)), Math.round(s.uptime_seconds) + " s"]]));
    const rows = (s.gpus || []).map((g) => {
      const x = g.sample || {};
      return [g.index, esc(g.name), `<code>${esc(g.uuid)}</code>`,
        g.healthy === false ? `<span class="bad">${esc(g.problem || "unhealthy")}</span>` : '<span class="ok">healthy</span>',
        dash(x.gpu_util_percent, " %"), dash(x.temperature_c, " °C"), x.power_watts === undefined ? "—" : x.power_watts.toFixed(0) + " W",
        gib(x.memory_used_bytes) + " / " + gib(g.memory_bytes), dash(x.last_xid || undefined),
        esc(g.error || (x.unsupported || []).join(", "))];
    });
    set("rig-gpus", table(["#", "Model", "UUID", "Health", "Utilization", "Temperature", "Power", "Memory", "Last XID", "Notes"], rows, "gpus"));
  },

  async jobs() {
    const list = await get("/v1/jobs");
    const rows = list.map((j) => [`<a href="#jobs/${esc(j.id)}">${esc(j.id)}</a>`, `<span class="state">${esc(j.state)}</span>`,
      esc(j.posting?.reward_wei ? ether(j.posting.reward_wei) : "—"), esc((j.gpus || []).join(", ")), when(j.updated_at), esc(j.reason || "")]);
    set("jobs-list", table(["Job", "State", "Reward", "GPUs", "Updated", "Reason"], rows, "jobs"));
    const id = location.hash.split("/")[1];
    if (!id) { set("job-detail", ""); return; }
    const d = await get("/v1/jobs/" + encodeURIComponent(id));
    let log = "";
    try { log = await get("/v1/jobs/" + encodeURIComponent(id) + "/logs", true); } catch (e) { log = "(no log: " + e.message + ")"; }
    set("job-detail", `<h3>Job ${esc(d.id)}: ${esc(d.state)}</h3>` +
      table(["From", "To", "At", "Note"], (d.history || []).map((t) => [esc(t.from), esc(t.to), when(t.at), esc(t.note || "")]), "job-history") +
      `<h3>Log (end)</h3><pre id="job-log">${esc(log)}</pre>`);
  },

  async earnings() {
    const s = await get("/v1/status");
    const e = s.earnings;
    if (!e) { set("earnings-summary", '<p class="dim">This node takes no jobs (no chain configured).</p>'); }
    else {
      const rows = [["ETH", ether(e.rewards_wei), ether(e.validator_fees_wei), ether(e.withdrawn_wei), ether(e.credit_wei)]];
      for (const t of e.tokens || []) rows.push([esc(t.token), esc(t.rewards), esc(t.validator_fees), esc(t.withdrawn), esc(dash(t.credit))]);
      set("earnings-summary", table(["Currency", "Rewards", "Validator fees", "Withdrawn", "To withdraw"], rows, "earnings") +
        (e.error ? `<p class="error">${esc(e.error)}</p>` : ""));
    }
    const ledger = await get("/v1/market/ledger");
    const days = {};
    for (const l of ledger) {
      if (l.kind === "withdrawal") continue;
      const key = l.at.slice(0, 10) + " " + (l.token || "ETH");
      days[key] = (days[key] || 0n) + BigInt(l.wei);
    }
    set("earnings-days", table(["Day", "Currency", "Earned"], Object.keys(days).sort().reverse().map((k) => {
      const [day, cur] = k.split(" ");
      return [day, esc(cur), cur === "ETH" ? ether(days[k].toString()) : days[k].toString()];
    }), "earnings-days-table"));
    set("earnings-ledger", table(["When", "Kind", "Job", "Amount", "Transaction"], ledger.slice().reverse().map((l) =>
      [when(l.at), esc(l.kind), esc(l.job_id || ""), esc(amount(l)), `<code>${esc(l.tx || "")}</code>`]), "ledger"));
  },

  async benchmark() {
    const s = await get("/v1/status");
    const b = s.benchmark;
    if (!b) { set("benchmark-body", '<p class="dim">Not measured yet: run <code>gpunode bench</code>.</p>'); return; }
    set("benchmark-body", table(["DL hashrate (TFLOPS)", "Profile", "Backend", "Measured"], [[b.rig_score_tflops.toFixed(2), esc(b.profile), esc(b.backend), when(b.created_at)]], "benchmark") +
      table(["Device", "Score (TFLOPS)"], (b.devices || []).map((d) => [esc(d.device), (d.score ?? 0).toFixed(2)])));
  },

  async market() {
    const p = await get("/v1/p2p/peers").catch(() => null);
    set("market-peers", p ? table(["Peer", "Latency", "Score"], (p.peers || []).map((x) => [`<code>${esc(x.peer_id)}</code>`, x.latency_ms.toFixed(1) + " ms", x.score.toFixed(1)]), "peers")
      : '<p class="dim">The p2p network is off.</p>');
    const m = await get("/v1/p2p/market").catch(() => null);
    set("market-records", m ? table(["Rig", "GPUs", "Free", "Score", "Price per GPU-hour"], (m.records || []).map((r) =>
      [`<code>${esc(r.peer_id)}</code>${r.self ? " (this node)" : ""}`, (r.gpus || []).map((g) => esc(g.count + "× " + g.model)).join(", ") || "CPU", r.free_gpus, (r.score ?? 0).toFixed(2), esc(r.price_per_gpu_hour)]), "market")
      : "");
  },

  async policy() {
    const p = await get("/v1/policy");
    const a = p.admission || {};
    set("policy-body", table(["Admission", "Local policy", "Pool policy", "Last reload"], [[
      `<span id="admission">${esc(a.state)}</span>`, p.has_local ? esc(p.file) : "none", p.has_pool ? "seq " + p.pool_seq : "none",
      when(p.last_reload) + (p.last_reload_error ? ` <span class="bad">${esc(p.last_reload_error)}</span>` : "")]]));
    const r = await get("/v1/policy/rejections").catch(() => ({ recent: [] }));
    set("policy-rejections", table(["When", "Sponsor", "Image", "Why"], (r.recent || []).slice().reverse().map((x) =>
      [when(x.time), `<code>${esc(x.sponsor)}</code>`, `<code>${esc(x.image)}</code>`,
        esc(x.reason || (x.failed || []).map((f) => f.rule + ": " + f.detail).join("; "))]), "rejections"));
  },

  async doctor() {
    let r;
    try { r = await get("/v1/doctor"); } catch (e) {
      set("doctor-body", `<p class="dim">${esc(e.message.replace(/^[^:]*: \d+ /, ""))}</p>`);
      return;
    }
    const cls = { ok: "ok", warn: "dim", fail: "bad", skip: "dim" };
    set("doctor-body", `<p>Last <code>gpunode doctor</code>: ${when(r.checked_at)}${r.failed ? ' — <span class="bad">a check failed</span>' : ""}</p>` +
      table(["Check", "Verdict", "Found", "Fix"], (r.checks || []).map((c) =>
        [esc(c.name), `<span class="${cls[c.status] || ""}">${esc(c.status)}</span>`, esc(c.detail), esc(c.status === "ok" ? "" : c.fix || "")]), "doctor"));
  },

  async checks() {
    const s = await get("/v1/status");
    set("checks-body", table(["Check", "Verdict", "What to do"], (s.checks || []).map((c) =>
      [esc(c.name), c.ok ? '<span class="ok">ok</span>' : '<span class="bad">problem</span>', esc(c.message || "")]), "checks"));
  },
};

async function refresh() {
  const name = (location.hash.slice(1).split("/")[0]) || "rig";
  for (const sec of document.querySelectorAll(".page")) sec.hidden = sec.id !== "page-" + name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === "#" + name);
  const err = document.getElementById("error");
  try {
    const s = await get("/v1/status");
    document.getElementById("node-host").textContent = s.hostname;
    document.getElementById("node-state").textContent = s.state + (s.gpu_mode === "simulated" ? " · SIMULATED GPUs" : "");
    if (pages[name]) await pages[name]();
    err.hidden = true;
    document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    document.body.dataset.loaded = name;
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

window.addEventListener("hashchange", refresh);
refresh();
setInterval(refresh, 2000);
