import { ClosedError, TimeoutError, checkMs } from "@tranche/core";
import type { Outcome, ResultStore } from "@tranche/core";
import { CommandClient, closeClient, ignore } from "./connection.js";
import type { AnyRedisClient, RedisConnection } from "./options.js";
import { PREFIX, checkConnection, checkName, checkOptionsObject, invalid } from "./options.js";

export type RedisResultStoreOptions = RedisConnection & {
  /** Prefix of the keys (`<prefix><id>`) and of the pub/sub channels that announce them. @default "tranche:result:" */
  prefix?: string;
  /** ms an outcome is kept when `set` is called without a `ttl`; `Infinity` keeps it forever. @default 86_400_000 (a day) */
  ttl?: number;
};

/**
 * Outcomes in Redis strings with a TTL. `set` writes the value and `PUBLISH`es it in one
 * `MULTI`; `wait` subscribes to the item's channel first and reads the key second, so an outcome
 * stored in between is seen either way. Waiting never polls.
 */
export class RedisResultStore<R = unknown> implements ResultStore<R> {
  private readonly commands: CommandClient;
  private readonly client: AnyRedisClient;
  private readonly prefix: string;
  private readonly ttl: number;
  private subscriber: Promise<AnyRedisClient> | undefined;
  private closed = false;

  constructor(options: RedisResultStoreOptions) {
    const o = checkOptionsObject(options);
    const connection = checkConnection(o);
    this.prefix = o.prefix === undefined ? "tranche:result:" : checkName("prefix", o.prefix);
    this.ttl = o.ttl === undefined ? 86_400_000 : checkMs("ttl", o.ttl, { min: 1, allowInfinity: true, prefix: PREFIX });
    this.commands = new CommandClient(connection);
    this.client = this.commands.client;
  }

  /** Stores `outcome` under `id` for `ttl` ms (the store's `ttl` when absent) and wakes its waiters. */
  async set(id: string, outcome: Outcome<R>, ttl?: number): Promise<void> {
    checkId(id);
    const ms = ttl === undefined ? this.ttl : checkMs("ttl", ttl, { min: 1, allowInfinity: true, prefix: PREFIX });
    const value = JSON.stringify(outcome);
    await this.ready();
    const key = this.prefix + id;
    await this.client
      .multi()
      .addCommand(ms === Infinity ? ["SET", key, value] : ["SET", key, value, "PX", String(Math.ceil(ms))])
      .addCommand(["PUBLISH", key, value])
      .exec();
  }

  async get(id: string): Promise<Outcome<R> | undefined> {
    checkId(id);
    await this.ready();
    const value = await this.client.sendCommand<string | null>(["GET", this.prefix + id]);
    return value === null ? undefined : (JSON.parse(value) as Outcome<R>);
  }

  /** Resolves once `id` has an outcome; rejects with `TimeoutError` after `timeout` ms, or with the signal's reason when it aborts. */
  async wait(id: string, options?: { timeout?: number; signal?: AbortSignal }): Promise<Outcome<R>> {
    checkId(id);
    const timeout = options?.timeout === undefined ? Infinity : checkMs("timeout", options.timeout, { allowInfinity: true, prefix: PREFIX });
    const signal = options?.signal;
    signal?.throwIfAborted();
    const channel = this.prefix + id;
    return new Promise<Outcome<R>>((resolve, reject) => {
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let subscriber: AnyRedisClient | undefined;
      const finish = (error: unknown, outcome?: Outcome<R>): void => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        subscriber?.unsubscribe(channel, listener).catch(ignore);
        if (error === undefined) resolve(outcome!);
        else reject(error);
      };
      const listener = (message: string): void => finish(undefined, JSON.parse(message) as Outcome<R>);
      const onAbort = (): void => finish(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== Infinity) {
        timer = setTimeout(() => finish(new TimeoutError(timeout, `[tranche/redis] no result for ${JSON.stringify(id)} after ${timeout} ms`)), timeout);
      }
      // Subscribed first, read second: an outcome stored in between is in the key or in a message.
      this.subscribe()
        .then(async (connection) => {
          if (settled) return;
          subscriber = connection;
          await connection.subscribe(channel, listener);
          if (settled) return void connection.unsubscribe(channel, listener).catch(ignore);
          const outcome = await this.get(id);
          if (outcome !== undefined) finish(undefined, outcome);
        })
        .catch((error: unknown) => finish(error));
    });
  }

  /** Closes the subscriber connection, and the client when the store opened it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const subscriber = await this.subscriber?.catch(() => undefined);
    if (subscriber !== undefined) await closeClient(subscriber);
    await this.commands.close();
  }

  private ready(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError("[tranche/redis] result store is closed"));
    return this.commands.connect();
  }

  /** A connection in subscriber mode, shared by every `wait` of this store. */
  private subscribe(): Promise<AnyRedisClient> {
    this.subscriber ??= this.ready().then(() => this.commands.duplicate());
    this.subscriber.catch(() => (this.subscriber = undefined));
    return this.subscriber;
  }
}

function checkId(id: unknown): void {
  if (typeof id !== "string" || id === "") invalid("id", "a non-empty string", id);
}
