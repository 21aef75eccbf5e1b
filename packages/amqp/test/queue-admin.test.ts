import type { Delivery } from "@tranche/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AmqpTransport, type AmqpTransportOptions } from "../src/index.js";
import { deleteQueues } from "../src/testing.js";
import { AMQP_URL, requireBroker, uniqueQueue } from "./support/server.js";

const open: AmqpTransport<unknown>[] = [];
const made = new Set<string>();

beforeAll(() => requireBroker());
afterEach(async () => {
  const closing = open.splice(0);
  await Promise.all(closing.map((t) => t.close()));
  for (const t of closing) for (const q of t.queues()) made.add(q);
});
afterAll(() => deleteQueues(AMQP_URL, made));

function transport(options: AmqpTransportOptions<unknown> = {}): AmqpTransport<unknown> {
  const queue = options.queue ?? uniqueQueue("admin");
  made.add(queue).add(`${queue}.dead`).add(`${queue}.delays`);
  const t = new AmqpTransport<unknown>({ url: AMQP_URL, wait: 300, ...options, queue });
  open.push(t);
  return t;
}

/** A transport whose queues are declared, as a worker's are. */
async function worker(options: AmqpTransportOptions<unknown> = {}): Promise<AmqpTransport<unknown>> {
  const t = transport(options);
  await t.ready();
  return t;
}

const never = (): AbortSignal => new AbortController().signal;

async function receiveAll(t: AmqpTransport<unknown>, count: number, within = 10_000): Promise<Delivery<unknown>[]> {
  const got: Delivery<unknown>[] = [];
  const deadline = Date.now() + within;
  while (got.length < count && Date.now() < deadline) got.push(...(await t.receive(count - got.length, never())));
  return got;
}

async function eventually<V>(what: string, read: () => Promise<V>, holds: (v: V) => boolean, within = 10_000): Promise<V> {
  const deadline = Date.now() + within;
  for (;;) {
    const value = await read();
    if (holds(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("AmqpTransport depth()", () => {
  it("finds the delay queues another transport declared, through their index, and counts what waits in them", async () => {
    const w = await worker();
    const queue = w.queues()[0] as string;
    await w.send("a");
    await w.send("b");
    const [a, b] = await receiveAll(w, 2);
    await w.retry(a!, Date.now() + 60_000);
    await w.retry(b!, Date.now() + 600_000);
    expect(w.queues().filter((q) => q.includes(".delay."))).toHaveLength(2);
    // A fresh transport (a CLI, another process) has declared nothing.
    const admin = transport({ queue });
    expect(await admin.depth()).toEqual({ ready: 0, delayed: 2, inFlight: 0, deadLettered: 0 });
    await w.send("c");
    expect(await eventually("depth", () => admin.depth(), (d) => d.ready === 1)).toEqual({ ready: 1, delayed: 2, inFlight: 0, deadLettered: 0 });
  });

  it("counts nothing, and declares nothing, for a queue no worker made", async () => {
    const admin = transport();
    expect(await admin.depth()).toEqual({ ready: 0, delayed: 0, inFlight: 0, deadLettered: 0 });
    expect(admin.queues()).toEqual([]);
  });
});

describe("AmqpTransport dead letters", () => {
  it("a listing puts every letter back, in order, as it was: the same letters on every read", async () => {
    const t = await worker();
    await t.sendMany(["a", "b", "c"]);
    for (const d of await receiveAll(t, 3)) await t.deadLetter(d, new RangeError(`no ${String(d.payload)}`));
    const first = await t.deadLetters();
    expect(first.map((l) => [l.payload, l.attempt, l.retries, l.reason])).toEqual([
      ["a", 1, 0, { name: "RangeError", message: "no a" }],
      ["b", 1, 0, { name: "RangeError", message: "no b" }],
      ["c", 1, 0, { name: "RangeError", message: "no c" }],
    ]);
    for (let i = 0; i < 3; i++) expect(await t.deadLetters()).toEqual(first);
    expect(await t.depth()).toMatchObject({ deadLettered: 3 });
  });

  it("a letter RabbitMQ dead-lettered itself (x-delivery-limit) is listed with the broker's reason, and redriven", async () => {
    const queue = uniqueQueue("limit");
    const first = await worker({ queue, deliveryLimit: 1 });
    await first.send("poison", { id: "p" });
    await receiveAll(first, 1);
    await first.close();
    const second = transport({ queue, deliveryLimit: 1 });
    await receiveAll(second, 1);
    await second.close();
    const admin = transport({ queue, deliveryLimit: 1 });
    const [letter] = await eventually("the broker's dead letter", () => admin.deadLetters(), (l) => l.length === 1);
    expect(letter).toMatchObject({ id: "p", payload: "poison", reason: { name: "DeliveryLimitExceeded" } });
    expect(letter!.reason.message).toMatch(/delivery_limit/);
    expect(await admin.redrive(["p"])).toBe(1);
    expect(await receiveAll(admin, 1)).toMatchObject([{ id: "p", attempt: 1, retries: 0 }]);
  });

  it("a redrive with a delay of a second or more waits in a delay queue", async () => {
    const t = await worker();
    await t.send("later", { id: "l" });
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new Error("dead"));
    expect(await t.redrive(["l"], { delay: 1_500 })).toBe(1);
    expect(await t.depth()).toEqual({ ready: 0, delayed: 1, inFlight: 0, deadLettered: 0 });
    const started = Date.now();
    const [again] = await receiveAll(t, 1, 15_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(again).toMatchObject({ id: "l", payload: "later", attempt: 1, retries: 0 });
  });
});
