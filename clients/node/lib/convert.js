'use strict';
// Conversions between the proto-loader message objects and plain JS values.
//
// The proto is loaded with keepCase: false (camelCase field names), longs: String (int64/uint64
// arrive as decimal strings, never rounded), enums: String, defaults: true, oneofs: true. These
// helpers turn that shape into what users of TaskClient see: plain objects for Struct/Value,
// Date for Timestamp, seconds (Number) for Duration, short state names ('SUCCESS'), and a BigInt
// for the uint64 event sequence.

const STATE_PREFIX = 'TASK_STATE_';

/** Every TaskState by its short name; the values are the short names too ('SUCCESS'). */
const TaskState = Object.freeze({
  UNSPECIFIED: 'UNSPECIFIED',
  PENDING: 'PENDING',
  RUNNING: 'RUNNING',
  STOPPING: 'STOPPING',
  SUCCESS: 'SUCCESS',
  FAILURE: 'FAILURE',
  REVOKED: 'REVOKED',
  TIMED_OUT: 'TIMED_OUT',
  LOST: 'LOST',
});

const TERMINAL_STATES = Object.freeze(['SUCCESS', 'FAILURE', 'REVOKED', 'TIMED_OUT', 'LOST']);

function isTerminal(state) {
  return TERMINAL_STATES.includes(stateFromProto(state));
}

/** 'TASK_STATE_SUCCESS' (or a number) -> 'SUCCESS'. */
function stateFromProto(state) {
  if (typeof state === 'number') {
    return Object.keys(TaskState)[state] || String(state);
  }
  const name = String(state);
  return name.startsWith(STATE_PREFIX) ? name.slice(STATE_PREFIX.length) : name;
}

/** 'SUCCESS' or 'TASK_STATE_SUCCESS' (any case) -> 'TASK_STATE_SUCCESS'; TypeError for anything else. */
function stateToProto(state) {
  const short = stateFromProto(String(state).toUpperCase());
  if (!(short in TaskState) || short === 'UNSPECIFIED') {
    throw new TypeError(`unknown task state ${JSON.stringify(state)}; one of ${Object.keys(TaskState).slice(1).join(', ')}`);
  }
  return STATE_PREFIX + short;
}

// ---------------------------------------------------------------- Struct / Value

/**
 * A plain JS value -> google.protobuf.Value (proto-loader object form).
 * Numbers become doubles (a Struct has no integers); undefined inside an object is left out (as in
 * JSON), inside an array it becomes null; objects with toJSON() (e.g. Date) are converted through it.
 */
function valueToProto(value, path = 'value') {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  if (value !== undefined && typeof value === 'object' && typeof value.toJSON === 'function') {
    return valueToProto(value.toJSON(), path);
  }
  switch (typeof value) {
    case 'number':
      return { numberValue: value };
    case 'string':
      return { stringValue: value };
    case 'boolean':
      return { boolValue: value };
    case 'bigint': {
      const n = Number(value);
      if (!Number.isSafeInteger(n)) {
        throw new TypeError(`${path}: ${value} does not fit a double exactly (Struct numbers are doubles)`);
      }
      return { numberValue: n };
    }
    case 'object':
      if (Array.isArray(value)) {
        return {
          listValue: {
            values: value.map((item, i) => (item === undefined ? { nullValue: 'NULL_VALUE' } : valueToProto(item, `${path}[${i}]`))),
          },
        };
      }
      return { structValue: structToProto(value, path) };
    default:
      throw new TypeError(`${path}: a ${typeof value} cannot be sent in a google.protobuf.Struct`);
  }
}

/** A plain object -> google.protobuf.Struct. */
function structToProto(object, path = 'args') {
  if (object === null || object === undefined) return { fields: {} };
  if (typeof object !== 'object' || Array.isArray(object)) {
    throw new TypeError(`${path} must be a plain object, not ${Array.isArray(object) ? 'an array' : typeof object}`);
  }
  const fields = {};
  for (const [key, item] of Object.entries(object)) {
    if (item === undefined) continue;
    fields[key] = valueToProto(item, `${path}.${key}`);
  }
  return { fields };
}

/** google.protobuf.Value -> a plain JS value. An unset Value (null/undefined) is null. */
function valueFromProto(value) {
  if (value === null || value === undefined) return null;
  const kind = value.kind || Object.keys(value).find((k) => k.endsWith('Value') && value[k] !== undefined && value[k] !== null);
  switch (kind) {
    case 'nullValue':
      return null;
    case 'numberValue':
      return Number(value.numberValue);
    case 'stringValue':
      return value.stringValue;
    case 'boolValue':
      return Boolean(value.boolValue);
    case 'structValue':
      return structFromProto(value.structValue);
    case 'listValue':
      return ((value.listValue && value.listValue.values) || []).map(valueFromProto);
    default:
      return null;
  }
}

/** google.protobuf.Struct -> a plain object ({} when unset). */
function structFromProto(struct) {
  const out = {};
  if (!struct || !struct.fields) return out;
  for (const [key, item] of Object.entries(struct.fields)) out[key] = valueFromProto(item);
  return out;
}

// ---------------------------------------------------------------- time

/** google.protobuf.Timestamp -> Date, or null when unset. */
function timestampFromProto(ts) {
  if (!ts) return null;
  return new Date(Number(ts.seconds || 0) * 1000 + Math.round(Number(ts.nanos || 0) / 1e6));
}

/** google.protobuf.Duration -> seconds (Number), or null when unset. */
function durationFromProto(d) {
  if (!d) return null;
  return Number(d.seconds || 0) + Number(d.nanos || 0) / 1e9;
}

/** A Date as a google.protobuf.Timestamp; null stays null. */
function timestampToProto(date, name = 'notBefore') {
  if (date === null || date === undefined) return null;
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new TypeError(`${name} must be a valid Date, not ${String(date)}`);
  }
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1e6 };
}

/** A list of task ids (e.g. submit's `after`); null/undefined -> none. */
function taskIdsToProto(ids, name) {
  if (ids === undefined || ids === null) return [];
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw new TypeError(`${name} must be an array of task ids (strings)`);
  }
  return [...ids];
}

/** Seconds (Number) -> google.protobuf.Duration; null/undefined -> unset. */
function durationToProto(seconds, name = 'timeLimitSeconds') {
  if (seconds === null || seconds === undefined) return null;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) {
    throw new TypeError(`${name} must be a finite number of seconds, not ${String(seconds)}`);
  }
  const whole = Math.trunc(seconds);
  const nanos = Math.round((seconds - whole) * 1e9);
  return { seconds: String(whole), nanos };
}

// ---------------------------------------------------------------- messages

function progressFromProto(p) {
  p = p || {};
  return {
    percent: Number(p.percent || 0),
    message: p.message || '',
    // int64 on the wire (longs: String); exact as Numbers up to 2**53.
    current: Number(p.current || 0),
    total: Number(p.total || 0),
    updatedAt: timestampFromProto(p.updatedAt),
  };
}

function taskFromProto(t) {
  if (!t) return null;
  return {
    taskId: t.taskId,
    taskType: t.taskType,
    args: structFromProto(t.args),
    state: stateFromProto(t.state),
    progress: progressFromProto(t.progress),
    result: valueFromProto(t.result),
    error: t.error ? { type: t.error.type, message: t.error.message, traceback: t.error.traceback } : null,
    submittedAt: timestampFromProto(t.submittedAt),
    startedAt: timestampFromProto(t.startedAt),
    endedAt: timestampFromProto(t.endedAt),
    timeLimitSeconds: durationFromProto(t.timeLimit),
    priority: Number(t.priority || 0),
    labels: { ...(t.labels || {}) },
    attempt: Number(t.attempt || 0),
    // A PENDING task is not run before this (run later, or a retry's wait); null otherwise.
    scheduledAt: timestampFromProto(t.scheduledAt),
    // Kept this long once ended, when submitted with its own (0: for ever); null: the server's --retention.
    retentionSeconds: durationFromProto(t.retention),
    // The tasks it was submitted to run after.
    after: [...(t.after || [])],
    // What holds a PENDING task back: {limitIds, taskIds} (full limits, unmet dependencies); null when nothing.
    waitingFor: t.waitingFor ? { limitIds: [...(t.waitingFor.limitIds || [])], taskIds: [...(t.waitingFor.taskIds || [])] } : null,
    // The task whose handler submitted it (a child task), '' otherwise; detached: its parent's Stop leaves it running.
    parentId: t.parentId || '',
    detached: Boolean(t.detached),
  };
}

const CATCH_UP = ['SKIP', 'ONCE', 'ALL'];

/** 'SKIP', 'ONCE' or 'ALL' (any case; unset: ONCE) -> 'CATCH_UP_...'; TypeError for anything else. */
function catchUpToProto(catchUp) {
  if (catchUp === undefined || catchUp === null) return 'CATCH_UP_ONCE';
  const name = String(catchUp).toUpperCase();
  if (!CATCH_UP.includes(name)) throw new TypeError(`catchUp must be one of ${CATCH_UP.join(', ')}`);
  return `CATCH_UP_${name}`;
}

function scheduleFromProto(s) {
  const task = s.task || {};
  return {
    scheduleId: s.scheduleId,
    taskType: task.taskType,
    args: structFromProto(task.args),
    cron: s.cron ? s.cron.expression : '',
    timeZone: s.cron ? s.cron.timeZone : '',
    intervalSeconds: durationFromProto(s.interval),
    catchUp: String(s.catchUp || 'CATCH_UP_ONCE').replace('CATCH_UP_', ''),
    paused: Boolean(s.paused),
    nextDue: timestampFromProto(s.nextDue),
    createdAt: timestampFromProto(s.createdAt),
    lastDue: timestampFromProto(s.lastDue),
    lastTaskId: s.lastTaskId || '',
    lastError: s.lastError || '',
    // Its next due times, nextDue first (five; none while paused).
    upcoming: (s.upcoming || []).map(timestampFromProto),
    timeLimitSeconds: durationFromProto(task.timeLimit),
    priority: Number(task.priority || 0),
    labels: { ...(task.labels || {}) },
    retentionSeconds: durationFromProto(task.retention),
  };
}

const ON_FULL = ['QUEUE', 'REFUSE_NEWEST', 'STOP_OLDEST'];
const RATE = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$/;
const UNIT_SECONDS = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** '10/s', '100/m', '5/30s' or {count, periodSeconds} -> {count, periodSeconds}; TypeError for anything else. */
function parseRate(rate) {
  if (typeof rate === 'object' && rate !== null) return { count: rate.count, periodSeconds: rate.periodSeconds };
  const match = RATE.exec(String(rate));
  if (!match) throw new TypeError(`rate is COUNT/PERIOD, e.g. 10/s, 100/m or 5/30s; got ${String(rate)}`);
  return { count: Number(match[1]), periodSeconds: Number(match[2] || 1) * UNIT_SECONDS[match[3]] };
}

/** A limit's definition (createLimit's opts) -> the Limit message. */
function limitToProto(limitId, opts) {
  const onFull = String(opts.onFull || 'QUEUE').toUpperCase();
  if (!ON_FULL.includes(onFull)) throw new TypeError(`onFull must be one of ${ON_FULL.join(', ')}`);
  const limit = {
    limitId,
    taskType: opts.taskType || '',
    labels: { ...(opts.labels || {}) },
    keyLabel: opts.keyLabel || '',
    maxRunning: opts.maxRunning || 0,
    onFull: `ON_FULL_${onFull}`,
    maxWaiting: opts.maxWaiting || 0,
    weights: { ...(opts.weights || {}) },
  };
  if (opts.rate !== undefined && opts.rate !== null) {
    const { count, periodSeconds } = parseRate(opts.rate);
    limit.rate = { count, period: durationToProto(periodSeconds, 'rate'), burst: opts.burst || 0 };
  }
  return limit;
}

function limitFromProto(l) {
  return {
    limitId: l.limitId,
    taskType: l.taskType || '',
    labels: { ...(l.labels || {}) },
    keyLabel: l.keyLabel || '',
    maxRunning: Number(l.maxRunning || 0),
    rate: l.rate ? { count: Number(l.rate.count), periodSeconds: durationFromProto(l.rate.period), burst: Number(l.rate.burst || 1) } : null,
    onFull: String(l.onFull || 'ON_FULL_QUEUE').replace('ON_FULL_', ''),
    maxWaiting: Number(l.maxWaiting || 0),
    weights: { ...(l.weights || {}) },
    createdAt: timestampFromProto(l.createdAt),
    updatedAt: timestampFromProto(l.updatedAt),
  };
}

function eventFromProto(e) {
  return {
    taskId: e.taskId,
    // uint64: a BigInt, so it is exact whatever its size and compares correctly with < and >.
    sequence: BigInt(e.sequence || 0),
    state: stateFromProto(e.state),
    progress: progressFromProto(e.progress),
    time: timestampFromProto(e.time),
    // The full task on the snapshot and on every state change; null on progress-only events.
    task: taskFromProto(e.task),
  };
}

/** A sequence given by a user (bigint, number or decimal string) -> BigInt. */
function toSequence(value) {
  if (value === null || value === undefined) return 0n;
  let seq;
  try {
    seq = BigInt(value);
  } catch {
    throw new TypeError(`afterSequence must be a non-negative integer, not ${String(value)}`);
  }
  if (seq < 0n || seq >= 1n << 64n) throw new TypeError(`afterSequence ${seq} is not a uint64`);
  return seq;
}

module.exports = {
  TaskState,
  TERMINAL_STATES,
  isTerminal,
  stateFromProto,
  stateToProto,
  valueToProto,
  structToProto,
  valueFromProto,
  structFromProto,
  timestampFromProto,
  durationFromProto,
  durationToProto,
  taskIdsToProto,
  timestampToProto,
  catchUpToProto,
  scheduleFromProto,
  parseRate,
  limitToProto,
  limitFromProto,
  progressFromProto,
  taskFromProto,
  eventFromProto,
  toSequence,
};
