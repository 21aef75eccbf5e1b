import { TransportError } from "@tranche/core";
import type { Delivery } from "@tranche/core";
import { Worker } from "@tranche/worker";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RedisStreamsTransport } from "../src/index.js";
import type { AnyRedisClient } from "../src/options.js";
import { eventually, rawClient, receiveAll, sleep, testServer, uniqueStream } from "./support/redis.js";

// Every call may be repeated when its outcome was not seen: the state after a repeat is the state
// after one call. And `retries` travels with the item.

let server: { url: string; close(): Promise<void> };
let redis: AnyRedisClient;
const opened: { close(): Promise<unknown> }[] = [];

beforeAll(async () => {
  server = await testServer();
  redis = await rawClient(server.url);
});
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});
afterAll(async () => {
  await redis?.close();
  await server?.close();
});

function transport(stream: string, options: { consumer?: string; minIdle?: number } = {}): RedisStreamsTransport<string> {
  const t = new RedisStreamsTransport<string>({ url: server.url, stream, blockMs: 200, ...options });
  opened.push(t);
  return t;
}

const xlen = async (key: string): Promise<number> => Number(await redis.sendCommand(["XLEN", key]));
const pending = async (key: string): Promise<number> => Number(((await redis.sendCommand(["XPENDING", key, "tranche"])) as [number])[0]);

describe("retries travel with the item", () => {
  it("retry writes retries + 1 (and the next delivery has attempt + 1); release is not a delivery; a reclaim is", async () => {
    const stream = uniqueStream();
    const t = transport(stream, { consumer: "a", minIdle: 300 });
    await t.send("x", { id: "x" });
    const [first] = await receiveAll(t, 1);
    expect(first).toMatchObject({ id: "x", attempt: 1, retries: 0 });
    await t.retry(first!, 0);
    const [second] = await receiveAll(t, 1);
    expect(second).toMatchObject({ id: "x", attempt: 2, retries: 1 });
    await t.release([second!]);
    const [third] = await receiveAll(t, 1);
    expect(third).toMatchObject({ id: "x", attempt: 2, retries: 1 });
    const notBefore = Date.now() + 300;
    await t.retry(third!, notBefore);
    const [fourth] = await receiveAll(t, 1);
    expect(fourth).toMatchObject({ id: "x", attempt: 3, retries: 2, notBefore });
    await sleep(400);
    const other = transport(stream, { consumer: "b", minIdle: 300 });
    const [reclaimed] = await receiveAll(other, 1);
    expect(reclaimed).toMatchObject({ id: "x", attempt: 4, retries: 2, entryId: fourth!.entryId });
  });

  it("a dead letter records attempt and retries", async () => {
    const stream = uniqueStream();
    const t = transport(stream);
    await t.send("x", { id: "x" });
    const [first] = await receiveAll(t, 1);
    await t.retry(first!, 0);
    const [second] = await receiveAll(t, 1);
    await t.deadLetter(second!, new RangeError("gave up"));
    const [dead] = await t.deadLetters();
    expect(dead).toMatchObject({ id: "x", attempt: 2, retries: 1, reason: { name: "RangeError", message: "gave up" } });
  });
});

describe("repeated calls", () => {
  it("deadLetter called twice writes one dead letter", async () => {
    const stream = uniqueStream();
    const key = `{${stream}}`;
    const t = transport(stream);
    await t.send("x", { id: "x" });
    const [d] = await receiveAll(t, 1);
    await t.deadLetter(d!, new Error("poison"));
    await t.deadLetter(d!, new Error("poison"));
    expect(await xlen(`${key}:dlq`)).toBe(1);
    expect(await pending(key)).toBe(0);
  });

  it("retry and release called twice add the item once", async () => {
    const stream = uniqueStream();
    const key = `{${stream}}`;
    const t = transport(stream);
    await t.sendMany(["now", "later", "released"]);
    const [now, later, released] = await receiveAll(t, 3);
    await t.retry(now!, 0);
    await t.retry(now!, 0);
    await t.retry(later!, Date.now() + 60_000);
    await t.retry(later!, Date.now() + 60_000);
    await t.release([released!]);
    await t.release([released!]);
    expect(Number(await redis.sendCommand(["ZCARD", `${key}:delayed`]))).toBe(1);
    const again = await receiveAll(t, 3, 1500);
    expect(again.map((d) => d.payload).sort()).toEqual(["now", "released"]);
    expect(await xlen(key)).toBe(5);
  });

  it("a Worker that repeats a dead letter whose reply was lost writes it once", async () => {
    const stream = uniqueStream();
    const key = `{${stream}}`;
    const t = transport(stream);
    let lost = 0;
    // deadLetter reaches Redis, then its reply is lost (once): the worker sees a retryable error and repeats it.
    const flaky = new Proxy(t, {
      get(target, prop) {
        if (prop === "deadLetter") {
          return async (d: Delivery<string>, reason: Error) => {
            await target.deadLetter(d, reason);
            if (lost++ === 0) throw new TransportError("[test] deadLetter failed: reply lost", { retryable: true });
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const worker = new Worker(flaky, async () => {}, { flushInterval: 10, ioBackoff: { delay: 20, maxDelay: 100 } });
    worker.on("error", () => {});
    opened.push({ close: () => worker.close({ drain: false, timeout: 2000 }) });
    await t.sendRaw("{not json", { id: "garbage" });
    await worker.start();
    await eventually("the dead letter repeated", () => lost >= 2);
    await eventually("nothing pending", async () => (await pending(key)) === 0);
    await sleep(200);
    expect(await xlen(`${key}:dlq`)).toBe(1);
    expect((await t.deadLetters()).map((d) => [d.id, d.reason.name])).toEqual([["garbage", "DecodeError"]]);
  });
});
