import { TimeoutError, TransportError, jsonCodec, systemClock } from "@tranche/core";
import { checkInteger, checkMs } from "@tranche/core/internal";
import type { Clock, Codec, Outcome, ResultStore } from "@tranche/core";
import { type HeapNode, KeyedHeap } from "./keyed-heap.js";
import { PREFIX, checkClock, checkOptionsObject, invalid, unref } from "./options.js";

export interface MemoryResultStoreOptions<R = unknown> {
  /** Source of time for `ttl` and `wait` timeouts. @default systemClock */
  clock?: Clock;
  /** ms an outcome is kept when `set` is called without a `ttl`; `Infinity` keeps it until `maxEntries` pushes it out. @default 86_400_000 (a day, as `RedisResultStore`) */
  ttl?: number;
  /** Outcomes kept; beyond it the oldest stored goes first. @default 100_000 */
  maxEntries?: number;
  /**
   * Turns outcomes into the bytes kept, and back: what a networked store does, so a result it
   * could not store (a `BigInt`, a circular object) fails here too, and nothing stored keeps
   * the objects a handler returned alive. @default jsonCodec
   */
  codec?: Codec<Outcome<R>>;
}

interface Stored extends HeapNode {
  readonly id: string;
  readonly raw: string | Uint8Array;
  /** Neighbours in store order. */
  older: Stored | undefined;
  newer: Stored | undefined;
}

/**
 * Outcomes kept in a `Map` as the codec's bytes, each for its `ttl` and at most `maxEntries` of
 * them, with `wait` resolved by `set` (no polling): the embedded default, bounded like the others.
 */
export class MemoryResultStore<R = unknown> implements ResultStore<R> {
  private readonly clock: Clock;
  private readonly ttl: number;
  private readonly maxEntries: number;
  private readonly codec: Codec<Outcome<R>>;
  private readonly stored = new Map<string, Stored>();
  /**
   * Both ends of the entries in store order, linked through `older` and `newer`. Not the `Map`'s
   * own order: reaching its first entry skips every entry deleted before it since the table was
   * last rebuilt, so a full store would pay more for each eviction as it goes.
   */
  private oldest: Stored | undefined = undefined;
  private newest: Stored | undefined = undefined;
  private readonly expiries = new KeyedHeap<Stored>();
  private readonly waiters = new Map<string, Set<(outcome: Outcome<R>) => void>>();
  private seq = 0;
  private timer: unknown;
  private timerAt = Infinity;

  constructor(options?: MemoryResultStoreOptions<R>) {
    const o = checkOptionsObject(options) as MemoryResultStoreOptions<R>;
    this.clock = checkClock(o.clock) ?? systemClock;
    this.ttl = o.ttl === undefined ? 86_400_000 : checkMs("ttl", o.ttl, { min: 1, allowInfinity: true, prefix: PREFIX });
    this.maxEntries = o.maxEntries === undefined ? 100_000 : checkInteger("maxEntries", o.maxEntries, { min: 1, allowInfinity: true, prefix: PREFIX });
    const c = o.codec as Partial<Codec<Outcome<R>>> | undefined;
    if (c !== undefined && (typeof c !== "object" || c === null || typeof c.encode !== "function" || typeof c.decode !== "function")) {
      invalid("codec", "an object with encode and decode", o.codec);
    }
    this.codec = o.codec ?? (jsonCodec as Codec<Outcome<R>>);
  }

  /**
   * Stores `outcome` under `id` for `ttl` ms (the store's `ttl` when absent), replacing what was
   * there. An outcome the codec cannot encode is refused with a non-retryable `TransportError`.
   */
  async set(id: string, outcome: Outcome<R>, ttl?: number): Promise<void> {
    checkId(id);
    if (typeof outcome !== "object" || outcome === null || typeof outcome.ok !== "boolean") invalid("outcome", "an Outcome ({ ok, value } or { ok, error })", outcome);
    const lifetime = ttl === undefined ? this.ttl : checkMs("ttl", ttl, { allowInfinity: true, prefix: PREFIX });
    let raw: string | Uint8Array;
    try {
      raw = this.codec.encode(outcome);
    } catch (error) {
      throw new TransportError(`[tranche/memory] cannot encode the outcome of ${JSON.stringify(id)}: ${(error as Error | undefined)?.message ?? String(error)}`, { retryable: false, cause: error });
    }
    const previous = this.stored.get(id);
    if (previous !== undefined) this.forget(previous);
    if (lifetime > 0) {
      const entry: Stored = { id, raw, key: this.clock.now() + lifetime, seq: ++this.seq, heapIndex: -1, older: this.newest, newer: undefined };
      this.stored.set(id, entry);
      if (this.newest === undefined) this.oldest = entry;
      else this.newest.newer = entry;
      this.newest = entry;
      if (lifetime !== Infinity) this.expiries.rekey(entry, entry.key);
      if (this.stored.size > this.maxEntries) this.forget(this.oldest as Stored);
    }
    this.schedule();
    const waiting = this.waiters.get(id);
    if (waiting !== undefined) {
      this.waiters.delete(id);
      const stored = this.codec.decode(raw);
      for (const resolve of waiting) resolve(stored);
    }
  }

  async get(id: string): Promise<Outcome<R> | undefined> {
    checkId(id);
    this.expire();
    const entry = this.stored.get(id);
    return entry === undefined ? undefined : this.codec.decode(entry.raw);
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
      if (found !== undefined) return Promise.resolve(this.codec.decode(found.raw));
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

  /** Drops an entry held now. */
  private forget(entry: Stored): void {
    this.stored.delete(entry.id);
    this.expiries.remove(entry);
    const { older, newer } = entry;
    if (older === undefined) this.oldest = newer;
    else older.newer = newer;
    if (newer === undefined) this.newest = older;
    else newer.older = older;
    entry.older = entry.newer = undefined;
  }

  private expire(): void {
    const now = this.clock.now();
    for (let entry = this.expiries.peek(); entry !== undefined && entry.key <= now; entry = this.expiries.peek()) this.forget(entry);
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
