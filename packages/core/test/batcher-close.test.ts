// Closing a Batcher stops intake; evict() empties its buffer in the order the items would have run.
import { describe, expect, it } from "vitest";
import { Batcher } from "../src/index.js";

describe("Batcher close and evict", () => {
  it("says it is closed once close() ran, and only then", () => {
    const batcher = new Batcher<string>();
    expect(batcher.isClosed).toBe(false);
    batcher.close(0);
    expect(batcher.isClosed).toBe(true);
  });

  it("evict returns every buffered item, eligible and delayed, across groups, oldest eligibility first; in-flight ones stay", () => {
    const batcher = new Batcher<string>({ flushEvery: 1, flushInterval: 1_000, concurrency: 1, groupBy: (s) => s[0] as string });
    batcher.add({ id: "running", payload: "x" }, 0);
    const [running] = batcher.poll(0);
    batcher.add({ id: "a1", payload: "a1" }, 1);
    batcher.add({ id: "late", payload: "b0", notBefore: 50 }, 2);
    batcher.add({ id: "b1", payload: "b1" }, 3);
    batcher.add({ id: "a2", payload: "a2" }, 4);
    batcher.add({ id: "later", payload: "a3", notBefore: 40 }, 5);
    expect(batcher.evict(10).map((item) => item.id)).toEqual(["a1", "b1", "a2", "later", "late"]);
    expect(batcher.stats).toMatchObject({ held: 0, inFlight: 1 });
    batcher.ack(running!.id, "running", 11);
    expect(batcher.poll(2_000)).toEqual([]);
  });

  it("takes items again after evict: a new one, one with an evicted item's dedupe key, and an in-flight one retried", () => {
    const batcher = new Batcher<string>({ flushEvery: 1, flushInterval: 1_000, concurrency: 1 });
    batcher.add({ id: "running", payload: "x" }, 0);
    const [running] = batcher.poll(0);
    batcher.add({ id: "held", payload: "y" }, 1);
    expect(batcher.evict(2).map((item) => item.id)).toEqual(["held"]);
    batcher.retry(running!.id, "running", 10, 3);
    expect(batcher.add({ id: "new", payload: "z" }, 4)).toBe("accepted");
    const batches = [...batcher.poll(10)];
    batcher.ack(batches[0]!.id, batches[0]!.items[0]!.id, 11);
    batches.push(...batcher.poll(11));
    expect(batches.map((batch) => batch.items.map((item) => [item.id, item.attempt]))).toEqual([[["new", 1]], [["running", 2]]]);

    const keyed = new Batcher<string>({ flushInterval: 1_000, dedupeKey: (s) => s });
    keyed.add({ id: "first", payload: "k" }, 0);
    keyed.evict(1);
    expect(keyed.add({ id: "second", payload: "k" }, 2)).toBe("accepted");
    expect(keyed.poll(1_002).flatMap((batch) => batch.items.map((item) => item.id))).toEqual(["second"]);
  });

  it("starts each group afresh after evict: no count, bytes or interval trigger left from what was evicted", () => {
    const sizeOf = (s: string) => s.length;
    for (const groupBy of [undefined, (s: string) => s[0] as string]) {
      const batcher = new Batcher<string>({ flushEvery: 2, flushInterval: 1_000, maxBatchBytes: 10, sizeOf, ...(groupBy && { groupBy }) });
      batcher.add({ payload: "aaaaaa" }, 0);
      batcher.add({ payload: "abcdef" }, 0); // full by count and by bytes
      batcher.add({ payload: "azzz", notBefore: 5 }, 0);
      expect(batcher.evict(1)).toHaveLength(3);
      expect(batcher.nextWake()).toBeUndefined();
      batcher.add({ id: "fresh", payload: "aaaaaa" }, 10);
      expect(batcher.stats).toMatchObject({ held: 1, eligible: 1, delayed: 0 });
      expect(batcher.nextWake()).toBe(1_010);
      expect(batcher.poll(1_009)).toEqual([]);
      const [batch] = batcher.poll(1_010);
      expect(batch).toMatchObject({ reason: "interval" });
      expect(batch?.items.map((item) => item.id)).toEqual(["fresh"]);
    }
  });
});

