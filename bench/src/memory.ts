import { Batcher, batched } from "@tranche/core";
import { create as createBatshit, windowedFiniteBatchScheduler } from "@yornaath/batshit";
import DataLoader from "dataloader";
import { floor } from "./floor.js";
import { collect } from "./stats.js";

export interface MemoryResult {
  /** "tranche-batcher" is the row the target is about; the others are context. */
  name: "tranche-batcher" | "tranche-batched" | "dataloader" | "batshit" | "floor";
  what: string;
  items: number;
  bytesPerItem: number;
}

// Payloads are small integers (Smis): stored inside the pointer, they cost 0 bytes,
// so the per-item figure is the library's own cost.
const never = 1e12;
const twice = async (values: readonly number[]) => values.map((value) => value * 2);

/**
 * Heap growth per item while `hold(n)` keeps n items, after full collections.
 * Everything runs in one synchronous stretch: libraries that dispatch at the end
 * of the tick (dataloader, batshit, floor) still hold every call when measured.
 */
function perItem(n: number, hold: (n: number) => unknown): number {
  collect();
  const before = process.memoryUsage().heapUsed;
  const held = hold(n);
  collect();
  const after = process.memoryUsage().heapUsed;
  // Keeps what it held reachable through the measurement (a plain local may be dead, and bundlers drop write-only variables).
  sink.__trancheBenchHeld = held;
  return (after - before) / n;
}
const sink = globalThis as { __trancheBenchHeld?: unknown };

export async function runMemory(n: number, log: (line: string) => void): Promise<MemoryResult[]> {
  const results: MemoryResult[] = [];
  const row = (name: MemoryResult["name"], what: string, hold: (n: number) => unknown) => {
    results.push({ name, what, items: n, bytesPerItem: perItem(n, hold) });
  };

  row("tranche-batcher", "Batcher: add({ payload }) held, nothing flushes", (count) => {
    const batcher = new Batcher<number>({ flushEvery: never, flushInterval: Infinity, maxBuffered: Infinity });
    const now = Date.now();
    for (let i = 0; i < count; i++) batcher.add({ payload: i }, now);
    if (batcher.stats.held !== count) throw new Error(`[tranche/bench] Batcher holds ${batcher.stats.held}, expected ${count}`);
    return batcher;
  });

  // Pending calls: each includes its promise and resolvers, as the caller's await needs them.
  row("tranche-batched", "batched(): pending calls held (promise included), nothing flushes", (count) => {
    const fn = batched<number, number>(async (requests) => requests.map((r) => r.payload * 2), {
      flushEvery: never,
      flushInterval: Infinity,
      maxBuffered: Infinity,
      concurrency: Infinity,
    });
    for (let i = 0; i < count; i++) void fn(i);
    if (fn.stats.held !== count) throw new Error(`[tranche/bench] batched() holds ${fn.stats.held}, expected ${count}`);
    return fn;
  });
  // Its calls would wait forever: let them go, or the next rows carry them.
  sink.__trancheBenchHeld = undefined;

  row("dataloader", "DataLoader { cache: false }: pending loads of one tick", (count) => {
    const loader = new DataLoader<number, number>(twice, { cache: false, maxBatchSize: never });
    for (let i = 0; i < count; i++) void loader.load(i);
    return loader;
  });
  await settle();

  row("batshit", "batshit fetch: pending fetches of one window", (count) => {
    const batcher = createBatshit<Map<number, number>, number, number>({
      fetcher: async (queries) => new Map(queries.map((q) => [q, q * 2])),
      resolver: (results, query) => results.get(query) as number,
      scheduler: windowedFiniteBatchScheduler({ windowMs: 0, maxBatchSize: never }),
    });
    for (let i = 0; i < count; i++) void batcher.fetch(i);
    return batcher;
  });
  await settle();

  row("floor", "hand-rolled floor: pending calls of one tick", (count) => {
    const call = floor(twice, never);
    for (let i = 0; i < count; i++) void call(i);
    return call;
  });
  await settle();

  log(`  memory with ${n} items: done`);
  return results;
}

/** Lets the end-of-tick libraries run their one huge batch before the next row. */
async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 20));
  sink.__trancheBenchHeld = undefined;
}
