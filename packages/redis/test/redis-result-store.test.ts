import { ClosedError, TimeoutError, TransportError } from "@tranche/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisResultStore } from "../src/index.js";
import type { AnyRedisClient } from "../src/options.js";
import { startRedisServer } from "../src/testing.js";
import type { RedisServer } from "../src/testing.js";
import { eventually, rawClient, settleWithin, sleep } from "./support/redis.js";

// Its own server: the no-polling test counts the server's GET calls.
let server: RedisServer;
let redis: AnyRedisClient;
let store: RedisResultStore<number>;

beforeAll(async () => {
  server = await startRedisServer();
  redis = await rawClient(server.url);
  store = new RedisResultStore<number>({ url: server.url });
});
afterAll(async () => {
  await store?.close();
  await redis?.close();
  await server?.close();
});

async function calls(command: string): Promise<number> {
  const info = (await redis.sendCommand(["INFO", "commandstats"])) as string;
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

describe("RedisResultStore", () => {
  it("stores outcomes under their id with a TTL", async () => {
    await store.set("a", { ok: true, value: 1 }, 60_000);
    await store.set("b", { ok: false, error: { name: "Error", message: "boom" } });
    expect(await store.get("a")).toEqual({ ok: true, value: 1 });
    expect(await store.get("b")).toEqual({ ok: false, error: { name: "Error", message: "boom" } });
    expect(await store.get("missing")).toBeUndefined();
    const ttl = Number(await redis.sendCommand(["PTTL", "tranche:result:a"]));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(Number(await redis.sendCommand(["PTTL", "tranche:result:b"]))).toBeGreaterThan(86_000_000); // the default: a day
    await store.set("short", { ok: true, value: 2 }, 100);
    await sleep(250);
    expect(await store.get("short")).toBeUndefined();
  });

  it("wait resolves with an outcome stored before or after it is called, and does not poll", async () => {
    await store.set("early", { ok: true, value: 7 });
    expect(await store.wait("early", { timeout: 5000 })).toEqual({ ok: true, value: 7 });
    const getsBefore = await calls("get");
    const waiting = Promise.all([store.wait("late", { timeout: 20_000 }), store.wait("late")]);
    await sleep(500);
    expect(await calls("get")).toBeLessThanOrEqual(getsBefore + 2); // one GET per wait, after its SUBSCRIBE
    await store.set("late", { ok: true, value: 8 });
    expect(await waiting).toEqual([{ ok: true, value: 8 }, { ok: true, value: 8 }]);
    expect(await calls("get")).toBeLessThanOrEqual(getsBefore + 2);
  });

  it("wait rejects with TimeoutError after its timeout, and with the reason when its signal aborts", async () => {
    const start = Date.now();
    const error = await store.wait("never", { timeout: 200 }).catch((e: unknown) => e);
    expect(TimeoutError.isInstance(error)).toBe(true);
    expect(Date.now() - start).toBeGreaterThanOrEqual(190);
    const controller = new AbortController();
    const aborted = store.wait("never", { signal: controller.signal }).catch((e: unknown) => e);
    controller.abort(new Error("stop"));
    expect(((await aborted) as Error).message).toBe("stop");
    // Nothing is left subscribed.
    await sleep(100);
    expect(await redis.sendCommand(["PUBSUB", "NUMSUB", "tranche:result:never"])).toEqual(["tranche:result:never", 0]);
  });

  it("rejects invalid options with a TypeError that quotes the value", () => {
    expect(() => new RedisResultStore({ url: server.url, ttl: 0 })).toThrow(/`ttl`.*got 0/);
    expect(() => new RedisResultStore({ url: server.url, prefix: "" })).toThrow(/`prefix`.*got ""/);
  });
});

describe("RedisResultStore under faults", () => {
  it("set rejects an outcome that cannot be serialised at once, with a TransportError that is not retryable", async () => {
    const start = Date.now();
    const error = await store.set("big", { ok: true, value: 10n as unknown as number }).catch((e: unknown) => e);
    expect(Date.now() - start).toBeLessThan(1000);
    expect(TransportError.isInstance(error)).toBe(true);
    expect((error as TransportError).retryable).toBe(false);
    expect((error as Error).message).toMatch(/^\[tranche\/redis\] set failed: cannot encode the outcome of "big": .*BigInt/);
    expect(await store.get("big")).toBeUndefined();
  });

  it("close rejects the waits in progress with ClosedError", async () => {
    const own = new RedisResultStore<number>({ url: server.url });
    const waiting = own.wait("closing").catch((e: unknown) => e);
    await sleep(100);
    await own.close();
    expect(ClosedError.isInstance(await waiting)).toBe(true);
  });

  it("wait sees an outcome stored while its subscriber reconnects after a server restart (8 restarts)", async () => {
    const own = await startRedisServer();
    const waiter = new RedisResultStore<number>({ url: own.url });
    let storedWhileAway = 0;
    try {
      for (let run = 0; run < 8; run++) {
        const key = `tranche:result:restart-${run}`;
        const waiting = waiter.wait(`restart-${run}`, { timeout: 8000 });
        const before = await rawClient(own.url);
        await eventually("subscribed", async () => Number(((await before.sendCommand(["PUBSUB", "NUMSUB", key])) as [string, number])[1]) === 1);
        before.destroy();
        await own.kill();
        await own.restart();
        const writer = await rawClient(own.url);
        // Was the subscriber back yet? If not, its PUBLISH goes to nobody.
        const subscribers = String(await writer.sendCommand(["CLIENT", "LIST", "TYPE", "pubsub"])).trim();
        const value = JSON.stringify({ ok: true, value: run });
        await writer.sendCommand(["SET", key, value]);
        await writer.sendCommand(["PUBLISH", key, value]);
        if (subscribers === "") storedWhileAway++;
        writer.destroy();
        expect(await settleWithin(10_000, waiting), `run ${run}`).toEqual({ value: { ok: true, value: run } });
      }
      // Most runs store the outcome before the subscriber is back; at least one must, or this tests nothing.
      expect(storedWhileAway).toBeGreaterThan(0);
      console.info(`wait across restarts: ${storedWhileAway} of 8 outcomes stored while the subscriber was away`);
    } finally {
      await waiter.close();
      await own.close();
    }
  }, 120_000);
});
