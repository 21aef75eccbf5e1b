import { type Batch, type BatchHandler, type BatcherStats, ClosedError, type Delivery, type Outcome, type ResultStore, RetriesExhaustedError, type Transport } from "@tranche/core";
import { BatchDriver, DriverRequest, errorInfo } from "@tranche/core/internal";
import { DeliveryLimitError, type TransportOperation, TransportOperationError } from "./errors.js";
import type { WorkerEvents } from "./events.js";
import { type CallResult, Io } from "./io.js";
import { type LeaseGroup, type Leased, Leases } from "./leases.js";
import { type ResolvedWorkerOptions, type WorkerOptions, resolveWorkerOptions } from "./options.js";
import { storeOutcomes } from "./store-outcomes.js";

/** What `worker.stats` reports. */
export interface WorkerStats extends BatcherStats {
  /**
   * Deliveries the worker holds: buffered, delayed, in flight, and settled but not yet
   * acked, retried or dead-lettered on the transport. Never more than `maxBuffered`.
   */
  deliveries: number;
  /** Transport calls and their results, counted in deliveries (`receives` and `errors` in calls). */
  transport: {
    receives: number;
    received: number;
    acked: number;
    retried: number;
    deadLettered: number;
    released: number;
    extended: number;
    /** Failed tries of transport and result-store calls (each one an `"error"` event). */
    errors: number;
    /** Transport calls queued or running. */
    pending: number;
  };
}

/** Emits worker events; a throwing listener must not break the worker's bookkeeping. */
export interface Emitter {
  emit<K extends keyof WorkerEvents>(event: K, ...args: WorkerEvents[K]): boolean;
}

/** The outcomes of one batch, gathered until every item has one and the transport has them. */
interface BatchRecord<T, R> {
  readonly id: string;
  readonly startedAt: number;
  /** The acked items, `ackedCount` of them: sized for the whole batch, trimmed when it completes. */
  readonly acked: WorkItem<T, R>[];
  ackedCount: number;
  failed: number;
  retried: number;
  released: number;
  readonly calls: Promise<void>[];
}

/** One delivery: the Batcher's entry and the handler's request, plus what the worker tracks. */
class WorkItem<T, R> extends DriverRequest<T, R> implements Leased<T> {
  // Assigned in the constructor, not class fields, as `Entry` in @tranche/core does: one is built per delivery.
  declare readonly delivery: Delivery<T>;
  declare batch: BatchRecord<T, R> | undefined;
  declare value: R | undefined;
  /** Its lease group while the worker holds it and renews its lease. */
  declare lease: LeaseGroup<T> | undefined;
  /** Handler runs that ended with a retry, as the transport carried them, plus retries kept here. */
  declare retries: number | undefined;
  /** The `notBefore` of a retry kept here (`retryHere`): no other worker may run it earlier. */
  declare heldUntil: number;

  constructor(driver: WorkerDriver<T, R>, delivery: Delivery<T>) {
    super(driver, delivery.payload, delivery.id, delivery.attempt);
    (this as { delivery: Delivery<T> }).delivery = delivery;
    this.batch = undefined;
    this.value = undefined;
    this.lease = undefined;
    this.retries = delivery.retries;
    this.heldUntil = 0;
  }

  get headers(): Readonly<Record<string, string>> | undefined {
    return this.delivery.headers;
  }
}

/** Deliveries the worker keeps until their `notBefore`, then releases (see `holdUntil`). */
interface Hold<T, R> {
  readonly items: WorkItem<T, R>[];
  timer: unknown;
}

const toError = (value: unknown): Error => (value instanceof Error ? value : new Error(typeof value === "string" ? value : String(value)));

/**
 * Drives a transport through a `Batcher`: receives into the buffer while there is room,
 * hands batches to the handler (the shared `BatchDriver` protocol of `@tranche/core`), and
 * maps each outcome to the transport — ack, retry or dead letter.
 */
export class WorkerDriver<T, R> extends BatchDriver<T, R, WorkItem<T, R>> {
  private readonly own: ResolvedWorkerOptions;
  private readonly io: Io;
  /** Renews the leases of what the worker holds; `undefined` when the transport has none to renew. */
  private readonly leases: Leases<T> | undefined;
  /** Deliveries held (see `WorkerStats.deliveries`). */
  private held = 0;
  /** Retries whose scheduling is in doubt, kept until their `notBefore`. */
  private readonly holds = new Set<Hold<T, R>>();
  /** Lease groups with items still held. */
  private receiving = false;
  private draining = true;
  private loop: Promise<void> | undefined = undefined;
  private readonly controller = new AbortController();
  /**
   * Ends the receive under way when `close` aborts (one abort listener for the worker's life): the
   * receive's own `end`. Not a fresh `() => end([])` per receive: with that closure stored here,
   * about 40 bytes per delivery outlived two scavenges and went to the old generation (42 → 2 bytes
   * per delivery promoted, `--trace-gc-nvp`, on `MemoryTransport`), and the worker's scavenges took
   * twice as long. Why V8 kept them is not something I pinned down.
   */
  private endReceive: ((deliveries: Delivery<T>[]) => void) | undefined = undefined;
  /** Wakes the receive loop from a wait for room. */
  private wakeLoop: (() => void) | undefined = undefined;
  /** Cuts a backoff of the receive loop short (at close). */
  private endPause: (() => void) | undefined = undefined;
  private closing: Promise<void> | undefined = undefined;
  private emptied: (() => void) | undefined = undefined;
  private idle = true;
  private readonly counts = { receives: 0, received: 0, acked: 0, retried: 0, deadLettered: 0, released: 0, extended: 0, errors: 0 };

  constructor(
    private readonly transport: Transport<T>,
    handler: BatchHandler<T, R>,
    options: WorkerOptions<T> | undefined,
    private readonly events: Emitter,
  ) {
    const own = resolveWorkerOptions(options);
    super(handler, { ...options, maxBuffered: own.maxBuffered });
    this.own = own;
    this.io = new Io(this.clock, own, (error) => this.error(error));
    const extend = transport.extend;
    this.leases =
      transport.capabilities.lease && typeof extend === "function"
        ? new Leases<T>(
            this.clock,
            own.lease,
            async (due, until) => {
              const outcome = await this.io.once("extend", () => extend.call(transport, due, until), true);
              if (!("value" in outcome)) return false;
              this.counts.extended += due.length;
              return true;
            },
            () => this.io.backoff(1),
          )
        : undefined;
  }

  get stats(): WorkerStats {
    return { ...this.batcher.stats, deliveries: this.held, transport: { ...this.counts, pending: this.io.pending } };
  }

  start(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new ClosedError("[tranche/worker] worker is closed"));
    if (this.loop === undefined) {
      this.receiving = true;
      this.controller.signal.addEventListener("abort", () => this.endReceive?.([]), { once: true });
      this.loop = this.receiveLoop();
    }
    return Promise.resolve();
  }

  close(drain: boolean, timeout: number | undefined): Promise<void> {
    this.closing ??= this.shutdown(drain, timeout);
    return this.closing;
  }

  // ---- outcomes (called by the handler protocol of BatchDriver) ----

  /** An acked item joins its batch's ack call, made once the batch is complete. */
  protected acked(item: WorkItem<T, R>, result: R | undefined): void {
    const record = item.batch as BatchRecord<T, R>;
    item.value = result;
    record.acked[record.ackedCount++] = item;
  }

  protected counted(item: WorkItem<T, R>, freed: boolean): void {
    if (freed) this.complete(item.batch as BatchRecord<T, R>);
  }

  fail(item: WorkItem<T, R>, error: unknown): void {
    const record = item.batch as BatchRecord<T, R>;
    const freed = this.batcher._fail(item);
    record.failed++;
    record.calls.push(this.deadLetter(item, toError(error)));
    if (freed) this.complete(record);
  }

  /** Handler runs so far, this one included: retries the transport carried, or else every delivery. */
  protected override tries(item: WorkItem<T, R>): number {
    return (item.retries === undefined ? item.attempt - 1 : item.retries) + 1;
  }

  protected requeue(item: WorkItem<T, R>, notBefore: number): void {
    // The transport keeps the retry durably and redelivers it: the item leaves the worker.
    const record = item.batch as BatchRecord<T, R>;
    const freed = this.batcher._remove(item);
    record.retried++;
    record.calls.push(this.retryLater(item, notBefore));
    if (freed) this.complete(record);
  }

  // ---- receiving ----

  private async receiveLoop(): Promise<void> {
    let failures = 0;
    while (this.receiving) {
      const room = this.own.maxBuffered - this.held;
      if (room <= 0) {
        await new Promise<void>((resolve) => (this.wakeLoop = resolve));
        continue;
      }
      const max = Math.min(room, this.transport.capabilities.maxReceive);
      this.counts.receives++;
      const startedAt = this.clock.now();
      const received = await this.receive(max);
      if (!Array.isArray(received)) {
        this.error(new TransportOperationError("receive", ++failures, received.error, { retrying: true }));
        await this.pause(this.io.backoff(failures));
        continue;
      }
      failures = 0;
      let deliveries = received;
      if (deliveries.length > max) {
        // More than asked for: give the rest back rather than hold more than maxBuffered.
        void this.giveBack(deliveries.slice(max));
        deliveries = deliveries.slice(0, max);
      }
      if (this.receiving || this.draining) this.intake(deliveries);
      else if (deliveries.length > 0) void this.giveBack(deliveries);
      // A transport that answers "nothing" at once (no long poll) is polled every ioBackoff.delay, not in a busy loop.
      const early = this.own.ioBackoff.delay - (this.clock.now() - startedAt);
      if (deliveries.length === 0 && this.receiving && early > 0) await this.pause(early);
    }
  }

  /** One receive bounded by `ioTimeout`; on close it stops waiting at once. Late deliveries go back. */
  private receive(max: number): Promise<Delivery<T>[] | { error: unknown }> {
    const signal = this.controller.signal;
    return new Promise((resolve) => {
      let over = false;
      const end = (value: Delivery<T>[] | { error: unknown }) => {
        over = true;
        this.io.deadlines.end(deadline);
        this.endReceive = undefined;
        resolve(value);
      };
      if (signal.aborted) {
        resolve([]);
        return;
      }
      this.endReceive = end;
      const deadline = this.io.deadlines.start(() =>
        end({ error: new Error(`[tranche/worker] receive did not settle within ${this.own.ioTimeout} ms`) }),
      );
      let pending: Promise<Delivery<T>[]>;
      try {
        pending = Promise.resolve(this.transport.receive(max, signal));
      } catch (error) {
        end({ error });
        return;
      }
      pending.then(
        (deliveries) => {
          if (!over) end(Array.isArray(deliveries) ? deliveries : { error: new TypeError("[tranche/worker] receive resolved with something other than an array") });
          else if (Array.isArray(deliveries) && deliveries.length > 0) void this.giveBack(deliveries);
        },
        (error: unknown) => {
          if (!over) end({ error });
        },
      );
    });
  }

  /** Waits `ms` on the clock; `close` cuts it short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimer(this.clock.now() + ms, () => {
        this.endPause = undefined;
        resolve();
      });
      this.endPause = () => {
        this.endPause = undefined;
        this.clock.clearTimer(timer);
        resolve();
      };
    });
  }

  private intake(deliveries: Delivery<T>[]): void {
    if (deliveries.length === 0) return;
    this.idle = false;
    const now = this.clock.now();
    const { attempts } = this.batcher.options;
    const { maxDeliveries } = this.own;
    const closed = this.batcher.isClosed;
    // Sized for every delivery (all carry a lease on a leasing transport), trimmed below.
    const group: LeaseGroup<T> | undefined = this.leases
      ? { items: new Array(deliveries.length), live: 0, leaseUntil: Infinity, renewAt: Infinity, index: -1 }
      : undefined;
    let leased = 0;
    this.held += deliveries.length;
    this.counts.received += deliveries.length;
    for (const delivery of deliveries) {
      const item = new WorkItem<T, R>(this, delivery);
      if (group !== undefined && delivery.leaseUntil !== undefined) {
        item.lease = group;
        group.items[leased++] = item;
        group.live++;
        if (delivery.leaseUntil < group.leaseUntil) group.leaseUntil = delivery.leaseUntil;
      }
      if (delivery.error !== undefined) {
        void this.deadLetter(item, toError(delivery.error));
        continue;
      }
      // Only with the retries known: a delivery count alone cannot tell runs from crashes.
      if (item.retries !== undefined && this.tries(item) > attempts) {
        void this.deadLetter(item, new RetriesExhaustedError(delivery.id, attempts));
        continue;
      }
      if (delivery.attempt > maxDeliveries) {
        void this.deadLetter(item, new DeliveryLimitError(delivery.id, delivery.attempt, delivery.retries, maxDeliveries));
        continue;
      }
      let added;
      try {
        added = this.batcher._offer(item, now, delivery.notBefore, closed);
      } catch (error) {
        // OversizeError, or a groupBy / dedupeKey / sizeOf that throws: it can never run.
        void this.deadLetter(item, toError(error));
        continue;
      }
      // Never "full": the Batcher holds a subset of what `held` counts, and `held` stays ≤ maxBuffered.
      if (added === "coalesced") this.attach(item);
    }
    if (group !== undefined && leased > 0) {
      group.items.length = leased;
      this.leases?.add(group, now);
    }
    this.kick();
  }

  // ---- driving the batcher ----

  /** A batch starts: its items learn their record, and the `flush` event goes out. */
  protected override startBatch(batch: Batch<T>, now: number): void {
    const size = batch.items.length;
    const record: BatchRecord<T, R> = { id: batch.id, startedAt: now, acked: new Array(size), ackedCount: 0, failed: 0, retried: 0, released: 0, calls: [] };
    for (const item of batch.items as WorkItem<T, R>[]) item.batch = record;
    const oldest = batch.items[0] as WorkItem<T, R>;
    this.emit("flush", { batchId: batch.id, reason: batch.reason, size, group: batch.group, waitedMs: now - oldest.notBefore });
    this.run(batch, now);
  }

  /** Every item of the batch has its outcome: ack the acked ones in one call, then report. */
  private complete(record: BatchRecord<T, R>): void {
    const { acked } = record;
    acked.length = record.ackedCount;
    if (acked.length > 0) record.calls.push(this.ackAll(acked));
    this.kick();
    const { calls } = record;
    void (calls.length === 1 ? (calls[0] as Promise<void>) : Promise.all(calls)).then(() =>
      this.emit("settled", {
        batchId: record.id,
        acked: record.acked.length,
        failed: record.failed,
        retried: record.retried,
        released: record.released,
        durationMs: this.clock.now() - record.startedAt,
      }),
    );
  }

  // ---- transport calls ----

  /** The item and the items merged into it by `dedupeKey`, which follow its outcome. */
  private withMerged(items: WorkItem<T, R>[]): WorkItem<T, R>[] {
    if (this.batcher.options.dedupeKey === undefined) return items;
    const all: WorkItem<T, R>[] = [];
    for (const item of items) {
      all.push(item);
      if (item.merged !== undefined) {
        for (const other of item.merged as WorkItem<T, R>[]) {
          other.value = item.value;
          all.push(other);
        }
      }
    }
    return all;
  }

  /**
   * Stores the results (when a result store is set), then acks in one call. An item whose result
   * the store could not take for a passing fault within `ioMaxRetryTime` is not acked: the
   * broker hands it out again, and its result is stored then.
   */
  private async ackAll(items: WorkItem<T, R>[]): Promise<void> {
    const all = this.withMerged(items);
    const stored = this.own.results === undefined ? all : await this.store(all, (item) => ({ ok: true, value: item.value as R }));
    if (stored.length > 0 && (await this.call("ack", () => this.transport.ack(stored.map((item) => item.delivery)))) === "ok") {
      this.counts.acked += stored.length;
    }
    this.done(all);
  }

  private async deadLetter(item: WorkItem<T, R>, reason: Error): Promise<void> {
    const all = this.withMerged([item]);
    const info = errorInfo(reason);
    for (const each of all) this.emit("deadLetter", { id: each.id, attempt: each.attempt, runs: this.runs(each), reason: info });
    const outcome = { ok: false, error: { name: reason.name, message: reason.message } } as const;
    const stored = this.own.results === undefined ? all : await this.store(all, () => outcome);
    // A dead letter that cannot be written is left to the broker: it hands the item out again.
    await Promise.all(
      stored.map(async (each) => {
        if ((await this.call("deadLetter", () => this.transport.deadLetter(each.delivery, reason))) === "ok") this.counts.deadLettered++;
      }),
    );
    this.done(all);
  }

  private async retryLater(item: WorkItem<T, R>, notBefore: number): Promise<void> {
    const all = this.withMerged([item]);
    for (const each of all) this.emit("retry", { id: each.id, attempt: each.attempt, notBefore });
    const refused: WorkItem<T, R>[] = [];
    const unsure: WorkItem<T, R>[] = [];
    await Promise.all(
      all.map(async (each) => {
        const result = await this.call("retry", () => this.transport.retry(each.delivery, notBefore));
        if (result === "ok") this.counts.retried++;
        else if (result === "refused") refused.push(each);
        else if (result === "failed") unsure.push(each);
      }),
    );
    if (refused.length + unsure.length === 0) {
      this.done(all);
      return;
    }
    this.done(all.filter((each) => !refused.includes(each) && !unsure.includes(each)));
    for (const each of refused) this.retryHere(each, notBefore);
    if (unsure.length > 0) this.holdUntil(unsure, notBefore);
  }

  /**
   * A retry the broker refused (so surely did not apply) is kept by this worker: it holds the
   * delivery (its lease renewed) and runs the item again itself, not before `notBefore`, as its
   * next try.
   */
  private retryHere(item: WorkItem<T, R>, notBefore: number): void {
    item.attempt++;
    if (item.retries !== undefined) item.retries++;
    item.heldUntil = notBefore;
    let added;
    try {
      added = this.batcher._offer(item, this.clock.now(), notBefore, true);
    } catch {
      // Its callbacks accepted the same payload before: only a closed batcher can refuse it.
      added = "full" as const;
    }
    if (added === "coalesced") this.attach(item);
    else if (added === "full") this.holdUntil([item], notBefore);
    this.kick();
  }

  /**
   * Deliveries that must not run before `notBefore` and whose retry the broker may or may not
   * have applied: the worker keeps them (their leases renewed) until then, and releases them.
   * A release of a delivery the broker has retried meanwhile is a no-op.
   */
  private holdUntil(items: WorkItem<T, R>[], notBefore: number): void {
    const hold: Hold<T, R> = { items, timer: undefined };
    hold.timer = this.clock.setTimer(notBefore, () => {
      this.holds.delete(hold);
      void this.release(items);
    });
    this.holds.add(hold);
  }

  /** `close({ timeout })` gave up: held deliveries are let go (their leases end by themselves). */
  private dropHolds(): void {
    for (const hold of this.holds) {
      this.clock.clearTimer(hold.timer);
      this.done(hold.items);
    }
    this.holds.clear();
  }

  /** Gives held deliveries back to the transport for immediate redelivery. */
  private async release(items: WorkItem<T, R>[]): Promise<void> {
    const all = this.withMerged(items);
    if ((await this.call("release", () => this.transport.release(all.map((item) => item.delivery)))) === "ok") this.counts.released += all.length;
    this.done(all);
  }

  /** Gives back deliveries the worker never held (received late or beyond `max`). */
  private async giveBack(deliveries: Delivery<T>[]): Promise<void> {
    if ((await this.call("release", () => this.transport.release(deliveries))) === "ok") this.counts.released += deliveries.length;
  }

  /**
   * Stores each item's outcome (see `storeOutcomes`); resolves with the items the store has
   * or can never take. Items still failing for a passing fault after `ioMaxRetryTime` are left out.
   */
  private store(items: WorkItem<T, R>[], outcomeOf: (item: WorkItem<T, R>) => Outcome<R>): Promise<WorkItem<T, R>[]> {
    const { results, resultTtl } = this.own as { results: ResultStore<R>; resultTtl: number | undefined };
    return storeOutcomes(
      results,
      resultTtl,
      items.map((item) => ({ item, outcome: outcomeOf(item) })),
      (attempt) => this.call("results.set", attempt),
      (error) => this.error(error),
    );
  }

  /** A call tried until it succeeds or gives up; after `close({ timeout })` gave up, tried once. */
  private async call(operation: TransportOperation, fn: () => Promise<unknown>): Promise<CallResult> {
    if (!this.io.isStopped) return this.io.run(operation, fn);
    const outcome = await this.io.once(operation, fn);
    return "value" in outcome ? "ok" : outcome.error.retryable ? "failed" : "refused";
  }

  /** Handler runs of an item: its retries, and this delivery when it ran. */
  private runs(item: WorkItem<T, R>): number | undefined {
    const { retries } = item;
    return retries === undefined ? undefined : retries + (item.batch === undefined ? 0 : 1);
  }

  /** The worker has let go of these deliveries (their transport call is over, or given up). */
  private done(items: WorkItem<T, R>[]): void {
    if (this.leases !== undefined) for (const item of items) this.leases.letGo(item);
    this.held -= items.length;
    const wake = this.wakeLoop;
    if (wake !== undefined && this.receiving) {
      this.wakeLoop = undefined;
      wake();
    }
    if (this.held === 0 && !this.idle) {
      this.idle = true;
      this.emit("idle");
    }
    if (this.held === 0 && this.emptied !== undefined) this.emptied();
  }

  private error(error: TransportOperationError): void {
    this.counts.errors++;
    this.emit("error", error);
  }

  private emit<K extends keyof WorkerEvents>(event: K, ...args: WorkerEvents[K]): void {
    try {
      this.events.emit(event, ...args);
    } catch (error) {
      // A listener's bug surfaces as an uncaught exception, not as a broken worker.
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  // ---- shutdown ----

  private async shutdown(drain: boolean, timeout: number | undefined): Promise<void> {
    this.draining = drain;
    this.receiving = false;
    this.controller.abort(new ClosedError("[tranche/worker] worker is closing"));
    this.wakeLoop?.();
    this.wakeLoop = undefined;
    this.endPause?.();
    const deadline = timeout === undefined ? undefined : this.clock.setTimer(this.clock.now() + timeout, () => this.giveUp());
    if (this.loop !== undefined) await this.loop;
    const now = this.clock.now();
    if (!drain) {
      // What is held goes back, but for retries kept here, which no one may run before their notBefore.
      const held = this.batcher.evict(now) as WorkItem<T, R>[];
      const free = held.filter((item) => item.heldUntil <= now);
      if (free.length > 0) void this.release(free);
      for (const item of held) if (item.heldUntil > now) this.holdUntil([item], item.heldUntil);
    }
    this.batcher.close(now);
    this.kick();
    if (this.held > 0) await new Promise<void>((resolve) => (this.emptied = resolve));
    if (deadline !== undefined) this.clock.clearTimer(deadline);
    this.disarm();
    this.leases?.stop();
    this.io.stop();
    if (this.own.closeTransport) {
      const closed = await this.io.once("close", () => this.transport.close());
      if ("error" in closed) throw closed.error;
    }
  }

  /** `close({ timeout })` ran out: stop handlers, give back what is unsettled, stop retrying. */
  private giveUp(): void {
    // From here each call is tried once: what was acked is still acked, nothing is retried for long.
    this.io.stop();
    this.dropHolds();
    const unsettled = this.batcher.evict(this.clock.now()) as WorkItem<T, R>[];
    this.abandonFlights(
      () => new ClosedError("[tranche/worker] closed before this batch settled"),
      (item) => {
        const record = item.batch as BatchRecord<T, R>;
        const freed = this.batcher._remove(item);
        record.released++;
        unsettled.push(item);
        if (freed) this.complete(record);
      },
    );
    if (unsettled.length > 0) void this.release(unsettled);
  }
}
