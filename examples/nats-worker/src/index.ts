// A Worker on NATS JetStream, with results in a KV bucket.
//
//   pnpm --filter @tranche/examples-nats-worker start
//
// NATS_URL points it at a server with JetStream (default nats://127.0.0.1:4222); with nothing
// listening there it starts a throwaway `nats-server -js` from this machine's binary. Its stream,
// ledger and KV bucket are named for this run and deleted when it ends.
import { createConnection } from "node:net";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsKvResultStore, NatsTransport } from "@tranche/nats";
import { startNatsServer } from "@tranche/nats/testing";
import type { NatsServer } from "@tranche/nats/testing";
import { Worker } from "@tranche/worker";

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port || 4222) });
    socket.once("connect", () => {
      socket.end();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

interface Order {
  order: number;
  cents: number;
}

let servers = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
let server: NatsServer | undefined;
if (!(await reachable(servers))) {
  console.log(`no NATS at ${servers}: starting a throwaway nats-server -js (or run \`docker compose up -d nats\`)`);
  try {
    server = await startNatsServer();
  } catch (error) {
    console.error(`could not start nats-server (${(error as Error).message.split("\n")[0]}): install it (apt-get install nats-server) or set NATS_URL`);
    process.exit(1);
  }
  servers = server.url;
}
const run = `${Date.now().toString(36)}${process.pid}`; // names of this run only
const transport = new NatsTransport<Order>({ servers, stream: `ORDERS_${run}`, subject: `orders.${run}`, durable: "billing", ackWait: 10_000 });
const results = new NatsKvResultStore<{ charged: number }>({ servers, bucket: `charges_${run}`, ttl: 60 * 60_000 });

const ledger = new Map<number, number>();
const worker = new Worker<Order, { charged: number }>(
  transport,
  async (requests, { reason }) => {
    console.log(`batch of ${requests.length} (${reason})`);
    for (const request of requests) {
      const { order, cents } = request.payload;
      if (cents < 0) request.fail(new RangeError(`order ${order}: negative amount ${cents}`));
      else if (order === 7 && request.attempt === 1) request.retry({ delay: 500 }); // e.g. a card processor said "try later"
      else {
        ledger.set(order, cents); // one bulk write per batch in real life
        request.ack({ charged: cents });
      }
    }
  },
  { flushEvery: 50, flushInterval: 200, retry: { attempts: 3 }, results, lease: 10_000 },
);
worker.on("retry", (e) => console.log(`order item ${e.id} retried, not before +${e.notBefore - Date.now()} ms`));
worker.on("deadLetter", (e) => console.log(`order item ${e.id} dead-lettered: ${e.reason.message}`));
worker.on("error", (error) => console.error("transport error (the worker keeps going):", error.message));

await worker.start();
const orders: Order[] = Array.from({ length: 120 }, (_, i) => ({ order: i, cents: i === 13 ? -100 : 100 + i }));
const ids = await transport.sendMany(orders);
console.log(`sent ${ids.length} orders to ${servers}`);

// A producer awaits one item's own outcome through the result store.
console.log("order 7:", await results.wait(ids[7]!, { timeout: 15_000 }));
console.log("order 13:", await results.wait(ids[13]!, { timeout: 15_000 }));
while (ledger.size < 119) await new Promise((r) => setTimeout(r, 50));
console.log(`ledger holds ${ledger.size} orders; worker stats:`, worker.stats);

await worker.close({ drain: true });
await transport.close();
await results.close();

// Delete what this run created: its stream, the ledger beside it and the KV bucket's stream.
const nc = await connect({ servers });
const jsm = await jetstreamManager(nc);
for await (const name of jsm.streams.names()) if (name.includes(run)) await jsm.streams.delete(name);
await nc.close();
await server?.close();
