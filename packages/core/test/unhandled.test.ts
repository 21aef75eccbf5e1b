// No rejection escapes unhandled: whatever the handler does, the only rejected promises
// tranche creates are the callers' own, and callers here always catch theirs.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BatchResultError, BufferFullError, ClosedError, OversizeError, RetriesExhaustedError, SettledError, TimeoutError, batched } from "../src/index.js";
import { SimulatedClock } from "../src/testing.js";

let reported: unknown[] = [];
let saved: NodeJS.UnhandledRejectionListener[] = [];
const listener: NodeJS.UnhandledRejectionListener = (reason) => {
  reported.push(reason);
};

// Our listener alone hears unhandled rejections during each test, so the control test
// below can make one on purpose without the runner failing the run for it.
beforeEach(() => {
  reported = [];
  saved = process.listeners("unhandledRejection");
  process.removeAllListeners("unhandledRejection");
  process.on("unhandledRejection", listener);
});

afterEach(() => {
  process.removeListener("unhandledRejection", listener);
  for (const l of saved) process.on("unhandledRejection", l);
});

/** Node reports unhandled rejections after the microtask queue drains: give it a few turns. */
async function reportsSoFar(): Promise<unknown[]> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  return reported;
}

/** A caller that catches its own promise at once, as the contract expects. */
function caught<R>(promise: Promise<R>): Promise<{ value?: R; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

const hang = () => new Promise<never>(() => {});

describe("no unhandled rejections", () => {
  it("the detector works: a rejection nobody handles is reported", async () => {
    const marker = new Error("deliberately unhandled");
    void Promise.reject(marker);
    expect(await reportsSoFar()).toEqual([marker]);
  });

  it("handler throws, sync and async, with and without retries", async () => {
    const clock = new SimulatedClock();
    const outcomes = [];
    for (const attempts of [1, 3]) {
      for (const sync of [true, false]) {
        const fn = batched<number>(
          sync
            ? () => {
                throw new Error("sync boom");
              }
            : async () => {
                throw new Error("async boom");
              },
          { clock, flushInterval: 0, retry: { attempts, backoff: { type: "fixed", delay: 10 } } },
        );
        outcomes.push(caught(fn(1)), caught(fn(2)));
        await clock.advance(100);
      }
    }
    const settled = await Promise.all(outcomes);
    expect(settled.every((o) => o.error instanceof Error)).toBe(true);
    expect(await reportsSoFar()).toEqual([]);
  });

  it("handler timeouts, with late returns, late rejections and late settles that throw SettledError", async () => {
    const clock = new SimulatedClock();
    const release = { fn: () => {} };
    const released = new Promise<void>((resolve) => (release.fn = resolve));
    const lateErrors: unknown[] = [];
    const fn = batched<string, string>(
      async (requests) => {
        await released;
        const r = requests[0]!;
        if (r.payload === "late-settle") {
          try {
            r.ack("too late");
          } catch (error) {
            lateErrors.push(error);
            throw error; // the SettledError escapes the timed-out handler
          }
        }
        if (r.payload === "late-reject") throw new Error("rejects after its timeout");
        return ["late return"];
      },
      { clock, flushEvery: 1, flushInterval: 0, concurrency: Infinity, handlerTimeout: 50 },
    );
    const outcomes = ["late-settle", "late-reject", "late-return"].map((p) => caught(fn(p)));
    await clock.advance(50);
    release.fn();
    await clock.tick();
    const settled = await Promise.all(outcomes);
    expect(settled.map((o) => o.error instanceof TimeoutError)).toEqual([true, true, true]);
    expect(lateErrors).toHaveLength(1);
    expect(lateErrors[0]).toBeInstanceOf(SettledError);
    expect(await reportsSoFar()).toEqual([]);
  });

  it("a timed-out item retried and re-run while the old handler settles late", async () => {
    const clock = new SimulatedClock();
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const stale: unknown[] = [];
    const fn = batched<string, string>(
      async (requests) => {
        const r = requests[0]!;
        if (r.attempt === 1) {
          await released;
          try {
            r.ack("stale");
          } catch (error) {
            stale.push(error);
            throw error; // out of the stale handler
          }
        }
        return ["fresh"];
      },
      { clock, flushInterval: 0, handlerTimeout: 10, retry: { attempts: 2 } },
    );
    const outcome = caught(fn("x"));
    await clock.advance(100);
    release();
    await clock.tick();
    expect(await outcome).toEqual({ value: "fresh" });
    expect(stale).toHaveLength(1);
    expect(stale[0]).toBeInstanceOf(SettledError);
    expect(await reportsSoFar()).toEqual([]);
  });

  it("close({ timeout }) abandoning hanging handlers, delayed items and waiting callers", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string>(hang, { clock, flushEvery: 1, maxBuffered: 2, flushInterval: 0, concurrency: 1 });
    const outcomes = [caught(fn("in flight")), caught(fn("held", { delay: 1000 })), caught(fn("waiting")), caught(fn("waiting too"))];
    await clock.tick();
    await Promise.all([fn.close({ timeout: 100 }), clock.advance(100)]);
    const settled = await Promise.all(outcomes);
    expect(settled.map((o) => o.error instanceof ClosedError)).toEqual([true, true, true, true]);
    expect(await reportsSoFar()).toEqual([]);
  });

  it("flush() over failing batches, and every other way a call can fail", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string, string>(
      async (requests) => {
        if (requests.some((r) => r.payload === "wrong length")) return [];
        if (requests.some((r) => r.payload === "retry")) {
          for (const r of requests) r.retry();
          return;
        }
        throw new Error("boom");
      },
      { clock, flushInterval: 60_000, maxBatchBytes: 20, sizeOf: (p) => p.length, maxBuffered: 100, groupBy: (p) => p },
    );
    const outcomes: Promise<{ value?: unknown; error?: unknown }>[] = [
      caught(fn("wrong length")),
      caught(fn("retry")),
      caught(fn("throws")),
      caught(fn("x".repeat(21))),
    ];
    await fn.flush();
    const rejectFn = batched<string>(() => {}, { clock, flushEvery: 1, maxBuffered: 1, onFull: "reject" });
    outcomes.push(caught(rejectFn("a", { delay: 10 })), caught(rejectFn("b")), caught(rejectFn("c", { delay: -1 })));
    const closing = fn.close();
    outcomes.push(caught(fn("after close")));
    await Promise.all([closing, rejectFn.close(), clock.advance(10)]);
    const settled = await Promise.all(outcomes);
    expect(settled[0]!.error).toBeInstanceOf(BatchResultError);
    expect(settled[1]!.error).toBeInstanceOf(RetriesExhaustedError);
    expect((settled[2]!.error as Error).message).toBe("boom");
    expect(settled[3]!.error).toBeInstanceOf(OversizeError);
    expect(settled[4]).toEqual({ value: undefined });
    expect(settled[5]!.error).toBeInstanceOf(BufferFullError);
    expect(settled[6]!.error).toBeInstanceOf(TypeError);
    expect(settled[7]!.error).toBeInstanceOf(ClosedError);
    expect(await reportsSoFar()).toEqual([]);
  });

  it("merged callers of a failing item", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string>(
      () => {
        throw new Error("boom");
      },
      { clock, flushInterval: 10, dedupeKey: (p) => p },
    );
    const outcomes = [caught(fn("k")), caught(fn("k")), caught(fn("k"))];
    await clock.advance(10);
    const settled = await Promise.all(outcomes);
    expect(settled.every((o) => (o.error as Error).message === "boom")).toBe(true);
    expect(await reportsSoFar()).toEqual([]);
  });
});
