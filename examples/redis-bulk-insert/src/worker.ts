// The worker process: inserts rows in bulk, one "round trip" per batch of up to 500, stores
// each row's new id as its result, and stops cleanly on SIGTERM / SIGINT.
import { RedisResultStore, RedisStreamsTransport } from "@tranche/redis";
import { Worker } from "@tranche/worker";
import { REDIS_URL, RESULT_PREFIX, STREAM } from "./rows.js";
import type { Row } from "./rows.js";

/** Stands in for a database table: insertMany is one round trip and returns the new ids. */
const table: Row[] = [];
async function insertMany(rows: Row[]): Promise<number[]> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  return rows.map((row) => table.push(row));
}

const transport = new RedisStreamsTransport<Row>({
  url: REDIS_URL,
  stream: STREAM,
  group: "inserters",
  // Stable across restarts in production: a pod or host name.
  consumer: process.env.CONSUMER ?? `inserter-${process.pid}`,
});
const results = new RedisResultStore<number>({ url: REDIS_URL, prefix: RESULT_PREFIX });

const worker = new Worker<Row, number>(transport, (requests) => insertMany(requests.map((r) => r.payload)), {
  flushEvery: 500,
  flushInterval: 100,
  retry: { attempts: 3, backoff: { type: "exponential", delay: 1000 } },
  results,
  resultTtl: 60_000,
});
worker.on("flush", (batch) => console.log(`worker: batch of ${batch.size} (${batch.reason})`));
worker.on("error", (error) => console.error("worker: transport error, retrying:", error.message));

const stop = async (): Promise<void> => {
  await worker.close({ timeout: 10_000 });
  await Promise.all([transport.close(), results.close()]);
  console.log(`worker: stopped after inserting ${table.length} rows`);
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());

await worker.start();
console.log(`worker: consuming ${STREAM} on ${REDIS_URL}`);
