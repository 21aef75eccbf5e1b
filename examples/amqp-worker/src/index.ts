// A Worker on a RabbitMQ queue: orders are charged in batches, one is retried 1.5 s later
// through a delay queue, one is dead-lettered with its reason. Everything it declares is
// deleted at the end.
//
//   pnpm --filter @tranche/examples-amqp-worker start
//
// It uses RabbitMQ at AMQP_URL (default amqp://guest:guest@127.0.0.1:5672): start one with
// `rabbitmq-server -detached`, or `docker compose up -d rabbitmq`.
import { AmqpTransport } from "@tranche/amqp";
import { TransportError } from "@tranche/core";
import { Worker } from "@tranche/worker";
import { connect } from "amqplib";

interface Order {
  order: number;
  cents: number;
}

const url = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const queue = `orders.${Date.now().toString(36)}`; // a fresh queue per run keeps the output readable
const transport = new AmqpTransport<Order>({ url, queue, prefetch: 500 });

try {
  await transport.ready(); // a worker declares the queues: the work queue and `${queue}.dead`
} catch (error) {
  if (!TransportError.isInstance(error) || !(error as TransportError).retryable) throw error;
  console.error(`No RabbitMQ at ${url} (${(error as Error).message}): start one with \`rabbitmq-server -detached\` or \`docker compose up -d rabbitmq\`, or set AMQP_URL.`);
  await transport.close();
  process.exit(1);
}

const ledger = new Map<number, number>();
const worker = new Worker<Order>(
  transport,
  async (requests, { reason }) => {
    console.log(`batch of ${requests.length} (${reason})`);
    for (const request of requests) {
      const { order, cents } = request.payload;
      if (cents < 0) request.fail(new RangeError(`order ${order}: negative amount ${cents}`));
      else if (order === 7 && request.attempt === 1) request.retry({ delay: 1_500 }); // e.g. a card processor said "try later"
      else {
        ledger.set(order, cents); // one bulk write per batch in real life
        request.ack();
      }
    }
  },
  // prefetch above = maxBuffered here: the broker never pushes more than the worker may hold.
  { flushEvery: 50, flushInterval: 200, maxBuffered: 500, retry: { attempts: 3 } },
);
worker.on("retry", (e) => console.log(`order item ${e.id} retried, not before +${e.notBefore - Date.now()} ms (a delay queue holds it)`));
worker.on("deadLetter", (e) => console.log(`order item ${e.id} dead-lettered: ${e.reason.message}`));
worker.on("error", (error) => console.error("transport error (the worker keeps going):", error.message));

await worker.start();
const orders: Order[] = Array.from({ length: 120 }, (_, i) => ({ order: i, cents: i === 13 ? -100 : 100 + i }));
const ids = await transport.sendMany(orders); // publisher confirms: resolved once RabbitMQ has them
console.log(`sent ${ids.length} orders to ${queue}`);

const deadline = Date.now() + 30_000;
while (ledger.size < 119 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
console.log(`ledger holds ${ledger.size} orders`);
await worker.close({ drain: true });
const created = transport.queues();
await transport.close();

// Remove what this run declared: the work queue, the dead-letter queue (with order 13 in it) and the delay queue.
const connection = await connect(url);
const channel = await connection.createChannel();
for (const name of created) {
  const { messageCount } = await channel.deleteQueue(name);
  console.log(`deleted ${name} (${messageCount} message${messageCount === 1 ? "" : "s"} in it)`);
}
await connection.close();
if (ledger.size !== 119) process.exit(1);
