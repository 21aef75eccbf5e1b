// A `now` that goes backwards, as a system clock stepped back by NTP reads: the Batcher keeps
// its own time monotonic (the latest `now` it has seen), so items keep their eligibility order
// and no interval batch flushes early or late on that timeline.
import { describe, expect, it } from "vitest";
import { Batcher, batched, type Clock } from "../src/index.js";
import { SimulatedClock } from "../src/testing.js";

describe("a now that goes backwards", () => {
  it("Batcher: an item added after the step counts as eligible at the latest now, behind the items before it", () => {
    const batcher = new Batcher<string>({ flushEvery: 10, flushInterval: 100, concurrency: 1, groupBy: (payload) => payload });
    batcher.add({ id: "a", payload: "a" }, 1000);
    batcher.add({ id: "b", payload: "b" }, 400);
    expect(batcher.nextWake()).toBe(1100);
    expect(batcher.poll(1099)).toEqual([]);
    const [first] = batcher.poll(1100);
    expect(first?.items.map((item) => [item.id, item.enqueuedAt])).toEqual([["a", 1000]]);
    batcher.ack(first!.id, "a", 500);
    const [second] = batcher.poll(500);
    expect(second?.items.map((item) => [item.id, item.enqueuedAt])).toEqual([["b", 1000]]);
  });

  it("batched(): calls run in call order and within flushInterval of the latest time read", async () => {
    const simulated = new SimulatedClock(10_000);
    let offset = 0;
    // Timers are relative, as the system clock's setTimeout is: a step moves `now` alone.
    const stepped: Clock = {
      now: () => simulated.now() + offset,
      setTimer: (at, fn) => simulated.setTimer(simulated.now() + (at - (simulated.now() + offset)), fn),
      clearTimer: (handle) => simulated.clearTimer(handle),
    };
    const ran: { payloads: string[]; at: number }[] = [];
    const fn = batched<string, void>((requests) => void ran.push({ payloads: requests.map((r) => r.payload), at: stepped.now() }), {
      flushEvery: 10,
      flushInterval: 100,
      concurrency: 1,
      groupBy: (payload) => payload,
      clock: stepped,
    });
    const calls = [fn("a")];
    await simulated.advance(50);
    offset = -500;
    calls.push(fn("b"));
    await simulated.advance(600);
    await Promise.all(calls);
    // b, read at 9_550, counts as eligible at 10_000 with a: both flush when the clock reads
    // 10_100 again, a first.
    expect(ran).toEqual([
      { payloads: ["a"], at: 10_100 },
      { payloads: ["b"], at: 10_100 },
    ]);
    await fn.close();
  });
});
