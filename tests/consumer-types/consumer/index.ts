// A user's ES module: the main API of each public package, as its README shows it. It is only
// type-checked, never run, so the adapters are built without a server.
import { AmqpTransport } from "@tranche/amqp";
import { ExitCode, main } from "@tranche/cli";
import * as amqpTesting from "@tranche/amqp/testing";
import { describeTransportConformance } from "@tranche/conformance";
import * as chaos from "@tranche/conformance/chaos";
import * as net from "@tranche/conformance/net";
import { Batcher, TrancheError, batched, systemClock } from "@tranche/core";
import type { Batch, BatchHandler, BatcherStats, Clock, FlushReason, Transport } from "@tranche/core";
import { Heap, checkMs, invalidOption } from "@tranche/core/internal";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryResultStore, MemoryTransport } from "@tranche/memory";
import { NatsKvResultStore, NatsTransport } from "@tranche/nats";
import * as natsTesting from "@tranche/nats/testing";
import { TrancheTelemetry } from "@tranche/otel";
import { RedisResultStore, RedisStreamsTransport } from "@tranche/redis";
import * as redisTesting from "@tranche/redis/testing";
import { SqsTransport } from "@tranche/sqs";
import * as sqsTesting from "@tranche/sqs/testing";
import { Worker } from "@tranche/worker";
import type { WorkerEvents, WorkerStats } from "@tranche/worker";

interface User {
  name: string;
}

// The pure state machine, driven by hand.
const clock = new SimulatedClock();
const batcher = new Batcher<User>({ flushEvery: 2, flushInterval: 50, groupBy: (user) => user.name[0] ?? "" });
const added: "accepted" | "coalesced" | "full" = batcher.add({ id: "1", payload: { name: "ada" } }, clock.now());
const batches: Batch<User>[] = batcher.poll(clock.now());
for (const batch of batches) {
  const reason: FlushReason = batch.reason;
  const group: string | undefined = batch.group;
  for (const item of batch.items) batcher.ack(batch.id, item.id, clock.now());
  void reason, group;
}
const wake: number | undefined = batcher.nextWake();
const held: number = batcher.stats.held;
// @ts-expect-error: a driver's members of the Batcher are in @tranche/core/internal, not in its public declaration
void batcher._offer;

// batched(): the in-process function.
const insertUser = batched<User, number>(
  async (requests, context) => {
    context.signal.throwIfAborted();
    return requests.map((request) => request.payload.name.length);
  },
  { flushEvery: 500, flushInterval: 50, clock: systemClock, retry: { attempts: 3, backoff: { type: "exponential", delay: 10 } } },
);
const id: Promise<number> = insertUser({ name: "ada" }, { delay: 5 });
const stats: BatcherStats = insertUser.stats;

// A Worker over each transport.
const handler: BatchHandler<User, number> = (requests) => {
  for (const request of requests) request.ack(request.attempt);
};
const memory = new MemoryTransport<User>({ clock });
const results = new MemoryResultStore<number>();
const worker = new Worker(memory, handler, { flushEvery: 10, results, retry: { attempts: 5 }, clock });
worker.on("settled", (event: WorkerEvents["settled"][0]) => void event.batchId);
const workerStats: WorkerStats = worker.stats;

const telemetry = new TrancheTelemetry({ destination: "users" });
const observed: Worker<User, number> = telemetry.observe(new Worker(telemetry.transport(memory), telemetry.handler(handler)));

const transports: Transport<User>[] = [
  new RedisStreamsTransport<User>({ url: "redis://localhost:6379", stream: "users", group: "inserters" }),
  new SqsTransport<User>({ queueUrl: "http://localhost:4566/000000000000/users", region: "us-east-1" }),
  new NatsTransport<User>({ servers: "localhost:4222", stream: "users" }),
  new AmqpTransport<User>({ url: "amqp://localhost", queue: "users" }),
];
const stores = [new RedisResultStore<number>({ url: "redis://localhost:6379" }), new NatsKvResultStore<number>({ servers: "localhost:4222" })];

// The conformance suite, as its README runs it over MemoryTransport.
describeTransportConformance({
  name: "MemoryTransport",
  async create({ lease, wait }) {
    const clock = new SimulatedClock(Date.UTC(2025, 0, 1));
    const transport = new MemoryTransport({ clock, visibilityTimeout: lease, wait });
    return {
      connect: async () => transport,
      sendRaw: async (raw) => void (await transport.sendRaw(raw)),
      advance: (ms) => clock.advance(ms),
      now: () => clock.now(),
      clock,
      deadLetters: async () => (await transport.deadLetters()).map((l) => ({ id: l.id, reason: l.reason.message, attempt: l.attempt, retries: l.retries })),
      close: () => transport.close(),
    };
  },
});

// The CLI run in-process, its output captured.
let printed = "";
const exit: Promise<ExitCode> = main(["depth", "--json"], { stdout: { write: (text: string) => (printed += text) }, env: {} });

// What a transport written outside the repository takes from @tranche/core/internal.
const prefix = "[my-queue]";
const waitMs: number = checkMs("wait", 1000, { min: 10, prefix });
const badQueue: TypeError = invalidOption("queue", "a queue name", 42, prefix);
const deadlines = new Heap<number>((a, b) => a < b);

const isTranche: boolean = TrancheError.isInstance(new Error("x"));
const ticking: Clock = clock;

export { exit, waitMs, badQueue, deadlines, added, wake, held, id, stats, workerStats, observed, transports, stores, isTranche, ticking, amqpTesting, chaos, net, natsTesting, redisTesting, sqsTesting };
