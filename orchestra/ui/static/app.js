/* orchestra's web UI and report: one page, routed by the URL's hash, drawing from /api/… or,
   in a report, from the data inlined in <script id="orchestra-report">. No network needed:
   dagre (layered graph layout) and uPlot (charts) are shipped with it. */
"use strict";

const REPORT = (() => {
  const el = document.getElementById("orchestra-report");
  return el ? JSON.parse(el.textContent) : null;
})();
const STATUS_COLORS = {
  FINISHED: "#2f9e44", LOADED: "#1c7ed6", FAILED: "#e03131", SKIPPED: "#adb5bd",
  RUNNING: "#f59f00", PENDING: "#e9ecef", KILLED: "#862e9c", NONE: "#f1f3f5",
};
const SERIES = ["#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#e03131", "#0c8599", "#f08c00", "#5f3dc4"];
const SVG = "http://www.w3.org/2000/svg";  // the SVG namespace name, not a download
let pollTimer = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
async function api(path) {
  const res = await fetch(path, {credentials: "same-origin"});
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}
function fmtTime(t) {
  if (!t) return "—";
  const d = new Date(t * 1000);
  return d.toLocaleString(undefined, {year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"});
}
function fmtDur(sec) {
  if (sec === null || sec === undefined) return "—";
  if (sec < 1) return `${Math.round(sec * 1000)} ms`;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  const m = Math.floor(sec / 60), r = Math.round(sec % 60);
  return m < 60 ? `${m}m ${r}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}
function fmtNum(v) {
  if (typeof v !== "number") return v === undefined || v === null ? "" : String(v);
  return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(+v.toPrecision(5));
}
function badge(status) {
  return h("span", {class: `badge st-${status}`, "data-status": status}, status.toLowerCase());
}
function runLink(id, label) {
  return REPORT ? h("span", {class: "mono"}, label || id.slice(0, 8)) : h("a", {href: `#/run/${id}`, class: "mono"}, label || id.slice(0, 8));
}
function section(title, ...body) {
  return h("section", {class: "card"}, h("h2", {}, title), ...body);
}
function errorBox(err) {
  return h("div", {class: "error"}, String(err.message || err));
}
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, q] = raw.split("?");
  return {parts: path.split("/").filter(Boolean), query: new URLSearchParams(q || "")};
}

/* ---------- runs ---------- */
async function runsPage(query) {
  const filter = query.get("filter") || "", sort = query.get("sort") || "start_time";
  const desc = query.get("desc") !== "0", offset = Math.max(0, parseInt(query.get("offset") || "0", 10) || 0);
  const PAGE = Math.min(5000, Math.max(1, parseInt(query.get("limit") || "200", 10) || 200));
  const main = document.getElementById("app");
  const params = new URLSearchParams({filter, sort, desc: desc ? "1" : "0", limit: String(PAGE), offset: String(offset)});
  let data;
  try { data = await api(`/api/runs?${params}`); } catch (e) {
    main.replaceChildren(runsToolbar(filter, null), errorBox(e)); return;
  }
  const selected = new Set();
  const compareBtn = h("button", {id: "compare", type: "button", disabled: true, onclick: () => {
    location.hash = `#/compare/${[...selected].join(",")}`;
  }}, "Compare selected");
  const go = (key) => {
    const nextDesc = key === sort ? !desc : true;
    location.hash = `#/runs?${new URLSearchParams({filter, sort: key, desc: nextDesc ? "1" : "0"})}`;
  };
  const th = (key, label, cls) => h("th", {"data-sort": key, class: `sortable ${cls || ""} ${key === sort ? (desc ? "desc" : "asc") : ""}`, onclick: () => go(key)}, label);
  const head = h("tr", {}, h("th", {}, ""), th("run_name", "Run"), th("status", "Status"), th("experiment", "Experiment"),
    th("start_time", "Started"), th("duration", "Duration"), h("th", {}, "Sweep"),
    data.param_keys.map((k) => th(`params.${k}`, k, "param")), data.metric_keys.map((k) => th(`metrics.${k}`, k, "metric")));
  const rows = data.rows.map((r) => h("tr", {"data-run-id": r.run_id},
    h("td", {}, h("input", {type: "checkbox", onchange: (ev) => {
      ev.target.checked ? selected.add(r.run_id) : selected.delete(r.run_id);
      compareBtn.disabled = selected.size < 2;
    }})),
    h("td", {}, h("a", {href: `#/run/${r.run_id}`}, r.run_name || r.run_id.slice(0, 8)),
      r.run_name ? h("span", {class: "muted mono small"}, " " + r.run_id.slice(0, 8)) : null),
    h("td", {}, badge(r.status)), h("td", {}, r.experiment), h("td", {class: "nowrap"}, fmtTime(r.start_time)),
    h("td", {class: "num"}, fmtDur(r.duration)),
    h("td", {}, r.sweep ? h("a", {href: `#/sweep/${r.sweep}`, class: "mono small sweep-link"}, r.sweep.slice(0, 8)) : ""),
    data.param_keys.map((k) => h("td", {class: "param"}, r.params[k] ?? "")),
    data.metric_keys.map((k) => h("td", {class: "num metric", "data-metric": k}, fmtNum(r.metrics[k])))));
  const page = (to) => { const q = new URLSearchParams({filter, sort, desc: desc ? "1" : "0", offset: String(to), limit: String(PAGE)}); location.hash = `#/runs?${q}`; };
  const info = h("p", {class: "muted pager"}, `${data.matched} of ${data.total} runs`,
    data.matched > data.rows.length ? [` · ${offset + 1}–${offset + data.rows.length} shown `,
      h("button", {type: "button", id: "prev-page", disabled: offset === 0, onclick: () => page(Math.max(0, offset - PAGE))}, "‹ previous"),
      h("button", {type: "button", id: "next-page", disabled: offset + data.rows.length >= data.matched, onclick: () => page(offset + PAGE)}, "next ›")] : null);
  main.replaceChildren(runsToolbar(filter, compareBtn), info,
    h("div", {class: "table-wrap"}, h("table", {class: "runs", id: "runs-table"}, h("thead", {}, head), h("tbody", {}, rows))));
}
function runsToolbar(filter, compareBtn) {
  const input = h("input", {id: "filter", type: "search", value: filter, size: 60,
    placeholder: "metrics.evaluate.rmse < 0.6 and params.alpha = '0.3' and status = 'FINISHED'"});
  const form = h("form", {class: "toolbar", onsubmit: (ev) => {
    ev.preventDefault();
    const q = parseHash().query; q.set("filter", input.value);
    location.hash = `#/runs?${q}`;
  }}, h("h1", {}, "Runs"), input, h("button", {type: "submit"}, "Filter"), compareBtn);
  return form;
}

/* ---------- run ---------- */
async function runPage(runId) {
  const main = document.getElementById("app");
  let run;
  try { run = REPORT ? REPORT.run : await api(`/api/runs/${runId}`); } catch (e) { main.replaceChildren(errorBox(e)); return; }
  const logBox = h("div", {id: "log-panel"});
  const live = {graph: h("div", {id: "dag"}), timeline: h("div", {id: "timeline"}), stages: h("div", {id: "stages"}),
    header: h("div", {id: "run-header"}), metrics: h("div", {id: "metrics"})};
  main.replaceChildren(live.header,
    section("Pipeline", live.graph, legend()), section("Timeline", live.timeline),
    section("Stages", live.stages, logBox), section("Metrics", live.metrics), section("Parameters", paramsTable(run.params)));
  const state = {openLog: null};
  const draw = (r) => {
    live.header.replaceChildren(runHeader(r));
    live.graph.replaceChildren(drawDag(r));
    live.timeline.replaceChildren(drawTimeline(r));
    live.stages.replaceChildren(stagesTable(r, (stage, stream) => showLog(r, stage, stream, logBox, state)));
    live.metrics.replaceChildren(metricsView(r));
  };
  draw(run);
  if (!REPORT && run.status === "RUNNING") {
    const tick = async () => {
      if (parseHash().parts[1] !== runId) return;
      try {
        const next = await api(`/api/runs/${runId}`);
        draw(next);
        if (state.openLog) showLog(next, state.openLog[0], state.openLog[1], logBox, state);
        if (next.status === "RUNNING") pollTimer = setTimeout(tick, 500);
      } catch (e) { pollTimer = setTimeout(tick, 1000); }
    };
    pollTimer = setTimeout(tick, 500);
  }
}
function runHeader(r) {
  const end = r.end_time || (r.status === "RUNNING" ? r.now : null);
  return h("div", {class: "run-head"},
    h("h1", {}, r.run_name || `Run ${r.run_id.slice(0, 8)}`, " ", h("span", {id: "run-status"}, badge(r.status))),
    h("dl", {class: "facts"},
      h("dt", {}, "Run id"), h("dd", {class: "mono"}, r.run_id),
      h("dt", {}, "Experiment"), h("dd", {}, r.experiment),
      h("dt", {}, "Project"), h("dd", {class: "mono"}, r.project_uri || ""),
      h("dt", {}, "Started"), h("dd", {}, fmtTime(r.start_time)),
      h("dt", {}, "Duration"), h("dd", {}, end ? fmtDur(end - r.start_time) : "—"),
      r.tags && r.tags["orchestra.sweep"] ? [h("dt", {}, "Sweep"), h("dd", {}, REPORT ? h("span", {class: "mono"}, r.tags["orchestra.sweep"])
        : h("a", {href: `#/sweep/${r.tags["orchestra.sweep"]}`, class: "mono", id: "run-sweep"}, r.tags["orchestra.sweep"]))] : null,
      r.message ? [h("dt", {}, "Message"), h("dd", {}, r.message)] : null));
}
function legend() {
  const items = [["FINISHED", "ran"], ["LOADED", "loaded"], ["RUNNING", "running"], ["FAILED", "failed"],
    ["SKIPPED", "skipped"], ["KILLED", "killed"], ["PENDING", "pending"]];
  return h("div", {class: "legend"}, items.map(([st, label]) => h("span", {}, h("i", {style: `background:${STATUS_COLORS[st]}`}), label)));
}
function stageSubtitle(st, now) {
  if (st.status === "LOADED" && st.loaded_from) return `loaded from ${st.loaded_from.run_id.slice(0, 8)}`;
  if (st.status === "RUNNING" && st.start_time) return `running ${fmtDur(now - st.start_time)}`;
  if (st.duration !== null && st.duration !== undefined && st.status !== "SKIPPED") return `${st.status.toLowerCase()} · ${fmtDur(st.duration)}`;
  return st.status.toLowerCase();
}
function drawDag(r) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({rankdir: "LR", nodesep: 24, ranksep: 56, marginx: 12, marginy: 12});
  g.setDefaultEdgeLabel(() => ({}));
  for (const st of r.stages) {
    const sub = st.sub !== undefined ? st.sub : stageSubtitle(st, r.now);
    g.setNode(st.name, {width: Math.max(120, 8 * Math.max(st.name.length, sub.length * 0.82) + 28), height: 52, st, sub});
  }
  for (const [a, b] of r.edges) g.setEdge(a, b);
  dagre.layout(g);
  const {width, height} = g.graph();
  const svg = s("svg", {class: "dag", width: width, height: height, viewBox: `0 0 ${width} ${height}`, "data-stages": r.stages.length});
  svg.append(s("defs", {}, s("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"},
    s("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#868e96"}))));
  for (const e of g.edges()) {
    const pts = g.edge(e).points;
    const d = pts.map((p, i) => `${i ? "L" : "M"} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" ");
    svg.append(s("path", {class: "edge", d, fill: "none", stroke: "#adb5bd", "stroke-width": 1.6, "marker-end": "url(#arrow)", "data-edge": `${e.v}->${e.w}`}));
  }
  for (const name of g.nodes()) {
    const n = g.node(name), st = n.st, status = st.status || "NONE";
    const fill = STATUS_COLORS[status] || "#ced4da";
    const dark = !["PENDING", "SKIPPED", "RUNNING", "NONE"].includes(status);
    const node = s("g", {class: `node st-${status}`, "data-stage": name, "data-status": status,
      transform: `translate(${(n.x - n.width / 2).toFixed(1)},${(n.y - n.height / 2).toFixed(1)})`},
      s("title", {}, `${name}${st.status ? ": " + st.status : ""}${st.message ? " — " + st.message : ""}`),
      s("rect", {width: n.width, height: n.height, rx: 8, ry: 8, fill, stroke: "rgba(0,0,0,.18)"}),
      s("text", {x: n.width / 2, y: n.sub ? 22 : 31, "text-anchor": "middle", class: "node-name", fill: dark ? "#fff" : "#212529"}, name),
      s("text", {x: n.width / 2, y: 39, "text-anchor": "middle", class: "node-sub", fill: dark ? "rgba(255,255,255,.9)" : "#495057"}, n.sub));
    svg.append(node);
  }
  return svg;
}
function drawTimeline(r) {
  const bars = [];
  for (const a of r.attempts || []) bars.push({stage: a.stage, start: a.start_time, end: a.end_time, status: "FAILED", label: `attempt ${a.attempt} ${a.status}`, retry: true});
  for (const st of r.stages) {
    if (!st.start_time) continue;
    const end = st.end_time || (st.status === "RUNNING" ? r.now : st.start_time);
    bars.push({stage: st.name, start: st.start_time, end, status: st.status,
      label: st.status === "LOADED" ? "loaded" : `${st.attempts > 1 ? "attempt " + st.attempts + " · " : ""}${fmtDur(end - st.start_time)}`});
  }
  if (!bars.length) return h("p", {class: "muted"}, "No stage has started yet.");
  const t0 = Math.min(r.start_time, ...bars.map((b) => b.start));
  const t1 = Math.max(r.end_time || r.now, ...bars.map((b) => b.end));
  const span = Math.max(t1 - t0, 0.001);
  const names = r.stages.map((st) => st.name), left = Math.min(220, 16 + 7.5 * Math.max(...names.map((n) => n.length))), W = 900, row = 28;
  const x = (t) => left + (W - left - 16) * (t - t0) / span;
  const H = names.length * row + 36;
  const svg = s("svg", {class: "timeline", width: W, height: H, viewBox: `0 0 ${W} ${H}`});
  for (let i = 0; i <= 5; i++) {
    const t = t0 + span * i / 5, xx = x(t);
    svg.append(s("line", {x1: xx, x2: xx, y1: 4, y2: H - 24, stroke: "#e9ecef"}),
      s("text", {x: xx, y: H - 8, "text-anchor": i === 5 ? "end" : i === 0 ? "start" : "middle", class: "axis"}, `+${fmtDur(t - t0)}`));
  }
  names.forEach((name, i) => svg.append(s("text", {x: left - 8, y: i * row + 22, "text-anchor": "end", class: "lane"}, name)));
  for (const b of bars) {
    const i = names.indexOf(b.stage);
    if (i < 0) continue;
    const bx = x(b.start), bw = Math.max(3, x(b.end) - bx);
    svg.append(s("rect", {class: `bar st-${b.status}${b.retry ? " retry" : ""}`, "data-stage": b.stage, "data-status": b.status,
      x: bx, y: i * row + 8, width: bw, height: row - 10, rx: 3, fill: STATUS_COLORS[b.status], opacity: b.retry ? 0.55 : 1},
      s("title", {}, `${b.stage}: ${b.label} (${fmtTime(b.start)})`)));
    if (bw > 60) svg.append(s("text", {x: bx + 6, y: i * row + 22, class: "bar-label", fill: ["PENDING", "SKIPPED", "RUNNING"].includes(b.status) ? "#212529" : "#fff"}, b.label));
  }
  return svg;
}
function stagesTable(r, openLog) {
  const head = h("tr", {}, ["Stage", "Status", "Duration", "Attempts", "Metrics", "Artifacts", "Logs"].map((t) => h("th", {}, t)));
  const rows = r.stages.map((st) => h("tr", {"data-stage": st.name},
    h("td", {class: "mono"}, st.name),
    h("td", {}, badge(st.status), st.loaded_from ? h("span", {class: "small muted"}, " from ", runLink(st.loaded_from.run_id)) : null),
    h("td", {class: "num"}, st.status === "RUNNING" && st.start_time ? fmtDur(r.now - st.start_time) : fmtDur(st.duration)),
    h("td", {class: "num"}, st.attempts || ""),
    h("td", {class: "small"}, Object.entries(st.metrics).map(([k, v]) => h("div", {}, `${k} = ${fmtNum(v)}`))),
    h("td", {class: "small"}, st.artifacts.map((a) => h("div", {}, REPORT ? h("span", {class: "mono"}, a.path)
      : h("a", {class: "mono", href: `/api/runs/${r.run_id}/stages/${encodeURIComponent(st.name)}/artifact?path=${encodeURIComponent(a.path)}`}, a.path),
      h("span", {class: "muted"}, ` ${a.size ?? ""} B`)))),
    h("td", {}, st.has_logs ? ["stdout", "stderr"].map((stream) => h("button", {class: "small log-btn", "data-log": `${st.name}:${stream}`,
      onclick: () => openLog(st.name, stream)}, stream)) : h("span", {class: "muted"}, "—"))));
  return h("table", {class: "stages"}, h("thead", {}, head), h("tbody", {}, rows));
}
async function showLog(r, stage, stream, box, state) {
  state.openLog = [stage, stream];
  let text;
  try {
    text = REPORT ? ((REPORT.logs[stage] || {})[stream] || "")
      : (await api(`/api/runs/${r.run_id}/stages/${encodeURIComponent(stage)}/log?stream=${stream}`)).text;
  } catch (e) { text = String(e.message || e); }
  const pre = h("pre", {class: "log", id: "log-text"}, text || "(empty)");
  box.replaceChildren(h("div", {class: "log-head"}, h("strong", {}, `${stage} · ${stream}`),
    h("button", {class: "small", onclick: () => { state.openLog = null; box.replaceChildren(); }}, "close")), pre);
  pre.scrollTop = pre.scrollHeight;
}
function paramsTable(params) {
  const keys = Object.keys(params || {}).sort();
  if (!keys.length) return h("p", {class: "muted"}, "No parameters.");
  return h("table", {class: "kv"}, h("tbody", {}, keys.map((k) => h("tr", {}, h("th", {}, k), h("td", {class: "mono"}, params[k])))));
}
function metricsView(r) {
  const latest = [];
  for (const st of r.stages) for (const [k, v] of Object.entries(st.metrics)) latest.push([`${st.name}.${k}`, v]);
  if (!latest.length) return h("p", {class: "muted"}, "No metrics logged.");
  const charts = h("div", {class: "charts"});
  const wrap = h("div", {}, h("table", {class: "kv"}, h("tbody", {}, latest.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {class: "num"}, fmtNum(v)))))), charts);
  requestAnimationFrame(() => {
    for (const [key, points] of Object.entries(r.metric_history || {})) {
      if (points.length < 2) continue;
      lineChart(charts, key, [points.map((p) => p[0])], [{label: key, values: points.map((p) => p[1])}]);
    }
  });
  return wrap;
}
function lineChart(parent, title, xsList, series) {
  const xs = [...new Set(xsList.flat())].sort((a, b) => a - b);
  const data = [xs];
  series.forEach((sr, i) => {
    const own = xsList[Math.min(i, xsList.length - 1)], map = new Map(own.map((x, j) => [x, sr.values[j]]));
    data.push(xs.map((x) => (map.has(x) ? map.get(x) : null)));
  });
  const box = h("div", {class: "chart", "data-metric": title});
  parent.append(box);
  new uPlot({title, width: 420, height: 220, scales: {x: {time: false}}, axes: [{label: "step"}, {}],
    series: [{label: "step"}, ...series.map((sr, i) => ({label: sr.label, stroke: SERIES[i % SERIES.length], width: 2, spanGaps: true, points: {size: 4}}))]},
  data, box);
}

/* ---------- compare ---------- */
async function comparePage(ids) {
  const main = document.getElementById("app");
  let d;
  try { d = await api(`/api/compare?ids=${encodeURIComponent(ids.join(","))}`); } catch (e) { main.replaceChildren(errorBox(e)); return; }
  const names = d.runs.map((r) => r.run_name || r.run_id.slice(0, 8));
  const head = h("tr", {}, h("th", {}, ""), d.runs.map((r, i) => h("th", {}, h("i", {class: "swatch", style: `background:${SERIES[i % SERIES.length]}`}), runLink(r.run_id, names[i]))));
  const diff = new Set(d.differing_params);
  const params = h("table", {class: "compare", id: "compare-params"}, h("thead", {}, head.cloneNode(true)), h("tbody", {},
    [...d.differing_params, ...d.param_keys.filter((k) => !diff.has(k))].map((k) => h("tr", {class: diff.has(k) ? "differs" : "same"},
      h("th", {}, k), d.runs.map((r) => h("td", {class: "mono"}, r.params[k] ?? "—"))))));
  const metrics = h("table", {class: "compare"}, h("thead", {}, head), h("tbody", {}, d.metric_keys.map((k) => h("tr", {},
    h("th", {}, k), d.runs.map((r) => h("td", {class: "num"}, fmtNum(r.metrics[k])))))));
  const charts = h("div", {class: "charts", id: "compare-charts"});
  main.replaceChildren(h("h1", {}, `Compare ${d.runs.length} runs`),
    section("Parameters (differing first)", params), section("Metrics", metrics), section("Metric charts", charts));
  requestAnimationFrame(() => {
    for (const key of d.metric_keys) {
      const hist = d.runs.map((r) => r.metric_history[key] || []);
      if (hist.some((p) => p.length > 1)) {
        lineChart(charts, key, hist.map((p) => p.map((x) => x[0])), d.runs.map((r, i) => ({label: names[i], values: hist[i].map((x) => x[1])})));
      } else {
        charts.append(barChart(key, d.runs.map((r, i) => [names[i], r.metrics[key], SERIES[i % SERIES.length]])));
      }
    }
  });
}
function barChart(title, items) {
  const values = items.map((it) => it[1]).filter((v) => typeof v === "number");
  const max = Math.max(...values.map(Math.abs), 1e-12);
  return h("div", {class: "chart bars", "data-metric": title}, h("div", {class: "chart-title"}, title),
    items.map(([label, v, color]) => h("div", {class: "bar-row"}, h("span", {class: "bar-label"}, label),
      h("span", {class: "bar-track"}, h("span", {class: "bar-fill", style: `width:${typeof v === "number" ? (100 * Math.abs(v) / max).toFixed(1) : 0}%;background:${color}`})),
      h("span", {class: "num"}, fmtNum(v)))));
}

/* ---------- sweep ---------- */
async function sweepPage(sweepId, query) {
  const main = document.getElementById("app");
  let d;
  try { d = await api(`/api/sweeps/${encodeURIComponent(sweepId)}`); } catch (e) { main.replaceChildren(errorBox(e)); return; }
  const logged = [...new Set(d.members.flatMap((m) => Object.keys(m.metrics)))];  // in stage order
  const lastStage = logged.length ? logged[logged.length - 1].split(".")[0] : "";
  const metricKeys = [...logged].sort();
  const metric = metricKeys.includes(query.get("metric")) ? query.get("metric") : logged.find((k) => k.startsWith(`${lastStage}.`));
  const xKey = d.swept.includes(query.get("x")) ? query.get("x") : d.swept[0];
  const pick = (id, label, options, value, key) => h("label", {}, `${label} `, h("select", {id, onchange: (ev) => {
    const q = new URLSearchParams({metric: metric || "", x: xKey || ""}); q.set(key, ev.target.value);
    location.hash = `#/sweep/${sweepId}?${q}`;
  }}, options.map((o) => h("option", {value: o, selected: o === value}, o))));
  const counts = Object.entries(d.counts).map(([k, v]) => `${v} ${k.toLowerCase()}`).join(" · ");
  const rows = d.members.map((m) => h("tr", {"data-run-id": m.run_id},
    h("td", {}, runLink(m.run_id, m.run_name || m.run_id.slice(0, 8))),
    d.swept.map((k) => h("td", {class: "mono param"}, String(m.values[k] ?? "—"))),
    h("td", {}, badge(m.status)), h("td", {class: "num metric"}, metric ? fmtNum(m.metrics[metric]) : "")));
  const table = h("table", {class: "stages", id: "sweep-members"}, h("thead", {}, h("tr", {}, h("th", {}, "Member"),
    d.swept.map((k) => h("th", {}, k)), h("th", {}, "Status"), h("th", {}, metric || "metric"))), h("tbody", {}, rows));
  const chart = h("div", {class: "charts", id: "sweep-chart"});
  main.replaceChildren(h("h1", {}, `Sweep ${sweepId}`), h("p", {class: "muted"}, `${d.members.length} of ${d.size} members · ${counts}`),
    h("div", {class: "toolbar"}, metricKeys.length ? pick("sweep-metric", "Metric", metricKeys, metric, "metric") : "",
      d.swept.length > 1 ? pick("sweep-x", "Against", d.swept, xKey, "x") : ""),
    section("Members", table), section(metric && xKey ? `${metric} against ${xKey}` : "Chart", chart));
  if (metric && xKey) requestAnimationFrame(() => sweepChart(chart, d.members, xKey, metric));
}
function sweepChart(parent, members, xKey, metric) {
  // Numeric swept values on a numeric axis; anything else by its position among the values.
  const raw = members.map((m) => m.values[xKey]);
  const numeric = raw.every((v) => v !== undefined && v !== "" && !isNaN(Number(v)));
  const labels = numeric ? [] : [...new Set(raw.map(String))];
  const points = members.map((m, i) => [numeric ? Number(raw[i]) : labels.indexOf(String(raw[i])), m.metrics[metric]])
    .filter((p) => typeof p[1] === "number").sort((a, b) => a[0] - b[0]);
  if (!points.length) { parent.append(h("p", {class: "muted"}, `No member logged ${metric}.`)); return; }
  const box = h("div", {class: "chart", "data-metric": metric});
  parent.append(box);
  new uPlot({title: `${metric} against ${xKey}`, width: 520, height: 260, scales: {x: {time: false}},
    axes: [{label: xKey, values: numeric ? undefined : (u, ticks) => ticks.map((t) => labels[t] ?? "")}, {label: metric}],
    series: [{label: xKey}, {label: metric, stroke: SERIES[0], width: 1, points: {show: true, size: 8, fill: SERIES[0]}}]},
  [points.map((p) => p[0]), points.map((p) => p[1])], box);
}

/* ---------- schedules and webhooks ---------- */
async function schedulesPage() {
  const main = document.getElementById("app");
  let list;
  try { list = await api("/api/schedules"); } catch (e) { main.replaceChildren(errorBox(e)); return; }
  if (!list.length) { main.replaceChildren(h("h1", {}, "Schedules"), h("p", {class: "muted"}, "No schedules (see 'orchestra schedule add').")); return; }
  main.replaceChildren(h("h1", {}, "Schedules"), ...list.map((sc) => section(sc.name,
    h("dl", {class: "facts"}, h("dt", {}, "Cron"), h("dd", {class: "mono"}, `${sc.cron} (${sc.timezone})`),
      h("dt", {}, "Project"), h("dd", {class: "mono"}, sc.uri), h("dt", {}, "State"), h("dd", {}, sc.paused ? "paused" : "active"),
      h("dt", {}, "Next"), h("dd", {}, sc.next.length ? sc.next.join(" · ") : "—")),
    sc.history.length ? h("table", {class: "stages"}, h("thead", {}, h("tr", {}, ["Slot", "State", "Reason", "Run", "Run status"].map((t) => h("th", {}, t)))),
      h("tbody", {}, sc.history.map((f) => h("tr", {}, h("td", {}, f.scheduled_local), h("td", {}, f.state), h("td", {}, f.reason || ""),
        h("td", {}, f.run_id ? runLink(f.run_id) : ""), h("td", {}, f.run_status ? badge(f.run_status) : ""))))) : h("p", {class: "muted"}, "Never fired."))));
}
async function webhooksPage() {
  const main = document.getElementById("app");
  let d;
  try { d = await api("/api/webhooks"); } catch (e) { main.replaceChildren(errorBox(e)); return; }
  const rows = d.deliveries.map((x) => h("tr", {},
    h("td", {class: "nowrap"}, fmtTime(x.created_at)), h("td", {}, x.subject), h("td", {class: "mono small"}, x.destination),
    h("td", {}, x.kind), h("td", {}, x.event && x.event.run_id ? runLink(x.event.run_id) : ""),
    h("td", {}, h("span", {class: `badge dl-${x.state}`}, x.state)), h("td", {class: "num"}, x.attempts),
    h("td", {class: "small"}, x.attempt_log.map((a) => h("div", {}, `#${a.attempt} ${a.status_code ?? ""} ${a.error || ""} ${a.latency_ms ?? ""} ms`)))));
  main.replaceChildren(h("h1", {}, "Webhooks"),
    d.disabled.length ? section("Disabled receivers (answered 410)", h("ul", {}, d.disabled.map((x) => h("li", {}, `${x.name}: ${x.url} — ${x.reason}`)))) : "",
    section("Deliveries", rows.length ? h("table", {class: "stages"}, h("thead", {}, h("tr", {}, ["Created", "Hook", "URL", "Event", "Run", "State", "Attempts", "Attempt log"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)) : h("p", {class: "muted"}, "No deliveries.")));
}

/* ---------- router ---------- */
function route() {
  clearTimeout(pollTimer);
  if (REPORT && REPORT.dag_only) {
    document.getElementById("app").replaceChildren(h("h1", {}, REPORT.run.title),
      section("Pipeline", drawDag(REPORT.run), REPORT.run.run_id ? legend() : ""));
    return;
  }
  if (REPORT) { runPage(REPORT.run.run_id); return; }
  const {parts, query} = parseHash();
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0] || "runs"}`));
  if (parts[0] === "run" && parts[1]) runPage(parts[1]);
  else if (parts[0] === "compare" && parts[1]) comparePage(parts[1].split(","));
  else if (parts[0] === "sweep" && parts[1]) sweepPage(parts[1], query);
  else if (parts[0] === "schedules") schedulesPage();
  else if (parts[0] === "webhooks") webhooksPage();
  else runsPage(query);
}
window.addEventListener("hashchange", route);
route();
