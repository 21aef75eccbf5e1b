import { AmqpTransport } from "@tranche/amqp";
import { MemoryResultStore, MemoryTransport } from "@tranche/memory";
import { NatsKvResultStore, NatsTransport } from "@tranche/nats";
import { startNatsServer } from "@tranche/nats/testing";
import { RedisResultStore, RedisStreamsTransport } from "@tranche/redis";
import { startRedisServer } from "@tranche/redis/testing";
import { connect } from "amqplib";
import type { SoakPayload, SoakResult, SoakSetup } from "./drive.js";

export type SoakTargetName = "memory" | "redis" | "nats" | "amqp";

/** A broker this machine does not run: the soak says so and goes on with the others. */
export class Unavailable extends Error {}

/** One transport the soak covers: what it runs on, how many items, and how to set it up and tear it down. */
export interface SoakTarget {
  readonly name: SoakTargetName;
  readonly what: string;
  readonly items: { readonly full: number; readonly quick: number };
  open(): Promise<{ setup: SoakSetup; close(): Promise<void> }>;
}

// The worker's options on every transport: batches of 100, two in flight, a short interval for a partial batch, three tries.
const worker = { flushEvery: 100, flushInterval: 20, concurrency: 2, retry: { attempts: 3 } } as const;
const runId = `${process.pid}-${Date.now().toString(36)}`;

const memory: SoakTarget = {
  name: "memory",
  what: "MemoryTransport + MemoryResultStore, both with their defaults",
  items: { full: 3_000_000, quick: 600_000 },
  async open() {
    const transport = new MemoryTransport<SoakPayload>();
    const results = new MemoryResultStore<SoakResult>();
    return {
      setup: { transport, results, worker, backlog: 10_000, chunk: 1_000 },
      close: () => transport.close(),
    };
  },
};

const redis: SoakTarget = {
  name: "redis",
  what: "RedisStreamsTransport + RedisResultStore on a redis-server of its own (no persistence)",
  items: { full: 400_000, quick: 60_000 },
  async open() {
    const server = await startRedisServer().catch((error: unknown) => {
      throw new Unavailable(`redis-server could not start (${(error as Error).message.split("\n")[0]}); install it (apt-get install redis-server) or set REDIS_SERVER_BIN`);
    });
    const transport = new RedisStreamsTransport<SoakPayload>({ url: server.url, stream: `soak-${runId}` });
    const results = new RedisResultStore<SoakResult>({ url: server.url });
    return {
      setup: { transport, results, worker, backlog: 3_000, chunk: 1_000 },
      async close() {
        await Promise.allSettled([transport.close(), results.close()]);
        await server.close();
      },
    };
  },
};

const nats: SoakTarget = {
  name: "nats",
  what: "NatsTransport + NatsKvResultStore on a nats-server -js of its own (file storage)",
  items: { full: 300_000, quick: 40_000 },
  async open() {
    const server = await startNatsServer().catch((error: unknown) => {
      throw new Unavailable(`nats-server could not start (${(error as Error).message.split("\n")[0]})`);
    });
    const transport = new NatsTransport<SoakPayload>({ servers: server.url, stream: "SOAK", subject: "soak.items", durable: "soak", wait: 1_000 });
    const results = new NatsKvResultStore<SoakResult>({ servers: server.url, bucket: "soak-results" });
    return {
      setup: { transport, results, worker, backlog: 3_000, chunk: 1_000 },
      async close() {
        await Promise.allSettled([transport.close(), results.close()]);
        await server.close();
      },
    };
  },
};

const amqp: SoakTarget = {
  name: "amqp",
  what: "AmqpTransport on the machine's RabbitMQ (AMQP_URL, else 127.0.0.1:5672), a quorum queue of its own, deleted after; no result store",
  items: { full: 300_000, quick: 40_000 },
  async open() {
    const url = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
    const queue = `tranche-soak-${runId}`;
    const transport = new AmqpTransport<SoakPayload>({ url, queue, prefetch: 1_000, wait: 1_000 });
    try {
      await transport.ready();
    } catch (error) {
      await transport.close();
      throw new Unavailable(`no RabbitMQ at ${url.replace(/\/\/[^@]*@/, "//")} (${(error as Error).message})`);
    }
    return {
      setup: { transport, results: undefined, worker: { ...worker, maxBuffered: 1_000 }, backlog: 3_000, chunk: 1_000 },
      async close() {
        const queues = transport.queues();
        await transport.close();
        const connection = await connect(url);
        const channel = await connection.createChannel();
        for (const name of queues) await channel.deleteQueue(name);
        await connection.close();
      },
    };
  },
};

export const soakTargets: readonly SoakTarget[] = [memory, redis, nats, amqp];
