import { BatchResultError, DecodeError, RetriesExhaustedError, SettledError, TimeoutError } from "@tranche/core";
import { describe, expect, it } from "vitest";
import { START, deferred, setup } from "./support/setup.js";

describe("Worker batching on a MemoryTransport", () => {
  it("flushes a full batch at once (count) and the rest after flushInterval (interval)", async () => {
    const s = setup<number, number>(async (requests) => requests.map((r) => r.payload * 2), { flushEvery: 3, flushInterval: 1000 });
    const ids = await s.transport.sendMany([1, 2, 3, 4]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.calls).toEqual([{ at: START, ids: ids.slice(0, 3), attempts: [1, 1, 1], payloads: [1, 2, 3] }]);
    await s.clock.advance(999);
    expect(s.calls).toHaveLength(1);
    await s.clock.advance(1);
    expect(s.calls[1]).toEqual({ at: START + 1000, ids: [ids[3]], attempts: [1], payloads: [4] });
    expect(s.events.flush).toEqual([
      { batchId: "1", reason: "count", size: 3, group: undefined, waitedMs: 0 },
      { batchId: "2", reason: "interval", size: 1, group: undefined, waitedMs: 1000 },
    ]);
    expect(s.events.settled).toEqual([
      { batchId: "1", acked: 3, failed: 0, retried: 0, released: 0, durationMs: 0 },
      { batchId: "2", acked: 1, failed: 0, retried: 0, released: 0, durationMs: 0 },
    ]);
    expect(s.transport.stats).toEqual({ ready: 0, delayed: 0, leased: 0, deadLettered: 0, deadLettersDropped: 0 });
    expect(s.worker.stats).toMatchObject({ deliveries: 0, held: 0, inFlight: 0, transport: { received: 4, acked: 4, errors: 0, pending: 0 } });
    expect(s.events.idle).toHaveLength(1);
    await s.worker.close();
  });

  it("keeps groups apart and hands one batch per group", async () => {
    const s = setup<{ tenant: string; n: number }>(async () => {}, { flushEvery: 10, flushInterval: 100, groupBy: (p) => p.tenant, concurrency: 2 });
    await s.transport.sendMany([
      { tenant: "a", n: 1 },
      { tenant: "b", n: 2 },
      { tenant: "a", n: 3 },
    ]);
    await s.worker.start();
    await s.clock.advance(100);
    expect(s.calls.map((c) => c.payloads.map((p) => `${p.tenant}${p.n}`))).toEqual([["a1", "a3"], ["b2"]]);
    expect(s.events.flush.map((f) => f.group)).toEqual(["a", "b"]);
    await s.worker.close();
  });
});

describe("Worker outcome mapping", () => {
  it("ack: the transport forgets the item and the result store has its value", async () => {
    const s = setup<string, string>(async (requests) => {
      requests[0]!.ack("explicit");
      return ["ignored", "returned"];
    }, { flushEvery: 2 });
    const ids = await s.transport.sendMany(["a", "b"]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(await s.results.get(ids[0]!)).toEqual({ ok: true, value: "explicit" });
    expect(await s.results.get(ids[1]!)).toEqual({ ok: true, value: "returned" });
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0 });
    await s.worker.close();
  });

  it("an Error element dead-letters that item only", async () => {
    const s = setup<number, number>(async (requests) => requests.map((r) => (r.payload === 2 ? new RangeError("two is bad") : r.payload)), {
      flushEvery: 3,
    });
    const ids = await s.transport.sendMany([1, 2, 3]);
    await s.worker.start();
    await s.clock.advance(0);
    const dead = (await s.transport.deadLetters());
    expect(dead.map((d) => [d.id, d.payload, d.reason.message])).toEqual([[ids[1], 2, "two is bad"]]);
    expect(await s.results.get(ids[1]!)).toEqual({ ok: false, error: { name: "RangeError", message: "two is bad" } });
    expect(await s.results.get(ids[2]!)).toEqual({ ok: true, value: 3 });
    expect(s.events.settled).toEqual([expect.objectContaining({ acked: 2, failed: 1, retried: 0 })]);
    expect(s.events.deadLetter).toEqual([expect.objectContaining({ id: ids[1], attempt: 1 })]);
    await s.worker.close();
  });

  it("fail() dead-letters with the reason, even with attempts left", async () => {
    const s = setup<string>(async (requests) => {
      requests[0]!.fail(new Error("poison"));
    }, { flushEvery: 1, retry: { attempts: 5 } });
    const [id] = await s.transport.sendMany(["x"]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(await s.transport.deadLetters()).toEqual([expect.objectContaining({ id, attempt: 1, reason: expect.objectContaining({ name: "Error", message: "poison" }) })]);
    expect(s.calls).toHaveLength(1);
    await s.worker.close();
  });

  it("retry({ delay }) goes back to the transport: redelivered later with the same id and attempt + 1", async () => {
    const s = setup<string>(async (requests) => {
      for (const r of requests) if (r.attempt === 1) r.retry({ delay: 5000 });
    }, { flushEvery: 1, flushInterval: 0, retry: { attempts: 3 } });
    const [id] = await s.transport.sendMany(["x"]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.events.retry).toEqual([{ id, attempt: 1, notBefore: START + 5000 }]);
    // Out of the worker: the transport holds it, delayed.
    expect(s.worker.stats).toMatchObject({ deliveries: 0, held: 0, inFlight: 0, items: { removed: 1, acked: 0 } });
    expect(s.transport.stats).toMatchObject({ delayed: 1 });
    await s.clock.advance(4999);
    expect(s.calls).toHaveLength(1);
    await s.clock.advance(1);
    expect(s.calls.map((c) => [c.at - START, c.ids, c.attempts])).toEqual([
      [0, [id], [1]],
      [5000, [id], [2]],
    ]);
    expect(s.transport.stats).toMatchObject({ ready: 0, delayed: 0, leased: 0, deadLettered: 0 });
    await s.worker.close();
  });

  it("a throw retries per retry.backoff, then dead-letters with the thrown error after the last attempt", async () => {
    const s = setup<string>(async () => {
      throw new Error("flaky");
    }, { flushEvery: 10, flushInterval: 0, retry: { attempts: 3, backoff: { type: "exponential", delay: 1000 } } });
    const [id] = await s.transport.sendMany(["x"]);
    await s.worker.start();
    await s.clock.advance(10_000);
    expect(s.calls.map((c) => [c.at - START, c.attempts[0]])).toEqual([
      [0, 1],
      [1000, 2],
      [3000, 3],
    ]);
    expect(s.events.retry.map((r) => r.notBefore - START)).toEqual([1000, 3000]);
    expect(await s.transport.deadLetters()).toEqual([expect.objectContaining({ id, attempt: 3, reason: expect.objectContaining({ name: "Error", message: "flaky" }) })]);
    await s.worker.close();
  });

  it("retry() past attempts dead-letters with RetriesExhaustedError", async () => {
    const s = setup<string>(async (requests) => requests.forEach((r) => r.retry()), { flushEvery: 1, flushInterval: 0, retry: { attempts: 2 } });
    await s.transport.sendMany(["x"]);
    await s.worker.start();
    await s.clock.advance(100);
    expect(s.calls).toHaveLength(2);
    const [dead] = (await s.transport.deadLetters());
    expect((dead?.reason.name === "RetriesExhaustedError")).toBe(true);
    await s.worker.close();
  });

  it("a wrong return value dead-letters the unsettled items with BatchResultError", async () => {
    const s = setup<number, number>((async (requests: { ack(v: number): void }[]) => {
      requests[0]!.ack(1);
      return [1];
    }) as never, { flushEvery: 3 });
    const ids = await s.transport.sendMany([1, 2, 3]);
    await s.worker.start();
    await s.clock.advance(0);
    const dead = (await s.transport.deadLetters());
    expect(dead.map((d) => d.id)).toEqual(ids.slice(1));
    expect(dead.every((d) => (d.reason.name === "BatchResultError"))).toBe(true);
    expect(await s.results.get(ids[0]!)).toEqual({ ok: true, value: 1 });
    await s.worker.close();
  });

  it("an undecodable message is dead-lettered with its DecodeError and never reaches the handler", async () => {
    const s = setup<number>(async () => {}, { flushEvery: 2, flushInterval: 0 });
    await s.transport.send(1);
    const bad = await s.transport.sendRaw("{not json");
    await s.transport.send(2);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.calls.flatMap((c) => c.payloads)).toEqual([1, 2]);
    const [dead] = (await s.transport.deadLetters());
    expect(dead).toMatchObject({ id: bad, raw: "{not json" });
    expect((dead?.reason.name === "DecodeError")).toBe(true);
    expect(await s.results.get(bad)).toEqual({ ok: false, error: { name: "DecodeError", message: expect.stringContaining("cannot decode") } });
    await s.worker.close();
  });

  it("settling a request twice throws SettledError to the handler", async () => {
    const thrown: unknown[] = [];
    const s = setup<string>(async (requests) => {
      requests[0]!.ack();
      try {
        requests[0]!.retry({ delay: 10 });
      } catch (error) {
        thrown.push(error);
      }
    }, { flushEvery: 1, flushInterval: 0, retry: { attempts: 3 } });
    await s.transport.sendMany(["x"]);
    await s.worker.start();
    await s.clock.advance(100);
    expect(thrown).toHaveLength(1);
    expect(SettledError.isInstance(thrown[0])).toBe(true);
    expect(s.calls).toHaveLength(1);
    expect(s.events.retry).toEqual([]);
    await s.worker.close();
  });

  it("handlerTimeout aborts context.signal and retries the unsettled items", async () => {
    const signals: AbortSignal[] = [];
    const s = setup<string>(async (requests, context) => {
      signals.push(context.signal);
      requests[0]!.ack();
      if (requests[1]!.attempt === 1) await new Promise(() => {});
    }, { flushEvery: 2, flushInterval: 0, handlerTimeout: 5000, retry: { attempts: 2 } });
    const ids = await s.transport.sendMany(["a", "b"]);
    await s.worker.start();
    await s.clock.advance(4999);
    expect(signals[0]?.aborted).toBe(false);
    await s.clock.advance(1);
    expect(signals[0]?.aborted).toBe(true);
    expect((signals[0]?.reason.name === "TimeoutError")).toBe(true);
    expect(s.events.settled[0]).toMatchObject({ acked: 1, retried: 1 });
    await s.clock.advance(0);
    expect(s.calls.map((c) => [c.ids, c.attempts])).toEqual([
      [ids, [1, 1]],
      [[ids[1]], [2]],
    ]);
    await s.worker.close();
  });

  it("results round trip: a producer awaits results.wait(await transport.send(p))", async () => {
    const s = setup<number, number>(async (requests) => requests.map((r) => r.payload + 1), { flushEvery: 100, flushInterval: 50 });
    await s.worker.start();
    const outcome = s.transport.send(41).then((id) => s.results.wait(id));
    await s.clock.advance(50);
    expect(await outcome).toEqual({ ok: true, value: 42 });
    await s.worker.close();
  });

  it("retry lower bound end to end: retry({ delay: 10_000 }) under flushInterval 10 s runs again 10–20 s later, same id", async () => {
    const s = setup<string>(async (requests) => {
      for (const r of requests) if (r.payload === "seed" && r.attempt === 1) r.retry({ delay: 10_000 });
    }, { flushEvery: 100, flushInterval: 10_000, retry: { attempts: 2 } });
    await s.worker.start();
    const id = await s.transport.send("seed");
    // Traffic keeps arriving so the buffer is never empty.
    for (let t = 0; t < 40; t++) {
      await s.transport.send(`noise ${t}`);
      await s.clock.advance(1000);
    }
    const runs = s.calls.filter((c) => c.ids.includes(id));
    expect(runs).toHaveLength(2);
    const [first, second] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(second.attempts[second.ids.indexOf(id)]).toBe(2);
    expect(second.at - first.at).toBeGreaterThanOrEqual(10_000);
    expect(second.at - first.at).toBeLessThanOrEqual(20_000);
    await Promise.all([s.worker.close(), s.clock.advance(20_000)]);
  });

  it("dedupeKey: deliveries merged into a buffered one follow its outcome on the transport", async () => {
    const s = setup<{ key: string; v: number }, number>(async (requests) => requests.map((r) => r.payload.v), {
      flushEvery: 10,
      flushInterval: 100,
      dedupeKey: (p) => p.key,
      coalesce: "last",
    });
    const ids = await s.transport.sendMany([
      { key: "a", v: 1 },
      { key: "b", v: 2 },
      { key: "a", v: 3 },
    ]);
    await s.worker.start();
    await s.clock.advance(100);
    expect(s.calls.map((c) => c.payloads)).toEqual([[{ key: "a", v: 3 }, { key: "b", v: 2 }]]);
    expect(await s.results.get(ids[0]!)).toEqual({ ok: true, value: 3 });
    expect(await s.results.get(ids[2]!)).toEqual({ ok: true, value: 3 });
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0 });
    expect(s.worker.stats.transport.acked).toBe(3);
    await s.worker.close();
  });

  it("deferred handler results still settle every item once", async () => {
    const gate = deferred();
    const s = setup<number>(async () => {
      await gate.promise;
    }, { flushEvery: 2, flushInterval: 0, concurrency: 2 });
    await s.transport.sendMany([1, 2, 3, 4]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.worker.stats).toMatchObject({ inFlightBatches: 2, inFlight: 4, deliveries: 4 });
    gate.resolve();
    await s.clock.advance(0);
    expect(s.worker.stats).toMatchObject({ inFlightBatches: 0, deliveries: 0, transport: { acked: 4 } });
    await s.worker.close();
  });
});
