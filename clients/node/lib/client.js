'use strict';
// TaskClient: a promise-based Node.js client for taskservice.v1.TaskService.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const convert = require('./convert');
const { TaskServiceError, Status, CODE_NAMES } = require('./errors');
const { PROTOS } = require('./protos');

const DEFAULT_ADDRESS = '127.0.0.1:50051';
const DEFAULT_TIMEOUT_MS = 30_000;
// wait(): one WaitTask call waits at most this long; its deadline leaves the server this much longer to answer.
const WAIT_CALL_MS = 60_000;
const WAIT_CALL_GRACE_MS = 5_000;

// The trace context headers a client passes on (what OpenTelemetry's W3C propagators write).
const TRACE_HEADERS = new Set(['traceparent', 'tracestate', 'baggage']);

/** The contract: the package's copy, or the repository's (protos.js). */
const DEFAULT_PROTO = path.join(PROTOS, 'taskservice', 'v1', 'task_service.proto');

/**
 * proto-loader options, chosen once for the whole client:
 * - keepCase: false  -> camelCase field names (taskId), as is usual in JS;
 * - longs: String    -> int64/uint64 arrive as decimal strings, never rounded (the client then
 *                       turns event sequences into BigInt and progress counters into Number);
 * - enums: String    -> 'TASK_STATE_SUCCESS';
 * - defaults, arrays, objects: true -> unset scalars/lists/maps are filled in; unset messages are null;
 * - oneofs: true     -> google.protobuf.Value carries `kind` naming its set member.
 * google/protobuf/{struct,timestamp,duration}.proto come bundled with protobufjs (proto-loader's
 * parser); includeDirs adds the root of the proto tree for any other import, and the client's own protos
 * always come last: google/api/annotations.proto (the HTTP routes the proto declares) is there, so a
 * task_service.proto copied anywhere still loads.
 */
const BUNDLED_PROTOS = PROTOS;
const LOADER_OPTIONS = Object.freeze({
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
});

const definitions = new Map();

/**
 * Loads taskservice.v1.TaskService from `protoPath` (default: TASKSERVICE_PROTO, else this
 * repository's protos/taskservice/v1/task_service.proto) and returns the grpc-js client constructor.
 */
function loadTaskService(protoPath, includeDirs) {
  const file = path.resolve(protoPath || process.env.TASKSERVICE_PROTO || DEFAULT_PROTO);
  const dirs = [...(includeDirs || [path.resolve(path.dirname(file), '..', '..'), path.dirname(file)]), BUNDLED_PROTOS];
  const key = JSON.stringify([file, dirs]);
  if (!definitions.has(key)) {
    if (!fs.existsSync(file)) {
      throw new Error(`task_service.proto not found at ${file}; set TASKSERVICE_PROTO or the protoPath option`);
    }
    const packageDefinition = protoLoader.loadSync(file, { ...LOADER_OPTIONS, includeDirs: dirs });
    const loaded = grpc.loadPackageDefinition(packageDefinition);
    definitions.set(key, loaded.taskservice.v1.TaskService);
  }
  return definitions.get(key);
}

function readPem(file, what) {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${err.message}`);
  }
}

function env(name) {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class TaskClient {
  /**
   * @param {object} [options]
   * @param {string} [options.address]  host:port; default env TASKSERVICE_ADDR, else 127.0.0.1:50051
   * @param {string} [options.token]    bearer token sent on every call; default env TASKSERVICE_TOKEN
   * @param {string} [options.tlsCa]    PEM file of the CA to trust; when set the channel uses TLS
   *                                    (default env TASKSERVICE_TLS_CA), else it is insecure
   * @param {string} [options.tlsCert]  PEM client certificate for mutual TLS (env TASKSERVICE_CLIENT_CERT)
   * @param {string} [options.tlsKey]   PEM key of tlsCert (env TASKSERVICE_CLIENT_KEY)
   * @param {string} [options.tlsServerName] name to verify the server certificate against, when it
   *                                    differs from the address' host
   * @param {number} [options.timeoutMs] deadline of each unary call (default 30000; 0: none)
   * @param {string} [options.protoPath] task_service.proto to load (default env TASKSERVICE_PROTO,
   *                                    else the repository's copy)
   * @param {string[]} [options.includeDirs] proto import paths (default: the proto tree's root)
   * @param {number} [options.reconnectTimeoutMs] how long a broken watch or wait keeps reconnecting to a
   *                                    server that does not answer (default 30000, as the Python client)
   * @param {number} [options.watchRetries]  reconnect attempts of a watch in a row at most (default: no limit
   *                                    but reconnectTimeoutMs)
   * @param {number} [options.watchBackoffMs] first reconnect delay, doubled each time up to 2 s (default 100)
   * @param {object} [options.channelOptions] extra grpc-js channel options
   * @param {object|function} [options.traceContext] W3C trace context headers ({traceparent, tracestate}) sent
   *                                    with every call, or a function returning them per call: with
   *                                    OpenTelemetry, `() => { const h = {}; propagation.inject(context.active(), h);
   *                                    return h; }`, so the server's spans and the task's join the caller's trace
   */
  constructor(options = {}) {
    this.address = options.address || env('TASKSERVICE_ADDR') || DEFAULT_ADDRESS;
    this.token = options.token !== undefined ? options.token : env('TASKSERVICE_TOKEN');
    this.timeoutMs = options.timeoutMs !== undefined ? options.timeoutMs : DEFAULT_TIMEOUT_MS;
    this.reconnectTimeoutMs = options.reconnectTimeoutMs !== undefined ? options.reconnectTimeoutMs : 30_000;
    this.watchRetries = options.watchRetries !== undefined ? options.watchRetries : Infinity;
    this.watchBackoffMs = options.watchBackoffMs !== undefined ? options.watchBackoffMs : 100;
    this.traceContext = options.traceContext || null;

    const tlsCa = options.tlsCa !== undefined ? options.tlsCa : env('TASKSERVICE_TLS_CA');
    const tlsCert = options.tlsCert !== undefined ? options.tlsCert : env('TASKSERVICE_CLIENT_CERT');
    const tlsKey = options.tlsKey !== undefined ? options.tlsKey : env('TASKSERVICE_CLIENT_KEY');
    if (Boolean(tlsCert) !== Boolean(tlsKey)) {
      throw new Error('tlsCert and tlsKey (TASKSERVICE_CLIENT_CERT / TASKSERVICE_CLIENT_KEY) go together');
    }
    if (tlsCert && !tlsCa) {
      throw new Error('a client certificate (tlsCert) needs TLS: set tlsCa (TASKSERVICE_TLS_CA) as well');
    }
    let credentials;
    const channelOptions = {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      'grpc.max_send_message_length': 16 * 1024 * 1024,
      ...(options.channelOptions || {}),
    };
    if (tlsCa) {
      credentials = grpc.credentials.createSsl(
        readPem(tlsCa, 'TLS CA'),
        tlsKey ? readPem(tlsKey, 'TLS key') : null,
        tlsCert ? readPem(tlsCert, 'TLS certificate') : null,
      );
      if (options.tlsServerName) channelOptions['grpc.ssl_target_name_override'] = options.tlsServerName;
    } else {
      credentials = grpc.credentials.createInsecure();
    }
    this.tls = Boolean(tlsCa);
    const Service = loadTaskService(options.protoPath, options.includeDirs);
    this._stub = new Service(this.address, credentials, channelOptions);
  }

  /** Closes the channel. Calls in flight are cancelled. */
  close() {
    this._stub.close();
  }

  _metadata() {
    const md = new grpc.Metadata();
    if (this.token) md.set('authorization', `Bearer ${this.token}`);
    const traced = typeof this.traceContext === 'function' ? this.traceContext() : this.traceContext;
    for (const [name, value] of Object.entries(traced || {})) {
      if (TRACE_HEADERS.has(name) && typeof value === 'string' && value) md.set(name, value);
    }
    return md;
  }

  _callOptions(timeoutMs) {
    const ms = timeoutMs !== undefined ? timeoutMs : this.timeoutMs;
    return ms ? { deadline: new Date(Date.now() + ms) } : {};
  }

  _unary(method, request, timeoutMs) {
    return new Promise((resolve, reject) => {
      this._stub[method](request, this._metadata(), this._callOptions(timeoutMs), (err, response) => {
        if (err) reject(TaskServiceError.fromGrpc(err));
        else resolve(response);
      });
    });
  }

  /**
   * Queues a task. Resolves to {task, created}; created is false when the same request with this
   * taskId had been accepted before.
   * @param {string} taskType a registered type, e.g. 'demo'
   * @param {object} [args] plain JSON-like object (numbers travel as doubles)
   * @param {{taskId?: string, timeLimitSeconds?: number, priority?: number, labels?: Object<string,string>, notBefore?: Date, delaySeconds?: number, retentionSeconds?: number, after?: string[], timeoutMs?: number}} [opts]
   *   notBefore or delaySeconds: run it later (PENDING, with scheduledAt, until then); retentionSeconds: keep it
   *   this long once ended instead of the server's --retention (0: for ever); after: ids of tasks that must
   *   succeed first (it ends REVOKED, error type DependencyFailed, when one does not)
   */
  async submit(taskType, args = {}, opts = {}) {
    const request = {
      taskType,
      args: convert.structToProto(args, 'args'),
      taskId: opts.taskId || '',
      timeLimit: convert.durationToProto(opts.timeLimitSeconds),
      priority: opts.priority || 0,
      labels: { ...(opts.labels || {}) },
      notBefore: convert.timestampToProto(opts.notBefore),
      delay: convert.durationToProto(opts.delaySeconds, 'delaySeconds'),
      retention: convert.durationToProto(opts.retentionSeconds, 'retentionSeconds'),
      after: convert.taskIdsToProto(opts.after, 'after'),
    };
    const response = await this._unary('Submit', request, opts.timeoutMs);
    return { task: convert.taskFromProto(response.task), created: Boolean(response.created) };
  }

  /** The task as it is now; rejects with NOT_FOUND (code 5) for an unknown id. */
  async get(taskId, opts = {}) {
    const response = await this._unary('GetState', { taskId }, opts.timeoutMs);
    return convert.taskFromProto(response.task);
  }

  /** Stops a task: PENDING -> REVOKED at once; RUNNING -> STOPPING (REVOKED when the handler ends). */
  async stop(taskId, reason = '', opts = {}) {
    const response = await this._unary('Stop', { taskId, reason: reason || '' }, opts.timeoutMs);
    return convert.taskFromProto(response.task);
  }

  /**
   * Stops every unfinished task that matches the filters (states: 'PENDING' and/or 'RUNNING'), as stop()
   * each; resolves to {revoked, stopping}. With no filter at all it needs `all: true`.
   * @param {{states?: string[], taskType?: string, labels?: Object<string,string>, scheduled?: boolean, reason?: string, all?: boolean, timeoutMs?: number}} [opts]
   */
  async stopTasks(opts = {}) {
    const request = {
      states: (opts.states || []).map(convert.stateToProto),
      taskType: opts.taskType || '',
      labels: { ...(opts.labels || {}) },
      scheduled: Boolean(opts.scheduled),
      reason: opts.reason || '',
      all: Boolean(opts.all),
    };
    const response = await this._unary('StopTasks', request, opts.timeoutMs);
    return { revoked: Number(response.revoked || 0), stopping: Number(response.stopping || 0) };
  }

  /** Deletes an ended task now, with its log; resolves to it as it was. FAILED_PRECONDITION (9) if unfinished. */
  async deleteTask(taskId, opts = {}) {
    const response = await this._unary('DeleteTask', { taskId }, opts.timeoutMs);
    return convert.taskFromProto(response.task);
  }

  /**
   * Deletes every ended task that matches the filters (states: ended ones; endedBefore: a Date); resolves to
   * how many. With no filter at all it needs `all: true`.
   * @param {{states?: string[], taskType?: string, labels?: Object<string,string>, endedBefore?: Date, all?: boolean, timeoutMs?: number}} [opts]
   */
  async deleteTasks(opts = {}) {
    const request = {
      states: (opts.states || []).map(convert.stateToProto),
      taskType: opts.taskType || '',
      labels: { ...(opts.labels || {}) },
      endedBefore: convert.timestampToProto(opts.endedBefore, 'endedBefore'),
      all: Boolean(opts.all),
    };
    const response = await this._unary('DeleteTasks', request, opts.timeoutMs);
    return Number(response.deleted || 0);
  }

  /**
   * Runs a task that ended FAILURE, TIMED_OUT, REVOKED or LOST again, as its next attempt; resolves to it,
   * PENDING. FAILED_PRECONDITION (9) for a task in another state; `reason` goes to the task's log.
   */
  async retry(taskId, reason = '', opts = {}) {
    const response = await this._unary('RetryTask', { taskId, reason: reason || '' }, opts.timeoutMs);
    return convert.taskFromProto(response.task);
  }

  /**
   * Creates a schedule: `taskType` with `args` submitted on a cron expression (opts.cron: five fields, or six
   * with seconds last, read in opts.timeZone, UTC by default) or every opts.intervalSeconds, each firing as task
   * `<scheduleId>:<due time>`. Resolves to {schedule, created}; created is false when the same definition was
   * there already (another one under the id rejects with ALREADY_EXISTS).
   * @param {{cron?: string, timeZone?: string, intervalSeconds?: number, catchUp?: 'SKIP'|'ONCE'|'ALL', paused?: boolean, timeLimitSeconds?: number, priority?: number, labels?: Object<string,string>, retentionSeconds?: number, timeoutMs?: number}} [opts]
   */
  async createSchedule(scheduleId, taskType, args = {}, opts = {}) {
    const schedule = {
      scheduleId,
      task: {
        taskType,
        args: convert.structToProto(args, 'args'),
        timeLimit: convert.durationToProto(opts.timeLimitSeconds),
        priority: opts.priority || 0,
        labels: { ...(opts.labels || {}) },
        retention: convert.durationToProto(opts.retentionSeconds, 'retentionSeconds'),
      },
      catchUp: convert.catchUpToProto(opts.catchUp),
      paused: Boolean(opts.paused),
    };
    if (opts.intervalSeconds !== undefined && opts.intervalSeconds !== null) {
      schedule.interval = convert.durationToProto(opts.intervalSeconds, 'intervalSeconds');
    } else {
      schedule.cron = { expression: opts.cron || '', timeZone: opts.timeZone || '' };
    }
    // validateOnly: the checks alone, and the schedule as it would be (its upcoming due times), nothing stored.
    const response = await this._unary('CreateSchedule', { schedule, validateOnly: Boolean(opts.validateOnly) }, opts.timeoutMs);
    return { schedule: convert.scheduleFromProto(response.schedule), created: Boolean(response.created) };
  }

  /** A schedule as it is now; rejects with NOT_FOUND for an unknown id. */
  async getSchedule(scheduleId, opts = {}) {
    return this._scheduleCall('GetSchedule', scheduleId, opts);
  }

  /** One page of schedules in id order: {schedules, nextPageToken} ('' on the last page). */
  async listSchedules(opts = {}) {
    const request = { pageSize: opts.pageSize || 0, pageToken: opts.pageToken || '' };
    const response = await this._unary('ListSchedules', request, opts.timeoutMs);
    return {
      schedules: (response.schedules || []).map(convert.scheduleFromProto),
      nextPageToken: response.nextPageToken || '',
    };
  }

  /** Stops a schedule firing until resumed. */
  async pauseSchedule(scheduleId, opts = {}) {
    return this._scheduleCall('PauseSchedule', scheduleId, opts);
  }

  /** Fires again from the next due time after now (those missed while paused are skipped). */
  async resumeSchedule(scheduleId, opts = {}) {
    return this._scheduleCall('ResumeSchedule', scheduleId, opts);
  }

  /** Removes a schedule; the tasks it submitted stay. Resolves to the schedule as it was. */
  async deleteSchedule(scheduleId, opts = {}) {
    return this._scheduleCall('DeleteSchedule', scheduleId, opts);
  }

  /**
   * Creates a limit: at most opts.maxRunning tasks running at once and/or opts.rate starts ('10/s', '100/m',
   * '5/30s', or {count, periodSeconds}) per group of the tasks it covers (opts.taskType, opts.labels), the groups
   * made by the value of the label opts.keyLabel (e.g. 'customer'). opts.onFull: 'QUEUE' (default),
   * 'REFUSE_NEWEST' (past maxRunning + opts.maxWaiting) or 'STOP_OLDEST'; opts.weights: a group's share of fair
   * turns. Resolves to {limit, created}; created is false when the same definition was there already (another
   * one under the id rejects with ALREADY_EXISTS).
   * @param {{taskType?: string, labels?: Object<string,string>, keyLabel?: string, maxRunning?: number, rate?: string|{count: number, periodSeconds: number}, burst?: number, onFull?: 'QUEUE'|'REFUSE_NEWEST'|'STOP_OLDEST', maxWaiting?: number, weights?: Object<string,number>, timeoutMs?: number}} [opts]
   */
  async createLimit(limitId, opts = {}) {
    const response = await this._unary('CreateLimit', { limit: convert.limitToProto(limitId, opts) }, opts.timeoutMs);
    return { limit: convert.limitFromProto(response.limit), created: Boolean(response.created) };
  }

  /** A limit as defined; rejects with NOT_FOUND for an unknown id. */
  async getLimit(limitId, opts = {}) {
    const response = await this._unary('GetLimit', { limitId }, opts.timeoutMs);
    return convert.limitFromProto(response.limit);
  }

  /** One page of limits in id order: {limits, nextPageToken} ('' on the last page). */
  async listLimits(opts = {}) {
    const request = { pageSize: opts.pageSize || 0, pageToken: opts.pageToken || '' };
    const response = await this._unary('ListLimits', request, opts.timeoutMs);
    return { limits: (response.limits || []).map(convert.limitFromProto), nextPageToken: response.nextPageToken || '' };
  }

  /** Replaces a limit's whole definition (opts as createLimit takes them); in force from the next claim. */
  async updateLimit(limitId, opts = {}) {
    const response = await this._unary('UpdateLimit', { limit: convert.limitToProto(limitId, opts) }, opts.timeoutMs);
    return convert.limitFromProto(response.limit);
  }

  /** Removes a limit: what it held back may start. Resolves to the limit as it was. */
  async deleteLimit(limitId, opts = {}) {
    const response = await this._unary('DeleteLimit', { limitId }, opts.timeoutMs);
    return convert.limitFromProto(response.limit);
  }

  /**
   * The overview of every server of the database: {counts: [{taskType, state, count}], minutes: [{start, started,
   * succeeded, failed}] (the last 60, oldest first), oldestRunnableAgeSeconds (null when none waits), time}.
   */
  async stats(opts = {}) {
    const response = await this._unary('GetStats', {}, opts.timeoutMs);
    return {
      counts: (response.counts || []).map((c) => ({ taskType: c.taskType, state: convert.stateFromProto(c.state),
        count: Number(c.count || 0) })),
      minutes: (response.minutes || []).map((m) => ({ start: convert.timestampFromProto(m.start),
        started: Number(m.started || 0), succeeded: Number(m.succeeded || 0), failed: Number(m.failed || 0) })),
      oldestRunnableAgeSeconds: convert.durationFromProto(response.oldestRunnableAge),
      time: convert.timestampFromProto(response.time),
      limits: (response.limits || []).map((c) => ({ limitId: c.limitId, running: Number(c.running || 0),
        waiting: Number(c.waiting || 0) })),
    };
  }

  /**
   * A task's stored life, oldest first: [{time, state, attempt, progress}], each state change (progress null) and
   * a sample of its progress each time a run passed another tenth of the way. NOT_FOUND for an unknown id.
   * @param {string} taskId
   */
  async history(taskId, opts = {}) {
    const response = await this._unary('GetTaskHistory', { taskId }, opts.timeoutMs);
    return (response.entries || []).map((e) => ({
      time: convert.timestampFromProto(e.time), state: convert.stateFromProto(e.state), attempt: Number(e.attempt || 0),
      progress: e.progress ? convert.progressFromProto(e.progress) : null,
    }));
  }

  /**
   * The servers of the database (each engine process), by name: [{node, taskTypes, onlyLabels, startedAt, lastSeen,
   * workers, busy, abandoned}].
   */
  async nodes(opts = {}) {
    const response = await this._unary('ListNodes', {}, opts.timeoutMs);
    return (response.nodes || []).map((n) => ({
      node: n.node, taskTypes: [...(n.taskTypes || [])], onlyLabels: { ...(n.onlyLabels || {}) },
      startedAt: convert.timestampFromProto(n.startedAt), lastSeen: convert.timestampFromProto(n.lastSeen),
      workers: Number(n.workers || 0), busy: Number(n.busy || 0), abandoned: Number(n.abandoned || 0),
    }));
  }

  /**
   * The task types the server runs, by name: [{name, description, args: [{name, kind, required, pathRole,
   * choices, rule, hasDefault, default, description}], acceptsExtraArgs, rerunOnRestart, nodes}].
   */
  async taskTypes(opts = {}) {
    const response = await this._unary('ListTaskTypes', {}, opts.timeoutMs);
    return (response.taskTypes || []).map((t) => ({
      name: t.name,
      description: t.description,
      args: (t.args || []).map((a) => ({
        name: a.name,
        kind: a.kind,
        required: Boolean(a.required),
        pathRole: a.pathRole || '',
        choices: (a.choices || []).map(convert.valueFromProto),
        rule: a.rule || '',
        // What the handler takes when the arg is left out (hasDefault false for a required arg).
        hasDefault: a.defaultValue !== null && a.defaultValue !== undefined,
        default: a.defaultValue ? convert.valueFromProto(a.defaultValue) : undefined,
        // What the handler's docstring says of it ('' when it says nothing).
        description: a.description || '',
      })),
      acceptsExtraArgs: Boolean(t.acceptsExtraArgs),
      rerunOnRestart: Boolean(t.rerunOnRestart),
      // The servers on the server's database that claim this type: {node, onlyLabels, lastSeen}.
      nodes: (t.nodes || []).map((n) => ({ node: n.node, onlyLabels: { ...(n.onlyLabels || {}) }, lastSeen: convert.timestampFromProto(n.lastSeen) })),
    }));
  }

  async _scheduleCall(method, scheduleId, opts) {
    const response = await this._unary(method, { scheduleId }, opts.timeoutMs);
    return convert.scheduleFromProto(response.schedule);
  }

  /**
   * One page of tasks, newest first unless orderBy says otherwise: {tasks, nextPageToken} ('' on the last page).
   * @param {{states?: string[], taskType?: string, labels?: Object<string,string>, scheduled?: boolean, waitingForLimit?: string, parentId?: string, search?: string, submittedAfter?: Date, submittedBefore?: Date, dependsOn?: string, orderBy?: string, pageSize?: number, pageToken?: string, timeoutMs?: number}} [opts]
   *   states: short ('RUNNING') or full ('TASK_STATE_RUNNING') names; scheduled: only tasks waiting for their time;
   *   waitingForLimit: only PENDING tasks that limit holds back; parentId: only that task's children;
   *   search: an id prefix, or text in the args or the error; submittedAfter/submittedBefore: a time range;
   *   dependsOn: the tasks that run after that one; orderBy: 'submitted_at', 'started_at', 'ended_at' or
   *   'duration', then ' asc' or ' desc' (keep it for the pages that follow)
   */
  async list(opts = {}) {
    const request = {
      pageSize: opts.pageSize || 0,
      pageToken: opts.pageToken || '',
      states: (opts.states || []).map(convert.stateToProto),
      taskType: opts.taskType || '',
      labels: { ...(opts.labels || {}) },
      scheduled: Boolean(opts.scheduled),
      waitingForLimit: opts.waitingForLimit || '',
      parentId: opts.parentId || '',
      search: opts.search || '',
      submittedAfter: convert.timestampToProto(opts.submittedAfter, 'submittedAfter'),
      submittedBefore: convert.timestampToProto(opts.submittedBefore, 'submittedBefore'),
      dependsOn: opts.dependsOn || '',
      orderBy: opts.orderBy || '',
    };
    const response = await this._unary('ListTasks', request, opts.timeoutMs);
    return { tasks: response.tasks.map(convert.taskFromProto), nextPageToken: response.nextPageToken || '' };
  }

  /**
   * The events of a task, as an async iterator that ends after the terminal event.
   *
   * The first event is a snapshot (unless afterSequence is given), then every state change and
   * progress update, each with a growing `sequence` (BigInt). Once it has received an event, a watch
   * whose stream breaks (UNAVAILABLE, or an early end) reconnects with afterSequence = the last
   * sequence seen, for up to `reconnectTimeoutMs` with a doubling backoff; on OUT_OF_RANGE it
   * goes on from a fresh snapshot. A watch that never received an event fails at once. Any other
   * error rejects the iteration with a TaskServiceError. Breaking out of the loop cancels the stream.
   *
   * @param {string} taskId
   * @param {{afterSequence?: bigint|number|string, timeoutMs?: number}} [opts]
   *   timeoutMs bounds the whole watch (DEADLINE_EXCEEDED); none by default.
   */
  watch(taskId, opts = {}) {
    return this._watch(taskId, opts.afterSequence, opts.timeoutMs);
  }

  async *_watch(taskId, afterSequence, timeoutMs) {
    const deadline = timeoutMs ? Date.now() + timeoutMs : null;
    let last = convert.toSequence(afterSequence); // a bad value rejects the first next(), like any error
    let resync = false; // after OUT_OF_RANGE the fresh snapshot may carry any sequence
    let connected = false;
    const failing = { failures: 0, since: 0 };
    for (;;) {
      if (deadline !== null && Date.now() >= deadline) {
        throw new TaskServiceError({ code: Status.DEADLINE_EXCEEDED, details: `watch of task ${taskId} timed out` });
      }
      const callOptions = deadline !== null ? { deadline: new Date(deadline) } : {};
      const call = this._stub.WatchProgress({ taskId, afterSequence: last.toString() }, this._metadata(), callOptions);
      call.on('error', () => {}); // errors are read through the iterator below; never an unhandled 'error'
      let error = null;
      let received = 0;
      try {
        for await (const message of call) {
          received += 1;
          const event = convert.eventFromProto(message);
          connected = true;
          failing.failures = 0;
          if (!resync && event.sequence <= last) continue; // already seen before a reconnect
          resync = false;
          last = event.sequence;
          yield event;
          if (convert.isTerminal(event.state)) return;
        }
      } catch (err) {
        error = TaskServiceError.fromGrpc(err);
      } finally {
        call.cancel();
      }
      if (error === null && received === 0 && last !== 0n && !resync) {
        return; // resumed after the terminal event: the server has nothing more, and said OK
      }
      if (error === null) {
        error = new TaskServiceError({
          code: Status.UNAVAILABLE,
          details: `the watch of task ${taskId} ended before the task did`,
        });
      }
      if (error.code === Status.OUT_OF_RANGE && last !== 0n) {
        // The events after `last` are no longer kept: start again from a fresh snapshot.
        last = 0n;
        resync = true;
        continue;
      }
      const wait = this._reconnectAfter(error, connected, failing);
      if (wait === null) throw error;
      await delay(deadline !== null ? Math.max(0, Math.min(wait, deadline - Date.now())) : wait);
    }
  }

  /**
   * The events of many tasks (up to 10,000) in one WatchTasks stream, as an async iterator that ends once every
   * task has ended. Each event carries its taskId; a reconnect resumes every task after its last event, as
   * watch() does. Unknown ids reject with NOT_FOUND unless ignoreMissing.
   *
   * @param {string[]} taskIds
   * @param {{timeoutMs?: number, ignoreMissing?: boolean}} [opts] timeoutMs bounds the whole watch
   */
  async *watchMany(taskIds, opts = {}) {
    const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : null;
    const open = new Map([...new Set(taskIds)].map((taskId) => [taskId, 0n])); // task id -> last sequence seen
    let connected = false;
    const failing = { failures: 0, since: 0 };
    while (open.size > 0) {
      if (deadline !== null && Date.now() >= deadline) {
        throw new TaskServiceError({ code: Status.DEADLINE_EXCEEDED, details: `watch of ${taskIds.length} tasks timed out` });
      }
      const afterSequences = {};
      for (const [taskId, seen] of open) if (seen > 0n) afterSequences[taskId] = seen.toString();
      const request = { taskIds: [...open.keys()], afterSequences, ignoreMissing: Boolean(opts.ignoreMissing) };
      const call = this._stub.WatchTasks(request, this._metadata(), deadline !== null ? { deadline: new Date(deadline) } : {});
      call.on('error', () => {}); // read through the iterator below
      let error = null;
      try {
        for await (const message of call) {
          connected = true;
          failing.failures = 0;
          for (const item of message.events) {
            const event = convert.eventFromProto(item);
            const seen = open.get(event.taskId);
            if (seen === undefined || event.sequence <= seen) continue; // ended already, or seen before a reconnect
            if (convert.isTerminal(event.state)) open.delete(event.taskId);
            else open.set(event.taskId, event.sequence);
            yield event;
          }
        }
      } catch (err) {
        error = TaskServiceError.fromGrpc(err);
      } finally {
        call.cancel();
      }
      if (error === null) return; // the server ends it OK only once every task it watched has ended
      const wait = this._reconnectAfter(error, connected, failing);
      if (wait === null) throw error;
      await delay(deadline !== null ? Math.max(0, Math.min(wait, deadline - Date.now())) : wait);
    }
  }

  /**
   * How long to wait before reconnecting after `error`, or null to give up: only UNAVAILABLE of a server that
   * answered before, for up to reconnectTimeoutMs (and watchRetries) from the first failure in a row. A server
   * restarting under load may take tens of seconds; `failing` ({failures, since}) is the caller's count.
   */
  _reconnectAfter(error, connected, failing) {
    if (error.code !== Status.UNAVAILABLE || !connected) return null;
    const now = Date.now();
    if (failing.failures === 0) failing.since = now;
    if (failing.failures >= this.watchRetries || now - failing.since >= this.reconnectTimeoutMs) return null;
    const wait = Math.min(this.watchBackoffMs * 2 ** failing.failures, 2000);
    failing.failures += 1;
    return wait;
  }

  /**
   * One WaitTask call: resolves to {task, done} once the task has ended (done: true), or when
   * `timeoutSeconds` (none: until the call's deadline) passes first, with the task as it is (done: false).
   * @param {string} taskId
   * @param {{timeoutSeconds?: number, timeoutMs?: number}} [opts] timeoutMs: the call's deadline
   */
  async waitTask(taskId, opts = {}) {
    const request = { taskId, timeout: convert.durationToProto(opts.timeoutSeconds, 'timeoutSeconds') };
    const response = await this._unary('WaitTask', request, opts.timeoutMs);
    return { task: convert.taskFromProto(response.task), done: Boolean(response.done) };
  }

  /**
   * Resolves to the task once it has ended. WaitTask calls of at most a minute each; reconnects on
   * UNAVAILABLE as a watch does; against a server without WaitTask it watches instead.
   * @param {string} taskId
   * @param {{timeoutMs?: number}} [opts] timeoutMs bounds the whole wait (DEADLINE_EXCEEDED); none by default
   */
  async wait(taskId, opts = {}) {
    const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : null;
    let connected = false;
    const failing = { failures: 0, since: 0 };
    for (;;) {
      const leftMs = deadline === null ? WAIT_CALL_MS : Math.max(0, Math.min(deadline - Date.now(), WAIT_CALL_MS));
      let answer;
      try {
        answer = await this.waitTask(taskId, { timeoutSeconds: leftMs / 1000, timeoutMs: leftMs + WAIT_CALL_GRACE_MS });
      } catch (err) {
        if (err.code === Status.UNIMPLEMENTED) return this._waitByWatch(taskId, deadline);
        const wait = this._reconnectAfter(err, connected, failing);
        if (wait === null) throw err;
        await delay(deadline !== null ? Math.max(0, Math.min(wait, deadline - Date.now())) : wait);
        continue;
      }
      connected = true;
      failing.failures = 0;
      if (answer.done) return answer.task;
      if (deadline !== null && Date.now() >= deadline) {
        throw new TaskServiceError({
          code: Status.DEADLINE_EXCEEDED,
          details: `task ${taskId} did not finish within ${opts.timeoutMs} ms (still ${answer.task.state})`,
        });
      }
    }
  }

  async _waitByWatch(taskId, deadline) {
    let final = null;
    const timeoutMs = deadline === null ? undefined : Math.max(1, deadline - Date.now());
    for await (const event of this.watch(taskId, { timeoutMs })) {
      if (convert.isTerminal(event.state)) final = event.task;
    }
    return final || this.get(taskId);
  }
}

module.exports = {
  TaskClient,
  TaskServiceError,
  Status,
  CODE_NAMES,
  TaskState: convert.TaskState,
  TERMINAL_STATES: convert.TERMINAL_STATES,
  isTerminal: convert.isTerminal,
  structToProto: convert.structToProto,
  structFromProto: convert.structFromProto,
  valueToProto: convert.valueToProto,
  valueFromProto: convert.valueFromProto,
  loadTaskService,
  LOADER_OPTIONS,
  DEFAULT_PROTO,
};
