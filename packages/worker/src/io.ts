import { type Clock, TimeoutError } from "@tranche/core";
import PQueue from "p-queue";
import { Deadlines } from "./deadlines.js";
import { type TransportOperation, TransportOperationError, isRetryable } from "./errors.js";
import { type Link, LinkedList } from "./linked-list.js";
import type { ResolvedWorkerOptions } from "./options.js";

const STOPPED = Symbol("stopped");
/** A try that `stop()` came before: it never started. */
const NOT_TRIED = Symbol("not tried");

/** A pending sleep or try that `stop()` must end: a node of a linked list (no hashing per call). */
interface Waker extends Link<Waker> {
  wake: () => void;
}

/**
 * How a call run by `Io.run` ended: done; `"refused"` by a non-retryable error on its first
 * try (the broker surely did not apply it); `"failed"` after some try whose outcome is in doubt
 * (a retryable error, a timeout: the broker may have applied it); or cut short by `stop()`.
 * The fallback of a call that did not succeed is the caller's.
 */
export type CallResult = "ok" | "refused" | "failed" | "stopped";

/**
 * Transport calls of one worker: at most `ioConcurrency` tries at once (p-queue), each bounded
 * by `ioTimeout`. A try that fails is reported; a retryable failure is tried again after a
 * capped exponential backoff on the worker's clock, waiting outside the slots so a failing call
 * never holds one, for at most `ioMaxRetryTime`; a non-retryable one is not tried again. After
 * `stop()` a call gets one last try at once, outside the slots (see `lastTry`), unless a try of
 * it was under way: that one is no longer waited for.
 */
export class Io {
  private readonly queue: PQueue;
  /** `ioTimeout` of every try here and of the worker's receives. */
  readonly deadlines: Deadlines;
  /** Every pending try and backoff sleep, woken by `stop()`. */
  private readonly wakers = new LinkedList<Waker>();
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly options: ResolvedWorkerOptions,
    private readonly onError: (error: TransportOperationError) => void,
  ) {
    this.queue = new PQueue({ concurrency: options.ioConcurrency });
    this.deadlines = new Deadlines(clock, options.ioTimeout);
  }

  /** Calls queued or running. */
  get pending(): number {
    return this.queue.size + this.queue.pending;
  }

  /**
   * Runs `call` until a try succeeds (`"ok"`), a try fails with a non-retryable error
   * (`"refused"` on the first try, else `"failed"`) or the retryable ones last past
   * `ioMaxRetryTime` (`"failed"`), or `stop()` comes first: `"stopped"` when it cut a try
   * short, else the outcome of a last try.
   * The deliveries a call that did not succeed was for are the caller's to let go of: the broker
   * hands them out again (at least once, never lost).
   */
  async run(operation: TransportOperation, call: () => Promise<unknown>): Promise<CallResult> {
    const started = this.clock.now();
    for (let tries = 1; ; tries++) {
      // A try that gets its slot after `stop()` is not made in turn: waiting for the slots, tries
      // that each may last `ioTimeout` would hold `close` up without bound.
      type Outcome = true | { error: unknown } | typeof STOPPED | typeof NOT_TRIED;
      const outcome = await (this.queue.add((): Promise<Outcome> => (this.stopped ? Promise.resolve(NOT_TRIED) : this.attempt(call))) as Promise<Outcome>);
      if (outcome === NOT_TRIED) return this.lastTry(operation, call, tries);
      if (outcome === true) return "ok";
      if (outcome === STOPPED) return "stopped";
      const retryable = isRetryable(outcome.error);
      const wait = this.backoff(tries);
      const retrying = retryable && this.clock.now() + wait - started <= this.options.ioMaxRetryTime;
      this.onError(new TransportOperationError(operation, tries, outcome.error, { retryable, retrying }));
      if (!retrying) return retryable || tries > 1 ? "failed" : "refused";
      if ((await this.sleep(wait)) === STOPPED) return this.lastTry(operation, call, tries + 1);
    }
  }

  /**
   * One try of `call` outside the queue, bounded by `ioTimeout`: lease renewals (tried again at
   * the next renewal when `retrying`), closing the transport, and calls after `stop()`.
   */
  async once<V>(operation: TransportOperation, call: () => Promise<V>, retrying = false): Promise<{ value: V } | { error: TransportOperationError }> {
    let value: V | undefined;
    const outcome = await this.attempt(async () => {
      value = await call();
    }, true);
    if (outcome === true) return { value: value as V };
    const cause = outcome === STOPPED ? new TimeoutError(0, "[tranche/worker] stopped") : outcome.error;
    const error = new TransportOperationError(operation, 1, cause, { retrying: retrying && isRetryable(cause) });
    this.onError(error);
    return { error };
  }

  /**
   * A call the worker makes for deliveries it holds: `run` until it succeeds or gives up; after
   * `stop()` (`close({ timeout })` gave up, or the worker closed), tried once, and `"failed"` or
   * `"refused"` by whether its error is retryable.
   */
  call(operation: TransportOperation, fn: () => Promise<unknown>): Promise<CallResult> {
    return this.stopped ? this.lastTry(operation, fn, 1) : this.run(operation, fn);
  }

  /**
   * The one try a call has left after `stop()`: at once, outside the slots, within `ioTimeout`,
   * so every such call ends within `ioTimeout` of `stop()`. Try number `tries`: after an earlier
   * try, a failure leaves the outcome in doubt (`"failed"`), never `"refused"`.
   */
  private async lastTry(operation: TransportOperation, call: () => Promise<unknown>, tries: number): Promise<CallResult> {
    const outcome = await this.once(operation, call);
    return "value" in outcome ? "ok" : outcome.error.retryable || tries > 1 ? "failed" : "refused";
  }

  /** ms to wait after `tries` failed tries in a row. */
  backoff(tries: number): number {
    const { delay, maxDelay } = this.options.ioBackoff;
    return Math.min(maxDelay, delay * 2 ** Math.min(tries - 1, 30));
  }

  /** Waits `ms` on the worker's clock; resolves early with `STOPPED` on `stop()`. */
  sleep(ms: number): Promise<void | typeof STOPPED> {
    if (this.stopped) return Promise.resolve(STOPPED);
    return new Promise((resolve) => {
      const waker = this.watch(() => {
        this.clock.clearTimer(timer);
        resolve(STOPPED);
      });
      const timer = this.clock.setTimer(this.clock.now() + ms, () => {
        this.wakers.remove(waker);
        resolve();
      });
    });
  }

  /** No more tries: retry loops give up, pending sleeps and timeout races end now, and the timeout timer goes once no call is left. */
  stop(): void {
    this.stopped = true;
    this.deadlines.close();
    for (let waker = this.wakers.head; waker !== undefined; waker = this.wakers.head) {
      this.wakers.remove(waker);
      waker.wake();
    }
  }

  private watch(wake: () => void): Waker {
    return this.wakers.push({ wake, prev: undefined, next: undefined });
  }

  /** One try bounded by `ioTimeout`: `true`, the error it failed with, or `STOPPED`. */
  private attempt(call: () => Promise<unknown>, ignoreStop = false): Promise<true | { error: unknown } | typeof STOPPED> {
    return new Promise((resolve) => {
      let over = false;
      const end = (outcome: true | { error: unknown } | typeof STOPPED) => {
        if (over) return;
        over = true;
        this.deadlines.end(deadline);
        if (waker !== undefined) this.wakers.remove(waker);
        resolve(outcome);
      };
      const deadline = this.deadlines.start(() => {
        const { ioTimeout } = this.options;
        end({ error: new TimeoutError(ioTimeout, `[tranche/worker] transport call did not settle within ${ioTimeout} ms`) });
      });
      const waker = ignoreStop ? undefined : this.watch(() => end(STOPPED));
      let pending: Promise<unknown>;
      try {
        pending = Promise.resolve(call());
      } catch (error) {
        end({ error });
        return;
      }
      pending.then(
        () => end(true),
        (error: unknown) => end({ error }),
      );
    });
  }
}

