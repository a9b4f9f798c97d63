// rayc dashboard: polls the state API and the job API every 2 s and fills
// the tables. Values go in with textContent only, never as HTML.
"use strict";

const REFRESH_MS = 2000;
let logJob = null;
let logOffset = 0;

function fmtBytes(n) {
  n = Number(n) || 0;
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + u[i];
}

function fmtTime(ms) {
  return ms ? new Date(Number(ms)).toLocaleString() : "-";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null || text === "" ? "-" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fill(id, rows, build) {
  const body = document.querySelector("#" + id + " tbody");
  const fresh = document.createElement("tbody");
  for (const r of rows) {
    const tr = document.createElement("tr");
    build(tr, r);
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}

async function get(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function used(total, avail) {
  return (Number(total) - Number(avail)) + "/" + Number(total);
}

async function refreshNodes() {
  const d = await get("/api/v0/nodes?limit=1000");
  fill("nodes", d.result, (tr, n) => {
    const id = cell(tr, n.node_id.slice(0, 12), "mono node-id");
    id.title = n.node_id;
    cell(tr, n.state, n.state);
    cell(tr, n.address, "mono");
    cell(tr, n.is_head ? "yes" : "");
    cell(tr, used(n.cpu_total, n.cpu_available), "num");
    cell(tr, used(n.gpu_total, n.gpu_available), "num");
    cell(tr, fmtBytes(n.memory_total), "num");
    cell(tr, fmtBytes(n.store_used) + " / " + fmtBytes(n.store_capacity), "num");
    cell(tr, n.store_objects, "num");
    cell(tr, n.pending_tasks, "num");
  });
  const alive = d.result.filter((n) => n.state === "ALIVE").length;
  return alive + " alive node" + (alive === 1 ? "" : "s") + ", " +
         (d.result.length - alive) + " dead";
}

async function refreshJobs() {
  const d = await get("/api/v0/jobs?limit=1000");
  fill("jobs", d.result, (tr, j) => {
    cell(tr, j.job_id, "mono");
    cell(tr, j.type);
    cell(tr, j.status, j.status);
    cell(tr, j.entrypoint, "mono");
    cell(tr, fmtTime(j.start_time_ms));
    cell(tr, j.message);
    const td = cell(tr, "");
    if (j.type === "SUBMISSION") {
      td.textContent = "";
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "logs";
      b.addEventListener("click", () => showLogs(j.job_id));
      td.appendChild(b);
    }
  });
  return d.result.length + " job" + (d.result.length === 1 ? "" : "s");
}

async function refreshObjects() {
  const s = await get("/api/v0/summary/objects?limit=1000");
  fill("memory", s.result, (tr, r) => {
    cell(tr, r.node_id === "TOTAL" ? "TOTAL" : r.node_id.slice(0, 12), "mono");
    cell(tr, r.objects, "num");
    cell(tr, fmtBytes(r.bytes), "num");
  });
  const o = await get("/api/v0/objects?limit=200");
  fill("objects", o.result, (tr, r) => {
    cell(tr, r.object_id, "mono");
    cell(tr, fmtBytes(r.size), "num");
    cell(tr, r.node_id.slice(0, 12), "mono");
    cell(tr, r.owner_id ? r.owner_id.slice(0, 12) : "", "mono");
    cell(tr, r.copies, "num");
  });
}

function errorText(t) {
  if (!t.error_type) return "";
  return t.error_type + (t.error_message ? ": " + t.error_message : "");
}

async function refreshTasks() {
  const s = await get("/api/v0/summary/tasks?limit=1000");
  fill("tasksummary", s.result, (tr, r) => {
    cell(tr, r.job_id, "num");
    cell(tr, r.func_or_class_name, "mono");
    for (const k of ["total", "pending_args", "submitted", "scheduled", "running", "finished",
                     "failed", "cancelled"]) {
      cell(tr, r[k], "num" + (k === "failed" && r[k] > 0 ? " FAILED" : ""));
    }
  });
  const d = s.dropped || { evicted: 0, lost: 0 };
  document.getElementById("taskdrops").textContent =
    d.evicted || d.lost ? d.evicted + " task records evicted from the GCS table, " + d.lost +
                          " task events lost in full process buffers" : "";
  const t = await get("/api/v0/tasks?limit=100");
  const rows = t.result.slice().reverse(); /* newest first */
  fill("tasks", rows, (tr, r) => {
    const id = cell(tr, r.task_id.slice(0, 12), "mono");
    id.title = r.task_id;
    cell(tr, r.attempt_number, "num");
    cell(tr, r.name || r.func_or_class_name, "mono");
    cell(tr, r.job_id, "num");
    cell(tr, r.state, r.state);
    cell(tr, r.node_id ? r.node_id.slice(0, 12) : "", "mono");
    cell(tr, r.worker_pid || "", "num");
    cell(tr, r.duration_ms === null ? "" : r.duration_ms, "num");
    cell(tr, errorText(r));
  });
  drawTimeline(t.result);
  return t.total + " task attempt" + (t.total === 1 ? "" : "s");
}

/* Lanes per (node, worker), a bar per run of the latest tasks. */
function drawTimeline(tasks) {
  const box = document.getElementById("timeline");
  const runs = tasks.filter((r) => r.start_time_ms);
  const fresh = document.createElement("div");
  fresh.id = "timeline";
  if (runs.length === 0) {
    fresh.textContent = "no task runs yet";
    box.replaceWith(fresh);
    return;
  }
  const now = Date.now();
  let t0 = Infinity, t1 = 0;
  for (const r of runs) {
    t0 = Math.min(t0, r.start_time_ms);
    t1 = Math.max(t1, r.end_time_ms || now);
  }
  const span = Math.max(t1 - t0, 1);
  const lanes = new Map();
  for (const r of runs) {
    const key = (r.node_id || "?").slice(0, 12) + " worker " + (r.worker_pid || "?");
    if (!lanes.has(key)) lanes.set(key, []);
    lanes.get(key).push(r);
  }
  for (const [key, rs] of [...lanes.entries()].sort()) {
    const lane = document.createElement("div");
    lane.className = "lane";
    const name = document.createElement("span");
    name.className = "lanename mono";
    name.textContent = key;
    const bars = document.createElement("div");
    bars.className = "lanebars";
    for (const r of rs) {
      const b = document.createElement("div");
      b.className = "bar " + r.state;
      const end = r.end_time_ms || now;
      b.style.left = ((r.start_time_ms - t0) * 100 / span) + "%";
      b.style.width = ((end - r.start_time_ms) * 100 / span) + "%";
      b.title = (r.name || r.func_or_class_name) + " " + r.state + " " + (end - r.start_time_ms) +
                " ms";
      bars.appendChild(b);
    }
    lane.appendChild(name);
    lane.appendChild(bars);
    fresh.appendChild(lane);
  }
  box.replaceWith(fresh);
}

async function refreshActors() {
  const d = await get("/api/v0/actors?limit=1000");
  fill("actors", d.result, (tr, a) => {
    const id = cell(tr, a.actor_id.slice(0, 12), "mono");
    id.title = a.actor_id;
    cell(tr, a.class_name, "mono");
    cell(tr, a.state, a.state);
    cell(tr, a.name);
    cell(tr, a.job_id, "num");
    cell(tr, a.pid || "", "num");
    cell(tr, a.num_restarts, "num");
    cell(tr, a.death_cause);
  });
}

async function showLogs(id) {
  logJob = id;
  logOffset = 0;
  document.getElementById("logs").textContent = "";
  document.getElementById("logjob").textContent = id;
  document.getElementById("logbox").hidden = false;
  await refreshLogs();
}

async function refreshLogs() {
  if (!logJob) return;
  for (;;) {
    const d = await get("/api/jobs/" + encodeURIComponent(logJob) + "/logs?offset=" + logOffset);
    document.getElementById("logs").textContent += d.logs;
    logOffset = d.offset;
    if (!d.more) break;
  }
}

async function refresh() {
  try {
    const parts = [await refreshNodes(), await refreshJobs(), await refreshTasks()];
    await refreshActors();
    await refreshObjects();
    await refreshLogs();
    document.getElementById("summary").textContent = parts.join("; ");
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("updated").textContent = "refresh failed: " + e.message;
  }
}

document.getElementById("logclose").addEventListener("click", () => {
  logJob = null;
  document.getElementById("logbox").hidden = true;
});
refresh();
setInterval(refresh, REFRESH_MS);
