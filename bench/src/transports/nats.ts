import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsTransport } from "@tranche/nats";
import { startNatsServer } from "@tranche/nats/testing";
import { type TransportBench, type TransportBenchSettings, type TransportContenders, fill, handler, timeWorker } from "../transport-suite.js";

/**
 * NATS JetStream: a Worker on `NatsTransport` against a hand-written `consumer.fetch(batchSize)`
 * + `ack()` loop, on one `nats-server -js` (file storage) that the bench starts on a free port.
 */
export const natsBench: TransportBench = {
  suite: "nats",
  // About 50,000 messages a second each way: 100,000 a round keeps a full run near two minutes.
  items: { full: 100_000, quick: 20_000 },
  async open(settings: TransportBenchSettings): Promise<TransportContenders> {
    const server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    let round = 0;

    /** A fresh stream with `settings.items` messages (a worker creates the consumer, a producer does not); not timed. */
    async function filledQueue(): Promise<{ stream: string; subject: string; durable: string; transport: NatsTransport<number> }> {
      const stream = `BENCH_${round++}`;
      const queue = { stream, subject: `bench.${stream}`, durable: "bench" };
      const transport = new NatsTransport<number>({ connection: nc, ...queue, wait: 1_000 });
      await fill(transport, settings.items);
      return { ...queue, transport };
    }

    return {
      async worker() {
        const { stream, transport } = await filledQueue();
        const ms = await timeWorker(transport, settings.items, { flushEvery: settings.batchSize });
        await jsm.streams.delete(stream);
        return ms;
      },

      async raw() {
        const { stream, subject, durable } = await filledQueue();
        // The durable consumer a worker would create: explicit acks, filtered on the subject.
        await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, filter_subject: subject });
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
