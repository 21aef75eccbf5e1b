// What batched() tells the handler about each request and the caller about each call, beyond the
// outcomes batched.test.ts covers: the count of earlier runs, object results, the waiting count,
// flush() after a retry, defaults with no options at all, and the error of a call made after close().
import { describe, expect, it } from "vitest";
import { ClosedError, batched, type BatchRequest } from "../src/index.js";
import { SimulatedClock } from "../src/testing.js";

describe("batched() requests", () => {
  it("count the runs that ended in a retry: retries is attempt − 1 on every try", async () => {
    const clock = new SimulatedClock();
    const seen: { attempt: number; retries: number | undefined }[] = [];
    const fn = batched<string, string>(
      (requests: BatchRequest<string, string>[]) => {
        for (const request of requests) {
          seen.push({ attempt: request.attempt, retries: request.retries });
          if (request.attempt < 3) request.retry({ delay: 10 });
          else request.ack("done");
        }
      },
      { clock, flushEvery: 1, retry: { attempts: 3 } },
    );
    const call = fn("x");
    await clock.advance(100);
    await expect(call).resolves.toBe("done");
    expect(seen).toEqual([
      { attempt: 1, retries: 0 },
      { attempt: 2, retries: 1 },
      { attempt: 3, retries: 2 },
    ]);
  });

  it("an object result settles only a request the handler left unsettled, and its then getter sees the item counted", async () => {
    const clock = new SimulatedClock();
    let ackedWhenRead: number | undefined;
    const result = {
      get then() {
        ackedWhenRead = fn.stats.items.acked;
        return undefined;
      },
    };
    const fn = batched<string, object>(
      (requests) => {
        requests[0]!.ack({ early: true });
        return [{ late: true }, result];
      },
      { clock, flushEvery: 2 },
    );
    const [first, second] = [fn("a"), fn("b")];
    await expect(first).resolves.toEqual({ early: true });
    await expect(second).resolves.toBe(result);
    expect(ackedWhenRead).toBe(2);
  });

  it("a function result's then getter, too, sees its item counted", async () => {
    const clock = new SimulatedClock();
    let ackedWhenRead: number | undefined;
    const result = Object.defineProperty(() => "f", "then", {
      get() {
        ackedWhenRead = fn.stats.items.acked;
        return undefined;
      },
    });
    const fn = batched<string, () => string>(() => [result], { clock, flushEvery: 1 });
    await expect(fn("a")).resolves.toBe(result);
    expect(ackedWhenRead).toBe(1);
  });

  it("a flush() resolves once its batch settled by retrying, before the retry runs", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string>(
      async (requests) => {
        await Promise.resolve();
        for (const request of requests) if (request.attempt === 1) request.retry({ delay: 1_000 });
      },
      { clock, flushInterval: 60_000, retry: { attempts: 2 } },
    );
    const call = fn("a");
    let flushed = false;
    void fn.flush().then(() => (flushed = true));
    await clock.tick();
    expect(flushed).toBe(true);
    await clock.advance(61_000);
    await call;
  });
});

describe("batched() calls", () => {
  it("count as waiting while they wait for room, and no longer once they got in", async () => {
    const clock = new SimulatedClock();
    // Only b's handler returns: a and every later call stay in flight and hold their room.
    const fn = batched<string>((requests) => (requests[0]!.payload === "b" ? undefined : new Promise<void>(() => {})), {
      clock,
      flushEvery: 1,
      maxBuffered: 2,
      concurrency: Infinity,
    });
    void fn("a", { delay: 1_000 });
    void fn("b", { delay: 2_000 });
    for (const p of ["c", "d", "e"]) void fn(p);
    await clock.tick();
    expect(fn.stats).toMatchObject({ held: 2, waiting: 3 });
    await clock.advance(2_000);
    expect(fn.stats).toMatchObject({ inFlight: 2, waiting: 2 });
  });

  it("that fill a batch hand it over on a microtask, with no timer", async () => {
    const clock = new SimulatedClock();
    const handed: string[][] = [];
    const fn = batched<string>((requests) => void handed.push(requests.map((r) => r.payload)), { clock, flushEvery: 2, flushInterval: 60_000 });
    void fn("a");
    void fn("b");
    // A macrotask later, with the simulated clock never moved: only microtasks have run.
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(handed).toEqual([["a", "b"]]);
  });

  it("that waited for room and merge by dedupeKey on admission settle with the item they merged into", async () => {
    const clock = new SimulatedClock();
    const fn = batched<string, string>((requests) => requests.map((r) => `r:${r.payload}`), {
      clock,
      flushEvery: 1,
      maxBuffered: 1,
      dedupeKey: (p) => p,
    });
    const first = fn("a", { delay: 1_000 });
    const waiting = [fn("x"), fn("x")];
    await clock.tick();
    expect(fn.stats.waiting).toBe(2);
    await clock.advance(1_000);
    await expect(first).resolves.toBe("r:a");
    await expect(Promise.all(waiting)).resolves.toEqual(["r:x", "r:x"]);
    expect(fn.stats.items).toMatchObject({ accepted: 2, coalesced: 1 });
  });

  it("run with every option at its default when none is given", async () => {
    const fn = batched<number, number>((requests) => requests.map((r) => r.payload * 2));
    const call = fn(21);
    await fn.flush();
    await expect(call).resolves.toBe(42);
    await fn.close();
  });

  it("made after close() reject with a ClosedError that says the function is closed", async () => {
    const fn = batched<string>(() => {}, { clock: new SimulatedClock() });
    await fn.close();
    const call = fn("late");
    await expect(call).rejects.toBeInstanceOf(ClosedError);
    await expect(call).rejects.toThrow("[tranche/core] batched function is closed");
  });
});
