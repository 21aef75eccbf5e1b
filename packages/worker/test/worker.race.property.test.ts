import type { Transport } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryTransport } from "@tranche/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import { Worker } from "../src/index.js";
import { FaultyTransport } from "./support/faulty-transport.js";
import { START } from "./support/setup.js";

const RUNS = fcRuns(60);

type How = "ack" | "error" | "fail" | "retry" | "throw";

/**
 * Every transport call's answer is handed back when the scheduler says so, in any order.
 * The answer is scheduled once the transport has it: a receive waiting on the clock is not a task yet.
 */
function scheduled<T>(s: fc.Scheduler, inner: Transport<T>): Transport<T> {
  const later = <V>(label: string, call: () => Promise<V>): Promise<V> => call().then((value) => s.schedule(Promise.resolve(value), label));
  return {
    name: "scheduled",
    capabilities: inner.capabilities,
    send: (p, o) => inner.send(p, o),
    sendMany: (p, o) => inner.sendMany(p, o),
    receive: (max, signal) => later("receive", () => inner.receive(max, signal)),
    ack: (d) => later(`ack ${d.map((x) => x.id)}`, () => inner.ack(d)),
    retry: (d, n) => later(`retry ${d.id}`, () => inner.retry(d, n)),
    deadLetter: (d, r) => later(`deadLetter ${d.id}`, () => inner.deadLetter(d, r)),
    extend: (d, u) => later("extend", () => (inner.extend as NonNullable<Transport<T>["extend"]>).call(inner, d, u)),
    release: (d) => later("release", () => inner.release(d)),
    close: () => inner.close(),
  };
}

describe("Worker under arbitrary interleavings (fc.scheduler)", () => {
  it("transport calls and handlers resolving in any order: every item ends acked or dead-lettered exactly once", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.constantFrom<How>("ack", "ack", "error", "fail", "retry", "throw"), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 6 }),
        async (s, hows, flushEvery, concurrency, extra) => {
          const clock = new SimulatedClock(START);
          const memory = new MemoryTransport<number>({ clock, wait: 500 });
          const faulty = new FaultyTransport(memory);
          const seen = new Map<string, number>();
          const worker = new Worker<number, number>(
            scheduled(s, faulty),
            async (requests) => {
              for (const r of requests) seen.set(`${r.id}#${r.attempt}`, (seen.get(`${r.id}#${r.attempt}`) ?? 0) + 1);
              await s.schedule(Promise.resolve(), `handler ${requests.map((r) => r.payload)}`);
              const results: (number | Error)[] = [];
              for (const r of requests) {
                const how = hows[r.payload] as How;
                if (how === "throw" && r.attempt === 1) throw new Error("thrown");
                if (how === "fail") r.fail(new Error("failed"));
                else if (how === "retry" && r.attempt === 1) r.retry({ delay: 300 });
                results.push(how === "error" ? new Error("element") : r.payload);
              }
              return results;
            },
            { clock, flushEvery, concurrency, maxBuffered: flushEvery + extra, flushInterval: 100, retry: { attempts: 2 } },
          );
          const ids = await memory.sendMany(hows.map((_, i) => i));
          await worker.start();
          for (let step = 0; step < 400; step++) {
            if (s.count() > 0) await s.waitOne();
            else if (memory.stats.ready + memory.stats.delayed + memory.stats.leased > 0 || worker.stats.deliveries > 0) await clock.advance(100);
            else break;
          }
          const closing = worker.close();
          for (let step = 0; step < 400 && (s.count() > 0 || worker.stats.deliveries > 0); step++) {
            if (s.count() > 0) await s.waitOne();
            else await clock.advance(100);
          }
          expect(worker.stats, s.report().map((t) => t.label).join(", ")).toMatchObject({ deliveries: 0 });
          await closing;
          expect(memory.stats).toMatchObject({ ready: 0, delayed: 0, leased: 0 });
          const acked = faulty.done("ack");
          const dead = faulty.done("deadLetter");
          for (const id of ids) {
            const endings = acked.filter((x) => x === id).length + dead.filter((x) => x === id).length;
            expect(endings, `${id} ends once`).toBe(1);
          }
          expect((await memory.deadLetters()).map((d) => d.id).sort()).toEqual([...dead].sort());
          for (const id of ids) expect(seen.has(`${id}#1`), `${id} was handled`).toBe(true);
          // A delivery is handed to the handler once, and a retried one comes back as attempt 2.
          for (const [key, count] of seen) expect(count, key).toBe(1);
          for (const call of faulty.calls.filter((c) => c.op === "retry")) {
            expect(seen.has(`${call.ids[0]}#2`), `${call.ids[0]} retried then run again`).toBe(true);
          }
          expect(worker.stats).toMatchObject({ deliveries: 0, held: 0, inFlight: 0 });
        },
      ),
      { numRuns: RUNS },
    );
  });
});
