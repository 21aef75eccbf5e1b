import { DecodeError, type Delivery } from "@tranche/core";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NatsSetupError, NatsTransport, type NatsTransportOptions } from "../src/index.js";
import { readDeadLetters } from "../src/testing.js";
import { testServer, uniqueQueue } from "./support/server.js";

let server: { url: string; close(): Promise<void> };
let nc: NatsConnection;
const open: NatsTransport<unknown>[] = [];

beforeAll(async () => {
  server = await testServer();
  nc = await connect({ servers: server.url });
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});
afterAll(async () => {
  await nc?.close();
  await server?.close();
});

function transport(options: NatsTransportOptions<unknown> = {}): NatsTransport<unknown> {
  const t = new NatsTransport<unknown>({ servers: server.url, ackWait: 2_000, wait: 1_000, ...uniqueQueue(), ...options });
  open.push(t);
  return t;
}

function sameQueue(first: NatsTransport<unknown>, options: NatsTransportOptions<unknown>): NatsTransport<unknown> {
  return transport(options);
}

const never = (): AbortSignal => new AbortController().signal;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Receives until `count` deliveries arrived or `within` ms passed. */
async function receiveAll(t: NatsTransport<unknown>, count: number, within = 10_000): Promise<Delivery<unknown>[]> {
  const got: Delivery<unknown>[] = [];
  const deadline = Date.now() + within;
  while (got.length < count && Date.now() < deadline) got.push(...(await t.receive(count - got.length, never())));
  return got;
}

describe("NatsTransport setup", () => {
  it("creates a work-queue stream and a durable pull consumer with explicit acks and the given limits", async () => {
    const q = uniqueQueue();
    const t = transport({ ...q, ackWait: 3_000, maxDeliver: 7, maxAckPending: 1234 });
    await t.ready();
    const jsm = await jetstreamManager(nc);
    const stream = await jsm.streams.info(q.stream);
    expect(stream.config.retention).toBe("workqueue");
    expect(stream.config.storage).toBe("file");
    expect(stream.config.subjects).toEqual([q.subject, `${q.subject}.dead`]);
    const consumer = await jsm.consumers.info(q.stream, q.durable);
    expect(consumer.config).toMatchObject({ ack_policy: "explicit", filter_subject: q.subject, ack_wait: 3_000_000_000, max_deliver: 7, max_ack_pending: 1234 });
    expect(consumer.config.deliver_subject).toBeUndefined();
  });

  it("reuses a compatible consumer and brings its AckWait, MaxDeliver and MaxAckPending to the options", async () => {
    const q = uniqueQueue();
    await transport({ ...q, ackWait: 3_000 }).ready();
    await transport({ ...q, ackWait: 5_000, maxAckPending: 99 }).ready();
    const consumer = await (await jetstreamManager(nc)).consumers.info(q.stream, q.durable);
    expect(consumer.config).toMatchObject({ ack_wait: 5_000_000_000, max_ack_pending: 99 });
  });

  it("refuses an existing consumer without explicit acks, and a stream that does not capture the subject", async () => {
    const q = uniqueQueue();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: q.stream, subjects: [q.subject, `${q.subject}.dead`] });
    await jsm.consumers.add(q.stream, { durable_name: q.durable, ack_policy: "none", filter_subject: q.subject });
    await expect(transport(q).ready()).rejects.toThrow(NatsSetupError);
    await expect(transport(q).ready()).rejects.toThrow(/ack_policy none/);
    await expect(transport({ ...q, subject: "elsewhere.items", durable: "other" }).ready()).rejects.toThrow(/does not capture subject elsewhere\.items/);
  });

  it("validates options eagerly, quoting the value", () => {
    expect(() => new NatsTransport({ ackWait: 5 })).toThrow("Expected `ackWait` to be a number of ms ≥ 100, got 5");
    expect(() => new NatsTransport({ stream: "a.b" })).toThrow(/`stream`.*got "a\.b"/);
    expect(() => new NatsTransport({ subject: "jobs.*" })).toThrow(/`subject`.*got "jobs\.\*"/);
    expect(() => new NatsTransport({ maxDeliver: 0 })).toThrow("Expected `maxDeliver` to be an integer ≥ 1 or Infinity, got 0");
    expect(() => new NatsTransport({ subject: "a", deadLetterSubject: "a" })).toThrow(/`deadLetterSubject` to be different/);
    expect(() => new NatsTransport({ servers: [] })).toThrow(TypeError);
  });
});

describe("NatsTransport operations", () => {
  it("delivers a sent payload with its id, attempt 1 and a lease of AckWait", async () => {
    const t = transport({ ackWait: 4_000 });
    const id = await t.send({ n: 1 }, { id: "item-1" });
    expect(id).toBe("item-1");
    const before = Date.now();
    const [d] = await receiveAll(t, 1);
    expect(d).toMatchObject({ id: "item-1", payload: { n: 1 }, attempt: 1 });
    expect(d!.leaseUntil).toBeGreaterThanOrEqual(before + 4_000);
    expect(d!.notBefore).toBeUndefined();
  });

  it("returns a partial batch without waiting for the batch to fill or the wait to pass", async () => {
    const t = transport({ wait: 20_000 });
    await t.sendMany([1, 2, 3]);
    const started = Date.now();
    const got = await t.receive(100, never());
    expect(got.map((d) => d.payload)).toEqual([1, 2, 3]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("returns [] after its wait when the queue is empty, and promptly on abort", async () => {
    const t = transport({ wait: 400 });
    await t.ready();
    let started = Date.now();
    expect(await t.receive(10, never())).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);

    const slow = transport({ wait: 60_000 });
    await slow.ready();
    const controller = new AbortController();
    started = Date.now();
    setTimeout(() => controller.abort(), 100);
    expect(await slow.receive(10, controller.signal)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("a receive that waits is woken by a send", async () => {
    const t = transport({ wait: 20_000 });
    await t.ready();
    const started = Date.now();
    const pending = t.receive(10, never());
    await sleep(200);
    await t.send("late");
    const got = await pending;
    expect(got.map((d) => d.payload)).toEqual(["late"]);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("ack removes deliveries for good, and acking twice is harmless", async () => {
    const q = uniqueQueue();
    const t = transport({ ...q, ackWait: 1_000, wait: 300 });
    await t.sendMany(["a", "b"]);
    const got = await receiveAll(t, 2);
    await t.ack(got);
    await t.ack(got);
    await sleep(1_500);
    expect(await t.receive(10, never())).toEqual([]);
    const stream = await (await jetstreamManager(nc)).streams.info(q.stream);
    expect(stream.state.messages).toBe(0);
  });

  it("an unsettled delivery comes back after AckWait with attempt 2 (crash recovery)", async () => {
    // A wait that does not divide AckWait: server 2.9 can lose a redelivery that falls in the
    // instant a pull request expires (it then comes back after another AckWait, see README).
    const t = transport({ ackWait: 1_000, wait: 300 });
    await t.send("x", { id: "crashy" });
    const [first] = await receiveAll(t, 1);
    const taken = Date.now();
    const [again] = await receiveAll(t, 1);
    expect(Date.now() - taken).toBeGreaterThanOrEqual(800);
    expect(again).toMatchObject({ id: "crashy", payload: "x", attempt: 2 });
    expect(first!.attempt).toBe(1);
  });

  it("retry(notBefore) redelivers not before notBefore, with attempt + 1", async () => {
    const t = transport({ wait: 500 });
    await t.send("r", { id: "retry-me" });
    const [d] = await receiveAll(t, 1);
    const notBefore = Date.now() + 1_200;
    await t.retry(d!, notBefore);
    const [again] = await receiveAll(t, 1, 15_000);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore - 5);
    expect(again).toMatchObject({ id: "retry-me", attempt: 2 });
  });

  it("extend keeps a delivery from other consumers past AckWait; release gives it back at once", async () => {
    const q = uniqueQueue();
    const a = transport({ ...q, ackWait: 1_000, wait: 300 });
    const b = sameQueue(a, { ...q, ackWait: 1_000, wait: 300 });
    await a.send("held", { id: "held" });
    const [d] = await receiveAll(a, 1);
    const until = Date.now() + 2_500;
    while (Date.now() < until) {
      await a.extend(d ? [d] : [], Date.now() + 1_000);
      expect(await b.receive(10, never())).toEqual([]);
    }
    const released = Date.now();
    await a.release([d!]);
    const [again] = await receiveAll(b, 1);
    expect(again).toMatchObject({ id: "held", attempt: 2 });
    expect(Date.now() - released).toBeLessThan(900); // well before AckWait would have returned it
  });

  it("deadLetter stores the raw message with reason, subject and attempt, and the item is never delivered again", async () => {
    const q = uniqueQueue();
    const t = transport({ ...q, ackWait: 1_000, wait: 300 });
    await t.send({ bad: true }, { id: "doomed" });
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new RangeError("no such\ncustomer"));
    await sleep(1_500);
    expect(await t.receive(10, never())).toEqual([]);
    const letters = await readDeadLetters(nc, { stream: q.stream, deadLetterSubject: `${q.subject}.dead` });
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ id: "doomed", reason: "no such customer", errorName: "RangeError", subject: q.subject, attempt: 1 });
    expect(JSON.parse(new TextDecoder().decode(letters[0]!.raw))).toEqual({ bad: true });
  });

  it("a delayed send is not delivered before its delay and arrives as attempt 1", async () => {
    const t = transport({ wait: 300 });
    const sentAt = Date.now();
    await t.send("later", { id: "delayed", delay: 1_500 });
    await t.send("now", { id: "now" });
    const first = await t.receive(10, never());
    expect(first.map((d) => d.id)).toEqual(["now"]);
    const [later] = await receiveAll(t, 1, 15_000);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(1_500);
    expect(later).toMatchObject({ id: "delayed", payload: "later", attempt: 1 });
  });

  it("re-sending an id enqueues the item again (no dedupe on the id)", async () => {
    const t = transport();
    await t.send(1, { id: "same" });
    await t.send(2, { id: "same" });
    const got = await receiveAll(t, 2);
    expect(got.map((d) => [d.id, d.payload])).toEqual([["same", 1], ["same", 2]]);
  });

  it("an undecodable payload arrives with a DecodeError and an id from its stream sequence", async () => {
    const q = uniqueQueue();
    const t = transport(q);
    await t.ready();
    const h = headers();
    h.set("Tranche-Id", "garbage-1");
    nc.publish(q.subject, "{not json", { headers: h });
    nc.publish(q.subject, "also not json");
    const got = await receiveAll(t, 2);
    expect(got.map((d) => d.id)).toEqual(["garbage-1", expect.stringMatching(/^seq-\d+$/)]);
    for (const d of got) {
      expect(DecodeError.isInstance(d.error)).toBe(true);
      expect(d.payload).toBeUndefined();
    }
  });

  it("refuses deliveries it did not receive, and works after close no more", async () => {
    const t = transport();
    await expect(t.ack([{ id: "forged", payload: 1, attempt: 1 }])).rejects.toThrow(/was not received by this transport/);
    await t.close();
    await expect(t.receive(1, never())).rejects.toThrow(/closed/);
  });
});
