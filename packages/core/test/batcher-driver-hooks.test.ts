// The `_`-members of the Batcher that drivers (batched(), Worker) settle and watch batches with:
// what each one answers, so a driver can rely on it without looking at the Batcher's state.
import { describe, expect, it } from "vitest";
import { Batcher, type Entry, type Flight } from "../src/internal.js";

/** A batcher with one in-flight batch of two items, "a" and "b". */
function twoInFlight() {
  const batcher = new Batcher<string>({ flushEvery: 2, flushInterval: 1_000, concurrency: 1 });
  batcher.add({ id: "a", payload: "a" }, 0);
  batcher.add({ id: "b", payload: "b" }, 0);
  const [flight] = batcher.poll(0) as Flight<string>[];
  const [a, b] = flight!._entries as [Entry<string>, Entry<string>];
  return { batcher, flight: flight!, a, b };
}

describe("Batcher hooks for drivers", () => {
  it("_acked counts released items and says true only for the call that completes the batch", () => {
    const { batcher, flight, a, b } = twoInFlight();
    expect(batcher._acked(flight, 0)).toBe(false);
    expect(batcher._release(a, flight)).toBe(true);
    expect(batcher._acked(flight, 1)).toBe(false);
    expect(batcher.stats).toMatchObject({ inFlight: 1, inFlightBatches: 1, items: { acked: 1 } });
    expect(batcher._release(b, flight)).toBe(true);
    expect(batcher._acked(flight, 1)).toBe(true);
    // Counting no acks afterwards completes nothing again.
    expect(batcher._acked(flight, 0)).toBe(false);
    expect(batcher.stats).toMatchObject({ inFlight: 0, inFlightBatches: 0, items: { acked: 2 } });
  });

  it("_inFlight is true for an unsettled item of a running batch only", () => {
    const { batcher, flight, a, b } = twoInFlight();
    expect(batcher._inFlight(a)).toBe(true);
    batcher._release(a, flight);
    expect(batcher._inFlight(a)).toBe(false);
    expect(batcher._release(a, flight)).toBe(false);
    batcher._acked(flight, 1);
    batcher.fail(flight.id, "b", 1);
    expect(batcher._inFlight(b)).toBe(false);
  });

  it("_flushPending is true while a flush() owes batches, not for a group that is only full", () => {
    const batcher = new Batcher<string>({ flushEvery: 2, flushInterval: 1_000, concurrency: 1 });
    batcher.add({ payload: "a" }, 0);
    batcher.add({ payload: "b" }, 0);
    expect(batcher._flushPending()).toBe(false);
    batcher.add({ payload: "c" }, 0);
    batcher.flush(0);
    expect(batcher._flushPending()).toBe(true);
    const [first] = batcher.poll(0);
    expect(first).toMatchObject({ reason: "count" });
    expect(batcher._flushPending()).toBe(true);
    for (const item of first!.items) batcher.ack(first!.id, item.id, 0);
    expect(batcher.poll(0).map((batch) => [batch.reason, batch.items.map((item) => item.payload)])).toEqual([["flush", ["c"]]]);
    expect(batcher._flushPending()).toBe(false);
  });

  it("_flushPending sees a flush() owed to items added after evict", () => {
    const batcher = new Batcher<string>({ flushEvery: 2, flushInterval: 1_000, concurrency: 1 });
    batcher.add({ payload: "a" }, 0);
    batcher.add({ payload: "b" }, 0); // full: its group is listed as ready
    batcher.evict(1);
    batcher.add({ payload: "c" }, 2);
    batcher.flush(2);
    expect(batcher._flushPending()).toBe(true);
    expect(batcher.poll(2).map((batch) => [batch.reason, batch.items.map((item) => item.payload)])).toEqual([["flush", ["c"]]]);
    expect(batcher._flushPending()).toBe(false);
  });
});
