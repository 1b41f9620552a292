// The swarm dashboard: no build step, no dependencies. It reads /api/v1/events (Server-Sent Events,
// read with fetch so that the token goes in the Authorization header, never in a URL) and renders
// the cluster, its nodes and jobs; one job's log follows /api/v1/jobs/{id}/logs the same way.
"use strict";

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("swarmToken") || "";
let lastStatus = null;
let eventsAbort = null;
let logAbort = null;
const JOBS_SHOWN = 200;  // the most jobs the table lists, from the stream or from a filter's list
let filtered = null;  // {key, jobs, total, error}: GET /api/v1/jobs for the filter in `key`
let filtering = false, filterAgain = false;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

function bytes(n) {
  if (typeof n !== "number") return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function ago(ts) {
  if (!ts) return "";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return `${s.toFixed(0)}s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)}m ago`;
  return `${(s / 3600).toFixed(1)}h ago`;
}

function clockOff(s) {
  // A node's wall clock over a minute off the leader's (clock_off_s), as `swarm status` says it.
  if (!s) return "";
  const a = Math.abs(s);
  const size = a < 120 ? `${a.toFixed(1)}s` : a < 7200 ? `${(a / 60).toFixed(1)}m`
    : a < 172800 ? `${(a / 3600).toFixed(1)}h` : `${(a / 86400).toFixed(1)}d`;
  return `clock ${size} ${s > 0 ? "ahead" : "behind"}`;
}

function took(job) {
  // A pending job's record keeps a lost attempt's start: no runtime (as `swarm jobs`: format.started).
  if (!job.started_at || job.state === "pending") return "";
  const end = job.finished_at || Date.now() / 1000;
  return `${(end - job.started_at).toFixed(1)}s`;
}

function used(job) {
  // What the job's last attempt used (`swarm show`'s cpu used and memory), where measured.
  const parts = [];
  if (job.cpu_s != null) parts.push(`cpu ${job.cpu_s.toFixed(2)}s`);
  if (job.max_rss_bytes != null) parts.push(`peak memory ${job.max_rss_at_most ? "at most " : ""}${bytes(job.max_rss_bytes)}`);
  return parts.join(", ");
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { "Authorization": `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = res.headers.get("content-type", "").includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw Object.assign(new Error(data.detail || res.statusText), { status: res.status });
  return data;
}

// Server-Sent Events over fetch: calls onEvent(name, data) for each event until the stream ends.
async function sse(path, onEvent, signal) {
  const res = await fetch(path, { headers: { "Authorization": `Bearer ${token}`, "Accept": "text/event-stream" }, signal });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
    throw Object.assign(new Error(detail), { status: res.status });
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      onEvent(name, data ? JSON.parse(data) : null);
    }
  }
}

function showLogin(message) {
  $("login").hidden = false;
  $("main").hidden = true;
  $("login-error").textContent = message || "";
}

async function connect() {
  if (!token) { showLogin(""); return; }
  if (eventsAbort) eventsAbort.abort();
  const abort = eventsAbort = new AbortController();
  for (;;) {
    try {
      await sse(`/api/v1/events?jobs=${JOBS_SHOWN}`, (name, data) => { if (name === "status") render(data); }, abort.signal);
    } catch (err) {
      if (abort.signal.aborted) return;
      if (err.status === 401 || err.status === 403) { showLogin(err.message); return; }
      $("health").textContent = "disconnected";
      $("health").className = "badge bad";
    }
    if (abort.signal.aborted) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function render(status) {
  lastStatus = status;
  $("login").hidden = true;
  $("main").hidden = false;
  const q = status.quorum;
  $("health").textContent = q.healthy ? "healthy" : `quorum LOST: ${q.reason}`;
  $("health").className = "badge " + (q.healthy ? "ok" : "bad");
  const leader = status.nodes.find((n) => n.id === status.leader);
  $("leader").textContent = `leader ${leader ? leader.name : status.leader || "none"} · term ${status.term}`;
  const nodes = $("nodes").tBodies[0];
  nodes.replaceChildren(...status.nodes.map((n) => el("tr", { "data-node": n.id },
    el("td", {}, n.name || n.id), el("td", {}, n.role), el("td", {}, [n.state, n.drained && "drained", n.disk_full && "disk full", clockOff(n.clock_off_s)].filter(Boolean).join(", ")),
    el("td", {}, n.cpu_percent == null ? "" : `${n.cpu_percent.toFixed(0)}% of ${n.cpus}`),
    el("td", {}, n.load_1m == null ? "" : n.load_1m.toFixed(2)),
    el("td", {}, `${bytes(n.mem_available)} / ${bytes(n.mem_total)}`),
    el("td", {}, bytes(n.disk_free)),
    el("td", {}, (n.gpus || []).length),
    el("td", {}, n.running_jobs),
    el("td", { class: "wide" }, Object.entries(n.labels || {}).map(([k, v]) => `${k}=${v}`).join(" ")),
    el("td", { class: "wide" }, (n.images || []).slice(0, 3).join(", ")),
  )));
  fillNodeFilter(status.nodes);
  const counts = Object.entries(status.jobs).filter(([, c]) => c).map(([s, c]) => `${c} ${s}`).join(" · ");
  $("counts").textContent = counts ? `(${counts})` : "";
  renderJobs();
  if (filterKey()) refilter();  // the filter's list asked again: jobs changed
  renderChart(status.load_history || []);
}

// The node filter offers the nodes the cluster knows (a typed name asked the node for every
// prefix typed, each a 404, again on every update); the choice is kept while the list changes.
function fillNodeFilter(nodes) {
  const select = $("filter-node");
  const names = nodes.map((n) => n.name || n.id).sort();
  const shown = [...select.options].slice(1).map((o) => o.value);
  if (names.join("\n") === shown.join("\n")) return;
  const chosen = select.value;
  select.replaceChildren(select.options[0], ...names.map((name) => el("option", { value: name }, name)));
  if (chosen && !names.includes(chosen)) select.append(el("option", { value: chosen }, chosen));
  select.value = chosen;
}

// The filter as GET /api/v1/jobs's query ("" when none is set). The stream carries only some jobs
// (the open ones first, then the newest ended), so a filter asks the node for every job it
// matches, and again on each update. A name without * ? [ matches names that contain it.
function filterKey() {
  const state = $("filter-state").value, node = $("filter-node").value.trim(), name = $("filter-name").value.trim();
  if (!state && !node && !name) return "";
  const q = new URLSearchParams({ limit: String(JOBS_SHOWN) });
  if (state) q.set("state", state);
  if (node) q.set("node", node);
  if (name) q.set("name", /[*?[]/.test(name) ? name : `*${name}*`);
  return q.toString();
}

// Ask for the filter's jobs; asked while a request is out, it asks once more after it.
async function refilter() {
  if (filtering) { filterAgain = true; return; }
  filtering = true;
  try {
    do {
      filterAgain = false;
      const key = filterKey();
      if (!key) break;
      let got;
      try {
        const res = await api("GET", `/api/v1/jobs?${key}`);
        got = { key, jobs: res.jobs, total: res.total, error: "" };
      } catch (err) {
        if (err.status === 401 || err.status === 403) { showLogin(err.message); return; }
        got = { key, jobs: [], total: 0, error: err.message };
      }
      if (key === filterKey()) { filtered = got; renderJobs(); }
    } while (filterAgain);
  } finally { filtering = false; }
}

function filterChanged() {
  renderJobs();
  if (filterKey()) refilter();
}

function renderJobs() {
  if (!lastStatus) return;
  const names = Object.fromEntries(lastStatus.nodes.map((n) => [n.id, n.name || n.id]));
  const key = filterKey();
  let jobs, note = "", bad = false;
  if (!key) {
    jobs = lastStatus.recent_jobs;
    const total = lastStatus.recent_jobs_total;
    if (total > jobs.length) note = `${jobs.length} of ${total} jobs: the open ones, newest first, then the newest ended; filter to find others`;
  } else if (!filtered || filtered.key !== key) {
    jobs = [];
    note = "asking…";
  } else {
    jobs = filtered.jobs;
    if (filtered.error) { note = filtered.error; bad = true; }
    else if (filtered.total > jobs.length) note = `the ${jobs.length} newest of ${filtered.total} matching jobs`;
  }
  $("jobs-note").textContent = note;
  $("jobs-note").className = bad ? "error" : "hint";
  $("jobs").tBodies[0].replaceChildren(...jobs.map((j) => {
    const open = !["succeeded", "failed", "cancelled"].includes(j.state);
    const cancel = open ? el("button", { type: "button", class: "cancel", onclick: (e) => { e.stopPropagation(); cancelJob(j.id); } }, "cancel")
      : el("button", { type: "button", class: "rerun", title: "run it again as a new job (swarm rerun)", onclick: (e) => { e.stopPropagation(); rerunJob(j.id); } }, "rerun");
    // A pending job can be held (it waits until released: swarm hold / swarm release); a gang's
    // rank that exited 0 (rank_done) is pending too, but its gang runs: it is held with its gang.
    const verb = j.held ? "release" : "hold";
    const hold = j.state === "pending" && j.reason !== "rank_done" ? el("button", { type: "button", class: verb, title: `swarm ${verb}`, onclick: (e) => { e.stopPropagation(); jobAction(j.id, verb); } }, verb) : "";
    // A placed job can be sent back: its attempt stops, as lost, and it runs again (swarm requeue).
    const requeue = ["assigned", "running"].includes(j.state) ? el("button", { type: "button", class: "requeue", title: "stop it and run it again (swarm requeue)", onclick: (e) => { e.stopPropagation(); jobAction(j.id, "requeue"); } }, "requeue") : "";
    // A running job takes a signal (swarm signal), e.g. USR1 to make it checkpoint.
    const signal = j.state === "running" && j.reason !== "rank_done" ? el("button", { type: "button", class: "signal", title: "send it a signal (swarm signal)", onclick: (e) => { e.stopPropagation(); signalJob(j.id); } }, "signal") : "";
    // It may be stopped, and run again later, for a job of a higher priority (swarm run --preemptible).
    const preemptible = j.preemptible ? el("span", { class: "tag", title: "stopped for a job of a higher priority when room is short, and run again (--preemptible)" }, "preemptible") : "";
    const shown = j.held ? "held" : j.state;
    return el("tr", { class: "clickable", "data-job": j.id, "data-state": shown, onclick: () => openLog(j.id) },
      el("td", {}, j.id), el("td", {}, j.name || "", preemptible), el("td", { class: `state state-${shown}` }, shown),
      el("td", {}, names[j.node] || j.node || ""), el("td", {}, ago(j.submitted_at)), el("td", {}, took(j)),
      el("td", { class: "reason" }, j.message || j.reason), el("td", {}, hold, requeue, signal, cancel));
  }));
}

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

function renderChart(history) {
  const svg = $("chart");
  const ids = [...new Set(history.flatMap((p) => Object.keys(p.cpu)))];  // by node id: a restart keeps it
  const nodes = Object.fromEntries(((lastStatus && lastStatus.nodes) || []).map((n) => [n.id, n.name || n.id]));
  const label = (id) => {
    const name = nodes[id] || id;
    return ids.some((o) => o !== id && (nodes[o] || o) === name) ? `${name} (${id.slice(0, 6)})` : name;
  };
  const now = Date.now() / 1000;
  const x = (t) => 600 - (now - t) / 3600 * 600;
  const y = (v) => 118 - Math.min(100, v) * 1.16;
  svg.replaceChildren(...ids.map((id, i) => {
    const points = history.filter((p) => id in p.cpu).map((p) => `${x(p.t).toFixed(1)},${y(p.cpu[id]).toFixed(1)}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[i % COLORS.length]);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    return line;
  }));
  $("chart-legend").replaceChildren(...ids.map((id, i) => el("span", { style: `color:${COLORS[i % COLORS.length]}` }, `■ ${label(id)}`)));
}

async function cancelJob(id) {
  try { await api("DELETE", `/api/v1/jobs/${encodeURIComponent(id)}`); }
  catch (err) { alert(`cancel ${id}: ${err.message}`); }
}

async function jobAction(id, verb) {
  try { await api("POST", `/api/v1/jobs/${encodeURIComponent(id)}/${verb}`, {}); }
  catch (err) { alert(`${verb} ${id}: ${err.message}`); }
}

async function signalJob(id) {
  const name = prompt(`signal to send to ${id} (swarm signal -s): a name or a number`, "USR1");
  if (!name) return;
  try {
    const res = await api("POST", `/api/v1/jobs/${encodeURIComponent(id)}/signal`, { signal: name.trim() });
    const outcome = res.jobs.map((j) => j.outcome).join(", ");
    $("submit-result").textContent = outcome === "signalled" ? `sent SIG${name.trim().toUpperCase().replace(/^SIG/, "")} to ${id}` : `${id}: ${outcome}`;
  } catch (err) { alert(`signal ${id}: ${err.message}`); }
}

// Run an ended job again (swarm rerun) and open the new job's log.
async function rerunJob(id) {
  try {
    const res = await api("POST", `/api/v1/jobs/${encodeURIComponent(id)}/rerun`, {});
    $("submit-result").textContent = `rerun ${id} as ${res.id}`;
    openLog(res.id);
  } catch (err) { alert(`rerun ${id}: ${err.message}`); }
}

// A job's log, followed to its end. When its node goes away meanwhile (a restart, an upgrade),
// the log is asked again from the first attempt once the node is back, and what was shown is left
// out, as `swarm logs -f` does (api.replay): nothing twice, nothing missing.
async function openLog(id) {
  if (logAbort) logAbort.abort();
  const abort = logAbort = new AbortController();
  const pre = $("log");
  pre.replaceChildren();
  $("log-job").textContent = id;
  $("log-section").hidden = false;
  $("files").hidden = true;
  let atLineStart = true;  // the log shown so far ends with a newline (or is empty)
  const add = (cls, text) => { if (text) { pre.append(el("span", { class: cls }, text)); atLineStart = text.endsWith("\n"); } };
  // A line of the page's own (an attempt's start, a notice, the end) starts on a line of its own,
  // after output whose last line has no newline too.
  const line = (cls, text) => add(cls, (atLineStart ? "" : "\n") + text);
  const shown = new Map();  // "attempt/stream" -> characters shown; "attempt N", "notice T" -> times shown
  const again = new Map();  // what this stream has delivered so far, counted as `shown` is
  let lost = false, ended = false;
  const lose = () => {
    if (!lost) line("meta", `swarm: lost the node (restarting?): following job ${id} again once it is back\n`);
    lost = true;
  };
  while (!ended && !abort.signal.aborted) {
    again.clear();
    try {
      await sse(`/api/v1/jobs/${encodeURIComponent(id)}/logs?format=sse&follow=1&from=first`, (name, data) => {
        if (lost) { line("meta", `swarm: the node is back; following job ${id} again\n`); lost = false; }
        if (name === "output") {
          const key = `${data.attempt}/${data.stream}`;
          const had = again.get(key) || 0;
          again.set(key, had + data.text.length);
          const skip = Math.max(0, (shown.get(key) || 0) - had);
          if (skip < data.text.length) { add(data.stream, data.text.slice(skip)); shown.set(key, had + data.text.length); }
        } else if (name === "attempt" || name === "notice") {
          const key = name === "attempt" ? `attempt ${data.attempt}` : `notice ${data.text}`;
          const n = (again.get(key) || 0) + 1;
          again.set(key, n);
          if (n > (shown.get(key) || 0)) { shown.set(key, n); line("meta", name === "attempt" ? data.text + "\n" : `swarm: ${data.text}\n`); }
        } else if (name === "end") {
          ended = true;
          const how = [data.exit_code == null ? "" : `exit ${data.exit_code}`, used(data)].filter(Boolean).join("; ");
          line("meta", `--- ${data.state}${how ? ` (${how})` : ""} ---\n`);
          if (data.files) showFiles(id, abort.signal);
        } else if (name === "error") { ended = true; line("stderr", `swarm: ${data.detail}\n`); }
      }, abort.signal);
      if (!ended && !abort.signal.aborted) lose();  // it ended without the job's end: the node stopped
    } catch (err) {
      if (abort.signal.aborted) return;
      if (err.status && err.status < 500) { line("stderr", `swarm: ${err.message}\n`); return; }  // an answer: said, not asked again
      lose();
    }
    if (!ended && !abort.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
  }
}

// What a job that shipped files left in its directory (swarm cp JOB:), each to download: fetched
// with the token, as every API request is, and handed to the browser as a file.
async function showFiles(id, signal) {
  let listing;
  try { listing = await api("GET", `/api/v1/jobs/${encodeURIComponent(id)}/files`); }
  catch (err) { $("files-list").replaceChildren(el("li", { class: "error" }, err.message)); $("files").hidden = false; return; }
  if (signal.aborted) return;
  const items = listing.files.map((f) => el("li", { "data-path": f.path }, `${f.path} (${bytes(f.size)})`,
    el("button", { type: "button", class: "download", onclick: () => download(id, listing.attempt, f.path) }, "download")));
  for (const d of listing.dropped) items.push(el("li", { class: "hint" }, `${d.path}: not kept (${d.why})`));
  if (!items.length) items.push(el("li", { class: "hint" }, "nothing"));
  $("files-list").replaceChildren(...items);
  $("files").hidden = false;
}

async function download(id, attempt, path) {
  const url = `/api/v1/jobs/${encodeURIComponent(id)}/files/${path.split("/").map(encodeURIComponent).join("/")}?attempt=${attempt}`;
  const res = await fetch(url, { headers: { "Authorization": `Bearer ${token}` } });
  if (!res.ok) { alert(`download ${path}: ${(await res.json().catch(() => ({}))).detail || res.statusText}`); return; }
  const link = el("a", { href: URL.createObjectURL(await res.blob()), download: path.split("/").pop() });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem("swarmToken", token);
  connect();
});

$("submit-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { argv: $("submit-cmd").value };
  if ($("submit-name").value.trim()) body.name = $("submit-name").value.trim();
  try {
    const res = await api("POST", "/api/v1/jobs", body);
    $("submit-result").textContent = `submitted ${res.id}`;
    $("submit-cmd").value = "";
  } catch (err) {
    $("submit-result").textContent = err.message;
  }
});

$("log-close").addEventListener("click", () => { if (logAbort) logAbort.abort(); $("log-section").hidden = true; });
for (const id of ["filter-state", "filter-node", "filter-name"]) $(id).addEventListener("input", filterChanged);

connect();
