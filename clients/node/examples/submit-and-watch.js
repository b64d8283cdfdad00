#!/usr/bin/env node
'use strict';
// Submits a `demo` task and prints its progress live, then submits a `sleep` task and stops it.
// Exit code 0 when the demo ended SUCCESS and the sleep REVOKED, 1 otherwise, 2 on an error.
//
//   TASKSERVICE_ADDR=127.0.0.1:50051 node examples/submit-and-watch.js [steps=10] [step_seconds=0.1] ...
//
// Arguments are key=value demo args; values are JSON when they parse (steps=20 is a number).
// TASKSERVICE_TOKEN, TASKSERVICE_TLS_CA, TASKSERVICE_CLIENT_CERT and TASKSERVICE_CLIENT_KEY apply too.

const { TaskClient } = require('..');

function parseArgs(argv) {
  const args = { steps: 10, step_seconds: 0.1 };
  for (const item of argv) {
    const eq = item.indexOf('=');
    if (eq <= 0) {
      console.error(`usage: submit-and-watch.js [key=value ...]  (not key=value: ${JSON.stringify(item)})`);
      process.exit(2);
    }
    const raw = item.slice(eq + 1);
    let value;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    args[item.slice(0, eq)] = value;
  }
  return args;
}

async function main() {
  const client = new TaskClient();
  try {
    const demoArgs = parseArgs(process.argv.slice(2));
    const { task } = await client.submit('demo', demoArgs, { labels: { example: 'submit-and-watch' } });
    console.log(`submitted demo ${task.taskId} ${JSON.stringify(demoArgs)} to ${client.address}`);
    let demoState = null;
    for await (const event of client.watch(task.taskId)) {
      const pct = event.progress.percent.toFixed(0).padStart(3);
      console.log(`  #${event.sequence} ${event.state.padEnd(8)} ${pct}% ${event.progress.message}`);
      demoState = event.state;
      if (event.task && event.task.error) console.log(`  error: ${event.task.error.type}: ${event.task.error.message}`);
    }
    console.log(`demo ${task.taskId} ended ${demoState}`);

    const sleep = (await client.submit('sleep', { seconds: 60 }, { labels: { example: 'submit-and-watch' } })).task;
    console.log(`submitted sleep ${sleep.taskId}; stopping it`);
    const stopped = await client.stop(sleep.taskId, 'stopped by the example');
    console.log(`  stop answered ${stopped.state}`);
    const final = await client.wait(sleep.taskId);
    console.log(`sleep ${sleep.taskId} ended ${final.state}${final.error ? ` (${final.error.type}: ${final.error.message})` : ''}`);

    const ok = demoState === 'SUCCESS' && final.state === 'REVOKED';
    console.log(ok ? 'ok' : 'unexpected final states');
    return ok ? 0 : 1;
  } finally {
    client.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`submit-and-watch: ${err.message}`);
    process.exitCode = 2;
  },
);
