import { quote } from "./validation.js";

const MARKER_PREFIX = "tranche.error.";

function markerOf(name: string): symbol {
  return Symbol.for(MARKER_PREFIX + name);
}

/**
 * Base of every error tranche throws or settles an item with.
 *
 * Each class stamps a `Symbol.for` marker on its instances, so `isInstance`
 * recognises errors made by another copy of the package (two versions in one
 * `node_modules`, or ESM and CJS builds side by side) where `instanceof` cannot.
 */
export class TrancheError extends Error {
  override readonly name: string = "TrancheError";

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    // Mark the instance with every class of its chain, so `ClosedError.isInstance`
    // and `TrancheError.isInstance` both hold for a ClosedError.
    for (let ctor: Function = new.target; ctor !== Error && ctor !== Object; ctor = Object.getPrototypeOf(ctor)) {
      Object.defineProperty(this, markerOf(ctor.name), { value: true });
    }
  }

  /** True for an instance of this class made by any copy of tranche. */
  static isInstance(value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[markerOf(this.name)] === true;
  }
}

/** `maxBuffered` is reached and `onFull` is `"reject"`. */
export class BufferFullError extends TrancheError {
  override readonly name = "BufferFullError";
  constructor(readonly maxBuffered: number) {
    super(`[tranche/core] buffer is full (maxBuffered ${maxBuffered})`);
  }
}

/** The batcher, worker or transport is closed, or `close({ timeout })` gave up on an item. */
export class ClosedError extends TrancheError {
  override readonly name = "ClosedError";
  constructor(message = "[tranche/core] closed", options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A handler ran longer than `handlerTimeout`. */
export class TimeoutError extends TrancheError {
  override readonly name = "TimeoutError";
  constructor(readonly timeout: number, message = `[tranche/core] handler timed out after ${timeout} ms`) {
    super(message);
  }
}

/** One item is larger than `maxBatchBytes` (or than a transport's message limit). */
export class OversizeError extends TrancheError {
  override readonly name = "OversizeError";
  constructor(
    readonly size: number,
    readonly limit: number,
    message = `[tranche/core] item of ${size} bytes is larger than maxBatchBytes ${limit}`,
  ) {
    super(message);
  }
}

/** A handler returned something other than an array as long as its requests, or nothing. */
export class BatchResultError extends TrancheError {
  override readonly name = "BatchResultError";
  constructor(readonly received: unknown, readonly expectedLength: number) {
    super(`[tranche/core] handler must return an array of ${expectedLength} results or nothing, got ${quote(received)}`);
  }
}

/** A request was settled (ack, fail, retry) a second time. */
export class SettledError extends TrancheError {
  override readonly name = "SettledError";
  constructor(readonly id: string, message = `[tranche/core] request ${JSON.stringify(id)} is already settled`) {
    super(message);
  }
}

/** An item was retried after it had used up `retry.attempts`. */
export class RetriesExhaustedError extends TrancheError {
  override readonly name = "RetriesExhaustedError";
  constructor(readonly id: string, readonly attempts: number, options?: { cause?: unknown }) {
    super(`[tranche/core] request ${JSON.stringify(id)} used all ${attempts} attempt${attempts === 1 ? "" : "s"}`, options);
  }
}

/** A message's bytes could not be decoded into a payload; it goes to the dead letters. */
export class DecodeError extends TrancheError {
  override readonly name = "DecodeError";
  constructor(readonly raw: string | Uint8Array, options?: { cause?: unknown; message?: string }) {
    super(options?.message ?? `[tranche/core] cannot decode payload: ${String((options?.cause as Error | undefined)?.message ?? options?.cause ?? "invalid data")}`, options);
  }
}

/**
 * A transport or result-store call failed at the broker or on the way to it. `retryable` says
 * whether the same call may succeed if tried again: connection errors, timeouts, throttling and
 * server errors are; encoding errors, size limits, permissions and invalid arguments are not.
 * A `Worker` tries a retryable call again with a capped backoff and takes the operation's
 * fallback for one that is not (see the worker's README, "Faults"). `cause` is the broker
 * client's own error.
 */
export class TransportError extends TrancheError {
  // Typed `string`, not the literal: each transport names its own subclass.
  override readonly name: string = "TransportError";
  /** Whether trying the same call again may succeed. */
  readonly retryable: boolean;

  constructor(message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable;
  }
}
