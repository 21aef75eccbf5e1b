import type { Batch } from "./batcher-api.js";
import { Batcher } from "./batcher.js";
import { Entry } from "./entry.js";
import type { Flight } from "./flight.js";
import { type Clock, systemClock } from "./clock.js";
import { BatchResultError, RetriesExhaustedError, SettledError, TimeoutError } from "./errors.js";
import { type BatcherOptions, type FlushReason, backoffDelay } from "./options.js";
import { checkMs, invalidOption } from "./validation.js";
import type { BatchContext, BatchHandler, BatchRequest } from "./handler.js";

/**
 * An item as a `BatchDriver` keeps it: the Batcher's entry and the handler's request in one
 * object, so an item costs one allocation from intake to outcome. Its `ack`, `fail` and
 * `retry` go to `driver`; it is the handle of its first try only (see `DriverRequest`).
 */
export interface DriverItem<T, R> extends Entry<T> {
  readonly driver: BatchDriver<T, R, any>;
  /** Items merged into this one by `dedupeKey`: they follow its outcome. */
  merged: DriverItem<T, R>[] | undefined;
  readonly retries?: number | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Settles the item with a result (its driver's `ack`). */
  ack(result?: R): void;
  /** Settles the item with an error (its driver's `fail`). */
  fail(error: unknown): void;
  /** Asks its driver to run the item again, not before `delay` ms from now. */
  retry(options?: { delay?: number }): void;
}

/**
 * The `DriverItem` to extend: a driver adds its own fields (a Worker, the delivery).
 * `batched()` implements `DriverItem` directly on its own class instead, so its per-call
 * constructor has one class less to go through (see bench/README.md).
 *
 * For drivers of a `Batcher` (`batched()`, `Worker` of `@tranche/worker`); an application
 * never needs it.
 */
export class DriverRequest<T, R> extends Entry<T> implements DriverItem<T, R> {
  // Assigned in the constructor, not class fields, as in `Entry` (see there): the worker
  // builds one subclass instance per delivery.
  declare readonly driver: BatchDriver<T, R, any>;
  /** Items merged into this one by `dedupeKey`: they follow its outcome. */
  declare merged: DriverItem<T, R>[] | undefined;

  constructor(driver: BatchDriver<T, R, any>, payload: T, id: string | undefined, attempt: number) {
    super(payload, id, attempt);
    (this as { driver: BatchDriver<T, R, any> }).driver = driver;
    this.merged = undefined;
  }

  /** Settles the item with a result (its driver's `ack`). */
  ack(result?: R): void {
    this.driver.ack(this.firstTry(), result);
  }

  /** Settles the item with an error (its driver's `fail`). */
  fail(error: unknown): void {
    this.driver.fail(this.firstTry(), error);
  }

  /** Asks its driver to run the item again, not before `delay` ms from now. */
  retry(options?: { delay?: number }): void {
    this.driver.retry(this.firstTry(), options?.delay);
  }

  /**
   * The item itself is the handle of its first try only; the handler of any later try
   * (a retry in the Batcher, or a redelivery a Worker received) gets a `RetriedRequest`.
   */
  private firstTry(): this {
    if (this.attempt !== 1) throw new SettledError(this.id);
    return this;
  }
}

/**
 * A request as the handler of a try after the first sees it. The handler of an earlier
 * try may still hold the item (after a timeout, or after calling `retry()`): a handle
 * settles only the try it was handed for, so a stale one throws `SettledError`.
 */
class RetriedRequest<T, R> implements BatchRequest<T, R> {
  readonly attempt: number;
  readonly retries: number | undefined;

  constructor(readonly request: DriverItem<T, R>) {
    this.attempt = request.attempt;
    this.retries = request.retries;
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
  get headers(): Readonly<Record<string, string>> | undefined {
    return this.request.headers;
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

  private current(): DriverItem<T, R> {
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

/**
 * The handler protocol of a `Batcher` driver, written once: it calls the handler with a
 * batch, arms `handlerTimeout`, and turns what the handler returns or throws into one
 * outcome per request (an array settles each unsettled request with its element, an
 * `Error` element failing that one; nothing acks the rest; anything else fails them with
 * `BatchResultError`; a throw or a timeout retries them per `retry` or fails them).
 * A subclass says what an outcome does: `batched()` settles its callers' promises,
 * `@tranche/worker` acks, retries or dead-letters deliveries on a transport.
 *
 * For drivers (`batched()`, `Worker`); an application never needs it.
 */
export abstract class BatchDriver<T, R, Q extends DriverItem<T, R>> {
  readonly batcher: Batcher<T>;
  protected readonly clock: Clock;
  /** A drain is queued on a microtask. */
  private scheduled = false;
  /** The timer armed for the Batcher's next wake, and its time (`Infinity`: none). */
  private timer: unknown = undefined;
  private timerAt = Infinity;
  private readonly drainNow = () => this.drain();
  private readonly onTimer = () => {
    this.timer = undefined;
    this.timerAt = Infinity;
    this.drain();
  };

  constructor(
    protected readonly handler: BatchHandler<T, R>,
    options: BatcherOptions<T> | undefined,
  ) {
    if (typeof handler !== "function") throw invalidOption("handler", "a function", handler);
    this.batcher = new Batcher(options);
    this.clock = options?.clock ?? systemClock;
  }

  /** Settles an in-flight request with a result. */
  ack(request: Q, result: R | undefined): void {
    const freed = this.batcher._ack(request);
    this.acked(request, result);
    this.counted(request, freed);
  }

  /**
   * The driver's part of an ack (resolve a caller, record a delivery to ack): the Batcher has
   * taken `request` out of its batch, and counts it right after, alone or with the rest of a run.
   */
  protected abstract acked(request: Q, result: R | undefined): void;

  /** Acks of the batch of `request` were counted; `freed` when that completed the batch. */
  protected abstract counted(request: Q, freed: boolean): void;

  /** Settles an in-flight request with an error, for good. */
  abstract fail(request: Q, error: unknown): void;

  /** Takes an in-flight request to its next try, not before `notBefore` (epoch ms); `attempts` allow it. */
  protected abstract requeue(request: Q, notBefore: number, now: number): void;

  /**
   * Retries a request after `delay` ms (the `retry.backoff` delay when undefined), or fails
   * it with `cause` (else `RetriesExhaustedError`) once it has used `retry.attempts`.
   */
  retry(request: Q, delay: number | undefined, cause?: unknown): void {
    if (!this.batcher._inFlight(request)) throw new SettledError(request.id);
    if (delay !== undefined) delay = checkMs("delay", delay);
    const { attempts, backoff } = this.batcher.options;
    if (this.tries(request) >= attempts) {
      this.fail(request, cause !== undefined ? cause : new RetriesExhaustedError(request.id, attempts));
      return;
    }
    const now = this.clock.now();
    this.requeue(request, now + (delay ?? backoffDelay(backoff, request.attempt)), now);
  }

  /**
   * Tries of a request so far, this one included, as `retry.attempts` counts them: its
   * `attempt` here; a driver whose deliveries can end without a try (a Worker) counts otherwise.
   */
  protected tries(request: Q): number {
    return request.attempt;
  }

  /** After an add or retry returned `"coalesced"`: the merged request follows the survivor's outcome. */
  protected attach(request: Q): Q {
    const survivor = (this.batcher.coalesced as unknown as { survivor: Q }).survivor;
    (survivor.merged ??= []).push(request);
    if (request.merged !== undefined) {
      survivor.merged.push(...request.merged);
      request.merged = undefined;
    }
    return survivor;
  }

  // ---- the drive loop: kick, drain, arm ----

  /** Drains on a microtask: everything added in the current tick lands in one poll. */
  protected kick(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.drainNow);
    }
  }

  /** After items came in at `now`: a drain if the Batcher has work due, else a timer for its next wake. */
  protected schedule(now: number): void {
    if (this.scheduled) return;
    const wake = this.batcher.nextWake();
    if (wake === undefined) return;
    if (wake <= now) this.kick();
    else if (wake < this.timerAt) this.arm(wake);
  }

  /**
   * Starts every batch that is due, then waits for the next: another drain if more is due now,
   * else a timer at the Batcher's next wake, else nothing until an add or a settle kicks.
   */
  private drain(): void {
    this.scheduled = false;
    const now = this.clock.now();
    this.beforePoll(now);
    for (const batch of this.batcher.poll(now)) this.startBatch(batch, now);
    const wake = this.batcher.nextWake();
    if (wake === undefined) this.disarm();
    else if (wake <= now) this.kick();
    else if (wake !== this.timerAt) this.arm(wake);
    this.afterDrain();
  }

  /** Runs at the start of each drain, before the poll (`batched()` lets waiting callers in). */
  protected beforePoll(_now: number): void {}

  /** Runs at the end of each drain (`batched()` resolves its flush and close waiters). */
  protected afterDrain(): void {}

  /** Starts a batch `poll` took: hands it to the handler. */
  protected startBatch(batch: Batch<T>, now: number): void {
    this.run(batch, now);
  }

  private arm(at: number): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimer(at, this.onTimer);
  }

  /** Clears the timer of the next wake. */
  protected disarm(): void {
    if (this.timer !== undefined) {
      this.clock.clearTimer(this.timer);
      this.timer = undefined;
      this.timerAt = Infinity;
    }
  }

  /** Hands a batch just taken by `poll` to the handler. */
  protected run(batch: Batch<T>, now: number): void {
    const flight = batch as Flight<T>;
    const context = new Context(flight as Flight<unknown>);
    flight._driver = context;
    const { handlerTimeout } = this.batcher.options;
    if (handlerTimeout !== undefined) {
      context.timer = this.clock.setTimer(now + handlerTimeout, () => this.timedOut(flight, context, handlerTimeout));
    }
    const requests = flight.items as unknown as (Q | RetriedRequest<T, R>)[];
    for (let i = 0; i < requests.length; i++) {
      const request = requests[i] as Q;
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

  /**
   * Ends the handler's part of every in-flight batch (`close({ timeout })` gave up): aborts
   * its `context.signal` with `reason()` and hands each unsettled request to `settle`.
   */
  protected abandonFlights(reason: () => Error, settle: (request: Q, reason: Error) => void): void {
    for (const flight of this.batcher._flights()) {
      const context = flight._driver as Context | undefined;
      if (context === undefined) continue;
      const error = reason();
      context.abort(error);
      this.finish(flight, context);
      for (const request of flight._entries as Q[]) if (this.owns(flight, request)) settle(request, error);
    }
  }

  private returned(flight: Flight<T>, context: Context, value: (R | Error)[] | void): void {
    if (context.done) return;
    this.finish(flight, context);
    const entries = flight._entries as Q[];
    if (value === undefined) {
      this.ackRest(flight, entries);
      return;
    }
    const requests = flight.items as unknown as (Q | RetriedRequest<T, R>)[];
    if (Array.isArray(value) && value.length === requests.length) {
      // Settles every request the handler left unsettled: none is left after it.
      this.settleEach(flight, context.wrapped, requests, value);
      return;
    }
    const error = new BatchResultError(value, requests.length);
    for (const request of entries) if (this.owns(flight, request)) this.fail(request, error);
  }

  /**
   * The handler returned nothing: acks every request of the batch it has not settled, counted
   * once for the batch.
   */
  private ackRest(flight: Flight<T>, entries: readonly Q[]): void {
    const batcher = this.batcher;
    let last: Q | undefined;
    let count = 0;
    for (const request of entries) {
      if (!batcher._release(request, flight)) continue;
      count++;
      last = request;
      this.acked(request, undefined);
    }
    if (last !== undefined) this.counted(last, batcher._acked(flight, count));
  }

  /**
   * The handler returned an array as long as the batch: settles each unsettled request with
   * its element (an `Error` fails it), in order, in one pass: the acks of a run of primitives
   * are counted once. An element that is an object or a function goes the ordinary way (`ack`
   * or `fail`), after the run before it is counted: resolving a promise with an object reads
   * its `then`, which may run code that looks at the batcher. `wrapped` says whether some
   * element of `requests` is a `RetriedRequest`.
   */
  private settleEach(flight: Flight<T>, wrapped: boolean, requests: readonly (Q | BatchRequest<T, R>)[], value: readonly (R | Error)[]): void {
    const batcher = this.batcher;
    let last: Q | undefined;
    let count = 0;
    for (let i = 0; i < requests.length; i++) {
      const request = this.unwrap(wrapped, requests[i] as Q | BatchRequest<T, R>);
      const result = value[i];
      if ((typeof result === "object" && result !== null) || typeof result === "function") {
        if (count > 0) {
          this.counted(last as Q, batcher._acked(flight, count));
          count = 0;
        }
        if (!this.owns(flight, request)) continue;
        if (typeof result === "object" && result instanceof Error) this.fail(request, result);
        else this.ack(request, result as R);
      } else if (batcher._release(request, flight)) {
        count++;
        last = request;
        this.acked(request, result);
      }
    }
    if (count > 0) this.counted(last as Q, batcher._acked(flight, count));
  }

  /** The item behind a request handed to the handler. */
  private unwrap(wrapped: boolean, request: Q | BatchRequest<T, R>): Q {
    return wrapped && request instanceof RetriedRequest ? (request.request as Q) : (request as Q);
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
    for (const request of flight._entries as Q[]) {
      if (this.owns(flight, request)) this.retry(request, undefined, error);
    }
  }

  /** The handler's part is over: late settles and returns are ignored from here. */
  private finish(flight: Flight<T>, context: Context): void {
    context.done = true;
    if (context.timer !== undefined) this.clock.clearTimer(context.timer);
    flight._driver = undefined;
  }

  /** Whether `request` is still in `flight` (not moved on by a retry). */
  protected owns(flight: Flight<T>, request: Q): boolean {
    return request._flight === flight;
  }
}
