import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsTransport } from "@tranche/nats";
import { startNatsServer } from "@tranche/nats/testing";
import { Worker } from "@tranche/worker";
import type { TransportBench, TransportBenchSettings, TransportContenders } from "../transport-suite.js";

// Both contenders run the same handler: an async function that acks every item by returning.
const handler = async (_payloads: unknown[]): Promise<void> => {};

/**
 * NATS JetStream: a Worker on `NatsTransport` against a hand-written `consumer.fetch(batchSize)`
 * + `ack()` loop, on one `nats-server -js` (file storage) that the bench starts on a free port.
 */
export const natsBench: TransportBench = {
  suite: "nats",
  async open(settings: TransportBenchSettings): Promise<TransportContenders> {
    const server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    let round = 0;

    /** A fresh stream with `settings.items` messages and its durable consumer; not timed. */
    async function filledQueue(): Promise<{ stream: string; durable: string; transport: NatsTransport<number> }> {
      const stream = `BENCH_${round++}`;
      const queue = { stream, subject: `bench.${stream}`, durable: "bench" };
      const transport = new NatsTransport<number>({ connection: nc, ...queue, wait: 1_000 });
      await transport.sendMany(Array.from({ length: settings.items }, (_, i) => i));
      return { ...queue, transport };
    }

    return {
      async worker() {
        const { stream, transport } = await filledQueue();
        let acked = 0;
        const started = performance.now();
        await new Promise<void>((resolve, reject) => {
          const worker = new Worker<number>(transport, (requests) => handler(requests.map((r) => r.payload)), {
            flushEvery: settings.batchSize,
          });
          worker.on("settled", (event) => {
            acked += event.acked;
            if (acked === settings.items) void worker.close().then(resolve, reject);
          });
          worker.start().catch(reject);
        });
        const ms = performance.now() - started;
        await jsm.streams.delete(stream);
        return ms;
      },

      async raw() {
        const { stream, durable } = await filledQueue();
        const consumer = await jetstream(nc).consumers.get(stream, durable);
        let acked = 0;
        const started = performance.now();
        while (acked < settings.items) {
          const messages = await consumer.fetch({ max_messages: settings.batchSize, expires: 1_000 });
          const batch = [];
          for await (const m of messages) batch.push(m);
          await handler(batch.map((m) => m.data));
          for (const m of batch) m.ack();
          await nc.flush();
          acked += batch.length;
        }
        const ms = performance.now() - started;
        await jsm.streams.delete(stream);
        return ms;
      },

      async close() {
        await nc.close();
        await server.close();
      },
    };
  },
};
