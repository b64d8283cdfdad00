// Types of the public API of taskservice-client (lib/client.js). Times are Date objects (null when unset),
// durations seconds (null when unset), event sequences BigInt.

import type { Metadata } from '@grpc/grpc-js';

export type TaskStateName = 'PENDING' | 'RUNNING' | 'STOPPING' | 'SUCCESS' | 'FAILURE' | 'REVOKED' | 'TIMED_OUT' | 'LOST';
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Labels = Record<string, string>;

export const TaskState: Readonly<Record<TaskStateName | 'UNSPECIFIED', string>>;
export const TERMINAL_STATES: readonly TaskStateName[];
export function isTerminal(state: string): boolean;

export interface Progress {
  percent: number;
  message: string;
  current: number;
  total: number;
  updatedAt: Date | null;
}

export interface TaskError {
  type: string;
  message: string;
  traceback: string;
}

export interface Task {
  taskId: string;
  taskType: string;
  args: Record<string, Json>;
  state: TaskStateName;
  progress: Progress;
  result: Json;
  error: TaskError | null;
  submittedAt: Date | null;
  startedAt: Date | null;
  endedAt: Date | null;
  timeLimitSeconds: number | null;
  priority: number;
  labels: Labels;
  attempt: number;
  scheduledAt: Date | null;
  retentionSeconds: number | null;
  after: string[];
  /** What holds a PENDING task back: limits whose group is full, unmet dependencies. */
  waitingFor: { limitIds: string[]; taskIds: string[] } | null;
  /** The task whose handler submitted it (a child task); '' for one a client submitted. */
  parentId: string;
  /** A child its parent's Stop leaves running. */
  detached: boolean;
}

/** GetStats: tasks by type and state, the last 60 minutes oldest first, the oldest runnable task's wait. */
export interface Stats {
  counts: { taskType: string; state: TaskStateName; count: number }[];
  minutes: { start: Date | null; started: number; succeeded: number; failed: number }[];
  oldestRunnableAgeSeconds: number | null;
  time: Date | null;
  limits: { limitId: string; running: number; waiting: number }[];
}

/** A server (an engine process) of the database, as it last said. */
export interface NodeInfo {
  node: string;
  taskTypes: string[];
  onlyLabels: Labels;
  startedAt: Date | null;
  lastSeen: Date | null;
  workers: number;
  busy: number;
  /** Handlers it abandoned after a stop whose threads still run. */
  abandoned: number;
}

export interface TaskEvent {
  taskId: string;
  sequence: bigint;
  state: TaskStateName;
  progress: Progress;
  time: Date | null;
  /** The whole task on the first event and on every state change; null on progress-only events. */
  task: Task | null;
}

export interface Schedule {
  scheduleId: string;
  taskType: string;
  args: Record<string, Json>;
  cron: string;
  timeZone: string;
  intervalSeconds: number | null;
  catchUp: 'SKIP' | 'ONCE' | 'ALL';
  paused: boolean;
  nextDue: Date | null;
  createdAt: Date | null;
  lastDue: Date | null;
  lastTaskId: string;
  lastError: string;
  timeLimitSeconds: number | null;
  priority: number;
  labels: Labels;
  retentionSeconds: number | null;
  /** Its next due times, nextDue first (five; none while paused). */
  upcoming: Date[];
}

export type OnFull = 'QUEUE' | 'REFUSE_NEWEST' | 'STOP_OLDEST';

export interface Limit {
  limitId: string;
  taskType: string;
  labels: Labels;
  keyLabel: string;
  maxRunning: number;
  rate: { count: number; periodSeconds: number | null; burst: number } | null;
  onFull: OnFull;
  maxWaiting: number;
  weights: Record<string, number>;
  createdAt: Date | null;
  updatedAt: Date | null;
}

export interface TaskTypeInfo {
  name: string;
  description: string;
  args: {
    name: string;
    kind: string;
    required: boolean;
    pathRole: string;
    choices: Json[];
    rule: string;
    hasDefault: boolean;
    /** What the handler takes when the arg is left out (undefined when hasDefault is false). */
    default?: Json;
    /** What the handler's docstring says of the arg ('' when it says nothing). */
    description: string;
  }[];
  acceptsExtraArgs: boolean;
  rerunOnRestart: boolean;
  nodes: { node: string; onlyLabels: Labels; lastSeen: Date | null }[];
}

/** Every call takes timeoutMs: its deadline (default: the client's timeoutMs). */
export interface CallOptions {
  timeoutMs?: number;
}

export interface SubmitOptions extends CallOptions {
  taskId?: string;
  timeLimitSeconds?: number;
  priority?: number;
  labels?: Labels;
  notBefore?: Date;
  delaySeconds?: number;
  retentionSeconds?: number;
  after?: string[];
}

export interface TaskFilter extends CallOptions {
  states?: string[];
  taskType?: string;
  labels?: Labels;
}

export interface ScheduleOptions extends CallOptions {
  /** The checks alone, and the schedule as it would be: nothing stored. */
  validateOnly?: boolean;
  cron?: string;
  timeZone?: string;
  intervalSeconds?: number;
  catchUp?: 'SKIP' | 'ONCE' | 'ALL';
  paused?: boolean;
  timeLimitSeconds?: number;
  priority?: number;
  labels?: Labels;
  retentionSeconds?: number;
}

export interface LimitOptions extends CallOptions {
  taskType?: string;
  labels?: Labels;
  keyLabel?: string;
  maxRunning?: number;
  rate?: string | { count: number; periodSeconds: number };
  burst?: number;
  onFull?: OnFull;
  maxWaiting?: number;
  weights?: Record<string, number>;
}

export type TraceHeaders = { traceparent?: string; tracestate?: string; baggage?: string };

export interface TaskClientOptions {
  /** host:port (default: TASKSERVICE_ADDR, else 127.0.0.1:50051). */
  address?: string;
  /** Bearer token (default: TASKSERVICE_TOKEN). */
  token?: string;
  timeoutMs?: number;
  reconnectTimeoutMs?: number;
  watchRetries?: number;
  watchBackoffMs?: number;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  protoPath?: string;
  includeDirs?: string[];
  channelOptions?: Record<string, unknown>;
  /** Trace context headers sent with every call, or a function giving them per call. */
  traceContext?: TraceHeaders | (() => TraceHeaders);
}

export class TaskClient {
  constructor(options?: TaskClientOptions);
  readonly address: string;
  close(): void;
  submit(taskType: string, args?: Record<string, Json>, opts?: SubmitOptions): Promise<{ task: Task; created: boolean }>;
  get(taskId: string, opts?: CallOptions): Promise<Task>;
  stop(taskId: string, reason?: string, opts?: CallOptions): Promise<Task>;
  stopTasks(opts?: TaskFilter & { scheduled?: boolean; reason?: string; all?: boolean }): Promise<{ revoked: number; stopping: number }>;
  deleteTask(taskId: string, opts?: CallOptions): Promise<Task>;
  deleteTasks(opts?: TaskFilter & { endedBefore?: Date; all?: boolean }): Promise<number>;
  retry(taskId: string, reason?: string, opts?: CallOptions): Promise<Task>;
  list(opts?: TaskFilter & { scheduled?: boolean; waitingForLimit?: string; parentId?: string; search?: string; submittedAfter?: Date; submittedBefore?: Date; dependsOn?: string; orderBy?: string; pageSize?: number; pageToken?: string }): Promise<{ tasks: Task[]; nextPageToken: string }>;
  watch(taskId: string, opts?: { afterSequence?: bigint | number | string; timeoutMs?: number }): AsyncIterableIterator<TaskEvent>;
  watchMany(taskIds: string[], opts?: { timeoutMs?: number; ignoreMissing?: boolean }): AsyncIterableIterator<TaskEvent>;
  waitTask(taskId: string, opts?: { timeoutSeconds?: number; timeoutMs?: number }): Promise<{ task: Task; done: boolean }>;
  wait(taskId: string, opts?: CallOptions): Promise<Task>;
  taskTypes(opts?: CallOptions): Promise<TaskTypeInfo[]>;
  stats(opts?: CallOptions): Promise<Stats>;
  nodes(opts?: CallOptions): Promise<NodeInfo[]>;
  history(taskId: string, opts?: CallOptions): Promise<{ time: Date | null; state: TaskStateName; attempt: number; progress: Progress | null }[]>;
  createSchedule(scheduleId: string, taskType: string, args?: Record<string, Json>, opts?: ScheduleOptions): Promise<{ schedule: Schedule; created: boolean }>;
  getSchedule(scheduleId: string, opts?: CallOptions): Promise<Schedule>;
  listSchedules(opts?: CallOptions & { pageSize?: number; pageToken?: string }): Promise<{ schedules: Schedule[]; nextPageToken: string }>;
  pauseSchedule(scheduleId: string, opts?: CallOptions): Promise<Schedule>;
  resumeSchedule(scheduleId: string, opts?: CallOptions): Promise<Schedule>;
  deleteSchedule(scheduleId: string, opts?: CallOptions): Promise<Schedule>;
  createLimit(limitId: string, opts?: LimitOptions): Promise<{ limit: Limit; created: boolean }>;
  getLimit(limitId: string, opts?: CallOptions): Promise<Limit>;
  listLimits(opts?: CallOptions & { pageSize?: number; pageToken?: string }): Promise<{ limits: Limit[]; nextPageToken: string }>;
  updateLimit(limitId: string, opts?: LimitOptions): Promise<Limit>;
  deleteLimit(limitId: string, opts?: CallOptions): Promise<Limit>;
}

export class TaskServiceError extends Error {
  /** The gRPC status code (Status.INVALID_ARGUMENT is 3). */
  readonly code: number;
  readonly codeName: string;
  readonly details: string;
  readonly fieldViolations: { field: string; description: string }[];
  readonly metadata: Metadata | null;
  readonly statusDetails: unknown;
}

export const Status: Readonly<Record<string, number>>;
export const CODE_NAMES: Readonly<Record<number, string>>;
export function structToProto(object: Record<string, Json>, path?: string): unknown;
export function structFromProto(struct: unknown): Record<string, Json>;
export function valueToProto(value: Json, path?: string): unknown;
export function valueFromProto(value: unknown): Json;
export function loadTaskService(protoPath?: string, includeDirs?: string[]): unknown;
export const LOADER_OPTIONS: Readonly<Record<string, unknown>>;
export const DEFAULT_PROTO: string;
