import { ClosedError, DecodeError, TransportError } from "@tranche/core";
import type { Delivery } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { describe, expect, it } from "vitest";
import { MemoryTransport, type MemoryTransportOptions } from "../src/index.js";

const T0 = 1_700_000_000_000;

function setup(options: Omit<MemoryTransportOptions<unknown>, "clock"> = {}) {
  const clock = new SimulatedClock(T0);
  const transport = new MemoryTransport<unknown>({ clock, visibilityTimeout: 1000, wait: 0, ...options });
  const signal = new AbortController().signal;
  return { clock, transport, signal };
}

describe("MemoryTransport", () => {
  it("delivers in FIFO order with attempt 1, the sent id and a lease", async () => {
    const { transport, signal } = setup();
    const ids = await transport.sendMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const deliveries = await transport.receive(10, signal);
    expect(deliveries.map((d) => d.payload)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(deliveries.map((d) => d.id)).toEqual(ids);
    expect(deliveries.every((d) => d.attempt === 1 && d.leaseUntil === T0 + 1000 && d.notBefore === undefined)).toBe(true);
  });

  it("returns at most max and leaves the rest for the next receive", async () => {
    const { transport, signal } = setup();
    await transport.sendMany([1, 2, 3, 4, 5]);
    expect((await transport.receive(2, signal)).map((d) => d.payload)).toEqual([1, 2]);
    expect((await transport.receive(10, signal)).map((d) => d.payload)).toEqual([3, 4, 5]);
  });

  it("passes payloads through the codec: a copy arrives, not the sent object", async () => {
    const { transport, signal } = setup();
    const payload = { nested: { a: [1, 2] }, at: new Date(0) };
    await transport.send(payload);
    const [delivery] = await transport.receive(1, signal);
    expect(delivery?.payload).toEqual({ nested: { a: [1, 2] }, at: "1970-01-01T00:00:00.000Z" });
    expect(delivery?.payload).not.toBe(payload);
  });

  it("uses a custom codec both ways", async () => {
    const clock = new SimulatedClock(T0);
    const transport = new MemoryTransport<number>({ clock, codec: { encode: (n) => `#${n}`, decode: (raw) => Number(String(raw).slice(1)) } });
    await transport.sendRaw("#41");
    await transport.send(42);
    expect((await transport.receive(5, new AbortController().signal)).map((d) => d.payload)).toEqual([41, 42]);
  });

  it("delivers undecodable raw bytes with a DecodeError and dead-letters them with their bytes", async () => {
    const { transport, signal } = setup();
    const raw = new Uint8Array([0xff, 0xfe, 0x00]);
    const id = await transport.sendRaw(raw, { id: "garbage" });
    const [delivery] = await transport.receive(1, signal);
    expect(id).toBe("garbage");
    expect(DecodeError.isInstance(delivery?.error)).toBe(true);
    expect(delivery?.payload).toBeUndefined();
    await transport.deadLetter(delivery as Delivery<unknown>, delivery?.error as Error);
    const [letter] = await transport.deadLetters();
    expect(letter?.id).toBe("garbage");
    expect(letter?.raw).toBe(raw);
    expect(letter?.payload).toBeUndefined();
    expect(letter?.reason).toMatchObject({ name: "DecodeError", message: (delivery?.error as Error).message });
  });

  it("waits on the clock for a message and resolves as soon as one is sent", async () => {
    const { clock, transport, signal } = setup({ wait: 5000 });
    let received: Delivery<unknown>[] | undefined;
    void transport.receive(10, signal).then((d) => (received = d));
    await clock.advance(1000);
    expect(received).toBeUndefined();
    await transport.sendMany(["a", "b"]);
    await clock.tick();
    expect(received?.map((d) => d.payload)).toEqual(["a", "b"]);
    expect(clock.now()).toBe(T0 + 1000);
  });

  it("resolves [] after its wait, not before", async () => {
    const { clock, transport, signal } = setup({ wait: 500 });
    let received: Delivery<unknown>[] | undefined;
    void transport.receive(10, signal).then((d) => (received = d));
    await clock.advance(499);
    expect(received).toBeUndefined();
    await clock.advance(1);
    expect(received).toEqual([]);
  });

  it("resolves [] at once when the signal aborts, and for an aborted signal", async () => {
    const { clock, transport } = setup({ wait: Infinity });
    const controller = new AbortController();
    const pending = transport.receive(10, controller.signal);
    controller.abort();
    expect(await pending).toEqual([]);
    expect(await transport.receive(10, controller.signal)).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("serves waiting receives oldest first, each with at most its max", async () => {
    const { clock, transport, signal } = setup({ wait: 5000 });
    const first = transport.receive(2, signal);
    const second = transport.receive(2, signal);
    await transport.sendMany([1, 2, 3]);
    expect((await first).map((d) => d.payload)).toEqual([1, 2]);
    expect((await second).map((d) => d.payload)).toEqual([3]);
    await clock.tick();
  });

  it("ack removes the item for good and is idempotent", async () => {
    const { clock, transport, signal } = setup();
    await transport.sendMany(["a", "b"]);
    const deliveries = await transport.receive(2, signal);
    await transport.ack(deliveries);
    await transport.ack(deliveries);
    await transport.ack([deliveries[0] as Delivery<unknown>]);
    await clock.advance(10_000);
    expect(await transport.receive(10, signal)).toEqual([]);
    expect(transport.stats).toEqual({ ready: 0, delayed: 0, leased: 0, deadLettered: 0, deadLettersDropped: 0 });
  });

  it("redelivers an unacked delivery after the visibility timeout with attempt + 1", async () => {
    const { clock, transport, signal } = setup({ visibilityTimeout: 1000 });
    const id = await transport.send("x");
    const [first] = await transport.receive(1, signal);
    await clock.advance(999);
    expect(await transport.receive(1, signal)).toEqual([]);
    await clock.advance(1);
    const [second] = await transport.receive(1, signal);
    expect(second).toMatchObject({ id, payload: "x", attempt: 2 });
    expect(first?.attempt).toBe(1);
  });

  it("hands an expired item to a consumer already waiting", async () => {
    const { clock, transport, signal } = setup({ visibilityTimeout: 1000, wait: 10_000 });
    await transport.send("x");
    await transport.receive(1, signal);
    let received: Delivery<unknown>[] | undefined;
    void transport.receive(1, signal).then((d) => (received = d));
    await clock.advance(1000);
    expect(received?.map((d) => [d.payload, d.attempt])).toEqual([["x", 2]]);
  });

  it("ignores stale handles: an old delivery cannot ack, retry or dead-letter the newer one", async () => {
    const { clock, transport, signal } = setup({ visibilityTimeout: 1000 });
    await transport.send("x");
    const [stale] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    await clock.advance(1000);
    const [fresh] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    await transport.ack([stale]);
    await transport.retry(stale, T0);
    await transport.deadLetter(stale, new Error("stale"));
    await transport.release([stale]);
    expect(transport.stats).toMatchObject({ leased: 1, ready: 0, deadLettered: 0 });
    await transport.ack([fresh]);
    expect(transport.stats).toMatchObject({ leased: 0, ready: 0 });
  });

  it("a copied delivery still settles by its attempt", async () => {
    const { clock, transport, signal } = setup();
    await transport.send("x");
    const [delivery] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    await transport.ack([{ ...delivery }]);
    await clock.advance(5000);
    expect(await transport.receive(1, signal)).toEqual([]);
  });

  it("acks an expired delivery as long as nobody received the item since", async () => {
    const { clock, transport, signal } = setup({ visibilityTimeout: 1000 });
    await transport.send("x");
    const [delivery] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    await clock.advance(2000);
    await transport.ack([delivery]);
    expect(await transport.receive(1, signal)).toEqual([]);
  });

  it("delays a send by `delay` ms and reports notBefore", async () => {
    const { clock, transport, signal } = setup();
    await transport.send("later", { delay: 5000 });
    await transport.send("now");
    const now = await transport.receive(10, signal);
    expect(now.map((d) => d.payload)).toEqual(["now"]);
    await transport.ack(now);
    await clock.advance(4999);
    expect(await transport.receive(10, signal)).toEqual([]);
    await clock.advance(1);
    const [delivery] = await transport.receive(10, signal);
    expect(delivery).toMatchObject({ payload: "later", notBefore: T0 + 5000, attempt: 1 });
  });

  it("retry redelivers not before notBefore, with the same id and attempt + 1", async () => {
    const { clock, transport, signal } = setup({ visibilityTimeout: 60_000 });
    const id = await transport.send("x");
    const [first] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    await transport.retry(first, T0 + 10_000);
    await clock.advance(9999);
    expect(await transport.receive(1, signal)).toEqual([]);
    await clock.advance(1);
    const [second] = await transport.receive(1, signal);
    expect(second).toMatchObject({ id, payload: "x", attempt: 2, notBefore: T0 + 10_000 });
  });

  it("a retry with a past notBefore goes to the back of the line", async () => {
    const { transport, signal } = setup();
    await transport.sendMany(["a", "b"]);
    const [a] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    await transport.retry(a, T0 - 1);
    expect((await transport.receive(10, signal)).map((d) => [d.payload, d.attempt])).toEqual([
      ["b", 1],
      ["a", 2],
    ]);
  });

  it("extend keeps the lease past the visibility timeout, until `until`", async () => {
    const { clock, transport, signal } = setup({ visibilityTimeout: 1000 });
    await transport.send("x");
    const deliveries = await transport.receive(1, signal);
    await transport.extend(deliveries, T0 + 5000);
    await clock.advance(4999);
    expect(await transport.receive(1, signal)).toEqual([]);
    await clock.advance(1);
    expect((await transport.receive(1, signal)).map((d) => d.attempt)).toEqual([2]);
  });

  it("release gives deliveries back at once, ahead of later messages, without counting a delivery", async () => {
    const { transport, signal } = setup();
    await transport.sendMany(["a", "b"]);
    const [a] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    await transport.send("c");
    await transport.release([a]);
    expect((await transport.receive(10, signal)).map((d) => [d.payload, d.attempt])).toEqual([
      ["a", 1],
      ["b", 1],
      ["c", 1],
    ]);
  });

  it("release wakes a waiting receive", async () => {
    const { clock, transport, signal } = setup({ wait: 10_000 });
    await transport.send("a");
    const deliveries = await transport.receive(1, signal);
    const waiting = transport.receive(1, signal);
    await transport.release(deliveries);
    expect((await waiting).map((d) => d.attempt)).toEqual([1]);
    expect(clock.now()).toBe(T0);
  });

  it("deadLetter keeps payload, attempt and reason, and never redelivers", async () => {
    const { clock, transport, signal } = setup({ visibilityTimeout: 1000 });
    const id = await transport.send({ n: 1 });
    const [delivery] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    const reason = new Error("poison");
    await transport.deadLetter(delivery, reason);
    await clock.advance(10_000);
    expect(await transport.receive(1, signal)).toEqual([]);
    expect(await transport.deadLetters()).toEqual([
      { id, payload: { n: 1 }, raw: '{"n":1}', attempt: 1, retries: 0, reason: { name: "Error", message: "poison", stack: reason.stack }, at: T0 },
    ]);
  });

  it("keeps a dead letter's reason as plain data, not the Error (which would keep its call sites alive)", async () => {
    const { transport, signal } = setup();
    await transport.send(1);
    const [delivery] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    await transport.deadLetter(delivery, new RangeError("too big"));
    const [letter] = await transport.deadLetters();
    expect(letter?.reason).not.toBeInstanceOf(Error);
    expect(Object.keys(letter?.reason ?? {}).sort()).toEqual(["message", "name", "stack"]);
    expect(letter?.reason.stack).toContain("RangeError: too big");
  });

  it("keeps at most maxDeadLetters, dropping the oldest with a count and a call, never silently", async () => {
    const dropped: string[] = [];
    const { transport, signal } = setup({ maxDeadLetters: 2, onDeadLetterDropped: (letter) => dropped.push(letter.id) });
    const ids = await transport.sendMany([1, 2, 3]);
    for (const delivery of await transport.receive(3, signal)) await transport.deadLetter(delivery, new Error("x"));
    expect((await transport.deadLetters()).map((l) => l.id)).toEqual(ids.slice(1));
    expect(dropped).toEqual(ids.slice(0, 1));
    expect(transport.stats).toMatchObject({ deadLettered: 2, deadLettersDropped: 1 });
  });

  it("pages dead letters, redrives them under their id with a fresh attempt count, and purges them", async () => {
    const { clock, transport, signal } = setup();
    const ids = await transport.sendMany([1, 2, 3, 4]);
    for (const delivery of await transport.receive(4, signal)) await transport.deadLetter(delivery, new Error("x"));
    expect((await transport.deadLetters({ limit: 2 })).map((l) => l.id)).toEqual(ids.slice(0, 2));
    expect((await transport.deadLetters({ limit: 2, after: ids[1] })).map((l) => l.id)).toEqual(ids.slice(2));
    expect(await transport.redrive([ids[0]!, ids[1]!, "unknown"], { delay: 100 })).toBe(2);
    expect(await transport.redrive([ids[0]!])).toBe(0);
    expect(await transport.depth()).toEqual({ ready: 0, delayed: 2, inFlight: 0, deadLettered: 2 });
    await clock.advance(100);
    expect((await transport.receive(10, signal)).map((d) => [d.id, d.payload, d.attempt, d.retries])).toEqual([
      [ids[0], 1, 1, 0],
      [ids[1], 2, 1, 0],
    ]);
    expect(await transport.purgeDeadLetters("all")).toBe(2);
    expect(await transport.depth()).toEqual({ ready: 0, delayed: 0, inFlight: 2, deadLettered: 0 });
    await expect(transport.redrive("some" as never)).rejects.toThrow(TypeError);
  });

  it("carries the headers an item was sent with to each of its deliveries, retries included", async () => {
    const { clock, transport, signal } = setup();
    await transport.send("h", { headers: { traceparent: "00-abc-def-01" } });
    await transport.sendMany(["x"]);
    const [first, plain] = (await transport.receive(2, signal)) as [Delivery<unknown>, Delivery<unknown>];
    expect(first.headers).toEqual({ traceparent: "00-abc-def-01" });
    expect(plain.headers).toBeUndefined();
    await transport.retry(first, clock.now());
    expect((await transport.receive(1, signal))[0]?.headers).toEqual({ traceparent: "00-abc-def-01" });
    await expect(transport.send("bad", { headers: { n: 1 } as never })).rejects.toThrow("Expected `headers` to be an object of string values, got {\"n\":1}");
  });

  it("retry carries retries + 1 with the item; a lease expiry carries it unchanged", async () => {
    const { clock, transport, signal } = setup({ visibilityTimeout: 1000 });
    await transport.send("r");
    const [first] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    expect(first).toMatchObject({ attempt: 1, retries: 0 });
    await transport.retry(first, clock.now());
    const [second] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    expect(second).toMatchObject({ attempt: 2, retries: 1 });
    await clock.advance(1000);
    expect(await transport.receive(1, signal)).toEqual([expect.objectContaining({ attempt: 3, retries: 1 })]);
  });

  it("a payload the codec cannot encode is refused with a non-retryable TransportError, and nothing is sent", async () => {
    const { transport } = setup();
    const error = await transport.sendMany([1, 10n as unknown as number]).catch((e: unknown) => e);
    expect(TransportError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ retryable: false, message: expect.stringContaining("[tranche/memory] cannot encode payload") });
    expect(transport.stats).toMatchObject({ ready: 0 });
  });

  it("re-sending an id re-enqueues that item with the new payload and voids the old delivery", async () => {
    const { transport, signal } = setup();
    const id = await transport.send("v1", { id: "job-1" });
    const [old] = (await transport.receive(1, signal)) as [Delivery<unknown>];
    expect(await transport.send("v2", { id: "job-1" })).toBe(id);
    await transport.ack([old]);
    const [again] = await transport.receive(1, signal);
    expect(again).toMatchObject({ id: "job-1", payload: "v2", attempt: 2 });
  });

  it("re-sending a waiting id keeps one item", async () => {
    const { transport, signal } = setup();
    await transport.send("v1", { id: "job-1" });
    await transport.send("v2", { id: "job-1", delay: 0 });
    expect((await transport.receive(10, signal)).map((d) => d.payload)).toEqual(["v2"]);
  });

  it("two consumers on one instance never hold the same item", async () => {
    const { clock, transport, signal } = setup({ wait: 1000 });
    await transport.sendMany(Array.from({ length: 50 }, (_, i) => i));
    const [a, b] = await Promise.all([transport.receive(30, signal), transport.receive(30, signal)]);
    const ids = [...(a ?? []), ...(b ?? [])].map((d) => d.id);
    expect(ids).toHaveLength(50);
    expect(new Set(ids).size).toBe(50);
    await clock.tick();
  });

  it("arms no timer when idle, and one while something is delayed or leased", async () => {
    const { clock, transport, signal } = setup({ wait: 0 });
    expect(clock.pendingTimers).toBe(0);
    await transport.send("x", { delay: 100 });
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(100);
    const deliveries = await transport.receive(1, signal);
    expect(clock.pendingTimers).toBe(1);
    await transport.ack(deliveries);
    expect(clock.pendingTimers).toBe(0);
  });

  it("after close, pending receives resolve [] and every call throws ClosedError", async () => {
    const { clock, transport, signal } = setup({ wait: 10_000 });
    await transport.send("x", { delay: 50 });
    const pending = transport.receive(1, signal);
    await transport.close();
    await transport.close();
    expect(await pending).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
    const d = { id: "x", payload: "x", attempt: 1 };
    const calls = [
      () => transport.send("y"),
      () => transport.sendMany(["y"]),
      () => transport.sendRaw("y"),
      () => transport.receive(1, signal),
      () => transport.ack([d]),
      () => transport.retry(d, T0),
      () => transport.deadLetter(d, new Error("x")),
      () => transport.extend([d], T0),
      () => transport.release([d]),
    ];
    for (const call of calls) {
      const error = await call().then(() => undefined, (e: unknown) => e);
      expect(ClosedError.isInstance(error)).toBe(true);
      expect((error as Error).message).toMatch(/^\[tranche\/memory\]/);
    }
  });

  it("validates options eagerly, quoting the value", async () => {
    expect(() => new MemoryTransport({ visibilityTimeout: 0 })).toThrow(/`visibilityTimeout`.*got 0/);
    expect(() => new MemoryTransport({ wait: -1 })).toThrow(/`wait`.*got -1/);
    expect(() => new MemoryTransport({ clock: {} as never })).toThrow(/`clock`.*got \{\}/);
    expect(() => new MemoryTransport({ codec: "json" as never })).toThrow(/`codec`.*got "json"/);
    expect(() => new MemoryTransport(5 as never)).toThrow(TypeError);
    const { transport, signal } = setup();
    await expect(transport.receive(0, signal)).rejects.toThrow(/`max`.*got 0/);
    await expect(transport.send("x", { delay: -5 })).rejects.toThrow(/`delay`.*got -5/);
    await expect(transport.send("x", { id: "" })).rejects.toThrow(/`id`.*got ""/);
    await expect(transport.retry({ id: "x", payload: 1, attempt: 1 }, Number.NaN)).rejects.toThrow(/`notBefore`.*got NaN/);
    await expect(transport.sendRaw(5 as never)).rejects.toThrow(/`raw`.*got 5/);
  });

  it("keeps O(log n) work per item: 100k items through send, receive and ack", async () => {
    const { transport, signal } = setup({ visibilityTimeout: 60_000 });
    const n = 100_000;
    await transport.sendMany(Array.from({ length: n }, (_, i) => i));
    let seen = 0;
    for (;;) {
      const deliveries = await transport.receive(1000, signal);
      if (deliveries.length === 0) break;
      seen += deliveries.length;
      await transport.ack(deliveries);
    }
    expect(seen).toBe(n);
    expect(transport.stats).toEqual({ ready: 0, delayed: 0, leased: 0, deadLettered: 0, deadLettersDropped: 0 });
  });
});
