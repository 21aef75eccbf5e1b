// celery-batches' own example: count clicks. Web servers put one message per click on a Redis
// stream; a Worker takes them in batches, adds them up per URL and writes the totals with one
// HINCRBY per URL in a single MULTI per batch, instead of one write per click.
//
// REDIS_URL points it at a server (default redis://127.0.0.1:6379); with nothing listening
// there it starts a throwaway redis-server from this machine's binary. It deletes its stream,
// consumer group and counters when it ends.
import { createConnection } from "node:net";
import { RedisStreamsTransport } from "@tranche/redis";
import { startRedisServer } from "@tranche/redis/testing";
import type { RedisServer } from "@tranche/redis/testing";
import { Worker } from "@tranche/worker";
import { createClient } from "redis";

interface Click {
  url: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port || 6379) });
    socket.once("connect", () => {
      socket.end();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

let url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
let server: RedisServer | undefined;
if (!(await reachable(url))) {
  console.log(`no Redis at ${url}: starting a throwaway redis-server (or run \`docker compose up -d redis\`)`);
  try {
    server = await startRedisServer();
  } catch (error) {
    console.error(`could not start redis-server (${(error as Error).message}): install it (apt-get install redis-server) or set REDIS_URL`);
    process.exit(1);
  }
  url = server.url;
}

// Names of this run only, so a shared server keeps nothing of it.
const run = `${Date.now().toString(36)}-${process.pid}`;
const stream = `clicks-${run}`;
const totalsKey = `clicks-${run}:totals`;

const redis = createClient({ url });
await redis.connect();
const transport = new RedisStreamsTransport<Click>({ url, stream, group: "counters" });

let writes = 0;
const worker = new Worker<Click>(
  transport,
  async (requests, { reason }) => {
    const perUrl = new Map<string, number>();
    for (const r of requests) perUrl.set(r.payload.url, (perUrl.get(r.payload.url) ?? 0) + 1);
    const multi = redis.multi();
    for (const [page, clicks] of perUrl) multi.hIncrBy(totalsKey, page, clicks);
    await multi.exec(); // one round trip for the whole batch
    writes++;
    console.log(`batch of ${requests.length} clicks (${reason}) → ${perUrl.size} counters updated in one MULTI`);
  },
  { flushEvery: 200, flushInterval: 250 },
);

try {
  await worker.start();

  // Two seconds of traffic: 50 clicks every 100 ms, most of them on the home page.
  const pages = ["/", "/", "/", "/pricing", "/docs", "/docs/quick-start", "/blog"];
  let sent = 0;
  for (let tick = 0; tick < 20; tick++) {
    await transport.sendMany(Array.from({ length: 50 }, (_, i) => ({ url: pages[(tick * 50 + i) % pages.length]! })));
    sent += 50;
    await sleep(100);
  }

  let counted = 0;
  for (let waited = 0; counted < sent && waited < 10_000; waited += 50) {
    const totals = await redis.hGetAll(totalsKey);
    counted = Object.values(totals).reduce((sum, n) => sum + Number(n), 0);
    if (counted < sent) await sleep(50);
  }
  const totals = await redis.hGetAll(totalsKey);
  console.log(`\n${sent} clicks counted with ${writes} writes:`);
  for (const [page, clicks] of Object.entries(totals).sort((a, b) => Number(b[1]) - Number(a[1]))) console.log(`  ${page.padEnd(18)} ${clicks}`);
  if (counted !== sent) {
    console.error(`unexpected: ${counted} of ${sent} clicks counted`);
    process.exitCode = 1;
  }
} finally {
  await worker.close();
  await transport.close();
  // The stream's keys all carry its hash tag: {clicks-…}, {clicks-…}:delayed, {clicks-…}:dlq.
  const keys = [totalsKey];
  for await (const batch of redis.scanIterator({ MATCH: `{${stream}}*`, COUNT: 100 })) keys.push(...batch);
  await redis.del(keys);
  await redis.quit();
  await server?.close();
}
