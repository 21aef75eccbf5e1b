import { batched } from "@tranche/core";
import { create as createBatshit, windowedFiniteBatchScheduler } from "@yornaath/batshit";
import DataLoader from "dataloader";
import { floor } from "./floor.js";

export type ContenderName = "tranche" | "dataloader" | "batshit" | "floor";

/** A function of one value returning `value * 2`, batched by some library. */
export type Call = (value: number) => Promise<number>;

/** Counts batch sizes during the correctness check; absent while timing. */
export type Observe = (batchSize: number) => void;

export interface Contender {
  readonly name: ContenderName;
  /** How it is configured, for the report. */
  readonly setup: (batchSize: string) => string;
  /**
   * Wraps the batch handler "resolve every item with value × 2, asynchronously"
   * (an async function) so that batches hold at most `batchSize` items and a
   * partial batch goes at the end of the tick (or as close as the library allows).
   */
  readonly create: (batchSize: number, observe?: Observe) => Call;
  /** Set when one instance cannot serve a whole run: why it gets a fresh one per round. */
  readonly freshPerRound?: string;
}

/**
 * `batched()` made comparable with dataloader, which starts every batch at once
 * and has no buffer limit: no concurrency cap, and room for a whole chunk of callers.
 */
export const trancheOptions = (batchSize: number, maxBuffered: number) =>
  ({ flushEvery: batchSize, flushInterval: 0, concurrency: Infinity, maxBuffered }) as const;

export function contenders(maxBuffered: number): Contender[] {
  return [
    {
      name: "tranche",
      setup: (n) => `batched(handler, { flushEvery: ${n}, flushInterval: 0, concurrency: Infinity, maxBuffered: ${maxBuffered} })`,
      create: (n, observe) =>
        batched<number, number>(async (requests) => {
          observe?.(requests.length);
          return requests.map((request) => request.payload * 2);
        }, trancheOptions(n, maxBuffered)),
    },
    {
      name: "dataloader",
      setup: (n) => `new DataLoader(handler, { cache: false, maxBatchSize: ${n} })`,
      create: (n, observe) => {
        const loader = new DataLoader<number, number>(
          async (keys) => {
            observe?.(keys.length);
            return keys.map((key) => key * 2);
          },
          { cache: false, maxBatchSize: n },
        );
        return loader.load.bind(loader);
      },
    },
    {
      name: "batshit",
      setup: (n) =>
        `create({ fetcher → Map, resolver: map.get, scheduler: windowedFiniteBatchScheduler({ windowMs: 0, maxBatchSize: ${n} }) }).fetch`,
      create: (n, observe) => {
        // batshit hands each caller `resolver(fetcherResult, query)`: a Map keyed by
        // query is its indexed form (keyResolver's `indexed` caches one index forever).
        const batcher = createBatshit<Map<number, number>, number, number>({
          fetcher: async (queries) => {
            observe?.(queries.length);
            const results = new Map<number, number>();
            for (const query of queries) results.set(query, query * 2);
            return results;
          },
          resolver: (results, query) => results.get(query) as number,
          // Its closest to "N items or end of tick": a full batch goes at once, a
          // partial one after a 0 ms window (a setTimeout, so the next macrotask).
          scheduler: windowedFiniteBatchScheduler({ windowMs: 0, maxBatchSize: n }),
          name: "bench",
        });
        return batcher.fetch;
      },
      freshPerRound:
        "its completed batches never leave its internal queue (its `then` marks `current`, by then the next batch, complete), so every batch end filters all batches so far and memory grows; its figure falls as a round gets longer",
    },
    {
      name: "floor",
      setup: (n) => `hand-rolled: array swapped at ${n} or on a microtask, one promise per item`,
      create: (n, observe) =>
        floor<number, number>(async (values) => {
          observe?.(values.length);
          return values.map((value) => value * 2);
        }, n),
    },
  ];
}
