// The same spans, links and metrics through a real broker: a producer and a Worker on their own
// RedisStreamsTransports, the trace context and send time carried in the entries' `headers` field.
import { SpanKind } from "@opentelemetry/api";
import { RedisStreamsTransport } from "@tranche/redis";
import { type RedisServer, startRedisServer } from "@tranche/redis/testing";
import { Worker } from "@tranche/worker";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Otel, traceparentOf } from "./support/otel.js";

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
}, 30_000);
afterAll(() => server?.close());

async function until(what: string, done: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

it("a producer's send spans link to the worker's process span; settles are its children and are counted", async () => {
  const otel = new Otel();
  const stream = `otel-${Date.now().toString(36)}`;
  const producerTelemetry = otel.telemetry({ destination: stream });
  const workerTelemetry = otel.telemetry({ destination: stream, consumerGroup: "tranche" });
  const producer = producerTelemetry.transport(new RedisStreamsTransport<string>({ url: server.url, stream }));
  const consumer = workerTelemetry.transport(new RedisStreamsTransport<string>({ url: server.url, stream, blockMs: 50 }));
  const worker = workerTelemetry.observe(
    new Worker(
      consumer,
      workerTelemetry.handler<string, unknown>((requests) => {
        for (const r of requests) {
          if (r.payload === "retry" && r.attempt === 1) r.retry({ delay: 100 });
          else if (r.payload === "poison") r.fail(new SyntaxError("unparsable"));
          else r.ack();
        }
      }),
      { flushEvery: 4, flushInterval: 50, retry: { attempts: 3 } },
    ),
  );
  try {
    await producer.send("one");
    await producer.sendMany(["retry", "poison"]);
    const producers = otel.spans(`send ${stream}`);
    expect(producers.map((s) => s.kind)).toEqual([SpanKind.PRODUCER, SpanKind.PRODUCER]);
    expect(producers[0]?.attributes).toMatchObject({ "messaging.system": "redis", "messaging.destination.name": stream });
    await worker.start();
    await until("three acks or dead letters", async () => (await otel.total("tranche.items.acked")) + (await otel.total("tranche.items.dead_lettered")) === 3);

    const [first, second] = otel.spans(`process ${stream}`);
    expect(first?.attributes).toMatchObject({ "messaging.batch.message_count": 3, "messaging.consumer.group.name": "tranche", "messaging.system": "redis" });
    // One link per item; the two items of the sendMany share its span.
    expect(first?.links.map((l) => l.context.spanId).sort()).toEqual([producers[0], producers[1], producers[1]].map((s) => s!.spanContext().spanId).sort());
    expect(second?.links.map((l) => `00-${l.context.traceId}-${l.context.spanId}-01`)).toEqual([traceparentOf(producers[1]!)]);
    for (const [name, parent] of [
      [`retry ${stream}`, first],
      [`dead_letter ${stream}`, first],
      [`ack ${stream}`, first],
    ] as const) {
      const span = otel.spans(name)[0];
      expect(span?.kind, name).toBe(SpanKind.CLIENT);
      expect(span?.parentSpanContext?.spanId, name).toBe(parent?.spanContext().spanId);
    }
    expect(otel.spans(`ack ${stream}`)[1]?.parentSpanContext?.spanId).toBe(second?.spanContext().spanId);

    expect(await otel.total("messaging.client.sent.messages")).toBe(3);
    expect(await otel.total("tranche.items.received")).toBe(4);
    expect(await otel.total("tranche.items.acked")).toBe(2);
    expect(await otel.total("tranche.items.retried")).toBe(1);
    expect(await otel.total("tranche.items.dead_lettered", { "error.type": "SyntaxError" })).toBe(1);
    const latency = await otel.points("tranche.item.settle.duration");
    const acked = latency.find((p) => p.attributes["tranche.outcome"] === "ack")?.value as { count: number; sum: number };
    expect(acked.count).toBe(2);
    // The retried item waited at least its 100 ms delay between its send and its ack.
    expect(acked.sum).toBeGreaterThanOrEqual(0.1);
    expect(await otel.total("tranche.item.wait.duration")).toBe(4);
  } finally {
    await worker.close();
    await Promise.all([producer.close(), consumer.close()]);
    await otel.shutdown();
  }
}, 60_000);

it("counts a Worker's failed calls to an unreachable Redis by operation and retryability", async () => {
  const otel = new Otel();
  const telemetry = otel.telemetry();
  const dead = await startRedisServer();
  await dead.stop();
  const transport = telemetry.transport(new RedisStreamsTransport<string>({ url: dead.url, stream: "gone", connectTimeout: 200, commandTimeout: 200 }));
  const worker = telemetry.observe(new Worker(transport, telemetry.handler(() => {}), { ioBackoff: { delay: 50, maxDelay: 100 } }));
  try {
    await worker.start();
    await until("a receive error", async () => (await otel.total("tranche.transport.errors", { "messaging.operation.name": "receive", "tranche.retryable": true })) >= 1);
    expect((await otel.points("tranche.transport.errors"))[0]?.attributes["error.type"]).toBe("TransportError");
  } finally {
    await worker.close();
    await transport.close();
    await dead.close();
    await otel.shutdown();
  }
}, 60_000);
