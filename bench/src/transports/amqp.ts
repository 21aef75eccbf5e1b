import { AmqpTransport } from "@tranche/amqp";
import { startRabbitNode } from "@tranche/amqp/testing";
import { connect, type ConsumeMessage } from "amqplib";
import { type TransportBench, type TransportBenchSettings, type TransportContenders, fill, handler, timeWorker } from "../transport-suite.js";

/**
 * RabbitMQ: a Worker on `AmqpTransport` against a hand-written amqplib loop — `basic.consume`
 * with the same prefetch, `batchSize` messages (JSON parsed) → handler → one `basic.ack` with
 * `multiple` for the batch — on quorum queues of one RabbitMQ node the bench starts on free
 * ports. Each round fills a fresh queue (publisher confirms, not timed) and deletes it after. The
 * raw loop's acks are unconfirmed, as such loops are; the worker's resolve once the broker took
 * them (a `basic.qos` round trip after the acks, one at a time per channel).
 */
export const amqpBench: TransportBench = {
  suite: "amqp",
  items: { full: 50_000, quick: 20_000 },
  async open(settings: TransportBenchSettings): Promise<TransportContenders> {
    const node = await startRabbitNode();
    const connection = await connect(node.url, { noDelay: true });
    const admin = await connection.createChannel();
    // The worker holds at most 10 × flushEvery (its default maxBuffered); both get that prefetch.
    const prefetch = settings.batchSize * 10;
    let round = 0;

    /** A fresh queue holding `settings.items` messages; not timed. */
    async function filledQueue(): Promise<string> {
      const queue = `bench-${round++}`;
      const producer = new AmqpTransport<number>({ url: node.url, queue });
      await producer.ready();
      await fill(producer, settings.items, 10_000);
      await producer.close();
      return queue;
    }

    async function drop(queue: string): Promise<void> {
      await admin.deleteQueue(queue);
      await admin.deleteQueue(`${queue}.dead`);
    }

    return {
      async worker() {
        const queue = await filledQueue();
        const transport = new AmqpTransport<number>({ url: node.url, queue, prefetch, wait: 1_000 });
        const ms = await timeWorker(transport, settings.items, { flushEvery: settings.batchSize, flushInterval: 0 });
        await transport.close();
        await drop(queue);
        return ms;
      },

      async raw() {
        const queue = await filledQueue();
        const channel = await connection.createChannel();
        await channel.prefetch(prefetch);
        const buffer: ConsumeMessage[] = [];
        let wake: (() => void) | undefined;
        let acked = 0;
        const started = performance.now();
        await channel.consume(queue, (message) => {
          if (message === null) return;
          buffer.push(message);
          wake?.();
        });
        while (acked < settings.items) {
          if (buffer.length === 0) await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          const batch = buffer.splice(0, settings.batchSize);
          await handler(batch.map((m) => JSON.parse(m.content.toString()) as number));
          // The batch holds every unacked delivery up to its last: one ack with `multiple` settles it.
          channel.ack(batch[batch.length - 1] as ConsumeMessage, true);
          acked += batch.length;
        }
        const ms = performance.now() - started;
        await channel.close();
        await drop(queue);
        return ms;
      },

      async close() {
        await connection.close();
        await node.close();
      },
    };
  },
};
