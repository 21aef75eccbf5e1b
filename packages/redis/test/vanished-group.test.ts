import { Worker } from "@tranche/worker";
import { afterEach, describe, expect, it } from "vitest";
import { RedisStreamsTransport } from "../src/index.js";
import type { AnyRedisClient } from "../src/options.js";
import { startRedisServer } from "../src/testing.js";
import type { RedisServer } from "../src/testing.js";
import { eventually, rawClient, receiveAll, settleWithin, sleep, uniqueStream } from "./support/redis.js";

// The consumer group vanishes under a consumer: the stream key is deleted, or a server without
// persistence restarts empty. Each test has a server of its own (one of them restarts it).

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
});

async function setup(): Promise<{ server: RedisServer; redis: AnyRedisClient; stream: string; key: string }> {
  const server = await startRedisServer();
  cleanup.push(() => server.close());
  const redis = await rawClient(server.url);
  cleanup.push(async () => redis.destroy());
  const stream = uniqueStream("vanish");
  return { server, redis, stream, key: `{${stream}}` };
}

function transport(url: string, stream: string, options: { minIdle?: number; consumer?: string } = {}): RedisStreamsTransport<number> {
  const t = new RedisStreamsTransport<number>({ url, stream, blockMs: 200, ...options });
  cleanup.push(() => t.close());
  return t;
}

describe("a vanished consumer group", () => {
  it("settling deliveries it held is a no-op, and the next receive creates the group again, even with a reap due first", async () => {
    const { server, redis, stream, key } = await setup();
    const t = transport(server.url, stream, { minIdle: 100 });
    await t.sendMany([1, 2, 3, 4, 5]);
    const held = await receiveAll(t, 5);
    await redis.sendCommand(["DEL", key]);
    await sleep(150); // the reaper is due: the next receive reaps first
    const calls = {
      ack: t.ack([held[0]!]),
      retry: t.retry(held[1]!, Date.now() + 60_000),
      release: t.release([held[2]!]),
      extend: t.extend([held[3]!], Date.now() + 100),
      deadLetter: t.deadLetter(held[4]!, new Error("poison")),
    };
    for (const [name, call] of Object.entries(calls)) expect(await settleWithin(5000, call), name).toEqual({ value: undefined });
    // Nothing was written for deliveries the deletion took away.
    expect(await redis.sendCommand(["EXISTS", `${key}:delayed`, `${key}:dlq`])).toBe(0);
    const [id] = await t.sendMany([6]);
    const again = await settleWithin(10_000, receiveAll(t, 1));
    expect(again).toMatchObject({ value: [{ id, payload: 6, attempt: 1 }] });
  });

  it("a Worker keeps processing after the stream is deleted under it", async () => {
    const { server, redis, stream, key } = await setup();
    const { processed, producer } = runWorker(server.url, stream);
    await producer.sendMany(range(0, 50));
    await eventually("the first 50 processed", () => processed.size === 50);
    for (let round = 0; round < 3; round++) {
      await redis.sendCommand(["DEL", key]);
      await sleep(300);
      await producer.sendMany(range(100 * (round + 1), 100 * (round + 1) + 50));
      await eventually(`items sent after deletion ${round + 1} processed`, () => processed.size === 50 * (round + 2), 15_000);
    }
  }, 90_000);

  it("a Worker keeps processing after a server without persistence restarts empty under it", async () => {
    const { server, stream } = await setup();
    const { processed, producer } = runWorker(server.url, stream);
    await producer.sendMany(range(0, 50));
    await eventually("the first 50 processed", () => processed.size === 50);
    for (let round = 0; round < 3; round++) {
      await server.kill();
      await server.restart();
      await sleep(300);
      const sent = await settleWithin(10_000, retryUntilSent(producer, range(100 * (round + 1), 100 * (round + 1) + 50)));
      expect(sent, "the producer could not send after the restart").not.toBe("pending");
      await eventually(`items sent after restart ${round + 1} processed`, () => processed.size === 50 * (round + 2), 15_000);
    }
  }, 90_000);
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** A producer's own retry: a send may fail while its connection reconnects. */
async function retryUntilSent(producer: RedisStreamsTransport<number>, payloads: number[]): Promise<void> {
  for (;;) {
    try {
      await producer.sendMany(payloads);
      return;
    } catch {
      await sleep(100);
    }
  }
}

function runWorker(url: string, stream: string) {
  const processed = new Set<number>();
  // A short lease makes the reaper due on almost every receive: it meets the vanished group first.
  const consumer = transport(url, stream, { minIdle: 200, consumer: "w" });
  const producer = transport(url, stream);
  const worker = new Worker(
    consumer,
    async (requests) => {
      for (const r of requests) processed.add(r.payload);
    },
    { flushEvery: 20, flushInterval: 20, lease: 200, ioBackoff: { delay: 50, maxDelay: 500 } },
  );
  cleanup.push(() => worker.close({ drain: false, timeout: 2000 }));
  void worker.start();
  worker.on("error", () => {});
  return { processed, producer };
}
