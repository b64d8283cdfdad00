// The tasks list of the dashboard (`#/tasks?...`): filters kept in the URL, pages of a chosen size, the columns an
// operator reads (started, ended, duration, live while running, attempt, the error of a failure), times in the
// browser's zone with the zone named and how long ago on hover, progress moving live, and Stop or Retry where
// they apply. Loaded before dashboard.js, whose helpers (api, el, follow...) it calls.
'use strict';

const PAGE_SIZES = [25, 100, 500, 1000];
// The least height a row of the list takes (a line of 14 px text at 1.45 and the cells' padding, 30 px on a
// phone): how many rows a screen can hold at most.
const MIN_ROW_PX = 30;
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

// The orders a list can take (ListTasks' order_by), as the sort menu names them; the first is the default.
const ORDERS = [['submitted_at desc', 'Newest first'], ['submitted_at asc', 'Oldest first'],
  ['started_at desc', 'Started last first'], ['ended_at desc', 'Ended last first'],
  ['duration desc', 'Longest first'], ['duration asc', 'Shortest first']];
const SORTED_COLUMN = { submitted_at: 'Submitted', started_at: 'Started', ended_at: 'Ended', duration: 'Duration' };

// "team=data, env=prod" as {team: 'data', env: 'prod'} (a pair without "=" is left out).
function parseLabels(text) {
  return Object.fromEntries(String(text || '').split(',').map((pair) => pair.split('='))
    .filter(([k, v]) => k.trim() && v !== undefined).map(([k, v]) => [k.trim(), v.trim()]));
}
const labelsText = (labels) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(', ');
// A datetime-local value (the reader's clock) as an RFC 3339 time, and back.
const toInstant = (local) => (local ? new Date(local).toISOString() : '');
function toLocal(instant) {
  if (!instant) return '';
  const at = new Date(instant);
  return Number.isNaN(at.getTime()) ? '' : new Date(at - at.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

// The query ListTasks takes for these filters (page size and token aside).
function filtersQuery(f) {
  const q = new URLSearchParams();
  f.states.forEach((s) => q.append('states', s));
  if (f.type) q.set('taskType', f.type);
  for (const [k, v] of Object.entries(f.labels)) q.set(`labels[${k}]`, v);
  if (f.search) q.set('search', f.search);
  if (f.after) q.set('submittedAfter', f.after);
  if (f.before) q.set('submittedBefore', f.before);
  if (f.order !== ORDERS[0][0]) q.set('orderBy', f.order);
  return q;
}

// ---------------------------------------------------------------------------------------------- tasks

// The filters of `#/tasks?states=FAILURE&states=LOST&labels[team]=data&search=img-&orderBy=duration+desc`: a
// reload or a shared link keeps them.
function filtersFromHash(query) {
  const q = new URLSearchParams(query);
  const labels = Object.fromEntries([...q.keys()].filter((k) => k.startsWith('labels[') && k.endsWith(']'))
    .map((k) => [k.slice(7, -1), q.get(k)]));
  const size = Number(q.get('pageSize'));
  const order = q.get('orderBy') || ORDERS[0][0];
  return { states: q.getAll('states').flatMap((s) => s.split(',')).map(shortState).filter(Boolean),
    type: q.get('taskType') || '', labels, search: q.get('search') || '', after: q.get('submittedAfter') || '',
    before: q.get('submittedBefore') || '', order: ORDERS.some(([o]) => o === order) ? order : ORDERS[0][0],
    size: PAGE_SIZES.includes(size) ? size : 100 };
}

// Several states at once: a checkbox each, folded under a summary that names the chosen ones.
function statesPicker(chosen) {
  const summary = el('summary', {});
  const boxes = ['PENDING', 'RUNNING', 'STOPPING', ...ENDED].map((s) => el('label', { class: 'check' },
    el('input', { type: 'checkbox', name: 'state', value: s, checked: chosen.includes(s) }), s));
  const picker = el('details', { class: 'states' }, summary, el('div', { class: 'menu' }, boxes));
  const values = () => boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.value);
  const name = () => { summary.textContent = values().join(', ') || 'any state'; };
  picker.addEventListener('change', name);
  name();
  return { picker, values };
}

async function tasksPage(query) {
  const filters = filtersFromHash(query);
  const tokens = [''];
  let stream = null;
  let followed = '';
  let rows = new Map(); // task id -> its row on the page
  let timer = null;
  let drawn = 0; // loads drawn so far: the rest of a page's rows go in only if no later load drew since
  const states = statesPicker(filters.states);
  const typeSelect = el('select', { name: 'type' }, el('option', { value: '' }, 'any type'),
    filters.type ? el('option', { value: filters.type }, filters.type) : []);
  // The types come beside the first page, not before it.
  api('GET', 'v1/taskTypes').then(({ taskTypes = [] }) => typeSelect.append(...taskTypes
    .filter((t) => t.name !== filters.type).map((t) => el('option', { value: t.name }, t.name))), () => {});
  const searchInput = el('input', { name: 'search', type: 'search', placeholder: 'id prefix or error text',
    value: filters.search });
  const labelInput = el('input', { name: 'label', placeholder: 'key=value, …', value: labelsText(filters.labels) });
  const afterInput = el('input', { name: 'after', type: 'datetime-local', value: toLocal(filters.after) });
  const beforeInput = el('input', { name: 'before', type: 'datetime-local', value: toLocal(filters.before) });
  const orderSelect = el('select', { name: 'order' }, ORDERS.map(([o, text]) => el('option', { value: o }, text)));
  const sizeSelect = el('select', { name: 'size' }, PAGE_SIZES.map((n) => el('option', { value: n }, `${n} a page`)));
  const body = el('tbody');
  const pager = el('div', { class: 'pager' });
  const summary = el('span', { class: 'muted' });
  const form = el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
    el('label', {}, 'Search', searchInput), el('div', { class: 'field' }, el('span', {}, 'States'), states.picker),
    el('label', {}, 'Type', typeSelect), el('label', {}, 'Labels', labelInput),
    el('label', {}, 'Submitted from', afterInput), el('label', {}, 'until', beforeInput),
    el('label', {}, 'Sort', orderSelect), el('label', {}, 'Show', sizeSelect),
    el('button', { type: 'submit' }, 'Filter'),
    el('button', { type: 'button', class: 'danger', id: 'stop-matching', onclick: () => stopMatching().catch(showError) },
      'Stop all matching'),
    el('button', { type: 'button', id: 'retry-matching', onclick: () => retryMatching().catch(showError) },
      'Retry all matching'),
    el('button', { type: 'button', class: 'danger', id: 'delete-matching', onclick: () => deleteMatching().catch(showError) },
      'Delete all matching'),
    summary);
  const wide = new Set(['Attempt', 'Submitted', 'Started', 'Ended', 'Labels']); // left out on a phone
  // Announced when it changes; the page as a whole is not a live region (a reader would hear every row again at
  // each refresh).
  const total = el('p', { class: 'muted', id: 'total', role: 'status' });
  // The column the list is sorted by says so (aria-sort, and an arrow).
  const [sortKey, direction] = filters.order.split(' ');
  const heading = (h) => el('th', { class: wide.has(h) ? 'wide' : undefined,
    'aria-sort': SORTED_COLUMN[sortKey] === h ? `${direction}ending` : undefined },
  SORTED_COLUMN[sortKey] === h ? `${h} ${direction === 'desc' ? '↓' : '↑'}` : h);
  view.replaceChildren(form, total, el('div', { class: 'scroll' }, el('table', { id: 'tasks' }, el('thead', {}, el('tr', {},
    ['Task', 'Type', 'State', 'Progress', 'Duration', 'Attempt', 'Submitted', 'Started', 'Ended', 'Labels', '']
      .map(heading))), body)), pager);
  const ticking = setInterval(() => {
    for (const cell of body.querySelectorAll('[data-running-since]')) {
      cell.textContent = durationText((Date.now() - Number(cell.dataset.runningSince)) / 1000);
    }
  }, 1000);

  typeSelect.value = filters.type;
  orderSelect.value = filters.order;
  sizeSelect.value = filters.size;
  sizeSelect.onchange = () => apply();
  orderSelect.onchange = () => apply();

  // The form's filters into the URL; a new order draws the page again (its column headings say the order).
  function apply() {
    const order = orderSelect.value;
    Object.assign(filters, { states: states.values(), type: typeSelect.value, labels: parseLabels(labelInput.value),
      search: searchInput.value.trim(), after: toInstant(afterInput.value), before: toInstant(beforeInput.value),
      order, size: Number(sizeSelect.value) });
    const q = filtersQuery(filters);
    if (filters.size !== 100) q.set('pageSize', filters.size);
    const hash = `#/tasks?${q}`;
    if (order !== `${sortKey} ${direction}`) {
      location.hash = hash; // hashchange: the page again, with its headings
      return;
    }
    history.replaceState(null, '', hash);
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
    // Into an empty table, the rows a screen can hold first (made and drawn) and the rest a frame later: making,
    // laying out and painting 100 rows at once for a page's first paint took twice the time of a screenful. A
    // refresh replaces them all at once (the table never shrinks under a reader who scrolled).
    const first = body.children.length ? page.tasks.length
      : Math.max(1, Math.ceil((window.innerHeight - Math.max(0, body.getBoundingClientRect().top)) / MIN_ROW_PX));
    const drawing = ++drawn;
    const shown = page.tasks.slice(0, first).map(taskRow);
    rows = new Map(shown.map((row) => [row.dataset.row, row]));
    body.replaceChildren(...shown);
    const table = body.parentNode;
    table.dataset.shown = tokens.length; // a page is on screen (what the bench waits for)
    delete table.dataset.complete;
    const complete = () => { table.dataset.complete = tokens.length; };
    if (page.tasks.length <= first) complete();
    else {
      // In the frame after the one that shows the screenful (made in that one's work, it would hold it back).
      requestAnimationFrame(() => setTimeout(() => requestAnimationFrame(() => {
        if (drawing !== drawn) return; // a newer load drew the table since
        const rest = page.tasks.slice(first).map(taskRow);
        for (const row of rest) rows.set(row.dataset.row, row);
        body.append(...rest);
        complete();
      })));
    }
    showTotal().catch(() => {});
    pager.replaceChildren(
      el('button', { disabled: tokens.length === 1, onclick: () => { tokens.pop(); load(); } },
        filters.order === ORDERS[0][0] ? '← Newer' : '← Previous'),
      el('button', { disabled: !page.nextPageToken, onclick: () => { tokens.push(page.nextPageToken); load(); } },
        filters.order === ORDERS[0][0] ? 'Older →' : 'Next →'));
    // The stream opens once the page is drawn: its first events would hold back the first paint.
    const unfinished = page.tasks.filter((t) => !ENDED.has(shortState(t.state))).map((t) => t.taskId);
    requestAnimationFrame(() => setTimeout(() => watch(unfinished)));
    clearTimeout(timer);
    timer = setTimeout(load, REFRESH_MS);
  }

  function taskRow(t) {
    return el('tr', { 'data-row': t.taskId },
      el('td', { class: 'id' }, el('a', { href: `#/task/${encodeURIComponent(t.taskId)}` }, t.taskId)),
      el('td', {}, t.taskType), el('td', {}, stateWithError(t)), el('td', {}, bar(t)), durationCell(t),
      el('td', { class: 'wide' }, String(t.attempt || 0)),
      timeCell(t.submittedAt), timeCell(t.startedAt), timeCell(t.endedAt),
      el('td', { class: 'wide' }, Object.entries(t.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')),
      el('td', {}, rowAction(t)));
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

  // How many match, when GetStats can tell (its counts are by state and type only).
  async function showTotal() {
    if (Object.keys(filters.labels).length || filters.search || filters.after || filters.before) {
      total.textContent = '';
      return;
    }
    const stats = await api('GET', 'v1/stats');
    const n = (stats.counts || []).filter((c) => (!filters.states.length || filters.states.includes(shortState(c.state)))
      && (!filters.type || c.taskType === filters.type)).reduce((sum, c) => sum + Number(c.count || 0), 0);
    total.textContent = `${n} task${n === 1 ? '' : 's'} match`;
  }

  // One stream for every unfinished task of the page: its progress bars move as events come, drawn once a frame
  // with each task's latest (100 tasks at 20 Hz are 2,000 events a second; a search of the table for each kept the
  // page too busy to draw).
  function watch(ids) {
    const key = ids.join(',');
    if (key === followed) return;
    followed = key;
    if (stream) stream.abort();
    stream = null;
    if (!ids.length) return;
    stream = new AbortController();
    const latest = new Map(); // task id -> {progress, task}: its newest progress, and its newest state change
    let frame = 0;
    const draw = () => {
      frame = 0;
      for (const [taskId, { progress, task }] of latest) {
        const row = rows.get(taskId);
        if (!row) continue;
        row.querySelector('progress').value = (progress && progress.percent) || 0;
        if (task) row.querySelector('[data-state]').replaceWith(stateCell(task));
      }
      latest.clear();
    };
    follow(`v1/events?ignoreMissing=true&taskIds=${ids.map(encodeURIComponent).join(',')}`, (event) => {
      const known = latest.get(event.taskId);
      latest.set(event.taskId, { progress: event.progress, task: event.task || (known && known.task) });
      if (!frame) frame = requestAnimationFrame(draw);
    }, stream.signal).catch(() => {});
  }

  // The ids of the tasks matching the filters, in these states (of those the filter's states allow).
  async function matching(allowed) {
    const wanted = filters.states.length ? filters.states.filter((s) => allowed.includes(s)) : allowed;
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

  // StopTasks and DeleteTasks filter by states, type and labels; a search or a time range goes task by task.
  const inOneCall = () => !filters.search && !filters.after && !filters.before;
  function matchingBody(wanted) {
    const labels = filters.labels;
    return { states: wanted.map((s) => `TASK_STATE_${s}`), taskType: filters.type, labels,
      all: !filters.type && !Object.keys(labels).length && !filters.states.length };
  }
  // One call per task, a few at a time: how many were done.
  async function eachTask(ids, call) {
    let done = 0;
    for (let i = 0; i < ids.length; i += 20) {
      const settled = await Promise.allSettled(ids.slice(i, i + 20).map(call));
      done += settled.filter((d) => d.status === 'fulfilled').length;
    }
    return done;
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

  const taskPath = (id) => `v1/tasks/${encodeURIComponent(id)}`;
  const stopMatching = () => bulk('stop', ['PENDING', 'RUNNING'], async (wanted, ids) => {
    const reason = 'stopped from the dashboard';
    if (!inOneCall()) return `${await eachTask(ids, (id) => api('POST', `${taskPath(id)}:stop`, { reason }))} stopped`;
    const stopped = await api('POST', 'v1/tasks:stop', { ...matchingBody(wanted), reason });
    return `${stopped.revoked || 0} revoked, ${stopped.stopping || 0} asked to stop`;
  });
  const retryMatching = () => bulk('retry', [...RETRYABLE], async (wanted, ids) => {
    const reason = 'retried from the dashboard';
    return `${await eachTask(ids, (id) => api('POST', `${taskPath(id)}:retry`, { reason }))} retried`;
  });
  const deleteMatching = () => bulk('delete', [...ENDED], async (wanted, ids) => {
    if (!inOneCall()) return `${await eachTask(ids, (id) => api('DELETE', taskPath(id)))} deleted`;
    const deleted = await api('POST', 'v1/tasks:delete', matchingBody(wanted));
    return `${deleted.deleted || 0} deleted`;
  });

  load();
  return () => { clearTimeout(timer); clearInterval(ticking); if (stream) stream.abort(); };
}

