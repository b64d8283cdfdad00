// The taskservice dashboard: plain JavaScript over the HTTP/JSON API, no build step.
// This file holds what the pages share (the API calls, the token, event streams, helpers) and the routing by
// `#/...`; each page is a file of its own: overview.js, tasks.js, task.js, submit.js, schedules.js. With tokens on, it asks for one and
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

function headers(token, extra) {
  return { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extra };
}

// One prompt however many calls were refused at once: each waits for the same answer.
let asking = null;
function askToken() {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  asking = asking || new Promise((resolve) => {
    document.getElementById('token-form').onsubmit = () => {
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      asking = null;
      resolve();
    };
    if (!dialog.open) dialog.showModal();
  });
  return asking;
}

async function request(method, path, body, signal) {
  for (;;) {
    const sent = sessionStorage.getItem(TOKEN_KEY);
    const response = await fetch(path, {
      method,
      signal,
      headers: headers(sent, body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      // Only the token this call sent is wrong: one entered while it was on its way is tried, not forgotten.
      if (sessionStorage.getItem(TOKEN_KEY) === sent) {
        sessionStorage.removeItem(TOKEN_KEY);
        await askToken();
      }
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
// One formatter for every time shown: toLocaleString() makes one a call, which costs a page of 100 rows ~0.2 s.
const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });
const when = (t) => (t ? TIME_FORMAT.format(new Date(t)) : '');
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
  view.prepend(el('p', { class: 'error', role: 'alert' }, String(err.message || err)));
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
