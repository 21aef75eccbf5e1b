import { median } from "./stats.js";

/** A suite of results/latest.json that compares a Worker with a hand-written loop on one transport. */
export type TransportSuiteName = "memory" | "redis" | "sqs" | "nats";

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
