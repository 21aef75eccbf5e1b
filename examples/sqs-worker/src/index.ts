// A Worker on Amazon SQS — or on an SQS emulator.
//
//   pnpm --filter @tranche/examples-sqs-worker start
//
// Where the queues are, first match wins:
//   SQS_QUEUE_URL set   an existing queue (AWS or not): SQS_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/orders
//                       SQS_DLQ_URL=…/orders-dlq (or SQS_NATIVE_DLQ=1 when the queue has a RedrivePolicy), AWS_REGION,
//                       credentials from the usual AWS chain; SQS_ENDPOINT for a non-AWS endpoint
//   an emulator         at SQS_ENDPOINT, or on 127.0.0.1:4566 (`docker compose up -d sqs` runs fauxqs there): the
//                       example creates two queues of its own and deletes them when it ends
//   otherwise           the fauxqs emulator, started in this process (this repository has it installed)
import { createConnection } from "node:net";
import { CreateQueueCommand, DeleteQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { SqsTransport, type SqsTransportOptions } from "@tranche/sqs";
import { startSqsEmulator } from "@tranche/sqs/testing";
import { Worker } from "@tranche/worker";

interface Order {
  order: number;
  cents: number;
}

const LOCAL = { region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } };

function reachable(endpoint: string): Promise<boolean> {
  const { hostname, port } = new URL(endpoint);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port || 80) });
    socket.once("connect", () => {
      socket.end();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Where the queues are: from the environment, an emulator that runs, or one started here. */
async function connect(): Promise<{ options: SqsTransportOptions<Order>; stop(): Promise<void> }> {
  if (process.env.SQS_QUEUE_URL) {
    const endpoint = process.env.SQS_ENDPOINT;
    const deadLetterQueueUrl = process.env.SQS_DLQ_URL;
    const nativeDeadLetter = process.env.SQS_NATIVE_DLQ === "1";
    if (deadLetterQueueUrl === undefined && !nativeDeadLetter) {
      console.error("set SQS_DLQ_URL (where failed orders go), or SQS_NATIVE_DLQ=1 when the queue has a RedrivePolicy");
      process.exit(2);
    }
    return {
      options: { queueUrl: process.env.SQS_QUEUE_URL, deadLetterQueueUrl, nativeDeadLetter, ...(endpoint ? { endpoint } : {}) },
      stop: async () => {},
    };
  }
  const endpoint = process.env.SQS_ENDPOINT ?? "http://127.0.0.1:4566";
  if (await reachable(endpoint)) {
    console.log(`SQS emulator at ${endpoint}`);
    const client = new SQSClient({ endpoint, ...LOCAL });
    const run = `${Date.now().toString(36)}-${process.pid}`;
    const create = async (name: string) => (await client.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl!;
    const queueUrl = await create(`tranche-orders-${run}`);
    const deadLetterQueueUrl = await create(`tranche-orders-${run}-dlq`);
    return {
      options: { endpoint, ...LOCAL, queueUrl, deadLetterQueueUrl },
      stop: async () => {
        for (const QueueUrl of [queueUrl, deadLetterQueueUrl]) await client.send(new DeleteQueueCommand({ QueueUrl }));
        client.destroy();
      },
    };
  }
  const emulator = await startSqsEmulator();
  console.log(`SQS emulator (fauxqs) started in this process at ${emulator.endpoint}`);
  const queueUrl = await emulator.createQueue("orders");
  const deadLetterQueueUrl = await emulator.createQueue("orders-dlq");
  return { options: { ...emulator.connection, queueUrl, deadLetterQueueUrl }, stop: () => emulator.stop() };
}

const { options, stop } = await connect();
const transport = new SqsTransport<Order>({
  ...options,
  visibilityTimeout: 30_000, // the worker extends it while it holds an item
  waitTimeSeconds: 2, // long polling; keep 20 in production
});

const ledger = new Map<number, number>();
const worker = new Worker<Order, { charged: number }>(
  transport,
  async (requests, { reason }) => {
    console.log(`batch of ${requests.length} (${reason})`);
    for (const request of requests) {
      const { order, cents } = request.payload;
      if (cents < 0) request.fail(new RangeError(`order ${order}: negative amount ${cents}`));
      else if (order === 7 && request.attempt === 1) request.retry({ delay: 1_500 }); // e.g. a card processor said "try later"
      else {
        ledger.set(order, cents); // one bulk write per batch in real life
        request.ack({ charged: cents });
      }
    }
  },
  { flushEvery: 50, flushInterval: 200, retry: { attempts: 3 }, lease: 30_000 },
);
worker.on("retry", (e) => console.log(`item ${e.id} retried, not before +${e.notBefore - Date.now()} ms (ChangeMessageVisibility)`));
worker.on("deadLetter", (e) => console.log(`item ${e.id} dead-lettered: ${e.reason.message}`));
worker.on("error", (error) => console.error("transport error (the worker keeps going):", error.message));

await worker.start();
const orders: Order[] = Array.from({ length: 120 }, (_, i) => ({ order: i, cents: i === 13 ? -100 : 100 + i }));
const ids = await transport.sendMany(orders); // SendMessageBatch, 10 per request
console.log(`sent ${ids.length} orders to ${options.queueUrl}`);

while (ledger.size < 119) await new Promise((r) => setTimeout(r, 50));
console.log(`ledger holds ${ledger.size} orders; order 13 went to ${options.deadLetterQueueUrl ?? "the queue's RedrivePolicy target"}`);

await worker.close({ drain: true });
await transport.close();
await stop();
