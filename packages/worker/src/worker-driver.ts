import { type Batch, type BatchHandler, ClosedError, type Delivery, RetriesExhaustedError, type Transport } from "@tranche/core";
import { BatchDriver } from "@tranche/core/internal";
import { DeliveryLimitError, type TransportOperationError, toError } from "./errors.js";
import type { Emitter, WorkerEvents } from "./events.js";
import { Io } from "./io.js";
import { type LeaseGroup, type Leases, transportLeases } from "./leases.js";
import { type ResolvedWorkerOptions, type WorkerOptions, resolveWorkerOptions } from "./options.js";
import { Receiver, type ReceivingWorker } from "./receiver.js";
import type { TransportCounts, WorkerStats } from "./stats.js";
import { type SettlingWorker, TransportOutcomes } from "./transport-outcomes.js";
import { type BatchRecord, WorkItem } from "./work-item.js";

/**
 * Drives a transport through a `Batcher`: takes in what its `Receiver` receives while there
 * is room, hands batches to the handler (the shared `BatchDriver` protocol of `@tranche/core`),
 * and has its `TransportOutcomes` map each outcome to the transport — ack, retry or dead
 * letter. It counts the deliveries it holds until the transport has their outcome.
 */
export class WorkerDriver<T, R> extends BatchDriver<T, R, WorkItem<T, R>> implements ReceivingWorker<T>, SettlingWorker<T, R> {
  private readonly own: ResolvedWorkerOptions;
  private readonly io: Io;
  /** Renews the leases of what the worker holds; `undefined` when the transport has none to renew. */
  private readonly leases: Leases<T> | undefined;
  private readonly receiver: Receiver<T>;
  private readonly outcomes: TransportOutcomes<T, R>;
  /** Deliveries held (see `WorkerStats.deliveries`). */
  private held = 0;
  private closing: Promise<void> | undefined = undefined;
  private emptied: (() => void) | undefined = undefined;
  private idle = true;
  private readonly counts: TransportCounts = { receives: 0, received: 0, acked: 0, retried: 0, deadLettered: 0, released: 0, extended: 0, errors: 0 };

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
    this.leases = transportLeases(transport, this.clock, this.io, own.lease, this.counts);
    this.receiver = new Receiver(transport, this.clock, this.io, own, this.counts, this);
    this.outcomes = new TransportOutcomes(transport, this.clock, this.io, own, this.counts, this);
  }

  get stats(): WorkerStats {
    return { ...this.batcher.stats, deliveries: this.held, transport: { ...this.counts, pending: this.io.pending } };
  }

  start(): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(new ClosedError("[tranche/worker] worker is closed"));
    this.receiver.start();
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
    record.calls.push(this.outcomes.deadLetter(item, toError(error)));
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
    record.calls.push(this.outcomes.retryLater(item, notBefore));
    if (freed) this.complete(record);
  }

  /**
   * A retry the broker refused (so surely did not apply) is kept by this worker: it holds the
   * delivery (its lease renewed) and runs the item again itself, not before `notBefore`, as its
   * next try.
   */
  retryHere(item: WorkItem<T, R>, notBefore: number): void {
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
    else if (added === "full") this.outcomes.holdUntil([item], notBefore);
    this.kick();
  }

  // ---- intake and batches ----

  room(): number {
    return this.own.maxBuffered - this.held;
  }

  /** Holds deliveries just received: dead-letters what can never run, offers the rest to the Batcher. */
  intake(deliveries: Delivery<T>[]): void {
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
        void this.outcomes.deadLetter(item, toError(delivery.error));
        continue;
      }
      // Only with the retries known: a delivery count alone cannot tell runs from crashes.
      if (item.retries !== undefined && this.tries(item) > attempts) {
        void this.outcomes.deadLetter(item, new RetriesExhaustedError(delivery.id, attempts));
        continue;
      }
      if (delivery.attempt > maxDeliveries) {
        void this.outcomes.deadLetter(item, new DeliveryLimitError(delivery.id, delivery.attempt, delivery.retries, maxDeliveries));
        continue;
      }
      let added;
      try {
        added = this.batcher._offer(item, now, delivery.notBefore, closed);
      } catch (error) {
        // OversizeError, or a groupBy / dedupeKey / sizeOf that throws: it can never run.
        void this.outcomes.deadLetter(item, toError(error));
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
    if (acked.length > 0) record.calls.push(this.outcomes.ackAll(acked));
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

  // ---- letting go, events ----

  /** The worker has let go of these deliveries (their transport call is over, or given up). */
  done(items: WorkItem<T, R>[]): void {
    if (this.leases !== undefined) for (const item of items) this.leases.letGo(item);
    this.held -= items.length;
    this.receiver.wake();
    if (this.held === 0 && !this.idle) {
      this.idle = true;
      this.emit("idle");
    }
    if (this.held === 0 && this.emptied !== undefined) this.emptied();
  }

  error(error: TransportOperationError): void {
    this.counts.errors++;
    this.emit("error", error);
  }

  emit<K extends keyof WorkerEvents>(event: K, ...args: WorkerEvents[K]): void {
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
    const loop = this.receiver.stop(drain);
    const deadline = timeout === undefined ? undefined : this.clock.setTimer(this.clock.now() + timeout, () => this.giveUp());
    if (loop !== undefined) await loop;
    const now = this.clock.now();
    if (!drain) {
      // What is held goes back, but for retries kept here, which no one may run before their notBefore.
      const held = this.batcher.evict(now) as WorkItem<T, R>[];
      const free = held.filter((item) => item.heldUntil <= now);
      if (free.length > 0) void this.outcomes.release(free);
      for (const item of held) if (item.heldUntil > now) this.outcomes.holdUntil([item], item.heldUntil);
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
    this.outcomes.dropHolds();
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
    if (unsettled.length > 0) void this.outcomes.release(unsettled);
  }
}
