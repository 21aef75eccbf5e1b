// Settling by batch id and item id: which in-flight entry an id names, and when it names none.
// Drivers usually settle a batch's items in order, so the Batcher looks at its next unsettled
// entry before it builds an index of the batch; both ways must name the same entry.
import { describe, expect, it } from "vitest";
import { SettledError } from "../src/index.js";
import { Batcher, type Entry, type Flight } from "../src/internal.js";

const settled = (id: string) => `[tranche/core] request ${JSON.stringify(id)} is already settled`;

/** One batch of `flushEvery` items, added in order with the ids given. */
function oneBatch(ids: string[]): { batcher: Batcher<string>; batch: Flight<string>; entries: Entry<string>[] } {
  const batcher = new Batcher<string>({ flushEvery: ids.length });
  ids.forEach((id, i) => batcher.add({ id, payload: `${id}${i}` }, 0));
  const [batch] = batcher.poll(0);
  const flight = batch as Flight<string>;
  return { batcher, batch: flight, entries: flight.items as Entry<string>[] };
}

describe("Batcher settling an item by batch and item id", () => {
  it("answers 'not in flight' for a batch that has completed, also right after settling in it", () => {
    const { batcher, batch } = oneBatch(["a"]);
    batcher.ack(batch.id, "a", 0);
    expect(() => batcher.ack(batch.id, "a", 0)).toThrow(SettledError);
    expect(() => batcher.ack(batch.id, "a", 0)).toThrow(`[tranche/core] batch ${JSON.stringify(batch.id)} is not in flight`);
  });

  it("lists the batches still in flight, oldest first, as one in the middle completes", () => {
    const batcher = new Batcher<string>({ flushEvery: 1, concurrency: 3 });
    for (const id of ["a", "b", "c"]) batcher.add({ id, payload: id }, 0);
    const batches = batcher.poll(0);
    expect(batcher._flights()).toEqual(batches);
    batcher.ack(batches[1]!.id, "b", 0);
    expect(batcher._flights()).toEqual([batches[0], batches[2]]);
    batcher.ack(batches[0]!.id, "a", 0);
    batcher.ack(batches[2]!.id, "c", 0);
    expect(batcher._flights()).toEqual([]);
  });

  it("settles items sharing an id in batch order, skipping those the driver settled directly", () => {
    const { batcher, batch, entries } = oneBatch(["x", "x", "x"]);
    batcher._ack(entries[0]!);
    // The first `x` still in flight is the second.
    batcher.retry(batch.id, "x", 0, 0);
    batcher.fail(batch.id, "x", 0);
    expect(() => batcher.ack(batch.id, "x", 0)).toThrow(`[tranche/core] batch ${JSON.stringify(batch.id)} is not in flight`);
    expect(batcher.stats.items).toMatchObject({ acked: 1, retried: 1, failed: 1 });
    batcher.flush(0);
    expect(batcher.poll(0).map((b) => b.items.map((item) => [item.payload, item.attempt]))).toEqual([[["x1", 2]]]);
  });

  it("settles items sharing an id in batch order when another item is settled first", () => {
    // "y" stays in flight at the head of the batch, so each `x` is looked up by the index.
    const { batcher, batch } = oneBatch(["y", "x", "x"]);
    batcher.retry(batch.id, "x", 0, 0);
    batcher.ack(batch.id, "x", 0);
    expect(() => batcher.ack(batch.id, "x", 0)).toThrow(SettledError);
    expect(() => batcher.ack(batch.id, "x", 0)).toThrow(settled("x"));
    batcher.ack(batch.id, "y", 0);
    expect(batcher.stats).toMatchObject({ inFlightBatches: 0, items: { acked: 2, retried: 1 } });
    batcher.flush(0);
    expect(batcher.poll(0).map((b) => b.items.map((item) => [item.payload, item.attempt]))).toEqual([[["x1", 2]]]);
  });

  it("answers 'already settled' for an item released from a batch whose release is not counted yet", () => {
    const { batcher, batch, entries } = oneBatch(["a", "b"]);
    batcher.ack(batch.id, "a", 0);
    expect(batcher._release(entries[1]!, batch)).toBe(true);
    expect(() => batcher.ack(batch.id, "b", 0)).toThrow(settled("b"));
    expect(batcher._acked(batch, 1)).toBe(true);
    expect(batcher.stats).toMatchObject({ inFlight: 0, inFlightBatches: 0, items: { acked: 2 } });
  });

  it("refuses to settle through its old batch an item retried into a later batch", () => {
    const batcher = new Batcher<string>({ flushEvery: 2, concurrency: 2 });
    batcher.add({ id: "a", payload: "a" }, 0);
    batcher.add({ id: "b", payload: "b" }, 0);
    const [first] = batcher.poll(0);
    batcher.retry(first!.id, "a", 0, 0);
    batcher.flush(0);
    const [second] = batcher.poll(0);
    expect(second?.items.map((item) => item.id)).toEqual(["a"]);
    expect(() => batcher.ack(first!.id, "a", 0)).toThrow(settled("a"));
    expect(batcher.stats).toMatchObject({ inFlight: 2, items: { acked: 0 } });
    batcher.ack(second!.id, "a", 0);
    batcher.ack(first!.id, "b", 0);
    expect(batcher.stats).toMatchObject({ inFlight: 0, inFlightBatches: 0, items: { acked: 2 } });
  });
});
