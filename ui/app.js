// The skiplock dashboard: a client of the public REST API (nothing here reads the database
// another way). Preact + htm as ES modules, no build step; uPlot for charts; cronstrue for
// "schedule in words". Every page's state is in its URL, so any view can be shared.
import { h, render } from "preact";
import { useState, useEffect, useRef, useCallback } from "preact/hooks";
import htm from "htm";
import uPlot from "uplot";

const html = htm.bind(h);
const TOKEN_KEY = "skiplock.token";
const POLL_MS = 3000;

// ---- API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.errors = (problem && problem.errors) || [];
  }
}

const auth = { needed: false, listeners: new Set() };
function onAuthNeeded(fn) { auth.listeners.add(fn); return () => auth.listeners.delete(fn); }

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) {
    auth.needed = true;
    auth.listeners.forEach((fn) => fn());
  }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

// ---- routing: /ui/<page>[/<id>]?<filters> ------------------------------------------------

function currentRoute() {
  const path = location.pathname.replace(/^\/ui\/?/, "");
  const [page, id] = path.split("/");
  return { page: page || "overview", id, query: Object.fromEntries(new URLSearchParams(location.search)) };
}

function navigate(url, replace = false) {
  history[replace ? "replaceState" : "pushState"](null, "", url);
  dispatchEvent(new PopStateEvent("popstate"));
}

function link(e) {
  const a = e.target.closest("a");
  if (!a || a.target || e.metaKey || e.ctrlKey || e.shiftKey || !a.getAttribute("href").startsWith("/ui")) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
}

function setQuery(changes) {
  const q = { ...currentRoute().query, ...changes };
  navigate(location.pathname + qs(q), true);
}

// ---- live data ------------------------------------------------------------------------------

const live = { on: true, listeners: new Set() };

function useLive() {
  const [on, setOn] = useState(live.on);
  useEffect(() => { const f = () => setOn(live.on); live.listeners.add(f); return () => live.listeners.delete(f); }, []);
  return [on, () => { live.on = !live.on; live.listeners.forEach((f) => f()); }];
}

// Fetch `load()` now, again whenever `deps` change, and every POLL_MS while live.
function usePoll(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [on] = useLive();
  const [tick, setTick] = useState(0);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    let stop = false;
    load().then((data) => !stop && setState({ data, error: null, loading: false }),
      (error) => !stop && setState((s) => ({ data: s.data, error, loading: false })));
    return () => { stop = true; };
  }, [...deps, tick]);
  useEffect(() => {
    if (!on) return undefined;
    const t = setInterval(refresh, POLL_MS);
    return () => clearInterval(t);
  }, [on, refresh]);
  return { ...state, refresh };
}

// ---- formatting -----------------------------------------------------------------------------

function Time({ at, zone }) {
  if (!at) return html`<span class="muted">—</span>`;
  const d = new Date(at);
  const opts = { dateStyle: "medium", timeStyle: "medium", ...(zone ? { timeZone: zone } : {}) };
  return html`<time datetime=${at} title=${`${d.toISOString().replace(".000", "")} (UTC)`}>${d.toLocaleString(undefined, opts)}</time>`;
}

function ago(at) {
  if (!at) return "—";
  const s = Math.max(0, (Date.now() - new Date(at).getTime()) / 1000);
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function ms(v) {
  if (v === null || v === undefined) return "—";
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(1)} s`;
  return `${(v / 60000).toFixed(1)} min`;
}

function lateness(run) {
  if (!run.started_at || !run.due_at) return null;
  return Math.max(0, new Date(run.started_at) - new Date(run.due_at));
}

const n = (v) => (v ?? 0).toLocaleString();
const Badge = ({ state }) => html`<span class=${`badge ${state}`}>${state}</span>`;

function describeCron(expr) {
  try { return window.cronstrue.toString(expr, { use24HourTimeFormat: true, verbose: false }); } catch { return expr; }
}

function schedule(t) {
  if (t.cron) return html`${describeCron(t.cron)} <span class="muted">(<code>${t.cron}</code>, ${t.timezone})</span>`;
  if (t.run_at) return html`once, at <${Time} at=${t.run_at} />`;
  return "once, as soon as possible";
}

// ---- shared pieces ------------------------------------------------------------------------

function Empty({ title, children }) {
  return html`<div class="empty"><strong>${title}</strong>${children}</div>`;
}

function ErrorBanner({ error }) {
  if (!error) return null;
  const fields = error.errors && error.errors.length
    ? html`<ul>${error.errors.map((e) => html`<li><code>${e.field}</code>: ${e.message}</li>`)}</ul>` : null;
  return html`<div class="banner error" role="alert">${error.message}${fields}</div>`;
}

function Json({ value, error }) {
  return html`<pre class=${`json${error ? " err" : ""}`}>${typeof value === "string" ? value : JSON.stringify(value, null, 2)}</pre>`;
}

function Dialog({ title, children, onClose }) {
  useEffect(() => {
    const f = (e) => e.key === "Escape" && onClose();
    addEventListener("keydown", f);
    return () => removeEventListener("keydown", f);
  }, []);
  return html`<div class="backdrop" onClick=${(e) => e.target === e.currentTarget && onClose()}>
    <div class="dialog" role="dialog" aria-label=${title}><h2>${title}</h2>${children}</div></div>`;
}

function Confirm({ title, text, verb, danger, onYes, onClose }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const go = async () => {
    setBusy(true);
    try { await onYes(); onClose(); } catch (e) { setError(e); setBusy(false); }
  };
  return html`<${Dialog} title=${title} onClose=${onClose}>
    <p>${text}</p><${ErrorBanner} error=${error} />
    <div class="actions"><button onClick=${onClose}>Keep as is</button>
      <button class=${danger ? "danger" : "primary"} disabled=${busy} onClick=${go} data-confirm>${verb}</button></div>
  <//>`;
}

function Field({ label, name, errors, hint, children }) {
  const mine = (errors || []).filter((e) => e.field === name || e.field.startsWith(`${name}.`) || e.field.startsWith(`${name}[`));
  return html`<div class=${`field${mine.length ? " bad" : ""}`} data-field=${name}>
    <label>${label}</label>${children}
    ${hint && !mine.length ? html`<span class="hint">${hint}</span>` : null}
    ${mine.map((e) => html`<span class="error" role="alert">${e.field === name ? "" : `${e.field}: `}${e.message}</span>`)}
  </div>`;
}

// ---- overview ---------------------------------------------------------------------------

function Chart({ title, series, rows, unit }) {
  const el = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    if (!el.current || !rows) return;
    const xs = rows.map((r) => new Date(r.at).getTime() / 1000);
    const data = [xs, ...series.map((s) => rows.map((r) => r[s.key] ?? null))];
    const width = el.current.clientWidth || 400;
    if (!plot.current) {
      plot.current = new uPlot({
        width, height: 200,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: true,
          points: { show: true, size: 4 } }))],
        axes: [{}, { values: (u, vals) => vals.map((v) => (unit === "ms" ? ms(v) : n(v))), size: 60 }],
        scales: { x: { time: true } },
        legend: { show: true },
      }, data, el.current);
    } else {
      plot.current.setData(data);
    }
  }, [rows]);
  useEffect(() => {
    const f = () => plot.current && el.current && plot.current.setSize({ width: el.current.clientWidth, height: 200 });
    addEventListener("resize", f);
    return () => { removeEventListener("resize", f); plot.current && plot.current.destroy(); plot.current = null; };
  }, []);
  return html`<div class="panel"><h2>${title}</h2><div class="chart" ref=${el}></div></div>`;
}

function Overview() {
  const stats = usePoll(() => Promise.all([api("GET", "/api/stats"), api("GET", "/api/workers"),
    api("GET", "/api/queues"), api("GET", "/api/stats/minutes?minutes=60")]), []);
  if (!stats.data) return html`<${ErrorBanner} error=${stats.error} />`;
  const [s, { workers }, { queues }, minutes] = stats.data;
  const free = workers.reduce((a, w) => a + (w.draining ? 0 : Math.max(0, w.slots - w.running)), 0);
  return html`
    <div class="topbar"><h1>Overview</h1></div>
    <${ErrorBanner} error=${stats.error} />
    <div class="cards">
      <div class="card"><div class="label">Running</div><div class="value" data-count="running">${n(s.runs.running)}</div>
        <div class="sub">runs on workers now</div></div>
      <div class="card"><div class="label">Due backlog</div><div class="value" data-count="due_backlog">${n(s.due_backlog)}</div>
        <div class="sub">${n(s.runs.pending)} pending in all</div></div>
      <div class="card"><div class="label">Succeeded</div><div class="value">${n(s.runs.succeeded)}</div><div class="sub">within retention</div></div>
      <div class="card"><div class="label">Failed</div><div class="value">${n(s.runs.failed)}</div><div class="sub">within retention</div></div>
      <div class="card"><div class="label">Workers</div><div class="value" data-count="workers">${n(s.workers)}</div>
        <div class="sub">${n(free)} free slots</div></div>
    </div>
    <div class="grid2">
      <${Chart} title="Runs finished per minute" rows=${minutes.minutes}
        series=${[{ key: "succeeded", label: "succeeded", color: "#1f8a4c" }, { key: "failed", label: "failed", color: "#c62f3b" }]} />
      <${Chart} title="Start lateness" unit="ms" rows=${minutes.minutes}
        series=${[{ key: "lateness_p50_ms", label: "p50", color: "#2457d6" }, { key: "lateness_p99_ms", label: "p99", color: "#b76e00" }]} />
    </div>
    <div class="grid2">
      <div class="panel"><h2>Runs by state</h2><div class="filters">
        ${Object.entries(s.runs).map(([k, v]) => html`<a class="button chip" href=${`/ui/runs${qs({ state: k })}`}><${Badge} state=${k} /> <span class="n">${n(v)}</span></a>`)}
      </div></div>
      <div class="panel"><h2>Tasks by state</h2><div class="filters">
        ${Object.entries(s.tasks).map(([k, v]) => html`<a class="button chip" href=${`/ui/tasks${qs({ state: k })}`}><${Badge} state=${k} /> <span class="n">${n(v)}</span></a>`)}
      </div></div>
    </div>
    <div class="panel"><h2>Queues</h2>${queues.length ? html`<${QueueTable} queues=${queues} />`
      : html`<${Empty} title="No queues yet">A queue appears when a task uses it (every task is on <code>default</code> unless it says otherwise).<//>`}</div>`;
}

// ---- tasks ----------------------------------------------------------------------------------

const TASK_STATES = ["scheduled", "running", "paused", "succeeded", "failed", "cancelled"];
const TASK_FILTERS = ["state", "type", "queue", "name"];

function TextFilter({ name, placeholder }) {
  const q = currentRoute().query;
  const [v, setV] = useState(q[name] || "");
  useEffect(() => setV(q[name] || ""), [q[name]]);
  const apply = () => setQuery({ [name]: v.trim(), cursor: "" });
  return html`<input name=${name} placeholder=${placeholder} value=${v} onInput=${(e) => setV(e.target.value)}
    onKeyDown=${(e) => e.key === "Enter" && apply()} onBlur=${apply} />`;
}

const ACTIONS = {
  cancel: { verb: "Cancel", danger: true, what: "cancel" },
  pause: { verb: "Pause", what: "pause" },
  resume: { verb: "Resume", what: "resume" },
  trigger: { verb: "Trigger", what: "run once now" },
};

function Tasks({ canWrite }) {
  const { query } = currentRoute();
  const filter = Object.fromEntries(TASK_FILTERS.map((k) => [k, query[k]]).filter(([, v]) => v));
  const key = JSON.stringify([filter, query.cursor]);
  const page = usePoll(() => Promise.all([api("GET", `/api/tasks${qs({ ...filter, cursor: query.cursor, limit: 50 })}`),
    api("GET", "/api/stats")]), [key]);
  const [selected, setSelected] = useState(new Set());
  const [allMatching, setAllMatching] = useState(false);
  const [confirm, setConfirm] = useState(null);
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState(null);
  useEffect(() => { setSelected(new Set()); setAllMatching(false); }, [key]);
  const tasks = page.data ? page.data[0].tasks : [];
  const counts = page.data ? page.data[1].tasks : {};
  const toggle = (id) => { const s = new Set(selected); s.has(id) ? s.delete(id) : s.add(id); setSelected(s); setAllMatching(false); };
  const allOnPage = tasks.length > 0 && tasks.every((t) => selected.has(t.id));

  const ask = async (action) => {
    const a = ACTIONS[action];
    if (allMatching) {
      const dry = await api("POST", "/api/tasks/bulk", { action, filter, dry_run: true, limit: 1000 });
      const count = `${n(dry.matched)}${dry.more ? "+" : ""}`;
      setConfirm({ action, title: `${a.verb} ${count} tasks?`,
        text: `This will ${a.what} every task matching ${describeFilter(filter)} (${count}). Tasks it does not apply to are left as they are.` });
    } else {
      setConfirm({ action, title: `${a.verb} ${selected.size} task${selected.size === 1 ? "" : "s"}?`,
        text: `This will ${a.what} the ${selected.size} selected task${selected.size === 1 ? "" : "s"}.` });
    }
  };
  const run = async (action) => {
    let applied = 0, refused = 0;
    if (allMatching) {
      let cursor = null;
      do {
        const r = await api("POST", "/api/tasks/bulk", { action, filter, cursor });
        applied += r.applied; refused += r.refused; cursor = r.next_cursor;
      } while (cursor);
    } else {
      const r = await api("POST", "/api/tasks/bulk", { action, ids: [...selected] });
      applied = r.applied; refused = r.refused;
    }
    setNotice(`${ACTIONS[action].verb}: ${n(applied)} done${refused ? `, ${n(refused)} not applicable (their state does not allow it)` : ""}.`);
    setSelected(new Set()); setAllMatching(false); page.refresh();
  };

  return html`
    <div class="topbar"><h1>Tasks</h1>${canWrite ? html`<button class="primary" onClick=${() => setCreating(true)}>New task</button>` : null}</div>
    ${notice ? html`<div class="banner info" role="status">${notice}</div>` : null}
    <${ErrorBanner} error=${page.error} />
    <div class="filters" role="group" aria-label="state">
      <button class=${`chip${!filter.state ? " on" : ""}`} onClick=${() => setQuery({ state: "", cursor: "" })}>All</button>
      ${TASK_STATES.map((s) => html`<button class=${`chip${filter.state === s ? " on" : ""}`} data-state=${s}
        onClick=${() => setQuery({ state: s, cursor: "" })}>${s}<span class="n">${n(counts[s])}</span></button>`)}
    </div>
    <div class="filters"><${TextFilter} name="type" placeholder="type" /><${TextFilter} name="queue" placeholder="queue" />
      <${TextFilter} name="name" placeholder="name starts with…" />
      ${Object.keys(filter).length ? html`<button onClick=${() => navigate("/ui/tasks")}>Clear filters</button>` : null}</div>
    ${canWrite && (selected.size || allMatching) ? html`<div class="selectbar">
      <span>${allMatching ? html`<strong>All tasks matching this filter</strong>` : html`<strong>${selected.size}</strong> selected`}</span>
      ${!allMatching && allOnPage && page.data[0].next_cursor ? html`<a href="#" onClick=${(e) => { e.preventDefault(); setAllMatching(true); }}>Select all matching this filter</a>` : null}
      <span class="spacer"></span>
      ${Object.keys(ACTIONS).map((a) => html`<button class=${ACTIONS[a].danger ? "danger" : ""} onClick=${() => ask(a).catch(setNotice)}>${ACTIONS[a].verb}</button>`)}
    </div>` : null}
    <div class="panel tablewrap">${tasks.length ? html`<table>
      <thead><tr>${canWrite ? html`<th><input type="checkbox" aria-label="select page" checked=${allOnPage}
        onChange=${() => { setSelected(allOnPage ? new Set() : new Set(tasks.map((t) => t.id))); setAllMatching(false); }} /></th>` : null}
        <th>Name</th><th>State</th><th>Type</th><th>Queue</th><th>Schedule</th><th>Next run</th><th>Last run</th><th>Created</th></tr></thead>
      <tbody>${tasks.map((t) => html`<tr data-task=${t.id}>
        ${canWrite ? html`<td><input type="checkbox" aria-label=${`select ${t.name}`} checked=${selected.has(t.id)} onChange=${() => toggle(t.id)} /></td>` : null}
        <td><a href=${`/ui/tasks/${t.id}`}>${t.name}</a></td><td><${Badge} state=${t.state} /></td>
        <td>${t.type}</td><td>${t.queue}</td><td class="wrap">${t.cron ? describeCron(t.cron) : t.run_at ? "once" : "now"}</td>
        <td><${Time} at=${t.next_run_at} /></td>
        <td>${t.last_run ? html`<${Badge} state=${t.last_run.state} />` : html`<span class="muted">—</span>`}</td>
        <td><${Time} at=${t.created_at} /></td></tr>`)}</tbody></table>`
      : page.loading ? null : html`<${Empty} title=${Object.keys(filter).length ? "No task matches these filters" : "No tasks yet"}>
          ${Object.keys(filter).length ? "Clear a filter, or look for a state with a count above."
            : html`Create one with <strong>New task</strong>, <code>skiplock tasks create</code> or <code>POST /api/tasks</code>.`}<//>`}
      <div class="pager">${query.cursor ? html`<button onClick=${() => setQuery({ cursor: "" })}>First page</button>` : null}
        ${page.data && page.data[0].next_cursor ? html`<button onClick=${() => setQuery({ cursor: page.data[0].next_cursor })}>Next page</button>` : null}</div>
    </div>
    ${confirm ? html`<${Confirm} ...${confirm} verb=${ACTIONS[confirm.action].verb} danger=${ACTIONS[confirm.action].danger}
      onYes=${() => run(confirm.action)} onClose=${() => setConfirm(null)} />` : null}
    ${creating ? html`<${TaskForm} onClose=${() => setCreating(false)} onDone=${(t) => navigate(`/ui/tasks/${t.id}`)} />` : null}`;
}

function describeFilter(f) {
  const parts = Object.entries(f).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(", ") : "no filter (every task)";
}

const TEMPLATES = {
  http: { url: "https://example.com/hook", method: "POST", json: { hello: "world" } },
  shell: { command: ["echo", "hello"] },
  custom: {},
};

// Create (no `task`) or edit (PATCH) a task; the API validates, and its problem+json
// errors are shown next to the fields they name.
function TaskForm({ task, onClose, onDone }) {
  const editing = Boolean(task);
  const [kind, setKind] = useState(task ? (["http", "shell"].includes(task.type) ? task.type : "custom") : "http");
  const [f, setF] = useState(() => ({
    name: task ? task.name : "", type: task ? task.type : "", payload: JSON.stringify(task ? task.payload : TEMPLATES.http, null, 2),
    when: task ? (task.cron ? "cron" : "at") : "now", run_at: task && task.run_at ? toLocalInput(task.run_at) : "",
    cron: task && task.cron ? task.cron : "*/5 * * * *", timezone: task ? task.timezone : Intl.DateTimeFormat().resolvedOptions().timeZone,
    queue: task ? task.queue : "", priority: task ? String(task.priority) : "", max_attempts: task ? String(task.max_attempts) : "",
    timeout_s: task ? String(task.timeout_s) : "",
  }));
  const [errors, setErrors] = useState([]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  // Updates are functional: two inputs before a redraw must not overwrite each other.
  const set = (k) => (e) => { const v = e.target.value; setF((prev) => ({ ...prev, [k]: v })); };
  const pickKind = (e) => {
    const k = e.target.value;
    setKind(k);
    if (!editing) setF((prev) => ({ ...prev, payload: JSON.stringify(TEMPLATES[k], null, 2) }));
  };
  const submit = async (e) => {
    e.preventDefault();
    const local = [];
    let payload;
    try { payload = JSON.parse(f.payload || "{}"); } catch (err) { local.push({ field: "payload", message: `not valid JSON: ${err.message}` }); }
    const body = {};
    if (!editing) body.type = kind === "custom" ? f.type : kind;
    if (f.name) body.name = f.name;
    if (payload !== undefined) body.payload = payload;
    if (f.when === "at") {
      if (!f.run_at) local.push({ field: "run_at", message: "pick a date and time" });
      else body.run_at = new Date(f.run_at).toISOString();
    }
    if (f.when === "cron") { body.cron = f.cron; body.timezone = f.timezone; }
    for (const k of ["priority", "max_attempts", "timeout_s"]) if (f[k] !== "") body[k] = Number(f[k]);
    if (f.queue) body.queue = f.queue;
    if (editing) { // PATCH only what changed
      for (const k of Object.keys(body)) if (JSON.stringify(body[k]) === JSON.stringify(task[k])) delete body[k];
      if (task.cron) delete body.run_at;
      if (!Object.keys(body).length) { onClose(); return; }
    }
    setErrors(local);
    if (local.length) return;
    setBusy(true);
    try {
      const t = editing ? await api("PATCH", `/api/tasks/${task.id}`, body) : await api("POST", "/api/tasks", body);
      onDone(t); onClose();
    } catch (err) {
      setBusy(false);
      if (err.errors.length) { setErrors(err.errors); setError(null); } else setError(err);
    }
  };
  return html`<${Dialog} title=${editing ? `Edit ${task.name}` : "New task"} onClose=${onClose}>
    <form onSubmit=${submit} novalidate>
      <${ErrorBanner} error=${error} />
      ${errors.length ? html`<div class="banner error" role="alert">The API refused ${errors.length === 1 ? "a field" : `${errors.length} fields`}; see below.</div>` : null}
      <div class="row">
        <${Field} label="Name" name="name" errors=${errors} hint="for people; the type if empty"><input name="name" value=${f.name} onInput=${set("name")} /><//>
        ${editing ? html`<${Field} label="Type" name="type" errors=${errors}><input value=${task.type} disabled /><//>`
          : html`<${Field} label="Type" name="type" errors=${errors}>
            <select name="kind" value=${kind} onChange=${pickKind}><option value="http">http (call a URL)</option>
              <option value="shell">shell (run a command)</option><option value="custom">a Python handler…</option></select>
            ${kind === "custom" ? html`<input name="type" placeholder="handler type, e.g. email.send" value=${f.type} onInput=${set("type")} />` : null}<//>`}
      </div>
      <${Field} label="Payload (JSON)" name="payload" errors=${errors}><textarea name="payload" value=${f.payload} onInput=${set("payload")} /><//>
      <${Field} label="When" name="when" errors=${errors.filter((x) => ["run_at", "cron", "timezone"].includes(x.field.split(".")[0]))}>
        <div class="row">${(task && task.cron ? ["cron"] : editing ? ["at"] : ["now", "at", "cron"]).map((w) => html`<label>
          <input type="radio" name="when" value=${w} checked=${f.when === w} onChange=${set("when")} /> ${{ now: "now", at: "at a time", cron: "on a cron schedule" }[w]}</label>`)}</div>
        ${f.when === "at" ? html`<input type="datetime-local" name="run_at" step="1" value=${f.run_at} onInput=${set("run_at")} />` : null}
        ${f.when === "cron" ? html`<div class="row"><input name="cron" value=${f.cron} onInput=${set("cron")} aria-label="cron" />
          <input name="timezone" value=${f.timezone} onInput=${set("timezone")} aria-label="time zone" /></div>
          <span class="hint">${describeCron(f.cron)}, in ${f.timezone}</span>` : null}
      <//>
      <div class="row">
        <${Field} label="Queue" name="queue" errors=${errors}><input name="queue" placeholder="default" value=${f.queue} onInput=${set("queue")} /><//>
        <${Field} label="Priority" name="priority" errors=${errors}><input name="priority" inputmode="numeric" placeholder="0" value=${f.priority} onInput=${set("priority")} /><//>
        <${Field} label="Max attempts" name="max_attempts" errors=${errors}><input name="max_attempts" inputmode="numeric" placeholder=${f.when === "cron" ? "1" : "3"} value=${f.max_attempts} onInput=${set("max_attempts")} /><//>
        <${Field} label="Timeout (s)" name="timeout_s" errors=${errors}><input name="timeout_s" inputmode="decimal" placeholder="300" value=${f.timeout_s} onInput=${set("timeout_s")} /><//>
      </div>
      <div class="actions"><button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" type="submit" disabled=${busy}>${editing ? "Save" : "Create task"}</button></div>
    </form><//>`;
}

function toLocalInput(iso) {
  const d = new Date(iso);
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function WaitingBanner({ waiting }) {
  if (!waiting) return null;
  return html`<div class="banner wait" data-waiting=${waiting.reason}><strong>Waiting: ${waiting.reason.replace("_", " ")}</strong> — ${waiting.detail}
    ${waiting.until ? html` (until <${Time} at=${waiting.until} />)` : null}</div>`;
}

function TaskDetail({ id, canWrite }) {
  const data = usePoll(() => Promise.all([api("GET", `/api/tasks/${id}`), api("GET", `/api/tasks/${id}/runs?limit=100`)]), [id]);
  const [confirm, setConfirm] = useState(null);
  const [editing, setEditing] = useState(false);
  if (!data.data) return html`<${ErrorBanner} error=${data.error} />`;
  const [t, { runs }] = data.data;
  const live = ["scheduled", "running", "paused"].includes(t.state);
  const act = (action, path, method = "POST") => setConfirm({
    action, title: `${ACTIONS[action].verb} ${t.name}?`, text: `This will ${ACTIONS[action].what} this task.`,
    onYes: async () => { await api(method, path); data.refresh(); } });
  const policy = [
    ["queue", t.queue], ["priority", t.priority], ["max attempts", t.max_attempts], ["timeout", `${t.timeout_s} s`],
    ["retry backoff", `${t.retry_backoff_s} s … ${t.retry_backoff_max_s} s${t.retry_jitter ? ", with jitter" : ""}`],
    ...(t.cron ? [["catch up", t.catch_up], ["overlap", t.overlap]] : []),
    ...(t.concurrency ? [["concurrency", `key ${t.concurrency.key}, limit ${t.concurrency.limit}`]] : []),
    ...(t.rate_limit ? [["rate limit", t.rate_limit]] : []),
    ...(t.dedup ? [["dedup", `key ${t.dedup.key} while ${t.dedup.while}, ${t.dedup.on_duplicate}`]] : []),
    ...(t.idempotency_key ? [["idempotency key", t.idempotency_key]] : []),
  ];
  return html`
    <div class="topbar"><h1>${t.name} <${Badge} state=${t.state} /></h1>
      ${canWrite ? html`<div class="actions">
        ${live ? html`<button onClick=${() => setEditing(true)}>Edit</button>` : null}
        ${["scheduled", "running"].includes(t.state) ? html`<button onClick=${() => act("pause", `/api/tasks/${id}/pause`)}>Pause</button>` : null}
        ${t.state === "paused" ? html`<button onClick=${() => act("resume", `/api/tasks/${id}/resume`)}>Resume</button>` : null}
        ${["scheduled", "running"].includes(t.state) ? html`<button onClick=${() => act("trigger", `/api/tasks/${id}/trigger`)}>Trigger now</button>` : null}
        ${live ? html`<button class="danger" onClick=${() => act("cancel", `/api/tasks/${id}`, "DELETE")}>Cancel</button>` : null}
      </div>` : null}</div>
    <${ErrorBanner} error=${data.error} />
    ${t.quarantined ? html`<div class="banner error">Parked after ${t.lost_runs} runs lost their worker; resume it to try again.</div>` : null}
    <${WaitingBanner} waiting=${t.waiting} />
    <div class="grid2">
      <div class="panel"><h2>Schedule</h2><dl class="kv">
        <dt>runs</dt><dd>${schedule(t)}</dd>
        <dt>type</dt><dd>${t.type}</dd><dt>id</dt><dd class="mono">${t.id}</dd>
        <dt>next runs</dt><dd>${t.next_runs.filter(Boolean).length ? html`<ol class="next">${t.next_runs.filter(Boolean).map((x) => html`<li>
          <${Time} at=${x} zone=${t.timezone} /> <span class="muted">${t.timezone}</span>${t.timezone !== Intl.DateTimeFormat().resolvedOptions().timeZone ? html` · <${Time} at=${x} /> here` : null}</li>`)}</ol>` : "none"}</dd>
        <dt>created</dt><dd><${Time} at=${t.created_at} /></dd><dt>updated</dt><dd><${Time} at=${t.updated_at} /></dd>
      </dl></div>
      <div class="panel"><h2>Policy</h2><dl class="kv">${policy.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl></div>
    </div>
    <div class="panel"><h2>Payload</h2><${Json} value=${t.payload} /></div>
    <div class="panel tablewrap"><h2>Runs</h2>${runs.length ? html`<${RunTable} runs=${runs} />`
      : html`<${Empty} title="No runs yet">The first run appears at its due time.<//>`}</div>
    ${confirm ? html`<${Confirm} ...${confirm} verb=${ACTIONS[confirm.action].verb} danger=${ACTIONS[confirm.action].danger}
      onClose=${() => setConfirm(null)} />` : null}
    ${editing ? html`<${TaskForm} task=${t} onClose=${() => setEditing(false)} onDone=${() => data.refresh()} />` : null}`;
}

// ---- runs -----------------------------------------------------------------------------------

const RUN_STATES = ["pending", "running", "succeeded", "failed", "cancelled", "skipped"];

function outcome(r) {
  if (r.error) {
    const line = r.error.split("\n")[0];
    return html`<span class="muted" title=${r.error}>${line.length > 90 ? `${line.slice(0, 90)}…` : line}</span>`;
  }
  if (r.result !== null && r.result !== undefined) {
    const s = JSON.stringify(r.result);
    return html`<code>${s.length > 80 ? `${s.slice(0, 80)}…` : s}</code>`;
  }
  if (r.waiting) return html`<span class="muted">waiting: ${r.waiting.reason.replace("_", " ")}</span>`;
  return html`<span class="muted">—</span>`;
}

function RunTable({ runs, showTask }) {
  return html`<table><thead><tr><th>Run</th>${showTask ? html`<th>Task</th>` : null}<th>Attempt</th><th>State</th><th>Scheduled for</th>
    <th class="num">Lateness</th><th class="num">Duration</th><th>Worker</th><th>Reason</th><th>Result or error</th></tr></thead>
    <tbody>${runs.map((r) => html`<tr data-run=${r.id} data-state=${r.state}>
      <td><a href=${`/ui/runs/${r.id}`} class="mono">${r.id.slice(-8)}</a></td>
      ${showTask ? html`<td><a href=${`/ui/tasks/${r.task_id}`} class="mono">${r.task_id.slice(-8)}</a> <span class="muted">${r.type}</span></td>` : null}
      <td>${r.attempt}</td><td><${Badge} state=${r.state} /></td><td><${Time} at=${r.scheduled_for} /></td>
      <td class="num">${ms(lateness(r))}</td><td class="num">${ms(r.duration_ms)}</td>
      <td>${r.worker_id ? html`<span class="mono">${r.worker_id.slice(0, 12)}</span>` : "—"}</td><td>${r.reason}</td>
      <td class="clip">${outcome(r)}</td></tr>`)}</tbody></table>`;
}

function Runs() {
  const { query } = currentRoute();
  const filter = Object.fromEntries(["state", "type", "task_id", "worker_id"].map((k) => [k, query[k]]).filter(([, v]) => v));
  const key = JSON.stringify([filter, query.cursor]);
  const page = usePoll(() => Promise.all([api("GET", `/api/runs${qs({ ...filter, cursor: query.cursor, limit: 50 })}`),
    api("GET", "/api/stats")]), [key]);
  const runs = page.data ? page.data[0].runs : [];
  const counts = page.data ? page.data[1].runs : {};
  return html`<div class="topbar"><h1>Runs</h1></div>
    <${ErrorBanner} error=${page.error} />
    <div class="filters" role="group" aria-label="state">
      <button class=${`chip${!filter.state ? " on" : ""}`} onClick=${() => setQuery({ state: "", cursor: "" })}>All</button>
      ${RUN_STATES.map((s) => html`<button class=${`chip${filter.state === s ? " on" : ""}`} data-state=${s}
        onClick=${() => setQuery({ state: s, cursor: "" })}>${s}<span class="n">${n(counts[s])}</span></button>`)}</div>
    <div class="filters"><${TextFilter} name="type" placeholder="type" /><${TextFilter} name="task_id" placeholder="task id" />
      <${TextFilter} name="worker_id" placeholder="worker id" />
      ${Object.keys(filter).length ? html`<button onClick=${() => navigate("/ui/runs")}>Clear filters</button>` : null}</div>
    <div class="panel tablewrap">${runs.length ? html`<${RunTable} runs=${runs} showTask />`
      : page.loading ? null : html`<${Empty} title="No run matches">Runs appear as tasks come due; ended runs stay for the retention period.<//>`}
      <div class="pager">${query.cursor ? html`<button onClick=${() => setQuery({ cursor: "" })}>First page</button>` : null}
        ${page.data && page.data[0].next_cursor ? html`<button onClick=${() => setQuery({ cursor: page.data[0].next_cursor })}>Next page</button>` : null}</div></div>`;
}

function RunDetail({ id }) {
  const data = usePoll(() => api("GET", `/api/runs/${id}`), [id]);
  if (!data.data) return html`<${ErrorBanner} error=${data.error} />`;
  const r = data.data;
  return html`<div class="topbar"><h1>Run <span class="mono">${r.id.slice(-8)}</span> <${Badge} state=${r.state} /></h1>
      <a class="button" href=${`/ui/tasks/${r.task_id}`}>Its task</a></div>
    <${WaitingBanner} waiting=${r.waiting} />
    <div class="grid2"><div class="panel"><h2>Run</h2><dl class="kv">
      <dt>id</dt><dd class="mono">${r.id}</dd><dt>task</dt><dd><a class="mono" href=${`/ui/tasks/${r.task_id}`}>${r.task_id}</a></dd>
      <dt>type</dt><dd>${r.type}</dd><dt>queue</dt><dd>${r.queue}</dd><dt>attempt</dt><dd>${r.attempt}</dd><dt>reason</dt><dd>${r.reason}</dd>
      <dt>scheduled for</dt><dd><${Time} at=${r.scheduled_for} /></dd><dt>due</dt><dd><${Time} at=${r.due_at} /></dd>
      <dt>started</dt><dd><${Time} at=${r.started_at} /> ${lateness(r) !== null ? html`<span class="muted">(${ms(lateness(r))} late)</span>` : null}</dd>
      <dt>finished</dt><dd><${Time} at=${r.finished_at} /></dd><dt>duration</dt><dd>${ms(r.duration_ms)}</dd>
      <dt>worker</dt><dd class="mono">${r.worker_id || "—"}</dd></dl></div>
      <div class="panel"><h2>${r.error ? "Error" : "Result"}</h2>
        ${r.error ? html`<${Json} value=${r.error} error />` : null}
        ${r.result !== null && r.result !== undefined ? html`<${Json} value=${r.result} />` : r.error ? null : html`<p class="muted">No result (yet).</p>`}</div></div>`;
}

// ---- workers and queues ---------------------------------------------------------------------

function Workers({ canWrite }) {
  const data = usePoll(() => api("GET", "/api/workers"), []);
  const [confirm, setConfirm] = useState(null);
  const workers = data.data ? data.data.workers : [];
  return html`<div class="topbar"><h1>Workers</h1></div><${ErrorBanner} error=${data.error} />
    <div class="panel tablewrap">${workers.length ? html`<table><thead><tr><th>Name</th><th>Host</th><th>Types</th><th>Queues</th>
      <th class="num">Slots</th><th class="num">Running</th><th>Coordinator</th><th>Last heartbeat</th><th></th></tr></thead>
      <tbody>${workers.map((w) => html`<tr data-worker=${w.id}><td>${w.name} ${w.draining ? html`<span class="badge paused">draining</span>` : null}</td>
        <td>${w.host}</td><td class="wrap">${w.types.join(", ")}</td><td>${w.queues.length ? w.queues.join(", ") : html`<span class="muted">all</span>`}</td>
        <td class="num">${w.slots}</td><td class="num">${w.running}</td><td class="mono">${w.coordinator}</td><td title=${w.last_heartbeat_at}>${ago(w.last_heartbeat_at)}</td>
        <td>${canWrite ? html`<button onClick=${() => setConfirm({ w, drain: !w.draining })}>${w.draining ? "Undrain" : "Drain"}</button>` : null}</td></tr>`)}
      </tbody></table>` : data.loading ? null : html`<${Empty} title="No worker is connected">Start one with <code>skiplock worker</code>; pending runs wait until a worker takes their type.<//>`}</div>
    ${confirm ? html`<${Dialog} title=${`${confirm.drain ? "Drain" : "Undrain"} ${confirm.w.name}?`} onClose=${() => setConfirm(null)}>
      <p>${confirm.drain ? "It takes no new runs; the ones it runs finish." : "It takes runs again."}</p>
      <div class="actions"><button onClick=${() => setConfirm(null)}>Keep as is</button><button class="primary" data-confirm onClick=${async () => {
        await api("POST", `/api/workers/${confirm.w.id}/${confirm.drain ? "drain" : "undrain"}`); setConfirm(null); data.refresh(); }}>
        ${confirm.drain ? "Drain" : "Undrain"}</button></div><//>` : null}`;
}

function QueueTable({ queues, canWrite, onChange }) {
  const toggle = async (q) => { await api("POST", `/api/queues/${q.name}/${q.paused ? "resume" : "pause"}`); onChange && onChange(); };
  return html`<div class="tablewrap"><table><thead><tr><th>Queue</th><th>State</th><th class="num">Pending</th><th class="num">Running</th>
    <th class="num">Due backlog</th><th>Oldest due</th><th class="num">Workers</th>${canWrite ? html`<th></th>` : null}</tr></thead>
    <tbody>${queues.map((q) => html`<tr data-queue=${q.name}><td><a href=${`/ui/tasks${qs({ queue: q.name })}`}>${q.name}</a></td>
      <td>${q.paused ? html`<span class="badge paused">paused</span>` : html`<span class="badge quiet">active</span>`}</td>
      <td class="num">${n(q.pending)}</td><td class="num">${n(q.running)}</td><td class="num">${n(q.due_backlog)}</td>
      <td>${q.oldest_due_at ? ago(q.oldest_due_at) : "—"}</td><td class="num">${q.workers}</td>
      ${canWrite ? html`<td><button onClick=${() => toggle(q)}>${q.paused ? "Resume" : "Pause"}</button></td>` : null}</tr>`)}</tbody></table></div>`;
}

function Queues({ canWrite }) {
  const data = usePoll(() => Promise.all([api("GET", "/api/queues"), api("GET", "/api/rate-limits")]), []);
  if (!data.data) return html`<${ErrorBanner} error=${data.error} />`;
  const [{ queues }, { rate_limits: limits }] = data.data;
  return html`<div class="topbar"><h1>Queues and rate limits</h1></div><${ErrorBanner} error=${data.error} />
    <div class="panel"><h2>Queues</h2>${queues.length ? html`<${QueueTable} queues=${queues} canWrite=${canWrite} onChange=${data.refresh} />`
      : html`<${Empty} title="No queues yet">A queue appears when a task uses it.<//>`}</div>
    <div class="panel tablewrap"><h2>Rate limits</h2>${limits.length ? html`<table><thead><tr><th>Name</th><th class="num">Per second</th>
      <th class="num">Burst</th><th class="num">Tokens now</th><th>Paused until</th></tr></thead><tbody>${limits.map((l) => html`<tr>
      <td>${l.name}</td><td class="num">${l.per_second}</td><td class="num">${l.burst}</td><td class="num">${l.tokens.toFixed(1)}</td>
      <td>${l.paused_until ? html`<${Time} at=${l.paused_until} />` : "—"}</td></tr>`)}</tbody></table>`
      : html`<${Empty} title="No rate limits">Create one with <code>PUT /api/rate-limits/NAME</code> or <code>skiplock rate-limits set NAME --per-second 5</code>.<//>`}</div>`;
}

// ---- the shell: navigation, live toggle, token -------------------------------------------

function TokenPrompt({ onDone }) {
  const [v, setV] = useState("");
  return html`<${Dialog} title="This API needs a token" onClose=${() => {}}>
    <p>Paste an API token (<code>SKIPLOCK_API_TOKEN</code>, or the read-only <code>SKIPLOCK_API_READ_TOKEN</code>).
      It is kept in this browser only.</p>
    <form onSubmit=${(e) => { e.preventDefault(); localStorage.setItem(TOKEN_KEY, v.trim()); onDone(); }}>
      <input type="password" name="token" autocomplete="off" value=${v} onInput=${(e) => setV(e.target.value)} style="width:100%" />
      <div class="actions"><button class="primary" type="submit">Use token</button></div></form><//>`;
}

const PAGES = [["overview", "Overview"], ["tasks", "Tasks"], ["runs", "Runs"], ["workers", "Workers"], ["queues", "Queues"]];

function App() {
  const [route, setRoute] = useState(currentRoute());
  const [needToken, setNeedToken] = useState(false);
  const [me, setMe] = useState(null);
  const [on, toggle] = useLive();
  const [generation, setGeneration] = useState(0);
  useEffect(() => { const f = () => setRoute(currentRoute()); addEventListener("popstate", f); return () => removeEventListener("popstate", f); }, []);
  useEffect(() => onAuthNeeded(() => setNeedToken(true)), []);
  useEffect(() => { api("GET", "/api/me").then(setMe, () => setMe(null)); }, [generation]);
  const canWrite = Boolean(me && me.access === "write");
  const { page, id } = route;
  let body;
  if (page === "overview") body = html`<${Overview} />`;
  else if (page === "tasks") body = id ? html`<${TaskDetail} id=${id} canWrite=${canWrite} />` : html`<${Tasks} canWrite=${canWrite} />`;
  else if (page === "runs") body = id ? html`<${RunDetail} id=${id} />` : html`<${Runs} />`;
  else if (page === "workers") body = html`<${Workers} canWrite=${canWrite} />`;
  else if (page === "queues") body = html`<${Queues} canWrite=${canWrite} />`;
  else body = html`<${Empty} title="No such page"><a href="/ui/">Back to the overview</a><//>`;
  return html`<div class="shell" onClick=${link}>
    <nav class="nav"><div class="brand">skiplock</div>
      ${PAGES.map(([p, label]) => html`<a href=${p === "overview" ? "/ui/" : `/ui/${p}`} class=${page === p ? "active" : ""}>${label}</a>`)}
      <div class="spacer"></div>
      <div class=${`live${on ? "" : " paused"}`}><span class="dot"></span>${on ? "live" : "paused"}
        <button onClick=${toggle} aria-label=${on ? "pause live updates" : "resume live updates"}>${on ? "Pause" : "Resume"}</button></div>
      <div class="who">${me ? (me.access === "write" ? "full access" : "read-only") : ""}
        ${localStorage.getItem(TOKEN_KEY) ? html`<br /><button onClick=${() => { localStorage.removeItem(TOKEN_KEY); location.reload(); }}>Forget token</button>` : null}</div>
    </nav>
    <main key=${generation}>${body}</main>
    ${needToken ? html`<${TokenPrompt} onDone=${() => { setNeedToken(false); auth.needed = false; setGeneration((g) => g + 1); }} />` : null}
  </div>`;
}

const root = document.getElementById("app");
root.textContent = "";  // the "Loading…" placeholder
render(html`<${App} />`, root);
