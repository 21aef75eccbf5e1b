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

function transport<T = unknown>(stream: string, options: Partial<RedisStreamsTransportOptions<T>> = {}): RedisStreamsTransport<T> {
  const t = new RedisStreamsTransport<T>({ url: server.url, stream, blockMs: 200, ...options } as RedisStreamsTransportOptions<T>);
  opened.push(t);
  return t;
}

/** Sends `payloads` and dead-letters each, in order. */
async function deadLettered<T>(t: RedisStreamsTransport<T>, payloads: T[]): Promise<string[]> {
  const ids = await t.sendMany(payloads);
  for (const d of await receiveAll(t, ids.length)) await t.deadLetter(d, new Error("dead"));
  return ids;
}

describe("RedisStreamsTransport depth()", () => {
  it("counts a stream no group reads yet as ready, and a due scheduled item not yet moved as ready", async () => {
    const stream = uniqueStream();
    const producer = transport(stream);
    await producer.sendMany(["a", "b", "c"]);
    await producer.send("soon", { delay: 50 });
    await producer.send("later", { delay: 600_000 });
    expect(await producer.depth()).toEqual({ ready: 3, delayed: 2, inFlight: 0, deadLettered: 0 });
    await sleep(100);
    // Nobody has moved "soon" into the stream: it is due, so it counts as ready.
    expect(await redis.sendCommand(["ZCARD", `{${stream}}:delayed`])).toBe(2);
    expect(await producer.depth()).toEqual({ ready: 4, delayed: 1, inFlight: 0, deadLettered: 0 });
  });

  it("counts the undelivered entries by reading them when Redis cannot tell the group's lag", async () => {
    const stream = uniqueStream();
    const t = transport(stream);
    const ids = await t.sendMany(["a", "b", "c", "d"]);
    const [first] = await receiveAll(t, 1);
    // Deleting an entry past the group's position makes XINFO GROUPS report no lag.
    const entries = (await redis.sendCommand(["XRANGE", `{${stream}}`, "-", "+"])) as [string, string[]][];
    await redis.sendCommand(["XDEL", `{${stream}}`, entries[2]![0]]);
    const groups = (await redis.sendCommand(["XINFO", "GROUPS", `{${stream}}`])) as unknown[][];
    expect(groups[0]![groups[0]!.indexOf("lag") + 1]).toBeNull();
    expect(await t.depth()).toEqual({ ready: 2, delayed: 0, inFlight: 1, deadLettered: 0 });
    expect(first!.id).toBe(ids[0]);
  });
});

describe("RedisStreamsTransport dead letters", () => {
  it("keeps one letter per item: the newest replaces an older one, and the redrive sends its bytes", async () => {
    const stream = uniqueStream();
    const t = transport<string>(stream);
    await t.send("old", { id: "x" });
    await t.send("new", { id: "x" });
    const [older, newer] = await receiveAll(t, 2);
    await t.deadLetter(older!, new Error("first"));
    await t.deadLetter(newer!, new Error("second"));
    expect((await t.deadLetters()).map((l) => [l.id, l.payload, l.reason.message])).toEqual([["x", "new", "second"]]);
    expect(await t.depth()).toMatchObject({ deadLettered: 1 });
    expect(await t.redrive(["x"])).toBe(1);
    const [again] = await receiveAll(t, 1);
    expect(again).toMatchObject({ id: "x", payload: "new", attempt: 1, retries: 0 });
    expect(await redis.sendCommand(["HLEN", `{${stream}}:dlq:ids`])).toBe(0);
  });

  it("keeps the reason's stack", async () => {
    const stream = uniqueStream();
    const t = transport(stream);
    await deadLettered(t, ["a"]);
    const [letter] = await t.deadLetters();
    expect(letter!.reason.stack).toMatch(/^Error: dead\n\s+at /);
  });

  it("redrives with a delay through the schedule, then with attempt 1 and retries 0", async () => {
    const stream = uniqueStream();
    const t = transport(stream);
    const [id] = await deadLettered(t, ["later"]);
    const start = Date.now();
    expect(await t.redrive([id!], { delay: 400 })).toBe(1);
    expect(await t.depth()).toEqual({ ready: 0, delayed: 1, inFlight: 0, deadLettered: 0 });
    const [again] = await receiveAll(t, 1);
    expect(Date.now() - start).toBeGreaterThanOrEqual(400);
    expect(again).toMatchObject({ id, payload: "later", attempt: 1, retries: 0 });
  });

  it("redrives and purges more letters than one script takes", async () => {
    const stream = uniqueStream();
    const t = transport(stream);
    const ids = await deadLettered(t, Array.from({ length: 1300 }, (_, i) => i));
    expect(await t.deadLetters({ limit: 5, after: ids[1297] })).toHaveLength(2);
    expect(await t.redrive(ids.slice(0, 600))).toBe(600);
    expect(await t.redrive("all")).toBe(700);
    expect(await t.depth()).toEqual({ ready: 1300, delayed: 0, inFlight: 0, deadLettered: 0 });
    for (const d of await receiveAll(t, 1300)) await t.deadLetter(d, new Error("again"));
    expect(await t.purgeDeadLetters(ids.slice(0, 700))).toBe(700);
    expect(await t.purgeDeadLetters("all")).toBe(600);
    expect(await redis.sendCommand(["EXISTS", `{${stream}}:dlq`, `{${stream}}:dlq:ids`])).toBe(0);
  });

  it("an unknown `after` gives an empty page, and bad arguments throw a TypeError", async () => {
    const stream = uniqueStream();
    const t = transport(stream);
    await deadLettered(t, ["a"]);
    expect(await t.deadLetters({ after: "gone" })).toEqual([]);
    await expect(t.deadLetters({ limit: 0 })).rejects.toThrow(/`limit`/);
    await expect(t.redrive([1] as never)).rejects.toThrow(/`ids`/);
    await expect(t.redrive("all", { delay: -1 })).rejects.toThrow(/`delay`/);
    await expect(t.purgeDeadLetters(undefined as never)).rejects.toThrow(/`ids`/);
  });
});
