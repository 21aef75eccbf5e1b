import type { Delivery, Transport } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryTransport } from "@tranche/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import { Worker } from "../src/index.js";
import { START } from "./support/setup.js";

const RUNS = fcRuns(60);

describe("bounded prefetch (property)", () => {
  it("receive is never asked for more than the room left, and the worker never holds more than maxBuffered", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          flushEvery: fc.integer({ min: 1, max: 8 }),
          extra: fc.integer({ min: 0, max: 20 }),
          items: fc.integer({ min: 0, max: 60 }),
          delays: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 6 }),
          concurrency: fc.integer({ min: 1, max: 3 }),
          flushInterval: fc.constantFrom(0, 100, 1000),
          maxReceive: fc.constantFrom(1, 3, 10, Infinity),
        }),
        async ({ flushEvery, extra, items, delays, concurrency, flushInterval, maxReceive }) => {
          const maxBuffered = flushEvery + extra;
          const clock = new SimulatedClock(START);
          const inner = new MemoryTransport<number>({ clock });
          const asked: { max: number; room: number }[] = [];
          let worker!: Worker<number>;
          const check = () => {
            expect(worker.stats.deliveries).toBeLessThanOrEqual(maxBuffered);
            // The queue's own count of what is out on lease: the worker's holding seen from outside.
            expect(inner.stats.leased).toBeLessThanOrEqual(maxBuffered);
          };
          const transport: Transport<number> = {
            name: "probe",
            capabilities: { ...inner.capabilities, maxReceive },
            send: (p, o) => inner.send(p, o),
            sendMany: (p, o) => inner.sendMany(p, o),
            receive: async (max, signal) => {
              asked.push({ max, room: maxBuffered - worker.stats.deliveries });
              check();
              const got: Delivery<number>[] = await inner.receive(max, signal);
              return got;
            },
            ack: async (d) => {
              check();
              await inner.ack(d);
            },
            retry: (d, n) => inner.retry(d, n),
            deadLetter: (d, r) => inner.deadLetter(d, r),
            extend: (d, u) => inner.extend(d, u),
            release: (d) => inner.release(d),
            close: () => inner.close(),
          };
          let n = 0;
          let handled = 0;
          worker = new Worker<number>(
            transport,
            async (requests) => {
              check();
              const delay = delays[n++ % delays.length] as number;
              await new Promise<void>((resolve) => clock.setTimer(clock.now() + delay, resolve));
              handled += requests.length;
            },
            { clock, flushEvery, flushInterval, maxBuffered, concurrency },
          );
          await inner.sendMany(Array.from({ length: items }, (_, i) => i));
          await worker.start();
          // Up to 60 one-item batches of up to 3 s each, one at a time: 180 s of work at most.
          for (let step = 0; step < 2000 && handled < items; step++) {
            await clock.advance(250);
            check();
          }
          expect(handled).toBe(items);
          for (const { max, room } of asked) {
            expect(max).toBeLessThanOrEqual(room);
            expect(max).toBeLessThanOrEqual(maxReceive);
            expect(max).toBeGreaterThanOrEqual(1);
          }
          await worker.close();
          expect(inner.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("a deep queue stays in the queue: with maxBuffered 10 and a stuck handler, only 10 are taken", async () => {
    const clock = new SimulatedClock(START);
    const transport = new MemoryTransport<number>({ clock });
    const worker = new Worker<number>(transport, () => new Promise(() => {}), { clock, flushEvery: 5, maxBuffered: 10, concurrency: 1 });
    await transport.sendMany(Array.from({ length: 10_000 }, (_, i) => i));
    await worker.start();
    await clock.advance(60_000);
    expect(transport.stats).toMatchObject({ leased: 10, ready: 9990 });
    expect(worker.stats).toMatchObject({ deliveries: 10, inFlight: 5, held: 5 });
    await Promise.all([worker.close({ drain: false, timeout: 0 }), clock.advance(0)]);
    expect(transport.stats).toMatchObject({ leased: 0, ready: 10_000 });
  });
});
