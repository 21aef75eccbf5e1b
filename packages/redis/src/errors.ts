import { ClosedError, TransportError } from "@tranche/core";
import { PREFIX } from "./options.js";

/**
 * Server error codes (the first word of a Redis error reply) that a later try of the same command
 * may not meet: the server is loading its data, busy with a script, in a failover, out of memory
 * until consumers catch up, or a cluster slot is moving; or the consumer group is gone, which the
 * next `receive` creates again.
 */
const RETRYABLE_REPLIES = new Set(["NOGROUP", "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "OOM", "MOVED", "ASK", "UNBLOCKED"]);

/** Client-side errors of node-redis that mean the connection, not the command, failed. */
const CONNECTION_ERRORS = new Set([
  "ClientOfflineError",
  "ClientClosedError",
  "DisconnectsClientError",
  "SocketClosedUnexpectedlyError",
  "ConnectionTimeoutError",
  "SocketTimeoutError",
  "TimeoutError",
  "ReconnectStrategyError",
  "NoReplyError",
]);

/** The class name of an error (node-redis's errors keep `name` "Error", their constructor names them). */
function kindOf(error: unknown): string {
  return (error as { constructor?: { name?: string } } | undefined)?.constructor?.name ?? "";
}

/** The first word of a Redis error reply, e.g. `"NOGROUP"`; empty for any other error. */
export function replyCode(error: unknown): string {
  if (!(error instanceof Error) || !isErrorReply(error)) return "";
  return /^([A-Z][A-Z_-]*)\b/.exec(error.message)?.[1] ?? "";
}

function isErrorReply(error: Error): boolean {
  for (let proto = Object.getPrototypeOf(error); proto !== null && proto !== Error.prototype; proto = Object.getPrototypeOf(proto)) {
    if (proto.constructor?.name === "ErrorReply") return true;
  }
  return false;
}

/**
 * The consumer group (or the whole stream) is gone: the stream key was deleted, or a server
 * without persistence restarted (`NOGROUP`; `UNBLOCKED` for a read that was blocked on it).
 */
export function isGroupGone(error: unknown): boolean {
  const code = replyCode(TransportError.isInstance(error) ? (error as Error).cause : error);
  return code === "NOGROUP" || code === "UNBLOCKED";
}

/** True when the connection failed rather than the command: the command may not have reached the server, or its reply was lost. */
export function isConnectionError(error: unknown): boolean {
  if (CONNECTION_ERRORS.has(kindOf(error))) return true;
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && /^(E[A-Z]+|ERR_SOCKET_[A-Z_]+|ERR_STREAM_[A-Z_]+)$/.test(code) && error instanceof Error && !isErrorReply(error);
}

/** What went wrong in one line: node's `AggregateError` of a dual-stack connect has an empty message. */
export function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return [...new Set(error.errors.map((e: unknown) => describe(e)))].join("; ");
  }
  if (error instanceof Error) return error.message || (error as { code?: string }).code || error.name;
  return String(error);
}

/**
 * The `TransportError` of an operation that failed with `error`, classified: connection errors,
 * timeouts, transient server states and errors of unknown kind are retryable; error replies of
 * any other kind (permissions, wrong key types, invalid commands or scripts) are not.
 * `connectionFailure` is the error the connection last failed with, named in place of
 * node-redis's "The client is offline" and "Disconnects client"; `address` is added to a connection error that does not
 * name it. `TransportError` and `ClosedError` pass through.
 */
export function transportError(operation: string, error: unknown, context: { address?: string; connectionFailure?: Error } = {}): Error {
  if (TransportError.isInstance(error) || ClosedError.isInstance(error)) return error as Error;
  if (isConnectionError(error)) {
    const kind = kindOf(error);
    const vague = kind === "ClientOfflineError" || kind === "DisconnectsClientError";
    const cause = vague && context.connectionFailure !== undefined ? context.connectionFailure : error;
    let message = describe(cause);
    if (context.address !== undefined && !message.includes(context.address)) message += ` (redis at ${context.address})`;
    return new TransportError(`${PREFIX} ${operation} failed: ${message}`, { retryable: true, cause });
  }
  const reply = firstReplyError(error);
  const retryable = reply === undefined || RETRYABLE_REPLIES.has(replyCode(reply));
  return new TransportError(`${PREFIX} ${operation} failed: ${describe(reply ?? error)}`, { retryable, cause: error });
}

/** A payload or value that cannot be encoded: the same call fails the same way every time. */
export function encodeError(operation: string, what: string, error: unknown): TransportError {
  return new TransportError(`${PREFIX} ${operation} failed: cannot encode ${what}: ${describe(error)}`, { retryable: false, cause: error });
}

/** The error reply itself, or the first one inside a failed `MULTI` (`MultiErrorReply`); `undefined` for an error that is no reply. */
function firstReplyError(error: unknown): Error | undefined {
  if (!(error instanceof Error) || !isErrorReply(error)) return undefined;
  const inner = (error as { errors?: () => Iterable<Error> }).errors;
  if (kindOf(error) === "MultiErrorReply" && typeof inner === "function") {
    for (const e of inner.call(error)) return e;
  }
  return error;
}
