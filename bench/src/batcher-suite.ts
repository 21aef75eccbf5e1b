import { Batcher, type Item } from "@tranche/core";
import { performance } from "node:perf_hooks";
import { collect, median, roundOrder } from "./stats.js";

export interface BatcherSettings {
  batchSize: number;
  itemsPerRound: number;
  rounds: number;
  warmupRounds: number;
  /**
   * A full GC before each round. Off by default: it shrinks the young generation, so
   * every round starts cold, unlike a server in its steady state.
   */
  collectBetweenRounds: boolean;
}

export type BatcherVariant = "public-ids" | "public-no-ids" | "internal-ack";

export interface BatcherResult {
  variant: BatcherVariant;
  batchSize: number;
  itemsPerSec: number;
  rounds: number[];
}

export const variantLabels: Record<BatcherVariant, string> = {
  "public-ids": "add({ id, payload }) → poll → ack(batch.id, item.id): ids from the caller, as a Worker has them from its transport",
  "public-no-ids": "add({ payload }) → poll → ack(batch.id, item.id): ids generated, built when ack reads item.id",
  "internal-ack": "add({ payload }) → poll → _ack(item): the internal entry fast path batched() uses, no id lookup",
};

/** The internal settle `batched()` uses: the item handed out by `poll` is the Batcher's entry. */
type Internal = { _ack(entry: Item<number>): boolean };

/** Epoch ms handed to the Batcher: time is a parameter, one reading per cycle as a driver would take. */
let now = 1_700_000_000_000;

/** One round: `items` go through add → poll → ack of every item, a batch at a time. Returns items/s. */
function round(
  batcher: Batcher<number>,
  variant: BatcherVariant,
  batchSize: number,
  items: number,
  ids: readonly string[],
  check: boolean,
): number {
  const internal = batcher as unknown as Internal;
  const withIds = variant === "public-ids";
  let batches = 0;
  const start = performance.now();
  for (let done = 0; done < items; done += batchSize) {
    now++;
    if (withIds) for (let i = 0; i < batchSize; i++) batcher.add({ id: ids[i] as string, payload: i }, now);
    else for (let i = 0; i < batchSize; i++) batcher.add({ payload: i }, now);
    for (const batch of batcher.poll(now)) {
      batches++;
      if (check && (batch.items.length !== batchSize || batch.reason !== "count")) {
        throw new Error(`[tranche/bench] Batcher gave a batch of ${batch.items.length} (${batch.reason}), expected ${batchSize} (count)`);
      }
      if (variant === "internal-ack") for (const item of batch.items) internal._ack(item);
      else for (const item of batch.items) batcher.ack(batch.id, item.id, now);
    }
  }
  const seconds = (performance.now() - start) / 1000;
  if (check) {
    const { items: counts, held, inFlight } = batcher.stats;
    if (batches !== items / batchSize || counts.acked !== items || held !== 0 || inFlight !== 0) {
      throw new Error(`[tranche/bench] Batcher ${variant}: ${batches} batches, ${counts.acked} acked, ${held} held, ${inFlight} in flight`);
    }
  }
  return items / seconds;
}

export function runBatcher(settings: BatcherSettings, log: (line: string) => void): BatcherResult[] {
  const { batchSize, itemsPerRound, rounds, warmupRounds } = settings;
  const variants: BatcherVariant[] = ["public-ids", "public-no-ids", "internal-ack"];
  const ids = Array.from({ length: batchSize }, (_, i) => `msg-${i}`);
  const create = () => new Batcher<number>({ flushEvery: batchSize });
  for (const variant of variants) round(create(), variant, batchSize, batchSize * 100, ids, true);
  // One Batcher per variant for the whole run, as a Worker keeps one for its life.
  const batchers = variants.map(create);
  const samples: number[][] = variants.map(() => []);
  for (let r = -warmupRounds; r < rounds; r++) {
    for (const v of roundOrder(variants.length, r)) {
      if (settings.collectBetweenRounds) collect();
      const perSec = round(batchers[v] as Batcher<number>, variants[v] as BatcherVariant, batchSize, itemsPerRound, ids, false);
      if (r >= 0) (samples[v] as number[]).push(perSec);
    }
  }
  log(`  batcher batch size ${batchSize}: done`);
  return variants.map((variant, v) => ({
    variant,
    batchSize,
    itemsPerSec: median(samples[v] as number[]),
    rounds: samples[v] as number[],
  }));
}
