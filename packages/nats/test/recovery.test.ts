import type { Delivery } from "@tranche/core";
import { Worker } from "@tranche/worker";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NatsKvResultStore, NatsTransport, type NatsTransportOptions } from "../src/index.js";
import { countMessages, startNatsServer, type NatsServer } from "../src/testing.js";
import { uniqueQueue } from "./support/server.js";
import { eventually } from "./support/worker-process.js";

// These tests stop, kill and restart the server, so they always start their own (NATS_URL is not used).
let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  jsm = await jetstreamManager(nc);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});
afterAll(async () => {
  await nc?.close();
  await server?.close();
});

function transport(options: NatsTransportOptions<unknown>): NatsTransport<unknown> {
  const t = new NatsTransport<unknown>({ servers: server.url, ...options });
  open.push(t);
  return t;
}

const never = new AbortController().signal;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Deliveries received until `done` says so or `within` ms passed, each with the time it arrived; receive errors while the server restarts are skipped. */
async function receiveWhile(t: NatsTransport<unknown>, within: number, done: (got: { delivery: Delivery<unknown>; at: number }[]) => boolean) {
  const got: { delivery: Delivery<unknown>; at: number }[] = [];
  const deadline = Date.now() + within;
  while (!done(got) && Date.now() < deadline) {
    try {
      for (const delivery of await t.receive(100, never)) got.push({ delivery, at: Date.now() });
    } catch {
      await sleep(100);
    }
  }
  return got;
}

function onSubject(stream: string, subject: string): Promise<number> {
  return countMessages(nc, { stream, subject });
}

/** A Worker on `t` that records the ids it ran, and the producer-only transport that feeds it. */
async function runWorker(q: ReturnType<typeof uniqueQueue>, t: NatsTransport<unknown>) {
  const ran = new Set<string>();
  const errors: Error[] = [];
  const worker = new Worker<unknown, void>(
    t,
    (requests) => {
      for (const r of requests) ran.add(r.id);
    },
    { flushEvery: 10, flushInterval: 20, lease: 3_000 },
  );
  worker.on("error", (error) => errors.push(error));
  await worker.start();
  open.push({ close: () => worker.close({ drain: false, timeout: 5_000 }) });
  const producer = transport(q);
  const send = (label: string) => producer.sendMany(Array.from({ length: 20 }, (_, i) => `${label}-${i}`));
  return { ran, errors, send };
}

describe("NatsTransport across server restarts and vanished state", () => {
  it("a retry's notBefore travels with the message: after a server restart, no delivery comes before it unless it says so", { timeout: 60_000 }, async () => {
    const q = uniqueQueue("N");
    const t = transport({ ...q, ackWait: 2_000, wait: 300 });
    await t.send("x", { id: "later" });
    const [first] = await receiveWhile(t, 10_000, (got) => got.length > 0);
    const notBefore = Date.now() + 4_000;
    await t.retry(first!.delivery, notBefore);
    await sleep(300);
    await server.stop();
    await server.start();

    const got = await receiveWhile(t, 20_000, (all) => all.some((g) => g.delivery.id === "later"));
    const again = got.find((g) => g.delivery.id === "later");
    expect(again, "the retried item came back").toBeDefined();
    if (again!.at < notBefore) expect(again!.delivery.notBefore, `delivered ${notBefore - again!.at} ms early`).toBeGreaterThanOrEqual(notBefore);
    expect(again!.delivery).toMatchObject({ attempt: 2, retries: 1 });
  });

  it("a Worker recreates its durable consumer after it is deleted, and processing resumes", { timeout: 60_000 }, async () => {
    const q = uniqueQueue("D");
    const { ran, send } = await runWorker(q, transport({ ...q, ackWait: 3_000, wait: 1_000 }));
    const before = await send("before");
    await eventually(() => before.every((id) => ran.has(id)), 15_000, "items sent before the deletion to run");
    await jsm.consumers.delete(q.stream, q.durable);
    const after = await send("after");
    await eventually(() => after.every((id) => ran.has(id)), 20_000, "items sent after the consumer was deleted to run");
    expect((await jsm.consumers.info(q.stream, q.durable)).config.durable_name).toBe(q.durable);
  });

  it("a receive after the consumer was deleted between pulls hears nothing, and the next one recreates it", { timeout: 60_000 }, async () => {
    const q = uniqueQueue("E");
    const t = transport({ ...q, ackWait: 3_000, wait: 2_000 });
    expect(await t.receive(1, never)).toEqual([]);
    await jsm.consumers.delete(q.stream, q.durable);
    await t.send("x", { id: "after-deletion" });
    const got = await receiveWhile(t, 20_000, (all) => all.length > 0);
    expect(got.map((g) => g.delivery.id)).toEqual(["after-deletion"]);
  });

  it("a Worker recreates its stream after it is deleted, and processing resumes", { timeout: 60_000 }, async () => {
    const q = uniqueQueue("S");
    const { ran, send } = await runWorker(q, transport({ ...q, ackWait: 3_000, wait: 1_000 }));
    const before = await send("before");
    await eventually(() => before.every((id) => ran.has(id)), 15_000, "items sent before the deletion to run");
    await jsm.streams.delete(q.stream);
    const after = await send("after");
    await eventually(() => after.every((id) => ran.has(id)), 20_000, "items sent after the stream was deleted to run");
    expect(await onSubject(q.stream, q.subject)).toBe(0);
  });

  it("a server killed right after acks: no acked item is delivered again, and none stays in the stream", { timeout: 90_000 }, async () => {
    const q = uniqueQueue("K");
    const t = transport({ ...q, ackWait: 5_000, wait: 700 });
    const ids = await transport(q).sendMany(Array.from({ length: 3_000 }, (_, i) => i));
    const acked = new Set<string>();
    while (acked.size < 2_000) {
      const batch = await t.receive(Math.min(200, 2_000 - acked.size), never);
      await t.ack(batch);
      for (const d of batch) acked.add(d.id);
    }
    // The server forgets the acks of its last moments (consumer state) and its work-queue
    // deletions of the last minutes (JetStream 2.9 file store).
    await server.kill();
    await server.start();

    const rest = new Set(ids.filter((id) => !acked.has(id)));
    const got: string[] = [];
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline && !(new Set(got).size >= rest.size && (await onSubject(q.stream, q.subject)) === 0)) {
      try {
        const batch = await t.receive(200, never);
        await t.ack(batch);
        got.push(...batch.map((d) => d.id));
      } catch {
        await sleep(100); // the server is starting
      }
    }
    expect(got.filter((id) => acked.has(id)).length, "acked items delivered again").toBe(0);
    expect(new Set(got)).toEqual(rest);
    expect(await onSubject(q.stream, q.subject)).toBe(0);
  });
});

describe("NatsKvResultStore across server restarts", () => {
  it("a wait survives the server going away: started before, or while it is down, it resolves once the outcome is stored", { timeout: 60_000 }, async () => {
    const bucket = `restart_${process.pid}_${Date.now().toString(36)}`;
    const waiter = new NatsKvResultStore({ servers: server.url, bucket });
    const writer = new NatsKvResultStore({ servers: server.url, bucket });
    open.push(waiter, writer);
    await waiter.get("warm-up");
    await writer.get("warm-up");
    const before = waiter.wait("before", { timeout: 40_000 });
    await server.kill();
    const during = waiter.wait("during", { timeout: 40_000 });
    await sleep(6_000); // longer than a request timeout: a watch started now fails
    await server.start();
    await eventually(() => writer.set("before", { ok: true, value: 1 }).then(() => true, () => false), 20_000, "the writer to store again");
    await writer.set("during", { ok: true, value: 2 });
    expect(await before).toEqual({ ok: true, value: 1 });
    expect(await during).toEqual({ ok: true, value: 2 });
  });
});
