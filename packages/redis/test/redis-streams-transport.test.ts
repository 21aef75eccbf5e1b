import { DecodeError } from "@tranche/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RedisStreamsTransport } from "../src/index.js";
import type { RedisStreamsTransportOptions } from "../src/index.js";
import type { AnyRedisClient } from "../src/options.js";
import { rawClient, receiveAll, sleep, testServer, uniqueStream } from "./support/redis.js";

let server: { url: string; close(): Promise<void> };
let redis: AnyRedisClient;
const opened: RedisStreamsTransport<any>[] = [];

beforeAll(async () => {
  server = await testServer();
  redis = await rawClient(server.url);
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});
afterAll(async () => {
  await redis?.close();
  await server?.close();
});

function transport<T = unknown>(options: Partial<RedisStreamsTransportOptions<T>> & { stream: string }): RedisStreamsTransport<T> {
  const t = new RedisStreamsTransport<T>({ url: server.url, blockMs: 200, ...options } as RedisStreamsTransportOptions<T>);
  opened.push(t);
  return t;
}

const never = new AbortController().signal;

async function pendingCount(stream: string, group = "tranche"): Promise<number> {
  const summary = (await redis.sendCommand(["XPENDING", stream, group])) as [number, ...unknown[]];
  return Number(summary[0]);
}

describe("RedisStreamsTransport", () => {
  it("hash-tags its keys so that they share one cluster slot", () => {
    const t = transport({ stream: "jobs", consumer: "c" });
    expect(t.keys).toEqual({ stream: "{jobs}", schedule: "{jobs}:delayed", deadLetter: "{jobs}:dlq", deadLetterIndex: "{jobs}:dlq:ids" });
    const tagged = transport({ stream: "app:{jobs}:in", consumer: "c" });
    expect(tagged.keys.stream).toBe("app:{jobs}:in");
    expect(tagged.keys.deadLetter).toBe("app:{jobs}:in:dlq");
  });

  it("rejects invalid options with a TypeError that quotes the value", () => {
    expect(() => new RedisStreamsTransport({ url: server.url, stream: "" })).toThrow(/Expected `stream` to be a non-empty string, got ""/);
    expect(() => new RedisStreamsTransport({ url: "localhost:6379", stream: "s" })).toThrow(/`url`.*"localhost:6379"/);
    expect(() => new RedisStreamsTransport({ url: server.url, stream: "s", blockMs: -1 })).toThrow(/`blockMs`.*-1/);
    expect(() => new RedisStreamsTransport({ url: server.url, stream: "s", minIdle: 0 })).toThrow(/`minIdle`.*0/);
    expect(() => new RedisStreamsTransport({ url: server.url, stream: "s", deadLetterStream: "other:dlq" })).toThrow(/hash tag \{s\}, got "other:dlq"/);
    expect(() => new RedisStreamsTransport({ url: server.url, stream: "s", codec: {} as never })).toThrow(/`codec`/);
  });

  it("sends entries with the item id and payload, and receives them with attempt 1 and a lease", async () => {
    const stream = uniqueStream();
    const t = transport<{ n: number }>({ stream, minIdle: 5000 });
    const id = await t.send({ n: 1 }, { id: "item-1" });
    const ids = await t.sendMany([{ n: 2 }, { n: 3 }]);
    expect(id).toBe("item-1");
    expect(ids).toHaveLength(2);
    const before = Date.now();
    const got = await receiveAll(t, 3);
    expect(got.map((d) => [d.id, d.payload, d.attempt])).toEqual([
      ["item-1", { n: 1 }, 1],
      [ids[0], { n: 2 }, 1],
      [ids[1], { n: 3 }, 1],
    ]);
    for (const d of got) {
      expect(d.entryId).toMatch(/^\d+-\d+$/);
      expect(d.leaseUntil).toBeGreaterThanOrEqual(before + 5000);
    }
    const [entry] = (await redis.sendCommand(["XRANGE", `{${stream}}`, "-", "+", "COUNT", "1"])) as [string, string[]][];
    expect(entry![1]).toEqual(["id", "item-1", "payload", '{"n":1}']);
  });

  it("creates its group (reading from the stream's start) on its first receive, never on a send", async () => {
    const stream = uniqueStream();
    const producer = transport({ stream });
    await producer.send("early");
    expect(await redis.sendCommand(["XINFO", "GROUPS", `{${stream}}`])).toEqual([]);
    const consumer = transport({ stream, group: "readers" });
    expect((await receiveAll(consumer, 1)).map((d) => d.payload)).toEqual(["early"]);
    const groups = (await redis.sendCommand(["XINFO", "GROUPS", `{${stream}}`])) as string[][];
    expect(groups.map((g) => g[1])).toEqual(["readers"]);
  });

  it("acks many deliveries with one XACK", async () => {
    const stream = uniqueStream();
    const t = transport({ stream });
    await t.sendMany(Array.from({ length: 50 }, (_, i) => i));
    const got = await receiveAll(t, 50);
    expect(await pendingCount(`{${stream}}`)).toBe(50);
    const before = await commandCalls("xack");
    await t.ack(got);
    expect(await commandCalls("xack")).toBe(before + 1);
    expect(await pendingCount(`{${stream}}`)).toBe(0);
    await t.ack(got); // idempotent
  });

  it("resolves [] after blockMs, and promptly when the signal aborts", async () => {
    const t = transport({ stream: uniqueStream(), blockMs: 300 });
    let start = Date.now();
    expect(await t.receive(10, never)).toEqual([]);
    expect(Date.now() - start).toBeGreaterThanOrEqual(250);
    const long = transport({ stream: uniqueStream(), blockMs: 20_000 });
    await long.receive(1, AbortSignal.abort()); // connects
    const controller = new AbortController();
    start = Date.now();
    const pending = long.receive(10, controller.signal);
    setTimeout(() => controller.abort(), 100);
    expect(await pending).toEqual([]);
    expect(Date.now() - start).toBeLessThan(10_000);
  });

  it("acks while a receive blocks on its own connection", async () => {
    const stream = uniqueStream();
    const t = transport({ stream, blockMs: 5000 });
    await t.send("a");
    const [d] = await receiveAll(t, 1);
    const blocking = t.receive(10, never);
    const start = Date.now();
    await t.ack([d!]);
    expect(Date.now() - start).toBeLessThan(4000);
    expect(await pendingCount(`{${stream}}`)).toBe(0);
    await t.send("b");
    expect((await blocking).map((x) => x.payload)).toEqual(["b"]);
  });

  it("retries durably: the old entry is acked and the item comes back not before notBefore, with the same id and attempt + 1", async () => {
    const stream = uniqueStream();
    const t = transport({ stream });
    await t.send({ v: 1 }, { id: "r" });
    const [first] = await receiveAll(t, 1);
    const notBefore = Date.now() + 700;
    await t.retry(first!, notBefore);
    expect(await pendingCount(`{${stream}}`)).toBe(0);
    expect(await redis.sendCommand(["ZCARD", `{${stream}}:delayed`])).toBe(1);
    const [again] = await receiveAll(t, 1);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore - 50); // the server's clock decides; same machine
    expect(again).toMatchObject({ id: "r", payload: { v: 1 }, attempt: 2, notBefore });
    expect(again!.entryId).not.toBe(first!.entryId);
    expect(await redis.sendCommand(["ZCARD", `{${stream}}:delayed`])).toBe(0);
    await t.retry(again!, 0); // due now: straight back into the stream
    const [third] = await receiveAll(t, 1);
    expect(third).toMatchObject({ id: "r", attempt: 3 });
  });

  it("delays sends until they are due", async () => {
    const stream = uniqueStream();
    const t = transport({ stream });
    const start = Date.now();
    const [id] = await t.sendMany(["later"], { delay: 600 });
    await t.send("now");
    const got = await receiveAll(t, 2);
    expect(got.map((d) => d.payload)).toEqual(["now", "later"]);
    expect(got[1]!.id).toBe(id);
    expect(got[1]!.attempt).toBe(1);
    expect(Date.now() - start).toBeGreaterThanOrEqual(550);
  });

  it("reclaims entries idle longer than minIdle with attempt + 1, and ignores the stale handle", async () => {
    const stream = uniqueStream();
    const a = transport({ stream, consumer: "a", minIdle: 300 });
    const b = transport({ stream, consumer: "b", minIdle: 300 });
    await a.send("x", { id: "x" });
    const [held] = await receiveAll(a, 1);
    await sleep(400);
    const [taken] = await receiveAll(b, 1);
    expect(taken).toMatchObject({ id: "x", attempt: 2, entryId: held!.entryId, deliveryCount: 2 });
    // a's handle is stale: its retry, release and extend do nothing to b's delivery.
    await a.retry(held!, 0);
    await a.release([held!]);
    await a.extend([held!], Date.now() + 10_000);
    const pending = (await redis.sendCommand(["XPENDING", `{${stream}}`, "tranche", "-", "+", "10"])) as [string, string, number, number][];
    expect(pending.map(([, consumer, , count]) => [consumer, count])).toEqual([["b", 2]]);
    expect(await redis.sendCommand(["XLEN", `{${stream}}`])).toBe(1);
    await b.ack([taken!]);
    expect(await pendingCount(`{${stream}}`)).toBe(0);
  });

  it("extend keeps an entry from the reaper", async () => {
    const stream = uniqueStream();
    const a = transport({ stream, consumer: "a", minIdle: 400 });
    const b = transport({ stream, consumer: "b", minIdle: 400 });
    await a.send("x");
    const [held] = await receiveAll(a, 1);
    for (let i = 0; i < 4; i++) {
      await sleep(200);
      await a.extend([held!], Date.now() + 400);
    }
    expect(await b.receive(1, never)).toEqual([]);
    await sleep(600);
    expect((await receiveAll(b, 1)).map((d) => d.attempt)).toEqual([2]);
  });

  it("release hands the item to another consumer at once, and is not counted as a delivery", async () => {
    const stream = uniqueStream();
    const a = transport({ stream, consumer: "a", minIdle: 60_000 });
    const b = transport({ stream, consumer: "b", minIdle: 60_000 });
    await a.send("x", { id: "x" });
    const [held] = await receiveAll(a, 1);
    await a.release([held!]);
    const start = Date.now();
    const [again] = await receiveAll(b, 1);
    expect(again).toMatchObject({ id: "x", payload: "x", attempt: 1, retries: 0 });
    expect(Date.now() - start).toBeLessThan(5000);
  });

  it("dead-letters with reason, raw payload, attempt and retries, and acks, in one Lua step", async () => {
    const stream = uniqueStream();
    const t = transport({ stream });
    await t.send({ bad: true }, { id: "d" });
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new RangeError("no such row"));
    expect(await pendingCount(`{${stream}}`)).toBe(0);
    const [dead] = await t.deadLetters();
    expect(dead).toMatchObject({ id: "d", payload: { bad: true }, attempt: 1, retries: 0, reason: { name: "RangeError", message: "no such row" } });
    expect(dead!.raw.toString()).toBe('{"bad":true}');
  });

  it("delivers undecodable and payload-less entries with a DecodeError, and entries of foreign producers with their entry id as item id", async () => {
    const stream = uniqueStream();
    const t = transport({ stream });
    const key = `{${stream}}`;
    await redis.sendCommand(["XADD", key, "*", "payload", "{not json"]);
    await redis.sendCommand(["XADD", key, "*", "id", "no-payload", "other", "x"]);
    const foreign = (await redis.sendCommand(["XADD", key, "*", "payload", "[1,2]"])) as string;
    const got = await receiveAll(t, 3);
    expect(DecodeError.isInstance(got[0]!.error)).toBe(true);
    expect(got[0]!.raw.toString()).toBe("{not json");
    expect(got[1]!.error?.message).toMatch(/has no `payload` field/);
    expect(got[1]!.id).toBe("no-payload");
    expect(got[2]).toMatchObject({ id: foreign, payload: [1, 2] });
    await t.deadLetter(got[0]!, got[0]!.error!);
    const [dead] = await t.deadLetters();
    expect(dead!.raw.toString()).toBe("{not json");
    expect(dead!.reason.name).toBe("DecodeError");
  });

  it("re-reads its own pending entries when it starts again under the same consumer name", async () => {
    const stream = uniqueStream();
    const first = transport({ stream, consumer: "stable", minIdle: 60_000 });
    await first.sendMany(["a", "b"]);
    const held = await receiveAll(first, 2);
    await first.close();
    const again = transport({ stream, consumer: "stable", minIdle: 60_000 });
    const got = await receiveAll(again, 2);
    expect(got.map((d) => [d.payload, d.attempt, d.entryId])).toEqual(held.map((d) => [d.payload, 2, d.entryId]));
  });

  it("trims acked entries only: pending and undelivered ones stay", async () => {
    const stream = uniqueStream();
    const key = `{${stream}}`;
    const t = transport({ stream, trimInterval: 0 });
    const payloads = async () => ((await redis.sendCommand(["XRANGE", key, "-", "+"])) as [string, string[]][]).map(([, f]) => JSON.parse(f[3]!));
    await t.sendMany(["a", "b", "c", "d", "e"]);
    const [a, b] = await t.receive(2, never);
    await t.ack([b!]);
    const [c] = await t.receive(1, never); // trims nothing: a is still pending
    await sleep(100);
    expect(await payloads()).toEqual(["a", "b", "c", "d", "e"]);
    await t.ack([a!]);
    const [d] = await t.receive(1, never); // trims a and b; c is pending
    await sleep(100);
    expect(await payloads()).toEqual(["c", "d", "e"]);
    await t.ack([c!, d!]);
    const [e] = await t.receive(1, never); // trims c and d; e was undelivered until this read
    await sleep(100);
    expect(await payloads()).toEqual(["e"]);
    expect([a, b, c, d, e].map((x) => x!.payload)).toEqual(["a", "b", "c", "d", "e"]);
  });
});

async function commandCalls(command: string): Promise<number> {
  const info = (await redis.sendCommand(["INFO", "commandstats"])) as string;
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info);
  return match ? Number(match[1]) : 0;
}
