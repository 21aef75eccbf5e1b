import { randomUUID } from "node:crypto";
import { createClient } from "redis";
import { startRedisServer } from "../../src/testing.js";
import type { RedisServer } from "../../src/testing.js";
import type { AnyRedisClient } from "../../src/options.js";

/** The server tests talk to: REDIS_URL when set, else a fresh redis-server on a free port. */
export async function testServer(): Promise<{ url: string; close(): Promise<void> }> {
  const url = process.env.REDIS_URL;
  if (url !== undefined && url !== "") return { url, close: async () => {} };
  const server: RedisServer = await startRedisServer();
  return { url: server.url, close: () => server.close() };
}

/** A connected plain client for looking at the server from outside the transport. */
export async function rawClient(url: string): Promise<AnyRedisClient> {
  const client = createClient({ url }) as AnyRedisClient;
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** A stream name no other test uses. */
export function uniqueStream(prefix = "t"): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds or `timeout` ms pass (then throws with `what` and what `state` says). */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeout = 20_000,
  state?: () => unknown,
): Promise<void> {
  const end = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${state ? `: ${JSON.stringify(await state())}` : ""}`);
    await sleep(20);
  }
}
