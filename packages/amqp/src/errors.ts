import { ClosedError, TransportError } from "@tranche/core";
import { PREFIX } from "./options.js";

/**
 * A queue exists with other arguments than the transport declares (another `queueType`,
 * `deliveryLimit` or `queueArguments`), or a name is taken by something else. Not retryable:
 * give every worker the same options, or delete the queue.
 */
export class AmqpTopologyError extends TransportError {
  override readonly name = "AmqpTopologyError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(`${PREFIX} ${message}`, { retryable: false, cause: options?.cause });
  }
}

/**
 * AMQP reply codes of a channel or connection close that a later try may not meet: the broker
 * is shutting down (320), a queue is locked or busy (405), out of resources (506), or failed
 * internally (541). Every other code (access refused, not found, precondition failed, not
 * allowed, frame and syntax errors, content too large) fails the same way again.
 */
const RETRYABLE_CODES = new Set([320, 405, 506, 541]);

/** Text of amqplib's handshake failures that no retry cures: bad credentials, a missing vhost. */
const REFUSED = /ACCESS[-_]REFUSED|NOT[-_]ALLOWED|SASL mechanism/;

/** What went wrong, in one line (node's dual-stack connect error has an empty message). */
export function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return [...new Set(error.errors.map((e: unknown) => describe(e)))].join("; ");
  }
  if (error instanceof Error) return error.message || (error as { code?: string }).code || error.name;
  return String(error);
}

/**
 * The `TransportError` of an operation that failed with `error`: connection faults, timeouts and
 * transient broker states are retryable; refusals (credentials, permissions, missing vhost),
 * precondition failures and encoding errors are not; an error of unknown kind is. A connection
 * error names `address` unless its message does. `TransportError` and `ClosedError` pass through.
 */
export function transportError(operation: string, error: unknown, address: string): Error {
  if (TransportError.isInstance(error) || ClosedError.isInstance(error)) return error as Error;
  let message = describe(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  const refused = REFUSED.test(message) || (typeof code === "number" && !RETRYABLE_CODES.has(code));
  const encoding = error instanceof RangeError || error instanceof TypeError;
  const retryable = !refused && !encoding;
  if (retryable && !message.includes(address)) message += ` (RabbitMQ at ${address})`;
  return new TransportError(`${PREFIX} ${operation} failed: ${message}`, { retryable, cause: error });
}

/** A payload that cannot be encoded, or a message larger than the broker takes: the same call fails the same way every time. */
export function notRetryable(operation: string, message: string, cause?: unknown): TransportError {
  return new TransportError(`${PREFIX} ${operation} failed: ${message}`, { retryable: false, cause });
}

/** A call that did not finish within `timeout`; the connection it ran on is dropped. */
export function timeoutError(operation: string, timeout: number, address: string): TransportError {
  return new TransportError(`${PREFIX} ${operation} failed: no reply from RabbitMQ at ${address} within ${timeout} ms (connection dropped)`, { retryable: true });
}

/**
 * The channel that delivered a message closed before the call settled it. The broker has put the
 * message back (or applied a settlement that reached it first) and delivers it again: no call on
 * another channel can act on that delivery, so trying again cannot help.
 */
export function channelGoneError(operation: string, id: string, cause: Error | undefined): TransportError {
  const why = cause === undefined ? "" : ` (${describe(cause)})`;
  return new TransportError(
    `${PREFIX} ${operation} failed: the channel that delivered ${JSON.stringify(id)} has closed${why}; RabbitMQ delivers the message again unless the settlement reached it first`,
    { retryable: false, cause },
  );
}
