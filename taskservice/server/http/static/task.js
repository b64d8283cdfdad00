// A task's page (`#/task/ID`): every field, its parent, children, dependencies and the tasks that wait on it, each
// with its state, elapsed time and an ETA from its progress, its history (as stored, then each change as it comes),
// its log following live, and Stop, Retry or Delete as its state allows. Loaded before dashboard.js, whose
// helpers it calls.
'use strict';


async function taskPage(taskId) {
  const path = `v1/tasks/${encodeURIComponent(taskId)}`;
  const streams = new AbortController();
  const details = el('dl');
  const progress = el('progress', { max: 100, value: 0, 'data-task-id': taskId });
  const log = el('pre', { id: 'log' });
  const history = el('ol', { id: 'history', class: 'history' });
  const timing = el('dd', { id: 'timing' });
  const needs = el('ul', { id: 'after' });
  let task;
  const taskLink = (id) => el('a', { href: `#/task/${encodeURIComponent(id)}` }, id);

  // The tasks a ListTasks filter relates to this one (its children, those that run after it), with their states.
  function related(title, filter, id, note) {
    const heading = el('h3', { hidden: true }, title);
    const list = el('ul', { id, hidden: true });
    async function load() {
      const { tasks = [] } = await api('GET', `v1/tasks?${filter}=${encodeURIComponent(taskId)}&pageSize=1000`);
      list.replaceChildren(...tasks.map((t) => el('li', {}, taskLink(t.taskId), ' ', stateCell(t), note(t))));
      list.hidden = tasks.length === 0;
      heading.hidden = tasks.length === 0;
    }
    return { nodes: [heading, list], load: () => load().catch(() => {}) };
  }
  const children = related('Children', 'parentId', 'children', (t) => (t.detached ? ' (detached)' : ''));
  const dependents = related('Tasks that wait on it', 'dependsOn', 'dependents', () => '');

  function render() {
    const labels = Object.entries(task.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    const waiting = task.waitingFor ? [...(task.waitingFor.limitIds || []).map((id) => `limit ${id}`),
      ...(task.waitingFor.taskIds || [])].join(', ') : '';
    const rows = [
      ['Task', task.taskId], ['Type', task.taskType], ['State', stateCell(task)], ['Progress', progress],
      ['Message', (task.progress && task.progress.message) || ''], ['Elapsed', timing], ['Attempt', task.attempt],
      ['Submitted', when(task.submittedAt)], ['Started', when(task.startedAt)], ['Ended', when(task.endedAt)],
      ['Priority', String(task.priority || 0)], ['Time limit', task.timeLimit || 'the server default'],
      ['Args', el('code', {}, JSON.stringify(task.args || {}))],
    ];
    if (labels) rows.splice(2, 0, ['Labels', labels]);
    if (task.scheduledAt) rows.splice(2, 0, ['Scheduled for', when(task.scheduledAt)]);
    if (waiting) rows.splice(2, 0, ['Waiting for', waiting]);
    if ((task.after || []).length) rows.splice(2, 0, ['After', needs]);
    if (task.parentId) rows.splice(2, 0, ['Parent', taskLink(task.parentId)]);
    if (task.result !== undefined && task.result !== null) rows.push(['Result', el('code', {}, JSON.stringify(task.result))]);
    if (task.error) rows.push(['Error', el('span', { class: 'error' }, `${task.error.type}: ${task.error.message}`)]);
    details.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    if (task.error && task.error.traceback) details.append(el('dt', {}, 'Traceback'), el('dd', {}, el('pre', {}, task.error.traceback)));
    progress.value = (task.progress && task.progress.percent) || 0;
    tick();
    // Only the actions the task's state allows: Stop while unfinished; Retry and Delete once ended.
    const state = shortState(task.state);
    stop.hidden = ENDED.has(state);
    retry.hidden = !RETRYABLE.has(state);
    remove.hidden = !ENDED.has(state);
  }

  // How long it has run, and when it should end at the pace its progress shows.
  function tick() {
    if (!task.startedAt) {
      timing.textContent = 'not started';
      return;
    }
    const end = task.endedAt ? new Date(task.endedAt) : new Date();
    const seconds = (end - new Date(task.startedAt)) / 1000;
    const percent = (task.progress && task.progress.percent) || 0;
    const left = !task.endedAt && percent > 0 && percent < 100 ? seconds * (100 - percent) / percent : null;
    timing.textContent = durationText(seconds) + (left === null ? '' : `, about ${durationText(left)} to go`);
  }

  // The task's life as stored (GetTaskHistory), then each state change and a sample of progress as they come.
  let lastState = '';
  let lastSample = 0;
  function remember(at, text) {
    history.append(el('li', {}, el('span', { class: 'muted' }, when(at)), ' ', el('span', { class: 'what' }, text)));
  }
  const changeText = (state, attempt) => {
    if (state === 'PENDING') return attempt ? 'PENDING again' : 'submitted';
    if (state === 'RUNNING') return `started, attempt ${attempt}`;
    return ENDED.has(state) ? `ended ${state}` : state;
  };
  const sampleText = (p) => `${Math.round(p.percent || 0)}%${p.message ? ` ${p.message}` : ''}`;
  async function startHistory() {
    const { entries = [] } = await api('GET', `${path}/history`).catch(() => ({}));
    for (const e of entries) remember(e.time, e.progress ? sampleText(e.progress) : changeText(shortState(e.state), e.attempt || 0));
    const changes = entries.filter((e) => !e.progress);
    lastState = shortState(changes.length ? changes[changes.length - 1].state : task.state);
  }
  function record(event) {
    const state = shortState(event.state);
    if (event.task && state !== lastState) {
      lastState = state;
      remember(event.time, changeText(state, event.task.attempt || 0));
    } else if (!event.task && Date.now() - lastSample >= 2000) {
      lastSample = Date.now();
      remember(event.time, sampleText(event.progress || {}));
    }
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
  view.replaceChildren(el('p', {}, el('a', { href: '#/tasks' }, '← Tasks')), el('h2', {}, taskId),
    el('div', { class: 'actions' }, stop, retry, remove), details, ...children.nodes, ...dependents.nodes,
    el('h3', {}, 'History'), history, el('h3', {}, 'Log'), log);
  render();
  await startHistory(); // before the stream: its first event is the state the history ends with
  children.load();
  dependents.load();
  Promise.all((task.after || []).map((id) => api('GET', `v1/tasks/${encodeURIComponent(id)}`).then((r) => r.task,
    () => null))).then((found) => needs.replaceChildren(...(task.after || []).map((id, i) => el('li', {}, taskLink(id),
    ' ', found[i] ? stateCell(found[i]) : el('span', { class: 'muted' }, '(deleted)')))));
  const ticking = setInterval(tick, 1000);
  follow(`${path}/events`, (event) => {
    record(event);
    if (event.task) {
      task = event.task;
      children.load(); // a state change: its children may have come or moved, and those that wait on it
      dependents.load();
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
  return () => { clearInterval(ticking); streams.abort(); };
}
