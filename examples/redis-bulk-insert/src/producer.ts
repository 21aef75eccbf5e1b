// The producer process: puts ROWS rows on the stream, then waits for the worker's result for
// the last one (the id its "table" gave the row) through the result store.
import { RedisResultStore, RedisStreamsTransport } from "@tranche/redis";
import { REDIS_URL, RESULT_PREFIX, ROWS, STREAM } from "./rows.js";
import type { Row } from "./rows.js";

const transport = new RedisStreamsTransport<Row>({ url: REDIS_URL, stream: STREAM });
const results = new RedisResultStore<number>({ url: REDIS_URL, prefix: RESULT_PREFIX });

const rows: Row[] = Array.from({ length: ROWS }, (_, i) => ({ name: `user ${i}`, email: `user${i}@example.com` }));
const started = Date.now();
const ids: string[] = [];
for (let i = 0; i < rows.length; i += 1000) ids.push(...(await transport.sendMany(rows.slice(i, i + 1000))));
console.log(`producer: sent ${ids.length} rows in ${Date.now() - started} ms`);

const last = ids[ids.length - 1]!;
const outcome = await results.wait(last, { timeout: 60_000 });
console.log(`producer: the last row (${last}) was inserted as`, outcome.ok ? `row #${String(outcome.value)}` : outcome.error);
console.log(`producer: all ${ids.length} rows inserted ${Date.now() - started} ms after the first send`);

await results.close();
await transport.close();
