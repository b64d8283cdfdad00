'use strict';
// The Node snippet of the repository's README, run as a reader would: saved in clients/node and run with node.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { startServer, runNode } = require('./support/server');

const LIMIT = { timeout: 20_000 };
const README = path.join(__dirname, '..', '..', '..', 'README.md');
let server;

before(async () => {
  server = await startServer();
});

after(() => {
  if (server) server.kill();
});

/** The ```js blocks of the README. */
function jsBlocks() {
  const text = fs.readFileSync(README, 'utf8');
  return [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]);
}

test('the README has one Node snippet, and it runs to the demo\'s end, printing sequences as numbers', LIMIT, async () => {
  const blocks = jsBlocks();
  assert.equal(blocks.length, 1, 'one ```js block in the README');
  // Where the snippet says it lives, so that its require('./lib/client') resolves as for a reader.
  const file = path.join(__dirname, '..', `.readme-snippet-${process.pid}.js`);
  fs.writeFileSync(file, blocks[0]);
  try {
    const run = await runNode(file, { env: { TASKSERVICE_ADDR: server.address } });
    assert.equal(run.code, 0, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    const lines = run.stdout.trim().split('\n');
    assert.ok(lines.length >= 2, run.stdout);
    assert.ok(lines.every((line) => /^#\d+ [A-Z_]+ \d+(\.\d+)?%$/.test(line)), `every line "#<n> <STATE> <p>%":\n${run.stdout}`);
    assert.match(lines[lines.length - 1], /SUCCESS 100%$/);
  } finally {
    fs.rmSync(file, { force: true });
  }
});
