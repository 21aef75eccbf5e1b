import type { BatchHandler, ResultStore, Transport } from "@tranche/core";
import { Worker, type WorkerOptions } from "@tranche/worker";
import { collect } from "../stats.js";
import { cpuMs } from "./cpu.js";
import type { Checkpoint } from "./verdict.js";

export interface SoakPayload {
  readonly n: number;
  readonly text: string;
}

export interface SoakResult {
  readonly n: number;
}

/** One item in this many is retried once, `RETRY_DELAY` ms later. */
export const RETRY_EVERY = 1_000;
/** One item in this many fails: its handler returns an `Error` for it, and it is dead-lettered. */
export const FAIL_EVERY = 5_000;
export const RETRY_DELAY = 1_000;
/** One send in this many has its outcome awaited by the producer (`results.wait`). */
export const WAIT_EVERY = 1_000;
/** Heap readings per checkpoint, of which the least counts. */
const HEAP_READINGS = 3;
/** A run fails when no batch settles for this long. */
const STALL_MS = 120_000;
// Every payload carries this: about 100 bytes of JSON per item.
const TEXT = "x".repeat(80);

/** A transport (and result store) to soak, with the worker settings a user would give it. */
export interface SoakSetup {
  readonly transport: Transport<SoakPayload>;
  readonly results: ResultStore<SoakResult> | undefined;
  readonly worker: WorkerOptions<SoakPayload>;
  /** Items the producer keeps waiting in the queue: it sends more as the worker settles them. */
  readonly backlog: number;
  /** Payloads per `sendMany`. */
  readonly chunk: number;
}

export interface SoakRun {
  readonly checkpoints: Checkpoint[];
  readonly sent: number;
  readonly acked: number;
  readonly deadLettered: number;
  readonly retried: number;
  /** Outcomes the producer awaited, and how many of those waits resolved. */
  readonly waits: { readonly awaited: number; readonly resolved: number };
  /** `"error"` events of the worker (transport calls it retried or gave up on). */
  readonly errors: number;
  readonly firstError: string | undefined;
}

/**
 * A handler as users write them, by `map` over the batch: an `Error` element for an item that
 * cannot be done (an `Error` made here keeps the batch alive until its stack is read, which is
 * what a dead letter must not do), `retry()` for an item to try again later, a result for the rest.
 */
export const soakHandler: BatchHandler<SoakPayload, SoakResult> = async (requests) =>
  requests.map((r) => {
    const { n } = r.payload;
    if (n % FAIL_EVERY === FAIL_EVERY - 1) return new Error(`item ${n} cannot be done`);
    if (n % RETRY_EVERY === RETRY_EVERY - 2 && (r.retries ?? r.attempt - 1) === 0) r.retry({ delay: RETRY_DELAY });
    return { n };
  });

/**
 * Runs a `Worker` on `setup` until `items` items have their outcome, while a producer in this
 * process keeps `setup.backlog` items waiting in the queue. After every `items / checkpoints`
 * items it takes a checkpoint: it stops the producer until the worker has settled everything
 * sent, then reads the heap after a full GC, and the wall-clock and CPU time so far without the
 * time of those GCs.
 */
export async function drive(setup: SoakSetup, options: { items: number; checkpoints: number; log: (line: string) => void }): Promise<SoakRun> {
  const { transport, results } = setup;
  const { items, log } = options;
  const worker = new Worker<SoakPayload, SoakResult>(transport, soakHandler, { ...setup.worker, ...(results === undefined ? {} : { results }) });
  let acked = 0;
  let deadLettered = 0;
  let retried = 0;
  let errors = 0;
  let firstError: string | undefined;
  // Resolved, and replaced, at every settled batch.
  let progress!: () => void;
  let progressed = new Promise<void>((resolve) => (progress = resolve));
  worker.on("settled", (event) => {
    acked += event.acked;
    deadLettered += event.failed;
    retried += event.retried;
    const resolve = progress;
    progressed = new Promise<void>((next) => (progress = next));
    resolve();
  });
  worker.on("error", (error) => {
    if (errors++ === 0) firstError = error.message;
    if (errors <= 3) log(`  worker error: ${error.message}`);
  });
  const done = (): number => acked + deadLettered;
  /** Resolves once `done()` reached `target`; rejects when no batch settled for `STALL_MS`. */
  const settledUpTo = async (target: number): Promise<void> => {
    while (done() < target) {
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no batch settled for ${STALL_MS / 1000} s (${done()} of ${items} items done; last worker error: ${firstError ?? "none"})`)), STALL_MS);
      });
      try {
        await Promise.race([progressed, stalled]);
      } finally {
        clearTimeout(timer);
      }
    }
  };

  const waits = { awaited: 0, resolved: 0, failed: 0 };
  let sent = 0;
  // The queue stays `backlog` deep, but for the checkpoints: each pauses the producer and lets the
  // worker finish everything sent, so that every heap is taken with nothing in flight.
  let producing = true;
  let paused: Promise<void> | undefined;
  /** The `sendMany` under way; `sent` counts its items once it resolved. */
  let sending: Promise<unknown> = Promise.resolve();
  const produce = async (): Promise<void> => {
    while (producing) {
      await settledUpTo(sent - setup.backlog + 1);
      await paused;
      if (!producing) break;
      const first = sent;
      const count = setup.chunk;
      const call = transport.sendMany(Array.from({ length: count }, (_, i) => ({ n: first + i, text: TEXT }))).then((ids) => {
        sent += count;
        return ids;
      });
      sending = call;
      const ids = await call;
      if (results === undefined) continue;
      for (let i = (WAIT_EVERY - (first % WAIT_EVERY)) % WAIT_EVERY; i < count; i += WAIT_EVERY) {
        waits.awaited++;
        results.wait(ids[i] as string, { timeout: 300_000 }).then(
          () => waits.resolved++,
          () => waits.failed++,
        );
      }
    }
  };

  const checkpoints: Checkpoint[] = [];
  let gcMs = 0;
  let gcCpuMs = 0;
  const start = performance.now();
  const cpuStart = cpuMs();
  /**
   * The least of a few readings a moment apart: a reply or heartbeat arriving just then holds
   * its buffers for a moment, and only what stays is of interest.
   */
  const checkpoint = async (): Promise<void> => {
    const at = performance.now();
    const cpu = cpuMs();
    let heap = Infinity;
    for (let reading = 0; reading < HEAP_READINGS; reading++) {
      if (reading > 0) await new Promise((resolve) => setTimeout(resolve, 20));
      collect();
      heap = Math.min(heap, process.memoryUsage().heapUsed);
    }
    checkpoints.push({ items: done(), ms: at - start - gcMs, cpuMs: cpu - cpuStart - gcCpuMs, heap, rss: process.memoryUsage().rss });
    gcMs += performance.now() - at;
    gcCpuMs += cpuMs() - cpu;
  };

  /** Checkpoints after every `items / count` items, logged as they come. */
  const takeCheckpoints = async (count: number): Promise<void> => {
    for (let k = 1; k <= count; k++) {
      await settledUpTo(Math.round((k * items) / count));
      let resume!: () => void;
      paused = new Promise((resolve) => (resume = resolve));
      await sending.catch(() => {});
      await settledUpTo(sent);
      await checkpoint();
      if (k === count) producing = false;
      paused = undefined;
      resume();
      const c = checkpoints[k] as Checkpoint;
      const before = checkpoints[k - 1] as Checkpoint;
      const rate = ((c.items - before.items) / (c.ms - before.ms)) * 1000;
      const cpuRate = ((c.items - before.items) / (c.cpuMs - before.cpuMs)) * 1000;
      log(
        `  ${String(k).padStart(2)}/${count}  ${c.items.toLocaleString("en-US").padStart(10)} items  heap ${mb(c.heap)}  rss ${mb(c.rss)}  ` +
          `${(rate / 1000).toFixed(1).padStart(6)} k items/s  ${(cpuRate / 1000).toFixed(1).padStart(6)} k per CPU-s`,
      );
    }
  };

  await checkpoint();
  await worker.start();
  const producer = produce();
  // Awaited below; a failure ends the run there or in the checkpoints.
  producer.catch(() => {});
  try {
    await takeCheckpoints(options.checkpoints);
    await producer;
  } catch (error) {
    producing = false;
    await worker.close({ drain: false, timeout: 5_000 }).catch(() => {});
    throw error;
  }
  for (let turns = 0; waits.resolved + waits.failed < waits.awaited && turns < 5_000; turns++) await new Promise((resolve) => setTimeout(resolve, 2));
  await worker.close();
  return { checkpoints, sent, acked, deadLettered, retried, waits: { awaited: waits.awaited, resolved: waits.resolved }, errors, firstError };
}

export function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1).padStart(6)} MB`;
}
