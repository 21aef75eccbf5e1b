import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { BatchHandler, Delivery } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryResultStore, MemoryTransport } from "@tranche/memory";
import { describe, expect, it } from "vitest";
import { Worker } from "../src/index.js";
import { FaultyTransport } from "./support/faulty-transport.js";

/**
 * A long-running worker keeps constant memory: what outlives an item (a dead letter, a stored
 * outcome, an event a listener keeps) holds plain data, never the batch the item ran in, and the
 * embedded stores are bounded by default. The heap is read after a full GC; `--expose-gc` is
 * turned on at run time, so the file runs in the normal suite.
 */

/** `global.gc`, exposed at run time when node was started without `--expose-gc`. */
function exposedGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === "function") return exposed;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

const gc = exposedGc();

async function heapAfterGc(): Promise<number> {
  // Twice, with a turn of the event loop between: weak references and finalizers let go on the first.
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  return process.memoryUsage().heapUsed;
}

const START = 1_700_000_000_000;
const HOUR = 3_600_000;
/** Items sent per simulated hour. */
const PER_HOUR = 300;
/** One item in this many fails (a dead letter). */
const FAIL_EVERY = 200;
/** Characters of each payload: a retained batch of 100 costs over 100 KB. */
const PAYLOAD_CHARS = 1000;
/**
 * Heap growth per item allowed after warm-up, generous for a loaded machine. What an item leaves
 * for good is its share of the dead letters kept (payload, bytes and reason of one item in
 * `FAIL_EVERY`: a few tens of bytes per item); a dead letter whose reason keeps its batch, or an
 * outcome kept forever, costs over a kilobyte per item.
 */
const BOUND = 250;

interface Payload {
  readonly n: number;
  readonly text: string;
}

/**
 * A handler as users write them: results by `map`, an `Error` element for an item that cannot
 * be done. An `Error` made inside `map` captures the call site whose receiver is `requests`: the
 * whole batch, kept alive by the error until its stack is formatted.
 */
const handler: BatchHandler<Payload, { n: number; echo: string }> = async (requests) =>
  requests.map((r) => (r.payload.n % FAIL_EVERY === FAIL_EVERY - 1 ? new Error(`item ${r.payload.n} cannot be done`) : { n: r.payload.n, echo: r.payload.text.slice(0, 500) }));

/**
 * Keeps only a copy of each dead letter's reason, never reading the worker's `Error`: whatever
 * holds that `Error` after the call is the worker's own doing.
 */
class ReasonlessTransport<T> extends MemoryTransport<T> {
  override deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    return super.deadLetter(delivery, new Error(reason.message));
  }
}

/** Least-squares slope of `ys` over `xs`. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return num / den;
}

/**
 * Runs a worker with a default `MemoryResultStore` and `MemoryTransport` on a simulated clock,
 * `PER_HOUR` items an hour, for `warmHours` (the store fills with a day of outcomes), then
 * `hours` more with the heap after GC taken every `every` hours; resolves with the heap growth
 * per item over the second part (the slope through those checkpoints).
 */
async function growthPerItem(options: { warmHours: number; hours: number; every: number }): Promise<{ perItem: number; deadLetters: number; stored: number; errors: number }> {
  const clock = new SimulatedClock(START);
  // A receive waits less than the worker's ioTimeout (30 s).
  const transport = new MemoryTransport<Payload>({ clock, wait: 20_000 });
  const results = new MemoryResultStore<{ n: number; echo: string }>({ clock });
  const worker = new Worker(transport, handler, { clock, results, flushEvery: 100, flushInterval: 0 });
  // A listener that keeps every event it gets, as a dashboard or a test would.
  const kept: unknown[] = [];
  let errors = 0;
  worker.on("deadLetter", (event) => kept.push(event));
  worker.on("settled", (event) => kept.push(event));
  worker.on("error", (error) => {
    errors++;
    kept.push(error);
  });
  let n = 0;
  const hour = async (): Promise<void> => {
    const payloads = Array.from({ length: PER_HOUR }, () => ({ n, text: `${n++}:`.padEnd(PAYLOAD_CHARS, "x") }));
    await transport.sendMany(payloads);
    await clock.advance(HOUR);
  };
  await worker.start();
  for (let h = 0; h < options.warmHours; h++) await hour();
  const items: number[] = [];
  const heap: number[] = [];
  for (let h = 0; h <= options.hours; h++) {
    if (h % options.every === 0) {
      items.push(n);
      heap.push(await heapAfterGc());
    }
    if (h < options.hours) await hour();
  }
  expect(transport.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
  const deadLetters = transport.stats.deadLettered;
  await Promise.all([worker.close(), clock.advance(HOUR)]);
  return { perItem: slope(items, heap), deadLetters, stored: results.size, errors };
}

describe("a long-running worker's memory", () => {
  it("stays flat with dead letters and results: dead letters hold no batch, outcomes expire after a day", async () => {
    const { perItem, deadLetters, stored, errors } = await growthPerItem({ warmHours: 26, hours: 24, every: 3 });
    console.log(`heap growth after warm-up: ${perItem.toFixed(1)} bytes per item (bound ${BOUND}); ${deadLetters} dead letters, ${stored} outcomes stored`);
    // Every failing item was dead-lettered, the store keeps one day of outcomes (not all), and no call failed.
    expect(perItem).toBeLessThan(BOUND);
    expect(deadLetters).toBe((50 * PER_HOUR) / FAIL_EVERY);
    expect(stored).toBeLessThanOrEqual(25 * PER_HOUR);
    expect(errors).toBe(0);
  });

  it("lets go of every batch: no payload handed to the handler outlives its item, whatever a listener keeps", async () => {
    const clock = new SimulatedClock(START);
    const memory = new ReasonlessTransport<Payload>({ clock, wait: 20_000 });
    // Two acks of each round fail once: the worker's "error" events carry the transport's error
    // as `cause`, and both errors' call sites hold the batch until their stacks are formatted.
    const transport = new FaultyTransport(memory);
    const results = new MemoryResultStore<unknown>({ clock });
    const payloads: WeakRef<Payload>[] = [];
    const worker = new Worker<Payload, unknown>(
      transport,
      async (requests, context) => {
        for (const r of requests) payloads.push(new WeakRef(r.payload));
        // A throw made while walking the batch (its receiver is `requests`): the batch runs again.
        requests.forEach((r) => {
          if (r.payload.n % 1000 === 500 && r.attempt === 1) throw new Error(`batch ${context.batchId} failed`);
        });
        for (const r of requests) if (r.payload.n % 1000 === 1 && r.attempt === 1) r.retry({ delay: 1000 });
        return handler(requests, context);
      },
      { clock, results, flushEvery: 100, flushInterval: 0, retry: { attempts: 3, backoff: { type: "fixed", delay: 1000 } } },
    );
    const kept: unknown[] = [];
    for (const event of ["flush", "settled", "retry", "deadLetter", "error"] as const) worker.on(event, (value: unknown) => kept.push(value));
    await worker.start();
    for (let i = 0; i < 3000; i += 300) {
      transport.inject("ack", "throw", 2);
      await transport.sendMany(Array.from({ length: 300 }, (_, j) => ({ n: i + j, text: `${i + j}:`.padEnd(PAYLOAD_CHARS, "x") })));
      await clock.advance(60_000);
    }
    await Promise.all([worker.close(), clock.advance(60_000)]);
    expect(memory.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0, deadLettered: 3000 / FAIL_EVERY });
    expect(kept.filter((e) => e instanceof Error).length).toBeGreaterThan(0);
    await heapAfterGc();
    const alive = payloads.filter((ref) => ref.deref() !== undefined).length;
    expect({ handed: payloads.length, alive }).toEqual({ handed: payloads.length, alive: 0 });
  });

  it("MemoryTransport keeps a dead letter's reason as plain data: the batch its Error was made in can go", async () => {
    const transport = new MemoryTransport<Payload>({ clock: new SimulatedClock(START) });
    await transport.sendMany(Array.from({ length: 200 }, (_, n) => ({ n, text: `${n}:`.padEnd(PAYLOAD_CHARS, "x") })));
    // In a function of its own, so that nothing of this frame holds the batch once it returns.
    const settle = async (): Promise<WeakRef<Delivery<Payload>[]>> => {
      const deliveries = await transport.receive(200, new AbortController().signal);
      // Errors made inside `map` over the batch, their stacks never read.
      const reasons = deliveries.map((d) => (d.payload.n % 50 === 0 ? new Error(`item ${d.payload.n} cannot be done`) : undefined));
      await Promise.all(deliveries.map((d, i) => (reasons[i] === undefined ? transport.ack([d]) : transport.deadLetter(d, reasons[i] as Error))));
      return new WeakRef(deliveries);
    };
    const batch = await settle();
    await heapAfterGc();
    expect((await transport.deadLetters()).map((letter) => letter.reason.message)).toEqual([0, 50, 100, 150].map((n) => `item ${n} cannot be done`));
    expect(batch.deref()).toBeUndefined();
    await transport.close();
  });
});
