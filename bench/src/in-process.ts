import { performance } from "node:perf_hooks";
import { type Call, type Contender, type ContenderName } from "./contenders.js";
import { collect, median, roundOrder, yieldToEventLoop } from "./stats.js";

export interface InProcessSettings {
  batchSizes: readonly number[];
  /** Calls awaited together: `await Promise.all(chunk)`. */
  chunk: number;
  /** Calls per timed round, a multiple of `chunk`. */
  itemsPerRound: number;
  rounds: number;
  warmupRounds: number;
  /**
   * A full GC before each round. Off by default: it shrinks the young generation, so
   * every round starts cold, unlike a server in its steady state.
   */
  collectBetweenRounds: boolean;
}

export interface InProcessResult {
  name: ContenderName;
  batchSize: number;
  itemsPerSec: number;
  /** items/s of every timed round, in order. */
  rounds: number[];
}

/**
 * Callers issue `chunk` calls in one tick and await them all, then yield to the
 * event loop once (a setImmediate, so timers such as batshit's cleanup can run,
 * as they would in a server), and again until `total` calls are done.
 */
async function drive(call: Call, total: number, chunk: number): Promise<void> {
  const pending: Promise<number>[] = new Array(chunk);
  for (let done = 0; done < total; done += chunk) {
    for (let i = 0; i < chunk; i++) pending[i] = call(i);
    await Promise.all(pending);
    await yieldToEventLoop();
  }
}

/**
 * Checks once, before timing, that a contender returns value × 2 to every caller
 * and batches as told: a tick of `chunk` calls gives full batches of `batchSize`,
 * and a tick with a remainder gives one partial batch for it.
 */
async function verify(contender: Contender, batchSize: number, chunk: number): Promise<void> {
  const sizes: number[] = [];
  const call = contender.create(batchSize, (size) => sizes.push(size));
  const fail = (what: string): never => {
    throw new Error(`[tranche/bench] ${contender.name} at batch size ${batchSize}: ${what}`);
  };
  for (const count of [chunk, chunk + 7]) {
    sizes.length = 0;
    const results = await Promise.all(Array.from({ length: count }, (_, i) => call(i)));
    for (let i = 0; i < count; i++) if (results[i] !== i * 2) fail(`call(${i}) returned ${String(results[i])}`);
    const expected = Array.from({ length: Math.ceil(count / batchSize) }, (_, i) => Math.min(batchSize, count - i * batchSize));
    if (sizes.join() !== expected.join()) fail(`batch sizes ${sizes.join()} for ${count} calls, expected ${expected.join()}`);
  }
  await yieldToEventLoop();
}

export async function runInProcess(
  settings: InProcessSettings,
  all: readonly Contender[],
  log: (line: string) => void,
): Promise<InProcessResult[]> {
  const { batchSizes, chunk, itemsPerRound, rounds, warmupRounds } = settings;
  const results: InProcessResult[] = [];
  for (const batchSize of batchSizes) {
    for (const contender of all) await verify(contender, batchSize, chunk);
    // One instance per contender, reused by every round, as an application would,
    // unless it degrades with use (see `freshPerRound`).
    const calls = all.map((contender) => contender.create(batchSize));
    const samples: number[][] = all.map(() => []);
    for (let round = -warmupRounds; round < rounds; round++) {
      // Every contender in every round, in a balanced order: drift and noise land on all alike.
      for (const c of roundOrder(all.length, round)) {
        if ((all[c] as Contender).freshPerRound !== undefined) calls[c] = (all[c] as Contender).create(batchSize);
        if (settings.collectBetweenRounds) collect();
        const start = performance.now();
        await drive(calls[c] as Call, itemsPerRound, chunk);
        const seconds = (performance.now() - start) / 1000;
        if (round >= 0) (samples[c] as number[]).push(itemsPerRound / seconds);
      }
    }
    for (let c = 0; c < all.length; c++) {
      const roundsOf = samples[c] as number[];
      results.push({ name: (all[c] as Contender).name, batchSize, itemsPerSec: median(roundsOf), rounds: roundsOf });
    }
    log(`  in-process flushEvery ${batchSize}: done`);
  }
  return results;
}
