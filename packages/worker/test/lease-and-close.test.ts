import { ClosedError } from "@tranche/core";
import { MemoryTransport } from "@tranche/memory";
import { describe, expect, it } from "vitest";
import { Worker } from "../src/index.js";
import { FaultyTransport } from "./support/faulty-transport.js";
import { START, deferred, setup } from "./support/setup.js";

describe("Worker leases", () => {
  it("extends the lease of a slow batch: no redelivery past the visibility timeout", async () => {
    const gate = deferred();
    const s = setup<string>(async () => {
      await gate.promise;
    }, { flushEvery: 2, flushInterval: 0, lease: 10_000 }, { visibilityTimeout: 10_000 });
    const ids = await s.transport.sendMany(["a", "b"]);
    await s.worker.start();
    // A competing consumer polls throughout; it must never get the items.
    const rival = new Worker<string>(s.transport, async () => {}, { clock: s.clock, flushEvery: 1, flushInterval: 0 });
    const rivalSeen: string[] = [];
    rival.on("flush", () => rivalSeen.push("flush"));
    await rival.start();
    await s.clock.advance(60_000);
    expect(rivalSeen).toEqual([]);
    expect(s.transport.stats).toMatchObject({ leased: 2, ready: 0 });
    expect(s.worker.stats.transport.extended).toBeGreaterThanOrEqual(2 * 5);
    gate.resolve();
    await s.clock.advance(0);
    expect(s.calls).toEqual([expect.objectContaining({ ids, attempts: [1, 1] })]);
    expect(s.transport.stats).toMatchObject({ leased: 0, ready: 0, deadLettered: 0 });
    await Promise.all([rival.close(), s.worker.close(), s.clock.advance(1000)]);
  });

  it("extends buffered (not yet flushed) deliveries too", async () => {
    const s = setup<string>(async () => {}, { flushEvery: 10, flushInterval: 50_000, lease: 5000 }, { visibilityTimeout: 5000 });
    const ids = await s.transport.sendMany(["a", "b"]);
    await s.worker.start();
    await s.clock.advance(50_000);
    expect(s.calls).toEqual([expect.objectContaining({ ids, attempts: [1, 1], at: START + 50_000 })]);
    expect(s.transport.stats).toMatchObject({ leased: 0, ready: 0 });
    await s.worker.close();
  });

  it("an abandoned worker's items go to another worker after the lease", async () => {
    let faulty!: FaultyTransport<string>;
    const s = setup<string>(
      () => new Promise(() => {}),
      { flushEvery: 10, flushInterval: 0, retry: { attempts: 3 } },
      { visibilityTimeout: 30_000 },
      (transport) => (faulty = new FaultyTransport(transport)),
    );
    const ids = await s.transport.sendMany(["a", "b", "c"]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.worker.stats.inFlight).toBe(3);
    // The first worker's process stops: its handler never returns and no call of it reaches the queue again.
    faulty.freeze();
    const taken: { ids: string[]; attempts: number[]; at: number }[] = [];
    const second = new Worker<string>(s.transport, async (requests) => {
      taken.push({ ids: requests.map((r) => r.id), attempts: requests.map((r) => r.attempt), at: s.clock.now() });
    }, { clock: s.clock, flushEvery: 10, flushInterval: 0, retry: { attempts: 3 } });
    await second.start();
    await s.clock.advance(29_999);
    expect(taken).toEqual([]);
    await s.clock.advance(1);
    expect(taken).toHaveLength(1);
    expect(taken[0]?.ids.sort()).toEqual([...ids].sort());
    expect(taken[0]?.attempts).toEqual([2, 2, 2]);
    expect(taken[0]?.at).toBe(START + 30_000);
    expect(s.transport.stats).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
    await second.close();
  });
});

describe("Worker.close", () => {
  it("drain (default): stops receiving, runs what is held, delayed deliveries included, then resolves", async () => {
    const s = setup<number>(async () => {}, { flushEvery: 100, flushInterval: 60_000 });
    await s.transport.sendMany([1, 2, 3]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.worker.stats.held).toBe(3);
    let closed = false;
    const closing = s.worker.close().then(() => (closed = true));
    await s.clock.advance(0);
    expect(closed).toBe(true);
    await closing;
    expect(s.events.flush).toEqual([expect.objectContaining({ reason: "close", size: 3 })]);
    await s.transport.send(4);
    await s.clock.advance(10_000);
    expect(s.calls).toHaveLength(1);
    expect(s.transport.stats).toMatchObject({ ready: 1, leased: 0 });
  });

  it("drain: false releases what is held back to the transport and settles only in-flight batches", async () => {
    const gate = deferred();
    const s = setup<number>(async () => {
      await gate.promise;
    }, { flushEvery: 2, flushInterval: 60_000, maxBuffered: 10 });
    await s.transport.sendMany([1, 2, 3, 4, 5]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.worker.stats).toMatchObject({ inFlight: 2, held: 3 });
    let closed = false;
    const closing = s.worker.close({ drain: false }).then(() => (closed = true));
    await s.clock.advance(0);
    expect(s.transport.stats).toMatchObject({ ready: 3, leased: 2 });
    expect(closed).toBe(false);
    gate.resolve();
    await s.clock.advance(0);
    await closing;
    expect(s.calls.map((c) => c.payloads)).toEqual([[1, 2]]);
    expect(s.transport.stats).toMatchObject({ ready: 3, leased: 0 });
    expect(s.worker.stats.transport).toMatchObject({ acked: 2, released: 3 });
  });

  it("timeout: aborts in-flight handlers, releases their unsettled deliveries (not acked), and resolves", async () => {
    let signal: AbortSignal | undefined;
    const s = setup<number>(async (requests, context) => {
      signal = context.signal;
      requests[0]!.ack();
      await new Promise(() => {});
    }, { flushEvery: 3, flushInterval: 0 });
    const ids = await s.transport.sendMany([1, 2, 3]);
    await s.worker.start();
    await s.clock.advance(0);
    let closed = false;
    const closing = s.worker.close({ timeout: 5000 }).then(() => (closed = true));
    await s.clock.advance(4999);
    expect(closed).toBe(false);
    await s.clock.advance(1);
    await closing;
    expect(ClosedError.isInstance(signal?.reason)).toBe(true);
    expect(s.events.settled).toEqual([expect.objectContaining({ acked: 1, released: 2 })]);
    // The acked item is gone; the other two are back in the queue for the next worker.
    expect(s.transport.stats).toMatchObject({ ready: 2, leased: 0 });
    const again = await s.transport.receive(10, new AbortController().signal);
    expect(again.map((d) => d.id).sort()).toEqual(ids.slice(1).sort());
  });

  it("timeout: calls hanging on a broker that stopped answering end within ioTimeout after it, however many wait for an I/O slot", async () => {
    let faulty!: FaultyTransport<number>;
    const s = setup<number>(
      async () => {},
      { flushEvery: 1, flushInterval: 0, ioConcurrency: 1, ioTimeout: 1000, ioBackoff: { delay: 100, maxDelay: 100 } },
      { visibilityTimeout: 30_000 },
      (transport) => (faulty = new FaultyTransport(transport)),
    );
    faulty.injectWhen("ack", () => "hang");
    await s.transport.sendMany([1, 2, 3, 4, 5, 6, 7, 8]);
    await s.worker.start();
    await s.clock.advance(0);
    expect(s.calls).toHaveLength(8);
    let closed = false;
    const closing = s.worker.close({ timeout: 2000 }).then(() => (closed = true));
    await s.clock.advance(2999);
    expect(closed).toBe(false);
    // Each ack still waiting gets one last try at once, all within the same ioTimeout.
    await s.clock.advance(1);
    await closing;
    expect(s.worker.stats).toMatchObject({ deliveries: 0, transport: { acked: 0, pending: 0 } });
    // Never acked: the broker hands them out again once their lease ends.
    expect(s.transport.stats).toMatchObject({ leased: 8, ready: 0 });
  });

  it("does not close the transport unless closeTransport is set", async () => {
    const s = setup<number>(async () => {});
    await s.worker.start();
    await s.worker.close();
    await expect(s.transport.send(1)).resolves.toEqual(expect.any(String));
    const transport = new MemoryTransport<number>({ clock: s.clock });
    const worker = new Worker(transport, async () => {}, { clock: s.clock, closeTransport: true });
    await worker.start();
    await worker.close();
    await expect(transport.send(1)).rejects.toThrow(ClosedError);
  });

  it("start() after close() rejects with ClosedError; close() twice returns the same promise", async () => {
    const s = setup<number>(async () => {});
    await s.worker.start();
    const first = s.worker.close();
    expect(s.worker.close()).toBe(first);
    await first;
    await expect(s.worker.start()).rejects.toThrow(ClosedError);
  });

  it("close() stops a receive that is waiting, promptly", async () => {
    const s = setup<number>(async () => {}, {}, { wait: Infinity });
    await s.worker.start();
    await s.clock.advance(10);
    let closed = false;
    await Promise.race([s.worker.close().then(() => (closed = true)), s.clock.advance(0)]);
    await s.clock.advance(0);
    expect(closed).toBe(true);
  });
});
