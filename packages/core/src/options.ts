import type { Clock } from "./clock.js";
import { checkInteger, checkMs, invalidOption } from "./validation.js";

/** Why a batch was handed over. */
export type FlushReason = "count" | "bytes" | "interval" | "flush" | "close";

/** How long to wait before a retry when the handler throws or calls `retry()` without a delay. */
export interface Backoff {
  /** `"fixed"`: always `delay`; `"exponential"`: `delay × 2^(attempt − 1)`. */
  type: "fixed" | "exponential";
  /** Base delay in ms. */
  delay: number;
  /** Upper bound in ms of an exponential delay. @default Infinity */
  maxDelay?: number;
  /** Fraction 0..1 of the delay that is randomised (full jitter at 1). @default 0 */
  jitter?: number;
}

export interface RetryOptions {
  /** Total tries of an item, the first included; 1 means no retry. @default 1 */
  attempts?: number;
  /** Delay applied when the handler throws or calls `retry()` without a delay. @default { type: "fixed", delay: 0 } */
  backoff?: Backoff;
}

/** Options shared by `Batcher`, `batched()` and `Worker`. */
export interface BatcherOptions<T> {
  /** Count trigger and hard cap of a batch, an integer ≥ 1. @default 100 */
  flushEvery?: number;
  /**
   * Longest time in ms an eligible item waits in the buffer while a slot is free,
   * measured from the oldest item's eligibility. 0 flushes what arrived in the same tick.
   * @default 1000
   */
  flushInterval?: number;
  /** Byte trigger and cap of a batch, summed over `sizeOf`; needs `sizeOf`. @default Infinity (off) */
  maxBatchBytes?: number;
  /** Size in bytes of one payload, for `maxBatchBytes`. */
  sizeOf?: (payload: T) => number;
  /** Batches in flight at once, an integer ≥ 1 or Infinity. @default 1 */
  concurrency?: number;
  /**
   * Items held in the buffer (eligible + delayed) plus unsettled items in flight,
   * which a retry would bring back. Beyond it adds are refused or wait, never dropped.
   * At least `flushEvery`. @default 10 × flushEvery
   */
  maxBuffered?: number;
  /** Group key of a payload: batches never mix groups, and each group has its own triggers. */
  groupBy?: (payload: T) => string;
  /** Key under which buffered items are merged: at most one buffered item per key. */
  dedupeKey?: (payload: T) => string;
  /** Which payload a merge keeps: `"first"` (the buffered one) or `"last"` (the newest). @default "first" */
  coalesce?: "first" | "last";
  /** Tries and backoff. @default { attempts: 1 } */
  retry?: RetryOptions;
  /** ms after which the handler's `context.signal` aborts and its unsettled items are retried or failed. @default none */
  handlerTimeout?: number;
  /** Source of time for drivers (`batched()`, `Worker`); the `Batcher` itself takes time as a parameter. @default systemClock */
  clock?: Clock;
}

/** Options with defaults applied and checked. */
export interface ResolvedOptions<T> {
  readonly flushEvery: number;
  readonly flushInterval: number;
  readonly maxBatchBytes: number;
  /** `undefined` when not given. */
  readonly sizeOf: ((payload: T) => number) | undefined;
  readonly concurrency: number;
  readonly maxBuffered: number;
  /** `undefined` when not given: one group. */
  readonly groupBy: ((payload: T) => string) | undefined;
  /** `undefined` when not given: no coalescing. */
  readonly dedupeKey: ((payload: T) => string) | undefined;
  readonly coalesce: "first" | "last";
  readonly attempts: number;
  readonly backoff: Required<Backoff>;
  readonly handlerTimeout: number | undefined;
}

function checkFunction<F>(name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "function") throw invalidOption(name, "a function", value);
  return value as F;
}

/** Applies defaults and validates; throws `TypeError` quoting the first bad value. */
export function resolveOptions<T>(options: BatcherOptions<T> | undefined): ResolvedOptions<T> {
  if (options !== undefined && (typeof options !== "object" || options === null)) throw invalidOption("options", "an object", options);
  const o = options ?? {};
  // `null` is a value, not "use the default": it is rejected like any other wrong type.
  const or = <V>(value: V | undefined, fallback: V): V => (value === undefined ? fallback : value);
  const flushEvery = checkInteger("flushEvery", or(o.flushEvery, 100), { min: 1 });
  const flushInterval = checkMs("flushInterval", or(o.flushInterval, 1000), { allowInfinity: true });
  const sizeOf = checkFunction<(payload: T) => number>("sizeOf", o.sizeOf);
  let maxBatchBytes = Infinity;
  if (o.maxBatchBytes !== undefined) {
    if (typeof o.maxBatchBytes !== "number" || !(o.maxBatchBytes > 0)) throw invalidOption("maxBatchBytes", "a number of bytes > 0", o.maxBatchBytes);
    if (o.maxBatchBytes !== Infinity && sizeOf === undefined) throw invalidOption("sizeOf", "a function when `maxBatchBytes` is set", o.sizeOf);
    maxBatchBytes = o.maxBatchBytes;
  }
  const concurrency = checkInteger("concurrency", or(o.concurrency, 1), { min: 1, allowInfinity: true });
  const maxBuffered = o.maxBuffered === undefined ? flushEvery * 10 : checkInteger("maxBuffered", o.maxBuffered, { min: 1, allowInfinity: true });
  if (maxBuffered < flushEvery) throw invalidOption("maxBuffered", `an integer ≥ flushEvery (${flushEvery})`, maxBuffered);
  const groupBy = checkFunction<(payload: T) => string>("groupBy", o.groupBy);
  const dedupeKey = checkFunction<(payload: T) => string>("dedupeKey", o.dedupeKey);
  const coalesce = or(o.coalesce, "first");
  if (coalesce !== "first" && coalesce !== "last") throw invalidOption("coalesce", '"first" or "last"', coalesce);
  const retry = or<RetryOptions>(o.retry, {});
  if (typeof retry !== "object" || retry === null) throw invalidOption("retry", "an object", retry);
  const attempts = checkInteger("retry.attempts", or(retry.attempts, 1), { min: 1, allowInfinity: true });
  const backoff = resolveBackoff(retry.backoff);
  const handlerTimeout = o.handlerTimeout;
  if (handlerTimeout !== undefined) checkMs("handlerTimeout", handlerTimeout, { exclusiveMin: true });
  if (o.clock !== undefined) {
    const c = o.clock as Partial<Clock>;
    if (typeof c !== "object" || c === null || typeof c.now !== "function" || typeof c.setTimer !== "function" || typeof c.clearTimer !== "function") {
      throw invalidOption("clock", "a Clock with now, setTimer and clearTimer", o.clock);
    }
  }
  return { flushEvery, flushInterval, maxBatchBytes, sizeOf, concurrency, maxBuffered, groupBy, dedupeKey, coalesce, attempts, backoff, handlerTimeout };
}

function resolveBackoff(backoff: Backoff | undefined): Required<Backoff> {
  if (backoff === undefined) return { type: "fixed", delay: 0, maxDelay: Infinity, jitter: 0 };
  if (typeof backoff !== "object" || backoff === null) throw invalidOption("retry.backoff", "an object", backoff);
  if (backoff.type !== "fixed" && backoff.type !== "exponential") throw invalidOption("retry.backoff.type", '"fixed" or "exponential"', backoff.type);
  const delay = checkMs("retry.backoff.delay", backoff.delay);
  const maxDelay = checkMs("retry.backoff.maxDelay", backoff.maxDelay === undefined ? Infinity : backoff.maxDelay, { allowInfinity: true });
  const jitter = backoff.jitter === undefined ? 0 : backoff.jitter;
  if (typeof jitter !== "number" || !(jitter >= 0 && jitter <= 1)) throw invalidOption("retry.backoff.jitter", "a number from 0 to 1", jitter);
  return { type: backoff.type, delay, maxDelay, jitter };
}

/**
 * Delay in ms before try number `attempt + 1`, after try `attempt` (1-based) failed.
 * `random` returns [0, 1); jitter takes up to that fraction of the delay away.
 */
export function backoffDelay(backoff: Required<Backoff>, attempt: number, random: () => number = Math.random): number {
  const base = backoff.type === "fixed" ? backoff.delay : backoff.delay * 2 ** Math.max(0, attempt - 1);
  const capped = Math.min(base, backoff.maxDelay);
  return backoff.jitter === 0 ? capped : capped * (1 - backoff.jitter * random());
}
