// The dashboard's schedules (`#/schedules`): each with its next and last firing, the last task and its state, the
// last error, Pause/Resume and Delete; a form that creates one (a cron expression in a time zone, or an interval)
// showing its next five firings before it is saved (CreateSchedule with validate_only); and a schedule's page with
// the tasks it fired (they carry the label schedule=<id>). Loaded before dashboard.js, whose helpers it calls.
'use strict';

const scheduleLink = (id) => el('a', { href: `#/schedule/${encodeURIComponent(id)}` }, id);
const whenOf = (s) => (s.cron ? `cron ${s.cron.expression} (${s.cron.timeZone || 'UTC'})` : `every ${s.interval}`);

async function lastTaskCell(s) {
  if (!s.lastTaskId) return el('span', { class: 'muted' }, 'none yet');
  const found = await api('GET', `v1/tasks/${encodeURIComponent(s.lastTaskId)}`).catch(() => null);
  return el('span', {}, el('a', { href: `#/task/${encodeURIComponent(s.lastTaskId)}` }, s.lastTaskId), ' ',
    found ? stateCell(found.task) : el('span', { class: 'muted' }, '(deleted)'));
}

function scheduleActions(s, then) {
  const path = `v1/schedules/${encodeURIComponent(s.scheduleId)}`;
  const toggle = el('button', { 'data-toggle': s.scheduleId,
    onclick: () => api('POST', `${path}:${s.paused ? 'resume' : 'pause'}`, {}).then(then, showError) },
  s.paused ? 'Resume' : 'Pause');
  const remove = el('button', { class: 'danger', 'data-delete': s.scheduleId, onclick: () => {
    if (window.confirm(`Delete schedule ${s.scheduleId}? The tasks it fired stay.`)) {
      api('DELETE', path).then(then, showError);
    }
  } }, 'Delete');
  return el('span', { class: 'actions' }, toggle, remove);
}

async function schedulesPage() {
  const body = el('tbody');
  const { taskTypes = [] } = await api('GET', 'v1/taskTypes').catch(() => ({ taskTypes: [] }));
  view.replaceChildren(el('h2', {}, 'Schedules'), el('div', { class: 'scroll' }, el('table', { id: 'schedules' },
    el('thead', {}, el('tr', {}, ['Schedule', 'Task type', 'When', 'Next', 'Last', 'Last task', ''].map((h) => el('th', {}, h)))),
    body)), el('h3', {}, 'New schedule'), scheduleForm(taskTypes, () => load()));

  async function load() {
    const schedules = [];
    let token = '';
    do {
      const page = await api('GET', `v1/schedules?pageSize=1000&pageToken=${encodeURIComponent(token)}`);
      schedules.push(...(page.schedules || []));
      token = page.nextPageToken || '';
    } while (token);
    const rows = await Promise.all(schedules.map(async (s) => el('tr', { 'data-schedule': s.scheduleId },
      el('td', { class: 'id' }, scheduleLink(s.scheduleId)), el('td', {}, s.task.taskType), el('td', {}, whenOf(s)),
      el('td', {}, s.paused ? el('span', { class: 'muted' }, 'paused') : when(s.nextDue)),
      el('td', {}, when(s.lastDue), s.lastError ? el('div', { class: 'error small' }, s.lastError) : ''),
      el('td', {}, await lastTaskCell(s)), el('td', {}, scheduleActions(s, load)))));
    body.replaceChildren(...rows);
    if (!rows.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No schedule yet.')));
  }

  await load().catch(showError);
  return () => {};
}

function scheduleForm(taskTypes, created) {
  const upcoming = el('ol', { id: 'upcoming', class: 'muted' });
  const form = el('form', { class: 'submit', id: 'schedule-form' },
    el('fieldset', {}, el('legend', {}, 'What'),
      field('Schedule id', el('input', { name: 'schedule.schedule_id', required: true, placeholder: 'nightly-report' })),
      field('Task type', el('select', { name: 'schedule.task.task_type' }, taskTypes.map((t) => el('option', { value: t.name }, t.name)))),
      field('Args (JSON)', el('textarea', { name: 'schedule.task.args', rows: 2, placeholder: '{}' }))),
    el('fieldset', {}, el('legend', {}, 'When'),
      field('Cron', el('input', { name: 'schedule.cron.expression', placeholder: '0 3 * * *' }), 'or an interval'),
      field('Time zone', el('input', { name: 'schedule.cron.time_zone', placeholder: 'UTC' })),
      field('Interval (s)', el('input', { name: 'schedule.interval', type: 'number', min: '1', step: 'any' })),
      field('Missed firings', el('select', { name: 'schedule.catch_up' }, ['ONCE', 'SKIP', 'ALL'].map((c) => el('option', { value: c }, c))))),
    el('div', { class: 'actions' }, el('button', { type: 'button', id: 'check-schedule', onclick: () => send(true) }, 'Show next firings'),
      el('button', { type: 'submit', class: 'primary' }, 'Create')),
    upcoming);
  form.onsubmit = (e) => { e.preventDefault(); send(false); };

  function definition() {
    const data = new FormData(form);
    const text = (name) => String(data.get(name) || '').trim();
    let args = {};
    if (text('schedule.task.args')) args = parseValue(text('schedule.task.args'));
    const schedule = { scheduleId: text('schedule.schedule_id'), catchUp: `CATCH_UP_${text('schedule.catch_up')}`,
      task: { taskType: text('schedule.task.task_type'), args } };
    if (text('schedule.interval')) schedule.interval = `${Number(text('schedule.interval'))}s`;
    else schedule.cron = { expression: text('schedule.cron.expression'), timeZone: text('schedule.cron.time_zone') };
    return schedule;
  }

  async function send(validateOnly) {
    clearViolations(form);
    try {
      // The body is the schedule (the route's body field); validate_only goes in the query.
      const { schedule } = await api('POST', `v1/schedules${validateOnly ? '?validateOnly=true' : ''}`, definition());
      upcoming.replaceChildren(...(schedule.upcoming || []).map((due) => el('li', {}, when(due))));
      if (!validateOnly) {
        form.reset();
        upcoming.replaceChildren();
        created();
      }
    } catch (err) {
      showViolations(form, err);
    }
  }
  return form;
}

async function schedulePage(scheduleId) {
  const path = `v1/schedules/${encodeURIComponent(scheduleId)}`;
  let schedule;
  try {
    schedule = (await api('GET', path)).schedule;
  } catch (err) {
    view.replaceChildren(el('p', { class: 'error' }, String(err.message)));
    return () => {};
  }
  const fired = await api('GET', `v1/tasks?labels[schedule]=${encodeURIComponent(scheduleId)}&pageSize=100`);
  const rows = [['Schedule', scheduleId], ['Task type', schedule.task.taskType],
    ['Args', el('code', {}, JSON.stringify(schedule.task.args || {}))], ['When', whenOf(schedule)],
    ['Paused', schedule.paused ? 'yes' : 'no'], ['Next firings', el('ol', {}, (schedule.upcoming || []).map((d) => el('li', {}, when(d))))],
    ['Last firing', when(schedule.lastDue)], ['Last error', schedule.lastError || '']];
  view.replaceChildren(el('p', {}, el('a', { href: '#/schedules' }, '← Schedules')), el('h2', {}, scheduleId),
    scheduleActions(schedule, () => route()),
    el('dl', {}, rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    el('h3', {}, 'Tasks it fired (newest first)'),
    el('ul', { id: 'fired' }, (fired.tasks || []).map((t) => el('li', {}, el('a', { href: `#/task/${encodeURIComponent(t.taskId)}` }, t.taskId),
      ' ', stateCell(t)))));
  return () => {};
}
