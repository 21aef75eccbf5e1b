import { ClosedError, TrancheError, TransportError } from "@tranche/core";

/** What the worker was doing when a transport or result-store call failed. */
export type TransportOperation = "receive" | "ack" | "retry" | "deadLetter" | "extend" | "release" | "close" | "results.set";

/**
 * Whether a failed call may succeed if tried again: a `TransportError` says so itself; a
 * `ClosedError` (the transport was closed under the worker) never does; anything else is
 * taken for a passing fault, and is retried within `ioMaxRetryTime`.
 */
export function isRetryable(error: unknown): boolean {
  if (TransportError.isInstance(error)) return (error as TransportError).retryable;
  return !ClosedError.isInstance(error);
}

/** A thrown or rejected value as an `Error`: itself when it is one, else one whose message it is. */
export const toError = (value: unknown): Error => (value instanceof Error ? value : new Error(typeof value === "string" ? value : String(value)));

/**
 * A transport (or result-store) call threw, rejected or did not settle within `ioTimeout`.
 * Emitted as the worker's `"error"` event, with the transport's error as `cause`. When
 * `retrying` is true the worker tries the call again after a backoff; when false it took the
 * operation's fallback (see the README, "Faults") and keeps running.
 */
export class TransportOperationError extends TrancheError {
  override readonly name = "TransportOperationError";
  /** Whether the cause is a passing fault (see `isRetryable`). */
  readonly retryable: boolean;
  /** Whether the worker tries this call again. */
  readonly retrying: boolean;

  constructor(
    readonly operation: TransportOperation,
    /** Tries of this call so far, this one included. */
    readonly tries: number,
    cause: unknown,
    options: { retryable?: boolean; retrying?: boolean } = {},
  ) {
    const retryable = options.retryable ?? isRetryable(cause);
    const retrying = options.retrying ?? retryable;
    const next = retrying ? "trying again" : retryable ? "giving up" : "not retryable";
    super(`[tranche/worker] ${operation} failed (try ${tries}, ${next}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.retryable = retryable;
    this.retrying = retrying;
    // A listener may keep the event: an unread stack (this one's or a cause's) keeps its call sites, and the batch they reference, alive.
    for (let error: unknown = this, depth = 0; error instanceof Error && depth < 8; error = error.cause, depth++) void error.stack;
  }
}

/** An item was delivered more than `maxDeliveries` times: it goes to the dead letters without running again. */
export class DeliveryLimitError extends TrancheError {
  override readonly name = "DeliveryLimitError";

  constructor(
    readonly id: string,
    /** Deliveries of the item, this one included. */
    readonly deliveries: number,
    /** Handler runs of the item that ended with a retry; `undefined` when the transport cannot tell. */
    readonly retries: number | undefined,
    readonly maxDeliveries: number,
  ) {
    const runs = retries === undefined ? "" : `, ${retries} handler run${retries === 1 ? "" : "s"} ended with a retry`;
    super(`[tranche/worker] item ${JSON.stringify(id)} was delivered ${deliveries} times${runs}; maxDeliveries is ${maxDeliveries}`);
  }
}
