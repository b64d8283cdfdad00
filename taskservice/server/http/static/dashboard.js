// The taskservice dashboard: plain JavaScript over the HTTP/JSON API, no build step.
// An overview (overview.js), tasks (filters kept in the URL, server-side pages, live progress, Stop, stop every
// match), a task's page (args, result, error, parent and children, its log following live), and a form to submit
// any registered task type. With tokens on, it asks for one and
// keeps it in sessionStorage: for this tab only, sent as the Authorization header, never as a cookie.
'use strict';

const TOKEN_KEY = 'taskservice.token';
const PAGE_SIZE = 100;
const REFRESH_MS = 3000;
const LOG_TAIL_CHARS = 64 * 1024;
const ENDED = new Set(['SUCCESS', 'FAILURE', 'REVOKED', 'TIMED_OUT', 'LOST']);
const RETRYABLE = new Set(['FAILURE', 'REVOKED', 'TIMED_OUT', 'LOST']);
const view = document.getElementById('view');
let leave = () => {}; // undoes what the current page started (timers, streams)

// ---------------------------------------------------------------------------------------------- the API

function headers(extra) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extra };
}

function askToken() {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  return new Promise((resolve) => {
    document.getElementById('token-form').onsubmit = () => {
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      resolve();
    };
    if (!dialog.open) dialog.showModal();
  });
}

async function request(method, path, body, signal) {
  for (;;) {
    const response = await fetch(path, {
      method,
      signal,
      headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      await askToken();
      continue;
    }
    return response;
  }
}

async function api(method, path, body) {
  const response = await request(method, path, body);
  const data = await response.json();
  if (!response.ok) throw new Error(data.message || `${response.status}`);
  return data;
}

// Server-Sent Events read through fetch (EventSource cannot send the Authorization header).
async function follow(path, onEvent, signal) {
  const response = await request('GET', path, undefined, signal);
  if (!response.ok) return;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data) onEvent(JSON.parse(data));
    }
  }
}

// ---------------------------------------------------------------------------------------------- helpers

const shortState = (s) => String(s || '').replace('TASK_STATE_', '');
const when = (t) => (t ? new Date(t).toLocaleString() : '');
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
function stateCell(task) {
  const state = shortState(task.state);
  return el('span', { class: `state ${state}`, 'data-state': state, 'data-task-id': task.taskId }, state);
}
function bar(task) {
  return el('progress', { max: 100, value: (task.progress && task.progress.percent) || 0, 'data-task-id': task.taskId });
}
function showError(err) {
  view.prepend(el('p', { class: 'error' }, String(err.message || err)));
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
  return { state: q.get('states') || '', type: q.get('taskType') || '',
    label: label ? `${label.slice(7, -1)}=${q.get(label)}` : '' };
}

async function tasksPage(query) {
  const filters = filtersFromHash(query);
  const tokens = [''];
  let stream = null;
  let followed = '';
  let timer = null;
  const types = await api('GET', '/v1/taskTypes').catch(() => ({ taskTypes: [] }));
  const stateSelect = el('select', { name: 'state' }, el('option', { value: '' }, 'any state'),
    ['PENDING', 'RUNNING', 'STOPPING', ...ENDED].map((s) => el('option', { value: s }, s)));
  const typeSelect = el('select', { name: 'type' }, el('option', { value: '' }, 'any type'),
    types.taskTypes.map((t) => el('option', { value: t.name }, t.name)));
  const labelInput = el('input', { name: 'label', placeholder: 'key=value' });
  const body = el('tbody');
  const pager = el('div', { class: 'pager' });
  const summary = el('span', { class: 'muted' });
  const form = el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
    el('label', {}, 'State', stateSelect), el('label', {}, 'Type', typeSelect), el('label', {}, 'Label', labelInput),
    el('button', { type: 'submit' }, 'Filter'),
    el('button', { type: 'button', class: 'danger', id: 'stop-matching', onclick: () => stopMatching().catch(showError) },
      'Stop all matching'),
    summary);
  const wide = new Set(['Submitted', 'Labels']); // left out on a phone
  view.replaceChildren(form, el('div', { class: 'scroll' }, el('table', { id: 'tasks' }, el('thead', {}, el('tr', {},
    ['Task', 'Type', 'State', 'Progress', 'Submitted', 'Labels', ''].map((h) => el('th', { class: wide.has(h) ? 'wide' : undefined }, h)))), body)), pager);

  stateSelect.value = filters.state;
  typeSelect.value = filters.type;
  labelInput.value = filters.label;

  function apply() {
    Object.assign(filters, { state: stateSelect.value, type: typeSelect.value, label: labelInput.value.trim() });
    history.replaceState(null, '', `#/tasks?${filtersQuery(filters)}`);
    tokens.length = 1;
    load();
  }

  async function load() {
    const q = filtersQuery(filters);
    q.set('pageSize', PAGE_SIZE);
    q.set('pageToken', tokens[tokens.length - 1]);
    let page;
    try {
      page = await api('GET', `/v1/tasks?${q}`);
    } catch (err) {
      showError(err);
      return;
    }
    body.replaceChildren(...page.tasks.map((t) => el('tr', {},
      el('td', { class: 'id' }, el('a', { href: `#/task/${encodeURIComponent(t.taskId)}` }, t.taskId)),
      el('td', {}, t.taskType), el('td', {}, stateCell(t)), el('td', {}, bar(t)),
      el('td', { class: 'wide' }, when(t.submittedAt)),
      el('td', { class: 'wide' }, Object.entries(t.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')),
      el('td', {}, ENDED.has(shortState(t.state)) ? '' : el('button', { class: 'danger', 'data-stop': t.taskId,
        onclick: () => api('POST', `/v1/tasks/${encodeURIComponent(t.taskId)}:stop`, {}).then(load, showError) }, 'Stop')))));
    pager.replaceChildren(
      el('button', { disabled: tokens.length === 1, onclick: () => { tokens.pop(); load(); } }, '← Newer'),
      el('button', { disabled: !page.nextPageToken, onclick: () => { tokens.push(page.nextPageToken); load(); } }, 'Older →'));
    watch(page.tasks.filter((t) => !ENDED.has(shortState(t.state))).map((t) => t.taskId));
    clearTimeout(timer);
    timer = setTimeout(load, REFRESH_MS);
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
    follow(`/v1/events?ignoreMissing=true&taskIds=${ids.map(encodeURIComponent).join(',')}`, (event) => {
      for (const node of body.querySelectorAll(`[data-task-id="${CSS.escape(event.taskId)}"]`)) {
        if (node.tagName === 'PROGRESS') node.value = (event.progress && event.progress.percent) || 0;
        else if (event.task) node.replaceWith(stateCell(event.task));
      }
    }, stream.signal).catch(() => {});
  }

  async function stopMatching() {
    const q = filtersQuery(filters);
    const wanted = filters.state ? [filters.state] : ['PENDING', 'RUNNING'];
    if (!wanted.every((s) => s === 'PENDING' || s === 'RUNNING')) {
      summary.textContent = 'only PENDING or RUNNING tasks can be stopped';
      return;
    }
    q.delete('states');
    wanted.forEach((s) => q.append('states', s));
    q.set('pageSize', 1000);
    let count = 0;
    let token = '';
    do {
      q.set('pageToken', token);
      const page = await api('GET', `/v1/tasks?${q}`);
      count += page.tasks.length;
      token = page.nextPageToken;
    } while (token);
    if (!count) {
      summary.textContent = 'no unfinished task matches';
      return;
    }
    if (!window.confirm(`Stop ${count} task${count === 1 ? '' : 's'}?`)) return;
    const [k, v] = (filters.label || '').split('=');
    const stopped = await api('POST', '/v1/tasks:stop', {
      states: wanted.map((s) => `TASK_STATE_${s}`), taskType: filters.type, labels: k && v !== undefined ? { [k]: v } : {},
      all: !filters.type && !filters.label && !filters.state, reason: 'stopped from the dashboard',
    });
    summary.textContent = `${stopped.revoked} revoked, ${stopped.stopping} asked to stop`;
    load();
  }

  load();
  return () => { clearTimeout(timer); if (stream) stream.abort(); };
}

// ---------------------------------------------------------------------------------------------- one task

async function taskPage(taskId) {
  const path = `/v1/tasks/${encodeURIComponent(taskId)}`;
  const streams = new AbortController();
  const details = el('dl');
  const progress = el('progress', { max: 100, value: 0, 'data-task-id': taskId });
  const log = el('pre', { id: 'log' });
  const children = el('ul', { id: 'children' });
  let task;

  const childrenTitle = el('h3', {}, 'Children');
  const taskLink = (id) => el('a', { href: `#/task/${encodeURIComponent(id)}` }, id);

  async function loadChildren() {
    const { tasks = [] } = await api('GET', `/v1/tasks?parent_id=${encodeURIComponent(taskId)}&page_size=1000`);
    children.replaceChildren(...tasks.map((child) => el('li', {}, taskLink(child.taskId), ' ', stateCell(child),
      child.detached ? ' (detached)' : '')));
    children.hidden = tasks.length === 0;
    childrenTitle.hidden = tasks.length === 0;
  }

  function render() {
    const rows = [
      ['Task', task.taskId], ['Type', task.taskType], ['State', stateCell(task)], ['Progress', progress],
      ['Message', (task.progress && task.progress.message) || ''], ['Attempt', task.attempt],
      ['Submitted', when(task.submittedAt)], ['Started', when(task.startedAt)], ['Ended', when(task.endedAt)],
      ['Args', el('code', {}, JSON.stringify(task.args || {}))],
    ];
    if (task.parentId) rows.splice(2, 0, ['Parent', taskLink(task.parentId)]);
    if (task.result !== undefined && task.result !== null) rows.push(['Result', el('code', {}, JSON.stringify(task.result))]);
    if (task.error) rows.push(['Error', el('span', { class: 'error' }, `${task.error.type}: ${task.error.message}`)]);
    details.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    if (task.error && task.error.traceback) details.append(el('dt', {}, 'Traceback'), el('dd', {}, el('pre', {}, task.error.traceback)));
    progress.value = (task.progress && task.progress.percent) || 0;
    // Only the actions the task's state allows: Stop while unfinished; Retry and Delete once ended.
    const state = shortState(task.state);
    stop.hidden = ENDED.has(state);
    retry.hidden = !RETRYABLE.has(state);
    remove.hidden = !ENDED.has(state);
  }

  const act = (verb, method = 'POST') => api(method, verb ? `${path}:${verb}` : path, method === 'POST' ? {} : undefined);
  const stop = el('button', { class: 'danger', id: 'stop', onclick: () => act('stop').catch(showError) }, 'Stop');
  const retry = el('button', { id: 'retry', onclick: () => act('retry').then((r) => { task = r.task; render(); },
    showError) }, 'Retry');
  const remove = el('button', { class: 'danger', id: 'delete', onclick: () => {
    if (window.confirm(`Delete task ${taskId} and its log?`)) act('', 'DELETE').then(() => { location.hash = '#/tasks'; }, showError);
  } }, 'Delete');

  try {
    task = (await api('GET', path)).task;
  } catch (err) {
    view.replaceChildren(el('p', { class: 'error' }, String(err.message)));
    return () => {};
  }
  view.replaceChildren(el('h2', {}, taskId), el('div', { class: 'actions' }, stop, retry, remove), details, childrenTitle, children, el('h3', {}, 'Log'), log);
  render();
  loadChildren().catch(() => {});
  follow(`${path}/events`, (event) => {
    if (event.task) {
      task = event.task;
      loadChildren().catch(() => {});  // a state change: its children may have come or moved
    } else task.progress = event.progress;
    render();
  }, streams.signal).catch(() => {});
  (async () => {
    const response = await request('GET', `${path}/logs?follow=true`, undefined, streams.signal);
    if (!response.ok) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      log.textContent = (log.textContent + decoder.decode(value, { stream: true })).slice(-LOG_TAIL_CHARS);
      log.scrollTop = log.scrollHeight;
    }
  })().catch(() => {});
  return () => streams.abort();
}

// ---------------------------------------------------------------------------------------------- submit

async function submitPage() {
  const { taskTypes } = await api('GET', '/v1/taskTypes');
  const typeSelect = el('select', { name: 'taskType', id: 'task-type' }, taskTypes.map((t) => el('option', { value: t.name }, t.name)));
  const fields = el('div', { class: 'args' });
  const note = el('p', { class: 'muted' });
  const form = el('form', { class: 'submit', onsubmit: submit }, el('label', {}, 'Task type', typeSelect), fields,
    el('label', {}, 'Labels (k=v, comma-separated)', el('input', { name: 'labels' })),
    el('button', { type: 'submit', class: 'primary' }, 'Submit'));
  view.replaceChildren(el('h2', {}, 'Submit a task'), note, form);

  function shape() {
    const type = taskTypes.find((t) => t.name === typeSelect.value);
    const nodes = type && type.nodes.length ? `Claimed by ${type.nodes.length === 1 ? 'server' : `${type.nodes.length} servers`}: ${type.nodes.map((n) => n.node).join(', ')}.` : '';
    note.textContent = [(type && type.description) || '', nodes].filter(Boolean).join(' ');
    fields.replaceChildren(...(type ? type.args : []).map((arg) => {
      const name = `arg:${arg.name}`;
      const input = arg.choices.length
        ? el('select', { name }, (arg.required ? [] : [el('option', { value: '' }, '')]).concat(
          arg.choices.map((c) => el('option', { value: JSON.stringify(c) }, String(c)))))
        : arg.kind === 'boolean'
          ? el('select', { name }, el('option', { value: '' }, ''), el('option', { value: 'true' }, 'true'), el('option', { value: 'false' }, 'false'))
          : el('input', { name, required: arg.required, placeholder: arg.rule || arg.pathRole || arg.kind });
      return el('label', {}, `${arg.name}${arg.required ? ' *' : ''} (${arg.pathRole || arg.kind})`, input);
    }));
  }

  async function submit(e) {
    e.preventDefault();
    const type = taskTypes.find((t) => t.name === typeSelect.value);
    const data = new FormData(form);
    const args = {};
    for (const arg of type.args) {
      const raw = data.get(`arg:${arg.name}`);
      if (raw === null || raw === '') continue;
      args[arg.name] = arg.kind === 'string' && !arg.choices.length ? raw : parseValue(raw);
    }
    const labels = Object.fromEntries(String(data.get('labels') || '').split(',').map((p) => p.trim()).filter(Boolean).map((p) => p.split('=')));
    try {
      const { task } = await api('POST', '/v1/tasks', { taskType: type.name, args, labels });
      location.hash = `#/task/${encodeURIComponent(task.taskId)}`;
    } catch (err) {
      showError(err);
    }
  }

  typeSelect.addEventListener('change', shape);
  shape();
  return () => {};
}

function parseValue(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

// ---------------------------------------------------------------------------------------------- routing

async function route() {
  leave();
  leave = () => {};
  const hash = location.hash || '#/';
  try {
    if (hash.startsWith('#/task/')) leave = await taskPage(decodeURIComponent(hash.slice(7)));
    else if (hash === '#/submit') leave = await submitPage();
    else if (hash === '#/tasks' || hash.startsWith('#/tasks?')) leave = await tasksPage(hash.slice(8));
    else leave = await overviewPage();
  } catch (err) {
    showError(err);
  }
}

window.addEventListener('hashchange', route);
route();
