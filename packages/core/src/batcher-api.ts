import { Batcher as BatcherClass } from "./batcher.js";
import type { BatcherOptions, FlushReason } from "./options.js";

// The Batcher as an application sees it. The class (batcher.ts) also carries the members its
// drivers use, exported from `@tranche/core/internal`; the public declaration shows only these.

/** One buffered or in-flight item. Times are epoch ms. */
export interface Item<T> {
  readonly id: string;
  readonly payload: T;
  /** Tries so far including the current one: 1 on the first. */
  readonly attempt: number;
  /** When the item first entered the buffer. */
  readonly enqueuedAt: number;
  /** When the item became (or becomes) eligible. */
  readonly notBefore: number;
}

/** What `Batcher.add` takes. */
export interface NewItem<T> {
  /** Item id; generated from a counter when absent. */
  id?: string;
  payload: T;
  /** Absolute time (epoch ms) before which the item is delayed. @default now */
  notBefore?: number;
  /** Tries already made, counting this one. @default 1 */
  attempt?: number;
}

/** A list of items of one group handed over together. */
export interface Batch<T> {
  readonly id: string;
  readonly reason: FlushReason;
  /** The group key when `groupBy` is set, else absent or `undefined`. */
  readonly group?: string | undefined;
  readonly items: Item<T>[];
}

/** What `Batcher.add` did with the item: took it, merged it into a buffered one, or had no room. */
export type AddResult = "accepted" | "coalesced" | "full";

/** The last merge: `survivor` stays buffered; `dropped` is the payload that no longer is. */
export interface Coalesced<T> {
  readonly survivor: Item<T>;
  readonly dropped: T;
}

/** What a Batcher holds now, and what it did so far. */
export interface BatcherStats {
  /** Items buffered: eligible + delayed. */
  held: number;
  eligible: number;
  delayed: number;
  /** Unsettled items in in-flight batches. */
  inFlight: number;
  inFlightBatches: number;
  /** Batches started, by flush reason. */
  batches: Record<FlushReason, number>;
  /** Items by what happened to them. */
  items: { accepted: number; coalesced: number; acked: number; failed: number; retried: number; removed: number };
}

/**
 * The pure batching state machine: it decides which items form which batch and
 * when, and tracks every item to its outcome. It keeps no timers, makes no
 * promises and never reads the clock: every method takes `now` (epoch ms), and
 * `nextWake()` says when the driver should call `poll` again.
 *
 * Drivers: `batched()` for in-process callbacks, `Worker` of `@tranche/worker` for transports.
 */
export interface Batcher<T> {
  /**
   * Offers an item. `"full"` means it was not taken (`maxBuffered`); `"coalesced"`
   * means it was merged into a buffered item with the same `dedupeKey` (see `coalesced`).
   * Throws `ClosedError` after `close`, `OversizeError` when it alone exceeds `maxBatchBytes`.
   */
  add(item: NewItem<T>, now: number): AddResult;
  /** The merge made by the last `add` or `retry` that returned `"coalesced"`. */
  readonly coalesced: Coalesced<T> | undefined;
  /** Batches that start now: their slots are taken until every item is settled. */
  poll(now: number): Batch<T>[];
  /**
   * Absolute time at which `poll` may have work, `undefined` when only a settle
   * (or an add) can create some. A time ≤ now means "poll now".
   */
  nextWake(): number | undefined;
  /** Settles an in-flight item with success. */
  ack(batchId: string, itemId: string, now: number): void;
  /** Settles an in-flight item with failure; terminal. */
  fail(batchId: string, itemId: string, now: number): void;
  /**
   * Back to the buffer, eligible at `notBefore`, with `attempt + 1`; `"coalesced"` when a
   * buffered item with the same `dedupeKey` absorbed it (see `coalesced`).
   */
  retry(batchId: string, itemId: string, notBefore: number, now: number): "retried" | "coalesced";
  /**
   * Takes an in-flight item out of the batcher without an outcome (counted as `removed`,
   * not acked, failed or retried): its driver handed it elsewhere, as a `Worker` hands a
   * retried delivery back to its transport, which redelivers it later.
   */
  remove(batchId: string, itemId: string, now: number): void;
  /** Every item eligible now flushes (reason `"flush"`), in batches of ≤ `flushEvery`, within `concurrency`. */
  flush(now: number): void;
  /** Stops intake; from now on every eligible item flushes (reason `"close"`), delayed ones when due. */
  close(now: number): void;
  /** Whether `close` was called. */
  readonly isClosed: boolean;
  /** Removes and returns every buffered item (eligible and delayed), oldest first; in-flight batches stay. */
  evict(now: number): Item<T>[];
  /** Counts of what is held and of what happened so far. */
  readonly stats: BatcherStats;
}

/** `new Batcher(options)`. */
export interface BatcherConstructor {
  new <T>(options?: BatcherOptions<T>): Batcher<T>;
  readonly prototype: Batcher<unknown>;
}

/** The `Batcher` class: `new Batcher<T>(options)`, `batcher instanceof Batcher`. */
export const Batcher: BatcherConstructor = BatcherClass;
