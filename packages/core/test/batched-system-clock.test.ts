// batched() on the system clock, whose timers are real: it reads the clock once per burst of calls
// in one tick (at most 64 calls to a read), any other clock on every call (a call's time is what
// its request's `enqueuedAt` tells the handler), and close() without a timeout arms none.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { BatchHandler, Clock } from "../src/index.js";

type BatchedModule = typeof import("../src/batched.js");

/** A handler that records the `enqueuedAt` of every request it is handed, by payload. */
function recorder() {
  const enqueuedAt = new Map<number, number>();
  const handler: BatchHandler<number, void> = (requests) => {
    for (const request of requests) enqueuedAt.set(request.payload, request.enqueuedAt);
  };
  return { enqueuedAt, handler };
}

/** Lets queued microtasks run: the end of the tick the calls were made in. */
const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("batched() on the system clock", () => {
  let batched: BatchedModule["batched"];

  beforeEach(async () => {
    // The system clock binds Date.now when its module loads: load it under fake time.
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"], now: 1_000 });
    vi.resetModules();
    ({ batched } = await import("../src/batched.js"));
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("gives the calls of one tick the time of one read", async () => {
    const { enqueuedAt, handler } = recorder();
    const fn = batched(handler, { flushInterval: 60_000 });
    void fn(1);
    vi.setSystemTime(1_005);
    void fn(2);
    await fn.flush();
    expect(enqueuedAt.get(1)).toBe(1_000);
    expect(enqueuedAt.get(2)).toBe(1_000);
  });

  it("reads the clock again after 64 calls of one tick", async () => {
    const { enqueuedAt, handler } = recorder();
    const fn = batched(handler, { flushInterval: 60_000, flushEvery: 1_000 });
    for (let i = 1; i <= 64; i++) void fn(i);
    vi.setSystemTime(1_005);
    void fn(65);
    await fn.flush();
    expect(enqueuedAt.get(64)).toBe(1_000);
    expect(enqueuedAt.get(65)).toBe(1_005);
  });

  it("reads the clock again in every later tick", async () => {
    const { enqueuedAt, handler } = recorder();
    const fn = batched(handler, { flushInterval: 60_000 });
    for (const [payload, time] of [
      [1, 1_000],
      [2, 2_000],
      [3, 3_000],
    ] as const) {
      vi.setSystemTime(time);
      void fn(payload);
      await nextTick();
    }
    await fn.flush();
    expect([...enqueuedAt]).toEqual([
      [1, 1_000],
      [2, 2_000],
      [3, 3_000],
    ]);
  });

  it("close() without a timeout waits for a handler however long it runs", async () => {
    let release!: () => void;
    const running = new Promise<void>((resolve) => (release = resolve));
    const fn = batched<number, string>(
      async (requests) => {
        await running;
        return requests.map(() => "done");
      },
      { flushEvery: 1 },
    );
    const call = fn(1);
    const closed = fn.close();
    await vi.advanceTimersByTimeAsync(3_600_000);
    release();
    await expect(call).resolves.toBe("done");
    await closed;
  });
});

describe("batched() on any other clock", () => {
  it("reads the clock on every call, even within one tick", async () => {
    const { batched } = await import("../src/batched.js");
    let time = 1_000;
    const clock: Clock = { now: () => time, setTimer: () => undefined, clearTimer: () => {} };
    const { enqueuedAt, handler } = recorder();
    const fn = batched(handler, { clock, flushInterval: 60_000 });
    void fn(1);
    time = 1_005;
    void fn(2);
    await fn.flush();
    expect(enqueuedAt.get(1)).toBe(1_000);
    expect(enqueuedAt.get(2)).toBe(1_005);
  });
});
