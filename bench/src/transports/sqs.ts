import { DeleteMessageBatchCommand, type Message, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { SqsTransport } from "@tranche/sqs";
import { startSqsEmulator } from "@tranche/sqs/testing";
import { type TransportBench, type TransportBenchSettings, type TransportContenders, fill, handler, timeWorker } from "../transport-suite.js";

/**
 * SQS: a Worker on `SqsTransport` against a hand-written loop — `ReceiveMessage` calls of 10
 * in parallel up to `batchSize`, the handler, then `DeleteMessageBatch` by 10 in parallel —
 * both on one in-process fauxqs emulator on a free port. A fresh queue per round, filled untimed.
 *
 * The worker runs as a user would run it on a deep queue: `flushEvery: batchSize`,
 * `flushInterval: 0` (a batch is what has arrived, so the last partial batch does not wait a
 * second), every other option at its default (`maxBuffered` 10 × flushEvery, `concurrency` 1,
 * `ioConcurrency` 8); the transport has a dead-letter queue, as a consuming `SqsTransport` must,
 * `maxReceive` 100 (the default) and the raw loop's `WaitTimeSeconds: 1`.
 *
 * The emulator runs in this process, so both contenders are CPU-bound on one thread: the figure
 * is the CPU each spends per item, and the event loop's cost per turn is part of it (10 calls
 * answered in one turn cost less than 10 turns of one call).
 */
export const sqsBench: TransportBench = {
  suite: "sqs",
  // fauxqs answers a few thousand requests a second: enough items for a stable figure, not 50,000.
  items: { full: 20_000, quick: 5_000 },
  async open(settings: TransportBenchSettings): Promise<TransportContenders> {
    const emulator = await startSqsEmulator();
    const client = emulator.client();
    const deadLetterQueueUrl = await emulator.createQueue("bench-dlq");
    let round = 0;

    async function filledQueue(): Promise<string> {
      const queueUrl = await emulator.createQueue(`bench-${round++}`);
      const producer = new SqsTransport<number>({ queueUrl, client });
      await fill(producer, settings.items, 1_000);
      return queueUrl;
    }

    return {
      async worker() {
        const queueUrl = await filledQueue();
        const transport = new SqsTransport<number>({ queueUrl, deadLetterQueueUrl, client, waitTimeSeconds: 1 });
        return timeWorker(transport, settings.items, { flushEvery: settings.batchSize, flushInterval: 0 });
      },

      async raw() {
        const queueUrl = await filledQueue();
        const calls = Math.ceil(settings.batchSize / 10);
        let acked = 0;
        const started = performance.now();
        while (acked < settings.items) {
          const received = await Promise.all(
            Array.from({ length: calls }, () =>
              client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 })),
            ),
          );
          const batch: Message[] = received.flatMap((r) => r.Messages ?? []);
          await handler(batch.map((m) => JSON.parse(m.Body ?? "null")));
          const deletes = [];
          for (let i = 0; i < batch.length; i += 10) {
            const Entries = batch.slice(i, i + 10).map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle }));
            deletes.push(client.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries })));
          }
          for (const out of await Promise.all(deletes)) {
            if ((out.Failed ?? []).length > 0) throw new Error(`raw loop: ${out.Failed!.length} deletes refused`);
          }
          acked += batch.length;
        }
        return performance.now() - started;
      },

      async close() {
        client.destroy();
        await emulator.stop();
      },
    };
  },
};
