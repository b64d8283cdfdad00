'use strict';
// Bearer tokens (--auth-token-file), TLS (--tls-cert/--tls-key) and mutual TLS (--tls-client-ca)
// against real servers. The TLS tests make a throwaway CA with the openssl command-line tool and
// are skipped, saying so, when openssl is not on PATH.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { TaskClient, TaskServiceError } = require('..');
const { startServer, tmpDir } = require('./support/server');

// Every test fails after this long instead of hanging (e.g. a watch that never ends).
const LIMIT = { timeout: 20_000 };

const UNAUTHENTICATED = 16;
const UNAVAILABLE = 14;
const servers = [];
const clients = [];

after(() => {
  for (const c of clients) c.close();
  for (const s of servers) s.kill();
});

/** A client that ignores TASKSERVICE_* variables of the environment unless given. */
function makeClient(options) {
  const c = new TaskClient({ token: '', tlsCa: '', tlsCert: '', tlsKey: '', timeoutMs: 5_000, ...options });
  clients.push(c);
  return c;
}

async function codeOf(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TaskServiceError, `not a TaskServiceError: ${err && err.stack}`);
    return err.code;
  }
  return 'resolved';
}

async function watchAll(c, taskId) {
  const states = [];
  for await (const e of c.watch(taskId, { timeoutMs: 10_000 })) states.push(e.state);
  return states;
}

function withEnv(vars, fn) {
  const saved = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('bearer tokens (--auth-token-file)', () => {
  const TOKEN = 'node-test-token-0123456789';
  const OTHER = 'second-token';
  let server;

  before(async () => {
    const dir = tmpDir();
    const tokenFile = path.join(dir, 'tokens');
    fs.writeFileSync(tokenFile, `# tokens for the node tests\n${TOKEN}\n${OTHER}\n`);
    server = await startServer({ dir, extraArgs: ['--auth-token-file', tokenFile] });
    servers.push(server);
  });

  test('no token: every RPC answers UNAUTHENTICATED (16)', LIMIT, async () => {
    const c = makeClient({ address: server.address });
    assert.equal(await codeOf(c.submit('demo', { steps: 1 })), UNAUTHENTICATED);
    assert.equal(await codeOf(c.get('x')), UNAUTHENTICATED);
    assert.equal(await codeOf(c.stop('x')), UNAUTHENTICATED);
    assert.equal(await codeOf(c.list()), UNAUTHENTICATED);
    assert.equal(await codeOf(watchAll(c, 'x')), UNAUTHENTICATED);
    const err = await c.list().catch((e) => e);
    assert.equal(err.codeName, 'UNAUTHENTICATED');
  });

  test('a wrong token answers UNAUTHENTICATED (16)', LIMIT, async () => {
    const c = makeClient({ address: server.address, token: `${TOKEN}x` });
    assert.equal(await codeOf(c.submit('demo', { steps: 1 })), UNAUTHENTICATED);
    assert.equal(await codeOf(c.list()), UNAUTHENTICATED);
    assert.equal(await codeOf(watchAll(c, 'x')), UNAUTHENTICATED);
  });

  test('the right token: submit, get and watch work', LIMIT, async () => {
    const c = makeClient({ address: server.address, token: TOKEN });
    const { task, created } = await c.submit('demo', { steps: 2, step_seconds: 0.01 });
    assert.equal(created, true);
    assert.equal((await c.get(task.taskId)).taskId, task.taskId);
    const states = await watchAll(c, task.taskId);
    assert.equal(states[states.length - 1], 'SUCCESS');
  });

  test('any token of the file works, and TASKSERVICE_TOKEN is the default', LIMIT, async () => {
    const c = withEnv({ TASKSERVICE_TOKEN: OTHER }, () => new TaskClient({ address: server.address, tlsCa: '', tlsCert: '', tlsKey: '', timeoutMs: 5_000 }));
    clients.push(c);
    assert.equal(c.token, OTHER);
    const { created } = await c.submit('demo', { steps: 1, step_seconds: 0.01 });
    assert.equal(created, true);
  });
});

// ------------------------------------------------------------------------------------------ TLS

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const NO_OPENSSL =
  openssl.error || openssl.status !== 0 ? 'the openssl command-line tool is not on PATH: TLS tests skipped' : false;

function run(args, cwd) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.stderr}`);
}

/** A CA and a certificate it signed, as PEM files in dir: {ca, cert, key} paths. */
function makeCa(dir, name) {
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '2', '-subj', `/CN=${name} test CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return path.join(dir, `${name}-ca.pem`);
}

function issue(dir, caName, name, extensions) {
  fs.writeFileSync(path.join(dir, `${name}.ext`), `${extensions.join('\n')}\n`);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  run(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}-ca.pem`, '-CAkey', `${caName}-ca.key`,
    '-set_serial', String(Date.now()), '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`], dir);
  return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
}

describe('TLS (--tls-cert/--tls-key)', { skip: NO_OPENSSL }, () => {
  let dir;
  let ca;
  let otherCa;
  let server;

  before(async () => {
    dir = tmpDir('taskservice-node-tls-');
    ca = makeCa(dir, 'main');
    otherCa = makeCa(dir, 'other');
    const serverCert = issue(dir, 'main', 'server', [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'extendedKeyUsage=serverAuth',
      'basicConstraints=CA:FALSE',
    ]);
    server = await startServer({ dir, extraArgs: ['--tls-cert', serverCert.cert, '--tls-key', serverCert.key] });
    servers.push(server);
  });

  test('a client trusting the CA (tlsCa) can submit and watch', LIMIT, async () => {
    const c = makeClient({ address: server.address, tlsCa: ca });
    assert.equal(c.tls, true);
    const { task, created } = await c.submit('demo', { steps: 2, step_seconds: 0.01 });
    assert.equal(created, true);
    const states = await watchAll(c, task.taskId);
    assert.equal(states[states.length - 1], 'SUCCESS');
  });

  test('TASKSERVICE_TLS_CA turns TLS on by default; localhost matches the certificate too', LIMIT, async () => {
    const c = withEnv({ TASKSERVICE_TLS_CA: ca }, () =>
      new TaskClient({ address: `localhost:${server.port}`, token: '', tlsCert: '', tlsKey: '', timeoutMs: 5_000 }),
    );
    clients.push(c);
    assert.equal(c.tls, true);
    assert.equal((await c.submit('demo', { steps: 1, step_seconds: 0.01 })).created, true);
  });

  test('a client without TLS fails (UNAVAILABLE)', LIMIT, async () => {
    const c = makeClient({ address: server.address, timeoutMs: 3_000 });
    assert.equal(c.tls, false);
    assert.equal(await codeOf(c.submit('demo', { steps: 1 })), UNAVAILABLE);
  });

  test('a client trusting another CA fails (UNAVAILABLE)', LIMIT, async () => {
    const c = makeClient({ address: server.address, tlsCa: otherCa, timeoutMs: 3_000 });
    assert.equal(await codeOf(c.submit('demo', { steps: 1 })), UNAVAILABLE);
  });
});

describe('mutual TLS (--tls-client-ca)', { skip: NO_OPENSSL }, () => {
  let dir;
  let ca;
  let client;
  let stranger;
  let server;

  before(async () => {
    dir = tmpDir('taskservice-node-mtls-');
    ca = makeCa(dir, 'main');
    makeCa(dir, 'other');
    const serverCert = issue(dir, 'main', 'server', [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'extendedKeyUsage=serverAuth',
      'basicConstraints=CA:FALSE',
    ]);
    client = issue(dir, 'main', 'client', ['extendedKeyUsage=clientAuth', 'basicConstraints=CA:FALSE']);
    stranger = issue(dir, 'other', 'stranger', ['extendedKeyUsage=clientAuth', 'basicConstraints=CA:FALSE']);
    server = await startServer({
      dir,
      extraArgs: ['--tls-cert', serverCert.cert, '--tls-key', serverCert.key, '--tls-client-ca', ca],
    });
    servers.push(server);
  });

  test('a client with a certificate the client CA signed can submit', LIMIT, async () => {
    const c = makeClient({ address: server.address, tlsCa: ca, tlsCert: client.cert, tlsKey: client.key });
    assert.equal((await c.submit('demo', { steps: 1, step_seconds: 0.01 })).created, true);
  });

  test('TASKSERVICE_CLIENT_CERT / TASKSERVICE_CLIENT_KEY are the defaults', LIMIT, async () => {
    const c = withEnv({ TASKSERVICE_TLS_CA: ca, TASKSERVICE_CLIENT_CERT: client.cert, TASKSERVICE_CLIENT_KEY: client.key }, () =>
      new TaskClient({ address: server.address, token: '', timeoutMs: 5_000 }),
    );
    clients.push(c);
    assert.equal((await c.submit('demo', { steps: 1, step_seconds: 0.01 })).created, true);
  });

  test('a client without a certificate, or with one another CA signed, fails', LIMIT, async () => {
    const none = makeClient({ address: server.address, tlsCa: ca, timeoutMs: 3_000 });
    assert.equal(await codeOf(none.submit('demo', { steps: 1 })), UNAVAILABLE);
    const foreign = makeClient({ address: server.address, tlsCa: ca, tlsCert: stranger.cert, tlsKey: stranger.key, timeoutMs: 3_000 });
    assert.equal(await codeOf(foreign.submit('demo', { steps: 1 })), UNAVAILABLE);
  });

  test('tlsCert without tlsKey, or without tlsCa, is refused when the client is made', LIMIT, () => {
    assert.throws(() => new TaskClient({ address: server.address, tlsCa: ca, tlsCert: client.cert, tlsKey: '' }), /go together/);
    assert.throws(() => new TaskClient({ address: server.address, tlsCa: '', tlsCert: client.cert, tlsKey: client.key }), /needs TLS/);
  });
});
