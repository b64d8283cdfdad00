'use strict';
// A watch survives its server being killed and restarted on the same port and database.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');

const { TaskClient } = require('..');
const { startServer } = require('./support/server');

// Every test fails after this long instead of hanging (e.g. a watch that never ends). Generous: on a busy
// machine (the whole suite beside a benchmark) a server takes seconds to start, and these start two.
const LIMIT = { timeout: 90_000 };
// How long the server stays down, as in a restart.
const OUTAGE_MS = 4_000;

const servers = [];
let client;

after(() => {
  if (client) client.close();
  for (const server of servers) server.kill();
});

test('watch reconnects after UNAVAILABLE through a seconds-long outage and ends with the task LOST after a server crash', LIMIT, async () => {
  const first = await startServer();
  servers.push(first);
  client = new TaskClient({ address: first.address, token: '', tlsCa: '', tlsCert: '', tlsKey: '', timeoutMs: 10_000, watchBackoffMs: 10 });
  const { task } = await client.submit('sleep', { seconds: 60 });

  const events = [];
  let restarted = null;
  for await (const event of client.watch(task.taskId, { timeoutMs: 80_000 })) {
    events.push(event);
    if (event.state === 'RUNNING' && restarted === null) {
      // Kill the server under the open stream, then start another on the same port and database.
      first.kill();
      await new Promise((resolve) => first.child.once('exit', resolve));
      // The outage itself: the watch keeps reconnecting (backing off) the whole time.
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
      restarted = await startServer({ dir: first.dir, extraArgs: ['--listen', first.address] });
      servers.push(restarted);
    }
  }
  assert.ok(restarted, `never saw RUNNING: ${events.map((e) => e.state)}`);
  const last = events[events.length - 1];
  assert.equal(last.state, 'LOST', `states: ${events.map((e) => e.state)}`);
  assert.equal(last.task.error.type, 'ServerRestarted');
  assert.ok(last.sequence > events[events.length - 2].sequence, 'sequences jump ahead after a restart');
  assert.equal((await client.get(task.taskId)).state, 'LOST');
});

test('a watch whose server stays away gives up with UNAVAILABLE once reconnectTimeoutMs has passed', LIMIT, async () => {
  const server = await startServer();
  servers.push(server);
  const brief = new TaskClient({ address: server.address, token: '', tlsCa: '', tlsCert: '', tlsKey: '',
    timeoutMs: 10_000, watchBackoffMs: 10, reconnectTimeoutMs: 1_500 });
  try {
    const { task } = await brief.submit('sleep', { seconds: 60 });
    let gone = null;
    await assert.rejects(
      (async () => {
        for await (const event of brief.watch(task.taskId)) {
          if (event.state === 'RUNNING' && gone === null) {
            server.kill(); // and never started again
            await new Promise((resolve) => server.child.once('exit', resolve));
            gone = Date.now();
          }
        }
      })(),
      (err) => err.name === 'TaskServiceError' && err.codeName === 'UNAVAILABLE',
    );
    const waited = Date.now() - gone;
    assert.ok(waited >= 1_000 && waited < 6_000, `gave up ${waited} ms after the server went away`);
  } finally {
    brief.close();
  }
});

test('a watch that never connected fails at once with UNAVAILABLE', LIMIT, async () => {
  // A port nobody listens on: the first server's port after it is gone is not guaranteed free, so use port 1.
  const lonely = new TaskClient({ address: '127.0.0.1:1', token: '', tlsCa: '', tlsCert: '', tlsKey: '', timeoutMs: 5_000 });
  try {
    const started = Date.now();
    await assert.rejects(
      (async () => {
        for await (const event of lonely.watch('any')) assert.fail(`unexpected event ${event.state}`);
      })(),
      (err) => err.name === 'TaskServiceError' && err.code === 14 && err.codeName === 'UNAVAILABLE',
    );
    assert.ok(Date.now() - started < 3_000, 'no reconnect loop before the first event');
  } finally {
    lonely.close();
  }
});
