import { ClosedError, TransportError, type Codec } from "@tranche/core";
import { JetStreamApiError } from "@nats-io/jetstream";
import {
  AuthorizationError,
  ClosedConnectionError,
  DrainingConnectionError,
  InvalidArgumentError,
  InvalidOperationError,
  InvalidSubjectError,
  NoRespondersError,
  PermissionViolationError,
  ProtocolError,
  RequestError,
  UserAuthenticationExpiredError,
} from "@nats-io/transport-node";
import { PREFIX } from "./options.js";

// JetStream API error codes of a stream or consumer that is not there: a worker recreates it.
const NOT_FOUND_CODES = new Set([10014, 10059]);
// JetStream API statuses of a server that cannot answer now (unavailable, timed out); the rest
// (400 bad request, 500 with an invalid config such as replicas on a single server) stay as they are.
const TRANSIENT_STATUSES = new Set([408, 503, 504]);

/**
 * Whether the same call may succeed when tried again. Connection loss, timeouts, "no responders"
 * (JetStream not up yet after a restart), JetStream's "temporarily unavailable" and a missing
 * stream or consumer (a worker recreates it) are; permissions, authentication, size limits (max
 * payload), invalid names, subjects and configs, and a connection the caller closed are not. Anything unknown is, as the worker would treat it.
 */
export function isRetryable(error: unknown): boolean {
  if (
    error instanceof PermissionViolationError ||
    error instanceof AuthorizationError ||
    error instanceof UserAuthenticationExpiredError ||
    error instanceof InvalidArgumentError ||
    error instanceof InvalidSubjectError ||
    error instanceof InvalidOperationError ||
    nameOf(error) === "InvalidNameError" ||
    error instanceof ProtocolError ||
    error instanceof ClosedConnectionError ||
    error instanceof DrainingConnectionError
  ) {
    return false;
  }
  if (error instanceof JetStreamApiError) return TRANSIENT_STATUSES.has(error.status) || NOT_FOUND_CODES.has(error.code);
  return true;
}

/** True for a request nobody answered: no stream captures a subject, or JetStream is not up. */
export function isNoResponders(error: unknown): boolean {
  if (error instanceof NoRespondersError) return true;
  if (error instanceof RequestError && error.isNoResponders()) return true;
  return nameOf(error) === "JetStreamNotEnabled" && isNoResponders((error as Error).cause);
}

// The jetstream module does not export every error class it throws.
function nameOf(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

/** The message of an error and of its causes, e.g. "connection refused: connect ECONNREFUSED 127.0.0.1:4222". */
export function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e !== undefined && e !== null && parts.length < 4; e = (e as { cause?: unknown }).cause) {
    const text = e instanceof Error ? e.message : String(e);
    if (text !== "" && !parts.some((p) => p.includes(text))) parts.push(text);
    if (!(e instanceof Error)) break;
  }
  return parts.join(": ") || "unknown error";
}

/**
 * `error` as the contract wants it: a `TransportError` whose message names the operation, the
 * cause and where (`where` is the server address, or what was being set up). `ClosedError`,
 * `TypeError` (invalid arguments) and `TransportError`s pass through unchanged.
 */
export function transportError(operation: string, error: unknown, where?: string): Error {
  if (TransportError.isInstance(error) || ClosedError.isInstance(error) || error instanceof TypeError) return error as Error;
  const at = where === undefined ? "" : ` (${where})`;
  return new TransportError(`${PREFIX} ${operation} failed: ${describe(error)}${at}`, { retryable: isRetryable(error), cause: error });
}

/** Encodes a payload; a codec that throws (a value it cannot serialise) is a non-retryable `TransportError`. */
export function encodeWith<T>(codec: Codec<T>, payload: T): string | Uint8Array {
  try {
    return codec.encode(payload);
  } catch (cause) {
    throw new TransportError(`${PREFIX} cannot encode payload: ${describe(cause)}`, { retryable: false, cause });
  }
}
