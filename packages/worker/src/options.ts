import { type BatcherOptions, type ResultStore } from "@tranche/core";
import { checkInteger, checkMs, invalidOption, resolveOptions } from "@tranche/core/internal";

/** Options of `new Worker()`: the batching options of `@tranche/core` plus the worker's own. */
export interface WorkerOptions<T> extends BatcherOptions<T> {
  /**
   * Deliveries the worker holds at once: buffered, delayed, in flight, and settled but not
   * yet acked, retried or dead-lettered on the transport. `receive` is never asked for more
   * than the room left, so a deep queue stays in the queue. At least `flushEvery`.
   * @default 10 × flushEvery
   */
  maxBuffered?: number;
  /** Where each item's outcome is stored under its id, for producers that `results.wait(id)`. @default none */
  results?: ResultStore;
  /** ms a stored outcome is kept (the `ttl` of `results.set`). @default forever */
  resultTtl?: number;
  /**
   * ms each lease renewal extends a delivery by, on transports with `capabilities.lease` and
   * `extend`. A held or in-flight delivery is renewed when half of its remaining lease is gone.
   * @default 30_000
   */
  lease?: number;
  /**
   * ms after which a transport or result-store call that has not settled counts as failed
   * (hung): the worker emits `"error"` and tries again. Must exceed the transport's own
   * `receive` wait (20 s for SQS long polling). @default 30_000
   */
  ioTimeout?: number;
  /**
   * Backoff between tries of a call that failed with a retryable error: `delay × 2^(tries − 1)`,
   * at most `maxDelay` (ms). The call waits outside the I/O slots. @default { delay: 100, maxDelay: 10_000 }
   */
  ioBackoff?: { delay?: number; maxDelay?: number };
  /**
   * ms a call that keeps failing with retryable errors is tried for. After that the worker
   * takes the operation's fallback: it lets go of the deliveries, which the broker hands out
   * again at lease expiry (a retry is held until its `notBefore` first). Calls that fail with a
   * non-retryable error take the fallback at once. @default 300_000
   */
  ioMaxRetryTime?: number;
  /**
   * Deliveries of one item after which the worker dead-letters it (`DeliveryLimitError`) instead
   * of running it again: a guard against a message that crashes or stalls every worker that
   * takes it. Deliveries that end without an outcome (a crash, a lease expiry, a release) never
   * use up `retry.attempts`, which counts handler runs; only this bounds them. Brokers have their
   * own bound too (SQS `maxReceiveCount`, JetStream `MaxDeliver`, RabbitMQ `x-delivery-limit`).
   * @default Infinity
   */
  maxDeliveries?: number;
  /** Transport calls (ack, retry, deadLetter, extend, release, results.set) in flight at once. @default 8 */
  ioConcurrency?: number;
  /** Whether `close()` also closes the transport, once the worker has let go of everything. @default false */
  closeTransport?: boolean;
}

/** The worker's own options, with defaults applied and checked. */
export interface ResolvedWorkerOptions {
  readonly maxBuffered: number;
  readonly results: ResultStore | undefined;
  readonly resultTtl: number | undefined;
  readonly lease: number;
  readonly ioTimeout: number;
  readonly ioBackoff: { readonly delay: number; readonly maxDelay: number };
  readonly ioMaxRetryTime: number;
  readonly maxDeliveries: number;
  readonly ioConcurrency: number;
  readonly closeTransport: boolean;
}

/** Message prefix of this package's errors. */
export const PREFIX = "[tranche/worker]";

/** A duration in ms > 0, `fallback` when absent. */
function positiveMs(name: string, value: unknown, fallback: number): number {
  return value === undefined ? fallback : checkMs(name, value, { exclusiveMin: true, prefix: PREFIX });
}

/** Checks the worker's own options (the batching ones are checked by the `Batcher`). */
export function resolveWorkerOptions<T>(options: WorkerOptions<T> | undefined): ResolvedWorkerOptions {
  if (options !== undefined && (typeof options !== "object" || options === null)) throw invalidOption("options", "an object", options, PREFIX);
  const o = options ?? {};
  const { maxBuffered } = resolveOptions(o);
  const results = o.results;
  if (results !== undefined) {
    const r = results as Partial<ResultStore>;
    if (typeof r !== "object" || r === null || typeof r.set !== "function" || typeof r.get !== "function" || typeof r.wait !== "function") {
      throw invalidOption("results", "a ResultStore with set, get and wait", results, PREFIX);
    }
  }
  const resultTtl = o.resultTtl === undefined ? undefined : positiveMs("resultTtl", o.resultTtl, 0);
  const lease = positiveMs("lease", o.lease, 30_000);
  const ioTimeout = positiveMs("ioTimeout", o.ioTimeout, 30_000);
  const backoff = o.ioBackoff ?? {};
  if (typeof backoff !== "object" || backoff === null) throw invalidOption("ioBackoff", "an object", backoff, PREFIX);
  const delay = positiveMs("ioBackoff.delay", backoff.delay, 100);
  const maxDelay = positiveMs("ioBackoff.maxDelay", backoff.maxDelay, Math.max(10_000, delay));
  if (maxDelay < delay) throw invalidOption("ioBackoff.maxDelay", `a number of ms ≥ ioBackoff.delay (${delay})`, maxDelay, PREFIX);
  const ioMaxRetryTime = o.ioMaxRetryTime === undefined ? 300_000 : checkMs("ioMaxRetryTime", o.ioMaxRetryTime, { allowInfinity: true, prefix: PREFIX });
  const maxDeliveries = checkInteger("maxDeliveries", o.maxDeliveries === undefined ? Infinity : o.maxDeliveries, { min: 1, allowInfinity: true, prefix: PREFIX });
  const ioConcurrency = checkInteger("ioConcurrency", o.ioConcurrency ?? 8, { min: 1, prefix: PREFIX });
  const closeTransport = o.closeTransport ?? false;
  if (typeof closeTransport !== "boolean") throw invalidOption("closeTransport", "a boolean", closeTransport, PREFIX);
  return { maxBuffered, results, resultTtl, lease, ioTimeout, ioBackoff: { delay, maxDelay }, ioMaxRetryTime, maxDeliveries, ioConcurrency, closeTransport };
}
