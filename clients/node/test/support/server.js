'use strict';
// Starts a real taskservice server as a child process on a free port, for the tests.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const PYTHON = process.env.TASKSERVICE_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
const START_TIMEOUT_MS = 20_000;

// The tests are hermetic: TASKSERVICE_* variables of a developer's shell (an address, a token, a proto
// path, TLS files) must not reach the clients the tests make; the tests that check those defaults set them.
for (const name of Object.keys(process.env)) {
  if (name.startsWith('TASKSERVICE_')) delete process.env[name];
}

/**
 * The environment without TASKSERVICE_* variables: the server reads its flags from them
 * (TASKSERVICE_TLS_CERT, TASKSERVICE_AUTH_TOKEN_FILE, ...) and the client its defaults, so a developer's
 * shell must not change what a test starts or sends. TASKSERVICE_PYTHON is read above, not passed on.
 */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TASKSERVICE_')) env[k] = v;
  return { ...env, ...extra };
}

function tmpDir(prefix = 'taskservice-node-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Starts `python -m taskservice serve --listen 127.0.0.1:0 --port-file ... --db ... --workers 2 [extraArgs]`
 * and resolves once the port file holds "PORT\n" (polled until a deadline).
 * Resolves to {address, port, dir, child, log(), kill()}. kill() sends SIGKILL. `env` adds to its environment.
 */
async function startServer({ extraArgs = [], dir = tmpDir(), workers = 2, env = {} } = {}) {
  const portFile = path.join(dir, 'port');
  fs.rmSync(portFile, { force: true }); // a restart in the same dir must not read the old port
  const args = [
    '-m', 'taskservice', 'serve',
    '--listen', '127.0.0.1:0',
    '--port-file', portFile,
    '--db', path.join(dir, 'tasks.db'),
    '--workers', String(workers),
    '--http-listen', '127.0.0.1:0', // not the default 8080, which every server of a run would share
    ...extraArgs,
  ];
  const child = spawn(PYTHON, args, { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv({ PYTHONUNBUFFERED: '1', ...env }) });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  let exited = null;
  let spawnError = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  child.on('error', (err) => {
    spawnError = err;
  });
  // Should the test process end without its after() hook (a crash, a runner timeout), take the server along.
  const onExit = () => server.kill();
  process.once('exit', onExit);
  child.once('exit', () => process.removeListener('exit', onExit));
  const server = {
    child,
    dir,
    log: () => stderr,
    kill() {
      if (exited === null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError) throw new Error(`cannot start ${PYTHON}: ${spawnError.message} (set TASKSERVICE_PYTHON)`);
    if (exited) {
      throw new Error(`server exited (${JSON.stringify(exited)}) before writing its port file:\n${stderr}`);
    }
    let text = '';
    try {
      text = fs.readFileSync(portFile, 'utf8');
    } catch {
      // not yet written
    }
    const match = /^(\d+)\n$/.exec(text);
    if (match) {
      server.port = Number(match[1]);
      server.address = `127.0.0.1:${server.port}`;
      return server;
    }
    if (Date.now() > deadline) {
      server.kill();
      throw new Error(`server did not write ${portFile} within ${START_TIMEOUT_MS} ms:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Runs a node script as a child process (TASKSERVICE_* from `env` only); resolves to {code, signal, stdout, stderr}. */
function runNode(script, { args = [], env = {}, timeoutMs = 15_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

module.exports = { startServer, runNode, tmpDir, cleanEnv, REPO, PYTHON };
