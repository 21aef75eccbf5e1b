import { type BatchHandler, type ResultStore, TransportError } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryResultStore, MemoryTransport } from "@tranche/memory";
import { describe, expect, it } from "vitest";
import { type TransportOperationError, Worker, type WorkerOptions } from "../src/index.js";
import { FaultyTransport } from "./support/faulty-transport.js";
import { START, setup } from "./support/setup.js";

// SPEC §10: failed calls are classified; retryable ones are tried again within ioMaxRetryTime,
// waiting outside the I/O slots; non-retryable ones take their operation's fallback at once.

function faultySetup<T, R = unknown>(handler: Parameters<typeof setup<T, R>>[0], options: WorkerOptions<T> = {}) {
  let faulty!: FaultyTransport<T>;
  const s = setup<T, R>(handler, { ioTimeout: 5000, ioBackoff: { delay: 100, maxDelay: 1000 }, ...options }, { visibilityTimeout: 30_000 }, (t) => (faulty = new FaultyTransport(t)));
  return { ...s, faulty };
}

/** A worker whose result store is `wrap` of a MemoryResultStore. */
function storeSetup<R>(wrap: (store: ResultStore<R>) => ResultStore<R>, handler: BatchHandler<number, R>, options: WorkerOptions<number>) {
  const clock = new SimulatedClock(START);
  const transport = new MemoryTransport<number>({ clock });
  const results = new MemoryResultStore<R>({ clock });
  const worker = new Worker(transport, handler, { clock, results: wrap(results), ioBackoff: { delay: 100, maxDelay: 1000 }, ...options });
  const errors: TransportOperationError[] = [];
  const flushes: number[] = [];
  worker.on("error", (error) => errors.push(error));
  worker.on("flush", () => flushes.push(clock.now()));
  return { clock, transport, results, worker, errors, flushes };
}

const errorsOf = (events: TransportOperationError[], operation: string) => events.filter((e) => e.operation === operation);

describe("fallbacks of calls that cannot succeed", () => {
  it("a result the store refuses for good is stored as a failure saying so, and the whole batch is acked", async () => {
    // MemoryResultStore encodes outcomes as a networked store does: it refuses a BigInt for good.
    const s = storeSetup<number | bigint>((store) => store, async (requests) => requests.map((r) => (r.payload === 2 ? BigInt(r.payload) : r.payload)), {
      flushEvery: 3,
      flushInterval: 0,
    });
    const [one, two, three] = await s.transport.sendMany([1, 2, 3]);
    await s.worker.start();
    await s.clock.advance(60_000);
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0 });
    expect(s.worker.stats.transport.acked).toBe(3);
    expect(await s.results.get(one!)).toEqual({ ok: true, value: 1 });
    expect(await s.results.get(three!)).toEqual({ ok: true, value: 3 });
    expect(await s.results.get(two!)).toEqual({
      ok: false,
      error: { name: "UnstorableResultError", message: expect.stringContaining("the result could not be stored: [tranche/memory] cannot encode the outcome") },
    });
    expect(s.errors.map((e) => [e.operation, e.retryable, e.retrying])).toEqual([["results.set", false, false]]);
    await s.worker.close();
  });

  it("dead letters the transport refuses for good are left to the broker and never hold the I/O slots: other items are acked", async () => {
    const poison = new Set<number>([0, 1, 2, 3, 4, 5, 6, 7]);
    const s = faultySetup<number>(async (requests) => requests.map((r) => (poison.has(r.payload) ? new Error("poison") : r.payload)), {
      flushEvery: 4,
      flushInterval: 0,
      concurrency: 4,
      ioConcurrency: 8,
    });
    s.faulty.injectWhen("deadLetter", () => "refuse");
    await s.transport.sendMany(Array.from({ length: 40 }, (_, i) => i));
    await s.worker.start();
    await s.clock.advance(5000);
    expect(s.worker.stats.transport.acked).toBe(32);
    expect(s.worker.stats.deliveries).toBe(0);
    // Each refused once, never tried again; the broker still holds them (leased, then handed out again).
    expect(errorsOf(s.events.error, "deadLetter").map((e) => [e.retryable, e.retrying])).toEqual(Array(8).fill([false, false]));
    expect(s.transport.stats).toMatchObject({ leased: 8, deadLettered: 0 });
    await s.worker.close();
  });

  it("a call failing with an unknown error is retried outside the I/O slots, and given up after ioMaxRetryTime", async () => {
    const s = faultySetup<number>(async (requests) => requests.map((r) => (r.payload < 8 ? new Error("poison") : r.payload)), {
      flushEvery: 4,
      flushInterval: 0,
      concurrency: 4,
      ioConcurrency: 8,
      ioMaxRetryTime: 10_000,
    });
    s.faulty.injectWhen("deadLetter", () => "fail");
    await s.transport.sendMany(Array.from({ length: 40 }, (_, i) => i));
    await s.worker.start();
    await s.clock.advance(500);
    // Eight dead letters keep failing, yet every other item is acked meanwhile.
    expect(s.worker.stats.transport.acked).toBe(32);
    expect(s.worker.stats.deliveries).toBe(8);
    await s.clock.advance(15_000);
    const failures = errorsOf(s.events.error, "deadLetter");
    expect(failures.every((e) => e.retryable)).toBe(true);
    expect(failures.filter((e) => !e.retrying)).toHaveLength(8);
    const count = failures.length;
    expect(s.worker.stats.deliveries).toBe(0);
    // Nothing more until the broker hands them out again (visibility timeout 30 s).
    await s.clock.advance(10_000);
    expect(errorsOf(s.events.error, "deadLetter")).toHaveLength(count);
    await s.worker.close();
  });

  it("a retry the transport refuses is run again by this worker, never before its notBefore, and counts as a try", async () => {
    const s = faultySetup<number>(
      async (requests) => {
        for (const r of requests) {
          if (r.attempt === 1) r.retry({ delay: 5000 });
          else r.ack();
        }
      },
      { flushEvery: 1, flushInterval: 0, retry: { attempts: 2 }, lease: 2000 },
    );
    s.faulty.injectWhen("retry", () => "refuse");
    const [id] = await s.transport.sendMany([1]);
    await s.worker.start();
    await s.clock.advance(4999);
    expect(s.calls.map((c) => c.attempts)).toEqual([[1]]);
    await s.clock.advance(1);
    expect(s.calls.map((c) => [c.at - s.calls[0]!.at, c.attempts])).toEqual([
      [0, [1]],
      [5000, [2]],
    ]);
    expect(errorsOf(s.events.error, "retry").map((e) => e.retrying)).toEqual([false]);
    expect(s.worker.stats.transport).toMatchObject({ acked: 1, retried: 0 });
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
    expect(s.faulty.done("ack")).toEqual([id]);
    await s.worker.close();
  });

  it("a refused retry kept here is not released early by close({ drain: false }): the next worker runs it after its notBefore", async () => {
    const s = faultySetup<number>(
      async (requests) => {
        for (const r of requests) {
          if (r.attempt === 1) r.retry({ delay: 5000 });
          else r.ack();
        }
      },
      { flushEvery: 1, flushInterval: 0, retry: { attempts: 3 } },
    );
    s.faulty.injectWhen("retry", () => "refuse");
    await s.transport.sendMany([1]);
    await s.worker.start();
    await s.clock.advance(100);
    const closing = s.worker.close({ drain: false });
    await s.clock.advance(0);
    const runs: number[] = [];
    const next = new Worker(s.transport, async () => void runs.push(s.clock.now()), { clock: s.clock, flushEvery: 1, flushInterval: 0 });
    await next.start();
    await s.clock.advance(4899);
    expect(runs).toEqual([]);
    await s.clock.advance(200);
    await closing;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toBeGreaterThanOrEqual(s.calls[0]!.at + 5000);
    await next.close();
  });

  it("a retry the broker applied but whose reply was lost, then refused on repeat, is not run again here", async () => {
    const s = faultySetup<number>(
      async (requests) => {
        for (const r of requests) {
          if (r.attempt === 1) r.retry({ delay: 300 });
          else r.ack();
        }
      },
      { flushEvery: 1, flushInterval: 0, retry: { attempts: 3 }, ioTimeout: 1000 },
    );
    s.faulty.inject("retry", "hang-after", 1);
    s.faulty.inject("retry", "refuse", 1);
    const [id] = await s.transport.sendMany([1]);
    await s.worker.start();
    await s.clock.advance(10_000);
    // Run 1, then the broker's redelivery (run 2, acked); the stale delivery is released, a no-op.
    expect(s.calls.map((c) => c.attempts)).toEqual([[1], [2]]);
    expect(s.faulty.done("ack")).toEqual([id]);
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
    await s.worker.close();
  });

  it("a retry refused on its last try fails the item into the dead letters", async () => {
    const s = faultySetup<number>(async (requests) => requests.forEach((r) => r.retry({ delay: 1000 })), { flushEvery: 1, flushInterval: 0, retry: { attempts: 2 } });
    s.faulty.injectWhen("retry", () => "refuse");
    const [id] = await s.transport.sendMany([1]);
    await s.worker.start();
    await s.clock.advance(5000);
    expect(s.calls.map((c) => c.attempts)).toEqual([[1], [2]]);
    expect(await s.transport.deadLetters()).toEqual([expect.objectContaining({ id })]);
    await s.worker.close();
  });

  it("an ack whose reply is lost is repeated; the item runs once", async () => {
    const s = faultySetup<number>(async () => {}, { flushEvery: 2, flushInterval: 0 });
    s.faulty.inject("ack", "throw-after", 3);
    const ids = await s.transport.sendMany([1, 2]);
    await s.worker.start();
    await s.clock.advance(60_000);
    expect(s.calls.map((c) => c.ids)).toEqual([ids]);
    expect(errorsOf(s.events.error, "ack").map((e) => e.retrying)).toEqual([true, true, true]);
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0 });
    await s.worker.close();
  });

  it("results the store cannot take for a passing fault past ioMaxRetryTime are not acked: the item runs again and its result is stored then", async () => {
    let down = true;
    const flaky = (real: ResultStore<number>): ResultStore<number> => ({
      set: (id, outcome, ttl) => (down ? Promise.reject(new TransportError("[test] store down", { retryable: true })) : real.set(id, outcome, ttl)),
      get: (id) => real.get(id),
      wait: (id, options) => real.wait(id, options),
    });
    const s = storeSetup<number>(flaky, async (requests) => requests.map((r) => r.payload * 10), { flushEvery: 1, flushInterval: 0, ioMaxRetryTime: 5000 });
    const [id] = await s.transport.sendMany([4]);
    await s.worker.start();
    await s.clock.advance(6000);
    expect(s.worker.stats.transport.acked).toBe(0);
    expect(s.worker.stats.deliveries).toBe(0);
    expect(s.errors.at(-1)).toMatchObject({ operation: "results.set", retryable: true, retrying: false });
    down = false;
    await s.clock.advance(30_000);
    expect(s.flushes).toHaveLength(2);
    expect(await s.results.get(id!)).toEqual({ ok: true, value: 40 });
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0 });
    await s.worker.close();
  });
});
