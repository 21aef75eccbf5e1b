/** What a transport can do natively; the worker and the conformance suite read it, never sniff it. */
export interface TransportCapabilities {
  /** Most deliveries one `receive` call can return. */
  readonly maxReceive: number;
  /** `retry(notBefore)` and delayed `send` are kept by the broker (not only by the worker). */
  readonly nativeDelay: boolean;
  /** Deliveries are leased and `extend` renews the lease. */
  readonly lease: boolean;
  /** The broker has its own dead-letter routing besides `deadLetter()`. */
  readonly nativeDeadLetter: boolean;
}

/** One received item. `id` is the item id, stable across retries and re-sends. */
export interface Delivery<T> {
  readonly id: string;
  readonly payload: T;
  /** Deliveries of this item so far, this one included (1 on the first). */
  readonly attempt: number;
  /**
   * Times the item was retried (`Transport.retry`) before this delivery: handler runs that
   * ended with a retry. The other `attempt - 1 - retries` deliveries ended without an outcome
   * (a worker crash, a lease expiry, a release). `undefined` when the transport cannot tell;
   * a `Worker` then counts every delivery as a try.
   */
  readonly retries?: number;
  /** Epoch ms before which the item must not run; a worker holds it until then. */
  readonly notBefore?: number;
  /** Epoch ms at which the transport may hand the item to another consumer. */
  readonly leaseUntil?: number;
  /** Set when the message could not be decoded (a `DecodeError`); `payload` is then undefined. */
  readonly error?: Error;
  /** The headers the item was sent with (`SendOptions.headers`); absent when it had none. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Options of `Transport.sendMany`. */
export interface SendManyOptions {
  /** Countdown in ms before the items may run (a lower bound). */
  delay?: number;
  /**
   * Headers carried with each item to every delivery of it, and kept by its retries: a trace
   * context, a tenant. Keep them few and short: brokers bound them (SQS: 10 message attributes
   * in all, tranche's own included).
   */
  headers?: Readonly<Record<string, string>>;
}

/** Options of `Transport.send`. */
export interface SendOptions extends SendManyOptions {
  /** Item id; sending an id again re-enqueues that item. Generated when absent. */
  id?: string;
}

/**
 * A queue that feeds a `Worker`: at-least-once, one outcome per delivery.
 *
 * Faults: a call rejects with a `TransportError` (`retryable` or not, with the client's error as
 * `cause`) when the broker or the way to it fails, with `ClosedError` after `close()`, and with
 * `TypeError` for an invalid argument. Every call may be repeated when its outcome was not seen
 * (an error, a timeout, a lost reply): state changes only once the broker confirms, a repeated
 * `ack`, `retry`, `deadLetter` or `release` reaches the broker or is a proven no-op, and a
 * repeated dead letter is written once. Calls fail within a bounded time while the broker is
 * unreachable (no queueing forever) and `close()` resolves while it is down.
 */
export interface Transport<T> {
  readonly name: string;
  readonly capabilities: TransportCapabilities;
  /** Enqueue one payload; resolves with the item id. */
  send(payload: T, options?: SendOptions): Promise<string>;
  /** Enqueue many payloads; resolves with their ids in order. */
  sendMany(payloads: T[], options?: SendManyOptions): Promise<string[]>;
  /** 0..`max` deliveries; `[]` after the transport's wait, and promptly once `signal` aborts. */
  receive(max: number, signal: AbortSignal): Promise<Delivery<T>[]>;
  /** Remove deliveries for good. Bulk and idempotent. */
  ack(deliveries: Delivery<T>[]): Promise<void>;
  /**
   * Deliver again, not before `notBefore` (epoch ms), with `attempt + 1` and `retries + 1`.
   * Durable where the broker allows; `notBefore` travels with the message.
   */
  retry(delivery: Delivery<T>, notBefore: number): Promise<void>;
  /** Move to the dead letters with `reason`; never delivered again. */
  deadLetter(delivery: Delivery<T>, reason: Error): Promise<void>;
  /** Renew the lease of deliveries until `until` (epoch ms). */
  extend?(deliveries: Delivery<T>[], until: number): Promise<void>;
  /**
   * Give deliveries back for immediate redelivery (shutdown without draining). Where the broker
   * allows, a release does not count as a delivery: the next one has the same `attempt`.
   */
  release(deliveries: Delivery<T>[]): Promise<void>;
  close(): Promise<void>;
  /** Messages of the queue by state (see `QueueAdmin`). Every tranche transport has it. */
  depth?(): Promise<QueueDepth>;
  /** The dead letters, oldest first (see `QueueAdmin`). */
  deadLetters?(options?: DeadLetterPage): Promise<DeadLetter<T>[]>;
  /** Sends dead letters back to the queue (see `QueueAdmin`). */
  redrive?(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number>;
  /** Deletes dead letters for good (see `QueueAdmin`). */
  purgeDeadLetters?(ids: readonly string[] | "all"): Promise<number>;
}

/** Which dead letters `deadLetters` returns. */
export interface DeadLetterPage {
  /** At most this many. @default all */
  limit?: number;
  /** Those after the dead letter of this item id (the last of the previous page). */
  after?: string;
}

/**
 * What an operator does with a queue, on every tranche transport: how deep it is (for an
 * autoscaler), and its dead letters — list them, send them back, delete them.
 */
export interface QueueAdmin<T> {
  /** Messages by state; exact or approximate per broker (each transport's README says which). */
  depth(): Promise<QueueDepth>;
  /** The dead letters, oldest first, a page at a time. */
  deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]>;
  /**
   * Sends dead letters back to the queue, each under its id with a fresh attempt count (not
   * before `delay` ms from now); resolves with how many went back. Idempotent: an id no longer
   * in the dead letters is skipped. An interrupted redrive loses nothing: a dead letter leaves
   * the dead letters only once its item is back in the queue.
   */
  redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number>;
  /** Deletes dead letters for good; resolves with how many. */
  purgeDeadLetters(ids: readonly string[] | "all"): Promise<number>;
}

/** How an item ended, as a result store keeps it. */
export type Outcome<R = unknown> =
  | { readonly ok: true; readonly value: R }
  | { readonly ok: false; readonly error: { readonly name: string; readonly message: string } };

/** Keeps each item's outcome under its id so a producer can await it (celery-batches "Returning results"). */
export interface ResultStore<R = unknown> {
  /** Store `outcome` under `id` for `ttl` ms (forever when absent). */
  set(id: string, outcome: Outcome<R>, ttl?: number): Promise<void>;
  get(id: string): Promise<Outcome<R> | undefined>;
  /** Resolves with the outcome once it is stored; rejects with `TimeoutError` after `timeout` ms or when `signal` aborts. Never polls. */
  wait(id: string, options?: { timeout?: number; signal?: AbortSignal }): Promise<Outcome<R>>;
}

/**
 * An error as plain data: what a dead letter, a stored outcome or an event keeps of it. An
 * `Error` object kept for long keeps alive whatever its captured call sites reference (a
 * whole batch, with its payloads) until its `stack` is read; this keeps only strings.
 */
export interface ErrorInfo {
  readonly name: string;
  readonly message: string;
  /** The formatted stack, when there was one. */
  readonly stack?: string;
}

/** `ErrorInfo` of any thrown value. */
export function errorInfo(error: unknown): ErrorInfo {
  if (typeof error === "object" && error !== null) {
    const { name, message, stack } = error as { name?: unknown; message?: unknown; stack?: unknown };
    const info = { name: typeof name === "string" ? name : "Error", message: typeof message === "string" ? message : String(error) };
    return typeof stack === "string" ? { ...info, stack } : info;
  }
  return { name: "Error", message: String(error) };
}

/** A dead-lettered item, in the same shape on every transport. */
export interface DeadLetter<T> {
  readonly id: string;
  /** The decoded payload; `undefined` when `raw` cannot be decoded (then `reason` is the `DecodeError`). */
  readonly payload: T | undefined;
  /** The message bytes as the broker kept them. */
  readonly raw: string | Uint8Array;
  /** Deliveries of the item, the dead-lettered one included. */
  readonly attempt: number;
  /** Handler runs of the item that ended with a retry; `undefined` when the transport cannot tell. */
  readonly retries: number | undefined;
  readonly reason: ErrorInfo;
  /** Epoch ms the item was dead-lettered at. */
  readonly at: number;
}

/** Messages of a queue by state, for an autoscaler or a dashboard; exact or approximate per broker. */
export interface QueueDepth {
  /** Waiting to be received now. */
  readonly ready: number;
  /** Sent with a delay or retried, not due yet. */
  readonly delayed: number;
  /** Received and not yet settled. */
  readonly inFlight: number;
  readonly deadLettered: number;
}
