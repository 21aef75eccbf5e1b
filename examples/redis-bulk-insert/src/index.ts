// `pnpm start`: runs the worker process and the producer process against REDIS_URL
// (default redis://127.0.0.1:6379). With nothing listening there, it starts a throwaway
// redis-server from this machine's binary for the run. The run uses a stream and result keys of
// its own and deletes them when it ends, so a shared server keeps nothing of it.
import { fork } from "node:child_process";
import { createConnection } from "node:net";
import { startRedisServer } from "@tranche/redis/testing";
import type { RedisServer } from "@tranche/redis/testing";
import { createClient } from "redis";

async function reachable(url: string): Promise<boolean> {
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
const run = `${Date.now().toString(36)}-${process.pid}`;
const stream = process.env.STREAM ?? `users-to-insert-${run}`;
const resultPrefix = `tranche:result:${run}:`;
const env = { ...process.env, REDIS_URL: url, STREAM: stream, RESULT_PREFIX: resultPrefix };
const start = (script: string) => fork(new URL(script, import.meta.url), { env });
const exited = (child: ReturnType<typeof fork>) => new Promise<number | null>((resolve) => child.once("exit", resolve));

const worker = start("./worker.js");
const producer = start("./producer.js");
const producerCode = await exited(producer);
worker.kill("SIGTERM");
const workerCode = await exited(worker);

// The stream's keys share its hash tag: {users-to-insert-…}, …:delayed, …:dlq.
const redis = createClient({ url });
await redis.connect();
const keys: string[] = [];
for (const pattern of [`{${stream}}*`, `${resultPrefix}*`]) {
  for await (const batch of redis.scanIterator({ MATCH: pattern, COUNT: 1000 })) keys.push(...batch);
}
if (keys.length > 0) await redis.del(keys);
await redis.quit();
await server?.close();
if (producerCode !== 0 || workerCode !== 0) process.exitCode = 1;
