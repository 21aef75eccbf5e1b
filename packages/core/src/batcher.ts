import { ClosedError, OversizeError, SettledError } from "./errors.js";
import { Heap } from "./heap.js";
import { type BatcherOptions, type FlushReason, type ResolvedOptions, resolveOptions } from "./options.js";
import { checkInteger, invalidOption } from "./validation.js";
import type { AddResult, Batch, Batcher as BatcherApi, BatcherStats, Coalesced, Item, NewItem } from "./batcher-api.js";
import { DedupeIndex } from "./dedupe-index.js";
import { DELAYED, DONE, ELIGIBLE, Entry, IN_FLIGHT, earlier } from "./entry.js";
import { Flight, Flights } from "./flight.js";
import { Group, GroupRegistry } from "./group.js";
import { GroupOrder } from "./group-order.js";
import { small } from "./small.js";

/**
 * Sizes at which a Batcher compacts its own structures. They change no output, only when
 * the bookkeeping is tidied: tests set them small so the compaction code runs.
 */
export interface Thresholds {
  /** Group keys kept before empty groups are swept out (then twice the live ones, at least this). @default 64 */
  groups: number;
  /** Dedupe keys kept before stale ones are swept out (then twice the live ones, at least this). @default 1024 */
  keys: number;
  /** Entries taken from the front of a group's queue before it is copied without them (when they are over half). @default 1024 */
  queueHead: number;
}

const defaultThresholds: Thresholds = { groups: 64, keys: 1024, queueHead: 1024 };

/**
 * The Batcher of `@tranche/core` (see its public declaration in batcher-api.ts), with the
 * `_`-members its drivers use: they hand it entries they built and settle them directly,
 * without looking them up by id.
 */
export class Batcher<T> implements BatcherApi<T> {
  readonly options: ResolvedOptions<T>;

  private readonly delayed = new Heap<Entry<T>>(earlier);
  // No Map or Set here gains and loses an entry per batch or per item: V8 keeps a
  // replaced hash table linked to its successor, so once a major GC has moved one to
  // the old generation, every minor GC keeps all later tables — and the items they
  // held — alive, and the process spends its time promoting garbage.
  /** Groups with eligible entries, and which one flushes next. */
  private readonly groupOrder: GroupOrder<T>;
  private readonly groups: GroupRegistry<T>;
  private readonly thresholds: Thresholds;
  /** Times inside are ms since `origin.at`, the first `now` seen (see `Entry._nb`). */
  private readonly origin = { at: 0 };
  private hasOrigin = false;
  private readonly defaultGroup = new Group<T>(undefined, this.origin);
  /** Buffered entries by `dedupeKey`; `undefined` without one. */
  private readonly dedupe: DedupeIndex<T> | undefined;
  private readonly flights = new Flights<T>();

  /** Local time of the last operation (ms since `origin.at`, never negative). */
  private time = 0;
  /** The `now` that `advance` last took, as given (epoch ms); NaN before the first. */
  private lastNow = Number.NaN;
  /** No `sizeOf`, `groupBy` or `dedupeKey`: an add runs no callback. */
  private readonly plain: boolean;
  private order = 0;
  private batchNo = 0;
  private held = 0;
  private inFlightItems = 0;
  private closed = false;
  private last: Coalesced<T> | undefined = undefined;
  private readonly counts = {
    batches: { count: 0, bytes: 0, interval: 0, flush: 0, close: 0 } as Record<FlushReason, number>,
    items: { accepted: 0, coalesced: 0, acked: 0, failed: 0, retried: 0, removed: 0 },
  };

  constructor(options?: BatcherOptions<T>);
  /** @internal With its compaction `thresholds` (defaults for those left out). */
  constructor(options: BatcherOptions<T> | undefined, thresholds: Partial<Thresholds>);
  constructor(options?: BatcherOptions<T>, thresholds?: Partial<Thresholds>) {
    this.options = resolveOptions(options);
    this.thresholds = { ...defaultThresholds };
    if (thresholds !== undefined) {
      for (const name of ["groups", "keys", "queueHead"] as const) {
        const value = thresholds[name];
        if (value !== undefined) this.thresholds[name] = checkInteger(`thresholds.${name}`, value, { min: 1 });
      }
    }
    this.groupOrder = new GroupOrder<T>(this.options.flushEvery, this.options.maxBatchBytes);
    this.groups = new GroupRegistry<T>(this.thresholds.groups, this.origin);
    this.dedupe = this.options.dedupeKey === undefined ? undefined : new DedupeIndex(this.thresholds.keys);
    const { sizeOf, groupBy, dedupeKey } = this.options;
    this.plain = sizeOf === undefined && groupBy === undefined && dedupeKey === undefined;
  }

  /**
   * Offers an item. `"full"` means it was not taken (`maxBuffered`); `"coalesced"`
   * means it was merged into a buffered item with the same `dedupeKey` (see `coalesced`).
   * Throws `ClosedError` after `close`, `OversizeError` when it alone exceeds `maxBatchBytes`.
   */
  add(item: NewItem<T>, now: number): AddResult {
    if (typeof item !== "object" || item === null) throw invalidOption("item", "an object with a payload", item);
    const { id, attempt = 1 } = item;
    if (id !== undefined && typeof id !== "string") throw invalidOption("item.id", "a string", id);
    if (!Number.isSafeInteger(attempt) || attempt < 1) throw invalidOption("item.attempt", "an integer ≥ 1", attempt);
    const entry = new Entry(item.payload, id, attempt);
    return this._offer(entry, now, item.notBefore, false);
  }

  /** The merge made by the last `add` or `retry` that returned `"coalesced"`. */
  get coalesced(): Coalesced<T> | undefined {
    return this.last;
  }

  /** Batches that start now: their slots are taken until every item is settled. */
  poll(now: number): Batch<T>[] {
    now = this.advance(now);
    const batches: Batch<T>[] = [];
    const { concurrency } = this.options;
    while (this.flights.count < concurrency) {
      const group = this.groupOrder.next(now, this.options.flushInterval, this.closed);
      if (group === undefined) break;
      batches.push(this.take(group));
    }
    return batches;
  }

  /**
   * Absolute time at which `poll` may have work, `undefined` when only a settle
   * (or an add) can create some. A time ≤ now means "poll now".
   */
  nextWake(): number | undefined {
    if (this.flights.count >= this.options.concurrency) return undefined;
    const top = this.groupOrder.oldest();
    if (this.groupOrder.hasReady || (this.closed && top !== undefined)) return this.time + this.origin.at;
    let wake = top === undefined ? Infinity : top.first()._nb + this.options.flushInterval;
    const delayed = this.delayed.peek();
    if (delayed !== undefined && delayed._nb < wake) wake = delayed._nb;
    return wake === Infinity ? undefined : wake + this.origin.at;
  }

  ack(batchId: string, itemId: string, now: number): void {
    this.advance(now);
    this._ack(this.flights.find(batchId, itemId));
  }

  fail(batchId: string, itemId: string, now: number): void {
    this.advance(now);
    this._fail(this.flights.find(batchId, itemId));
  }

  /** Back to the buffer, eligible at `notBefore`, with `attempt + 1`. */
  retry(batchId: string, itemId: string, notBefore: number, now: number): "retried" | "coalesced" {
    return this._retry(this.flights.find(batchId, itemId), notBefore, now);
  }

  /**
   * Takes an in-flight item out of the batcher without an outcome (counted as `removed`,
   * not acked, failed or retried): its driver handed it elsewhere, as a `Worker` hands a
   * retried delivery back to its transport, which redelivers it later.
   */
  remove(batchId: string, itemId: string, now: number): void {
    this.advance(now);
    this._remove(this.flights.find(batchId, itemId));
  }

  /** Every item eligible now flushes (reason `"flush"`), in batches of ≤ `flushEvery`, within `concurrency`. */
  flush(now: number): void {
    this.advance(now);
    this.groupOrder.forceAll();
  }

  /** Stops intake; from now on every eligible item flushes (reason `"close"`), delayed ones when due. */
  close(now: number): void {
    this.advance(now);
    this.closed = true;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Removes and returns every buffered item (eligible and delayed), oldest first; in-flight batches stay. */
  evict(now: number): Item<T>[] {
    this.advance(now);
    const out: Entry<T>[] = [];
    for (const group of this.groupOrder.groups) {
      for (let i = group.head; i < group.queue.length; i++) out.push(group.queue[i] as Entry<T>);
      group.queue = [];
      group.head = 0;
      group.bytes = 0;
      group.held = 0;
      group.inReady = false;
      group.heapIndex = -1;
    }
    this.groupOrder.clear();
    for (const entry of this.delayed.items) {
      out.push(entry);
      (entry._group as Group<T>).held = 0;
    }
    this.delayed.clear();
    this.groups.clear();
    this.dedupe?.clear();
    out.sort((a, b) => (earlier(a, b) ? -1 : 1));
    for (const entry of out) entry._state = DONE;
    this.held = 0;
    return out;
  }

  get stats(): BatcherStats {
    const { batches, items } = this.counts;
    return {
      held: this.held,
      eligible: this.held - this.delayed.size,
      delayed: this.delayed.size,
      inFlight: this.inFlightItems,
      inFlightBatches: this.flights.count,
      batches: { ...batches },
      items: { ...items },
    };
  }

  // ---- driver internals (used by batched() and Worker through the Entry objects) ----

  /** @internal Offers a prepared entry; `force` admits it after `close` (callers that were waiting for room). */
  _offer(entry: Entry<T>, now: number, notBefore: number | undefined, force: boolean): AddResult {
    if (now === this.lastNow && notBefore === undefined && this.plain && !this.closed) {
      // The common call: no per-item callbacks, and the time of the last operation, so
      // `advance` has nothing to do (every delayed entry is due after `time`).
      if (this.held + this.inFlightItems >= this.options.maxBuffered) return "full";
      entry._group = this.defaultGroup;
      this.counts.items.accepted++;
      const time = this.time;
      this.enter(entry, time, time, time);
      return "accepted";
    }
    if (this.closed && !force) throw new ClosedError("[tranche/core] batcher is closed");
    const { sizeOf, maxBatchBytes, groupBy, dedupeKey } = this.options;
    // Run user callbacks before touching state, so a throwing one changes nothing.
    let size = 0;
    if (sizeOf !== undefined) {
      size = sizeOf(entry.payload);
      if (typeof size !== "number" || !(size >= 0)) throw invalidOption("sizeOf(payload)", "a number of bytes ≥ 0", size);
      if (size > maxBatchBytes) throw new OversizeError(size, maxBatchBytes);
    }
    const groupKey = groupBy === undefined ? undefined : groupBy(entry.payload);
    if (groupKey !== undefined && typeof groupKey !== "string") throw invalidOption("groupBy(payload)", "a string", groupKey);
    if (notBefore !== undefined && (typeof notBefore !== "number" || Number.isNaN(notBefore))) {
      throw invalidOption("notBefore", "a number (epoch ms)", notBefore);
    }
    now = this.advance(now);
    if (notBefore !== undefined) notBefore = small(notBefore - this.origin.at);
    if (this.dedupe !== undefined) {
      const key = (dedupeKey as (payload: T) => string)(entry.payload);
      if (typeof key !== "string") throw invalidOption("dedupeKey(payload)", "a string", key);
      const survivor = this.dedupe.buffered(key);
      if (survivor !== undefined) {
        this.merge(survivor, entry.payload, size, groupKey);
        return "coalesced";
      }
      if (this.held + this.inFlightItems >= this.options.maxBuffered) return "full";
      entry._key = key;
      this.dedupe.set(key, entry);
    } else if (this.held + this.inFlightItems >= this.options.maxBuffered) {
      return "full";
    }
    entry._size = size;
    entry._group = groupKey === undefined ? this.defaultGroup : this.groups.get(groupKey);
    this.counts.items.accepted++;
    this.enter(entry, notBefore === undefined || notBefore < now ? now : notBefore, now, now);
    return "accepted";
  }

  /** @internal Settling needs no time: only adds, polls and retries move it. True when the batch completed. */
  _ack(entry: Entry<T>): boolean {
    const freed = this.settle(entry);
    this.counts.items.acked++;
    return freed;
  }

  /**
   * @internal Takes an unsettled entry of `flight` out of it as acked, leaving the counts
   * to `_acked`: a driver settling a whole batch calls this per entry, then `_acked` once.
   * False when the entry is not an unsettled entry of `flight`.
   */
  _release(entry: Entry<T>, flight: Flight<T>): boolean {
    if (entry._flight !== flight) return false;
    entry._state = DONE;
    entry._flight = undefined;
    return true;
  }

  /** @internal Counts `count` entries `_release`d from `flight` as acked. True when that completed the batch. */
  _acked(flight: Flight<T>, count: number): boolean {
    if (count === 0) return false;
    this.inFlightItems -= count;
    this.counts.items.acked += count;
    flight._remaining -= count;
    if (flight._remaining > 0) return false;
    this.flights.land(flight);
    return true;
  }

  /** @internal */
  _fail(entry: Entry<T>): boolean {
    const freed = this.settle(entry);
    this.counts.items.failed++;
    return freed;
  }

  /** @internal See `remove`. True when the batch completed. */
  _remove(entry: Entry<T>): boolean {
    const freed = this.settle(entry);
    this.counts.items.removed++;
    return freed;
  }

  /** @internal Returns "coalesced" when a buffered item with the same key absorbed it (see `coalesced`). */
  _retry(entry: Entry<T>, notBefore: number, now: number): "retried" | "coalesced" {
    if (typeof notBefore !== "number" || Number.isNaN(notBefore)) throw invalidOption("notBefore", "a number (epoch ms)", notBefore);
    now = this.advance(now);
    const enqueuedAt = entry._nb - entry._wait;
    notBefore = small(notBefore - this.origin.at);
    this.settle(entry);
    this.counts.items.retried++;
    entry.attempt++;
    if (entry._key !== undefined) {
      const survivor = (this.dedupe as DedupeIndex<T>).buffered(entry._key);
      if (survivor !== undefined) {
        // The buffered one arrived later than this retried one: it is the newer payload
        // under either policy, so it survives unchanged.
        this.last = { survivor, dropped: entry.payload };
        this.counts.items.coalesced++;
        return "coalesced";
      }
      (this.dedupe as DedupeIndex<T>).set(entry._key, entry);
    }
    entry._group = this.groups.rejoin(entry._group as Group<T>);
    this.enter(entry, notBefore < now ? now : notBefore, now, enqueuedAt);
    return "retried";
  }

  /** @internal Whether the entry is in an in-flight batch and unsettled. */
  _inFlight(entry: Entry<T>): boolean {
    return entry._state === IN_FLIGHT;
  }

  /** @internal Whether some `flush()` still owes batches. */
  _flushPending(): boolean {
    return this.groupOrder.flushPending();
  }

  /** @internal Number of the last batch started, and of the oldest still in flight. */
  _batchNumbers(): { last: number; oldestInFlight: number } {
    return { last: this.batchNo, oldestInFlight: this.flights.oldest === undefined ? Infinity : this.flights.oldest._no };
  }

  /** @internal In-flight batches, oldest first. */
  _flights(): Flight<T>[] {
    return this.flights.all();
  }

  /** @internal Items buffered (eligible + delayed). */
  _held(): number {
    return this.held;
  }

  // ---- mechanics ----

  /** Local, monotonic time (ms since the origin); moves due delayed items into their groups. */
  private advance(now: number): number {
    if (typeof now !== "number" || !Number.isFinite(now)) throw invalidOption("now", "a finite number (epoch ms)", now);
    this.lastNow = now;
    if (!this.hasOrigin) {
      this.hasOrigin = true;
      this.origin.at = Math.floor(now);
    }
    now = small(now - this.origin.at);
    if (now > this.time) this.time = now;
    else now = this.time;
    const delayed = this.delayed;
    let top = delayed.peek();
    while (top !== undefined && top._nb <= now) {
      delayed.pop();
      this.push(top);
      top = delayed.peek();
    }
    return now;
  }

  /** Puts an entry into the buffer: eligible now or delayed until `notBefore` (times local, since the origin). */
  private enter(entry: Entry<T>, notBefore: number, now: number, enqueuedAt: number): void {
    entry._nb = notBefore;
    entry._wait = small(notBefore - enqueuedAt);
    entry._order = ++this.order;
    (entry._group as Group<T>).held++;
    this.held++;
    if (notBefore <= now) {
      this.push(entry);
    } else {
      entry._state = DELAYED;
      this.delayed.push(entry);
    }
  }

  private push(entry: Entry<T>): void {
    entry._state = ELIGIBLE;
    const group = entry._group as Group<T>;
    group.queue.push(entry);
    group.pushed++;
    group.bytes += entry._size;
    this.groupOrder.appended(group);
  }

  private take(group: Group<T>): Flight<T> {
    const { flushEvery, maxBatchBytes } = this.options;
    const length = group.length;
    let count = length < flushEvery ? length : flushEvery;
    let reason: FlushReason;
    if (group.bytes > maxBatchBytes) {
      // Largest prefix that fits (each entry alone fits: add refuses bigger ones).
      let bytes = 0;
      let fit = 0;
      while (fit < count) {
        const size = (group.queue[group.head + fit] as Entry<T>)._size;
        if (bytes + size > maxBatchBytes) break;
        bytes += size;
        fit++;
      }
      // All of a shorter group never fits here (its bytes exceed the cap), so fit = count means a full count.
      reason = fit < count ? "bytes" : "count";
      count = fit;
    } else if (length >= flushEvery) {
      reason = "count";
    } else if (group.bytes >= maxBatchBytes) {
      reason = "bytes";
    } else if (group.pushed - length < group.forcedTo) {
      reason = "flush";
    } else {
      reason = this.closed ? "close" : "interval";
    }

    const start = group.head;
    let entries: Entry<T>[];
    if (start === 0 && count === group.queue.length) {
      // The whole queue is the batch (a full one, the usual case): hand the array over
      // rather than copy it. A fresh array follows, not `length = 0`: a long-lived array sits
      // in old space, and every young entry pushed into it costs a write barrier and survives
      // the next scavenge.
      entries = group.queue;
      group.queue = [];
    } else {
      entries = group.queue.slice(start, start + count);
      group.head = start + count;
      if (group.head === group.queue.length) {
        group.queue = [];
        group.head = 0;
      } else if (group.head > this.thresholds.queueHead && group.head * 2 > group.queue.length) {
        group.queue = group.queue.slice(group.head);
        group.head = 0;
      }
    }

    const flight = new Flight<T>(`${++this.batchNo}`, reason, group.key, entries, this.batchNo);
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const entry = entries[i] as Entry<T>;
      entry._state = IN_FLIGHT;
      entry._flight = flight;
      bytes += entry._size;
    }
    group.bytes -= bytes;
    group.held -= count;
    this.held -= count;
    this.inFlightItems += count;
    this.flights.add(flight);
    this.counts.batches[reason]++;

    this.groupOrder.shrunk(group);
    return flight;
  }

  /** Marks an in-flight entry settled; true when that completed its batch (a slot is free). */
  private settle(entry: Entry<T>): boolean {
    if (entry._state !== IN_FLIGHT) throw new SettledError(entry.id);
    const flight = entry._flight as Flight<T>;
    entry._state = DONE;
    entry._flight = undefined;
    this.inFlightItems--;
    if (--flight._remaining > 0) return false;
    this.flights.land(flight);
    return true;
  }

  /**
   * Merges a new payload into the buffered `survivor` with its `dedupeKey`: under `"last"` the
   * survivor takes the payload, its size and (when `groupBy` says so) its group.
   */
  private merge(survivor: Entry<T>, payload: T, size: number, groupKey: string | undefined): void {
    this.counts.items.coalesced++;
    if (this.options.coalesce === "first") {
      this.last = { survivor, dropped: payload };
      return;
    }
    this.last = { survivor, dropped: survivor.payload };
    survivor.payload = payload;
    const from = survivor._group as Group<T>;
    const to = groupKey === undefined ? from : this.groups.get(groupKey);
    if (to !== from) {
      // The new payload belongs to another group: the survivor moves there, so no batch mixes groups.
      this.move(survivor, from, to, size);
      return;
    }
    if (survivor._state === ELIGIBLE) {
      from.bytes += size - survivor._size;
      // A smaller payload can also take the bytes trigger away.
      this.groupOrder.resized(from);
    }
    survivor._size = size;
  }

  /** Moves a buffered entry to another group, keeping its place in eligibility order and any `flush()` it is owed. */
  private move(entry: Entry<T>, from: Group<T>, to: Group<T>, size: number): void {
    from.held--;
    to.held++;
    entry._group = to;
    if (entry._state === ELIGIBLE) {
      const index = from.queue.indexOf(entry, from.head);
      const forced = index - from.head < from.forcedTo - (from.pushed - from.length);
      from.queue.splice(index, 1);
      from.bytes -= entry._size;
      // `pushed - length` counts what left by batches: keep each group's flush debt exact.
      if (!forced) from.pushed--;
      this.groupOrder.shrunk(from);
      if (forced) {
        if (to.forcedTo < to.pushed - to.length) to.forcedTo = to.pushed - to.length;
      } else {
        to.pushed++;
      }
      let at = to.head;
      while (at < to.queue.length && earlier(to.queue[at] as Entry<T>, entry)) at++;
      to.queue.splice(at, 0, entry);
      to.bytes += size;
      this.groupOrder.inserted(to);
    }
    entry._size = size;
  }
}
