// Bad input to the pure Batcher: a TypeError that quotes the value, and no state change.
import { describe, expect, it } from "vitest";
import { Batcher, ClosedError, OversizeError, SettledError } from "../src/index.js";

const unchanged = (batcher: Batcher<unknown>) => expect(batcher.stats).toMatchObject({ held: 0, inFlight: 0, items: { accepted: 0 } });

describe("Batcher input validation", () => {
  it.each([
    ["a non-object item", () => new Batcher().add(42 as never, 0), /`item` to be an object with a payload, got 42/],
    ["a null item", () => new Batcher().add(null as never, 0), /`item` to be an object with a payload, got null/],
    ["a non-string id", () => new Batcher().add({ id: 7 as never, payload: 1 }, 0), /`item.id` to be a string, got 7/],
    ["attempt 0", () => new Batcher().add({ payload: 1, attempt: 0 }, 0), /`item.attempt` to be an integer ≥ 1, got 0/],
    ["attempt 1.5", () => new Batcher().add({ payload: 1, attempt: 1.5 }, 0), /got 1.5/],
    ["a NaN now", () => new Batcher().add({ payload: 1 }, Number.NaN), /`now` to be a finite number \(epoch ms\), got NaN/],
    ["an infinite now", () => new Batcher().poll(Infinity), /`now` to be a finite number \(epoch ms\), got Infinity/],
    ["a string notBefore", () => new Batcher().add({ payload: 1, notBefore: "soon" as never }, 0), /`notBefore` to be a number \(epoch ms\), got "soon"/],
  ])("rejects %s with a TypeError quoting it", (_name, call, message) => {
    expect(call).toThrow(TypeError);
    expect(call).toThrow(message);
  });

  it("rejects what user callbacks return before touching state", () => {
    const bySize = new Batcher<string>({ maxBatchBytes: 10, sizeOf: () => -1 });
    expect(() => bySize.add({ payload: "x" }, 0)).toThrow(/`sizeOf\(payload\)` to be a number of bytes ≥ 0, got -1/);
    unchanged(bySize as Batcher<unknown>);
    const byStringSize = new Batcher<string>({ maxBatchBytes: 10, sizeOf: () => "3" as never });
    expect(() => byStringSize.add({ payload: "x" }, 0)).toThrow(/`sizeOf\(payload\)` to be a number of bytes ≥ 0, got "3"/);
    unchanged(byStringSize as Batcher<unknown>);
    const byGroup = new Batcher<string>({ groupBy: () => 3 as never });
    expect(() => byGroup.add({ payload: "x" }, 0)).toThrow(/`groupBy\(payload\)` to be a string, got 3/);
    unchanged(byGroup as Batcher<unknown>);
    const byKey = new Batcher<string>({ dedupeKey: () => null as never });
    expect(() => byKey.add({ payload: "x" }, 0)).toThrow(/`dedupeKey\(payload\)` to be a string, got null/);
    unchanged(byKey as Batcher<unknown>);
  });

  it("refuses an item larger than maxBatchBytes with OversizeError, and one after close with ClosedError", () => {
    const batcher = new Batcher<string>({ maxBatchBytes: 4, sizeOf: (s) => s.length });
    expect(() => batcher.add({ payload: "12345" }, 0)).toThrow(OversizeError);
    expect(batcher.add({ payload: "1234" }, 0)).toBe("accepted");
    batcher.close(0);
    expect(() => batcher.add({ payload: "1" }, 0)).toThrow(ClosedError);
    expect(() => batcher.add({ payload: "1" }, 0)).toThrow("[tranche/core] batcher is closed");
    expect(batcher.stats.held).toBe(1);
  });

  it("answers full at maxBuffered for an item with a new dedupe key, and merges one with a buffered key", () => {
    const batcher = new Batcher<string>({ flushEvery: 1, maxBuffered: 1, dedupeKey: (s) => s });
    expect(batcher.add({ payload: "k1" }, 0)).toBe("accepted");
    expect(batcher.add({ payload: "k2" }, 0)).toBe("full");
    expect(batcher.add({ payload: "k1" }, 0)).toBe("coalesced");
    expect(batcher.stats).toMatchObject({ held: 1, items: { accepted: 1, coalesced: 1 } });
    // In-flight items count toward maxBuffered too.
    const [batch] = batcher.poll(0);
    expect(batcher.stats).toMatchObject({ held: 0, inFlight: 1 });
    expect(batcher.add({ payload: "k2" }, 0)).toBe("full");
    batcher.ack(batch!.id, batch!.items[0]!.id, 0);
    expect(batcher.add({ payload: "k2" }, 0)).toBe("accepted");
  });

  it("refuses a retry time that is not a number, and an item that is not in the batch named", () => {
    const batcher = new Batcher<string>({ flushEvery: 1 });
    batcher.add({ id: "a", payload: "a" }, 0);
    const [batch] = batcher.poll(0);
    expect(() => batcher.retry(batch!.id, "a", Number.NaN, 0)).toThrow(new TypeError("[tranche/core] Expected `notBefore` to be a number (epoch ms), got NaN"));
    expect(() => batcher.retry(batch!.id, "a", "10" as never, 0)).toThrow(new TypeError('[tranche/core] Expected `notBefore` to be a number (epoch ms), got "10"'));
    expect(batcher.stats).toMatchObject({ inFlight: 1, items: { retried: 0 } });
    expect(() => batcher.ack(batch!.id, "b", 0)).toThrow(SettledError);
    expect(() => batcher.ack(batch!.id, "b", 0)).toThrow(`[tranche/core] item "b" is not in batch ${JSON.stringify(batch!.id)}`);
    expect(() => batcher.ack("no-such-batch", "a", 0)).toThrow('[tranche/core] batch "no-such-batch" is not in flight');
  });

  it("reports absolute times for items whatever its internal origin", () => {
    const batcher = new Batcher<string>({ flushEvery: 2, flushInterval: 50 });
    const t0 = 1_764_000_000_123.5;
    batcher.add({ id: "a", payload: "a" }, t0);
    batcher.add({ id: "b", payload: "b", notBefore: t0 + 10_000 }, t0 + 7);
    expect(batcher.nextWake()).toBe(t0 + 50);
    const [batch] = batcher.poll(t0 + 50);
    expect(batch?.items.map((item) => [item.id, item.enqueuedAt, item.notBefore])).toEqual([["a", t0, t0]]);
    batcher.ack(batch!.id, "a", t0 + 60);
    expect(batcher.nextWake()).toBe(t0 + 10_000);
    const [later] = batcher.poll(t0 + 10_050);
    expect(later?.items.map((item) => [item.id, item.enqueuedAt, item.notBefore])).toEqual([["b", t0 + 7, t0 + 10_000]]);
  });

  it("takes times before the epoch (negative ms) as they are", () => {
    const batcher = new Batcher<string>({ flushEvery: 2, flushInterval: 50 });
    batcher.add({ id: "a", payload: "a" }, -1_000);
    expect(batcher.nextWake()).toBe(-950);
    expect(batcher.poll(-951)).toEqual([]);
    const [batch] = batcher.poll(-950);
    expect(batch?.items.map((item) => [item.id, item.enqueuedAt, item.notBefore])).toEqual([["a", -1_000, -1_000]]);
  });
});
