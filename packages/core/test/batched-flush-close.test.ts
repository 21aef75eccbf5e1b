// What flush() and close() wait for: flush() for the batches it flushed, not for later ones;
// close({ timeout }) for nothing once it gave up.
import { describe, expect, it } from "vitest";
import { ClosedError, batched } from "../src/index.js";
import { SimulatedClock } from "../src/testing.js";

/** A handler whose batch for each first payload settles when the test releases it. */
function gated() {
  const gates = new Map<string, () => void>();
  const handler = (requests: { payload: string }[]) =>
    new Promise<void>((resolve) => {
      gates.set(requests[0]!.payload, resolve);
    });
  return { gates, handler };
}

describe("flush()", () => {
  it("resolves once the batches it flushed settled, while a batch that started later still runs", async () => {
    const clock = new SimulatedClock();
    const { gates, handler } = gated();
    const fn = batched<string>(handler, { clock, flushEvery: 2, flushInterval: 60_000, concurrency: 2 });
    void fn("a");
    let flushed = false;
    void fn.flush().then(() => (flushed = true));
    await clock.tick();
    void fn("b");
    void fn("c");
    await clock.tick();
    expect([...gates.keys()]).toEqual(["a", "b"]);
    gates.get("a")!();
    await clock.tick();
    expect(flushed).toBe(true);
    gates.get("b")!();
    await fn.close();
  });
});

describe("close({ timeout })", () => {
  it("resolves when it gives up, with the call it gave up on rejected and nothing left waiting", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string>(() => new Promise<void>(() => {}), { clock, flushEvery: 1 });
    const call = fn("stuck");
    call.catch(() => {});
    await clock.tick();
    let closed = false;
    void fn.close({ timeout: 1_000 }).then(() => (closed = true));
    await clock.advance(1_000);
    await expect(call).rejects.toBeInstanceOf(ClosedError);
    expect(closed).toBe(true);
    expect(fn.stats).toMatchObject({ held: 0, inFlightBatches: 0, waiting: 0 });
  });
});

describe("close()", () => {
  it("waits for a caller that waited for room until a synchronous handler freed it, and runs it", async () => {
    const clock = new SimulatedClock();
    const handed: string[][] = [];
    const fn = batched<string, string>(
      (requests) => {
        handed.push(requests.map((r) => r.payload));
        return requests.map((r) => `r:${r.payload}`);
      },
      {
        clock,
        flushEvery: 2,
        maxBuffered: 2,
        flushInterval: 60_000,
      },
    );
    const order: string[] = [];
    const calls = ["a", "b", "c"].map((p) => fn(p).then((value) => void order.push(value)));
    expect(fn.stats.waiting).toBe(1);
    await fn.close().then(() => void order.push("closed"));
    expect(order).toEqual(["r:a", "r:b", "r:c", "closed"]);
    await Promise.all(calls);
    expect(handed).toEqual([["a", "b"], ["c"]]);
  });
});
