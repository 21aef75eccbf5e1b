import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { type BatchHandler, type Delivery, TransportError } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryTransport } from "@tranche/memory";
import { Worker, type WorkerOptions } from "@tranche/worker";
import { afterEach, describe, expect, it } from "vitest";
import { SENT_AT, type TrancheTelemetry } from "../src/index.js";
import { Otel, traceparentOf } from "./support/otel.js";

const START = 1_700_000_000_000;
let otel: Otel;
afterEach(() => otel?.shutdown());

/** A traced Worker over a MemoryTransport, all on one SimulatedClock. */
function setup<T>(handler: BatchHandler<T, unknown>, options: WorkerOptions<T> = {}, transport?: (clock: SimulatedClock) => MemoryTransport<T>) {
  otel = new Otel();
  const clock = new SimulatedClock(START);
  const memory = transport?.(clock) ?? new MemoryTransport<T>({ clock });
  const telemetry: TrancheTelemetry = otel.telemetry({ destination: "orders", clock });
  const traced = telemetry.transport(memory);
  const worker = telemetry.observe(new Worker(traced, telemetry.handler(handler), { clock, flushEvery: 3, flushInterval: 1000, ...options }));
  return { clock, memory, traced, worker, telemetry };
}

describe("send", () => {
  it("is a PRODUCER span whose context and send time the message carries", async () => {
    const { traced, memory, clock } = setup<string>(() => {});
    const id = await traced.send("a", { headers: { tenant: "acme" } });
    const [span] = otel.spans("send orders");
    expect(span?.kind).toBe(SpanKind.PRODUCER);
    expect(span?.attributes).toMatchObject({
      "messaging.system": "memory",
      "messaging.destination.name": "orders",
      "messaging.operation.type": "send",
      "messaging.operation.name": "send",
      "messaging.message.id": id,
    });
    const [delivery] = await memory.receive(1, new AbortController().signal);
    expect(delivery?.headers).toEqual({ tenant: "acme", traceparent: traceparentOf(span!), [SENT_AT]: String(clock.now()) });
    expect(await otel.total("messaging.client.sent.messages", { "messaging.operation.name": "send" })).toBe(1);
    expect(await otel.total("messaging.client.operation.duration", { "messaging.operation.name": "send" })).toBe(1);
  });

  it("keeps a trace context the producer set, and is a child of the active span", async () => {
    const { traced, memory } = setup<string>(() => {});
    const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await traced.send("kept", { headers: { traceparent: own } });
    await otel.tracerProvider.getTracer("test").startActiveSpan("request handler", async (active) => {
      await traced.send("child");
      active.end();
    });
    const got = await memory.receive(2, new AbortController().signal);
    expect(got[0]?.headers?.traceparent).toBe(own);
    const child = otel.spans("send orders")[1];
    const handlerSpan = otel.spans("request handler")[0];
    expect(child?.parentSpanContext?.spanId).toBe(handlerSpan?.spanContext().spanId);
    expect(got[1]?.headers?.traceparent).toBe(traceparentOf(child!));
  });

  it("sendMany is one span with messaging.batch.message_count, its context in every message", async () => {
    const { traced, memory } = setup<number>(() => {});
    await traced.sendMany([1, 2, 3]);
    const spans = otel.spans("send orders");
    expect(spans).toHaveLength(1);
    expect(spans[0]?.attributes["messaging.batch.message_count"]).toBe(3);
    const got = await memory.receive(3, new AbortController().signal);
    expect(new Set(got.map((d) => d.headers?.traceparent))).toEqual(new Set([traceparentOf(spans[0]!)]));
    expect(await otel.total("messaging.client.sent.messages")).toBe(3);
  });

  it("a failed send is an ERROR span and counted with its error.type", async () => {
    const { traced } = setup<unknown>(() => {});
    await traced.close();
    await expect(traced.send("late")).rejects.toThrow();
    const [span] = otel.spans("send orders");
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
    expect(span?.attributes["error.type"]).toBe("ClosedError");
    expect(await otel.total("messaging.client.sent.messages", { "error.type": "ClosedError" })).toBe(1);
  });
});

describe("process", () => {
  it("is one CONSUMER span per batch, the root of its trace, linked to each item's producer span, with the batch's count, reason and id", async () => {
    const { traced, worker, clock } = setup<number>(() => {});
    for (const n of [1, 2, 3]) await traced.send(n);
    const producers = otel.spans("send orders");
    // Started inside a span: the batches still start traces of their own.
    await otel.tracerProvider.getTracer("test").startActiveSpan("startup", async (startup) => {
      await worker.start();
      startup.end();
    });
    await clock.advance(0);
    const [process] = otel.spans("process orders");
    expect(process?.kind).toBe(SpanKind.CONSUMER);
    expect(process?.parentSpanContext).toBeUndefined();
    expect(process?.attributes).toMatchObject({
      "messaging.operation.type": "process",
      "messaging.operation.name": "process",
      "messaging.batch.message_count": 3,
      "tranche.flush.reason": "count",
      "tranche.batch.id": "1",
      "messaging.system": "memory",
      "messaging.destination.name": "orders",
    });
    expect(process?.links.map((l) => l.context.spanId).sort()).toEqual(producers.map((p) => p.spanContext().spanId).sort());
    expect(process?.links.map((l) => l.attributes?.["messaging.message.id"]).sort()).toEqual(producers.map((p) => p.attributes["messaging.message.id"]).sort());
    await worker.close();
  });

  it("carries the group, runs the handler inside it, and is an ERROR span when the handler throws", async () => {
    const { traced, worker, clock } = setup<{ tenant: string }>(
      (requests) => {
        otel.tracerProvider.getTracer("test").startSpan("insert").end();
        if (requests[0]?.payload.tenant === "b") throw new TypeError("boom");
      },
      { groupBy: (p) => p.tenant, flushEvery: 1, retry: { attempts: 1 } },
    );
    await traced.sendMany([{ tenant: "a" }, { tenant: "b" }]);
    await worker.start();
    await clock.advance(0);
    const [a, b] = otel.spans("process orders");
    expect(a?.attributes["tranche.group"]).toBe("a");
    expect(b?.attributes["tranche.group"]).toBe("b");
    expect(otel.spans("insert")[0]?.parentSpanContext?.spanId).toBe(a?.spanContext().spanId);
    expect(b?.status.code).toBe(SpanStatusCode.ERROR);
    expect(b?.attributes["error.type"]).toBe("TypeError");
    expect(await otel.total("messaging.process.duration", { "error.type": "TypeError" })).toBe(1);
    expect(await otel.total("messaging.process.duration")).toBe(2);
    await worker.close();
  });
});

describe("settle", () => {
  it("ack, retry and dead_letter are CLIENT spans, children of the item's process span", async () => {
    const { traced, worker, clock } = setup<string>(
      (requests) => {
        for (const r of requests) {
          if (r.payload === "retry" && r.attempt === 1) r.retry({ delay: 500 });
          else if (r.payload === "poison") r.fail(new RangeError("bad input"));
          else r.ack();
        }
      },
      { retry: { attempts: 3 } },
    );
    await traced.sendMany(["ok", "retry", "poison"]);
    await worker.start();
    await clock.advance(0);
    const [first] = otel.spans("process orders");
    const ack = otel.spans("ack orders")[0];
    const retry = otel.spans("retry orders")[0];
    const dead = otel.spans("dead_letter orders")[0];
    for (const span of [ack, retry, dead]) {
      expect(span?.kind).toBe(SpanKind.CLIENT);
      expect(span?.attributes["messaging.operation.type"]).toBe("settle");
      expect(span?.parentSpanContext?.spanId).toBe(first?.spanContext().spanId);
    }
    expect(ack?.attributes["messaging.operation.name"]).toBe("ack");
    expect(retry?.attributes).toMatchObject({ "messaging.operation.name": "retry", "tranche.retry.not_before": START + 500, "tranche.attempt": 1 });
    expect(dead?.attributes).toMatchObject({ "messaging.operation.name": "dead_letter", "tranche.dead_letter.reason": "RangeError", "tranche.dead_letter.message": "bad input" });
    await clock.advance(500);
    await clock.advance(1000);
    const second = otel.spans("process orders")[1];
    expect(second?.attributes["messaging.batch.message_count"]).toBe(1);
    expect(otel.spans("ack orders")[1]?.parentSpanContext?.spanId).toBe(second?.spanContext().spanId);
    expect(await otel.total("tranche.items.acked")).toBe(2);
    expect(await otel.total("tranche.items.retried")).toBe(1);
    expect(await otel.total("tranche.items.dead_lettered", { "error.type": "RangeError" })).toBe(1);
    expect(await otel.total("messaging.client.operation.duration", { "messaging.operation.name": "ack" })).toBe(2);
    await worker.close();
  });

  it("a failed settle call is an ERROR span with its retryability, and the worker's error is counted by operation", async () => {
    let failures = 1;
    const { traced, worker, clock } = setup<string>(() => {}, { ioBackoff: { delay: 10 } }, (c) => {
      const memory = new MemoryTransport<string>({ clock: c });
      const ack = memory.ack.bind(memory);
      memory.ack = (deliveries: Delivery<string>[]) => (failures-- > 0 ? Promise.reject(new TransportError("[test] ack failed: reset", { retryable: true })) : ack(deliveries));
      return memory;
    });
    await traced.send("x");
    await worker.start();
    await clock.advance(1000);
    await clock.advance(10);
    const [failed, done] = otel.spans("ack orders");
    expect(failed?.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed?.attributes).toMatchObject({ "error.type": "TransportError", "tranche.retryable": true });
    expect(done?.status.code).not.toBe(SpanStatusCode.ERROR);
    // The repeat keeps the process span as its parent.
    expect(done?.parentSpanContext?.spanId).toBe(otel.spans("process orders")[0]?.spanContext().spanId);
    expect(await otel.total("tranche.transport.errors", { "messaging.operation.name": "ack", "tranche.retryable": true, "error.type": "TransportError" })).toBe(1);
    expect(await otel.total("tranche.items.acked")).toBe(1);
    await worker.close();
  });
});

describe("metrics", () => {
  it("items received, batch size and flush reason, and each item's wait in the buffer", async () => {
    const { traced, worker, clock } = setup<number>(() => {});
    await traced.sendMany([1, 2, 3, 4]);
    await worker.start();
    await clock.advance(0);
    await clock.advance(1000);
    expect(await otel.total("tranche.items.received")).toBe(4);
    expect(await otel.total("messaging.client.consumed.messages")).toBe(4);
    expect(await otel.points("tranche.batches")).toEqual([
      { attributes: expect.objectContaining({ "tranche.flush.reason": "count" }), value: 1 },
      { attributes: expect.objectContaining({ "tranche.flush.reason": "interval" }), value: 1 },
    ]);
    const sizes = await otel.points("tranche.batch.size");
    expect(sizes.map((p) => [p.attributes["tranche.flush.reason"], p.value])).toEqual([
      ["count", { count: 1, sum: 3 }],
      ["interval", { count: 1, sum: 1 }],
    ]);
    // Three waited 0 s; the fourth waited the whole flushInterval.
    expect((await otel.points("tranche.item.wait.duration")).map((p) => p.value)).toEqual([{ count: 4, sum: 1 }]);
    await worker.close();
  });

  it("enqueue-to-settle latency from the send time the message carries, by outcome", async () => {
    const { traced, worker, clock } = setup<string>((requests) => requests.map((r) => (r.payload === "bad" ? new Error("no") : "ok")), { flushEvery: 2 });
    await traced.send("good");
    await clock.advance(200);
    await traced.send("bad");
    await clock.advance(300);
    await worker.start();
    await clock.advance(0);
    const points = await otel.points("tranche.item.settle.duration");
    expect(points.map((p) => [p.attributes["tranche.outcome"], p.value]).sort()).toEqual([
      ["ack", { count: 1, sum: 0.5 }],
      ["dead_letter", { count: 1, sum: 0.3 }],
    ]);
    await worker.close();
  });

  it("held and in-flight gauges from worker.stats", async () => {
    let release!: () => void;
    const running = new Promise<void>((resolve) => (release = resolve));
    const { traced, worker, clock } = setup<number>(() => running, { flushEvery: 2, flushInterval: 60_000 });
    await traced.sendMany([1, 2, 3]);
    await worker.start();
    await clock.advance(0);
    const value = async (name: string) => (await otel.points(name))[0]?.value;
    expect(await value("tranche.items.in_flight")).toBe(2);
    expect(await value("tranche.batches.in_flight")).toBe(1);
    expect(await value("tranche.items.held")).toBe(1);
    release();
    await clock.advance(0);
    expect(await value("tranche.items.in_flight")).toBe(0);
    expect(await value("tranche.batches.in_flight")).toBe(0);
    await worker.close();
    expect(await value("tranche.items.held")).toBe(0);
  });
});

describe("itemDurations: false", () => {
  it("leaves out each item's wait and time to settle, and keeps the rest", async () => {
    otel = new Otel();
    const clock = new SimulatedClock(START);
    const telemetry = otel.telemetry({ clock, itemDurations: false });
    const transport = telemetry.transport(new MemoryTransport<number>({ clock }));
    const worker = new Worker(transport, telemetry.handler(() => {}), { clock, flushEvery: 2 });
    await transport.sendMany([1, 2]);
    await worker.start();
    await clock.advance(0);
    expect(await otel.points("tranche.item.wait.duration")).toEqual([]);
    expect(await otel.points("tranche.item.settle.duration")).toEqual([]);
    expect(await otel.total("tranche.items.acked")).toBe(2);
    expect(otel.spans("ack")).toHaveLength(1);
    expect(() => otel.telemetry({ itemDurations: "no" as never })).toThrow("Expected `itemDurations` to be a boolean");
    await worker.close();
  });
});
