// Groups and dedupe keys are dropped in sweeps rather than one by one (see the note in
// batcher.ts). These tests drive enough distinct groups and keys to run the sweeps.
import { describe, expect, it } from "vitest";
import type { Batch } from "../src/index.js";
import { Batcher } from "../src/internal.js";

interface Job {
  group: string;
  key: string;
  n: number;
}

function drain(batcher: Batcher<Job>, now: number, out: Batch<Job>[]): void {
  for (const batch of batcher.poll(now)) {
    out.push(batch);
    for (const item of batch.items) batcher.ack(batch.id, item.id, now);
  }
}

describe("Batcher sweeps of empty groups and stale dedupe keys", () => {
  it("keeps batching by group correctly across many short-lived groups", () => {
    const batcher = new Batcher<Job>({ flushEvery: 3, flushInterval: 10, concurrency: Infinity, maxBuffered: 10_000, groupBy: (j) => j.group });
    const batches: Batch<Job>[] = [];
    let now = 0;
    for (let round = 0; round < 50; round++) {
      // 20 fresh groups per round, 1000 groups in all: each fills exactly once and empties.
      for (let g = 0; g < 20; g++) {
        for (let i = 0; i < 3; i++) batcher.add({ payload: { group: `g${round}-${g}`, key: "", n: i } }, now);
      }
      drain(batcher, now, batches);
      now += 1;
    }
    expect(batches).toHaveLength(1000);
    for (const batch of batches) {
      expect(batch.reason).toBe("count");
      expect(new Set(batch.items.map((item) => item.payload.group))).toEqual(new Set([batch.group]));
      expect(batch.items.map((item) => item.payload.n)).toEqual([0, 1, 2]);
    }
    expect(batcher.stats).toMatchObject({ held: 0, inFlight: 0, items: { accepted: 3000, acked: 3000 } });
  });

  it("puts a retried item back into its group after that group was swept", () => {
    const batcher = new Batcher<Job>({ flushEvery: 2, flushInterval: 5, concurrency: Infinity, maxBuffered: 10_000, groupBy: (j) => j.group });
    batcher.add({ id: "r", payload: { group: "kept", key: "", n: 0 } }, 0);
    const [first] = batcher.poll(5);
    expect(first?.items.map((item) => item.id)).toEqual(["r"]);
    // Hundreds of other groups come and go while "r" is in flight: "kept" is swept away.
    const others: Batch<Job>[] = [];
    for (let g = 0; g < 300; g++) {
      batcher.add({ payload: { group: `other${g}`, key: "", n: 0 } }, 6);
      batcher.add({ payload: { group: `other${g}`, key: "", n: 1 } }, 6);
      drain(batcher, 6, others);
    }
    expect(others).toHaveLength(300);
    expect(batcher.retry(first!.id, "r", 20, 7)).toBe("retried");
    batcher.add({ id: "s", payload: { group: "kept", key: "", n: 1 } }, 21);
    const [again] = batcher.poll(21);
    expect(again).toMatchObject({ reason: "count", group: "kept" });
    expect(again?.items.map((item) => [item.id, item.attempt])).toEqual([["r", 2], ["s", 1]]);
  });

  it("puts a retried item into the group made for its key after its own was swept", () => {
    const batcher = new Batcher<Job>({ flushEvery: 2, flushInterval: 5, concurrency: Infinity, groupBy: (j) => j.group }, { groups: 2 });
    batcher.add({ id: "r", payload: { group: "kept", key: "", n: 0 } }, 0);
    const [first] = batcher.poll(5);
    const others: Batch<Job>[] = [];
    for (const group of ["o1", "o2", "o3"]) {
      batcher.add({ payload: { group, key: "", n: 0 } }, 6);
      batcher.add({ payload: { group, key: "", n: 1 } }, 6);
      drain(batcher, 6, others);
    }
    // "kept" was swept while "r" was in flight; a new item of that key makes a new group.
    batcher.add({ id: "s", payload: { group: "kept", key: "", n: 1 } }, 7);
    expect(batcher.retry(first!.id, "r", 7, 7)).toBe("retried");
    const [again] = batcher.poll(7);
    expect(again).toMatchObject({ reason: "count", group: "kept" });
    expect(again?.items.map((item) => [item.id, item.attempt])).toEqual([["s", 1], ["r", 2]]);
  });

  it("keeps a group that a merged item moved into through the next sweep", () => {
    const batcher = new Batcher<Job>(
      { flushEvery: 2, flushInterval: 1_000, groupBy: (j) => j.group, dedupeKey: (j) => j.key, coalesce: "last" },
      { groups: 1 },
    );
    batcher.add({ payload: { group: "a", key: "x", n: 0 } }, 0);
    expect(batcher.add({ payload: { group: "b", key: "x", n: 1 } }, 1)).toBe("coalesced"); // x moves to b; a is left empty
    batcher.add({ payload: { group: "c", key: "y", n: 2 } }, 2); // a new key: the sweep drops a only
    batcher.add({ payload: { group: "b", key: "z", n: 3 } }, 3);
    const batches = batcher.poll(3);
    expect(batches.map((batch) => [batch.group, batch.reason, batch.items.map((item) => item.payload.key)])).toEqual([["b", "count", ["x", "z"]]]);
  });

  it("coalesces by key correctly across thousands of keys that come and go", () => {
    const batcher = new Batcher<Job>({ flushEvery: 100, flushInterval: 0, concurrency: Infinity, maxBuffered: 100_000, dedupeKey: (j) => j.key, coalesce: "last" });
    const batches: Batch<Job>[] = [];
    let now = 0;
    for (let round = 0; round < 30; round++) {
      // 100 fresh keys per round, each offered twice: the second merges into the first.
      for (let k = 0; k < 100; k++) {
        expect(batcher.add({ payload: { group: "", key: `k${round}-${k}`, n: 1 } }, now)).toBe("accepted");
        expect(batcher.add({ payload: { group: "", key: `k${round}-${k}`, n: 2 } }, now)).toBe("coalesced");
      }
      // A key from an earlier round is no longer buffered: it is accepted, not merged.
      if (round > 0) expect(batcher.add({ payload: { group: "", key: `k${round - 1}-0`, n: 3 } }, now)).toBe("accepted");
      drain(batcher, now, batches);
      now += 1;
    }
    const items = batches.flatMap((batch) => batch.items);
    expect(items).toHaveLength(30 * 100 + 29);
    expect(items.filter((item) => item.payload.n === 2)).toHaveLength(3000);
    expect(batcher.stats.items).toMatchObject({ accepted: 3029, coalesced: 3000, acked: 3029 });
  });

  it("hands out a long group's items once each and in order while the taken head of its queue is cut off", () => {
    const batcher = new Batcher<Job>({ flushEvery: 3, flushInterval: 10, concurrency: Infinity, maxBuffered: 10_000 }, { queueHead: 2 });
    for (let n = 0; n < 20; n++) batcher.add({ payload: { group: "", key: "", n } }, 0);
    const batches: Batch<Job>[] = [];
    drain(batcher, 0, batches);
    drain(batcher, 10, batches);
    expect(batches.map((batch) => batch.items.map((item) => item.payload.n))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
      [9, 10, 11],
      [12, 13, 14],
      [15, 16, 17],
      [18, 19],
    ]);
  });

  it("takes thresholds that are whole numbers ≥ 1 only", () => {
    expect(() => new Batcher<Job>({}, { groups: 0 })).toThrow(new TypeError("[tranche/core] Expected `thresholds.groups` to be an integer ≥ 1, got 0"));
    expect(() => new Batcher<Job>({}, { keys: 1.5 })).toThrow(TypeError);
    expect(() => new Batcher<Job>({}, { queueHead: Number.NaN })).toThrow(TypeError);
    expect(() => new Batcher<Job>({}, { groups: 2, keys: 2, queueHead: 2 })).not.toThrow();
  });
});
