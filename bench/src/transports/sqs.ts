import { DeleteMessageBatchCommand, type Message, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { SqsTransport } from "@tranche/sqs";
import { startSqsEmulator } from "@tranche/sqs/testing";
import { Worker } from "@tranche/worker";
import type { TransportBench, TransportBenchSettings, TransportContenders } from "../transport-suite.js";

// Both contenders run the same handler: an async function that acks every item by returning.
const handler = async (_payloads: unknown[]): Promise<void> => {};

/**
 * SQS: a Worker on `SqsTransport` against a hand-written loop — `ReceiveMessage` calls of 10
 * in parallel up to `batchSize`, the handler, then `DeleteMessageBatch` by 10 in parallel —
 * both on one in-process fauxqs emulator on a free port. A fresh queue per round, filled untimed.
 */
export const sqsBench: TransportBench = {
  suite: "sqs",
  // fauxqs answers a few thousand requests a second: enough items for a stable figure, not 50,000.
  items: { full: 20_000, quick: 5_000 },
  async open(settings: TransportBenchSettings): Promise<TransportContenders> {
    const emulator = await startSqsEmulator();
    const client = emulator.client();
    let round = 0;

    async function filledQueue(): Promise<string> {
      const queueUrl = await emulator.createQueue(`bench-${round++}`);
      const producer = new SqsTransport<number>({ queueUrl, client });
      const payloads = Array.from({ length: settings.items }, (_, i) => i);
      for (let i = 0; i < payloads.length; i += 1_000) await producer.sendMany(payloads.slice(i, i + 1_000));
      return queueUrl;
    }

    return {
      async worker() {
        const queueUrl = await filledQueue();
        const transport = new SqsTransport<number>({ queueUrl, client, waitTimeSeconds: 1 });
        let acked = 0;
        const started = performance.now();
        await new Promise<void>((resolve, reject) => {
          const worker = new Worker<number>(transport, (requests) => handler(requests.map((r) => r.payload)), {
            flushEvery: settings.batchSize,
            flushInterval: 0,
          });
          worker.on("settled", (event) => {
            acked += event.acked;
            if (acked === settings.items) void worker.close().then(resolve, reject);
          });
          worker.start().catch(reject);
        });
        return performance.now() - started;
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
