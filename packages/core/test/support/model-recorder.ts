import { type Batch } from "../../src/batcher-api.js";
import { Batcher, type Thresholds } from "../../src/batcher.js";
import type { BatcherOptions, FlushReason } from "../../src/options.js";
import type { Payload } from "./model-options.js";

/** A batch as handed over, copied at that instant (the Batcher's items are live objects). */
export interface BatchView {
  readonly id: string;
  readonly reason: FlushReason;
  readonly group: string | undefined;
  readonly items: readonly ItemView[];
}

export interface ItemView {
  readonly id: string;
  readonly payload: Payload;
  readonly attempt: number;
  readonly enqueuedAt: number;
  readonly notBefore: number;
}

export type Call =
  | { readonly op: "add"; readonly id: string; readonly payload: Payload; readonly notBefore: number | undefined; readonly attempt: number | undefined; readonly now: number }
  | { readonly op: "poll" | "flush" | "close" | "evict"; readonly now: number }
  | { readonly op: "nextWake" }
  | { readonly op: "ack" | "fail" | "remove"; readonly batchId: string; readonly itemId: string; readonly now: number }
  | { readonly op: "retry"; readonly batchId: string; readonly itemId: string; readonly notBefore: number; readonly now: number };

export type Outcome = { readonly value: unknown } | { readonly error: string };

export function viewBatch(batch: Batch<Payload>): BatchView {
  return {
    id: batch.id,
    reason: batch.reason,
    group: batch.group,
    items: batch.items.map(({ id, payload, attempt, enqueuedAt, notBefore }) => ({ id, payload: { ...payload }, attempt, enqueuedAt, notBefore })),
  };
}

/** Runs one call and returns what it gave, as plain data; a throw becomes the error's name. */
export function perform(batcher: Batcher<Payload>, call: Call): Outcome {
  try {
    switch (call.op) {
      case "add": {
        const result = batcher.add(
          {
            id: call.id,
            payload: call.payload,
            ...(call.notBefore === undefined ? {} : { notBefore: call.notBefore }),
            ...(call.attempt === undefined ? {} : { attempt: call.attempt }),
          },
          call.now,
        );
        if (result !== "coalesced") return { value: result };
        const merge = batcher.coalesced;
        return { value: { result, survivor: merge?.survivor.id, dropped: merge?.dropped.n } };
      }
      case "poll":
        return { value: batcher.poll(call.now).map(viewBatch) };
      case "nextWake":
        return { value: batcher.nextWake() };
      case "ack":
        batcher.ack(call.batchId, call.itemId, call.now);
        return { value: undefined };
      case "fail":
        batcher.fail(call.batchId, call.itemId, call.now);
        return { value: undefined };
      case "remove":
        batcher.remove(call.batchId, call.itemId, call.now);
        return { value: undefined };
      case "retry": {
        const result = batcher.retry(call.batchId, call.itemId, call.notBefore, call.now);
        if (result !== "coalesced") return { value: result };
        const merge = batcher.coalesced;
        return { value: { result, survivor: merge?.survivor.id, dropped: merge?.dropped.n } };
      }
      case "flush":
        batcher.flush(call.now);
        return { value: undefined };
      case "close":
        batcher.close(call.now);
        return { value: undefined };
      case "evict":
        return { value: batcher.evict(call.now).map((item) => item.id) };
    }
  } catch (error) {
    return { error: (error as Error).name };
  }
}

/** A Batcher that logs every call with what it gave and the stats after it, for replay (I14). */
export class RecordingBatcher {
  readonly batcher: Batcher<Payload>;
  readonly log: { call: Call; outcome: Outcome; stats: unknown }[] = [];

  constructor(
    readonly options: BatcherOptions<Payload>,
    readonly thresholds: Partial<Thresholds> = {},
  ) {
    this.batcher = new Batcher(options, thresholds);
  }

  run(call: Call): Outcome {
    const outcome = perform(this.batcher, call);
    this.log.push({ call, outcome, stats: this.batcher.stats });
    return outcome;
  }
}

/** Plays a log's calls on a fresh Batcher with the same options and thresholds; returns what the new one gave. */
export function replay(options: BatcherOptions<Payload>, log: RecordingBatcher["log"], thresholds: Partial<Thresholds> = {}): RecordingBatcher["log"] {
  const fresh = new RecordingBatcher(options, thresholds);
  for (const { call } of log) fresh.run(call);
  return fresh.log;
}
