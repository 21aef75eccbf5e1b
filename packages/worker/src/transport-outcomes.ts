import type { Clock, Outcome, ResultStore, Transport } from "@tranche/core";
import { type Batcher, errorInfo } from "@tranche/core/internal";
import type { TransportOperationError } from "./errors.js";
import type { WorkerEvents } from "./events.js";
import type { Io } from "./io.js";
import type { ResolvedWorkerOptions } from "./options.js";
import type { TransportCounts } from "./stats.js";
import { storeOutcomes } from "./store-outcomes.js";
import type { WorkItem } from "./work-item.js";

/** What the outcomes ask of the worker that holds the items. */
export interface SettlingWorker<T, R> {
  readonly batcher: Batcher<T>;
  /** The worker has let go of these deliveries (their transport call is over, or given up). */
  done(items: WorkItem<T, R>[]): void;
  /** Keeps an item whose retry the broker refused and runs it again itself, not before `notBefore`. */
  retryHere(item: WorkItem<T, R>, notBefore: number): void;
  /** Emits a worker event; a listener that throws does not reach the caller. */
  emit<K extends keyof WorkerEvents>(event: K, ...args: WorkerEvents[K]): void;
  /** Reports a failed call. */
  error(error: TransportOperationError): void;
}

/** Deliveries the worker keeps until their `notBefore`, then releases (see `holdUntil`). */
interface Hold<T, R> {
  readonly items: WorkItem<T, R>[];
  timer: unknown;
}

/**
 * Maps the worker's outcomes to its transport: ack (results stored first when a result store
 * is set), retry, dead letter and release, each call tried as `Io.call` does. An item merged
 * into another by `dedupeKey` follows its outcome. Once a call is over, or given up, the worker
 * lets go of its items (`done`); the broker hands out again what a call that failed was for.
 */
export class TransportOutcomes<T, R> {
  /** Retries whose scheduling is in doubt, kept until their `notBefore`. */
  private readonly holds = new Set<Hold<T, R>>();

  constructor(
    private readonly transport: Transport<T>,
    private readonly clock: Clock,
    private readonly io: Io,
    private readonly options: ResolvedWorkerOptions,
    /** The worker's transport counts, which each call that succeeds adds to. */
    private readonly counts: Pick<TransportCounts, "acked" | "retried" | "deadLettered" | "released">,
    private readonly worker: SettlingWorker<T, R>,
  ) {}

  /**
   * Stores the results (when a result store is set), then acks in one call. An item whose result
   * the store could not take for a passing fault within `ioMaxRetryTime` is not acked: the
   * broker hands it out again, and its result is stored then.
   */
  async ackAll(items: WorkItem<T, R>[]): Promise<void> {
    const all = this.withMerged(items);
    const stored = this.options.results === undefined ? all : await this.store(all, (item) => ({ ok: true, value: item.value as R }));
    if (stored.length > 0 && (await this.io.call("ack", () => this.transport.ack(stored.map((item) => item.delivery)))) === "ok") {
      this.counts.acked += stored.length;
    }
    this.worker.done(all);
  }

  async deadLetter(item: WorkItem<T, R>, reason: Error): Promise<void> {
    const all = this.withMerged([item]);
    const info = errorInfo(reason);
    for (const each of all) this.worker.emit("deadLetter", { id: each.id, attempt: each.attempt, runs: this.runs(each), reason: info });
    const outcome = { ok: false, error: { name: reason.name, message: reason.message } } as const;
    const stored = this.options.results === undefined ? all : await this.store(all, () => outcome);
    // A dead letter that cannot be written is left to the broker: it hands the item out again.
    await Promise.all(
      stored.map(async (each) => {
        if ((await this.io.call("deadLetter", () => this.transport.deadLetter(each.delivery, reason))) === "ok") this.counts.deadLettered++;
      }),
    );
    this.worker.done(all);
  }

  /**
   * Has the transport keep a retry, not before `notBefore`. One the broker refused (so surely
   * did not apply) runs here (`retryHere`); one that failed may or may not have applied, so the
   * worker holds it until then (`holdUntil`).
   */
  async retryLater(item: WorkItem<T, R>, notBefore: number): Promise<void> {
    const all = this.withMerged([item]);
    for (const each of all) this.worker.emit("retry", { id: each.id, attempt: each.attempt, notBefore });
    const refused: WorkItem<T, R>[] = [];
    const unsure: WorkItem<T, R>[] = [];
    await Promise.all(
      all.map(async (each) => {
        const result = await this.io.call("retry", () => this.transport.retry(each.delivery, notBefore));
        if (result === "ok") this.counts.retried++;
        else if (result === "refused") refused.push(each);
        else if (result === "failed") unsure.push(each);
      }),
    );
    if (refused.length + unsure.length === 0) {
      this.worker.done(all);
      return;
    }
    this.worker.done(all.filter((each) => !refused.includes(each) && !unsure.includes(each)));
    for (const each of refused) this.worker.retryHere(each, notBefore);
    if (unsure.length > 0) this.holdUntil(unsure, notBefore);
  }

  /** Gives held deliveries back to the transport for immediate redelivery. */
  async release(items: WorkItem<T, R>[]): Promise<void> {
    const all = this.withMerged(items);
    if ((await this.io.call("release", () => this.transport.release(all.map((item) => item.delivery)))) === "ok") this.counts.released += all.length;
    this.worker.done(all);
  }

  // ---- holds ----

  /**
   * Deliveries that must not run before `notBefore` and whose retry the broker may or may not
   * have applied: the worker keeps them (their leases renewed) until then, and releases them.
   * A release of a delivery the broker has retried meanwhile is a no-op.
   */
  holdUntil(items: WorkItem<T, R>[], notBefore: number): void {
    const hold: Hold<T, R> = { items, timer: undefined };
    hold.timer = this.clock.setTimer(notBefore, () => {
      this.holds.delete(hold);
      void this.release(items);
    });
    this.holds.add(hold);
  }

  /** `close({ timeout })` gave up: held deliveries are let go (their leases end by themselves). */
  dropHolds(): void {
    for (const hold of this.holds) {
      this.clock.clearTimer(hold.timer);
      this.worker.done(hold.items);
    }
    this.holds.clear();
  }

  // ---- helpers ----

  /** The item and the items merged into it by `dedupeKey`, which follow its outcome. */
  private withMerged(items: WorkItem<T, R>[]): WorkItem<T, R>[] {
    if (this.worker.batcher.options.dedupeKey === undefined) return items;
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
   * Stores each item's outcome (see `storeOutcomes`); resolves with the items the store has
   * or can never take. Items still failing for a passing fault after `ioMaxRetryTime` are left out.
   */
  private store(items: WorkItem<T, R>[], outcomeOf: (item: WorkItem<T, R>) => Outcome<R>): Promise<WorkItem<T, R>[]> {
    const { results, resultTtl } = this.options as { results: ResultStore<R>; resultTtl: number | undefined };
    return storeOutcomes(
      results,
      resultTtl,
      items.map((item) => ({ item, outcome: outcomeOf(item) })),
      (attempt) => this.io.call("results.set", attempt),
      (error) => this.worker.error(error),
    );
  }

  /** Handler runs of an item: its retries, and this delivery when it ran. */
  private runs(item: WorkItem<T, R>): number | undefined {
    const { retries } = item;
    return retries === undefined ? undefined : retries + (item.batch === undefined ? 0 : 1);
  }
}
