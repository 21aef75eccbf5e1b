import { type BatchHandler, type Transport } from "@tranche/core";
import { checkMs, invalidOption } from "@tranche/core/internal";
import { EventEmitter } from "eventemitter3";
import type { WorkerEvents } from "./events.js";
import { PREFIX, type WorkerOptions } from "./options.js";
import type { WorkerStats } from "./stats.js";
import { WorkerDriver } from "./worker-driver.js";

/** Options of `worker.close()`. */
export interface CloseOptions {
  /**
   * `true`: stop receiving, then run everything held (delayed deliveries when due) and settle it.
   * `false`: stop receiving, release what is held (not in flight) back to the transport, and
   * settle only the batches in flight. @default true
   */
  drain?: boolean;
  /**
   * ms after which close stops waiting: in-flight handlers' `context.signal` aborts with
   * `ClosedError`, unsettled deliveries are released (not acked), and calls still failing
   * are tried once more (each within `ioTimeout`). @default none (wait for everything)
   */
  timeout?: number;
}

const methods = ["receive", "ack", "retry", "deadLetter", "release", "close"] as const;

/**
 * Feeds a batch handler from a `Transport`: receives at most `maxBuffered` deliveries at a
 * time, batches them by count, time and bytes like `batched()`, and settles each delivery on
 * the transport by its own outcome — ack, retry (durable, same id, `attempt + 1`) or dead letter.
 *
 * ```ts
 * const worker = new Worker(transport, async (requests) => {
 *   await db.insertMany(requests.map((r) => r.payload));
 * }, { flushEvery: 100, flushInterval: 1000, retry: { attempts: 3 } });
 * await worker.start();
 * process.once("SIGTERM", () => void worker.close({ timeout: 10_000 }));
 * ```
 */
export class Worker<T, R = unknown> extends EventEmitter<WorkerEvents> {
  readonly #driver: WorkerDriver<T, R>;

  constructor(transport: Transport<T>, handler: BatchHandler<T, R>, options?: WorkerOptions<T>) {
    super();
    const t = transport as Partial<Transport<T>> | null;
    if (typeof t !== "object" || t === null || methods.some((name) => typeof t[name] !== "function") || typeof t.capabilities !== "object") {
      throw invalidOption("transport", "a Transport (receive, ack, retry, deadLetter, release, close, capabilities)", transport, PREFIX);
    }
    this.#driver = new WorkerDriver(transport, handler, options, this);
  }

  /** Starts receiving. Rejects with `ClosedError` after `close()`; calling it again does nothing. */
  start(): Promise<void> {
    return this.#driver.start();
  }

  /**
   * Stops receiving and lets go of everything (see `CloseOptions`); resolves when the worker
   * holds nothing. Does not close the transport unless `closeTransport` is set. Calling it
   * again returns the same promise.
   */
  close(options?: CloseOptions): Promise<void> {
    const drain = options?.drain ?? true;
    if (typeof drain !== "boolean") return Promise.reject(invalidOption("drain", "a boolean", drain, PREFIX));
    let timeout: number | undefined;
    try {
      timeout = options?.timeout === undefined ? undefined : checkMs("timeout", options.timeout, { allowInfinity: true, prefix: PREFIX });
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#driver.close(drain, timeout);
  }

  /** Batcher counts (held, delayed, in flight, batches, items), deliveries held, and transport calls. */
  get stats(): WorkerStats {
    return this.#driver.stats;
  }
}
