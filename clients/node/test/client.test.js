'use strict';
// TaskClient against a real server (a child process on a free port).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const { TaskClient, TaskServiceError, Status, structToProto, structFromProto, isTerminal, DEFAULT_PROTO } = require('..');
const { startServer, tmpDir } = require('./support/server');

// Every test fails after this long instead of hanging (e.g. a watch that never ends).
const LIMIT = { timeout: 20_000 };

let server;
let client;

before(async () => {
  server = await startServer();
  client = new TaskClient({ address: server.address, token: '', tlsCa: '', tlsCert: '', tlsKey: '', timeoutMs: 10_000 });
});

after(() => {
  if (client) client.close();
  if (server) server.kill();
});

const unique = (prefix) => `${prefix}-${crypto.randomBytes(6).toString('hex')}`;

/** Collects the events of a watch (bounded, so a broken watch fails the test instead of hanging). */
async function collect(taskId, opts = {}) {
  const events = [];
  for await (const event of client.watch(taskId, { timeoutMs: 15_000, ...opts })) events.push(event);
  return events;
}

async function rejectsWith(promise, code) {
  let caught = null;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected a rejection with code ${code}`);
  assert.ok(caught instanceof TaskServiceError, `not a TaskServiceError: ${caught && caught.stack}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

describe('struct helpers', () => {
  test('a nested object survives JS -> Struct -> JS', LIMIT, () => {
    const value = { n: 10, f: 0.5, s: 'x', b: false, nil: null, list: [1, 'two', [true], { k: null }], obj: { deep: { er: -3 } } };
    const struct = structToProto(value);
    assert.deepEqual(struct.fields.n, { numberValue: 10 });
    assert.deepEqual(struct.fields.nil, { nullValue: 'NULL_VALUE' });
    assert.deepEqual(structFromProto(struct), value);
  });

  test('undefined members are left out and unsupported values are refused', LIMIT, () => {
    assert.deepEqual(structFromProto(structToProto({ a: undefined, b: 1 })), { b: 1 });
    assert.throws(() => structToProto({ f() {} }), /args\.f: a function cannot be sent/);
    assert.throws(() => structToProto([1, 2]), /must be a plain object/);
  });
});

describe('loading the proto', () => {
  test('protoPath or TASKSERVICE_PROTO loads a copy elsewhere; a missing file is a clear error', LIMIT, async () => {
    const dir = tmpDir('taskservice-node-proto-');
    const copy = path.join(dir, 'elsewhere', 'taskservice', 'v1', 'task_service.proto');
    fs.mkdirSync(path.dirname(copy), { recursive: true });
    fs.copyFileSync(DEFAULT_PROTO, copy);
    const viaOption = new TaskClient({ address: server.address, token: '', tlsCa: '', tlsCert: '', tlsKey: '', protoPath: copy });
    const viaEnv = (() => {
      const saved = process.env.TASKSERVICE_PROTO;
      process.env.TASKSERVICE_PROTO = copy;
      try {
        return new TaskClient({ address: server.address, token: '', tlsCa: '', tlsCert: '', tlsKey: '' });
      } finally {
        if (saved === undefined) delete process.env.TASKSERVICE_PROTO;
        else process.env.TASKSERVICE_PROTO = saved;
      }
    })();
    try {
      for (const c of [viaOption, viaEnv]) {
        const { task } = await c.submit('demo', { steps: 1, step_seconds: 0.01 });
        assert.equal((await c.get(task.taskId)).taskType, 'demo');
      }
    } finally {
      viaOption.close();
      viaEnv.close();
    }
    const missing = path.join(dir, 'missing.proto');
    assert.throws(() => new TaskClient({ protoPath: missing }), (err) => err.message.includes(missing) && /TASKSERVICE_PROTO/.test(err.message));
  });
});

describe('TaskService', () => {
  test('submit then get returns the same task', LIMIT, async () => {
    const taskId = unique('get');
    const { task, created } = await client.submit('demo', { steps: 1, step_seconds: 0.01 }, {
      taskId,
      labels: { suite: 'node', case: 'get' },
      priority: 3,
      timeLimitSeconds: 30,
    });
    assert.equal(created, true);
    assert.equal(task.taskId, taskId);
    assert.equal(task.taskType, 'demo');
    assert.deepEqual(task.args, { steps: 1, step_seconds: 0.01 });
    assert.ok(['PENDING', 'RUNNING', 'SUCCESS'].includes(task.state), task.state);
    assert.ok(task.submittedAt instanceof Date && !Number.isNaN(task.submittedAt.getTime()));
    assert.ok(Math.abs(task.submittedAt.getTime() - Date.now()) < 60_000, `submittedAt ${task.submittedAt.toISOString()}`);
    assert.equal(task.timeLimitSeconds, 30);

    const got = await client.get(taskId);
    assert.equal(got.taskId, taskId);
    assert.equal(got.taskType, 'demo');
    assert.deepEqual(got.args, { steps: 1, step_seconds: 0.01 });
    assert.deepEqual(got.labels, { suite: 'node', case: 'get' });
    assert.equal(got.priority, 3);
    assert.equal(got.timeLimitSeconds, 30);
    assert.equal(got.submittedAt.getTime(), task.submittedAt.getTime());
  });

  test('a server-made task id is returned when none is given', LIMIT, async () => {
    const { task, created } = await client.submit('demo', { steps: 1, step_seconds: 0.01 });
    assert.equal(created, true);
    assert.match(task.taskId, /^[A-Za-z0-9._:-]{1,128}$/);
    assert.equal((await client.get(task.taskId)).taskId, task.taskId);
  });

  test('watch follows a demo task to SUCCESS: growing sequences, terminal event last', LIMIT, async () => {
    const { task } = await client.submit('demo', { steps: 5, step_seconds: 0.05 });
    const events = await collect(task.taskId);
    assert.ok(events.length >= 2, `only ${events.length} events`);
    assert.ok(events[0].task, 'the first event is a snapshot carrying the task');
    assert.equal(events[0].task.taskId, task.taskId);
    for (let i = 1; i < events.length; i++) {
      assert.equal(typeof events[i].sequence, 'bigint');
      assert.ok(events[i].sequence > events[i - 1].sequence, `sequence ${events[i].sequence} after ${events[i - 1].sequence}`);
    }
    const last = events[events.length - 1];
    assert.equal(last.state, 'SUCCESS');
    assert.ok(events.slice(0, -1).every((e) => !isTerminal(e.state)), 'only the last event is terminal');
    assert.equal(last.progress.percent, 100);
    assert.ok(last.task, 'a state change carries the task');
    assert.ok(last.task.endedAt instanceof Date);
    assert.notEqual(last.task.result, null);
    assert.ok(events.every((e) => e.time instanceof Date && e.taskId === task.taskId));
    assert.ok(events.some((e) => e.state === 'RUNNING' || e.state === 'PENDING'), 'saw the task before it ended');

    // A finished task: one terminal snapshot.
    const again = await collect(task.taskId);
    assert.equal(again.length, 1);
    assert.equal(again[0].state, 'SUCCESS');
    assert.equal(again[0].sequence, last.sequence);

    // Resuming right after the terminal event: nothing more, and the watch ends.
    assert.deepEqual(await collect(task.taskId, { afterSequence: last.sequence }), []);
  });

  test('watch with an afterSequence that is no longer kept goes on from a fresh snapshot (OUT_OF_RANGE)', LIMIT, async () => {
    const { task } = await client.submit('demo', { steps: 1, step_seconds: 0.01 });
    const final = await client.wait(task.taskId);
    assert.equal(final.state, 'SUCCESS');
    const events = await collect(task.taskId, { afterSequence: 123456789n });
    assert.equal(events.length, 1);
    assert.equal(events[0].state, 'SUCCESS');
    assert.ok(events[0].sequence < 123456789n);
  });

  test('waitTask answers the task as it is when its timeout passes, and done once it ended', LIMIT, async () => {
    const { task } = await client.submit('sleep', { seconds: 60 });
    const early = await client.waitTask(task.taskId, { timeoutSeconds: 0.2 });
    assert.equal(early.done, false);
    assert.ok(['PENDING', 'RUNNING'].includes(early.task.state), early.task.state);
    const err = await rejectsWith(client.wait(task.taskId, { timeoutMs: 200 }), Status.DEADLINE_EXCEEDED);
    assert.match(err.message, /did not finish within 200 ms \(still (PENDING|RUNNING)\)/);
    await client.stop(task.taskId, 'waited enough');
    const ended = await client.waitTask(task.taskId, { timeoutSeconds: 10 });
    assert.equal(ended.done, true);
    assert.equal(ended.task.state, 'REVOKED');
    await rejectsWith(client.waitTask('no-such-task', { timeoutSeconds: 1 }), Status.NOT_FOUND);
    await rejectsWith(client.waitTask(task.taskId, { timeoutSeconds: -1 }), Status.INVALID_ARGUMENT);
  });

  test('run later: delaySeconds and notBefore give scheduledAt, list({scheduled}) finds them', LIMIT, async () => {
    const before = Date.now();
    const { task: soon } = await client.submit('demo', { steps: 1, step_seconds: 0.01 }, { delaySeconds: 0.5 });
    assert.equal(soon.state, 'PENDING');
    assert.ok(soon.scheduledAt.getTime() >= before + 500, String(soon.scheduledAt));
    const { task: later } = await client.submit('sleep', { seconds: 0 }, { notBefore: new Date(Date.now() + 3_600_000) });
    const scheduled = (await client.list({ scheduled: true })).tasks.map((t) => t.taskId);
    assert.ok(scheduled.includes(later.taskId), scheduled);
    const done = await client.wait(soon.taskId, { timeoutMs: 10_000 });
    assert.equal(done.state, 'SUCCESS');
    assert.ok(done.startedAt.getTime() >= soon.scheduledAt.getTime(), 'not run before its time');
    assert.equal((await client.stop(later.taskId)).state, 'REVOKED');
    const err = await rejectsWith(client.submit('sleep', { seconds: 0 }, { delaySeconds: -1 }), Status.INVALID_ARGUMENT);
    assert.deepEqual(err.fieldViolations.map((v) => v.field), ['delay']);
  });

  test('list searches by id prefix, sorts by orderBy and refuses a page token given with another order', LIMIT, async () => {
    const run = unique('sort');
    const since = new Date(Date.now() - 1000);
    for (const seconds of [0.3, 0, 0.1]) {
      const { task } = await client.submit('sleep', { seconds }, { taskId: `${run}-${seconds}` });
      await client.wait(task.taskId, { timeoutMs: 10_000 });
    }
    const found = await client.list({ search: `${run}-`, orderBy: 'duration desc', submittedAfter: since });
    assert.deepEqual(found.tasks.map((t) => t.taskId), [`${run}-0.3`, `${run}-0.1`, `${run}-0`]);
    const first = await client.list({ search: `${run}-`, orderBy: 'started_at', pageSize: 1 });
    assert.equal(first.tasks[0].taskId, `${run}-0.3`);
    const next = await client.list({ search: `${run}-`, orderBy: 'started_at', pageSize: 1, pageToken: first.nextPageToken });
    assert.equal(next.tasks[0].taskId, `${run}-0`);
    const err = await rejectsWith(
      client.list({ search: `${run}-`, orderBy: 'ended_at', pageToken: first.nextPageToken }), Status.INVALID_ARGUMENT);
    assert.deepEqual(err.fieldViolations.map((v) => v.field), ['order_by']);
  });

  test('history answers a task\'s state changes in order, and NOT_FOUND for an unknown id', LIMIT, async () => {
    const { task } = await client.submit('demo', { steps: 1, step_seconds: 0.01 });
    const done = await client.wait(task.taskId, { timeoutMs: 10_000 });
    const history = await client.history(task.taskId);
    assert.deepEqual(history.filter((e) => !e.progress).map((e) => [e.state, e.attempt]),
      [['PENDING', 0], ['RUNNING', 1], ['SUCCESS', 1]]);
    assert.equal(history.at(-1).time.getTime(), done.endedAt.getTime());
    await rejectsWith(client.history('no-such-task'), Status.NOT_FOUND);
  });

  test('retry runs a revoked task again as its next attempt; a task that succeeded cannot be retried', LIMIT, async () => {
    const { task } = await client.submit('sleep', { seconds: 60 });
    await client.stop(task.taskId);
    assert.equal((await client.wait(task.taskId, { timeoutMs: 10_000 })).state, 'REVOKED');
    const again = await client.retry(task.taskId, 'changed my mind');
    assert.equal(again.state, 'PENDING');
    await client.stop(task.taskId);
    const final = await client.wait(task.taskId, { timeoutMs: 10_000 });
    assert.equal(final.state, 'REVOKED');
    const { task: fine } = await client.submit('demo', { steps: 1, step_seconds: 0.01 });
    assert.equal((await client.wait(fine.taskId, { timeoutMs: 10_000 })).state, 'SUCCESS');
    await rejectsWith(client.retry(fine.taskId), Status.FAILED_PRECONDITION);
    await rejectsWith(client.retry('no-such-task'), Status.NOT_FOUND);
  });

  test('stopTasks stops every match and counts them; no filter needs all', LIMIT, async () => {
    const run = unique('bulk');
    for (let i = 0; i < 3; i++) await client.submit('sleep', { seconds: 60 }, { labels: { run } });
    const counts = await client.stopTasks({ labels: { run }, reason: 'node bulk' });
    assert.equal(counts.revoked + counts.stopping, 3);
    const left = await client.list({ labels: { run }, states: ['PENDING', 'RUNNING'] });
    assert.equal(left.tasks.filter((t) => t.state === 'PENDING').length, 0);
    await rejectsWith(client.stopTasks({}), Status.INVALID_ARGUMENT);
  });

  test('deleteTask and deleteTasks remove ended tasks; retentionSeconds travels with the task', LIMIT, async () => {
    const run = unique('del');
    const { task } = await client.submit('sleep', { seconds: 0 }, { labels: { run }, retentionSeconds: 0 });
    const done = await client.wait(task.taskId, { timeoutMs: 10_000 });
    assert.equal(done.retentionSeconds, 0);
    assert.equal((await client.deleteTask(task.taskId)).taskId, task.taskId);
    await rejectsWith(client.get(task.taskId), Status.NOT_FOUND);
    for (let i = 0; i < 2; i++) {
      const { task: t } = await client.submit('sleep', { seconds: 0 }, { labels: { run } });
      await client.wait(t.taskId, { timeoutMs: 10_000 });
    }
    assert.equal(await client.deleteTasks({ labels: { run } }), 2);
    const { task: busy } = await client.submit('sleep', { seconds: 60 }, { labels: { run } });
    await rejectsWith(client.deleteTask(busy.taskId), Status.FAILED_PRECONDITION);
    await client.stop(busy.taskId);
    await rejectsWith(client.deleteTasks({}), Status.INVALID_ARGUMENT);
  });

  test('submit with after waits for a task; stopping it revokes the dependent (DependencyFailed)', LIMIT, async () => {
    const { task: first } = await client.submit('sleep', { seconds: 60 });
    const { task: second } = await client.submit('sleep', { seconds: 0 }, { after: [first.taskId] });
    assert.deepEqual(second.after, [first.taskId]);
    assert.equal(second.state, 'PENDING');
    await client.stop(first.taskId);
    const done = await client.wait(second.taskId, { timeoutMs: 10_000 });
    assert.equal(done.state, 'REVOKED');
    assert.equal(done.error.type, 'DependencyFailed');
    await rejectsWith(client.submit('sleep', {}, { after: ['no-such-task'] }), Status.INVALID_ARGUMENT);
    await assert.rejects(client.submit('sleep', {}, { after: first.taskId }), TypeError);
  });

  test('schedules: created, fired under <id>:<due time>, paused, listed and deleted', LIMIT, async () => {
    const id = unique('node-tick');
    const made = await client.createSchedule(id, 'sleep', { seconds: 0 }, { intervalSeconds: 1, catchUp: 'all' });
    assert.equal(made.created, true);
    assert.equal(made.schedule.intervalSeconds, 1);
    assert.equal(made.schedule.catchUp, 'ALL');
    let fired = [];
    for (let i = 0; i < 200 && fired.length === 0; i++) {
      fired = (await client.list({ labels: { schedule: id } })).tasks;
      if (fired.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(fired.length > 0 && fired[0].taskId.startsWith(`${id}:`));
    assert.equal((await client.pauseSchedule(id)).paused, true);
    const got = await client.getSchedule(id);
    assert.equal(got.paused, true);
    assert.ok(got.lastTaskId.startsWith(`${id}:`));
    const cron = await client.createSchedule(`${id}-cron`, 'sleep', { seconds: 0 }, { cron: '0 9 * * 1-5', timeZone: 'Asia/Tokyo' });
    assert.equal(cron.schedule.timeZone, 'Asia/Tokyo');
    const listed = await client.listSchedules({ pageSize: 1000 });
    assert.ok(listed.schedules.some((s) => s.scheduleId === id));
    assert.equal((await client.resumeSchedule(id)).paused, false);
    assert.equal((await client.deleteSchedule(id)).scheduleId, id);
    await rejectsWith(client.getSchedule(id), Status.NOT_FOUND);
    await rejectsWith(client.createSchedule('never', 'sleep', { seconds: 0 }, { cron: '0 0 30 2 *' }), Status.INVALID_ARGUMENT);
  });

  test('limits: created once, read, listed, replaced and deleted; bad ones are INVALID_ARGUMENT', LIMIT, async () => {
    const id = unique('node-limit');
    const made = await client.createLimit(id, { taskType: 'sleep', keyLabel: 'customer', maxRunning: 2, rate: '10/s' });
    assert.equal(made.created, true);
    assert.deepEqual(made.limit.rate, { count: 10, periodSeconds: 1, burst: 1 });
    assert.equal(made.limit.onFull, 'QUEUE');
    const again = await client.createLimit(id, { taskType: 'sleep', keyLabel: 'customer', maxRunning: 2, rate: '10/s' });
    assert.equal(again.created, false);
    await rejectsWith(client.createLimit(id, { maxRunning: 9 }), Status.ALREADY_EXISTS);
    const updated = await client.updateLimit(id, { keyLabel: 'customer', maxRunning: 3, weights: { gold: 2 } });
    assert.equal(updated.maxRunning, 3);
    assert.equal(updated.rate, null);
    assert.deepEqual(updated.weights, { gold: 2 });
    assert.equal((await client.getLimit(id)).maxRunning, 3);
    assert.ok((await client.listLimits({ pageSize: 1000 })).limits.some((l) => l.limitId === id));
    assert.equal((await client.deleteLimit(id)).limitId, id);
    await rejectsWith(client.getLimit(id), Status.NOT_FOUND);
    await rejectsWith(client.createLimit(unique('bad'), { maxRunning: -1 }), Status.INVALID_ARGUMENT);
    await assert.rejects(client.createLimit(unique('bad'), { rate: 'often' }), TypeError);
  });

  test('taskTypes lists every type with its args', LIMIT, async () => {
    const types = await client.taskTypes();
    const checksum = types.find((t) => t.name === 'file.checksum');
    assert.deepEqual(checksum.args.find((a) => a.name === 'algorithm').choices, ['sha256', 'md5', 'blake2b']);
    assert.equal(checksum.args.find((a) => a.name === 'input_fpath').pathRole, 'input');
    const algorithm = checksum.args.find((a) => a.name === 'algorithm');
    assert.ok(algorithm.hasDefault && algorithm.default === 'sha256', 'the handler\'s default');
    assert.ok(!checksum.args.find((a) => a.name === 'input_fpath').hasDefault, 'a required arg has none');
    assert.equal(algorithm.description, 'The hash: sha256, md5 or blake2b.', "the handler's docstring on the arg");
    assert.deepEqual(types.map((t) => t.name), [...types.map((t) => t.name)].sort());
  });

  test('nodes says this server: the types it claims, its workers, how many are busy or abandoned', LIMIT, async () => {
    const [node, ...others] = await client.nodes();
    assert.equal(others.length, 0);
    assert.ok(node.taskTypes.includes('file.checksum') && node.workers > 0, JSON.stringify(node));
    assert.ok(node.busy >= 0 && node.busy <= node.workers && node.abandoned === 0, JSON.stringify(node));
    assert.ok(node.startedAt instanceof Date && node.lastSeen >= node.startedAt);
  });

  test('INVALID_ARGUMENT for bad args names the field in fieldViolations', LIMIT, async () => {
    const err = await rejectsWith(client.submit('demo', { steps: 'ten' }), Status.INVALID_ARGUMENT);
    assert.equal(err.code, 3);
    assert.equal(err.codeName, 'INVALID_ARGUMENT');
    assert.match(err.message, /^INVALID_ARGUMENT: /);
    assert.ok(err.details.length > 0);
    assert.ok(
      err.fieldViolations.some((v) => v.field === 'args.steps' && v.description.length > 0),
      JSON.stringify(err.fieldViolations),
    );

    const fractional = await rejectsWith(client.submit('demo', { steps: 10.5 }), Status.INVALID_ARGUMENT);
    assert.ok(fractional.fieldViolations.some((v) => v.field === 'args.steps'), JSON.stringify(fractional.fieldViolations));

    const unknownType = await rejectsWith(client.submit('no-such-type', {}), Status.INVALID_ARGUMENT);
    assert.match(unknownType.details, /no-such-type/);
  });

  test('what the client cannot encode rejects with a TypeError and sends nothing', LIMIT, async () => {
    const taskId = unique('unsendable');
    await assert.rejects(client.submit('demo', { steps: () => 1 }, { taskId }), TypeError);
    await assert.rejects(client.submit('demo', { steps: 1 }, { taskId, timeLimitSeconds: Infinity }), TypeError);
    await assert.rejects(client.list({ states: ['DONE'] }), /unknown task state "DONE"/);
    await assert.rejects(collect(taskId, { afterSequence: -1 }), TypeError);
    await rejectsWith(client.get(taskId), Status.NOT_FOUND);
  });

  test('NOT_FOUND for an unknown id, from get, stop and watch', LIMIT, async () => {
    const id = unique('missing');
    const err = await rejectsWith(client.get(id), Status.NOT_FOUND);
    assert.equal(err.codeName, 'NOT_FOUND');
    assert.deepEqual(err.fieldViolations, []);
    await rejectsWith(client.stop(id), Status.NOT_FOUND);
    const started = Date.now();
    await rejectsWith(collect(id), Status.NOT_FOUND);
    assert.ok(Date.now() - started < 5000, 'a watch of an unknown id fails at once, without retries');
  });

  test('the same request under a taskId gives created=false, a different one ALREADY_EXISTS', LIMIT, async () => {
    const taskId = unique('idem');
    const first = await client.submit('demo', { steps: 2, step_seconds: 0.01 }, { taskId, labels: { k: 'v' } });
    assert.equal(first.created, true);
    const second = await client.submit('demo', { steps: 2, step_seconds: 0.01 }, { taskId, labels: { k: 'v' } });
    assert.equal(second.created, false);
    assert.equal(second.task.taskId, taskId);
    assert.equal(second.task.submittedAt.getTime(), first.task.submittedAt.getTime());
    const err = await rejectsWith(client.submit('demo', { steps: 3, step_seconds: 0.01 }, { taskId }), Status.ALREADY_EXISTS);
    assert.equal(err.codeName, 'ALREADY_EXISTS');
  });

  test('stop of a running sleep task ends REVOKED', LIMIT, async () => {
    const { task } = await client.submit('sleep', { seconds: 60 }, { labels: { case: 'stop' } });
    // Wait until it runs, so this stops a RUNNING task (RUNNING -> STOPPING -> REVOKED).
    for await (const event of client.watch(task.taskId, { timeoutMs: 10_000 })) {
      if (event.state === 'RUNNING') break;
      assert.ok(!isTerminal(event.state), event.state);
    }
    const started = Date.now();
    const stopped = await client.stop(task.taskId, 'node test');
    assert.ok(['STOPPING', 'REVOKED'].includes(stopped.state), stopped.state);
    const final = await client.wait(task.taskId, { timeoutMs: 10_000 });
    assert.equal(final.state, 'REVOKED');
    assert.ok(final.error, 'a revoked task carries an error');
    assert.ok(Date.now() - started < 5000, 'the sleep woke at once');
    assert.equal((await client.get(task.taskId)).state, 'REVOKED');
    // Idempotent: stopping a finished task returns it unchanged.
    assert.equal((await client.stop(task.taskId)).state, 'REVOKED');
  });

  test('list: newest first, filtered by state, type and labels, paged', LIMIT, async () => {
    const run = unique('list');
    const labels = { run };
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const { task } = await client.submit('sleep', { seconds: 60 }, { labels, taskId: `${run}-sleep-${i}` });
      ids.push(task.taskId);
      await client.stop(task.taskId, 'list test');
    }
    const done = await client.submit('demo', { steps: 1, step_seconds: 0.01 }, { labels, taskId: `${run}-demo` });
    assert.equal((await client.wait(done.task.taskId, { timeoutMs: 10_000 })).state, 'SUCCESS');
    for (const id of ids) assert.equal((await client.wait(id, { timeoutMs: 10_000 })).state, 'REVOKED');

    const all = await client.list({ labels });
    assert.deepEqual(all.tasks.map((t) => t.taskId), [`${run}-demo`, ...ids.slice().reverse()]);
    for (let i = 1; i < all.tasks.length; i++) {
      assert.ok(all.tasks[i - 1].submittedAt >= all.tasks[i].submittedAt, 'newest first');
    }
    assert.equal(all.nextPageToken, '');

    const revoked = await client.list({ labels, states: ['REVOKED'] });
    assert.deepEqual(revoked.tasks.map((t) => t.taskId), ids.slice().reverse());
    assert.ok(revoked.tasks.every((t) => t.state === 'REVOKED'));

    const success = await client.list({ labels, states: ['TASK_STATE_SUCCESS'], taskType: 'demo' });
    assert.deepEqual(success.tasks.map((t) => t.taskId), [`${run}-demo`]);
    assert.deepEqual((await client.list({ labels, taskType: 'sleep', states: ['SUCCESS'] })).tasks, []);

    const page1 = await client.list({ labels, pageSize: 2 });
    assert.equal(page1.tasks.length, 2);
    assert.notEqual(page1.nextPageToken, '');
    const page2 = await client.list({ labels, pageSize: 2, pageToken: page1.nextPageToken });
    assert.deepEqual([...page1.tasks, ...page2.tasks].map((t) => t.taskId), all.tasks.map((t) => t.taskId));
    assert.equal(page2.nextPageToken, '');

  });
});

test('watchMany follows several tasks on one stream until every one has ended', LIMIT, async () => {
  const ids = [];
  for (let i = 0; i < 3; i += 1) ids.push((await client.submit('demo', { steps: 3, step_seconds: 0.01 })).task.taskId);
  const ended = new Set();
  for await (const event of client.watchMany(ids, { timeoutMs: 20_000 })) {
    assert.ok(ids.includes(event.taskId));
    if (event.state === 'SUCCESS') ended.add(event.taskId);
  }
  assert.deepEqual([...ended].sort(), [...ids].sort());
  await assert.rejects(
    (async () => {
      for await (const event of client.watchMany([ids[0], 'no-such-task'])) assert.fail(`unexpected ${event.state}`);
    })(),
    (err) => err.codeName === 'NOT_FOUND',
  );
});
