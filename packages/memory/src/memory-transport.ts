import { ClosedError, TransportError, jsonCodec, systemClock } from "@tranche/core";
import { checkDeadLetterIds, checkDeadLetterPage, checkHeaders, checkInteger, checkMs, checkTime, decodeWith, errorInfo } from "@tranche/core/internal";
import type { Clock, Codec, DeadLetter, DeadLetterPage, Delivery, QueueDepth, SendManyOptions, SendOptions, Transport, TransportCapabilities } from "@tranche/core";
import { DeadLetterList } from "./dead-letters.js";
import { type HeapNode, KeyedHeap } from "./keyed-heap.js";
import { PREFIX, checkClock, checkOptionsObject, invalid, unref } from "./options.js";

export interface MemoryTransportOptions<T> {
  /** Source of time for delays, leases and receive waits. @default systemClock */
  clock?: Clock;
  /**
   * ms a delivery stays leased to its consumer; an unacked delivery is handed out again
   * (with `attempt + 1`) after it, unless `extend`ed. @default 30_000
   */
  visibilityTimeout?: number;
  /** Turns payloads into the bytes the queue keeps, and back on receive. @default jsonCodec */
  codec?: Codec<T>;
  /** Longest time in ms a `receive` waits for a message before resolving `[]`. @default 1000 */
  wait?: number;
  /**
   * Dead letters kept; beyond it the oldest is dropped, counted in `stats.deadLettersDropped`
   * and handed to `onDeadLetterDropped`. An embedded queue keeps them in memory: bound them.
   * @default 10_000
   */
  maxDeadLetters?: number;
  /** Called with each dead letter dropped to keep within `maxDeadLetters`. */
  onDeadLetterDropped?: (letter: DeadLetter<T>) => void;
}

/** Counts of messages by state. */
export interface MemoryTransportStats {
  /** Waiting to be received now. */
  readonly ready: number;
  /** Sent with a delay or retried, not yet due. */
  readonly delayed: number;
  /** Handed to a consumer and not yet settled or expired. */
  readonly leased: number;
  readonly deadLettered: number;
  /** Dead letters dropped to keep within `maxDeadLetters`. */
  readonly deadLettersDropped: number;
}

type State = "ready" | "delayed" | "leased";

interface Entry extends HeapNode {
  readonly id: string;
  raw: string | Uint8Array;
  state: State;
  /** Deliveries so far; a release takes its delivery back. */
  attempt: number;
  /** `retry` calls so far. */
  retries: number;
  notBefore: number | undefined;
  /** What it was sent with; kept by its retries. */
  headers: Readonly<Record<string, string>> | undefined;
  /** Receipt of the newest delivery while that delivery may still settle the item; 0 when none. */
  receipt: number;
}

interface Waiter<T> {
  readonly max: number;
  readonly resolve: (deliveries: Delivery<T>[]) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
  timer: unknown;
}

/**
 * Each delivery carries the receipt of its lease (like an SQS receipt handle) in a
 * non-enumerable property, so it does not show in logs or `toEqual`.
 */
const RECEIPT = Symbol("tranche.memory.receipt");

/**
 * An in-process broker with the semantics of a network queue: FIFO, payloads through a codec,
 * leases with a visibility timeout, delayed sends and retries, dead letters.
 *
 * One instance shared by several consumers (workers) shares its work: each delivery is leased
 * to the one `receive` that returned it. A delivery handle settles its item only while it is the
 * item's newest delivery and has not settled it already (by `ack`, `retry`, `release` or
 * `deadLetter`); other calls with it are ignored, so a consumer whose lease expired and whose
 * item went to another consumer cannot ack or retry the newer delivery.
 */
export class MemoryTransport<T = unknown> implements Transport<T> {
  readonly name = "memory";
  /** `maxReceive` is unbounded: a `receive` returns up to `max`, whatever it is. */
  readonly capabilities: TransportCapabilities = { maxReceive: Infinity, nativeDelay: true, lease: true, nativeDeadLetter: false };

  private readonly clock: Clock;
  private readonly visibilityTimeout: number;
  private readonly codec: Codec<T>;
  private readonly wait: number;
  private readonly entries = new Map<string, Entry>();
  private readonly ready = new KeyedHeap<Entry>();
  private readonly delayed = new KeyedHeap<Entry>();
  private readonly leases = new KeyedHeap<Entry>();
  private readonly waiters = new Set<Waiter<T>>();
  private readonly dead: DeadLetterList<T>;
  private seq = 0;
  private receipts = 0;
  private timer: unknown;
  private timerAt = Infinity;
  private closed = false;

  constructor(options?: MemoryTransportOptions<T>) {
    const o = checkOptionsObject(options) as MemoryTransportOptions<T>;
    this.clock = checkClock(o.clock) ?? systemClock;
    this.visibilityTimeout = o.visibilityTimeout === undefined ? 30_000 : checkMs("visibilityTimeout", o.visibilityTimeout, { min: 1, allowInfinity: true, prefix: PREFIX });
    this.wait = o.wait === undefined ? 1000 : checkMs("wait", o.wait, { allowInfinity: true, prefix: PREFIX });
    if (o.codec !== undefined) {
      const c = o.codec as Partial<Codec<T>>;
      if (typeof c !== "object" || c === null || typeof c.encode !== "function" || typeof c.decode !== "function") {
        invalid("codec", "an object with encode and decode", o.codec);
      }
    }
    this.codec = o.codec ?? (jsonCodec as Codec<T>);
    const max = o.maxDeadLetters === undefined ? 10_000 : checkInteger("maxDeadLetters", o.maxDeadLetters, { min: 0, allowInfinity: true, prefix: PREFIX });
    if (o.onDeadLetterDropped !== undefined && typeof o.onDeadLetterDropped !== "function") invalid("onDeadLetterDropped", "a function", o.onDeadLetterDropped);
    this.dead = new DeadLetterList(max, o.onDeadLetterDropped);
  }

  async send(payload: T, options?: SendOptions): Promise<string> {
    this.assertOpen();
    const id = this.insert(this.encode(payload), options);
    this.changed();
    return id;
  }

  /** Enqueues every payload, or none when one cannot be encoded. */
  async sendMany(payloads: T[], options?: SendManyOptions): Promise<string[]> {
    this.assertOpen();
    if (!Array.isArray(payloads)) invalid("payloads", "an array", payloads);
    const raws = payloads.map((payload) => this.encode(payload));
    const ids = raws.map((raw) => this.insert(raw, options));
    this.changed();
    return ids;
  }

  /**
   * Enqueues bytes as they are, without the codec: what a producer with another codec (or a
   * broken one) would put on a network queue. Undecodable bytes arrive as a delivery whose
   * `error` is a `DecodeError`.
   */
  async sendRaw(raw: string | Uint8Array, options?: SendOptions): Promise<string> {
    this.assertOpen();
    if (typeof raw !== "string" && !(raw instanceof Uint8Array)) invalid("raw", "a string or Uint8Array", raw);
    const id = this.insert(raw, options);
    this.changed();
    return id;
  }

  /**
   * Up to `max` deliveries, each leased for `visibilityTimeout`. Waits up to `wait` ms for the first
   * message and resolves as soon as there is one; resolves `[]` after the wait or when `signal` aborts.
   */
  async receive(max: number, signal?: AbortSignal): Promise<Delivery<T>[]> {
    this.assertOpen();
    checkInteger("max", max, { min: 1, allowInfinity: true, prefix: PREFIX });
    if (signal?.aborted) return [];
    const now = this.clock.now();
    this.promote(now);
    // Items a late timer has not handed out yet go to the receives that waited longest first.
    if (this.ready.size > 0 && this.waiters.size > 0) this.changed();
    if (this.ready.size > 0) return this.take(max, now);
    if (this.wait === 0) return [];
    return new Promise((resolve) => {
      const waiter: Waiter<T> = {
        max,
        resolve,
        signal,
        onAbort: () => this.settleWaiter(waiter, []),
        timer: undefined,
      };
      if (this.wait !== Infinity) waiter.timer = this.clock.setTimer(now + this.wait, () => this.settleWaiter(waiter, []));
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  /** Removes the items of deliveries that still hold them; others (already settled, stale) are ignored. */
  async ack(deliveries: Delivery<T>[]): Promise<void> {
    this.assertOpen();
    for (const entry of this.held(deliveries)) {
      this.detach(entry);
      this.entries.delete(entry.id);
    }
    this.schedule();
  }

  /** Gives the item back, delivered again (`attempt + 1`, same id) not before `notBefore` (epoch ms). */
  async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    this.assertOpen();
    checkTime("notBefore", notBefore, { prefix: PREFIX });
    const entry = this.holder(delivery);
    if (entry === undefined) return;
    this.detach(entry);
    entry.receipt = 0;
    entry.retries++;
    entry.notBefore = notBefore;
    entry.seq = ++this.seq;
    this.place(entry, this.clock.now());
    this.changed();
  }

  /** Moves the item to `deadLetters()` with `reason`; it is never delivered again. */
  async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    this.assertOpen();
    const entry = this.holder(delivery);
    if (entry === undefined) return;
    this.detach(entry);
    this.entries.delete(entry.id);
    const decoded = decodeWith(this.codec, entry.raw);
    this.dead.add({
      id: entry.id,
      payload: "payload" in decoded ? decoded.payload : undefined,
      raw: entry.raw,
      attempt: entry.attempt,
      retries: entry.retries,
      reason: errorInfo(reason),
      at: this.clock.now(),
    });
    this.schedule();
  }

  /**
   * Leases the items of deliveries that still hold them until `until` (epoch ms). A lease that
   * expired is taken back as long as no other consumer received the item since.
   */
  async extend(deliveries: Delivery<T>[], until: number): Promise<void> {
    this.assertOpen();
    checkTime("until", until, { prefix: PREFIX });
    for (const entry of this.held(deliveries)) {
      if (entry.state !== "leased") {
        this.detach(entry);
        entry.state = "leased";
      }
      this.leases.rekey(entry, until);
    }
    this.schedule();
  }

  /**
   * Gives deliveries back for immediate redelivery, ahead of messages sent after them. A release
   * does not count as a delivery: the next one has the same `attempt`.
   */
  async release(deliveries: Delivery<T>[]): Promise<void> {
    this.assertOpen();
    for (const entry of this.held(deliveries)) {
      this.detach(entry);
      entry.receipt = 0;
      entry.attempt--;
      entry.state = "ready";
      this.ready.rekey(entry, entry.seq);
    }
    this.changed();
  }

  /** Dead letters, oldest first: up to `limit`, after the one of id `after`. Readable after `close`. */
  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    const { limit, after } = checkDeadLetterPage(options, { prefix: PREFIX });
    return this.dead.page(limit, after);
  }

  /**
   * Sends dead letters back to the queue, each under its id with a fresh attempt count, not
   * before `delay` ms from now; resolves with how many went back. Ids not in the dead letters
   * are skipped, so a repeated redrive does nothing more.
   */
  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    this.assertOpen();
    const o = checkOptionsObject(options);
    const delay = o.delay === undefined ? 0 : checkMs("delay", o.delay, { prefix: PREFIX });
    checkDeadLetterIds(ids, { prefix: PREFIX });
    const letters = this.dead.take(ids);
    for (const letter of letters) {
      const entry = this.entryOf(letter.id);
      entry.attempt = 0;
      entry.retries = 0;
      this.enqueue(entry, letter.raw, delay);
    }
    this.changed();
    return letters.length;
  }

  /** Deletes dead letters for good; resolves with how many. */
  async purgeDeadLetters(ids: readonly string[] | "all"): Promise<number> {
    checkDeadLetterIds(ids, { prefix: PREFIX });
    return this.dead.take(ids).length;
  }

  /** Messages by state, exact. */
  async depth(): Promise<QueueDepth> {
    this.promote(this.clock.now());
    return { ready: this.ready.size, delayed: this.delayed.size, inFlight: this.leases.size, deadLettered: this.dead.size };
  }

  get stats(): MemoryTransportStats {
    return {
      ready: this.ready.size,
      delayed: this.delayed.size,
      leased: this.leases.size,
      deadLettered: this.dead.size,
      deadLettersDropped: this.dead.dropped,
    };
  }

  /** Drops every message and resolves pending receives with `[]`; later calls throw `ClosedError`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.disarm();
    for (const waiter of [...this.waiters]) this.settleWaiter(waiter, []);
    this.entries.clear();
    this.ready.clear();
    this.delayed.clear();
    this.leases.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError("[tranche/memory] transport is closed");
  }

  /** The codec's bytes of a payload; a payload it cannot encode is an error no retry can mend. */
  private encode(payload: T): string | Uint8Array {
    try {
      return this.codec.encode(payload);
    } catch (error) {
      throw new TransportError(`[tranche/memory] cannot encode payload: ${(error as Error | undefined)?.message ?? String(error)}`, { retryable: false, cause: error });
    }
  }

  private insert(raw: string | Uint8Array, options: SendOptions | undefined): string {
    const o = checkOptionsObject(options) as SendOptions;
    if (o.id !== undefined && (typeof o.id !== "string" || o.id === "")) invalid("id", "a non-empty string", o.id);
    const delay = o.delay === undefined ? 0 : checkMs("delay", o.delay, { prefix: PREFIX });
    const headers = checkHeaders("headers", o.headers, { prefix: PREFIX });
    const id = o.id ?? globalThis.crypto.randomUUID();
    // Re-sending an id re-enqueues that item.
    const entry = this.entryOf(id);
    entry.headers = headers;
    this.enqueue(entry, raw, delay);
    return id;
  }

  /** The item of `id`, taken out of line (a delivery still out for it can no longer settle it); a new one if there is none. */
  private entryOf(id: string): Entry {
    let entry = this.entries.get(id);
    if (entry === undefined) {
      entry = { id, raw: "", state: "ready", attempt: 0, retries: 0, notBefore: undefined, headers: undefined, receipt: 0, key: 0, seq: 0, heapIndex: -1 };
      this.entries.set(id, entry);
    } else {
      this.detach(entry);
    }
    entry.receipt = 0;
    return entry;
  }

  /** Puts an item out of line back in line with these bytes, not before `delay` ms from now. */
  private enqueue(entry: Entry, raw: string | Uint8Array, delay: number): void {
    const now = this.clock.now();
    entry.raw = raw;
    entry.seq = ++this.seq;
    entry.notBefore = delay > 0 ? now + delay : undefined;
    this.place(entry, now);
  }

  /** Puts an item that is in no heap into `ready` or `delayed` by its `notBefore`. */
  private place(entry: Entry, now: number): void {
    if (entry.notBefore !== undefined && entry.notBefore > now) {
      entry.state = "delayed";
      this.delayed.rekey(entry, entry.notBefore);
    } else {
      entry.state = "ready";
      this.ready.rekey(entry, entry.seq);
    }
  }

  private detach(entry: Entry): void {
    const heap = entry.state === "ready" ? this.ready : entry.state === "delayed" ? this.delayed : this.leases;
    heap.remove(entry);
  }

  /** The items `deliveries` may still settle, skipping stale and settled ones. */
  private *held(deliveries: Delivery<T>[]): Generator<Entry> {
    for (const delivery of deliveries) {
      const entry = this.holder(delivery);
      if (entry !== undefined) yield entry;
    }
  }

  /** The item a delivery may still settle, if any. */
  private holder(delivery: Delivery<T>): Entry | undefined {
    const entry = this.entries.get(delivery.id);
    if (entry === undefined || entry.receipt === 0) return undefined;
    const receipt = (delivery as { [RECEIPT]?: number })[RECEIPT];
    // A copied delivery has lost its receipt; its attempt still names the delivery.
    const holds = receipt === undefined ? delivery.attempt === entry.attempt : receipt === entry.receipt;
    return holds ? entry : undefined;
  }

  /** Makes due delayed items and expired leases ready. */
  private promote(now: number): void {
    for (let entry = this.delayed.peek(); entry !== undefined && entry.key <= now; entry = this.delayed.peek()) {
      this.delayed.pop();
      entry.seq = ++this.seq;
      entry.state = "ready";
      this.ready.rekey(entry, entry.seq);
    }
    // An expired item keeps its place in line; its receipt stays valid until someone receives it.
    for (let entry = this.leases.peek(); entry !== undefined && entry.key <= now; entry = this.leases.peek()) {
      this.leases.pop();
      entry.state = "ready";
      this.ready.rekey(entry, entry.seq);
    }
  }

  private take(max: number, now: number): Delivery<T>[] {
    const deliveries: Delivery<T>[] = [];
    const leaseUntil = now + this.visibilityTimeout;
    while (deliveries.length < max) {
      const entry = this.ready.pop();
      if (entry === undefined) break;
      entry.attempt++;
      entry.receipt = ++this.receipts;
      entry.state = "leased";
      this.leases.rekey(entry, leaseUntil);
      deliveries.push(this.deliveryOf(entry, leaseUntil));
    }
    this.schedule();
    return deliveries;
  }

  private deliveryOf(entry: Entry, leaseUntil: number): Delivery<T> {
    const decoded = decodeWith(this.codec, entry.raw);
    const delivery: Delivery<T> =
      "payload" in decoded
        ? { id: entry.id, payload: decoded.payload, attempt: entry.attempt, retries: entry.retries, leaseUntil }
        : { id: entry.id, payload: undefined as T, attempt: entry.attempt, retries: entry.retries, leaseUntil, error: decoded.error };
    if (entry.notBefore !== undefined) (delivery as { notBefore?: number }).notBefore = entry.notBefore;
    if (entry.headers !== undefined) (delivery as { headers?: Readonly<Record<string, string>> }).headers = entry.headers;
    Object.defineProperty(delivery, RECEIPT, { value: entry.receipt });
    return delivery;
  }

  private settleWaiter(waiter: Waiter<T>, deliveries: Delivery<T>[]): void {
    if (!this.waiters.delete(waiter)) return;
    if (waiter.timer !== undefined) this.clock.clearTimer(waiter.timer);
    waiter.signal?.removeEventListener("abort", waiter.onAbort);
    waiter.resolve(deliveries);
  }

  /** Hands ready items to waiting receives (oldest first), then re-arms the timer. */
  private changed(): void {
    for (const waiter of this.waiters) {
      if (this.ready.size === 0) break;
      this.settleWaiter(waiter, this.take(waiter.max, this.clock.now()));
    }
    this.schedule();
  }

  /** Arms one timer for the next due delay or lease expiry; none when nothing is due later. */
  private schedule(): void {
    if (this.closed) return;
    const next = Math.min(this.delayed.peek()?.key ?? Infinity, this.leases.peek()?.key ?? Infinity);
    if (next === this.timerAt) return;
    this.disarm();
    if (next === Infinity) return;
    this.timerAt = next;
    // A pending receive keeps the process alive through its own timer; the schedule alone does not.
    this.timer = unref(
      this.clock.setTimer(next, () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.promote(this.clock.now());
        this.changed();
      }),
    );
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
