import { type Delivery, type Transport, TransportError } from "@tranche/core";
import { describe, expect, it } from "vitest";
import { type FaultOperation, FaultyTransport, faultKinds, faultOperations, injectFaults } from "../src/index.js";

/** A transport that records which calls reached it; `receive` hands out one delivery per call. */
function broker(options: { extend?: boolean; admin?: boolean } = {}) {
  const reached: string[] = [];
  let n = 0;
  const delivery = (id: string): Delivery<unknown> => ({ id, payload: id, attempt: 1 });
  const transport: Transport<unknown> = {
    name: "stub",
    capabilities: { maxReceive: 10, nativeDelay: true, lease: true, nativeDeadLetter: false },
    send: async (_p, o) => (reached.push("send"), o?.id ?? `s${++n}`),
    sendMany: async (ps) => (reached.push("sendMany"), ps.map(() => `s${++n}`)),
    receive: async () => (reached.push("receive"), [delivery(`r${++n}`)]),
    ack: async () => void reached.push("ack"),
    retry: async () => void reached.push("retry"),
    deadLetter: async () => void reached.push("deadLetter"),
    release: async () => void reached.push("release"),
    close: async () => void reached.push("close"),
    ...(options.extend === false ? {} : { extend: async () => void reached.push("extend") }),
    ...(options.admin === false
      ? {}
      : {
          depth: async () => ({ ready: 0, delayed: 0, inFlight: 0, deadLettered: 0 }),
          deadLetters: async () => [],
          redrive: async () => (reached.push("redrive"), 1),
          purgeDeadLetters: async () => (reached.push("purgeDeadLetters"), 1),
        }),
  };
  return { transport, reached, delivery };
}

/** Whether `promise` settles within a few turns of the event loop. */
async function settles(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  return done;
}

function callOf(faulty: FaultyTransport<unknown>, op: FaultOperation): () => Promise<unknown> {
  const d: Delivery<unknown> = { id: "d1", payload: 1, attempt: 2 };
  const signal = new AbortController().signal;
  const calls: Record<FaultOperation, () => Promise<unknown>> = {
    send: () => faulty.send("p", { id: "d1" }),
    sendMany: () => faulty.sendMany(["p", "q"]),
    receive: () => faulty.receive(5, signal),
    ack: () => faulty.ack([d]),
    retry: () => faulty.retry(d, 1234),
    deadLetter: () => faulty.deadLetter(d, new Error("bad")),
    extend: () => (faulty.extend as NonNullable<FaultyTransport<unknown>["extend"]>)([d], 99),
    release: () => faulty.release([d]),
    redrive: () => (faulty.redrive as NonNullable<FaultyTransport<unknown>["redrive"]>)(["d1"]),
    purgeDeadLetters: () => (faulty.purgeDeadLetters as NonNullable<FaultyTransport<unknown>["purgeDeadLetters"]>)("all"),
  };
  return calls[op];
}

describe("FaultyTransport", () => {
  it("passes every call through, with the wrapped transport's name and capabilities, when no fault is set", async () => {
    const { transport, reached } = broker();
    const faulty = injectFaults(transport);
    expect(faulty.name).toBe("faulty stub");
    expect(faulty.capabilities).toBe(transport.capabilities);
    for (const op of faultOperations) await callOf(faulty, op)();
    expect(reached).toEqual([...faultOperations]);
    expect(faulty.calls.every((c) => c.broker === "resolved" && c.caller === "resolved" && c.fault === undefined)).toBe(true);
    expect(faulty.calls.find((c) => c.op === "receive")?.result).toEqual(["r3"]);
    expect(faulty.calls.find((c) => c.op === "retry")).toMatchObject({ ids: ["d1"], attempts: [2], notBefore: 1234 });
    await faulty.close();
    expect(reached.at(-1)).toBe("close");
  });

  it("has extend only when the wrapped transport has it", () => {
    expect(injectFaults(broker({ extend: false }).transport).extend).toBeUndefined();
    expect(typeof injectFaults(broker().transport).extend).toBe("function");
  });

  it("has the QueueAdmin methods only when the wrapped transport has them, and passes the reads through unfaulted", async () => {
    const without = injectFaults(broker({ admin: false }).transport);
    for (const method of ["depth", "deadLetters", "redrive", "purgeDeadLetters"] as const) expect(without[method], method).toBeUndefined();
    const faulty = injectFaults(broker().transport);
    faulty.inject(faultOperations, "fail");
    expect(await faulty.depth?.()).toEqual({ ready: 0, delayed: 0, inFlight: 0, deadLettered: 0 });
    expect(await faulty.deadLetters?.()).toEqual([]);
    await expect(faulty.redrive?.(["a", "b"])).rejects.toThrow(/injected fault: redrive/);
    expect(faulty.calls.at(-1)).toMatchObject({ op: "redrive", ids: ["a", "b"], broker: "skipped" });
  });

  for (const op of faultOperations) {
    it(`${op}: each kind of fault does what it says`, async () => {
      for (const kind of faultKinds) {
        const { transport, reached } = broker();
        const faulty = injectFaults(transport);
        faulty.inject(op, kind, { count: 1 });
        const call = callOf(faulty, op)();
        const reachesBroker = kind === "lost-reply" || kind === "hang-after";
        if (kind === "hang" || kind === "hang-after") {
          expect(await settles(call), `${op} ${kind} settled`).toBe(false);
        } else {
          const error = await call.then(() => undefined, (e: unknown) => e);
          expect(TransportError.isInstance(error), `${op} ${kind} rejected with ${String(error)}`).toBe(true);
          expect((error as TransportError).retryable).toBe(kind !== "fatal");
          expect((error as Error).message).toMatch(/^\[tranche\/conformance\] injected fault: /);
        }
        await new Promise((resolve) => setImmediate(resolve));
        expect(reached, `${op} ${kind} reached the broker`).toEqual(reachesBroker ? [op] : []);
        const [record] = faulty.calls;
        expect(record).toMatchObject({ op, fault: kind, broker: reachesBroker ? "resolved" : "skipped", caller: kind.startsWith("hang") ? "pending" : "rejected" });
        // The count is spent: the next call goes through.
        await callOf(faulty, op)();
        expect(reached.at(-1)).toBe(op);
        expect(faulty.calls[1]).toMatchObject({ fault: undefined, caller: "resolved" });
      }
    });
  }

  it("a count applies to that many calls; no count applies until heal()", async () => {
    const { transport, reached } = broker();
    const faulty = injectFaults(transport);
    const twice = faulty.inject("ack", "fail", { count: 2 });
    for (let i = 0; i < 3; i++) await faulty.ack([]).catch(() => {});
    expect(reached).toEqual(["ack"]);
    expect(twice.hits).toBe(2);
    expect(twice.active).toBe(false);
    faulty.inject(["retry", "release"], "fatal");
    for (let i = 0; i < 5; i++) {
      await faulty.retry({ id: "x", payload: 0, attempt: 1 }, 0).catch(() => {});
      await faulty.release([]).catch(() => {});
    }
    expect(reached).toEqual(["ack"]);
    expect(faulty.faulting).toBe(true);
    faulty.heal();
    expect(faulty.faulting).toBe(false);
    await faulty.retry({ id: "x", payload: 0, attempt: 1 }, 0);
    expect(reached).toEqual(["ack", "retry"]);
  });

  it("a predicate picks calls by op, position and ids; remove() stops one fault", async () => {
    const { transport, reached, delivery } = broker();
    const faulty = injectFaults(transport);
    const odd = faulty.inject("ack", "fail", { when: (c) => c.nth % 2 === 1 });
    const onB = faulty.inject("deadLetter", "fail", { when: (c) => c.ids.includes("b") });
    const results: string[] = [];
    for (let i = 0; i < 4; i++) results.push(await faulty.ack([delivery("a")]).then(() => "ok", () => "failed"));
    expect(results).toEqual(["failed", "ok", "failed", "ok"]);
    await expect(faulty.deadLetter(delivery("b"), new Error("x"))).rejects.toThrow(TransportError);
    await faulty.deadLetter(delivery("c"), new Error("x"));
    onB.remove();
    await faulty.deadLetter(delivery("b"), new Error("x"));
    expect(odd.active).toBe(true);
    expect(reached).toEqual(["ack", "ack", "deadLetter", "deadLetter"]);
  });

  it("orders calls and their settling on a shared sequence, and says which ids the broker applied and which the caller saw", async () => {
    const { transport, delivery } = broker();
    let seq = 0;
    const faulty = injectFaults(transport, { sequence: () => ++seq, now: () => 42 });
    faulty.inject("ack", "lost-reply", { when: (c) => c.ids.includes("lost") });
    await faulty.ack([delivery("kept")]);
    await faulty.ack([delivery("lost")]).catch(() => {});
    expect(faulty.applied("ack")).toEqual(["kept", "lost"]);
    expect(faulty.confirmed("ack")).toEqual(["kept"]);
    expect(faulty.calls.map((c) => [c.seq, c.settledSeq, c.at])).toEqual([
      [1, 2, 42],
      [3, 4, 42],
    ]);
    const sent = await faulty.sendMany(["a", "b"]);
    expect(faulty.confirmed("sendMany")).toEqual(sent);
  });

  it("a wrapped call that rejects is recorded as rejected by the broker and the caller", async () => {
    const { transport } = broker();
    const faulty = injectFaults({ ...transport, ack: async () => Promise.reject(new Error("down")) });
    await expect(faulty.ack([])).rejects.toThrow("down");
    expect(faulty.calls[0]).toMatchObject({ broker: "rejected", caller: "rejected" });
    faulty.inject("ack", "lost-reply");
    await expect(faulty.ack([])).rejects.toThrow("down");
  });

  it("rejects bad arguments", () => {
    const faulty = injectFaults(broker().transport);
    expect(() => faulty.inject("nope" as FaultOperation, "fail")).toThrow(/`op`/);
    expect(() => faulty.inject("ack", "boom" as never)).toThrow(/`kind`/);
    expect(() => faulty.inject("ack", "fail", { count: 1.5 })).toThrow(/`count`/);
    expect(() => new FaultyTransport(null as never)).toThrow(TypeError);
  });
});
