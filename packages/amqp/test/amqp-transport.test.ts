import { TransportError, type Delivery } from "@tranche/core";
import { connect, type ChannelModel } from "amqplib";
import { TcpProxy } from "@tranche/conformance/net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Consumer } from "../src/consumer.js";
import { AmqpTopologyError, AmqpTransport, Header, type AmqpTransportOptions } from "../src/index.js";
import { delayBucket } from "../src/topology.js";
import { deleteQueues, freePort, queueDepths, readDeadLetters } from "../src/testing.js";
import { AMQP_URL, rejection, requireBroker, uniqueQueue } from "./support/server.js";

let admin: ChannelModel;
const open: AmqpTransport<unknown>[] = [];
const made = new Set<string>();

beforeAll(async () => {
  await requireBroker();
  admin = await connect(AMQP_URL);
});
afterEach(async () => {
  const closing = open.splice(0);
  await Promise.all(closing.map((t) => t.close()));
  for (const t of closing) for (const q of t.queues()) made.add(q);
});
afterAll(async () => {
  await deleteQueues(AMQP_URL, made);
  await admin?.close();
});

function transport(options: AmqpTransportOptions<unknown> = {}): AmqpTransport<unknown> {
  const queue = options.queue ?? uniqueQueue();
  made.add(queue).add(`${queue}.dead`);
  const t = new AmqpTransport<unknown>({ url: AMQP_URL, wait: 300, ...options, queue });
  open.push(t);
  return t;
}

const never = (): AbortSignal => new AbortController().signal;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Receives until `count` deliveries arrived or `within` ms passed. */
async function receiveAll(t: AmqpTransport<unknown>, count: number, within = 10_000): Promise<Delivery<unknown>[]> {
  const got: Delivery<unknown>[] = [];
  const deadline = Date.now() + within;
  while (got.length < count && Date.now() < deadline) got.push(...(await t.receive(count - got.length, never())));
  return got;
}


/** A worker transport whose connection goes through a TCP proxy, to cut it as a network fault would. */
async function throughProxy(): Promise<{ proxy: TcpProxy; t: AmqpTransport<unknown> }> {
  const target = new URL(AMQP_URL);
  const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port || 5672) });
  const through = new URL(AMQP_URL);
  through.port = String(proxy.port);
  return { proxy, t: transport({ url: through.toString() }) };
}

/** Publishes raw bytes straight to a queue, as another application would. */
async function publishRaw(queue: string, content: string, properties: Record<string, unknown> = {}): Promise<void> {
  const channel = await admin.createConfirmChannel();
  channel.sendToQueue(queue, Buffer.from(content), { persistent: true, ...properties });
  await channel.waitForConfirms();
  await channel.close();
}

async function checkQueue(queue: string): Promise<boolean> {
  const channel = await admin.createChannel();
  channel.on("error", () => {});
  try {
    await channel.checkQueue(queue);
    await channel.close();
    return true;
  } catch {
    return false;
  }
}

describe("AmqpTransport topology", () => {
  it("a worker declares a durable quorum work queue and dead-letter queue; a classic option exists", async () => {
    const quorum = transport();
    await quorum.ready();
    const [queue, dead] = quorum.queues();
    expect(await checkQueue(queue as string)).toBe(true);
    expect(dead).toBe(`${queue}.dead`);
    const classic = transport({ queueType: "classic" });
    await classic.ready();
    // The two declare their queues with their own type: redeclaring one with the other type is refused.
    const clash = transport({ queue: queue as string, queueType: "classic" });
    const error = await rejection(clash.ready());
    expect(AmqpTopologyError.isInstance(error)).toBe(true);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/exists with other settings.*x-queue-type/);
  });

  it("a producer never declares: a send to a missing queue fails, not retryable, naming the queue, and creates nothing", async () => {
    const queue = uniqueQueue("p");
    const producer = transport({ queue });
    const error = await rejection(producer.send({ n: 1 }));
    expect(TransportError.isInstance(error)).toBe(true);
    expect(error.retryable).toBe(false);
    expect(error.message).toContain(`no queue "${queue}"`);
    expect(await checkQueue(queue)).toBe(false);
    expect(producer.queues()).toEqual([]);
  });

  it("a queue deleted under a consuming worker is declared again and consumed from", async () => {
    const worker = transport();
    await worker.ready();
    const queue = worker.queues()[0] as string;
    const first = await worker.send("before");
    expect((await receiveAll(worker, 1)).map((d) => d.id)).toEqual([first]);
    await (await admin.createChannel()).deleteQueue(queue);
    // The broker cancels the consumer; the next receive declares the queue again.
    await worker.receive(10, never());
    const second = await worker.send("after");
    const got = await receiveAll(worker, 1);
    expect(got.map((d) => d.id)).toEqual([second]);
    await worker.ack(got);
  });

  it("a copy whose queue was deleted under the transport is returned, and goes out again before the ack: a retry via the work queue, a dead letter to its queue declared anew", async () => {
    const t = transport();
    await t.ready();
    const queue = t.queues()[0] as string;
    await t.sendMany(["a", "b", "c"]);
    const [a, b, c] = await receiveAll(t, 3);
    // The delay queue is declared by the first retry, and empty again once its copy came back.
    await t.retry(a!, Date.now() + 1_500);
    await t.ack(await receiveAll(t, 1, 5_000));
    const channel = await admin.createChannel();
    // Declared by this connection a moment ago, so the transport does not declare them again before publishing.
    await channel.deleteQueue(`${queue}.delay.1500`);
    await channel.deleteQueue(`${queue}.dead`);
    await channel.close();
    const notBefore = Date.now() + 1_500;
    await t.retry(b!, notBefore);
    await t.deadLetter(c!, new Error("dead"));
    expect((await readDeadLetters(AMQP_URL, `${queue}.dead`)).map((l) => l.id)).toEqual([c!.id]);
    const again = await receiveAll(t, 1, 8_000);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore);
    expect(again).toMatchObject([{ id: b!.id, retries: 1, attempt: 2 }]);
    await t.ack(again);
    expect(await receiveAll(t, 1, 1_000)).toEqual([]);
  });

  it("delay queues round the delay up to two significant digits, at least a second", () => {
    expect(delayBucket(1500)).toBe(1500);
    expect(delayBucket(1493.2)).toBe(1500);
    expect(delayBucket(1501)).toBe(1600);
    expect(delayBucket(10)).toBe(1000);
    expect(delayBucket(61_234)).toBe(62_000);
    expect(delayBucket(3_600_000)).toBe(3_600_000);
    expect(delayBucket(1e12)).toBe(2_000_000_000);
  });
});

describe("AmqpTransport deliveries", () => {
  it("attempt counts deliveries from x-delivery-count; a channel that closes puts its deliveries back", async () => {
    const a = transport();
    await a.ready();
    const id = await a.send("crash me");
    const [first] = await receiveAll(a, 1);
    expect(first).toMatchObject({ id, attempt: 1, retries: 0 });
    await a.close();
    const b = transport({ queue: a.queues()[0] as string });
    const [second] = await receiveAll(b, 1);
    expect(second).toMatchObject({ id, attempt: 2, retries: 0 });
    await b.ack([second as Delivery<unknown>]);
  });

  it("retry publishes the copy, confirmed, then acks the original; a repeated call publishes nothing more", async () => {
    const t = transport();
    await t.ready();
    const queue = t.queues()[0] as string;
    const id = await t.send({ job: 1 });
    const [first] = await receiveAll(t, 1);
    const notBefore = Date.now() + 1_500;
    await t.retry(first as Delivery<unknown>, notBefore);
    await t.retry(first as Delivery<unknown>, notBefore);
    expect(t.queues()).toContain(`${queue}.delay.1500`);
    const depths = await queueDepths(AMQP_URL, [queue, `${queue}.delay.1500`]);
    expect(depths.get(`${queue}.delay.1500`)).toBe(1);
    const again = await receiveAll(t, 1, 5_000);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore);
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ id, attempt: 2, retries: 1, payload: { job: 1 } });
    expect(again[0]?.notBefore).toBeUndefined();
    await t.ack(again);
    expect((await receiveAll(t, 1, 2_500)).length).toBe(0);
  });

  it("a short delay is not held up behind a long one (one delay queue per rounded delay)", async () => {
    const t = transport();
    await t.ready();
    await t.sendMany(["long", "short"]);
    const got = await receiveAll(t, 2);
    const start = Date.now();
    const byPayload = new Map(got.map((d) => [d.payload, d]));
    await t.retry(byPayload.get("long") as Delivery<unknown>, start + 30_000);
    await t.retry(byPayload.get("short") as Delivery<unknown>, start + 1_500);
    const [back] = await receiveAll(t, 1, 6_000);
    expect(back?.payload).toBe("short");
    expect(Date.now() - start).toBeLessThan(5_000);
    await t.ack([back as Delivery<unknown>]);
  });

  it("a retry under a second goes straight back with its notBefore, for the worker to hold", async () => {
    const t = transport();
    await t.ready();
    const id = await t.send("soon");
    const [first] = await receiveAll(t, 1);
    const notBefore = Date.now() + 600;
    await t.retry(first as Delivery<unknown>, notBefore);
    const [again] = await receiveAll(t, 1);
    expect(again).toMatchObject({ id, attempt: 2, retries: 1 });
    if (Date.now() < notBefore) expect(again?.notBefore).toBe(Math.ceil(notBefore));
    await t.ack([again as Delivery<unknown>]);
  });

  it("a message that arrives early waits in a delay queue without counting a delivery", async () => {
    const t = transport();
    await t.ready();
    const queue = t.queues()[0] as string;
    const notBefore = Date.now() + 2_000;
    await publishRaw(queue, JSON.stringify("early"), { messageId: "early-1", headers: { [Header.notBefore]: notBefore } });
    const got = await receiveAll(t, 1, 6_000);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore);
    expect(got[0]).toMatchObject({ id: "early-1", payload: "early", attempt: 1, retries: 0 });
    await t.ack(got);
  });

  it("release puts deliveries back without counting a delivery; a delivery whose channel closed is released by doing nothing", async () => {
    const a = transport();
    await a.ready();
    const queue = a.queues()[0] as string;
    const ids = await a.sendMany(["x", "y"]);
    const got = await receiveAll(a, 2);
    await a.release(got);
    await a.release(got);
    const again = await receiveAll(a, 2);
    expect(again.map((d) => d.attempt)).toEqual([1, 1]);
    expect(new Set(again.map((d) => d.id))).toEqual(new Set(ids));
    await a.close();
    // The connection is gone: the broker put the messages back (counting that delivery); releasing is a no-op.
    await expect(a.release(again)).rejects.toThrow(/closed/);
    const b = transport({ queue });
    const third = await receiveAll(b, 2);
    expect(third.map((d) => d.attempt)).toEqual([2, 2]);
    await b.ack(third);
  });

  it("settling a delivery whose channel has closed: ack, retry and deadLetter fail, not retryable; release does nothing", async () => {
    const { proxy, t } = await throughProxy();
    await t.ready();
    await t.sendMany([1, 2, 3, 4]);
    const got = await receiveAll(t, 4);
    // The connection drops under the transport, as in a network fault.
    proxy.cut();
    proxy.heal();
    await sleep(200);
    for (const [call, run] of [
      ["ack", () => t.ack([got[0] as Delivery<unknown>])],
      ["retry", () => t.retry(got[1] as Delivery<unknown>, Date.now() + 5_000)],
      ["deadLetter", () => t.deadLetter(got[2] as Delivery<unknown>, new Error("x"))],
    ] as const) {
      const error = await rejection(run());
      expect(TransportError.isInstance(error), call).toBe(true);
      expect(error.retryable, call).toBe(false);
      expect(error.message).toMatch(new RegExp(`${call} failed: the channel that delivered .* has closed`));
    }
    await t.release([got[3] as Delivery<unknown>]);
    // The broker put all four back; the transport reconnects and receives them again.
    const again = await receiveAll(t, 4);
    expect(again.map((d) => d.attempt)).toEqual([2, 2, 2, 2]);
    await t.ack(again);
    await t.close();
    await proxy.close();
  });

  it("deadLetter writes one dead letter with the reason, attempt, retries and queue, even when repeated", async () => {
    const t = transport();
    await t.ready();
    const queue = t.queues()[0] as string;
    const id = await t.send({ bad: true });
    const [first] = await receiveAll(t, 1);
    await t.retry(first as Delivery<unknown>, Date.now());
    const [second] = await receiveAll(t, 1);
    const reason = new RangeError("line one\nline two");
    await t.deadLetter(second as Delivery<unknown>, reason);
    await t.deadLetter(second as Delivery<unknown>, reason);
    await t.ack([second as Delivery<unknown>]);
    const letters = await readDeadLetters(AMQP_URL, `${queue}.dead`);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ id, reason: "line one line two", errorName: "RangeError", attempt: 2, retries: 1, queue });
    expect(JSON.parse(letters[0]?.raw.toString() ?? "")).toEqual({ bad: true });
    expect((await receiveAll(t, 1, 1_000)).length).toBe(0);
  });

  it("an undecodable message gets an id from its bytes, the same on every delivery, and dead-letters with its raw bytes", async () => {
    const t = transport();
    await t.ready();
    const queue = t.queues()[0] as string;
    await publishRaw(queue, "{not json");
    const [first] = await receiveAll(t, 1);
    expect(first?.error?.name).toBe("DecodeError");
    await t.release([first as Delivery<unknown>]);
    const [again] = await receiveAll(t, 1);
    expect(again?.id).toBe(first?.id);
    await t.deadLetter(again as Delivery<unknown>, again?.error as Error);
    const letters = await readDeadLetters(AMQP_URL, `${queue}.dead`);
    expect(letters.map((l) => [l.id, l.raw.toString(), l.errorName])).toEqual([[first?.id, "{not json", "DecodeError"]]);
  });

  it("prefetch bounds what the broker pushes; an idle transport gives back what it did not hand out, uncounted", async () => {
    const a = transport({ prefetch: 5, wait: 200 });
    await a.ready();
    const queue = a.queues()[0] as string;
    await a.sendMany(Array.from({ length: 20 }, (_, i) => i));
    const one = await a.receive(1, never());
    expect(one).toHaveLength(1);
    // 5 unacked on a's channel (1 handed out, 4 buffered), 15 ready.
    expect((await queueDepths(AMQP_URL, [queue])).get(queue)).toBe(15);
    await sleep(800);
    // Idle for longer than `wait`: the 4 buffered went back to the queue.
    expect((await queueDepths(AMQP_URL, [queue])).get(queue)).toBe(19);
    const b = transport({ queue, prefetch: 50 });
    const rest = await receiveAll(b, 19);
    expect(rest).toHaveLength(19);
    expect(rest.every((d) => d.attempt === 1)).toBe(true);
    await b.ack(rest);
    await a.ack(one);
  });

  it("overlapping acks, retries and dead letters each settle once: the retried come back, the dead are written, the rest stay acked", async () => {
    const t = transport({ prefetch: 200 });
    await t.ready();
    const ids = await t.sendMany(Array.from({ length: 60 }, (_, i) => i));
    const got = await receiveAll(t, 60);
    const [retried, dead, acked] = [got.slice(0, 10), got.slice(10, 20), got.slice(20)];
    // Spread over a few ms, so that settlements come while earlier ones wait for their confirms and round trips.
    const later = (i: number, call: () => Promise<void>): Promise<void> => sleep(i).then(call);
    await Promise.all([
      ...acked.map((d, i) => later(i, () => t.ack([d]))),
      ...retried.map((d, i) => later(i * 4, () => t.retry(d, Date.now()))),
      ...dead.map((d, i) => later(i * 4 + 2, () => t.deadLetter(d, new Error("dead")))),
    ]);
    const again = await receiveAll(t, 10);
    expect(again.map((d) => d.id).sort()).toEqual(retried.map((d) => d.id).sort());
    expect(again.every((d) => d.retries === 1)).toBe(true);
    await t.ack(again);
    const letters = await readDeadLetters(AMQP_URL, `${t.queues()[0]}.dead`);
    expect(letters.map((l) => l.id).sort()).toEqual(dead.map((d) => d.id).sort());
    expect(ids).toHaveLength(60);
  });

  it("an ack that resolved was taken by the broker: a connection cut right after it puts nothing back", async () => {
    const { proxy, t } = await throughProxy();
    await t.ready();
    await t.sendMany(Array.from({ length: 50 }, (_, i) => i));
    const got = await receiveAll(t, 50);
    await t.ack(got);
    proxy.cut();
    const other = transport({ queue: t.queues()[0] as string });
    expect(await receiveAll(other, 1, 1_500)).toEqual([]);
    await t.close();
    await proxy.close();
  });

  it("a copy confirmed whose ack then failed is not published again: the repeated call only acks", async () => {
    const t = transport();
    await t.ready();
    const queue = t.queues()[0] as string;
    await t.sendMany(["dead", "later"]);
    const got = await receiveAll(t, 2);
    const [dead, later] = [got.find((d) => d.payload === "dead"), got.find((d) => d.payload === "later")] as Delivery<unknown>[];
    const ack = Consumer.prototype.ack;
    let failing = 2;
    // The ack fails once per call after the copy was confirmed, on a channel that stays open.
    Consumer.prototype.ack = function (this: Consumer, messages) {
      return failing-- > 0 ? Promise.reject(new Error("injected: ack lost")) : ack.call(this, messages);
    };
    try {
      await expect(t.deadLetter(dead!, new Error("poison"))).rejects.toThrow(/injected/);
      await expect(t.retry(later!, Date.now() + 1_500)).rejects.toThrow(/injected/);
    } finally {
      Consumer.prototype.ack = ack;
    }
    await t.deadLetter(dead!, new Error("poison"));
    await t.retry(later!, Date.now() + 1_500);
    expect((await readDeadLetters(AMQP_URL, `${queue}.dead`)).map((l) => l.id)).toEqual([dead!.id]);
    expect((await queueDepths(AMQP_URL, [queue, `${queue}.delay.1500`])).get(`${queue}.delay.1500`)).toBe(1);
    const [again] = await receiveAll(t, 1, 5_000);
    expect(again).toMatchObject({ id: later!.id, retries: 1 });
    await t.ack([again!]);
    expect(await receiveAll(t, 1, 1_000)).toEqual([]);
  });

  it("a channel that closes between a dead letter's confirm and its ack: the letter stays, the original comes back, and a second letter is listed once", async () => {
    const t = transport();
    await t.ready();
    const queue = t.queues()[0] as string;
    const id = await t.send("poison");
    const [first] = await receiveAll(t, 1);
    const ack = Consumer.prototype.ack;
    // The channel closes as the ack is about to go out (a crash, a dropped connection).
    Consumer.prototype.ack = function (this: Consumer, messages) {
      Consumer.prototype.ack = ack;
      void this.channel.close().catch(() => {});
      return ack.call(this, messages);
    };
    try {
      await expect(t.deadLetter(first!, new Error("poison"))).rejects.toThrow();
    } finally {
      Consumer.prototype.ack = ack;
    }
    // A repeat cannot ack on another channel, and publishes no second letter.
    const error = await rejection(t.deadLetter(first!, new Error("poison")));
    expect(error.retryable).toBe(false);
    expect((await readDeadLetters(AMQP_URL, `${queue}.dead`)).map((l) => l.id)).toEqual([id]);
    const [again] = await receiveAll(t, 1);
    expect(again).toMatchObject({ id, attempt: 2 });
    await t.deadLetter(again!, new Error("poison again"));
    expect(await t.deadLetters()).toMatchObject([{ id, attempt: 2, reason: { message: "poison again" } }]);
    expect(await t.depth()).toMatchObject({ ready: 0, deadLettered: 2 });
  });

  it("ack is bulk and idempotent, also when repeated before the first call ended; a delivery from another transport is a TypeError", async () => {
    const t = transport();
    await t.ready();
    await t.sendMany([1, 2, 3, 4]);
    const got = await receiveAll(t, 4);
    const [first, ...rest] = got as [Delivery<unknown>, ...Delivery<unknown>[]];
    // A second ack of one delivery tag would make the broker close the channel with every delivery on it.
    await Promise.all([t.ack([first]), t.ack([first]), t.retry(first, Date.now())]);
    await t.ack(rest);
    await t.ack(got);
    await t.ack([]);
    expect((await receiveAll(t, 1, 1_500)).length).toBe(0);
    const other = transport({ queue: t.queues()[0] as string });
    await expect(other.ack(got)).rejects.toThrow(TypeError);
  });
});

describe("AmqpTransport faults", () => {
  it("an unreachable broker: every call fails fast with a retryable error naming the cause and address; close resolves", async () => {
    const port = await freePort();
    const t = new AmqpTransport({ url: `amqp://guest:guest@127.0.0.1:${port}`, queue: uniqueQueue() });
    const started = Date.now();
    for (const call of [() => t.send(1), () => t.receive(10, never()), () => t.ready()]) {
      const error = await rejection(call());
      expect(TransportError.isInstance(error)).toBe(true);
      expect(error.retryable).toBe(true);
      expect(error.message).toMatch(new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
    }
    expect(Date.now() - started).toBeLessThan(3_000);
    await t.close();
    await expect(t.send(1)).rejects.toThrow(/closed/);
  });

  it("a payload the codec cannot encode is not retryable", async () => {
    const t = transport();
    const error = await rejection(t.send(10n as unknown));
    expect(TransportError.isInstance(error)).toBe(true);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/cannot encode payload 0/);
  });

  it("bad credentials are not retryable", async () => {
    const url = new URL(AMQP_URL);
    url.username = "nobody";
    url.password = "wrong";
    const t = new AmqpTransport({ url: url.toString(), queue: uniqueQueue() });
    const error = await rejection(t.send(1));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/ACCESS.REFUSED/);
    await t.close();
  });

  it("validates options eagerly, quoting the value", () => {
    expect(() => new AmqpTransport({ url: "http://x" })).toThrow("Expected `url` to be an amqp:// or amqps:// URL, got \"http://x\"");
    expect(() => new AmqpTransport({ queueType: "stream" as "quorum" })).toThrow('Expected `queueType` to be "quorum" or "classic", got "stream"');
    expect(() => new AmqpTransport({ prefetch: 0 })).toThrow("Expected `prefetch` to be an integer 1..65535, got 0");
    expect(() => new AmqpTransport({ queue: "amq.x" })).toThrow(/Expected `queue`/);
    expect(() => new AmqpTransport({ queueType: "classic", deliveryLimit: 3 })).toThrow(/deliveryLimit/);
  });
});

// Headers (`SendOptions.headers`) are AMQP headers: another application's consumer reads them as
// any header, and a tranche worker reads another producer's string headers as `Delivery.headers`.
describe("AmqpTransport headers", () => {
  it("sends headers as AMQP headers, and keeps them in a dead letter", async () => {
    const t = transport();
    await t.ready();
    await t.send("x", { id: "h", headers: { traceparent: "00-abc-def-01", tenant: "acme" } });
    const [d] = await receiveAll(t, 1);
    expect(d?.headers).toEqual({ traceparent: "00-abc-def-01", tenant: "acme" });
    await t.deadLetter(d!, new Error("poison"));
    const channel = await admin.createChannel();
    const letter = await channel.get(`${t.queues()[0]}.dead`, { noAck: true });
    await channel.close();
    expect(letter === false ? undefined : letter.properties.headers).toMatchObject({ traceparent: "00-abc-def-01", tenant: "acme" });
  });

  it("reads another producer's string headers, not tranche's, the broker's or other types", async () => {
    const t = transport();
    await t.ready();
    await publishRaw(t.queues()[0]!, '"theirs"', { headers: { traceparent: "00-abc-def-01", count: 3, "tranche-retries": 0, "x-first-death-queue": "elsewhere" } });
    const [d] = await receiveAll(t, 1);
    expect(d?.headers).toEqual({ traceparent: "00-abc-def-01" });
    await t.ack([d!]);
  });

  it("refuses header names of tranche's or the broker's own, and headers a copy could not keep", async () => {
    const t = transport();
    await expect(t.send("x", { headers: { "tranche-retries": "9" } })).rejects.toThrow(TypeError);
    await expect(t.send("x", { headers: { "x-death": "no" } })).rejects.toThrow(TypeError);
    const error = await rejection(t.sendMany(["x"], { headers: { big: "b".repeat(20_000) } }));
    expect(TransportError.isInstance(error) && !error.retryable, String(error)).toBe(true);
  });
});
