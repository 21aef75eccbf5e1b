import { type Clock, ClosedError, type Delivery, type Transport } from "@tranche/core";
import { TransportOperationError } from "./errors.js";
import type { Io } from "./io.js";
import type { ResolvedWorkerOptions } from "./options.js";
import type { TransportCounts } from "./stats.js";

/** What the receive loop asks of the worker it feeds. */
export interface ReceivingWorker<T> {
  /** Deliveries the worker can take now: `maxBuffered` less what it holds. */
  room(): number;
  /** Takes deliveries just received (none is more than `room()` allowed). */
  intake(deliveries: Delivery<T>[]): void;
  /** Reports a failed receive. */
  error(error: TransportOperationError): void;
}

/**
 * The receive loop of a worker: asks the transport for as many deliveries as the worker has
 * room for, one receive at a time, each bounded by `ioTimeout`; waits for room when there is
 * none (`wake`), and backs off after a failed receive. Deliveries the worker never takes
 * (beyond what was asked for, or brought after their receive ended) go straight back to the
 * transport: the worker never holds more than `maxBuffered`.
 */
export class Receiver<T> {
  private receiving = false;
  /** At `stop`: whether deliveries of a receive that had already ended are taken (else given back). */
  private draining = true;
  private loop: Promise<void> | undefined = undefined;
  private readonly controller = new AbortController();
  /**
   * Ends the receive under way when `stop` aborts (one abort listener, added by `start`, for the
   * worker's life): the receive's own `end`, stored here. Never a fresh `() => end([])` per
   * receive: kept here, it made V8 promote memory per delivery (bench/README.md).
   */
  private endReceive: ((deliveries: Delivery<T>[]) => void) | undefined = undefined;
  /** Wakes the loop from a wait for room. */
  private wakeLoop: (() => void) | undefined = undefined;
  /** Cuts a backoff of the loop short (at `stop`). */
  private endPause: (() => void) | undefined = undefined;

  constructor(
    private readonly transport: Transport<T>,
    private readonly clock: Clock,
    private readonly io: Io,
    private readonly options: ResolvedWorkerOptions,
    /** The worker's transport counts, which the loop adds its receives and give-backs to. */
    private readonly counts: Pick<TransportCounts, "receives" | "released">,
    private readonly worker: ReceivingWorker<T>,
  ) {}

  /** Starts the loop; once it has started, does nothing. */
  start(): void {
    if (this.loop !== undefined) return;
    this.receiving = true;
    this.controller.signal.addEventListener("abort", () => this.endReceive?.([]), { once: true });
    this.loop = this.receiveLoop();
  }

  /** The worker let go of deliveries: a loop waiting for room asks again. */
  wake(): void {
    const wake = this.wakeLoop;
    if (wake !== undefined && this.receiving) {
      this.wakeLoop = undefined;
      wake();
    }
  }

  /**
   * Receives no more: the receive under way ends now (what it brings later goes back), and so
   * do a wait for room and a backoff; deliveries already received are taken with `drain`, else
   * given back. Returns the loop to await, `undefined` if it never started.
   */
  stop(drain: boolean): Promise<void> | undefined {
    this.draining = drain;
    this.receiving = false;
    this.controller.abort(new ClosedError("[tranche/worker] worker is closing"));
    this.wakeLoop?.();
    this.wakeLoop = undefined;
    this.endPause?.();
    return this.loop;
  }

  private async receiveLoop(): Promise<void> {
    let failures = 0;
    while (this.receiving) {
      const room = this.worker.room();
      if (room <= 0) {
        await new Promise<void>((resolve) => (this.wakeLoop = resolve));
        continue;
      }
      const max = Math.min(room, this.transport.capabilities.maxReceive);
      this.counts.receives++;
      const startedAt = this.clock.now();
      const received = await this.receive(max);
      if (!Array.isArray(received)) {
        this.worker.error(new TransportOperationError("receive", ++failures, received.error, { retrying: true }));
        await this.pause(this.io.backoff(failures));
        continue;
      }
      failures = 0;
      let deliveries = received;
      if (deliveries.length > max) {
        // More than asked for: give the rest back rather than hold more than maxBuffered.
        void this.giveBack(deliveries.slice(max));
        deliveries = deliveries.slice(0, max);
      }
      if (this.receiving || this.draining) this.worker.intake(deliveries);
      else if (deliveries.length > 0) void this.giveBack(deliveries);
      // A transport that answers "nothing" at once (no long poll) is polled every ioBackoff.delay, not in a busy loop.
      const early = this.options.ioBackoff.delay - (this.clock.now() - startedAt);
      if (deliveries.length === 0 && this.receiving && early > 0) await this.pause(early);
    }
  }

  /** One receive bounded by `ioTimeout`; on `stop` it stops waiting at once. Late deliveries go back. */
  private receive(max: number): Promise<Delivery<T>[] | { error: unknown }> {
    const signal = this.controller.signal;
    return new Promise((resolve) => {
      let over = false;
      const end = (value: Delivery<T>[] | { error: unknown }) => {
        over = true;
        this.io.deadlines.end(deadline);
        this.endReceive = undefined;
        resolve(value);
      };
      if (signal.aborted) {
        resolve([]);
        return;
      }
      this.endReceive = end;
      const deadline = this.io.deadlines.start(() =>
        end({ error: new Error(`[tranche/worker] receive did not settle within ${this.options.ioTimeout} ms`) }),
      );
      let pending: Promise<Delivery<T>[]>;
      try {
        pending = Promise.resolve(this.transport.receive(max, signal));
      } catch (error) {
        end({ error });
        return;
      }
      pending.then(
        (deliveries) => {
          if (!over) end(Array.isArray(deliveries) ? deliveries : { error: new TypeError("[tranche/worker] receive resolved with something other than an array") });
          else if (Array.isArray(deliveries) && deliveries.length > 0) void this.giveBack(deliveries);
        },
        (error: unknown) => {
          if (!over) end({ error });
        },
      );
    });
  }

  /** Waits `ms` on the clock; `stop` cuts it short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimer(this.clock.now() + ms, () => {
        this.endPause = undefined;
        resolve();
      });
      this.endPause = () => {
        this.endPause = undefined;
        this.clock.clearTimer(timer);
        resolve();
      };
    });
  }

  /** Gives back deliveries the worker never held (received late or beyond `max`). */
  private async giveBack(deliveries: Delivery<T>[]): Promise<void> {
    if ((await this.io.call("release", () => this.transport.release(deliveries))) === "ok") this.counts.released += deliveries.length;
  }
}
