// The dashboard's landing page: what the service holds and does, from GetStats (GET /v1/stats), refreshed every
// few seconds. Counts per state and per type link into the filtered task list; the last hour's starts, successes
// and failures per minute are an inline SVG chart; the queue and the oldest runnable task's wait say whether work
// keeps up. Loaded before dashboard.js, whose helpers (api, el, stateCell...) it calls.
'use strict';

const OVERVIEW_REFRESH_MS = 2000;
const STATE_ORDER = ['PENDING', 'RUNNING', 'STOPPING', 'SUCCESS', 'FAILURE', 'REVOKED', 'TIMED_OUT', 'LOST'];
const SERIES = [['started', 'Started'], ['succeeded', 'Succeeded'], ['failed', 'Failed']];

function tasksLink(filters, text) {
  const q = new URLSearchParams(filters);
  return el('a', { href: `#/tasks?${q}` }, text);
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return 'none waiting';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// Three lines over 60 minutes; the y axis from 0 to the busiest minute.
function minutesChart(minutes) {
  const width = 600;
  const height = 120;
  const top = Math.max(1, ...minutes.flatMap((m) => SERIES.map(([key]) => Number(m[key] || 0))));
  const x = (i) => (i * width) / Math.max(1, minutes.length - 1);
  const y = (v) => height - (Number(v || 0) * (height - 4)) / top - 2;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none'); // as wide as the page, whatever its width
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'tasks started, succeeded and failed per minute, the last hour');
  for (const [key] of SERIES) {
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    line.setAttribute('points', minutes.map((m, i) => `${x(i).toFixed(1)},${y(m[key]).toFixed(1)}`).join(' '));
    line.setAttribute('class', `series ${key}`);
    line.setAttribute('data-series', key);
    svg.append(line);
  }
  return svg;
}

async function overviewPage() {
  const states = el('div', { class: 'cards', id: 'state-counts' });
  const queue = el('div', { class: 'cards', id: 'queue' });
  const chart = el('figure', { class: 'chart-box' });
  const types = el('tbody');
  const nodes = el('tbody');
  const limits = el('tbody');
  const limitsBox = el('div', { hidden: true }, el('h3', {}, 'Limits'), el('div', { class: 'scroll' },
    el('table', { id: 'limits' }, el('thead', {}, el('tr', {}, ['Limit', 'Running', 'Waiting'].map((h) => el('th', {}, h)))),
      limits)));
  const stamp = el('p', { class: 'muted' });
  view.replaceChildren(el('h2', {}, 'Overview'), states, queue, chart,
    el('h3', {}, 'By type'), el('div', { class: 'scroll' }, el('table', { id: 'type-counts' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Type'), STATE_ORDER.map((s) => el('th', {}, s)))), types)),
    limitsBox, el('h3', {}, 'Servers'), el('div', { class: 'scroll' }, el('table', { id: 'nodes' },
      el('thead', {}, el('tr', {}, ['Server', 'Busy', 'Abandoned', 'Task types', 'Last heard of'].map((h) => el('th', {}, h)))), nodes)),
    stamp);
  let timer = null;
  let left = false;

  // Each engine process is a node named host:pid:random; a host running several (--procs, or several servers)
  // gets a row of its own above them, with their totals.
  function renderNodes(found) {
    const byHost = new Map();
    for (const n of found) {
      const host = n.node.split(':')[0];
      byHost.set(host, [...(byHost.get(host) || []), n]);
    }
    nodes.replaceChildren(...[...byHost].flatMap(([host, processes]) => [
      ...(processes.length > 1 ? [hostRow(host, processes)] : []), ...processes.map(nodeRow)]));
  }

  function nodeRow(n) {
    return el('tr', { 'data-node': n.node }, el('td', { class: 'id' }, n.node), busyCell(n.busy, n.workers),
      abandonedCell(n.abandoned || 0), el('td', {}, (n.taskTypes || []).join(', ')), el('td', {}, when(n.lastSeen)));
  }

  function hostRow(host, processes) {
    const total = (key) => processes.reduce((sum, n) => sum + Number(n[key] || 0), 0);
    const types = [...new Set(processes.flatMap((n) => n.taskTypes || []))].sort();
    const latest = processes.map((n) => n.lastSeen).filter(Boolean).sort().at(-1);
    return el('tr', { class: 'host', 'data-host': host },
      el('th', { scope: 'row' }, `${host}: ${processes.length} engine processes`), busyCell(total('busy'), total('workers')),
      abandonedCell(total('abandoned')), el('td', {}, types.join(', ')), el('td', {}, when(latest)));
  }

  function busyCell(busy, workers) {
    return el('td', {}, `${busy || 0} / ${workers || 0}`, el('progress', { max: workers || 1, value: busy || 0 }));
  }

  // Handlers that ignored a stop past the grace: their tasks ended, their threads still run (and hold memory).
  function abandonedCell(count) {
    return el('td', { 'data-abandoned': count, class: count ? 'error' : undefined, title: count
      ? 'handlers that ignored a stop past --stop-grace and still run: their threads hold memory until they return; '
        + 'a restart ends them, and --isolation process kills them instead' : undefined }, String(count));
  }

  function render(stats) {
    const totals = {};
    const byType = {};
    for (const c of stats.counts || []) {
      const state = shortState(c.state);
      const n = Number(c.count || 0);
      totals[state] = (totals[state] || 0) + n;
      (byType[c.taskType] = byType[c.taskType] || {})[state] = n;
    }
    states.replaceChildren(...STATE_ORDER.map((s) => el('div', { class: 'card', 'data-count-state': s },
      el('span', { class: `state ${s}` }, s), tasksLink({ states: s }, String(totals[s] || 0)))));
    const minutes = stats.minutes || [];
    const sum = (key) => minutes.reduce((n, m) => n + Number(m[key] || 0), 0);
    const age = stats.oldestRunnableAge ? parseFloat(stats.oldestRunnableAge) : null;
    queue.replaceChildren(
      el('div', { class: 'card' }, el('span', { class: 'muted' }, 'Pending (due or not)'),
        tasksLink({ states: 'PENDING' }, String(totals.PENDING || 0))),
      el('div', { class: 'card', id: 'oldest-runnable' }, el('span', { class: 'muted' }, 'Oldest runnable waits'),
        el('strong', {}, ago(age))),
      ...SERIES.map(([key, label]) => el('div', { class: 'card' }, el('span', { class: `muted legend ${key}` },
        `${label}, last hour`), el('strong', { 'data-hour': key }, String(sum(key))))));
    const busiest = Math.max(0, ...minutes.flatMap((m) => SERIES.map(([key]) => Number(m[key] || 0))));
    chart.replaceChildren(minutesChart(minutes), el('figcaption', { class: 'muted' },
      `Per minute, the last hour (top: ${busiest}/min):`,
      ...SERIES.map(([key, label]) => el('span', { class: `legend ${key}` }, label))));
    types.replaceChildren(...Object.keys(byType).sort().map((type) => el('tr', { 'data-type': type },
      el('td', {}, tasksLink({ taskType: type }, type)),
      STATE_ORDER.map((s) => el('td', {}, byType[type][s] ? tasksLink({ taskType: type, states: s },
        String(byType[type][s])) : '')))));
    limits.replaceChildren(...(stats.limits || []).map((c) => el('tr', { 'data-limit': c.limitId },
      el('td', {}, c.limitId), el('td', {}, String(c.running || 0)), el('td', {}, String(c.waiting || 0)))));
    limitsBox.hidden = !(stats.limits || []).length;
    stamp.textContent = `as of ${when(stats.time)}`;
  }

  async function load() {
    try {
      const [stats, found] = await Promise.all([api('GET', 'v1/stats'), api('GET', 'v1/nodes')]);
      render(stats);
      renderNodes(found.nodes || []);
    } catch (err) {
      showError(err);
    }
    if (!left) timer = setTimeout(load, OVERVIEW_REFRESH_MS);
  }

  await load();
  return () => { left = true; clearTimeout(timer); };
}
