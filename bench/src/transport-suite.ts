import type { Transport } from "@tranche/core";
import { Worker, type WorkerOptions } from "@tranche/worker";
import { median } from "./stats.js";

/** A suite of results/latest.json that compares a Worker with a hand-written loop on one transport. */
export type TransportSuiteName = "memory" | "redis" | "sqs" | "nats" | "amqp";

export interface TransportBenchSettings {
  /** Items sent and then consumed by each contender. */
  items: number;
  /** `flushEvery` of the worker, and the receive size of the raw loop. */
  batchSize: number;
  log: (line: string) => void;
}

/**
 * One transport's bench: `open` starts whatever server it needs (its own, on a free port)
 * and returns the two contenders. Each contender fills a fresh queue with `items`
 * payloads (not timed), then consumes them all and returns the timed part in ms.
 */
export interface TransportBench {
  readonly suite: TransportSuiteName;
  /** Items per round, full and `--quick`. @default { full: 200_000, quick: 100_000 } */
  readonly items?: { full: number; quick: number };
  /**
   * Timed rounds of each contender, full and `--quick` (a suite whose rounds are cheap and noisy
   * takes more, for a steadier median). @default { full: 5, quick: 3 }
   */
  readonly rounds?: { full: number; quick: number };
  open(settings: TransportBenchSettings): Promise<TransportContenders>;
}

/** What "worker ≥ N× raw" each transport suite is held to. */
export const workerVsRawTarget = 0.8;

export interface TransportContenders {
  /** A `Worker` with `flushEvery: batchSize` and an `async` handler that acks every item. */
  worker(): Promise<number>;
  /** receive(batchSize) → same handler → ack, in a loop, with no Worker. */
  raw(): Promise<number>;
  /** Stops servers and clients. */
  close(): Promise<void>;
}

export interface TransportRun {
  suite: TransportSuiteName;
  name: "worker" | "raw";
  batchSize: number;
  itemsPerSec: number;
}

/**
 * Runs worker and raw alternately (`rounds` each, raw first on odd rounds) after `warmupRounds`
 * untimed rounds of each (the first run of a contender also pays for compiling its code), and
 * reports the median of each.
 */
export async function runTransportBench(
  bench: TransportBench,
  settings: TransportBenchSettings,
  rounds: number,
  warmupRounds = 1,
): Promise<{ runs: TransportRun[]; samples: Record<"worker" | "raw", number[]> }> {
  const contenders = await bench.open(settings);
  const samples: Record<"worker" | "raw", number[]> = { worker: [], raw: [] };
  try {
    for (let round = 0; round < warmupRounds; round++) {
      for (const name of ["worker", "raw"] as const) {
        const ms = await contenders[name]();
        settings.log(`${bench.suite} ${name} warm-up ${round + 1}: ${Math.round((settings.items / ms) * 1000)} items/s`);
      }
    }
    for (let round = 0; round < rounds; round++) {
      const order: ("worker" | "raw")[] = round % 2 === 0 ? ["worker", "raw"] : ["raw", "worker"];
      for (const name of order) {
        const ms = await contenders[name]();
        samples[name].push((settings.items / ms) * 1000);
        settings.log(`${bench.suite} ${name} round ${round + 1}: ${Math.round((settings.items / ms) * 1000)} items/s`);
      }
    }
  } finally {
    await contenders.close();
  }
  return {
    runs: (["worker", "raw"] as const).map((name) => ({
      suite: bench.suite,
      name,
      batchSize: settings.batchSize,
      itemsPerSec: Math.round(median(samples[name])),
    })),
    samples,
  };
}

/**
 * The work both contenders of every transport suite do per batch: nothing but being async, so
 * the figure is the consuming machinery's own cost.
 */
export const handler = async (_payloads: readonly unknown[]): Promise<void> => {};

/** Sends the payloads 0, 1, … `items` − 1 with `sendMany`, `chunk` at a time. */
export async function fill(transport: Pick<Transport<number>, "sendMany">, items: number, chunk = items): Promise<void> {
  const payloads = Array.from({ length: items }, (_, i) => i);
  for (let i = 0; i < items; i += chunk) await transport.sendMany(payloads.slice(i, i + chunk));
}

/**
 * The worker contender's timed part: a `Worker` with `options` that runs `handler` on
 * `transport`, timed from `start()` until it has acked `items` items and, with `closeTimed`
 * (the default), until its `close()` has resolved too.
 */
export async function timeWorker(
  transport: Transport<number>,
  items: number,
  options: WorkerOptions<number>,
  { closeTimed = true }: { closeTimed?: boolean } = {},
): Promise<number> {
  const worker = new Worker<number>(transport, (requests) => handler(requests.map((r) => r.payload)), options);
  let acked = 0;
  // A worker reports a transport fault as an `error` event and keeps trying; eventemitter3 drops
  // an event nobody listens to, so without this a bench whose transport keeps failing would hang
  // silently. The first error fails the run instead.
  const drained = new Promise<void>((resolve, reject) => {
    worker.on("settled", (event) => {
      acked += event.acked;
      if (acked >= items) resolve();
    });
    worker.on("error", (error) => reject(error));
  });
  const started = performance.now();
  await worker.start();
  try {
    await drained;
  } catch (error) {
    await worker.close({ drain: false, timeout: 5_000 }).catch(() => {});
    throw error;
  }
  if (closeTimed) await worker.close();
  const ms = performance.now() - started;
  if (!closeTimed) await worker.close();
  return ms;
}
