// The dashboard's submit form (`#/submit`), built from ListTaskTypes: an input per arg fitting its kind (a number, a
// choice, true/false, a path under the data root, JSON for lists and objects) with its default shown, the common
// Submit options (id, labels, priority, time limit, delay, after), and a refusal's message by the field it names.
// Loaded before dashboard.js, whose helpers (api, el, showError) it calls.
'use strict';

// A description's `code` spans as code, the rest as text (descriptions come from handlers' docstrings).
function describe(text) {
  return String(text || '').split('`').map((part, i) => (i % 2 ? el('code', {}, part) : part));
}

function argInput(arg) {
  const name = `arg:${arg.name}`;
  const shown = arg.defaultValue !== undefined && arg.defaultValue !== null ? JSON.stringify(arg.defaultValue) : '';
  const placeholder = shown ? `default ${shown}` : arg.required ? 'required' : 'optional';
  if (arg.choices.length) {
    return el('select', { name }, (arg.required ? [] : [el('option', { value: '' }, shown ? `(default ${shown})` : '')])
      .concat(arg.choices.map((c) => el('option', { value: JSON.stringify(c) }, String(c)))));
  }
  if (arg.kind === 'boolean') {
    return el('select', { name }, el('option', { value: '' }, shown ? `(default ${shown})` : ''),
      el('option', { value: 'true' }, 'true'), el('option', { value: 'false' }, 'false'));
  }
  if (arg.kind === 'integer' || arg.kind === 'number') {
    return el('input', { name, type: 'number', step: arg.kind === 'integer' ? '1' : 'any', required: arg.required,
      placeholder });
  }
  if (arg.kind === 'array' || arg.kind === 'object' || arg.kind === 'any') {
    return el('textarea', { name, rows: 2, required: arg.required, placeholder: `${placeholder} (JSON)` });
  }
  const role = arg.pathRole ? `a path under the data root (${arg.pathRole})` : arg.rule;
  return el('input', { name, required: arg.required, placeholder: [placeholder, role].filter(Boolean).join(', ') });
}

// Under an arg's input: what the handler's docstring says of it, then its kind and checks.
function argHint(arg) {
  const kind = [arg.pathRole || arg.kind, arg.rule].filter(Boolean).join(', ');
  return arg.description ? [...describe(arg.description), ` (${kind})`] : kind;
}

// A refusal's messages by the inputs they name (google.rpc.BadRequest field paths; a field no input has is looked
// for by its parents: `schedule.task.args.n` by `schedule.task.args`); what none holds goes to the top.
function showViolations(form, err, nameOf = (path) => path) {
  let placed = false;
  for (const v of err.violations || []) {
    for (let path = v.field; path; path = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : '') {
      const holder = form.querySelector(`[data-field="${CSS.escape(nameOf(path))}"] .field-error`);
      if (!holder) continue;
      holder.textContent = v.description;
      const input = holder.parentElement.querySelector('input, select, textarea');
      if (input) input.setAttribute('aria-invalid', 'true');
      placed = true;
      break;
    }
  }
  if (!placed) showError(err);
}

function clearViolations(form) {
  for (const holder of form.querySelectorAll('.field-error')) holder.textContent = '';
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
}

function field(label, input, hint = '') {
  return el('label', { 'data-field': input.name }, label, input, hint ? el('span', { class: 'muted small' }, hint) : '',
    el('span', { class: 'error small field-error' }));
}

async function submitPage() {
  const { taskTypes = [] } = await api('GET', 'v1/taskTypes');
  const typeSelect = el('select', { name: 'taskType', id: 'task-type' }, taskTypes.map((t) => el('option', { value: t.name }, t.name)));
  const fields = el('fieldset', { class: 'args' }, el('legend', {}, 'Args'));
  const note = el('p', { class: 'muted' });
  const options = el('fieldset', { class: 'options' }, el('legend', {}, 'Options'),
    field('Task id', el('input', { name: 'task_id', placeholder: 'made by the server' }), 'the same id again: the same task'),
    field('Labels', el('input', { name: 'labels', placeholder: 'team=data, env=prod' })),
    field('Priority', el('input', { name: 'priority', type: 'number', step: '1', placeholder: '0' }), 'higher runs first'),
    field('Time limit (s)', el('input', { name: 'time_limit', type: 'number', step: 'any', min: '0', placeholder: 'the server default' })),
    field('Delay (s)', el('input', { name: 'delay', type: 'number', step: 'any', min: '0', placeholder: 'none' })),
    field('After', el('input', { name: 'after', placeholder: 'task ids, comma-separated' }), 'run once these succeeded'));
  const form = el('form', { class: 'submit', onsubmit: submit }, field('Task type', typeSelect), note, fields, options,
    el('div', {}, el('button', { type: 'submit', class: 'primary' }, 'Submit')));
  view.replaceChildren(el('h2', {}, 'Submit a task'), form);

  function shape() {
    const type = taskTypes.find((t) => t.name === typeSelect.value);
    const nodes = type && type.nodes.length ? ` Claimed by ${type.nodes.map((n) => n.node).join(', ')}.` : '';
    note.replaceChildren(...describe(type && type.description), nodes);
    const args = type ? type.args : [];
    fields.replaceChildren(el('legend', {}, 'Args'), ...(args.length ? args.map((arg) => field(
      `${arg.name}${arg.required ? ' *' : ''}`, argInput(arg), argHint(arg)))
      : [el('span', { class: 'muted' }, 'none')]));
  }

  async function submit(e) {
    e.preventDefault();
    clearViolations(form);
    const type = taskTypes.find((t) => t.name === typeSelect.value);
    const data = new FormData(form);
    const text = (name) => String(data.get(name) || '').trim();
    const args = {};
    for (const arg of type.args) {
      const raw = data.get(`arg:${arg.name}`);
      if (raw === null || raw === '') continue;
      args[arg.name] = arg.kind === 'string' && !arg.choices.length ? raw : parseValue(raw);
    }
    const body = { taskType: type.name, args,
      labels: Object.fromEntries(text('labels').split(',').map((p) => p.trim()).filter(Boolean).map((p) => p.split('='))) };
    if (text('task_id')) body.taskId = text('task_id');
    if (text('priority')) body.priority = Number(text('priority'));
    if (text('time_limit')) body.timeLimit = `${Number(text('time_limit'))}s`;
    if (text('delay')) body.delay = `${Number(text('delay'))}s`;
    if (text('after')) body.after = text('after').split(',').map((id) => id.trim()).filter(Boolean);
    try {
      const { task } = await api('POST', 'v1/tasks', body);
      location.hash = `#/task/${encodeURIComponent(task.taskId)}`;
    } catch (err) {
      showViolations(form, err, (path) => (path.startsWith('args.') ? `arg:${path.slice(5)}` : path));
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
