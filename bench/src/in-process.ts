import { performance } from "node:perf_hooks";
import { type Call, type Contender, type ContenderName } from "./contenders.js";
import { collect, median, roundOrder, yieldToEventLoop } from "./stats.js";

/**
 * How callers await their calls. `yield`: each chunk is awaited, then the caller yields to
 * the event loop (a setImmediate) before the next, as requests arriving on a server do.
 * `no-yield`: chunk after chunk with only `await Promise.all` between them, never reaching the
 * event loop, as a GraphQL resolver or a request handler calls a loader in a loop.
 */
export type Drive = "yield" | "no-yield";

export const driveLabels: Record<Drive, string> = {
  yield: "callers yield to the event loop between chunks",
  "no-yield": "callers await chunk after chunk without yielding to the event loop",
};

export interface InProcessSettings {
  batchSizes: readonly number[];
  drives: readonly Drive[];
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
  drive: Drive;
  batchSize: number;
  itemsPerSec: number;
  /** items/s of every timed round, in order. */
  rounds: number[];
}

/**
 * Callers issue `chunk` calls in one tick and await them all, and again until `total`
 * calls are done; with `yield`, they reach the event loop once between chunks (timers such
 * as batshit's cleanup can run then, as they would in a server).
 */
async function drive(mode: Drive, call: Call, total: number, chunk: number): Promise<void> {
  const pending: Promise<number>[] = new Array(chunk);
  for (let done = 0; done < total; done += chunk) {
    for (let i = 0; i < chunk; i++) pending[i] = call(i);
    await Promise.all(pending);
    if (mode === "yield") await yieldToEventLoop();
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
  const results: InProcessResult[] = [];
  for (const mode of settings.drives) {
    for (const batchSize of settings.batchSizes) results.push(...(await runSize(settings, all, mode, batchSize)));
    log(`  in-process, ${driveLabels[mode]}: done`);
  }
  return results;
}

async function runSize(settings: InProcessSettings, all: readonly Contender[], mode: Drive, batchSize: number): Promise<InProcessResult[]> {
  const { chunk, itemsPerRound, rounds, warmupRounds } = settings;
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
      await drive(mode, calls[c] as Call, itemsPerRound, chunk);
      const seconds = (performance.now() - start) / 1000;
      if (round >= 0) (samples[c] as number[]).push(itemsPerRound / seconds);
      // Timers the round left (batshit's cleanup) run before the next one starts.
      if (mode === "no-yield") await yieldToEventLoop();
    }
  }
  return all.map((contender, c) => {
    const roundsOf = samples[c] as number[];
    return { name: contender.name, drive: mode, batchSize, itemsPerSec: median(roundsOf), rounds: roundsOf };
  });
}
