'use strict';
// traceContext: the headers a caller passes reach the server, which runs the task in that trace. The server
// traces to its console (OTEL_TRACES_EXPORTER=console); the task type returns the trace context its run saw.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { TaskClient } = require('..');
const { startServer } = require('./support/server');

const LIMIT = { timeout: 30_000 };
const servers = [];
const clients = [];

after(() => {
  for (const c of clients) c.close();
  for (const s of servers) s.kill();
});

test('a task submitted with a traceContext runs in the caller\'s trace', LIMIT, async () => {
  const server = await startServer({
    extraArgs: ['--tasks', 'tests.support.traced_tasks'],
    env: { OTEL_TRACES_EXPORTER: 'console' },
  });
  servers.push(server);
  const traceId = crypto.randomBytes(16).toString('hex');
  const parent = crypto.randomBytes(8).toString('hex');
  let calls = 0;
  const client = new TaskClient({
    address: server.address,
    token: '',
    traceContext: () => {
      calls += 1;
      return { traceparent: `00-${traceId}-${parent}-01`, authorization: 'not passed on' };
    },
  });
  clients.push(client);
  const { task } = await client.submit('traced.flaky');
  const done = await client.wait(task.taskId, { timeoutMs: 20_000 });
  assert.equal(done.state, 'SUCCESS', server.log());
  const [version, trace, span] = done.result.traceparent.split('-');
  assert.equal(version, '00');
  assert.equal(trace, traceId, 'the run joined the trace the client sent');
  assert.notEqual(span, parent, 'the run is a span of its own under the Submit');
  assert.ok(calls >= 2, 'the function is asked on every call');
});
