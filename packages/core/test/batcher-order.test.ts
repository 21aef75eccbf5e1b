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

// Under `coalesce: "last"` with `groupBy`, a merge can move the survivor to the new payload's
// group: it keeps its place in eligibility order and whatever a `flush()` owed it.
describe("Batcher moving a merged item to another group", () => {
  type P = { k: string; g: string };
  const make = (flushEvery: number) =>
    new Batcher<P>({ flushEvery, flushInterval: 1_000, concurrency: 1, groupBy: (p) => p.g, dedupeKey: (p) => p.k, coalesce: "last" });
  const drain = (batcher: Batcher<P>, now: number) => {
    const out: [string | undefined, string, string[]][] = [];
    for (let batch = batcher.poll(now)[0]; batch !== undefined; batch = batcher.poll(now)[0]) {
      out.push([batch.group, batch.reason, batch.items.map((item) => item.payload.k)]);
      for (const item of batch.items) batcher.ack(batch.id, item.id, now);
    }
    return out;
  };

  it("carries a flush() owed to the item into its new group", () => {
    const batcher = make(10);
    batcher.add({ payload: { k: "x", g: "a" } }, 0);
    batcher.add({ payload: { k: "y", g: "a" } }, 0);
    batcher.flush(0);
    expect(batcher.add({ payload: { k: "x", g: "b" } }, 1)).toBe("coalesced");
    expect(drain(batcher, 1)).toEqual([
      ["b", "flush", ["x"]],
      ["a", "flush", ["y"]],
    ]);
  });

  it("carries a flush() owed to the item into a group that batches have left before", () => {
    const batcher = make(2);
    batcher.add({ payload: { k: "b1", g: "b" } }, 0);
    batcher.add({ payload: { k: "b2", g: "b" } }, 0);
    expect(drain(batcher, 0)).toEqual([["b", "count", ["b1", "b2"]]]);
    batcher.add({ payload: { k: "x", g: "a" } }, 1);
    batcher.flush(1);
    expect(batcher.add({ payload: { k: "x", g: "b" } }, 2)).toBe("coalesced");
    expect(drain(batcher, 2)).toEqual([["b", "flush", ["x"]]]);
  });

  it("leaves what a flush() owes the old group as it was when the moved item was not owed", () => {
    const batcher = make(10);
    batcher.add({ payload: { k: "x", g: "a" } }, 0);
    batcher.flush(0);
    batcher.add({ payload: { k: "y", g: "a" } }, 1); // after the flush: not owed
    expect(batcher.add({ payload: { k: "y", g: "b" } }, 2)).toBe("coalesced");
    expect(drain(batcher, 2)).toEqual([["a", "flush", ["x"]]]);
    expect(batcher.nextWake()).toBe(1_001); // y waits for its interval, in group b
    expect(drain(batcher, 1_001)).toEqual([["b", "interval", ["y"]]]);
  });

  it("puts the item among its new group's items by when it became eligible", () => {
    const batcher = make(3);
    batcher.add({ payload: { k: "b1", g: "b" } }, 0);
    batcher.add({ payload: { k: "x", g: "a" } }, 1);
    batcher.add({ payload: { k: "b2", g: "b" } }, 2);
    expect(batcher.add({ payload: { k: "x", g: "b" } }, 3)).toBe("coalesced");
    expect(drain(batcher, 3)).toEqual([["b", "count", ["b1", "x", "b2"]]]);
    expect(batcher.stats).toMatchObject({ held: 0, inFlight: 0 });
  });

  it("carries what a flush() owed an item left behind a count batch, and no more, into a group that batches have left before", () => {
    const batcher = make(3);
    for (const k of ["b1", "b2", "b3"]) batcher.add({ payload: { k, g: "b" } }, 0);
    for (const k of ["a1", "a2", "a3", "x"]) batcher.add({ payload: { k, g: "a" } }, 0);
    expect(drain(batcher, 0)).toEqual([
      ["b", "count", ["b1", "b2", "b3"]],
      ["a", "count", ["a1", "a2", "a3"]],
    ]);
    batcher.flush(1); // owes x
    batcher.add({ payload: { k: "b4", g: "b" } }, 1); // after the flush: not owed
    expect(batcher.add({ payload: { k: "x", g: "b" } }, 2)).toBe("coalesced");
    expect(drain(batcher, 2)).toEqual([["b", "flush", ["x", "b4"]]]);
    // The debt is paid: a later item of b waits for its interval.
    batcher.add({ payload: { k: "b5", g: "b" } }, 3);
    expect(drain(batcher, 3)).toEqual([]);
    expect(drain(batcher, 1_003)).toEqual([["b", "interval", ["b5"]]]);
  });

  it("moves a delayed item without making either group eligible before it is due", () => {
    const batcher = make(2);
    batcher.add({ payload: { k: "x", g: "a" }, notBefore: 500 }, 0);
    batcher.add({ payload: { k: "b1", g: "b" } }, 0);
    expect(batcher.add({ payload: { k: "x", g: "b" } }, 1)).toBe("coalesced");
    expect(drain(batcher, 1)).toEqual([]);
    expect(drain(batcher, 500)).toEqual([["b", "count", ["b1", "x"]]]);
  });
});

