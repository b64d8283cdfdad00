// The taskservice dashboard: plain JavaScript over the HTTP/JSON API, no build step.
// An overview (overview.js), tasks (tasks.js: filters kept in the URL, server-side pages, live progress, Stop, stop
// every match), a task's page (args, result, error, parent and children, its log following live), and a form to submit
// any registered task type. With tokens on, it asks for one and
// keeps it in sessionStorage: for this tab only, sent as the Authorization header, never as a cookie.
'use strict';

const TOKEN_KEY = 'taskservice.token';
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
  if (!response.ok) {
    const err = new Error(data.message || `${response.status}`);
    // The fields a refusal names (google.rpc.BadRequest), for a form to show each by its input.
    err.violations = (data.details || []).flatMap((d) => d.fieldViolations || []);
    throw err;
  }
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
// ---------------------------------------------------------------------------------------------- one task

async function taskPage(taskId) {
  const path = `v1/tasks/${encodeURIComponent(taskId)}`;
  const streams = new AbortController();
  const details = el('dl');
  const progress = el('progress', { max: 100, value: 0, 'data-task-id': taskId });
  const log = el('pre', { id: 'log' });
  const children = el('ul', { id: 'children' });
  let task;

  const childrenTitle = el('h3', {}, 'Children');
  const taskLink = (id) => el('a', { href: `#/task/${encodeURIComponent(id)}` }, id);

  async function loadChildren() {
    const { tasks = [] } = await api('GET', `v1/tasks?parent_id=${encodeURIComponent(taskId)}&page_size=1000`);
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

// ---------------------------------------------------------------------------------------------- routing

async function route() {
  leave();
  leave = () => {};
  const hash = location.hash || '#/';
  try {
    if (hash.startsWith('#/task/')) leave = await taskPage(decodeURIComponent(hash.slice(7)));
    else if (hash === '#/submit') leave = await submitPage();
    else if (hash === '#/schedules') leave = await schedulesPage();
    else if (hash.startsWith('#/schedule/')) leave = await schedulePage(decodeURIComponent(hash.slice(11)));
    else if (hash === '#/tasks' || hash.startsWith('#/tasks?')) leave = await tasksPage(hash.slice(8));
    else leave = await overviewPage();
  } catch (err) {
    showError(err);
  }
}

window.addEventListener('hashchange', route);
route();
