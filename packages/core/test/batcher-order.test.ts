// Which group flushes first when several could (SPEC rule 4): the one whose first item is oldest,
// among the groups with a trigger due.
import { describe, expect, it } from "vitest";
import { Batcher } from "../src/index.js";

describe("Batcher flush order across groups", () => {
  it("flushes the oldest of the full groups first while an older group is not due yet", () => {
    const batcher = new Batcher<string>({ flushEvery: 2, flushInterval: 1_000, concurrency: 1, groupBy: (s) => s[0] as string });
    batcher.add({ payload: "c1" }, 0); // the oldest group, neither full nor due
    batcher.add({ payload: "b1" }, 1);
    batcher.add({ payload: "b2" }, 2); // b is full first, with the older first item
    batcher.add({ payload: "a1" }, 3);
    batcher.add({ payload: "a2" }, 4); // a is full after it
    const [batch] = batcher.poll(5);
    expect(batch).toMatchObject({ group: "b", reason: "count" });
    expect(batch?.items.map((item) => item.payload)).toEqual(["b1", "b2"]);
  });

  it("keeps an item merged by dedupeKey (the last payload kept) in the one group there is without groupBy", () => {
    const batcher = new Batcher<{ key: string; v: number }>({ flushEvery: 2, flushInterval: 1_000, dedupeKey: (p) => p.key, coalesce: "last" });
    batcher.add({ payload: { key: "k1", v: 1 } }, 0);
    expect(batcher.add({ payload: { key: "k1", v: 2 } }, 1)).toBe("coalesced");
    batcher.add({ payload: { key: "k2", v: 3 } }, 2);
    const batches = batcher.poll(2);
    expect(batches.map((batch) => [batch.reason, batch.items.map((item) => item.payload.v)])).toEqual([["count", [2, 3]]]);
  });
});
