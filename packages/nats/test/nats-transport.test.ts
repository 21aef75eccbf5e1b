import { DecodeError, TransportError, type Delivery } from "@tranche/core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
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
  it("a stream full to its limits refuses a send (retryable, with the server's reason) and drops nothing", async () => {
    const q = uniqueQueue();
    const t = transport({ ...q, streamConfig: { max_msgs: 2 } });
    await t.send("a");
    await t.send("b");
    const refused = await t.send("c").catch((e: unknown) => e);
    expect(TransportError.isInstance(refused) && (refused as TransportError).retryable, String(refused)).toBe(true);
    expect(String((refused as Error).message)).toMatch(/maximum messages exceeded/i);
    expect((await receiveAll(t, 2)).map((d) => d.payload)).toEqual(["a", "b"]);
  });

  it("ready creates a work-queue stream; the first receive creates a durable pull consumer with explicit acks, the given limits and no MaxDeliver", async () => {
    const q = uniqueQueue();
    const t = transport({ ...q, ackWait: 3_000, maxAckPending: 1234, wait: 400 });
    await t.ready();
    const jsm = await jetstreamManager(nc);
    const stream = await jsm.streams.info(q.stream);
    expect(stream.config.retention).toBe("workqueue");
    expect(stream.config.storage).toBe("file");
    expect(stream.config.discard).toBe("new");
    expect(stream.config.subjects).toEqual([q.subject, `${q.subject}.dead`]);
    await expect(jsm.consumers.info(q.stream, q.durable)).rejects.toThrow(/consumer not found/);
    expect(await t.receive(1, never())).toEqual([]);
    const consumer = await jsm.consumers.info(q.stream, q.durable);
    expect(consumer.config).toMatchObject({ ack_policy: "explicit", filter_subject: q.subject, ack_wait: 3_000_000_000, max_deliver: -1, max_ack_pending: 1234 });
    expect(consumer.config.deliver_subject).toBeUndefined();
    const ledger = await jsm.streams.info(`${q.stream}_LEDGER`);
    expect(ledger.config).toMatchObject({ subjects: [`${q.subject}.ledger.>`], retention: "limits", storage: "file", max_age: 86_400_000_000_000 });
  });

  it("a receiving transport reuses a compatible consumer and brings its AckWait, MaxDeliver and MaxAckPending to its options", async () => {
    const q = uniqueQueue();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: q.stream, subjects: [q.subject, `${q.subject}.dead`], retention: "workqueue" });
    await jsm.consumers.add(q.stream, { durable_name: q.durable, ack_policy: "explicit", filter_subject: q.subject, max_deliver: 5 });
    await transport({ ...q, ackWait: 3_000, wait: 400 }).receive(1, never());
    await transport({ ...q, ackWait: 5_000, maxAckPending: 99, wait: 400 }).receive(1, never());
    const consumer = await jsm.consumers.info(q.stream, q.durable);
    expect(consumer.config).toMatchObject({ ack_wait: 5_000_000_000, max_ack_pending: 99, max_deliver: -1 });
  });

  it("a producer-only transport never changes the consumer's config, whatever its options", async () => {
    const q = uniqueQueue();
    const worker = transport({ ...q, ackWait: 4_000, maxAckPending: 77, wait: 400 });
    await worker.receive(1, never());
    const jsm = await jetstreamManager(nc);
    const before = (await jsm.consumers.info(q.stream, q.durable)).config;
    const producer = transport({ ...q, ackWait: 30_000, maxAckPending: 20_000 });
    await producer.ready();
    await producer.send("one");
    await producer.sendMany(["two", "three"]);
    const after = (await jsm.consumers.info(q.stream, q.durable)).config;
    expect(after).toMatchObject({ ack_wait: 4_000_000_000, max_ack_pending: 77 });
    expect(after).toEqual(before);
    expect((await receiveAll(worker, 3)).map((d) => d.payload).sort()).toEqual(["one", "three", "two"]);
  });

  it("a producer left on the default durable sends to a stream whose workers use another durable", async () => {
    const q = uniqueQueue();
    const worker = transport({ ...q, wait: 400 });
    await worker.receive(1, never());
    const producer = new NatsTransport<unknown>({ servers: server.url, stream: q.stream, subject: q.subject });
    open.push(producer);
    await producer.send("hello", { id: "from-producer" });
    expect(await receiveAll(worker, 1)).toMatchObject([{ id: "from-producer", payload: "hello" }]);
    const names: string[] = [];
    for await (const c of (await jetstreamManager(nc)).consumers.list(q.stream)) names.push(c.name);
    expect(names).toEqual([q.durable]);
  });

  it("a producer creates the stream when its publish finds none, without a setup call", async () => {
    const q = uniqueQueue();
    const producer = transport(q);
    await producer.send("first");
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(q.stream)).state.messages).toBe(1);
    await jsm.streams.delete(q.stream);
    await producer.send("after the stream was deleted");
    expect((await jsm.streams.info(q.stream)).state.messages).toBe(1);
  });

  it("a receiving transport refuses an existing consumer without explicit acks, a stream that does not capture the subject, and a second durable on a work-queue subject", async () => {
    const q = uniqueQueue();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: q.stream, subjects: [q.subject, `${q.subject}.dead`] });
    await jsm.consumers.add(q.stream, { durable_name: q.durable, ack_policy: "none", filter_subject: q.subject });
    const refused = await transport(q).receive(1, never()).catch((e: unknown) => e);
    expect(NatsSetupError.isInstance(refused)).toBe(true);
    expect(refused).toMatchObject({ retryable: false, message: expect.stringMatching(/ack_policy none/) });
    await expect(transport({ ...q, subject: "elsewhere.items", durable: "other" }).ready()).rejects.toThrow(/does not capture subject elsewhere\.items/);
    const wq = uniqueQueue();
    await transport({ ...wq, wait: 400 }).receive(1, never());
    const second = await transport({ ...wq, durable: "another" }).receive(1, never()).catch((e: unknown) => e);
    expect(second).toMatchObject({ name: "NatsSetupError", retryable: false, message: expect.stringMatching(/not unique/) });
  });

  it("validates options eagerly, quoting the value", () => {
    expect(() => new NatsTransport({ ackWait: 5 })).toThrow("Expected `ackWait` to be a number of ms ≥ 100, got 5");
    expect(() => new NatsTransport({ stream: "a.b" })).toThrow(/`stream`.*got "a\.b"/);
    expect(() => new NatsTransport({ subject: "jobs.*" })).toThrow(/`subject`.*got "jobs\.\*"/);
    expect(() => new NatsTransport({ subject: "a", deadLetterSubject: "a" })).toThrow(/`deadLetterSubject` to be different/);
    expect(() => new NatsTransport({ servers: [] })).toThrow(TypeError);
    expect(() => new NatsTransport({ timeout: 0 })).toThrow("Expected `timeout` to be a number of ms ≥ 100, got 0");
    expect(() => new NatsTransport({ ledger: true as unknown as false })).toThrow(/`ledger` to be false or an object, got true/);
    expect(() => new NatsTransport({ subject: "a.b", ledger: { subject: "a" } })).toThrow(/`ledger.subject` to be a prefix that captures neither/);
    expect(() => new NatsTransport({ ledger: { maxAge: 10 } })).toThrow(/`ledger.maxAge` to be a number of ms ≥ 1000, got 10/);
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

  it("retry(notBefore) redelivers not before notBefore, with attempt + 1 and retries + 1", async () => {
    const t = transport({ wait: 500 });
    await t.send("r", { id: "retry-me" });
    const [d] = await receiveAll(t, 1);
    expect(d).toMatchObject({ attempt: 1, retries: 0 });
    const notBefore = Date.now() + 1_200;
    await t.retry(d!, notBefore);
    const [again] = await receiveAll(t, 1, 15_000);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore - 5);
    expect(again).toMatchObject({ id: "retry-me", payload: "r", attempt: 2, retries: 1 });
    await t.retry(again!, Date.now());
    const [third] = await receiveAll(t, 1, 15_000);
    expect(third).toMatchObject({ id: "retry-me", attempt: 3, retries: 2 });
    expect(third!.notBefore).toBeUndefined();
  });

  it("a repeated retry counts one retry, and the item runs once more", async () => {
    const q = uniqueQueue();
    // A wait well apart from the retry's delay (see "an unsettled delivery comes back after AckWait").
    const t = transport({ ...q, wait: 1_000 });
    await t.send("r", { id: "twice" });
    const [d] = await receiveAll(t, 1);
    const notBefore = Date.now() + 300;
    await t.retry(d!, notBefore);
    await t.retry(d!, notBefore); // the worker repeats a call whose reply it lost
    const again = await receiveAll(t, 1);
    expect(again.map((x) => [x.id, x.attempt, x.retries])).toEqual([["twice", 2, 1]]);
    await t.ack(again);
    const stream = await (await jetstreamManager(nc)).streams.info(q.stream, { subjects_filter: q.subject });
    expect(stream.state.subjects?.[q.subject] ?? 0).toBe(0);
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
    await a.release([d!]); // a repeated release records one release
    const again = await receiveAll(b, 1);
    expect(Date.now() - released).toBeLessThan(900); // well before AckWait would have returned it
    // A release does not count as a delivery: the next one has the same attempt.
    expect(again).toMatchObject([{ id: "held", attempt: 1, retries: 0 }]);
    await b.ack(again);
    const stream = await (await jetstreamManager(nc)).streams.info(q.stream, { subjects_filter: q.subject });
    expect(stream.state.subjects?.[q.subject] ?? 0).toBe(0);
  });

  it("deadLetter stores the raw message once with reason, subject, attempt and retries, and the item is never delivered again", async () => {
    const q = uniqueQueue();
    const t = transport({ ...q, ackWait: 1_000, wait: 300 });
    await t.send({ bad: true }, { id: "doomed" });
    const [first] = await receiveAll(t, 1);
    await t.retry(first!, Date.now());
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new RangeError("no such\ncustomer"));
    await t.deadLetter(d!, new RangeError("no such\ncustomer")); // repeated after a lost reply
    await sleep(1_500);
    expect(await t.receive(10, never())).toEqual([]);
    const letters = await readDeadLetters(nc, { stream: q.stream, deadLetterSubject: `${q.subject}.dead` });
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ id: "doomed", reason: "no such customer", errorName: "RangeError", subject: q.subject, attempt: 2, retries: 1 });
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

  it("a payload over the server's max_payload, and a stream config the server refuses, reject with a non-retryable TransportError", async () => {
    const t = transport();
    const tooLarge = await t.send("x".repeat(2 * 1024 * 1024)).catch((e: unknown) => e);
    expect(tooLarge).toMatchObject({ name: "TransportError", retryable: false, message: expect.stringMatching(/send failed: .*max_payload/) });
    const replicated = await transport({ streamConfig: { num_replicas: 3 } }).ready().catch((e: unknown) => e);
    expect(replicated).toMatchObject({ name: "TransportError", retryable: false, message: expect.stringMatching(/replicas/) });
  });

  it("refuses deliveries it did not receive, and works after close no more", async () => {
    const t = transport();
    await expect(t.ack([{ id: "forged", payload: 1, attempt: 1 }])).rejects.toThrow(/was not received by this transport/);
    await t.close();
    await expect(t.receive(1, never())).rejects.toThrow(/closed/);
  });
});

describe("NatsTransport headers", () => {
  it("sends headers as NATS headers, reads another producer's (not Tranche-* or Nats-*), and keeps them in a dead letter", async () => {
    const q = uniqueQueue();
    const t = transport(q);
    await t.ready();
    await t.send("mine", { id: "mine", headers: { traceparent: "00-abc-def-01", tenant: "acme ✓" } });
    const h = headers();
    h.set("traceparent", "00-fed-cba-01");
    h.set("Nats-Expected-Stream", q.stream);
    await jetstream(nc).publish(q.subject, '"theirs"', { headers: h });
    const got = await receiveAll(t, 2);
    expect(got.map((d) => d.headers)).toEqual([{ traceparent: "00-abc-def-01", tenant: "acme ✓" }, { traceparent: "00-fed-cba-01" }]);
    await t.deadLetter(got[0]!, new Error("poison"));
    const letter = await (await jetstreamManager(nc)).streams.getMessage(q.stream, { last_by_subj: `${q.subject}.dead` });
    expect(letter?.header.get("traceparent")).toBe("00-abc-def-01");
    expect(letter?.header.get("tenant")).toBe("acme ✓");
  });

  it("refuses header names of tranche's or the server's own, and values NATS would not carry unchanged", async () => {
    const t = transport();
    await expect(t.send("x", { headers: { "tranche-id": "forged" } })).rejects.toThrow(TypeError);
    await expect(t.send("x", { headers: { "Nats-Msg-Id": "1" } })).rejects.toThrow(TypeError);
    await expect(t.send("x", { headers: { "bad:name": "1" } })).rejects.toThrow(TypeError);
    await expect(t.sendMany(["x"], { headers: { multi: "line\nbreak" } })).rejects.toThrow(TypeError);
    await expect(t.send("x", { headers: { padded: " v " } })).rejects.toThrow(TypeError);
  });
});
