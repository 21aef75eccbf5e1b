import { randomUUID } from "node:crypto";
import { createClient } from "redis";
import { startRedisServer } from "../../src/testing.js";
import type { RedisServer } from "../../src/testing.js";
import type { AnyRedisClient } from "../../src/options.js";
import type { RedisDelivery, RedisStreamsTransport } from "../../src/index.js";

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

/** How `promise` settled within `ms`: its value, its error, or `"pending"` (so a hang fails an assertion instead of the test's timeout). */
export async function settleWithin<T>(ms: number, promise: Promise<T>): Promise<{ value: T } | { error: unknown } | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"pending">((resolve) => (timer = setTimeout(() => resolve("pending"), ms)));
  try {
    return await Promise.race([promise.then((value) => ({ value }), (error: unknown) => ({ error })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const never = new AbortController().signal;

/** Receives until `n` deliveries came or `timeout` ms passed. */
export async function receiveAll<T>(t: RedisStreamsTransport<T>, n: number, timeout = 10_000): Promise<RedisDelivery<T>[]> {
  const got: RedisDelivery<T>[] = [];
  const end = Date.now() + timeout;
  while (got.length < n && Date.now() < end) got.push(...(await t.receive(n - got.length, never)));
  return got;
}
