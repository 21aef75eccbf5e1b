import { type BatchHandler, RetriesExhaustedError } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryTransport } from "@tranche/memory";
import { describe, expect, it } from "vitest";
import { DeliveryLimitError, Worker } from "../src/index.js";
import { START, deferred, setup } from "./support/setup.js";

/** Two workers with default options on one MemoryTransport and one clock; each handler call recorded. */
function twoWorkers(options: { visibilityTimeout?: number } = {}) {
  const clock = new SimulatedClock(START);
  const transport = new MemoryTransport<number>({ clock, visibilityTimeout: options.visibilityTimeout ?? 30_000 });
  const runs: { worker: string; id: string; attempt: number }[] = [];
  const handler =
    (worker: string, hold?: Promise<void>): BatchHandler<number, unknown> =>
    async (requests) => {
      for (const r of requests) runs.push({ worker, id: r.id, attempt: r.attempt });
      await hold;
    };
  return { clock, transport, runs, handler };
}

/** `times` consumers take the item and vanish (no ack, no renewal): each delivery ends by lease expiry (1 s). */
async function vanish(transport: MemoryTransport<number>, clock: SimulatedClock, times: number): Promise<number[]> {
  const attempts: number[] = [];
  for (let i = 0; i < times; i++) {
    for (const delivery of await transport.receive(1, new AbortController().signal)) attempts.push(delivery.attempt);
    await clock.advance(1000);
  }
  return attempts;
}

describe("redelivery is not failure (default options)", () => {
  it("items released by close({ drain: false }) all run on the next worker, none dead-lettered", async () => {
    const { clock, transport, runs, handler } = twoWorkers();
    const ids = await transport.sendMany(Array.from({ length: 100 }, (_, i) => i));
    const gate = deferred();
    const a = new Worker(transport, handler("a", gate.promise), { clock, flushEvery: 10, flushInterval: 60_000, maxBuffered: 100 });
    await a.start();
    await clock.advance(0);
    const closing = a.close({ drain: false });
    gate.resolve();
    await clock.advance(0);
    await closing;
    expect(runs).toHaveLength(10);
    const b = new Worker(transport, handler("b"), { clock, flushEvery: 10, flushInterval: 0 });
    await b.start();
    await clock.advance(1000);
    await b.close();
    expect(await transport.deadLetters()).toEqual([]);
    expect(runs.filter((r) => r.worker === "b").map((r) => r.id).sort()).toEqual(ids.slice(10).sort());
    expect(transport.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
  });

  it("a release does not count as a delivery: the next worker sees attempt 1", async () => {
    const { clock, transport, runs, handler } = twoWorkers();
    await transport.sendMany([1, 2, 3]);
    const a = new Worker(transport, handler("a"), { clock, flushEvery: 10, flushInterval: 60_000 });
    await a.start();
    await clock.advance(0);
    await a.close({ drain: false });
    const b = new Worker(transport, handler("b"), { clock, flushEvery: 10, flushInterval: 0 });
    await b.start();
    await clock.advance(0);
    await b.close();
    expect(runs.map((r) => r.attempt)).toEqual([1, 1, 1]);
  });

  it("several lease expiries (crashed workers) never dead-letter an item that never ran; it runs once at last", async () => {
    const { clock, transport, runs, handler } = twoWorkers({ visibilityTimeout: 1000 });
    const [id] = await transport.sendMany([7]);
    expect(await vanish(transport, clock, 3)).toEqual([1, 2, 3]);
    const b = new Worker(transport, handler("b"), { clock, flushEvery: 1, flushInterval: 0 });
    await b.start();
    await clock.advance(0);
    await b.close();
    expect(await transport.deadLetters()).toEqual([]);
    expect(runs).toEqual([{ worker: "b", id, attempt: 4 }]);
  });

  it("retry.attempts counts handler runs: a redelivered item still gets its retries", async () => {
    // attempts 2: one run and one retry. The item arrives on its third delivery, never having run.
    const s = setup<number>(
      async (requests) => {
        for (const r of requests) r.retry({ delay: 100 });
      },
      { flushEvery: 1, flushInterval: 0, retry: { attempts: 2 }, lease: 60_000 },
      { visibilityTimeout: 1000 },
    );
    const [id] = await s.transport.sendMany([1]);
    await vanish(s.transport, s.clock, 2);
    await s.worker.start();
    await s.clock.advance(1000);
    await s.worker.close();
    expect(s.calls.map((c) => c.attempts[0])).toEqual([3, 4]);
    expect(s.events.retry).toEqual([expect.objectContaining({ id, attempt: 3 })]);
    const [dead] = (await s.transport.deadLetters());
    expect(dead).toMatchObject({ id, attempt: 4, retries: 1 });
    expect((dead?.reason.name === "RetriesExhaustedError")).toBe(true);
    expect(s.events.deadLetter).toEqual([expect.objectContaining({ id, attempt: 4, runs: 2 })]);
  });

  it("an item whose retries already used retry.attempts is dead-lettered without running", async () => {
    // A worker allowing 3 tries retried it twice; one allowing 2 receives it.
    const clock = new SimulatedClock(START);
    const transport = new MemoryTransport<number>({ clock });
    const [id] = await transport.sendMany([1]);
    for (let i = 0; i < 2; i++) {
      const [delivery] = await transport.receive(1, new AbortController().signal);
      await transport.retry(delivery!, clock.now());
    }
    const runs: number[] = [];
    const worker = new Worker(transport, async (requests) => void runs.push(requests.length), { clock, flushEvery: 1, flushInterval: 0, retry: { attempts: 2 } });
    await worker.start();
    await clock.advance(0);
    await worker.close();
    expect(runs).toEqual([]);
    expect(await transport.deadLetters()).toEqual([expect.objectContaining({ id, attempt: 3, retries: 2 })]);
    expect((await transport.deadLetters())[0]?.reason.name).toBe("RetriesExhaustedError");
  });

  it("maxDeliveries dead-letters an item delivered more often than that, saying how often and how many runs", async () => {
    const s = setup<number>(async () => {}, { flushEvery: 1, flushInterval: 0, maxDeliveries: 3 }, { visibilityTimeout: 1000 });
    const [id] = await s.transport.sendMany([1]);
    await vanish(s.transport, s.clock, 3);
    await s.worker.start();
    await s.clock.advance(0);
    await s.worker.close();
    expect(s.calls).toEqual([]);
    const [dead] = (await s.transport.deadLetters());
    expect(dead).toMatchObject({ id, attempt: 4 });
    expect((dead?.reason.name === "DeliveryLimitError")).toBe(true);
    expect(dead?.reason.message).toContain("delivered 4 times, 0 handler runs ended with a retry; maxDeliveries is 3");
    expect(s.events.deadLetter).toEqual([expect.objectContaining({ id, attempt: 4, runs: 0 })]);
  });

  it("without retries from the transport, every delivery counts as a try, but an item still runs before it is dead-lettered", async () => {
    const s = setup<number>(
      async (requests) => {
        for (const r of requests) r.retry({ delay: 10 });
      },
      { flushEvery: 1, flushInterval: 0, retry: { attempts: 2 } },
      { visibilityTimeout: 1000 },
      (transport) => {
        const receive = transport.receive.bind(transport);
        return Object.assign(Object.create(transport) as MemoryTransport<number>, {
          receive: async (max: number, signal: AbortSignal) => (await receive(max, signal)).map(({ retries: _retries, ...rest }) => rest),
        });
      },
    );
    await s.transport.sendMany([1]);
    await vanish(s.transport, s.clock, 2);
    await s.worker.start();
    await s.clock.advance(100);
    await s.worker.close();
    // Third delivery, counted as the third try: it runs once, and its retry() finds no attempts left.
    expect(s.calls.map((c) => c.attempts)).toEqual([[3]]);
    expect((await s.transport.deadLetters())[0]?.reason.name).toBe("RetriesExhaustedError");
  });

  it("the handler sees the retries the transport carried, apart from the deliveries", async () => {
    const seen: [number, number | undefined][] = [];
    const s = setup<number>(
      async (requests) => {
        for (const r of requests) {
          seen.push([r.attempt, r.retries]);
          if (r.retries === 0) r.retry({ delay: 0 });
        }
      },
      { flushEvery: 1, flushInterval: 0, retry: { attempts: 2 } },
      { visibilityTimeout: 1000 },
    );
    await s.transport.sendMany([1]);
    await vanish(s.transport, s.clock, 1);
    await s.worker.start();
    await s.clock.advance(100);
    await s.worker.close();
    expect(seen).toEqual([
      [2, 0],
      [3, 1],
    ]);
  });
});
