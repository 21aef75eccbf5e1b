import { describe, expect, it } from "vitest";
import { Batcher, ClosedError, batched, type BatchRequest } from "../src/index.js";
import { SimulatedClock } from "../src/testing.js";

// batched() settles a returned array in one pass and counts the run of acks once; the
// Batcher takes an add at the time of its last operation without re-running `advance`.
// These tests pin that both give exactly what the general paths give.

/** Every outcome in call order, observed from the start so no rejection goes unhandled. */
async function outcomes(promises: Promise<unknown>[]): Promise<unknown[]> {
  const settled = await Promise.allSettled(promises);
  return settled.map((s) => (s.status === "fulfilled" ? s.value : s.reason));
}

describe("a returned array settles each request as one settle at a time would", () => {
  it("acks primitives, objects and functions, and fails only Error elements", async () => {
    const clock = new SimulatedClock(1000);
    const object = { ok: true };
    const error = new Error("no");
    // A function whose prototype chain holds Error.prototype is still a function: acked.
    const fnLikeError = Object.setPrototypeOf(() => 1, Error.prototype) as () => number;
    const results: unknown[] = [1, object, error, fnLikeError, undefined, null, "s"];
    const fn = batched<number, unknown>(() => results as never, { flushEvery: results.length, clock });
    const settled = outcomes(results.map((_, i) => fn(i)));
    await clock.advance(0);
    expect(await settled).toEqual([1, object, error, fnLikeError, undefined, null, "s"]);
    const { items, inFlight, inFlightBatches } = fn.stats;
    expect(items.acked).toBe(6);
    expect(items.failed).toBe(1);
    expect(inFlight).toBe(0);
    expect(inFlightBatches).toBe(0);
  });

  it("has counted every earlier request when resolving with an object reads its `then`", async () => {
    const clock = new SimulatedClock(1000);
    const seen: { acked: number; inFlight: number }[] = [];
    const fn = batched<number, unknown>(
      () => [
        1,
        2,
        {
          get then() {
            const { items, inFlight } = fn.stats;
            seen.push({ acked: items.acked, inFlight });
            return undefined;
          },
        },
        4,
      ],
      { flushEvery: 4, clock },
    );
    const settled = outcomes([fn(0), fn(1), fn(2), fn(3)]);
    await clock.advance(0);
    await settled;
    // As with one ack at a time: the two before it and the object's own request are acked.
    expect(seen).toEqual([{ acked: 3, inFlight: 1 }]);
    expect(fn.stats.items.acked).toBe(4);
    expect(fn.stats.inFlight).toBe(0);
  });

  it("skips requests the handler settled itself", async () => {
    const clock = new SimulatedClock(1000);
    const fn = batched<number, string>(
      (requests: BatchRequest<number, string>[]) => {
        (requests[1] as BatchRequest<number, string>).ack("by hand");
        (requests[2] as BatchRequest<number, string>).fail(new Error("by hand"));
        return requests.map((r) => `array ${r.payload}`);
      },
      { flushEvery: 4, clock },
    );
    const settled = outcomes([fn(0), fn(1), fn(2), fn(3)]);
    await clock.advance(0);
    const got = await settled;
    expect(got[0]).toBe("array 0");
    expect(got[1]).toBe("by hand");
    expect((got[2] as Error).message).toBe("by hand");
    expect(got[3]).toBe("array 3");
    expect(fn.stats.items.acked).toBe(3);
    expect(fn.stats.items.failed).toBe(1);
    expect(fn.stats.inFlight).toBe(0);
  });

  it("settles callers merged by dedupeKey with their survivor's element", async () => {
    const clock = new SimulatedClock(1000);
    const fn = batched<{ key: string }, number>((requests) => requests.map((_, i) => i + 10), {
      dedupeKey: (p) => p.key,
      flushInterval: 50,
      clock,
    });
    const settled = outcomes([fn({ key: "a" }), fn({ key: "b" }), fn({ key: "a" })]);
    await clock.advance(50);
    expect(await settled).toEqual([10, 11, 10]);
  });

  it("frees the batch's slot once its last request is counted", async () => {
    const clock = new SimulatedClock(1000);
    const sizes: number[] = [];
    const fn = batched<number, number>(
      (requests) => {
        sizes.push(requests.length);
        return requests.map((r) => r.payload * 2);
      },
      { flushEvery: 2, concurrency: 1, clock },
    );
    const settled = outcomes([fn(1), fn(2), fn(3), fn(4), fn(5)]);
    await clock.advance(0);
    await fn.flush();
    expect(await settled).toEqual([2, 4, 6, 8, 10]);
    expect(sizes).toEqual([2, 2, 1]);
    expect(fn.stats.inFlightBatches).toBe(0);
  });
});

describe("an add at the time of the last operation", () => {
  it("keeps eligibility order with a delayed item that became due at that time", () => {
    const batcher = new Batcher<string>({ flushEvery: 10, flushInterval: 100 });
    batcher.add({ payload: "late", notBefore: 1005 }, 1000);
    batcher.add({ payload: "a" }, 1000);
    // A new time: "late" is due and goes in before "b".
    batcher.add({ payload: "b" }, 1005);
    batcher.add({ payload: "c" }, 1005);
    batcher.flush(1005);
    const [batch] = batcher.poll(1005);
    expect(batch?.items.map((item) => item.payload)).toEqual(["a", "late", "b", "c"]);
    expect(batch?.items.map((item) => [item.enqueuedAt, item.notBefore])).toEqual([
      [1000, 1000],
      [1000, 1005],
      [1005, 1005],
      [1005, 1005],
    ]);
  });

  it("still refuses after close and when full", () => {
    const full = new Batcher<number>({ flushEvery: 2, maxBuffered: 2 });
    expect(full.add({ payload: 1 }, 1000)).toBe("accepted");
    expect(full.add({ payload: 2 }, 1000)).toBe("accepted");
    expect(full.add({ payload: 3 }, 1000)).toBe("full");
    const closed = new Batcher<number>();
    closed.add({ payload: 1 }, 1000);
    closed.close(1000);
    expect(() => closed.add({ payload: 2 }, 1000)).toThrow(ClosedError);
  });

  it("still runs groupBy and dedupeKey for each add", () => {
    const batcher = new Batcher<{ g: string; k: string }>({
      flushEvery: 2,
      groupBy: (p) => p.g,
      dedupeKey: (p) => p.k,
    });
    batcher.add({ payload: { g: "x", k: "1" } }, 1000);
    batcher.add({ payload: { g: "y", k: "2" } }, 1000);
    expect(batcher.add({ payload: { g: "x", k: "1" } }, 1000)).toBe("coalesced");
    batcher.add({ payload: { g: "x", k: "3" } }, 1000);
    const batches = batcher.poll(1000);
    expect(batches.map((b) => [b.group, b.items.map((item) => item.payload.k)])).toEqual([["x", ["1", "3"]]]);
  });
});
