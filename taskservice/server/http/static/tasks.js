// The tasks list of the dashboard (`#/tasks?...`): filters kept in the URL, pages of a chosen size, the columns an
// operator reads (started, ended, duration, live while running, attempt, the error of a failure), times in the
// browser's zone with the zone named and how long ago on hover, progress moving live, and Stop or Retry where
// they apply. Loaded before dashboard.js, whose helpers (api, el, follow...) it calls.
'use strict';

const PAGE_SIZES = [25, 100, 500, 1000];
const ZONE = new Intl.DateTimeFormat([], { timeZoneName: 'short' }).formatToParts(new Date())
  .find((part) => part.type === 'timeZoneName')?.value || '';

// A time as the reader's clock shows it, the zone named, and how long ago in its title.
function timeCell(t) {
  if (!t) return el('td', { class: 'wide' }, '');
  const at = new Date(t);
  return el('td', { class: 'wide', title: ago(Math.max(0, (Date.now() - at) / 1000)) + ' ago' },
    `${when(t)} ${ZONE}`);
}

// How long it ran (or runs: the cell carries its start, and a timer moves it).
function durationText(seconds) {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
function durationCell(t) {
  if (!t.startedAt) return el('td', {}, '');
  const started = new Date(t.startedAt);
  if (t.endedAt) return el('td', {}, durationText((new Date(t.endedAt) - started) / 1000));
  return el('td', { 'data-running-since': started.getTime() }, durationText((Date.now() - started) / 1000));
}

// The state, and for a failure its error type and the first line of its message.
function stateWithError(t) {
  if (!t.error || !t.error.type) return stateCell(t);
  const first = String(t.error.message || '').split('\n')[0];
  return el('span', {}, stateCell(t), el('br'), el('span', { class: 'error small', title: t.error.message || '' },
    `${t.error.type}${first ? `: ${first.slice(0, 80)}` : ''}`));
}

function filtersQuery(f) {
  const q = new URLSearchParams();
  if (f.state) q.append('states', f.state);
  if (f.type) q.set('taskType', f.type);
  const [k, v] = (f.label || '').split('=');
  if (k && v !== undefined) q.set(`labels[${k}]`, v);
  return q;
}

// ---------------------------------------------------------------------------------------------- tasks

// The filters of `#/tasks?states=FAILURE&taskType=x&labels[team]=data`: a reload or a shared link keeps them.
function filtersFromHash(query) {
  const q = new URLSearchParams(query);
  const label = [...q.keys()].find((k) => k.startsWith('labels[') && k.endsWith(']'));
  const size = Number(q.get('pageSize'));
  return { state: q.get('states') || '', type: q.get('taskType') || '',
    label: label ? `${label.slice(7, -1)}=${q.get(label)}` : '', size: PAGE_SIZES.includes(size) ? size : 100 };
}

async function tasksPage(query) {
  const filters = filtersFromHash(query);
  const tokens = [''];
  let stream = null;
  let followed = '';
  let timer = null;
  const types = await api('GET', 'v1/taskTypes').catch(() => ({ taskTypes: [] }));
  const stateSelect = el('select', { name: 'state' }, el('option', { value: '' }, 'any state'),
    ['PENDING', 'RUNNING', 'STOPPING', ...ENDED].map((s) => el('option', { value: s }, s)));
  const typeSelect = el('select', { name: 'type' }, el('option', { value: '' }, 'any type'),
    types.taskTypes.map((t) => el('option', { value: t.name }, t.name)));
  const labelInput = el('input', { name: 'label', placeholder: 'key=value' });
  const sizeSelect = el('select', { name: 'size' }, PAGE_SIZES.map((n) => el('option', { value: n }, `${n} a page`)));
  const body = el('tbody');
  const pager = el('div', { class: 'pager' });
  const summary = el('span', { class: 'muted' });
  const form = el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
    el('label', {}, 'State', stateSelect), el('label', {}, 'Type', typeSelect), el('label', {}, 'Label', labelInput),
    el('label', {}, 'Show', sizeSelect),
    el('button', { type: 'submit' }, 'Filter'),
    el('button', { type: 'button', class: 'danger', id: 'stop-matching', onclick: () => stopMatching().catch(showError) },
      'Stop all matching'),
    el('button', { type: 'button', id: 'retry-matching', onclick: () => retryMatching().catch(showError) },
      'Retry all matching'),
    el('button', { type: 'button', class: 'danger', id: 'delete-matching', onclick: () => deleteMatching().catch(showError) },
      'Delete all matching'),
    summary);
  const wide = new Set(['Attempt', 'Submitted', 'Started', 'Ended', 'Labels']); // left out on a phone
  const total = el('p', { class: 'muted', id: 'total' });
  view.replaceChildren(form, total, el('div', { class: 'scroll' }, el('table', { id: 'tasks' }, el('thead', {}, el('tr', {},
    ['Task', 'Type', 'State', 'Progress', 'Duration', 'Attempt', 'Submitted', 'Started', 'Ended', 'Labels', '']
      .map((h) => el('th', { class: wide.has(h) ? 'wide' : undefined }, h)))), body)), pager);
  const ticking = setInterval(() => {
    for (const cell of body.querySelectorAll('[data-running-since]')) {
      cell.textContent = durationText((Date.now() - Number(cell.dataset.runningSince)) / 1000);
    }
  }, 1000);

  stateSelect.value = filters.state;
  typeSelect.value = filters.type;
  labelInput.value = filters.label;
  sizeSelect.value = filters.size;
  sizeSelect.onchange = () => apply();

  function apply() {
    Object.assign(filters, { state: stateSelect.value, type: typeSelect.value, label: labelInput.value.trim(),
      size: Number(sizeSelect.value) });
    const q = filtersQuery(filters);
    if (filters.size !== 100) q.set('pageSize', filters.size);
    history.replaceState(null, '', `#/tasks?${q}`);
    tokens.length = 1;
    load();
  }

  async function load() {
    const q = filtersQuery(filters);
    q.set('pageSize', filters.size);
    q.set('pageToken', tokens[tokens.length - 1]);
    let page;
    try {
      page = await api('GET', `v1/tasks?${q}`);
    } catch (err) {
      showError(err);
      return;
    }
    body.replaceChildren(...page.tasks.map((t) => el('tr', { 'data-row': t.taskId },
      el('td', { class: 'id' }, el('a', { href: `#/task/${encodeURIComponent(t.taskId)}` }, t.taskId)),
      el('td', {}, t.taskType), el('td', {}, stateWithError(t)), el('td', {}, bar(t)), durationCell(t),
      el('td', { class: 'wide' }, String(t.attempt || 0)),
      timeCell(t.submittedAt), timeCell(t.startedAt), timeCell(t.endedAt),
      el('td', { class: 'wide' }, Object.entries(t.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')),
      el('td', {}, rowAction(t)))));
    showTotal().catch(() => {});
    pager.replaceChildren(
      el('button', { disabled: tokens.length === 1, onclick: () => { tokens.pop(); load(); } }, '← Newer'),
      el('button', { disabled: !page.nextPageToken, onclick: () => { tokens.push(page.nextPageToken); load(); } }, 'Older →'));
    watch(page.tasks.filter((t) => !ENDED.has(shortState(t.state))).map((t) => t.taskId));
    clearTimeout(timer);
    timer = setTimeout(load, REFRESH_MS);
  }

  // Stop while unfinished, Retry once ended otherwise than in success.
  function rowAction(t) {
    const id = encodeURIComponent(t.taskId);
    const state = shortState(t.state);
    if (!ENDED.has(state)) {
      return el('button', { class: 'danger', 'data-stop': t.taskId,
        onclick: () => api('POST', `v1/tasks/${id}:stop`, {}).then(load, showError) }, 'Stop');
    }
    if (!RETRYABLE.has(state)) return '';
    return el('button', { 'data-retry': t.taskId, onclick: () => api('POST', `v1/tasks/${id}:retry`, {}).then(load, showError) },
      'Retry');
  }

  // How many match, when GetStats can tell (its counts are by state and type, not by label).
  async function showTotal() {
    if (filters.label) {
      total.textContent = '';
      return;
    }
    const stats = await api('GET', 'v1/stats');
    const n = (stats.counts || []).filter((c) => (!filters.state || shortState(c.state) === filters.state)
      && (!filters.type || c.taskType === filters.type)).reduce((sum, c) => sum + Number(c.count || 0), 0);
    total.textContent = `${n} task${n === 1 ? '' : 's'} match`;
  }

  // One stream for every unfinished task of the page: its progress bars move as events come.
  function watch(ids) {
    const key = ids.join(',');
    if (key === followed) return;
    followed = key;
    if (stream) stream.abort();
    stream = null;
    if (!ids.length) return;
    stream = new AbortController();
    follow(`v1/events?ignoreMissing=true&taskIds=${ids.map(encodeURIComponent).join(',')}`, (event) => {
      for (const node of body.querySelectorAll(`[data-task-id="${CSS.escape(event.taskId)}"]`)) {
        if (node.tagName === 'PROGRESS') node.value = (event.progress && event.progress.percent) || 0;
        else if (event.task) node.replaceWith(stateCell(event.task));
      }
    }, stream.signal).catch(() => {});
  }

  // The ids of the tasks matching the filters, in these states (of those the filter's state allows).
  async function matching(allowed) {
    const wanted = filters.state ? [filters.state].filter((s) => allowed.includes(s)) : allowed;
    const q = filtersQuery(filters);
    q.delete('states');
    wanted.forEach((s) => q.append('states', s));
    q.set('pageSize', 1000);
    const ids = [];
    let token = '';
    do {
      q.set('pageToken', token);
      const page = await api('GET', `v1/tasks?${q}`);
      ids.push(...page.tasks.map((t) => t.taskId));
      token = page.nextPageToken;
    } while (token && wanted.length);
    return { wanted: wanted.length ? wanted : [], ids: wanted.length ? ids : [] };
  }

  function matchingBody(wanted) {
    const [k, v] = (filters.label || '').split('=');
    return { states: wanted.map((s) => `TASK_STATE_${s}`), taskType: filters.type,
      labels: k && v !== undefined ? { [k]: v } : {}, all: !filters.type && !filters.label && !filters.state };
  }

  // Each bulk action says how many first, and asks.
  async function bulk(verb, allowed, act) {
    const { wanted, ids } = await matching(allowed);
    if (!ids.length) {
      summary.textContent = `no task matches that ${verb} applies to (${allowed.join(', ')})`;
      return;
    }
    if (!window.confirm(`${verb[0].toUpperCase()}${verb.slice(1)} ${ids.length} task${ids.length === 1 ? '' : 's'}?`)) return;
    summary.textContent = await act(wanted, ids);
    load();
  }

  const stopMatching = () => bulk('stop', ['PENDING', 'RUNNING'], async (wanted) => {
    const stopped = await api('POST', 'v1/tasks:stop', { ...matchingBody(wanted), reason: 'stopped from the dashboard' });
    return `${stopped.revoked || 0} revoked, ${stopped.stopping || 0} asked to stop`;
  });
  const retryMatching = () => bulk('retry', [...RETRYABLE], async (wanted, ids) => {
    const done = await Promise.allSettled(ids.map((id) => api('POST', `v1/tasks/${encodeURIComponent(id)}:retry`,
      { reason: 'retried from the dashboard' })));
    return `${done.filter((d) => d.status === 'fulfilled').length} retried`;
  });
  const deleteMatching = () => bulk('delete', [...ENDED], async (wanted) => {
    const deleted = await api('POST', 'v1/tasks:delete', matchingBody(wanted));
    return `${deleted.deleted || 0} deleted`;
  });

  load();
  return () => { clearTimeout(timer); clearInterval(ticking); if (stream) stream.abort(); };
}

