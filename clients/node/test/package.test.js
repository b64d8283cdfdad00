'use strict';
// The client as a package: `npm pack` makes a tarball that carries its protos and types; installed in an empty
// folder outside the repository, the README's snippet runs against a real server, and TypeScript code written
// against its types compiles under --strict.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { startServer, runNode, tmpDir } = require('./support/server');

const PACKAGE = path.resolve(__dirname, '..');
const README = path.join(PACKAGE, '..', '..', 'README.md');
const LIMIT = { timeout: 180_000 };
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let server;
let installed; // the empty folder the tarball was installed in

function npm(args, cwd) {
  return execFileSync(NPM, [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', timeout: 150_000 });
}

before(async () => {
  server = await startServer();
  const packed = tmpDir('taskservice-packed-');
  const [info] = JSON.parse(npm(['pack', '--json', '--pack-destination', packed], PACKAGE));
  installed = tmpDir('taskservice-installed-');
  fs.writeFileSync(path.join(installed, 'package.json'), JSON.stringify({ name: 'a-user', private: true }));
  npm(['install', path.join(packed, info.filename)], installed);
});

after(() => {
  if (server) server.kill();
});

test('the tarball carries the protos and types, and nothing of the tests', LIMIT, () => {
  const root = path.join(installed, 'node_modules', 'taskservice-client');
  for (const file of ['protos/taskservice/v1/task_service.proto', 'protos/google/rpc/status.proto',
    'protos/google/rpc/error_details.proto', 'protos/google/api/annotations.proto', 'lib/client.d.ts']) {
    assert.ok(fs.existsSync(path.join(root, file)), `${file} is in the package`);
  }
  assert.ok(!fs.existsSync(path.join(root, 'test')), 'the tests stay in the repository');
  assert.ok(!fs.existsSync(path.join(PACKAGE, 'protos')), 'packing leaves no copy of the protos behind');
});

test('installed outside the repository, the README snippet runs against a real server', LIMIT, async () => {
  const text = fs.readFileSync(README, 'utf8');
  const [snippet] = [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]);
  const file = path.join(installed, 'watch-demo.js');
  fs.writeFileSync(file, snippet.replace("require('./lib/client')", "require('taskservice-client')"));
  const run = await runNode(file, { env: { TASKSERVICE_ADDR: server.address } });
  assert.equal(run.code, 0, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  assert.match(run.stdout.trim().split('\n').pop(), /SUCCESS 100%$/);
});

test('TypeScript written against the types compiles under --strict, and a wrong call does not', LIMIT, () => {
  const tsc = path.join(PACKAGE, 'node_modules', 'typescript', 'bin', 'tsc');
  const good = path.join(installed, 'good.ts');
  fs.writeFileSync(good, `
import { TaskClient, TaskServiceError, Task, TaskEvent } from 'taskservice-client';
async function main(): Promise<void> {
  const client = new TaskClient({ address: '127.0.0.1:50051', traceContext: () => ({ traceparent: '' }) });
  const { task, created }: { task: Task; created: boolean } = await client.submit('demo', { steps: 5 }, { labels: { team: 'a' } });
  for await (const event of client.watch(task.taskId)) {
    const seq: bigint = event.sequence;
    const done: Task | null = (event as TaskEvent).task;
    console.log(seq, event.state, event.progress.percent, done?.result, created);
  }
  const page = await client.list({ states: ['RUNNING'], pageSize: 10 });
  console.log(page.tasks.length, page.nextPageToken);
  try { await client.get('x'); } catch (err) { if (err instanceof TaskServiceError) console.log(err.codeName, err.fieldViolations); }
  client.close();
}
void main();
`);
  // console comes from the DOM library: the user's folder has no @types/node.
  const flags = ['--noEmit', '--strict', '--module', 'commonjs', '--target', 'es2022', '--moduleResolution', 'node'];
  execFileSync(process.execPath, [tsc, ...flags, '--lib', 'es2022,dom', good], { cwd: installed, encoding: 'utf8' });
  const bad = path.join(installed, 'bad.ts');
  fs.writeFileSync(bad, `
import { TaskClient } from 'taskservice-client';
const client = new TaskClient();
void client.submit('demo', { steps: 5 }, { priority: 'high' });
`);
  assert.throws(
    () => execFileSync(process.execPath, [tsc, ...flags, '--lib', 'es2022,dom', bad], { cwd: installed, encoding: 'utf8', stdio: 'pipe' }),
    (err) => /bad\.ts\(4,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/.test(String(err.stdout)),
    'a string priority is refused by the types',
  );
});
