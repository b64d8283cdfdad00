'use strict';
// TaskServiceError: a gRPC error status with its google.rpc.BadRequest field violations.

const path = require('node:path');
const protobuf = require('protobufjs');
const { status: Status } = require('@grpc/grpc-js');
const { PROTOS } = require('./protos');

const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const BAD_REQUEST_TYPE = 'google.rpc.BadRequest';

/** gRPC status number -> name ('INVALID_ARGUMENT'). */
const CODE_NAMES = Object.freeze(
  Object.fromEntries(Object.entries(Status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k])),
);

// google/rpc/status.proto and error_details.proto are vendored (Apache-2.0, from googleapis) beside the contract
// (protos.js); their google/protobuf imports come from protobufjs's bundled well-known types.
let rpcRoot = null;
function rpcTypes() {
  if (rpcRoot === null) {
    const dir = PROTOS;
    const root = new protobuf.Root();
    root.resolvePath = (origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target));
    root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
    root.resolveAll();
    rpcRoot = root;
  }
  return {
    Status: rpcRoot.lookupType('google.rpc.Status'),
    lookup: (name) => {
      try {
        return rpcRoot.lookupType(name);
      } catch {
        return null;
      }
    },
  };
}

/**
 * The google.rpc.Status in a `grpc-status-details-bin` trailer, decoded, with its details unpacked
 * where the type is known: {code, message, details: [{typeUrl, type, value}]}; null when absent or
 * undecodable.
 */
function decodeStatusDetails(metadata) {
  if (!metadata || typeof metadata.get !== 'function') return null;
  const values = metadata.get(STATUS_DETAILS_KEY);
  if (!values || values.length === 0) return null;
  const raw = Buffer.isBuffer(values[0]) ? values[0] : Buffer.from(String(values[0]), 'base64');
  try {
    const types = rpcTypes();
    const status = types.Status.decode(raw);
    return {
      code: status.code,
      message: status.message,
      details: (status.details || []).map((any) => {
        const typeUrl = any.type_url || any.typeUrl || '';
        const type = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
        const Type = type ? types.lookup(type) : null;
        let value = null;
        if (Type) {
          value = Type.toObject(Type.decode(any.value), { defaults: true, arrays: true, objects: true, longs: String, enums: String });
        }
        return { typeUrl, type, value };
      }),
    };
  } catch {
    return null;
  }
}

/** An error from the task service (or the gRPC channel): rejects every TaskClient promise. */
class TaskServiceError extends Error {
  /**
   * @param {object} init
   * @param {number} init.code gRPC status number (e.g. 3)
   * @param {string} init.details the server's message
   * @param {{field: string, description: string}[]} [init.fieldViolations]
   * @param {object} [init.metadata] the trailers (grpc-js Metadata)
   * @param {object} [init.statusDetails] the decoded google.rpc.Status, if any
   * @param {Error} [init.cause]
   */
  constructor({ code, details, fieldViolations = [], metadata = null, statusDetails = null, cause }) {
    const codeName = CODE_NAMES[code] || `CODE_${code}`;
    super(`${codeName}: ${details}`, cause ? { cause } : undefined);
    this.name = 'TaskServiceError';
    /** gRPC status number, e.g. 3 */
    this.code = code;
    /** gRPC status name, e.g. 'INVALID_ARGUMENT' */
    this.codeName = codeName;
    /** the server's message */
    this.details = details;
    /** from google.rpc.BadRequest: [{field: 'args.steps', description: '...'}] */
    this.fieldViolations = fieldViolations;
    this.metadata = metadata;
    this.statusDetails = statusDetails;
  }

  /** A grpc-js ServiceError (or any error) -> TaskServiceError. */
  static fromGrpc(err) {
    if (err instanceof TaskServiceError) return err;
    if (!err || typeof err.code !== 'number') {
      return new TaskServiceError({ code: Status.UNKNOWN, details: String((err && err.message) || err), cause: err });
    }
    const statusDetails = decodeStatusDetails(err.metadata);
    const fieldViolations = [];
    for (const detail of (statusDetails && statusDetails.details) || []) {
      if (detail.type === BAD_REQUEST_TYPE && detail.value) {
        for (const v of detail.value.fieldViolations || []) {
          fieldViolations.push({ field: v.field, description: v.description });
        }
      }
    }
    return new TaskServiceError({
      code: err.code,
      details: err.details !== undefined ? err.details : err.message,
      fieldViolations,
      metadata: err.metadata || null,
      statusDetails,
      cause: err,
    });
  }
}

module.exports = { TaskServiceError, Status, CODE_NAMES, decodeStatusDetails };
