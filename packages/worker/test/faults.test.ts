import { TimeoutError } from "@tranche/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fcRuns } from "../../../scripts/fc-runs.js";
import type { TransportOperationError, WorkerOptions } from "../src/index.js";
import { type FaultMode, FaultyTransport, type Operation } from "./support/faulty-transport.js";
import { setup } from "./support/setup.js";

function faultySetup<T>(handler: Parameters<typeof setup<T>>[0], options: WorkerOptions<T> = {}) {
  let faulty!: FaultyTransport<T>;
  const s = setup<T>(handler, { ioTimeout: 5000, ioBackoff: { delay: 100, maxDelay: 1000 }, ...options }, { visibilityTimeout: 30_000 }, (t) => (faulty = new FaultyTransport(t)));
  return { ...s, faulty };
}

/** Each delivery (id and attempt) got at most one kind of outcome call, and each id ended acked or dead-lettered once. */
function expectConserved(faulty: FaultyTransport<unknown>, ids: string[], deadLettered: string[]): void {
  const kinds = new Map<string, Set<string>>();
  for (const call of faulty.calls) {
    if (call.op !== "ack" && call.op !== "retry" && call.op !== "deadLetter") continue;
    call.ids.forEach((id, i) => {
      const key = `${id}#${call.attempts[i]}`;
      const set = kinds.get(key) ?? new Set();
      set.add(call.op);
      kinds.set(key, set);
    });
  }
  for (const [key, set] of kinds) expect([...set], `outcomes of delivery ${key}`).toHaveLength(1);
  const acked = new Set(faulty.done("ack"));
  for (const id of ids) expect(acked.has(id) !== deadLettered.includes(id), `${id} ends acked xor dead-lettered`).toBe(true);
}

describe("Worker under transport faults", () => {
  it("a throwing receive: error events with growing backoff, then work continues", async () => {
    const s = faultySetup<number>(async () => {}, { flushEvery: 10, flushInterval: 0 });
    s.faulty.inject("receive", "throw", 3);
    const ids = await s.transport.sendMany([1, 2, 3]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.events.error.map((e) => [e.operation, e.tries])).toEqual([["receive", 1]]);
    await s.clock.advance(100);
    expect(s.events.error).toHaveLength(2);
    await s.clock.advance(199);
    expect(s.events.error).toHaveLength(2);
    await s.clock.advance(1);
    expect(s.events.error).toHaveLength(3);
    expect(s.calls).toHaveLength(0);
    await s.clock.advance(400);
    expect(s.calls.flatMap((c) => c.ids)).toEqual(ids);
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0 });
    expect(s.worker.stats.transport.errors).toBe(3);
    await s.worker.close();
  });

  it("a hanging receive is abandoned after ioTimeout, and what it returns late goes back to the queue", async () => {
    const s = faultySetup<number>(async () => {}, { flushEvery: 10, flushInterval: 0 });
    s.faulty.inject("receive", "hang", 1);
    await s.worker.start();
    await s.clock.advance(4999);
    expect(s.events.error).toHaveLength(0);
    await s.clock.advance(1);
    expect(s.events.error.map((e) => e.operation)).toEqual(["receive"]);
    const ids = await s.transport.sendMany([1, 2]);
    await s.clock.advance(200);
    expect(s.calls.flatMap((c) => c.ids)).toEqual(ids);
    await s.worker.close();
  });

  it("a receive whose reply is lost: its deliveries come back after the visibility timeout, with attempt 2", async () => {
    const s = faultySetup<number>(async () => {}, { flushEvery: 10, flushInterval: 0, retry: { attempts: 2 } });
    const ids = await s.transport.sendMany([1, 2]);
    s.faulty.inject("receive", "hang-after", 1);
    await s.worker.start();
    await s.clock.advance(29_999);
    expect(s.calls).toHaveLength(0);
    expect(s.events.error.map((e) => e.operation)).toEqual(["receive"]);
    await s.clock.advance(1000);
    expect(s.calls).toEqual([expect.objectContaining({ ids, attempts: [2, 2] })]);
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0 });
    await s.worker.close();
  });

  for (const mode of ["throw", "hang", "hang-after"] as FaultMode[]) {
    it(`ack that fails (${mode}): tried again until it succeeds, each item run once, nothing redelivered`, async () => {
      const s = faultySetup<number>(async () => {}, { flushEvery: 3, flushInterval: 0, lease: 10_000 });
      s.faulty.inject("ack", mode, 2);
      const ids = await s.transport.sendMany([1, 2, 3]);
      await s.worker.start();
      await s.clock.advance(60_000);
      expect(s.calls.map((c) => c.ids)).toEqual([ids]);
      expect(s.events.error.map((e) => e.operation)).toEqual(["ack", "ack"]);
      if (mode !== "throw") expect(TimeoutError.isInstance((s.events.error[0] as TransportOperationError).cause)).toBe(true);
      expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0, deadLettered: 0 });
      expect(s.worker.stats).toMatchObject({ deliveries: 0, transport: { acked: 3 } });
      expect(s.events.settled).toEqual([expect.objectContaining({ acked: 3 })]);
      expectConserved(s.faulty as FaultyTransport<unknown>, ids, []);
      await s.worker.close();
    });
  }

  for (const mode of ["throw", "hang"] as FaultMode[]) {
    it(`retry that fails (${mode}): tried again; redelivered once with attempt 2, never also acked`, async () => {
      const s = faultySetup<number>(async (requests) => {
        for (const r of requests) if (r.attempt === 1) r.retry({ delay: 1000 });
      }, { flushEvery: 2, flushInterval: 0, retry: { attempts: 2 } });
      s.faulty.inject("retry", mode, 2);
      const ids = await s.transport.sendMany([1, 2]);
      await s.worker.start();
      await s.clock.advance(30_000);
      expect(s.events.error.map((e) => e.operation)).toEqual(["retry", "retry"]);
      const runs = s.calls.flatMap((c) => c.ids.map((id, i) => `${id}#${c.attempts[i]}`));
      expect(runs.sort()).toEqual(ids.flatMap((id) => [`${id}#1`, `${id}#2`]).sort());
      expectConserved(s.faulty as FaultyTransport<unknown>, ids, []);
      expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
      await s.worker.close();
    });
  }

  it("deadLetter that throws is tried again; the item is dead-lettered once", async () => {
    const s = faultySetup<number>(async (requests) => requests.forEach((r) => r.fail(new Error("bad"))), { flushEvery: 1, flushInterval: 0 });
    s.faulty.inject("deadLetter", "throw", 3);
    const [id] = await s.transport.sendMany([1]);
    await s.worker.start();
    await s.clock.advance(10_000);
    expect(s.events.error.map((e) => e.operation)).toEqual(["deadLetter", "deadLetter", "deadLetter"]);
    expect((await s.transport.deadLetters()).map((d) => d.id)).toEqual([id]);
    expect(s.calls).toHaveLength(1);
    await s.worker.close();
  });

  it("close({ timeout }) with a hung ack resolves; the item is not acked and comes back later", async () => {
    const s = faultySetup<number>(async () => {}, { flushEvery: 1, flushInterval: 0 });
    s.faulty.inject("ack", "hang", 100);
    const [id] = await s.transport.sendMany([1]);
    await s.worker.start();
    await s.clock.advance(0);
    let closed = false;
    const closing = s.worker.close({ timeout: 1000 }).then(() => (closed = true));
    await s.clock.advance(1000 + 5000);
    await closing;
    expect(closed).toBe(true);
    expect(s.faulty.done("ack")).toEqual([]);
    await s.clock.advance(30_000);
    const again = await s.transport.receive(1, new AbortController().signal);
    expect(again.map((d) => [d.id, d.attempt])).toEqual([[id, 2]]);
  });

  it("random faults on every call: every item ends acked or dead-lettered exactly once, none lost", async () => {
    const ops: Operation[] = ["receive", "ack", "retry", "deadLetter", "extend"];
    // A receive whose reply is lost ("hang-after") leases items nobody holds: they come back after the
    // visibility timeout with attempt + 1 and may run out of attempts. That is at-least-once working as
    // meant, but it changes which items end dead-lettered, so receive faults here are throw and hang.
    const fault = fc
      .record({ op: fc.constantFrom(...ops), mode: fc.constantFrom<FaultMode>("throw", "hang", "hang-after"), count: fc.integer({ min: 1, max: 3 }) })
      .filter((f) => !(f.op === "receive" && f.mode === "hang-after"));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fault, { maxLength: 8 }),
        fc.array(fc.constantFrom("ack", "fail", "retry", "throw"), { minLength: 1, maxLength: 20 }),
        async (faults, outcomes) => {
          const s = faultySetup<number>(async (requests) => {
            return requests.map((r) => {
              const how = outcomes[r.payload] as string;
              if (how === "fail") return new Error("failed");
              if (how === "retry" && r.attempt === 1) r.retry({ delay: 500 });
              if (how === "throw" && r.attempt === 1) throw new Error("thrown");
              return r.payload;
            }) as number[];
          }, { flushEvery: 4, flushInterval: 100, retry: { attempts: 2 }, lease: 20_000, maxBuffered: 8 });
          for (const f of faults) s.faulty.inject(f.op, f.mode, f.count);
          const ids = await s.transport.sendMany(outcomes.map((_, i) => i));
          await s.worker.start();
          for (let i = 0; i < 120 && s.transport.stats.ready + s.transport.stats.delayed + s.transport.stats.leased > 0; i++) await s.clock.advance(2000);
          await Promise.all([s.worker.close(), s.clock.advance(60_000)]);
          expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
          const dead = (await s.transport.deadLetters()).map((d) => d.id);
          expect(new Set(dead).size).toBe(dead.length);
          expectConserved(s.faulty as FaultyTransport<unknown>, ids, dead);
          // "fail" items always end in the dead letters; others only when a throw of their batch found them on their last attempt.
          for (const id of ids.filter((_, i) => outcomes[i] === "fail")) expect(dead).toContain(id);
          for (const letter of (await s.transport.deadLetters())) {
            const expected = outcomes[letter.payload as number] === "fail" ? ["failed", "thrown"] : ["thrown"];
            expect(expected).toContain(letter.reason.message);
          }
        },
      ),
      { numRuns: fcRuns(40) },
    );
  });
});
