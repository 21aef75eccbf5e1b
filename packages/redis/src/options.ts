import { hostname } from "node:os";
import { type Codec, invalidOption } from "@tranche/core";
import type { RedisClientType } from "redis";

/** Any node-redis v5 client (`createClient()`), whatever its modules, scripts and RESP version. */
export type AnyRedisClient = RedisClientType<any, any, any, any, any>;

/** A client to use, or the URL to open one with. */
export type RedisConnection =
  | {
      /** A node-redis client. The transport connects it if needed and leaves it open on `close()`. */
      client: AnyRedisClient;
      url?: never;
    }
  | {
      /** `redis://[[user]:password@]host[:port][/db]`; the transport opens and closes its own client. */
      url: string;
      client?: never;
    };

/** Message prefix of this package's errors. */
export const PREFIX = "[tranche/redis]";

/** Throws the `TypeError` of a bad option or argument (see `invalidOption`). */
export function invalid(name: string, expected: string, value: unknown): never {
  throw invalidOption(name, expected, value, PREFIX);
}

export function checkOptionsObject(options: unknown): Record<string, unknown> {
  if (typeof options !== "object" || options === null) invalid("options", "an object", options);
  return options as Record<string, unknown>;
}

export function checkName(name: string, value: unknown): string {
  if (typeof value !== "string" || value === "") invalid(name, "a non-empty string", value);
  return value;
}

export function checkCodec<T>(value: unknown): Codec<T> | undefined {
  if (value === undefined) return undefined;
  const c = value as Partial<Codec<T>>;
  if (typeof c !== "object" || c === null || typeof c.encode !== "function" || typeof c.decode !== "function") {
    invalid("codec", "an object with encode and decode", value);
  }
  return value as Codec<T>;
}

/** Either a client or a URL, never both. */
export function checkConnection(o: Record<string, unknown>): { client: AnyRedisClient } | { url: string } {
  if (o.client !== undefined && o.url !== undefined) invalid("client", "absent when `url` is set", "a client");
  if (o.client !== undefined) {
    const c = o.client as Partial<AnyRedisClient>;
    if (typeof c !== "object" || c === null || typeof c.sendCommand !== "function" || typeof c.duplicate !== "function") {
      invalid("client", "a node-redis client (createClient())", o.client);
    }
    return { client: o.client as AnyRedisClient };
  }
  if (typeof o.url !== "string" || !/^rediss?:\/\//.test(o.url)) invalid("url", "a redis:// or rediss:// URL (or pass `client`)", o.url);
  return { url: o.url };
}

/**
 * The Redis Cluster hash tag of `name`: `{jobs}` for `"jobs"`, and a name that already holds a
 * tag keeps it, so every key of one queue lands in one slot (Lua and MULTI need that).
 */
export function hashTagged(name: string): string {
  return /\{[^{}]+\}/.test(name) ? name : `{${name}}`;
}

export function tagOf(key: string): string | undefined {
  return /\{([^{}]+)\}/.exec(key)?.[1];
}

let consumersInProcess = 0;

/**
 * `host-pid` for the first transport of a process, `host-pid-2`... for the next ones, so two
 * transports of one process are two consumers.
 */
export function defaultConsumerName(): string {
  consumersInProcess++;
  return `${hostname()}-${process.pid}${consumersInProcess === 1 ? "" : `-${consumersInProcess}`}`;
}
