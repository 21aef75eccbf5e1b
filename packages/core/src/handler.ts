import type { FlushReason } from "./options.js";

/** One item as the handler sees it: the successor of celery-batches' `SimpleRequest`. */
export interface BatchRequest<T, R> {
  readonly id: string;
  readonly payload: T;
  /** Tries so far including this one: 1 on the first. For a `Worker`, deliveries so far (see `retries`). */
  readonly attempt: number;
  /**
   * Handler runs of the item that ended with a retry, before this one: `attempt - 1`
   * in-process. A `Worker`'s transport tells it (a delivery can also end without a run: a
   * crash, a lease expiry); `undefined` when the transport cannot.
   */
  readonly retries?: number;
  /** A `Worker`'s item: the headers it was sent with (a trace context, say). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Epoch ms when the item entered the buffer. */
  readonly enqueuedAt: number;
  /** Settle with a result. */
  ack(result?: R): void;
  /** Settle with an error; terminal. */
  fail(error: unknown): void;
  /** Run again, not before `delay` ms from now (the `retry.backoff` delay when absent), while `retry.attempts` allows. */
  retry(options?: { delay?: number }): void;
}

/** What the handler is told about the batch besides its requests. */
export interface BatchContext {
  readonly batchId: string;
  readonly reason: FlushReason;
  readonly group?: string;
  /** Aborts with a `TimeoutError` after `handlerTimeout`, or with a `ClosedError` when `close({ timeout })` gives up. */
  readonly signal: AbortSignal;
}

/**
 * Receives a batch. Return an array as long as `requests` (an `Error` element
 * fails that request only), or nothing to ack every request not settled yet.
 * A throw retries the unsettled requests per `retry`, else fails them with it.
 */
export type BatchHandler<T, R> = (
  requests: BatchRequest<T, R>[],
  context: BatchContext,
) => (R | Error)[] | void | Promise<(R | Error)[] | void>;
