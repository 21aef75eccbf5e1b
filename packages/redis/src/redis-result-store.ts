import { ClosedError, TimeoutError, TransportError } from "@tranche/core";
import { checkMs } from "@tranche/core/internal";
import type { Outcome, ResultStore } from "@tranche/core";
import { Connection, ignore } from "./connection.js";
import { encodeError } from "./errors.js";
import type { RedisConnection, RedisTimeouts } from "./options.js";
import { PREFIX, checkConnection, checkName, checkOptionsObject, checkTimeouts, invalid } from "./options.js";

export type RedisResultStoreOptions = RedisConnection & {
  /** Prefix of the keys (`<prefix><id>`) and of the pub/sub channels that announce them. @default "tranche:result:" */
  prefix?: string;
  /** ms an outcome is kept when `set` is called without a `ttl`; `Infinity` keeps it forever. @default 86_400_000 (a day) */
  ttl?: number;
} & RedisTimeouts;

/** ms between tries of reading the waited keys again after the subscriber reconnected, while the reads fail. */
const RECHECK_DELAY = 250;
/** ms between `PING`s on the subscriber connection while waits are in progress: a silent connection is found only by a command left unanswered. */
const HEARTBEAT = 1000;

interface Waiter<R> {
  resolve(outcome: Outcome<R>): void;
  reject(error: unknown): void;
}

/**
 * Outcomes in Redis strings with a TTL. `set` writes the value and `PUBLISH`es it in one
 * `MULTI`; `wait` subscribes to the item's channel first and reads the key second, so an outcome
 * stored in between is seen either way. A message published while the subscriber connection is
 * down is lost, so every waited key is read again each time that connection is back. Waiting
 * never polls.
 */
export class RedisResultStore<R = unknown> implements ResultStore<R> {
  private readonly commands: Connection;
  private readonly prefix: string;
  private readonly ttl: number;
  /** The pub/sub connection shared by every `wait`, opened by the first. */
  private subscriber: Connection | undefined;
  /** The waits in progress by key (= channel). */
  private readonly waiters = new Map<string, Set<Waiter<R>>>();
  private readonly onMessage = (message: string, channel: string): void => {
    const outcome = parse<R>(message);
    if (outcome !== undefined) this.deliver(channel, outcome);
  };
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(options: RedisResultStoreOptions) {
    const o = checkOptionsObject(options);
    const connection = checkConnection(o);
    this.prefix = o.prefix === undefined ? "tranche:result:" : checkName("prefix", o.prefix);
    this.ttl = o.ttl === undefined ? 86_400_000 : checkMs("ttl", o.ttl, { min: 1, allowInfinity: true, prefix: PREFIX });
    this.commands = Connection.open(connection, checkTimeouts(o));
  }

  /**
   * Stores `outcome` under `id` for `ttl` ms (the store's `ttl` when absent) and wakes its waiters.
   * An outcome that cannot be serialised (a `BigInt`, a cycle) rejects at once with a
   * `TransportError` that is not retryable.
   */
  async set(id: string, outcome: Outcome<R>, ttl?: number): Promise<void> {
    checkId(id);
    const ms = ttl === undefined ? this.ttl : checkMs("ttl", ttl, { min: 1, allowInfinity: true, prefix: PREFIX });
    let value: string;
    try {
      value = JSON.stringify(outcome);
    } catch (error) {
      throw encodeError("set", `the outcome of ${JSON.stringify(id)}`, error);
    }
    this.assertOpen();
    const key = this.prefix + id;
    await this.commands.run("set", (client) =>
      client
        .multi()
        .addCommand(ms === Infinity ? ["SET", key, value] : ["SET", key, value, "PX", String(Math.ceil(ms))])
        .addCommand(["PUBLISH", key, value])
        .exec(),
    );
  }

  async get(id: string): Promise<Outcome<R> | undefined> {
    checkId(id);
    this.assertOpen();
    const value = await this.commands.send<string | null>("get", ["GET", this.prefix + id]);
    if (value === null) return undefined;
    const outcome = parse<R>(value);
    if (outcome === undefined) throw new TransportError(`${PREFIX} get failed: the value of ${JSON.stringify(this.prefix + id)} is not an outcome`, { retryable: false });
    return outcome;
  }

  /**
   * Resolves once `id` has an outcome; rejects with `TimeoutError` after `timeout` ms, with the
   * signal's reason when it aborts, with a `TransportError` when Redis cannot be reached to start
   * waiting, and with `ClosedError` when the store closes. Survives the subscriber connection
   * reconnecting.
   */
  async wait(id: string, options?: { timeout?: number; signal?: AbortSignal }): Promise<Outcome<R>> {
    checkId(id);
    const timeout = options?.timeout === undefined ? Infinity : checkMs("timeout", options.timeout, { allowInfinity: true, prefix: PREFIX });
    const signal = options?.signal;
    signal?.throwIfAborted();
    this.assertOpen();
    const key = this.prefix + id;
    return new Promise<Outcome<R>>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const end = (): boolean => {
        if (!this.unwatch(key, waiter)) return false;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        return true;
      };
      const waiter: Waiter<R> = {
        resolve: (outcome) => end() && resolve(outcome),
        reject: (error) => end() && reject(error),
      };
      const onAbort = (): void => waiter.reject(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== Infinity) {
        timer = setTimeout(() => waiter.reject(new TimeoutError(timeout, `${PREFIX} no result for ${JSON.stringify(id)} after ${timeout} ms`)), timeout);
      }
      this.watch(key, waiter).catch((error: unknown) => waiter.reject(error));
    });
  }

  /** Rejects the waits in progress with `ClosedError`, closes the subscriber connection, and the client when the store opened it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closed = new ClosedError(`${PREFIX} result store is closed`);
    for (const waiters of [...this.waiters.values()]) for (const waiter of [...waiters]) waiter.reject(closed);
    clearInterval(this.heartbeat);
    await this.subscriber?.close(0);
    await this.commands.close(1000);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError(`${PREFIX} result store is closed`);
  }

  /**
   * Adds `waiter` to `key`'s, subscribes to the key's channel (once for all its waiters), then
   * reads the key. Rejects when the subscription fails; a failed read is tried again.
   */
  private async watch(key: string, waiter: Waiter<R>): Promise<void> {
    let waiters = this.waiters.get(key);
    if (waiters === undefined) this.waiters.set(key, (waiters = new Set()));
    waiters.add(waiter);
    const subscriber = this.subscriberConnection();
    if (this.heartbeat === undefined) {
      this.heartbeat = setInterval(() => {
        if (subscriber.client.isReady) subscriber.send("wait", ["PING"]).catch(ignore);
      }, HEARTBEAT);
      this.heartbeat.unref();
    }
    // Subscribed first, read second: an outcome stored in between is in the key or in a message.
    await subscriber.run("wait", (client) => client.subscribe(key, this.onMessage));
    if (waiters.has(waiter)) this.recheck([key]);
    // Every waiter ended while the subscription was on its way: nothing unsubscribed it.
    else if (!this.waiters.has(key)) subscriber.client.unsubscribe(key, this.onMessage).catch(ignore);
  }

  /** Removes `waiter`; unsubscribes from the key when it was the last. False when it was gone already. */
  private unwatch(key: string, waiter: Waiter<R>): boolean {
    const waiters = this.waiters.get(key);
    if (waiters === undefined || !waiters.delete(waiter)) return false;
    if (waiters.size === 0) {
      this.waiters.delete(key);
      if (this.waiters.size === 0) {
        clearInterval(this.heartbeat);
        this.heartbeat = undefined;
      }
      const client = this.subscriber?.client;
      if (client?.isOpen) client.unsubscribe(key, this.onMessage).catch(ignore);
    }
    return true;
  }

  private deliver(key: string, outcome: Outcome<R>): void {
    const waiters = this.waiters.get(key);
    if (waiters !== undefined) for (const waiter of [...waiters]) waiter.resolve(outcome);
  }

  /** Reads those of `keys` still waited for and hands each outcome found to its waiters; tried again while the reads fail. */
  private recheck(keys: string[]): void {
    const waited = keys.filter((key) => this.waiters.has(key));
    if (this.closed || waited.length === 0) return;
    this.commands
      .run("wait", (client) => Promise.all(waited.map((key) => client.sendCommand<string | null>(["GET", key]))))
      .then((values) => {
        waited.forEach((key, i) => {
          const outcome = values[i] === null ? undefined : parse<R>(values[i]!);
          if (outcome !== undefined) this.deliver(key, outcome);
        });
      })
      .catch(() => setTimeout(() => this.recheck(waited), RECHECK_DELAY).unref());
  }

  /** The subscriber connection; each time it is back after a drop, every waited key is subscribed and read again. */
  private subscriberConnection(): Connection {
    if (this.subscriber !== undefined) return this.subscriber;
    const subscriber = this.commands.duplicate();
    let connected = false;
    subscriber.on("ready", () => {
      if (connected) this.resubscribe(subscriber);
      connected = true;
    });
    return (this.subscriber = subscriber);
  }

  /**
   * Subscribes to every waited key (node-redis subscribes again to the channels it had confirmed;
   * a `SUBSCRIBE` lost with the connection is sent here) and reads them. Tried again while the
   * subscriber is up and the subscription fails; when it goes down, its next "ready" comes here.
   */
  private resubscribe(subscriber: Connection): void {
    if (this.closed || this.waiters.size === 0 || !subscriber.client.isReady) return;
    const keys = [...this.waiters.keys()];
    subscriber
      .run("wait", (client) => client.subscribe(keys, this.onMessage))
      .then(() => this.recheck(keys))
      .catch(() => setTimeout(() => this.resubscribe(subscriber), RECHECK_DELAY).unref());
  }
}

function parse<R>(value: string): Outcome<R> | undefined {
  try {
    const outcome = JSON.parse(value) as Outcome<R>;
    return typeof outcome === "object" && outcome !== null && typeof outcome.ok === "boolean" ? outcome : undefined;
  } catch {
    return undefined;
  }
}

function checkId(id: unknown): void {
  if (typeof id !== "string" || id === "") invalid("id", "a non-empty string", id);
}
