// `pnpm start`: runs the worker process and the producer process against REDIS_URL
// (default redis://127.0.0.1:6379). With nothing listening there, it starts a throwaway
// redis-server from this machine's binary for the run.
import { fork } from "node:child_process";
import { createConnection } from "node:net";
import { startRedisServer } from "@tranche/redis/testing";
import type { RedisServer } from "@tranche/redis/testing";

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

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
let server: RedisServer | undefined;
if (!(await reachable(url))) {
  console.log(`no Redis at ${url}: starting a throwaway redis-server (or run \`docker compose up redis\`)`);
  server = await startRedisServer();
}
const env = { ...process.env, REDIS_URL: server?.url ?? url };
const run = (script: string) => fork(new URL(script, import.meta.url), { env });
const exited = (child: ReturnType<typeof fork>) => new Promise((resolve) => child.once("exit", resolve));

const worker = run("./worker.js");
const producer = run("./producer.js");
await exited(producer);
worker.kill("SIGTERM");
await exited(worker);
await server?.close();
