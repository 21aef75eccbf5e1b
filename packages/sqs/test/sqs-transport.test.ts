import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { type Codec, DecodeError, OversizeError } from "@tranche/core";
import { describe, expect, it } from "vitest";
import { Worker } from "@tranche/worker";
import { SQS_ATTRIBUTES, SqsTransport, SqsTransportError } from "../src/index.js";
import { quick, receiveAll, sleep, useSqs } from "./support/sqs.js";

const sqs = useSqs();

describe("SqsTransport against an SQS endpoint", () => {
  it("sends and receives with the item id, attempt 1 and a lease", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<{ n: number }>({ queueUrl, ...quick });
    const id = await t.send({ n: 1 }, { id: "item-1" });
    const before = Date.now();
    const [d] = await receiveAll(t, 1);
    expect(id).toBe("item-1");
    expect(d).toMatchObject({ id: "item-1", payload: { n: 1 }, attempt: 1 });
    expect(d!.leaseUntil).toBeGreaterThanOrEqual(before - 5_000);
    expect(d!.leaseUntil).toBeLessThanOrEqual(Date.now() + 1_000);
  });

  it("sendMany returns ids in order and one receive covers more than 10 with parallel calls", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<number>({ queueUrl, ...quick });
    const ids = await t.sendMany(Array.from({ length: 45 }, (_, i) => i));
    expect(new Set(ids).size).toBe(45);
    const got = await t.receive(45, AbortSignal.timeout(10_000));
    // One long poll filled to 10, then parallel short polls for the rest.
    expect(got.length).toBeGreaterThan(10);
    const all = [...got, ...(await receiveAll(t, 45 - got.length))];
    expect(all.map((d) => d.payload).sort((a, b) => a - b)).toEqual(Array.from({ length: 45 }, (_, i) => i));
    expect(new Set(all.map((d) => d.id))).toEqual(new Set(ids));
  });

  it("ack deletes: nothing comes back after the visibility timeout", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<number>({ queueUrl, ...quick });
    await t.sendMany(Array.from({ length: 23 }, (_, i) => i));
    const got = await receiveAll(t, 23);
    expect(got).toHaveLength(23);
    await t.ack(got);
    await t.ack(got); // idempotent
    await sleep(1_500);
    expect(await t.receive(10, AbortSignal.timeout(5_000))).toEqual([]);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it("an unacked delivery comes back after the visibility timeout with attempt 2", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    await t.send("x", { id: "a" });
    const [first] = await receiveAll(t, 1);
    const [second] = await receiveAll(t, 1);
    expect(first).toMatchObject({ id: "a", attempt: 1 });
    expect(second).toMatchObject({ id: "a", attempt: 2 });
  });

  it("retry re-sends the message delayed until notBefore, carrying attempt, retries and notBefore, and deletes it", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    await t.send("x", { id: "r" });
    const [d] = await receiveAll(t, 1);
    expect(d).toMatchObject({ attempt: 1, retries: 0 });
    const notBefore = Date.now() + 2_500;
    await t.retry(d!, notBefore);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 1 });
    const [again] = await receiveAll(t, 1);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore);
    expect(again).toMatchObject({ id: "r", payload: "x", attempt: 2, retries: 1, notBefore });
  });

  it("retry past the 12 h visibility budget re-sends with DelaySeconds, keeping id and attempt (a release counts as a delivery)", async () => {
    const queueUrl = await sqs.queue();
    let offset = 0;
    const clock = { now: () => Date.now() + offset, setTimer: setTimeout, clearTimer: clearTimeout } as never;
    const t = sqs.transport<string>({ queueUrl, ...quick, clock });
    await t.send("x", { id: "long" });
    const [d1] = await receiveAll(t, 1);
    await t.release([d1!]);
    const [d2] = await receiveAll(t, 1);
    expect(d2!.attempt).toBe(2);
    offset = 12 * 3_600_000; // twelve hours after the receive
    const notBefore = Date.now() + offset + 1_500;
    await t.retry(d2!, notBefore);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 1 });
    const [d3] = await receiveAll(t, 1);
    expect(Date.now() + offset).toBeGreaterThanOrEqual(notBefore);
    expect(d3).toMatchObject({ id: "long", payload: "x", attempt: 3, notBefore });
  });

  it("a delivery due far ahead goes back to the queue instead of to the worker", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify("later"),
        MessageAttributes: {
          [SQS_ATTRIBUTES.id]: { DataType: "String", StringValue: "later" },
          [SQS_ATTRIBUTES.notBefore]: { DataType: "Number", StringValue: String(Date.now() + 3_600_000) },
        },
      }),
    );
    expect(await t.receive(10, AbortSignal.timeout(10_000))).toEqual([]);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 1 });
  });

  it("send with a delay is not delivered before it and carries notBefore", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    const start = Date.now();
    await t.send("d", { id: "delayed", delay: 1_200 });
    const [d] = await receiveAll(t, 1);
    expect(Date.now() - start).toBeGreaterThanOrEqual(1_200);
    expect(d!.notBefore).toBeGreaterThanOrEqual(start + 1_200);
  });

  it("extend keeps a delivery from other consumers; release hands it over at once", async () => {
    const queueUrl = await sqs.queue();
    const a = sqs.transport<string>({ queueUrl, ...quick });
    const b = sqs.transport<string>({ queueUrl, ...quick });
    await a.send("x", { id: "e" });
    const [d] = await receiveAll(a, 1);
    const until = Date.now() + 4_000;
    await a.extend([d!], until);
    expect(d!.leaseUntil).toBeGreaterThanOrEqual(until);
    expect(await b.receive(1, AbortSignal.timeout(10_000))).toEqual([]); // waits 1 s; the lease is 1 s
    await sleep(1_000);
    expect(await b.receive(1, AbortSignal.timeout(10_000))).toEqual([]);
    await a.release([d!]);
    const [taken] = await b.receive(1, AbortSignal.timeout(10_000));
    expect(taken).toMatchObject({ id: "e", attempt: 2 });
  });

  it("receive resolves [] promptly when its signal aborts a long poll", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, waitTimeSeconds: 20 });
    const controller = new AbortController();
    const start = Date.now();
    setTimeout(() => controller.abort(), 200);
    expect(await t.receive(10, controller.signal)).toEqual([]);
    expect(Date.now() - start).toBeLessThan(10_000);
    const closing = t.receive(10, new AbortController().signal);
    await sleep(100);
    await t.close();
    expect(await closing).toEqual([]);
    await expect(t.receive(1, new AbortController().signal)).rejects.toThrow(/^\[tranche\/sqs\] the transport is closed/);
  });

  it("dead-letters to the DLQ with the reason and raw body, then deletes", async () => {
    const queueUrl = await sqs.queue();
    const deadLetterQueueUrl = await sqs.queue();
    const t = sqs.transport<unknown>({ queueUrl, deadLetterQueueUrl, ...quick });
    await sqs.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: "{not json" }));
    await t.send({ ok: true }, { id: "good" });
    const got = await receiveAll(t, 2);
    const bad = got.find((d) => d.error !== undefined)!;
    const good = got.find((d) => d.error === undefined)!;
    expect(DecodeError.isInstance(bad.error)).toBe(true);
    expect(bad.payload).toBeUndefined();
    expect(good).toMatchObject({ id: "good", payload: { ok: true } });
    await t.deadLetter(bad, bad.error!);
    await t.deadLetter(good, new Error("handler gave up"));
    const out = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: deadLetterQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ["All"] }),
    );
    const byId = new Map(out.Messages!.map((m) => [m.MessageAttributes![SQS_ATTRIBUTES.id]!.StringValue, m]));
    const badDead = byId.get(bad.id)!;
    expect(badDead.Body).toBe("{not json");
    expect(badDead.MessageAttributes![SQS_ATTRIBUTES.error]!.StringValue).toBe("DecodeError");
    expect(badDead.MessageAttributes![SQS_ATTRIBUTES.reason]!.StringValue).toMatch(/cannot decode/);
    const goodDead = byId.get("good")!;
    expect(goodDead.MessageAttributes![SQS_ATTRIBUTES.reason]!.StringValue).toBe("handler gave up");
    expect(goodDead.MessageAttributes![SQS_ATTRIBUTES.attempt]!.StringValue).toBe("1");
    await sleep(1_200);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it("a transport without a dead-letter queue sends, but refuses to receive before it takes a message", async () => {
    const queueUrl = await sqs.queue();
    const producer = sqs.transport<string>({ queueUrl, deadLetterQueueUrl: undefined, ...quick });
    await producer.send("x", { id: "kept" });
    await producer.sendMany(["y"]);
    const error = await producer.receive(10, AbortSignal.timeout(5_000)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/^\[tranche\/sqs\] Expected `deadLetterQueueUrl` to be a queue URL on a transport that receives \(or set `nativeDeadLetter: true`.*got undefined$/);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 2, inFlight: 0, delayed: 0 });
    // A delivery another transport received cannot be dead-lettered through it either; it stays put.
    const [d] = await receiveAll(sqs.transport<string>({ queueUrl, ...quick }), 1);
    const refused = await producer.deadLetter(d!, new Error("no")).catch((e: unknown) => e);
    expect(SqsTransportError.isInstance(refused)).toBe(true);
    expect((refused as Error).message).toMatch(/^\[tranche\/sqs\] deadLetter: .*deadLetterQueueUrl/);
    expect((await sqs.count(queueUrl)).inFlight).toBe(1);
  });

  it("a Worker on a transport without a dead-letter queue is told at its first receive and takes nothing", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, deadLetterQueueUrl: undefined, ...quick });
    await t.send("x");
    const ran: string[] = [];
    const worker = new Worker<string>(t, async (requests) => void ran.push(...requests.map((r) => r.payload)), { ioBackoff: { delay: 50 } });
    const first = new Promise<Error>((resolve) => worker.once("error", resolve));
    const started = Date.now();
    await worker.start();
    const error = await first;
    await worker.close();
    expect(Date.now() - started).toBeLessThan(5_000); // no long poll, no lease, no message: at once
    expect(error.message).toMatch(/receive/);
    expect(error.cause).toBeInstanceOf(TypeError);
    expect((error.cause as Error).message).toMatch(/`deadLetterQueueUrl`.*`nativeDeadLetter: true`/);
    expect(ran).toEqual([]);
    expect(worker.stats.transport.received).toBe(0);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 1, inFlight: 0, delayed: 0 });
  });

  it("with nativeDeadLetter, deadLetter hands the message back and the queue's RedrivePolicy moves it", async () => {
    const deadLetterQueueUrl = await sqs.queue();
    const { Attributes } = await sqs.client.send(new GetQueueAttributesCommand({ QueueUrl: deadLetterQueueUrl, AttributeNames: ["QueueArn"] }));
    const RedrivePolicy = JSON.stringify({ deadLetterTargetArn: Attributes!.QueueArn, maxReceiveCount: 2 });
    const queueUrl = await sqs.queue({ attributes: { RedrivePolicy } });
    const t = sqs.transport<string>({ queueUrl, deadLetterQueueUrl: undefined, nativeDeadLetter: true, ...quick });
    await t.send("poison", { id: "p" });
    for (const attempt of [1, 2]) {
      const [d] = await receiveAll(t, 1, 5_000);
      expect(d).toMatchObject({ id: "p", attempt });
      await t.deadLetter(d!, new Error("gave up")); // released at once, not held until its lease ends
    }
    expect(await t.receive(10, AbortSignal.timeout(5_000))).toEqual([]); // the third receive is the RedrivePolicy's
    const moved = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: deadLetterQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    expect(moved.Messages?.map((m) => m.Body)).toEqual(['"poison"']);
  });

  it("a codec that makes bytes round-trips through base64", async () => {
    const queueUrl = await sqs.queue();
    const codec: Codec<Uint8Array> = { encode: (p) => p, decode: (raw) => (typeof raw === "string" ? new TextEncoder().encode(raw) : raw) };
    const t = sqs.transport<Uint8Array>({ queueUrl, codec, ...quick });
    await t.send(new Uint8Array([0, 1, 2, 255]));
    const [d] = await receiveAll(t, 1);
    expect([...d!.payload]).toEqual([0, 1, 2, 255]);
  });

  it("refuses an item over the message limit with OversizeError and sends nothing of the call", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    const big = "x".repeat(1_048_576);
    const error = await t.sendMany(["small", big]).catch((e: unknown) => e);
    expect(OversizeError.isInstance(error)).toBe(true);
    expect((error as OversizeError).limit).toBe(1_048_576);
    expect((error as Error).message).toMatch(/^\[tranche\/sqs\]/);
    expect(await sqs.count(queueUrl)).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
    const limited = sqs.transport<string>({ queueUrl, maxMessageBytes: 262_144 });
    await expect(limited.send("y".repeat(262_144))).rejects.toThrow(/over the limit of 262144/);
  });

  it("splits SendMessageBatch by the 1 MiB request limit, not only by 10", async () => {
    const queueUrl = await sqs.queue();
    const t = sqs.transport<string>({ queueUrl, ...quick });
    // 8 × 300 KB = 2.4 MB: one request of 8 would be refused (BatchRequestTooLong).
    const payloads = Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(300_000, "."));
    await t.sendMany(payloads);
    expect((await sqs.count(queueUrl)).visible).toBe(8);
  });

  it("FIFO: deduplicates by item id, keeps group order and holds a group behind a retried item", async () => {
    const queueUrl = await sqs.queue({ fifo: true });
    const t = sqs.transport<{ g: string; n: number }>({ queueUrl, ...quick, messageGroupId: (p) => p.g });
    await t.send({ g: "a", n: 0 }, { id: "a0" });
    await t.send({ g: "a", n: 0 }, { id: "a0" }); // same id: deduplicated
    await t.sendMany([{ g: "a", n: 1 }, { g: "b", n: 0 }, { g: "a", n: 2 }]);
    const order: string[] = [];
    const retriesSeen: (number | undefined)[] = [];
    let retried = false;
    const end = Date.now() + 20_000;
    while (order.length < 4 && Date.now() < end) {
      for (const d of await t.receive(10, AbortSignal.timeout(5_000))) {
        if (d.payload.g === "a" && d.payload.n === 0 && !retried) {
          retried = true;
          await t.retry(d, Date.now() + 1_500);
          continue;
        }
        order.push(`${d.payload.g}${d.payload.n}@${d.attempt}`);
        retriesSeen.push(d.retries);
        await t.ack([d]);
      }
    }
    expect(order.filter((x) => x.startsWith("a"))).toEqual(["a0@2", "a1@1", "a2@1"]);
    // A FIFO retry keeps its message, whose attributes cannot change: retries are not known there.
    expect(retriesSeen.every((r) => r === undefined)).toBe(true);
    expect(order).toContain("b0@1");
  });

  it("validates options eagerly with a TypeError that quotes the value", async () => {
    expect(() => new SqsTransport({ queueUrl: "nope" })).toThrow(/Expected `queueUrl` to be a queue URL, got "nope"/);
    const queueUrl = "http://localhost:1/000000000000/q";
    expect(() => new SqsTransport({ queueUrl, waitTimeSeconds: 21 })).toThrow(/Expected `waitTimeSeconds` to be an integer 0..20, got 21/);
    expect(() => new SqsTransport({ queueUrl, visibilityTimeout: -1 })).toThrow(TypeError);
    expect(() => new SqsTransport({ queueUrl, maxReceive: 0 })).toThrow(/`maxReceive`/);
    expect(() => new SqsTransport({ queueUrl, maxMessageBytes: 2_000_000 })).toThrow(/`maxMessageBytes`/);
    expect(() => new SqsTransport({ queueUrl, messageGroupId: "" })).toThrow(/`messageGroupId`/);
    expect(() => new SqsTransport({ queueUrl, client: {} as never })).toThrow(/`client`/);
    const t = new SqsTransport({ queueUrl, region: "us-east-1" });
    expect(t.capabilities).toEqual({ maxReceive: 100, nativeDelay: true, lease: true, nativeDeadLetter: false });
    expect(new SqsTransport({ queueUrl: `${queueUrl}.fifo`, region: "us-east-1", nativeDeadLetter: true }).capabilities.nativeDeadLetter).toBe(true);
    await expect(t.ack([{ id: "x", payload: 1, attempt: 1 }])).rejects.toThrow(/delivery received from an SqsTransport/);
    await t.close();
  });
});
