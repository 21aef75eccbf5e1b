import { type AddResult, Batcher, type BatcherStats, Entry, type Flight } from "./batcher.js";
import { type Clock, systemClock } from "./clock.js";
import { BatchResultError, BufferFullError, ClosedError, RetriesExhaustedError, SettledError, TimeoutError } from "./errors.js";
import { type BatcherOptions, type FlushReason, backoffDelay, checkMs, invalid, invalidError } from "./options.js";

/** One item as the handler sees it: the successor of celery-batches' `SimpleRequest`. */
export interface BatchRequest<T, R> {
  readonly id: string;
  readonly payload: T;
  /** Tries so far including this one: 1 on the first. */
  readonly attempt: number;
  /** Epoch ms when the item entered the buffer. */
  readonly enqueuedAt: number;
  /** Settle with a result. */
  ack(result?: R): void;
  /** Settle with an error; terminal. */
  fail(error: unknown): void;
  /** Run again, not before `delay` ms from now (the `retry.backoff` delay when absent), while `retry.attempts` allows. */
  retry(options?: { delay?: number }): void;
}

export interface BatchContext {
  readonly batchId: string;
  readonly reason: FlushReason;
  readonly group?: string;
  /** Aborts with a `TimeoutError` after `handlerTimeout`, or with a `ClosedError` when `close({ timeout })` gives up. */
  readonly signal: AbortSignal;
}

/**
 * Receives a batch. Return an array as long as `requests` (an `Error` element
 * fails that request only), or nothing to ack every request not settled yet.
 * A throw retries the unsettled requests per `retry`, else fails them with it.
 */
export type BatchHandler<T, R> = (
  requests: BatchRequest<T, R>[],
  context: BatchContext,
) => (R | Error)[] | void | Promise<(R | Error)[] | void>;

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
class Request<T, R> extends Entry<T> implements BatchRequest<T, R> {
  resolve: (value: any) => void = unset;
  reject: (reason: unknown) => void = unset;
  /** Callers merged into this one by `dedupeKey`: they settle with it. */
  merged: Request<T, R>[] | undefined = undefined;

  constructor(
    readonly driver: Driver<T, R>,
    payload: T,
    id: string | undefined,
  ) {
    super(payload, id, 1);
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

/**
 * A retried item as the handler of its next try sees it. The handler of an earlier
 * try may still hold the item (after a timeout, or after calling `retry()`): a
 * handle settles only the try it was handed for, so a stale one throws `SettledError`.
 */
class RetriedRequest<T, R> implements BatchRequest<T, R> {
  readonly attempt: number;

  constructor(readonly request: Request<T, R>) {
    this.attempt = request.attempt;
  }

  get id(): string {
    return this.request.id;
  }
  get payload(): T {
    return this.request.payload;
  }
  get enqueuedAt(): number {
    return this.request.enqueuedAt;
  }
  get notBefore(): number {
    return this.request.notBefore;
  }

  ack(result?: R): void {
    this.request.driver.ack(this.current(), result);
  }

  fail(error: unknown): void {
    this.request.driver.fail(this.current(), error);
  }

  retry(options?: { delay?: number }): void {
    this.request.driver.retry(this.current(), options?.delay);
  }

  private current(): Request<T, R> {
    if (this.request.attempt !== this.attempt) throw new SettledError(this.request.id);
    return this.request;
  }
}

/** Lazily made: most handlers never read the signal, and an AbortController is not free. */
class Context implements BatchContext {
  controller: AbortController | undefined = undefined;
  timer: unknown = undefined;
  done = false;
  /** Some request was handed over as a `RetriedRequest`. */
  wrapped = false;

  constructor(readonly flight: Flight<unknown>) {}

  get batchId(): string {
    return this.flight.id;
  }
  get reason(): FlushReason {
    return this.flight.reason;
  }
  get group(): string | undefined {
    return this.flight.group;
  }
  get signal(): AbortSignal {
    return (this.controller ??= new AbortController()).signal;
  }

  abort(reason: Error): void {
    (this.controller ??= new AbortController()).abort(reason);
  }
}

class Driver<T, R> {
  readonly batcher: Batcher<T>;
  private readonly clock: Clock;
  private readonly onFull: "wait" | "reject";
  private timer: unknown = undefined;
  private timerAt = Infinity;
  private scheduled = false;
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
  private readonly drainNow = () => this.drain();
  /** Reading the system clock costs more than the rest of a call: one read serves a burst of calls. */
  private readonly cacheTime: boolean;
  private cachedTime = 0;
  private cachedReads = 0;
  private cacheExpiry = false;
  private readonly expireTime = () => {
    this.cacheExpiry = false;
    this.cachedReads = 0;
  };
  private readonly onTimer = () => {
    this.timer = undefined;
    this.timerAt = Infinity;
    this.drain();
  };

  constructor(
    private readonly handler: BatchHandler<T, R>,
    options: BatchOptions<T> | undefined,
  ) {
    if (typeof handler !== "function") invalid("handler", "a function", handler);
    this.batcher = new Batcher(options);
    this.clock = options?.clock ?? systemClock;
    this.cacheTime = this.clock === systemClock;
    this.onFull = options?.onFull ?? "wait";
    if (this.onFull !== "wait" && this.onFull !== "reject") invalid("onFull", '"wait" or "reject"', this.onFull);
  }

  call(payload: T, options: CallOptions | undefined): Promise<R> {
    let id: string | undefined;
    let delay = 0;
    if (options !== undefined) {
      id = options.id;
      if (id !== undefined && typeof id !== "string") return Promise.reject(invalidError("id", "a string", id));
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
    const now = this.now();
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

  /**
   * The time for a call. With the system clock, one read serves up to 64 calls of
   * the same tick (a few microseconds at most); any other clock is read every time.
   */
  private now(): number {
    if (this.cachedReads > 0) {
      this.cachedReads--;
      return this.cachedTime;
    }
    const now = this.clock.now();
    if (this.cacheTime) {
      this.cachedTime = now;
      this.cachedReads = 63;
      if (!this.cacheExpiry) {
        this.cacheExpiry = true;
        queueMicrotask(this.expireTime);
      }
    }
    return now;
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

  ack(request: Request<T, R>, result: R | undefined): void {
    const freed = this.batcher._ack(request);
    request.resolve(result);
    if (request.merged !== undefined) for (const other of request.merged) other.resolve(result);
    this.settled(freed);
  }

  fail(request: Request<T, R>, error: unknown): void {
    const freed = this.batcher._fail(request);
    request.reject(error);
    if (request.merged !== undefined) for (const other of request.merged) other.reject(error);
    this.settled(freed);
  }

  retry(request: Request<T, R>, delay: number | undefined, cause?: unknown): void {
    if (!this.batcher._inFlight(request)) throw new SettledError(request.id);
    if (delay !== undefined) delay = checkMs("delay", delay);
    const { attempts, backoff } = this.batcher.options;
    if (request.attempt >= attempts) {
      this.fail(request, cause !== undefined ? cause : new RetriesExhaustedError(request.id, attempts));
      return;
    }
    const now = this.clock.now();
    const flight = request._flight as Flight<T>;
    const result = this.batcher._retry(request, now + (delay ?? backoffDelay(backoff, request.attempt)), now);
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

  /** Drain on a microtask: everything added in the current tick lands in one poll. */
  private kick(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.drainNow);
    }
  }

  private schedule(now: number): void {
    if (this.scheduled) return;
    const wake = this.batcher.nextWake();
    if (wake === undefined) return;
    if (wake <= now) this.kick();
    else if (wake < this.timerAt) this.arm(wake);
  }

  private arm(at: number): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimer(at, this.onTimer);
  }

  private disarm(): void {
    if (this.timer !== undefined) {
      this.clock.clearTimer(this.timer);
      this.timer = undefined;
      this.timerAt = Infinity;
    }
  }

  private drain(): void {
    this.scheduled = false;
    const now = this.clock.now();
    this.admit(now);
    for (const batch of this.batcher.poll(now)) this.run(batch as Flight<T>, now);
    const wake = this.batcher.nextWake();
    if (wake === undefined) this.disarm();
    else if (wake <= now) this.kick();
    else if (wake !== this.timerAt) this.arm(wake);
    this.progress();
  }

  /** Lets waiting callers in, in order, while there is room. */
  private admit(now: number): void {
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

  /** A merged caller follows the survivor's outcome. */
  private attach(request: Request<T, R>): void {
    const survivor = (this.batcher.coalesced as unknown as { survivor: Request<T, R> }).survivor;
    (survivor.merged ??= []).push(request);
    if (request.merged !== undefined) {
      survivor.merged.push(...request.merged);
      request.merged = undefined;
    }
  }

  private run(flight: Flight<T>, now: number): void {
    const context = new Context(flight as Flight<unknown>);
    flight._driver = context;
    const { handlerTimeout } = this.batcher.options;
    if (handlerTimeout !== undefined) {
      context.timer = this.clock.setTimer(now + handlerTimeout, () => this.timedOut(flight, context, handlerTimeout));
    }
    const requests = flight.items as unknown as (Request<T, R> | RetriedRequest<T, R>)[];
    for (let i = 0; i < requests.length; i++) {
      const request = requests[i] as Request<T, R>;
      if (request.attempt > 1) {
        requests[i] = new RetriedRequest(request);
        context.wrapped = true;
      }
    }
    let returned: ReturnType<BatchHandler<T, R>>;
    try {
      returned = this.handler(requests, context);
    } catch (error) {
      this.threw(flight, context, error);
      return;
    }
    if (returned !== null && typeof returned === "object" && typeof (returned as Promise<unknown>).then === "function") {
      (returned as Promise<(R | Error)[] | void>).then(
        (value) => this.returned(flight, context, value),
        (error: unknown) => this.threw(flight, context, error),
      );
    } else {
      this.returned(flight, context, returned as (R | Error)[] | void);
    }
  }

  private returned(flight: Flight<T>, context: Context, value: (R | Error)[] | void): void {
    if (context.done) return;
    this.finish(flight, context);
    const entries = flight._entries as Request<T, R>[];
    if (value === undefined) {
      for (const request of entries) if (this.owns(flight, request)) this.ack(request, undefined);
      return;
    }
    const requests = flight.items as unknown as (Request<T, R> | RetriedRequest<T, R>)[];
    if (Array.isArray(value) && value.length === requests.length) {
      for (let i = 0; i < requests.length; i++) {
        const item = requests[i];
        const request = context.wrapped && item instanceof RetriedRequest ? item.request : (item as Request<T, R>);
        if (!this.owns(flight, request)) continue;
        const result = value[i];
        if (typeof result === "object" && result !== null && result instanceof Error) this.fail(request, result);
        else this.ack(request, result);
      }
      if (flight._remaining === 0) return;
    }
    const error = new BatchResultError(value, requests.length);
    for (const request of entries) if (this.owns(flight, request)) this.fail(request, error);
  }

  private threw(flight: Flight<T>, context: Context, error: unknown): void {
    if (context.done) return;
    this.finish(flight, context);
    this.retryOrFail(flight, error);
  }

  private timedOut(flight: Flight<T>, context: Context, timeout: number): void {
    context.timer = undefined;
    if (context.done) return;
    const error = new TimeoutError(timeout);
    context.abort(error);
    this.finish(flight, context);
    this.retryOrFail(flight, error);
  }

  private retryOrFail(flight: Flight<T>, error: unknown): void {
    for (const request of flight._entries as Request<T, R>[]) {
      if (this.owns(flight, request)) this.retry(request, undefined, error);
    }
  }

  /** The handler's part is over: late settles and returns are ignored from here. */
  private finish(flight: Flight<T>, context: Context): void {
    context.done = true;
    if (context.timer !== undefined) this.clock.clearTimer(context.timer);
    flight._driver = undefined;
  }

  private owns(flight: Flight<T>, request: Request<T, R>): boolean {
    return request._flight === flight;
  }

  private progress(): void {
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
    if (this.closeWaiters.length === 0) return;
    const now = this.clock.now();
    const error = () => new ClosedError("[tranche/core] closed before this item ran");
    const waiting = this.waiting;
    for (let i = waiting.head; i < waiting.queue.length; i++) (waiting.queue[i] as Request<T, R>).reject(error());
    waiting.queue = [];
    waiting.notBefore = [];
    waiting.head = 0;
    for (const entry of this.batcher.evict(now) as Request<T, R>[]) {
      const reason = error();
      entry.reject(reason);
      if (entry.merged !== undefined) for (const other of entry.merged) other.reject(reason);
    }
    for (const flight of this.batcher._flights()) {
      const context = flight._driver as Context | undefined;
      if (context === undefined) continue;
      const reason = error();
      context.abort(reason);
      this.finish(flight, context);
      for (const request of flight._entries as Request<T, R>[]) if (this.owns(flight, request)) this.fail(request, reason);
    }
    this.progress();
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
