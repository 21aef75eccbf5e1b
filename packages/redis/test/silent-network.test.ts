import { TcpProxy } from "@tranche/conformance/net";
import { TransportError } from "@tranche/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RedisResultStore, RedisStreamsTransport } from "../src/index.js";
import type { AnyRedisClient } from "../src/options.js";
import { startRedisServer } from "../src/testing.js";
import type { RedisServer } from "../src/testing.js";
import { rawClient, settleWithin, sleep, uniqueStream } from "./support/redis.js";

// A network that drops packets: a TcpProxy between the clients and the server black-holes every
// connection (they stay open, nothing arrives), then heals (new connections work; the old stay dead).

let server: RedisServer;
let redis: AnyRedisClient;
let proxy: TcpProxy;
const opened: { close(): Promise<unknown> }[] = [];
const never = new AbortController().signal;

beforeAll(async () => {
  server = await startRedisServer();
  redis = await rawClient(server.url);
});
afterEach(async () => {
  proxy?.heal();
  for (const o of opened.splice(0).reverse()) await o.close();
  await proxy?.close();
});
afterAll(async () => {
  await redis?.close();
  await server?.close();
});

async function throughProxy(): Promise<string> {
  proxy = await TcpProxy.start({ host: "127.0.0.1", port: server.port });
  return `redis://127.0.0.1:${proxy.port}`;
}

function transport(url: string, stream: string): RedisStreamsTransport<string> {
  const t = new RedisStreamsTransport<string>({ url, stream, blockMs: 500, commandTimeout: 1000, connectTimeout: 1000 });
  opened.push(t);
  return t;
}

/** Tries `call` until it resolves (the connection heals by itself), for at most `ms`. */
async function eventuallyWorks<T>(call: () => Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (Date.now() > end) throw error;
      await sleep(100);
    }
  }
}

describe("a black-holed connection", () => {
  it("fails the calls waiting on it within commandTimeout, and is replaced: calls work again after the heal", async () => {
    const url = await throughProxy();
    const t = transport(url, uniqueStream("silent"));
    await t.send("before");
    proxy.blackhole();
    const start = Date.now();
    const outcome = await settleWithin(10_000, t.send("into the hole"));
    expect(outcome).not.toBe("pending");
    expect(Date.now() - start).toBeLessThan(3000);
    const error = (outcome as { error: TransportError }).error;
    expect(TransportError.isInstance(error)).toBe(true);
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(new RegExp(`^\\[tranche/redis\\] send failed: no reply for \\d+ ms \\(redis at 127\\.0\\.0\\.1:${proxy.port}\\)`));
    proxy.heal();
    await eventuallyWorks(() => t.send("after"));
    const got = await eventuallyWorks(async () => {
      const ds = await t.receive(10, never);
      if (ds.length < 2) throw new Error(`received ${ds.length}`);
      return ds;
    });
    expect(got.map((d) => d.payload).filter((p) => p !== "into the hole")).toEqual(["before", "after"]);
  });

  it("close() resolves within 5 s with a blocking receive in flight on a black-holed connection", async () => {
    const url = await throughProxy();
    const t = new RedisStreamsTransport<string>({ url, stream: uniqueStream("silent"), blockMs: 20_000 });
    opened.push(t);
    await t.receive(1, AbortSignal.abort()).catch(() => []);
    await t.send("x");
    await t.receive(10, never);
    const receiving = t.receive(10, never).catch(() => []);
    await sleep(300);
    proxy.blackhole();
    const start = Date.now();
    expect(await settleWithin(15_000, t.close())).not.toBe("pending");
    expect(Date.now() - start).toBeLessThan(5000);
    expect(await settleWithin(2000, receiving)).toEqual({ value: [] });
  }, 30_000);

  it("a wait whose subscriber connection was black-holed sees an outcome stored meanwhile, once the network heals", async () => {
    const url = await throughProxy();
    const store = new RedisResultStore<number>({ url, commandTimeout: 1000, connectTimeout: 1000 });
    opened.push(store);
    const waiting = store.wait("silent-outcome", { timeout: 20_000 });
    await sleep(300);
    proxy.blackhole();
    // Stored directly on the server: the subscriber hears nothing of it.
    const value = JSON.stringify({ ok: true, value: 42 });
    await redis.sendCommand(["SET", "tranche:result:silent-outcome", value]);
    await redis.sendCommand(["PUBLISH", "tranche:result:silent-outcome", value]);
    await sleep(2000);
    proxy.heal();
    expect(await settleWithin(15_000, waiting)).toEqual({ value: { ok: true, value: 42 } });
  }, 30_000);
});
