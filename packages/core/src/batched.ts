import type { AddResult, BatcherStats } from "./batcher-api.js";
import { Entry } from "./entry.js";
import type { Flight } from "./flight.js";
import { systemClock } from "./clock.js";
import { BatchDriver, type DriverItem } from "./driver.js";
import type { BatchHandler } from "./handler.js";
import { BufferFullError, ClosedError, SettledError } from "./errors.js";
import type { BatcherOptions } from "./options.js";
import { TimeCache } from "./time-cache.js";
import { checkMs, invalidOption } from "./validation.js";

export interface BatchOptions<T> extends BatcherOptions<T> {
  /** What a call does when `maxBuffered` is reached: wait for room (FIFO) or reject with `BufferFullError`. @default "wait" */
  onFull?: "wait" | "reject";
}

export interface CallOptions {
  /** Item id handed to the handler as `request.id`. @default a counter */
  id?: string;
  /** Countdown in ms before the item may run: a lower bound, like celery's `countdown`. @default 0 */
  delay?: number;
}

export interface BatchedStats extends BatcherStats {
  /** Calls waiting for room (`onFull: "wait"`). */
  waiting: number;
}

/** A function whose calls are buffered and handed to the handler in batches. */
export interface Batched<T, R> {
  (payload: T, options?: CallOptions): Promise<R>;
  /** Flushes every eligible item now; resolves when those batches have settled. */
  flush(): Promise<void>;
  /**
   * Stops intake (`ClosedError`), runs everything buffered, delayed items when due, and
   * resolves when nothing is left. After `timeout` ms, fails what is left with `ClosedError`.
   */
  close(options?: { timeout?: number }): Promise<void>;
  readonly stats: BatchedStats;
}

const unset = (): void => {};

/** An item of `batched()`: the Batcher's entry, the handler's request and the caller's promise in one object. */
class Request<T, R> extends Entry<T> implements DriverItem<T, R> {
  resolve: (value: any) => void = unset;
  reject: (reason: unknown) => void = unset;
  /** Callers merged into this one by `dedupeKey`: they settle with it. */
  merged: Request<T, R>[] | undefined = undefined;

  // Not a subclass of DriverRequest: see there.
  constructor(
    readonly driver: Driver<T, R>,
    payload: T,
    id: string | undefined,
  ) {
    super(payload, id, 1);
  }

  get retries(): number {
    return this.attempt - 1;
  }

  ack(result?: R): void {
    this.driver.ack(this.firstTry(), result);
  }

  fail(error: unknown): void {
    this.driver.fail(this.firstTry(), error);
  }

  retry(options?: { delay?: number }): void {
    this.driver.retry(this.firstTry(), options?.delay);
  }

  /** The item itself is its first try's handle; later tries get a `RetriedRequest`. */
  private firstTry(): this {
    if (this.attempt !== 1) throw new SettledError(this.id);
    return this;
  }
}

/** Settles a caller and the callers merged into it (`dedupeKey`) with `value`. */
function resolveAll<T, R>(request: Request<T, R>, value: R | undefined): void {
  request.resolve(value);
  if (request.merged !== undefined) for (const other of request.merged) other.resolve(value);
}

/** Rejects a caller and the callers merged into it. */
function rejectAll<T, R>(request: Request<T, R>, reason: unknown): void {
  request.reject(reason);
  if (request.merged !== undefined) for (const other of request.merged) other.reject(reason);
}

class Driver<T, R> extends BatchDriver<T, R, Request<T, R>> {
  private readonly onFull: "wait" | "reject";
  private closing = false;
  /** Calls waiting for room, FIFO from `head`, with the `notBefore` each asked for. */
  private waiting: { queue: Request<T, R>[]; notBefore: (number | undefined)[]; head: number } = {
    queue: [],
    notBefore: [],
    head: 0,
  };
  private flushWaiters: { resolve: () => void; upTo: number }[] = [];
  private closeWaiters: (() => void)[] = [];
  private closeTimers: unknown[] = [];
  /** With the system clock, one read serves a burst of undelayed calls; any other clock is read every time. */
  private readonly times: TimeCache | undefined;

  constructor(handler: BatchHandler<T, R>, options: BatchOptions<T> | undefined) {
    super(handler, options);
    this.times = this.clock === systemClock ? new TimeCache(systemClock, 64) : undefined;
    this.onFull = options?.onFull ?? "wait";
    if (this.onFull !== "wait" && this.onFull !== "reject") throw invalidOption("onFull", '"wait" or "reject"', this.onFull);
  }

  call(payload: T, options: CallOptions | undefined): Promise<R> {
    let id: string | undefined;
    let delay = 0;
    if (options !== undefined) {
      id = options.id;
      if (id !== undefined && typeof id !== "string") return Promise.reject(invalidOption("id", "a string", id));
      if (options.delay !== undefined) {
        try {
          delay = checkMs("delay", options.delay);
        } catch (error) {
          return Promise.reject(error);
        }
      }
    }
    if (this.closing) return Promise.reject(new ClosedError("[tranche/core] batched function is closed"));
    const request = new Request<T, R>(this, payload, id);
    // The resolvers go straight into the young request: parking them in a module-level
    // variable (an old object) would cost a remembered-set write barrier per call.
    const promise = new Promise<R>((resolve, reject) => {
      request.resolve = resolve;
      request.reject = reject;
    });
    // A delay is a lower bound, so it counts from a fresh read of the clock, never a cached one.
    const now = delay > 0 ? this.clock.now() : this.now();
    const notBefore = delay > 0 ? now + delay : undefined;
    if (this.waiting.head < this.waiting.queue.length) {
      // Callers already wait for room: FIFO, so this one queues behind them.
      this.enqueueWaiting(request, notBefore);
      return promise;
    }
    let result: AddResult;
    try {
      result = this.batcher._offer(request, now, notBefore, false);
    } catch (error) {
      request.reject(error);
      return promise;
    }
    if (result === "accepted") this.schedule(now);
    else if (result === "coalesced") this.attach(request);
    else if (this.onFull === "wait") this.enqueueWaiting(request, notBefore);
    else request.reject(new BufferFullError(this.batcher.options.maxBuffered));
    return promise;
  }

  /** The time for an undelayed call. */
  private now(): number {
    return this.times === undefined ? this.clock.now() : this.times.now();
  }

  flush(): Promise<void> {
    this.batcher.flush(this.clock.now());
    const done = new Promise<void>((resolve) => this.flushWaiters.push({ resolve, upTo: Infinity }));
    this.kick();
    return done;
  }

  close(timeout: number | undefined): Promise<void> {
    const now = this.clock.now();
    if (!this.closing) {
      this.closing = true;
      this.batcher.close(now);
    }
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    if (timeout !== undefined) this.closeTimers.push(this.clock.setTimer(now + timeout, () => this.abandon()));
    this.kick();
    return done;
  }

  get stats(): BatchedStats {
    return { ...this.batcher.stats, waiting: this.waiting.queue.length - this.waiting.head };
  }

  // ---- outcomes ----

  protected acked(request: Request<T, R>, result: R | undefined): void {
    resolveAll(request, result);
  }

  protected counted(_request: Request<T, R>, freed: boolean): void {
    this.settled(freed);
  }

  fail(request: Request<T, R>, error: unknown): void {
    const freed = this.batcher._fail(request);
    rejectAll(request, error);
    this.settled(freed);
  }

  protected requeue(request: Request<T, R>, notBefore: number, now: number): void {
    const flight = request._flight as Flight<T>;
    const result = this.batcher._retry(request, notBefore, now);
    if (result === "coalesced") this.attach(request);
    this.settled(flight._remaining === 0);
    this.schedule(now);
  }

  // ---- driving the batcher ----

  /** A batch completed: its slot is free for the next one, and waiting callers may fit. */
  private settled(freed: boolean): void {
    if (
      freed &&
      (this.batcher._held() > 0 ||
        this.waiting.head < this.waiting.queue.length ||
        this.flushWaiters.length > 0 ||
        this.closeWaiters.length > 0)
    ) {
      this.kick();
    }
  }

  /** Lets waiting callers in, in order, while there is room. */
  protected override beforePoll(now: number): void {
    const waiting = this.waiting;
    while (waiting.head < waiting.queue.length) {
      const request = waiting.queue[waiting.head] as Request<T, R>;
      let result: AddResult;
      try {
        result = this.batcher._offer(request, now, waiting.notBefore[waiting.head], true);
      } catch (error) {
        request.reject(error);
        result = "accepted";
      }
      if (result === "full") break;
      waiting.queue[waiting.head] = undefined as unknown as Request<T, R>;
      waiting.notBefore[waiting.head++] = undefined;
      if (result === "coalesced") this.attach(request);
    }
    if (waiting.head === waiting.queue.length) {
      waiting.queue = [];
      waiting.notBefore = [];
      waiting.head = 0;
    }
  }

  private enqueueWaiting(request: Request<T, R>, notBefore: number | undefined): void {
    this.waiting.queue.push(request);
    this.waiting.notBefore.push(notBefore);
  }

  /** Resolves the `flush()` and `close()` callers whose batches are all done. */
  protected override afterDrain(): void {
    if (this.flushWaiters.length > 0) {
      const { last, oldestInFlight } = this.batcher._batchNumbers();
      const pending = this.batcher._flushPending();
      this.flushWaiters = this.flushWaiters.filter((waiter) => {
        if (waiter.upTo === Infinity && !pending) waiter.upTo = last;
        if (waiter.upTo < oldestInFlight) {
          waiter.resolve();
          return false;
        }
        return true;
      });
    }
    if (this.closing && this.closeWaiters.length > 0) {
      const stats = this.batcher.stats;
      if (stats.held === 0 && stats.inFlightBatches === 0 && this.waiting.head === this.waiting.queue.length) {
        this.disarm();
        for (const timer of this.closeTimers) this.clock.clearTimer(timer);
        this.closeTimers = [];
        const waiters = this.closeWaiters;
        this.closeWaiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  }

  /** `close({ timeout })` ran out: fail whatever is left with `ClosedError`. */
  private abandon(): void {
    const now = this.clock.now();
    const error = () => new ClosedError("[tranche/core] closed before this item ran");
    const waiting = this.waiting;
    for (let i = waiting.head; i < waiting.queue.length; i++) (waiting.queue[i] as Request<T, R>).reject(error());
    waiting.queue = [];
    waiting.notBefore = [];
    waiting.head = 0;
    for (const entry of this.batcher.evict(now) as Request<T, R>[]) rejectAll(entry, error());
    this.abandonFlights(() => new ClosedError("[tranche/core] closed while this item's handler was still running"), (request, reason) => this.fail(request, reason));
    this.afterDrain();
  }
}

/**
 * Wraps an async batch handler into a function of one item: each call returns
 * a promise of that item's own result, and the calls are handed to the handler
 * in batches by count (`flushEvery`), time (`flushInterval`) and bytes.
 *
 * ```ts
 * const insert = batched(async (requests) => {
 *   await db.insertMany(requests.map((r) => r.payload));
 * }, { flushEvery: 500, flushInterval: 50 });
 * await insert({ name: "a" });
 * ```
 */
export function batched<T, R = void>(handler: BatchHandler<T, R>, options?: BatchOptions<T>): Batched<T, R> {
  const driver = new Driver(handler, options);
  const fn = ((payload: T, callOptions?: CallOptions) => driver.call(payload, callOptions)) as Batched<T, R>;
  Object.defineProperties(fn, {
    flush: { value: () => driver.flush() },
    close: {
      value: (closeOptions?: { timeout?: number }) => {
        let timeout: number | undefined;
        try {
          timeout = closeOptions?.timeout === undefined ? undefined : checkMs("timeout", closeOptions.timeout);
        } catch (error) {
          return Promise.reject(error);
        }
        return driver.close(timeout);
      },
    },
    stats: { get: () => driver.stats },
  });
  return fn;
}
