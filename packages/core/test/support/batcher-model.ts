/**
 * A small reference model of `Batcher`, written straight from SPEC §4 and §5 with
 * arrays, filters and sorts instead of heaps and counters. It is slow on purpose:
 * every decision is recomputed from the list of items, so it is easy to check by eye.
 *
 * Where the SPEC leaves a choice open, the model follows the documented choices of
 * the implementation:
 * - capacity (options.ts): an add is admitted while `held + unsettled in-flight < maxBuffered`;
 *   an add that coalesces is admitted even when full;
 * - `nextWake()` is the earliest of the oldest eligible item's interval deadline and the
 *   next delayed item's eligibility, `now` when a trigger is due, `undefined` with no free slot;
 * - a batch's reason, when several triggers hold: "count" (a full batch) > "bytes" >
 *   "flush" > "close" > "interval";
 * - a retried item whose key is buffered again is absorbed by the buffered item
 *   ("coalesced"), which keeps its payload under either policy.
 */
import { ClosedError, OversizeError, SettledError } from "../../src/errors.js";
import type { FlushReason } from "../../src/options.js";
import type { BatcherStats } from "../../src/batcher-api.js";

export interface ModelOptions<T> {
  readonly flushEvery: number;
  readonly flushInterval: number;
  readonly concurrency: number;
  readonly maxBuffered: number;
  readonly maxBatchBytes: number;
  readonly sizeOf: ((payload: T) => number) | undefined;
  readonly groupBy: ((payload: T) => string) | undefined;
  readonly dedupeKey: ((payload: T) => string) | undefined;
  readonly coalesce: "first" | "last";
}

export type ModelState = "held" | "inFlight" | "acked" | "failed" | "evicted" | "merged" | "removed";

export interface ModelItem<T> {
  readonly id: string;
  payload: T;
  attempt: number;
  readonly enqueuedAt: number;
  /** When it became (or becomes) eligible. */
  notBefore: number;
  /** Order of entering the buffer (add or retry): the tie-break of equal `notBefore`. */
  seq: number;
  state: ModelState;
  /** Eligible when the last `flush()` was called and not handed over since. */
  forced: boolean;
  /** For "merged" items: the item whose outcome they get. */
  mergedInto: string | undefined;
}

export interface ModelBatch {
  readonly id: string;
  readonly reason: FlushReason;
  readonly group: string | undefined;
  readonly itemIds: readonly string[];
  readonly startedAt: number;
  readonly unsettled: Set<string>;
}

/** The model reports the same counters as the real `Batcher`. */
export type ModelStats = BatcherStats;

const byEligibility = <T>(a: ModelItem<T>, b: ModelItem<T>): number => a.notBefore - b.notBefore || a.seq - b.seq;

export class BatcherModel<T> {
  /** Every item ever accepted or merged, by id. */
  readonly items = new Map<string, ModelItem<T>>();
  /** In-flight batches, oldest first. */
  readonly flights: ModelBatch[] = [];
  time = -Infinity;
  closed = false;
  coalescedLast: { survivor: string; dropped: T } | undefined = undefined;
  private seq = 0;
  private batchNo = 0;
  private readonly counts: Pick<ModelStats, "batches" | "items"> = {
    batches: { count: 0, bytes: 0, interval: 0, flush: 0, close: 0 },
    items: { accepted: 0, coalesced: 0, acked: 0, failed: 0, retried: 0, removed: 0 },
  };

  constructor(readonly options: ModelOptions<T>) {}

  // ---- queries ----

  groupOf(payload: T): string | undefined {
    return this.options.groupBy?.(payload);
  }

  keyOf(payload: T): string | undefined {
    return this.options.dedupeKey?.(payload);
  }

  sizeOf(payload: T): number {
    return this.options.sizeOf?.(payload) ?? 0;
  }

  held(): ModelItem<T>[] {
    return [...this.items.values()].filter((item) => item.state === "held");
  }

  eligible(): ModelItem<T>[] {
    return this.held()
      .filter((item) => item.notBefore <= this.time)
      .sort(byEligibility);
  }

  delayed(): ModelItem<T>[] {
    return this.held().filter((item) => item.notBefore > this.time);
  }

  inFlightItems(): ModelItem<T>[] {
    return [...this.items.values()].filter((item) => item.state === "inFlight");
  }

  /** Eligible items of each group, in eligibility order; groups in order of their oldest item. */
  groups(): { key: string | undefined; items: ModelItem<T>[] }[] {
    const groups = new Map<string | undefined, ModelItem<T>[]>();
    for (const item of this.eligible()) {
      const key = this.groupOf(item.payload);
      let list = groups.get(key);
      if (list === undefined) groups.set(key, (list = []));
      list.push(item);
    }
    return [...groups].map(([key, items]) => ({ key, items }));
  }

  bytes(items: readonly ModelItem<T>[]): number {
    return items.reduce((sum, item) => sum + this.sizeOf(item.payload), 0);
  }

  /** Count, bytes, flush or close: triggers that do not depend on how long items waited. */
  private hasImmediateTrigger(items: readonly ModelItem<T>[]): boolean {
    const { flushEvery, maxBatchBytes } = this.options;
    return this.closed || items.length >= flushEvery || this.bytes(items) >= maxBatchBytes || items.some((item) => item.forced);
  }

  private isDue(items: readonly ModelItem<T>[]): boolean {
    const oldest = items[0];
    return oldest !== undefined && (this.hasImmediateTrigger(items) || oldest.notBefore + this.options.flushInterval <= this.time);
  }

  /** The buffered item with this dedupe key, if any. */
  buffered(key: string): ModelItem<T> | undefined {
    return this.held().find((item) => this.keyOf(item.payload) === key);
  }

  /** The terminal outcome an id ends with, following merges; undefined while pending. */
  outcome(id: string): "acked" | "failed" | "evicted" | "removed" | undefined {
    let item = this.items.get(id);
    while (item !== undefined && item.state === "merged") item = this.items.get(item.mergedInto as string);
    const state = item?.state;
    return state === "acked" || state === "failed" || state === "evicted" || state === "removed" ? state : undefined;
  }

  nextWake(): number | undefined {
    if (this.flights.length >= this.options.concurrency) return undefined;
    const groups = this.groups();
    if (groups.some((group) => this.hasImmediateTrigger(group.items))) return this.time;
    let wake = Infinity;
    for (const group of groups) wake = Math.min(wake, (group.items[0] as ModelItem<T>).notBefore + this.options.flushInterval);
    for (const item of this.delayed()) wake = Math.min(wake, item.notBefore);
    return wake === Infinity ? undefined : wake;
  }

  stats(): ModelStats {
    const held = this.held().length;
    const delayed = this.delayed().length;
    return {
      held,
      eligible: held - delayed,
      delayed,
      inFlight: this.inFlightItems().length,
      inFlightBatches: this.flights.length,
      batches: { ...this.counts.batches },
      items: { ...this.counts.items },
    };
  }

  // ---- commands ----

  private tick(now: number): void {
    if (now > this.time) this.time = now;
  }

  add(id: string, payload: T, notBefore: number | undefined, attempt: number, now: number): "accepted" | "coalesced" | "full" {
    if (this.closed) throw new ClosedError();
    const size = this.sizeOf(payload);
    if (size > this.options.maxBatchBytes) throw new OversizeError(size, this.options.maxBatchBytes);
    this.tick(now);
    const key = this.keyOf(payload);
    const survivor = key === undefined ? undefined : this.buffered(key);
    if (survivor !== undefined) {
      this.counts.items.coalesced++;
      if (this.options.coalesce === "first") {
        this.coalescedLast = { survivor: survivor.id, dropped: payload };
      } else {
        this.coalescedLast = { survivor: survivor.id, dropped: survivor.payload };
        survivor.payload = payload; // and with it its group and size
      }
      this.items.set(id, {
        id, payload, attempt, enqueuedAt: this.time, notBefore: this.time, seq: 0, state: "merged", forced: false, mergedInto: survivor.id,
      });
      return "coalesced";
    }
    if (this.held().length + this.inFlightItems().length >= this.options.maxBuffered) return "full";
    this.counts.items.accepted++;
    this.items.set(id, {
      id,
      payload,
      attempt,
      enqueuedAt: this.time,
      notBefore: notBefore === undefined || notBefore < this.time ? this.time : notBefore,
      seq: ++this.seq,
      state: "held",
      forced: false,
      mergedInto: undefined,
    });
    return "accepted";
  }

  poll(now: number): ModelBatch[] {
    this.tick(now);
    const out: ModelBatch[] = [];
    while (this.flights.length < this.options.concurrency) {
      // Rule 4: among groups with a due trigger, the one whose oldest eligible item is oldest.
      const due = this.groups().filter((group) => this.isDue(group.items));
      due.sort((a, b) => byEligibility(a.items[0] as ModelItem<T>, b.items[0] as ModelItem<T>));
      const group = due[0];
      if (group === undefined) break;
      out.push(this.take(group.key, group.items));
    }
    return out;
  }

  private take(group: string | undefined, items: ModelItem<T>[]): ModelBatch {
    const { flushEvery, maxBatchBytes } = this.options;
    let batch = items.slice(0, flushEvery);
    let reason: FlushReason;
    if (this.bytes(items) > maxBatchBytes) {
      // Rule 2: the largest prefix that fits.
      let n = 0;
      while (n < batch.length && this.bytes(batch.slice(0, n + 1)) <= maxBatchBytes) n++;
      batch = batch.slice(0, n);
      reason = batch.length === flushEvery ? "count" : "bytes";
    } else if (items.length >= flushEvery) {
      reason = "count";
    } else if (this.bytes(items) >= maxBatchBytes) {
      reason = "bytes";
    } else if (items.some((item) => item.forced)) {
      reason = "flush";
    } else {
      reason = this.closed ? "close" : "interval";
    }
    for (const item of batch) {
      item.state = "inFlight";
      item.forced = false;
    }
    const flight: ModelBatch = {
      id: `${++this.batchNo}`,
      reason,
      group,
      itemIds: batch.map((item) => item.id),
      startedAt: this.time,
      unsettled: new Set(batch.map((item) => item.id)),
    };
    this.flights.push(flight);
    this.counts.batches[reason]++;
    return flight;
  }

  private settle(batchId: string, itemId: string): ModelItem<T> {
    const flight = this.flights.find((f) => f.id === batchId);
    if (flight === undefined || !flight.unsettled.has(itemId)) throw new SettledError(itemId);
    flight.unsettled.delete(itemId);
    if (flight.unsettled.size === 0) this.flights.splice(this.flights.indexOf(flight), 1);
    return this.items.get(itemId) as ModelItem<T>;
  }

  ack(batchId: string, itemId: string, now: number): void {
    this.tick(now);
    const item = this.settle(batchId, itemId);
    this.counts.items.acked++;
    item.state = "acked";
  }

  fail(batchId: string, itemId: string, now: number): void {
    this.tick(now);
    const item = this.settle(batchId, itemId);
    this.counts.items.failed++;
    item.state = "failed";
  }

  /** Out of the batcher with no outcome: its driver handed it elsewhere (a Worker's transport retry). */
  remove(batchId: string, itemId: string, now: number): void {
    this.tick(now);
    const item = this.settle(batchId, itemId);
    this.counts.items.removed++;
    item.state = "removed";
  }

  retry(batchId: string, itemId: string, notBefore: number, now: number): "retried" | "coalesced" {
    this.tick(now);
    const item = this.settle(batchId, itemId);
    this.counts.items.retried++;
    item.attempt++;
    const key = this.keyOf(item.payload);
    const survivor = key === undefined ? undefined : this.buffered(key);
    if (survivor !== undefined) {
      this.counts.items.coalesced++;
      this.coalescedLast = { survivor: survivor.id, dropped: item.payload };
      item.state = "merged";
      item.mergedInto = survivor.id;
      return "coalesced";
    }
    item.state = "held";
    item.notBefore = notBefore < this.time ? this.time : notBefore;
    item.seq = ++this.seq;
    return "retried";
  }

  flush(now: number): void {
    this.tick(now);
    for (const item of this.eligible()) item.forced = true;
  }

  close(now: number): void {
    this.tick(now);
    this.closed = true;
  }

  /** Every buffered item, oldest first; they leave the model (the driver fails them). */
  evict(now: number): ModelItem<T>[] {
    this.tick(now);
    const out = this.held().sort(byEligibility);
    for (const item of out) {
      item.state = "evicted";
      item.forced = false;
    }
    return out;
  }
}
