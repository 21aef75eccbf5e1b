import { TimeoutError, checkMs, systemClock } from "@tranche/core";
import type { Clock, Outcome, ResultStore } from "@tranche/core";
import { type HeapNode, KeyedHeap } from "./keyed-heap.js";
import { PREFIX, checkClock, checkOptionsObject, invalid, unref } from "./options.js";

export interface MemoryResultStoreOptions {
  /** Source of time for `ttl` and `wait` timeouts. @default systemClock */
  clock?: Clock;
}

interface Stored<R> extends HeapNode {
  readonly id: string;
  readonly outcome: Outcome<R>;
}

/** Outcomes kept in a `Map`, with `ttl` expiry and `wait` resolved by `set` (no polling). */
export class MemoryResultStore<R = unknown> implements ResultStore<R> {
  private readonly clock: Clock;
  private readonly stored = new Map<string, Stored<R>>();
  private readonly expiries = new KeyedHeap<Stored<R>>();
  private readonly waiters = new Map<string, Set<(outcome: Outcome<R>) => void>>();
  private seq = 0;
  private timer: unknown;
  private timerAt = Infinity;

  constructor(options?: MemoryResultStoreOptions) {
    const o = checkOptionsObject(options) as MemoryResultStoreOptions;
    this.clock = checkClock(o.clock) ?? systemClock;
  }

  /** Stores `outcome` under `id` for `ttl` ms (forever when absent), replacing what was there. */
  async set(id: string, outcome: Outcome<R>, ttl?: number): Promise<void> {
    checkId(id);
    if (typeof outcome !== "object" || outcome === null || typeof outcome.ok !== "boolean") invalid("outcome", "an Outcome ({ ok, value } or { ok, error })", outcome);
    const lifetime = ttl === undefined ? Infinity : checkMs("ttl", ttl, { allowInfinity: true, prefix: PREFIX });
    const previous = this.stored.get(id);
    if (previous !== undefined) this.expiries.remove(previous);
    if (lifetime <= 0) {
      this.stored.delete(id);
    } else {
      const entry: Stored<R> = { id, outcome, key: this.clock.now() + lifetime, seq: ++this.seq, heapIndex: -1 };
      this.stored.set(id, entry);
      if (lifetime !== Infinity) this.expiries.rekey(entry, entry.key);
    }
    this.schedule();
    const waiting = this.waiters.get(id);
    if (waiting !== undefined) {
      this.waiters.delete(id);
      for (const resolve of waiting) resolve(outcome);
    }
  }

  async get(id: string): Promise<Outcome<R> | undefined> {
    checkId(id);
    this.expire();
    return this.stored.get(id)?.outcome;
  }

  /**
   * Resolves with the outcome once it is stored (at once if it is). Rejects with `TimeoutError`
   * after `timeout` ms, or with the signal's reason when `signal` aborts. Waits forever without either.
   */
  wait(id: string, options?: { timeout?: number; signal?: AbortSignal }): Promise<Outcome<R>> {
    try {
      checkId(id);
      const o = checkOptionsObject(options) as { timeout?: number; signal?: AbortSignal };
      const timeout = o.timeout === undefined ? Infinity : checkMs("timeout", o.timeout, { allowInfinity: true, prefix: PREFIX });
      const signal = o.signal;
      if (signal?.aborted) return Promise.reject(signal.reason);
      this.expire();
      const found = this.stored.get(id);
      if (found !== undefined) return Promise.resolve(found.outcome);
      return new Promise((resolve, reject) => {
        let timer: unknown;
        const done = (): void => {
          const set = this.waiters.get(id);
          set?.delete(onSet);
          if (set?.size === 0) this.waiters.delete(id);
          if (timer !== undefined) this.clock.clearTimer(timer);
          signal?.removeEventListener("abort", onAbort);
        };
        const onSet = (outcome: Outcome<R>): void => {
          done();
          resolve(outcome);
        };
        const onAbort = (): void => {
          done();
          reject(signal?.reason);
        };
        if (timeout !== Infinity) {
          timer = this.clock.setTimer(this.clock.now() + timeout, () => {
            timer = undefined;
            done();
            reject(new TimeoutError(timeout, `[tranche/memory] no result for ${JSON.stringify(id)} after ${timeout} ms`));
          });
        }
        signal?.addEventListener("abort", onAbort, { once: true });
        let set = this.waiters.get(id);
        if (set === undefined) this.waiters.set(id, (set = new Set()));
        set.add(onSet);
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Entries held now (expired ones are dropped first). */
  get size(): number {
    this.expire();
    return this.stored.size;
  }

  private expire(): void {
    const now = this.clock.now();
    for (let entry = this.expiries.peek(); entry !== undefined && entry.key <= now; entry = this.expiries.peek()) {
      this.expiries.pop();
      this.stored.delete(entry.id);
    }
  }

  /** One timer for the earliest expiry, so expired entries free their memory even if never read. */
  private schedule(): void {
    const next = this.expiries.peek()?.key ?? Infinity;
    if (next === this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = unref(
      this.clock.setTimer(next, () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.expire();
        this.schedule();
      }),
    );
  }
}

function checkId(id: unknown): void {
  if (typeof id !== "string" || id === "") invalid("id", "a non-empty string", id);
}
