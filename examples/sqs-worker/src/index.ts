// A Worker on Amazon SQS — or on an SQS emulator.
//
//   pnpm --filter @tranche/examples-sqs-worker build && pnpm --filter @tranche/examples-sqs-worker start
//
// With no settings it starts the fauxqs emulator in this process (this repository has it
// installed) and creates its two queues. To use an existing queue instead:
//   AWS:       SQS_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/orders
//              SQS_DLQ_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/orders-dlq
//              AWS_REGION=eu-west-1, credentials from the usual AWS chain (env, profile, role)
//              (a receiving transport needs a dead-letter target: SQS_DLQ_URL, or SQS_NATIVE_DLQ=1
//              when the queue has a RedrivePolicy of its own)
//   emulator:  npx fauxqs   (or: docker run -p 4566:4566 kibertoad/fauxqs)
//              aws --endpoint-url http://127.0.0.1:4566 sqs create-queue --queue-name orders   (and orders-dlq)
//              SQS_ENDPOINT=http://127.0.0.1:4566 SQS_QUEUE_URL=http://sqs.us-east-1.localhost:4566/000000000000/orders
//              SQS_DLQ_URL=…/orders-dlq AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
import { SqsTransport, type SqsTransportOptions } from "@tranche/sqs";
import { startSqsEmulator } from "@tranche/sqs/testing";
import { Worker } from "@tranche/worker";

interface Order {
  order: number;
  cents: number;
}

/** Where the queues are: from the environment, or an emulator started here. */
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
  const emulator = await startSqsEmulator();
  console.log(`SQS emulator (fauxqs) at ${emulator.endpoint}`);
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
