// What batched() asks of its Clock: one timer per wake time (none when work is due at once),
// clearTimer only with a handle its own setTimer returned, each at most once — a Clock the
// application supplies need not tolerate anything else — and no read when there is nothing to do.
import { describe, expect, it } from "vitest";
import { batched } from "../src/index.js";
import { SimulatedClock } from "../src/testing.js";

/** A SimulatedClock that counts reads and timers set, and records every clearTimer it should not get. */
class StrictClock extends SimulatedClock {
  reads = 0;
  set = 0;
  readonly badClears: unknown[] = [];
  private readonly issued = new Set<unknown>();
  private readonly cleared = new Set<unknown>();

  override now(): number {
    this.reads++;
    return super.now();
  }

  override setTimer(at: number, fn: () => void): unknown {
    const handle = super.setTimer(at, fn);
    this.set++;
    this.issued.add(handle);
    return handle;
  }

  override clearTimer(handle: unknown): void {
    if (!this.issued.has(handle) || this.cleared.has(handle)) this.badClears.push(handle);
    this.cleared.add(handle);
    super.clearTimer(handle);
  }
}

/** A clock that cannot take a timer back: every timer fires, cleared or not. */
class UncancellableClock extends SimulatedClock {
  override clearTimer(): void {}
}

describe("batched() and its clock's timers", () => {
  it("calls that fill batches at once arm no timer, however fast the handler settles", async () => {
    const clock = new StrictClock();
    const fn = batched<string, string>((requests) => requests.map((r) => r.payload), { clock, flushEvery: 1 });
    await expect(Promise.all([fn("a"), fn("b"), fn("c")])).resolves.toEqual(["a", "b", "c"]);
    await clock.tick();
    expect(clock.set).toBe(0);
    expect(clock.badClears).toEqual([]);
  });

  it("items waiting for their interval share one timer: later calls and drains that leave the wake alone keep it", async () => {
    const clock = new StrictClock();
    const handed: string[][] = [];
    const fn = batched<string>((requests) => void handed.push(requests.map((r) => r.payload)), {
      clock,
      groupBy: (p) => p[0]!,
      flushInterval: 1_000,
      flushEvery: 2,
      concurrency: 2,
    });
    const calls = [fn("a1")];
    await clock.advance(100);
    calls.push(fn("b1"), fn("b2")); // group b's count batch: drained with a1's wake unchanged
    await clock.advance(100);
    calls.push(fn("c1"));
    await clock.advance(100);
    expect(handed).toEqual([["b1", "b2"]]);
    expect(clock.set).toBe(1);
    await clock.advance(700);
    expect(handed).toEqual([["b1", "b2"], ["a1"]]);
    await clock.advance(1_000);
    await Promise.all(calls);
    expect(handed).toEqual([["b1", "b2"], ["a1"], ["c1"]]);
    expect(clock.set).toBe(2);
    expect(clock.badClears).toEqual([]);
  });

  it("a call made while a drain is pending leaves the timer to that drain: none for a wake the drain's batches put off", async () => {
    const clock = new StrictClock();
    const fn = batched<string>(async () => {}, { clock, flushEvery: 2, flushInterval: 0 });
    const flushed = fn.flush(); // a drain is pending from here
    const delayed = fn("later", { delay: 500 });
    const batch = [fn("a"), fn("b")]; // fills the only slot in that drain: nothing to wake for while it runs
    await Promise.all([flushed, ...batch]);
    await clock.advance(500);
    await delayed;
    expect(clock.set).toBe(1); // the delayed item's wake, armed once the batch had settled
    expect(clock.badClears).toEqual([]);
  });

  it("clears only timers it set, each once: through handler timeouts, close({ timeout }), late returns and a second close()", async () => {
    const clock = new StrictClock();
    const late: { resolve: () => void; reject: (error: Error) => void }[] = [];
    const fn = batched<string>(
      (requests) => {
        if (requests[0]!.payload.startsWith("hang")) return new Promise<void>((resolve, reject) => late.push({ resolve, reject }));
      },
      { clock, flushEvery: 1, concurrency: 2, handlerTimeout: 5_000, flushInterval: 100 },
    );
    await fn("quick");
    const hanging = [fn("hang-1"), fn("hang-2")];
    for (const call of hanging) call.catch(() => {});
    await clock.tick();
    await Promise.all([fn.close({ timeout: 1_000 }), clock.advance(1_000)]);
    await Promise.all(hanging.map((call) => expect(call).rejects.toThrow(/still running/)));
    late[0]!.resolve();
    late[1]!.reject(new Error("late"));
    await clock.tick();
    await Promise.all([fn.close({ timeout: 1_000 }), clock.tick()]);
    await fn.close();
    expect(clock.badClears).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("the calls and flush() calls of one tick share one drain", async () => {
    const clock = new StrictClock();
    const handed: string[][] = [];
    const fn = batched<string>((requests) => void handed.push(requests.map((r) => r.payload)), { clock, flushInterval: 60_000 });
    const calls = [fn("a"), fn("b")];
    const flushes = [fn.flush(), fn.flush()];
    expect(clock.reads).toBe(4); // each call and each flush() reads the time once
    await Promise.all([...calls, ...flushes]);
    expect(handed).toEqual([["a", "b"]]);
    // One drain starts the batch; the handler's settle wakes one more to resolve the flushes.
    expect(clock.reads).toBe(6);
  });

  it("a batch that settles with nothing left to do, or an item retried while its batch runs on, wakes no drain", async () => {
    const clock = new StrictClock();
    let release!: () => void;
    const closeGate = () => new Promise<void>((resolve) => (release = resolve));
    let gate = closeGate();
    let readsAfterRetry = 0;
    const fn = batched<string>(
      async (requests) => {
        const first = requests[0]!;
        if (first.payload === "retried" && first.attempt === 1) {
          first.retry({ delay: 1_000 });
          readsAfterRetry = clock.reads;
        }
        await gate;
      },
      { clock, flushEvery: 2, flushInterval: 0, retry: { attempts: 2 } },
    );
    await fn.flush(); // a flush() of nothing, long resolved, leaves no reason to wake
    const retried = fn("retried");
    const kept = fn("kept");
    await clock.tick();
    expect(clock.reads).toBe(readsAfterRetry);
    release();
    await kept;
    await clock.advance(1_000);
    await retried;
    gate = closeGate();
    const last = [fn("c"), fn("d")];
    await clock.tick(); // in flight, nothing held
    const beforeSettle = clock.reads;
    release();
    await Promise.all(last);
    await clock.tick();
    expect(clock.reads).toBe(beforeSettle);
  });

  it("a handler timeout that fires after its batch settled (a clock that cannot cancel it) neither aborts the signal nor touches the items", async () => {
    const clock = new UncancellableClock();
    const signals: AbortSignal[] = [];
    const fn = batched<string, string>(
      (requests, context) => {
        signals.push(context.signal);
        return requests.map((r) => `r:${r.payload}`);
      },
      { clock, flushEvery: 1, handlerTimeout: 100, retry: { attempts: 2 } },
    );
    await expect(fn("a")).resolves.toBe("r:a");
    await clock.advance(1_000);
    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(false);
    expect(fn.stats.items).toMatchObject({ acked: 1, failed: 0, retried: 0 });
  });
});
