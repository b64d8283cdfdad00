'use strict';
// examples/submit-and-watch.js, run as a child process against a real server.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { startServer, runNode } = require('./support/server');

// Every test fails after this long instead of hanging (e.g. a watch that never ends).
const LIMIT = { timeout: 20_000 };

const EXAMPLE = path.join(__dirname, '..', 'examples', 'submit-and-watch.js');
let server;

before(async () => {
  server = await startServer();
});

after(() => {
  if (server) server.kill();
});

test('the example exits 0: demo SUCCESS with progress printed, sleep REVOKED', LIMIT, async () => {
  const run = await runNode(EXAMPLE, { env: { TASKSERVICE_ADDR: server.address } });
  assert.equal(run.code, 0, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  assert.match(run.stdout, /demo \S+ ended SUCCESS/);
  assert.match(run.stdout, /100% 10\/10/, 'the default is steps=10 and the last progress is printed');
  const progressLines = run.stdout.split('\n').filter((line) => /^\s+#\d+ RUNNING/.test(line));
  assert.ok(progressLines.length >= 2, `progress lines:\n${run.stdout}`);
  assert.match(run.stdout, /sleep \S+ ended REVOKED/);
});

test('the example takes demo args from argv and exits 1 when the demo does not succeed', LIMIT, async () => {
  const run = await runNode(EXAMPLE, {
    args: ['steps=3', 'step_seconds=0.01', 'fail_rate=1', 'seed=1'],
    env: { TASKSERVICE_ADDR: server.address },
  });
  assert.equal(run.code, 1, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  assert.match(run.stdout, /"steps":3/);
  assert.match(run.stdout, /demo \S+ ended FAILURE/);
});

test('the example exits 2 with a message when the server rejects the args', LIMIT, async () => {
  const run = await runNode(EXAMPLE, { args: ['steps=ten'], env: { TASKSERVICE_ADDR: server.address } });
  assert.equal(run.code, 2, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  assert.match(run.stderr, /INVALID_ARGUMENT/);
});
