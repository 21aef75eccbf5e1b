import { hostname } from "node:os";
import { type Codec } from "@tranche/core";
import { checkMs, invalidOption } from "@tranche/core/internal";
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

/** Options of the connections a transport or store opens. */
export interface RedisTimeouts {
  /**
   * ms a call waits for a connection being made before it fails (and the connect timeout of
   * the connections opened here). While Redis is down, calls fail at once with the reason
   * (`connect ECONNREFUSED 127.0.0.1:6379`) and the connections reconnect by themselves.
   * @default 3000
   */
  connectTimeout?: number;
  /**
   * ms without a reply, while commands wait for one, after which a connection counts as dead (a
   * network that drops packets): the calls waiting fail, and a connection opened from `url` (or
   * for blocking reads and pub/sub) is replaced. A blocking read may be silent `blockMs` longer.
   * @default 5000
   */
  commandTimeout?: number;
}

export function checkTimeouts(o: Record<string, unknown>): { connectTimeout: number; commandTimeout: number } {
  return {
    connectTimeout: o.connectTimeout === undefined ? 3000 : checkMs("connectTimeout", o.connectTimeout, { min: 1, prefix: PREFIX }),
    commandTimeout: o.commandTimeout === undefined ? 5000 : checkMs("commandTimeout", o.commandTimeout, { min: 1, prefix: PREFIX }),
  };
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

export type RedisStreamsTransportOptions<T> = RedisConnection & {
  /**
   * Name of the stream. Its key is hash-tagged for Redis Cluster: `"jobs"` lives at `{jobs}`, its
   * schedule at `{jobs}:delayed` and its dead letters at `{jobs}:dlq`. A name that already holds a
   * `{tag}` is used as is.
   */
  stream: string;
  /** Consumer group: the workers of one group share the stream's items. @default "tranche" */
  group?: string;
  /**
   * Consumer name within the group. Give each worker process a name that survives its restarts
   * (a pod or host name, a StatefulSet ordinal): a restarted consumer re-reads its own pending
   * entries at once instead of waiting `minIdle` for the reaper. @default `<hostname>-<pid>`
   */
  consumer?: string;
  /** Longest time in ms one `receive` waits (`XREADGROUP … BLOCK`) before resolving `[]`; 0 never blocks. @default 1000 */
  blockMs?: number;
  /**
   * Lease in ms: an entry a consumer has held this long without an `extend` is taken over by
   * another consumer's reaper (`XAUTOCLAIM`), with `attempt + 1`. Crash-recovery delay. @default 30_000
   */
  minIdle?: number;
  /** Stream that dead letters go to; must share the stream's hash tag. @default `<stream key>:dlq` */
  deadLetterStream?: string;
  /** Turns payloads into the bytes of an entry's `payload` field, and back. @default jsonCodec */
  codec?: Codec<T>;
  /**
   * ms between trims of the stream, in `receive`: entries every group has received and acked are
   * deleted (`XTRIM MINID` below the oldest entry some group still needs); pending and undelivered
   * entries never are. `Infinity` turns trimming off. @default 60_000
   */
  trimInterval?: number;
} & RedisTimeouts;
