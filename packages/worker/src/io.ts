import { type Clock, TimeoutError } from "@tranche/core";
import PQueue from "p-queue";
import { Deadlines } from "./deadlines.js";
import { type TransportOperation, TransportOperationError } from "./errors.js";
import { type Link, LinkedList } from "./linked-list.js";
import type { ResolvedWorkerOptions } from "./options.js";

const STOPPED = Symbol("stopped");

/** A pending sleep or try that `stop()` must end: a node of a linked list (no hashing per call). */
interface Waker extends Link<Waker> {
  wake: () => void;
}

/**
 * Transport calls of one worker: at most `ioConcurrency` at once (p-queue), each try
 * bounded by `ioTimeout`, failed tries reported and tried again after a capped exponential
 * backoff on the worker's clock — until `stop()`, after which nothing is tried again.
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
   * Runs `call` until a try succeeds. Resolves `true` then, `false` if `stop()` came first
   * (the deliveries it was for are left to the transport's lease: at least once, never lost).
   */
  run(operation: TransportOperation, call: () => Promise<unknown>): Promise<boolean> {
    return this.queue.add(async () => {
      for (let tries = 1; ; tries++) {
        if (this.stopped) return false;
        const outcome = await this.attempt(call);
        if (outcome === true) return true;
        if (outcome === STOPPED) return false;
        this.onError(new TransportOperationError(operation, tries, outcome.error));
        if ((await this.sleep(this.backoff(tries))) === STOPPED) return false;
      }
    }) as Promise<boolean>;
  }

  /** One try of `call` outside the queue (receive, and releases after `stop()`), bounded by `ioTimeout`. */
  async once<V>(operation: TransportOperation, call: () => Promise<V>, tries = 1): Promise<{ value: V } | { error: TransportOperationError }> {
    let value: V | undefined;
    const outcome = await this.attempt(async () => {
      value = await call();
    }, true);
    if (outcome === true) return { value: value as V };
    const error = new TransportOperationError(operation, tries, outcome === STOPPED ? new TimeoutError(0, "[tranche/worker] stopped") : outcome.error);
    this.onError(error);
    return { error };
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

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Resolves when every queued call has finished. */
  idle(): Promise<void> {
    return this.queue.onIdle();
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

export { STOPPED };
