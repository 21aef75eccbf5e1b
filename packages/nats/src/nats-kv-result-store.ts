import { ClosedError, TimeoutError, TransportError, type Outcome, type ResultStore } from "@tranche/core";
import { checkMs } from "@tranche/core/internal";
import { jetstream } from "@nats-io/jetstream";
import { KvWatchInclude, Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { describe, transportError } from "./classify.js";
import { openConnection, type Link } from "./connection.js";
import { checkConnection, checkName, invalid, PREFIX, timeoutOf, type NatsConnectionOptions } from "./options.js";

// Pause before a failed watch of the bucket is started again.
const RETRY_WATCH_MS = 250;

export interface NatsKvResultStoreOptions extends NatsConnectionOptions {
  /** KV bucket holding the outcomes; created (file storage) if absent. @default "tranche-results" */
  bucket?: string;
  /**
   * Age in ms after which the server drops an outcome (the bucket's max age), applied when the
   * store creates the bucket; `Infinity` keeps outcomes until deleted. A `set(id, outcome, ttl)`
   * with a shorter `ttl` is honoured on read.
   * @default 86_400_000 (a day, as `RedisResultStore` and `MemoryResultStore`)
   */
  ttl?: number;
  /** Replicas of the bucket's stream in a cluster (1, 3 or 5), applied at creation. @default 1 */
  replicas?: number;
}

interface Stored<R> {
  readonly outcome: Outcome<R>;
  /** Epoch ms after which the outcome counts as absent. */
  readonly expiresAt?: number;
}

// KV keys are subject tokens: letters, digits and `-/_=`, separated by single dots.
const PLAIN_KEY = /^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$/;
const ENCODED = "_b64.";

/** The KV key of an item id: the id itself when it is a valid key, else its base64url form. */
export function keyOf(id: string): string {
  if (PLAIN_KEY.test(id) && !id.startsWith(ENCODED)) return id;
  return ENCODED + Buffer.from(id, "utf8").toString("base64url");
}

/** A pending `wait`. */
interface Waiter<R> {
  settle(outcome: Outcome<R>): void;
  fail(error: unknown): void;
}

/**
 * A `ResultStore` on a JetStream KV bucket. While any `wait()` is pending the store watches the
 * bucket's updates with one consumer, whatever the number of waits, and each wait also reads its
 * key once (an outcome stored before the watch started is not missed); nothing polls. A watch
 * that fails (the connection is down, the server restarted) is started again, and after every
 * reconnect each waited key is read again, so an outcome stored meanwhile is not missed.
 */
export class NatsKvResultStore<R = unknown> implements ResultStore<R> {
  readonly #source: NatsKvResultStoreOptions;
  readonly #bucket: string;
  readonly #ttl: number | undefined;
  readonly #replicas: number;
  readonly #waiters = new Map<string, Set<Waiter<R>>>();
  #opened: Promise<{ link: Link; kv: KV }> | undefined;
  #watching: Promise<void> | undefined;
  #watch: { stop(): void } | undefined;
  #closed = false;

  constructor(options?: NatsKvResultStoreOptions) {
    if (options !== undefined && (typeof options !== "object" || options === null)) invalid("options", "an object", options);
    const o = options ?? {};
    checkConnection(o);
    this.#source = o;
    this.#bucket = checkName("bucket", o.bucket ?? "tranche-results");
    const ttl = o.ttl === undefined ? 86_400_000 : checkMs("ttl", o.ttl, { min: 1, allowInfinity: true, prefix: PREFIX });
    this.#ttl = ttl === Infinity ? undefined : ttl;
    const replicas = o.replicas ?? 1;
    if (replicas !== 1 && replicas !== 3 && replicas !== 5) invalid("replicas", "1, 3 or 5", replicas);
    this.#replicas = replicas;
  }

  /** Rejects with a non-retryable `TransportError` when the outcome cannot be serialised (a `BigInt`...). */
  async set(id: string, outcome: Outcome<R>, ttl?: number): Promise<void> {
    if (ttl !== undefined) checkMs("ttl", ttl, { allowInfinity: true, prefix: PREFIX });
    const stored: Stored<R> = ttl === undefined || ttl === Infinity ? { outcome } : { outcome, expiresAt: Date.now() + ttl };
    let body: string;
    try {
      body = JSON.stringify(stored);
    } catch (cause) {
      throw new TransportError(`${PREFIX} set failed: the outcome of ${JSON.stringify(id)} cannot be serialised: ${describe(cause)}`, { retryable: false, cause });
    }
    const { link, kv } = await this.#open("set");
    link.assertOnline("set");
    try {
      await kv.put(keyOf(id), body);
    } catch (error) {
      throw transportError("set", error, link.where());
    }
  }

  async get(id: string): Promise<Outcome<R> | undefined> {
    const { link, kv } = await this.#open("get");
    link.assertOnline("get");
    try {
      return live<R>(await kv.get(keyOf(id)));
    } catch (error) {
      throw transportError("get", error, link.where());
    }
  }

  /**
   * Resolves with the outcome once it is stored, across reconnects and server restarts; rejects
   * with `TimeoutError` after `timeout` or when `signal` aborts, with `ClosedError` when the store
   * closes, and with a non-retryable `TransportError` (permissions...).
   */
  wait(id: string, options: { timeout?: number; signal?: AbortSignal } = {}): Promise<Outcome<R>> {
    const timeout = options.timeout === undefined ? undefined : checkMs("timeout", options.timeout, { prefix: PREFIX });
    const signal = options.signal;
    const aborted = (): TimeoutError => new TimeoutError(timeout ?? 0, `[tranche/nats] wait for ${JSON.stringify(id)} was aborted`);
    if (signal?.aborted) return Promise.reject(aborted());
    if (this.#closed) return Promise.reject(new ClosedError("[tranche/nats] result store is closed"));
    const key = keyOf(id);
    return new Promise<Outcome<R>>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const end = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const waiting = this.#waiters.get(key);
        waiting?.delete(waiter);
        if (waiting?.size === 0) this.#waiters.delete(key);
        if (this.#waiters.size === 0) this.#watch?.stop();
      };
      const waiter: Waiter<R> = {
        settle(outcome) {
          end();
          resolve(outcome);
        },
        fail(error) {
          end();
          reject(error);
        },
      };
      const onAbort = (): void => waiter.fail(aborted());
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== undefined) {
        timer = setTimeout(() => waiter.fail(new TimeoutError(timeout, `[tranche/nats] no result for ${JSON.stringify(id)} within ${timeout} ms`)), timeout);
      }
      const waiting = this.#waiters.get(key) ?? new Set();
      waiting.add(waiter);
      this.#waiters.set(key, waiting);
      // Read once the watch runs: stored before it started, the get sees it; after, the watch does.
      void this.#startWatching().then(() => this.#reread([key]));
    });
  }

  /** Closes the connection if the store opened it; bounded while the server is down. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#failAll(new ClosedError("[tranche/nats] result store is closed"));
    this.#watch?.stop();
    const opened = this.#opened;
    if (opened !== undefined) await (await opened.catch(() => undefined))?.link.release();
  }

  /** Watches the bucket's updates while waits are pending; started again after a failure. */
  #startWatching(): Promise<void> {
    this.#watching ??= new Promise<void>((started) => {
      void (async () => {
        for (let restart = false; this.#waiters.size > 0 && !this.#closed; restart = true) {
          try {
            const { link, kv } = await this.#open("wait");
            link.assertOnline("wait");
            const watch = await kv.watch({ key: ">", include: KvWatchInclude.UpdatesOnly });
            this.#watch = watch;
            if (this.#waiters.size === 0) watch.stop();
            started();
            // A watch started again sees only later updates: read what was stored in between.
            if (restart) void this.#reread([...this.#waiters.keys()]);
            for await (const entry of watch) {
              const outcome = live<R>(entry);
              if (outcome !== undefined) this.#hand(entry.key, outcome);
            }
          } catch (error) {
            const classified = transportError("wait", error);
            if (!TransportError.isInstance(classified) || !(classified as TransportError).retryable) this.#failAll(classified);
          }
          if (this.#waiters.size > 0 && !this.#closed) await new Promise((r) => setTimeout(r, RETRY_WATCH_MS));
        }
        started();
        this.#watch = undefined;
        this.#watching = undefined;
      })();
    });
    return this.#watching;
  }

  /** Reads `keys` and hands each stored outcome to its waits; a failed read is left to the watch. */
  async #reread(keys: string[]): Promise<void> {
    let kv: KV;
    try {
      ({ kv } = await this.#open("wait"));
    } catch {
      return;
    }
    await Promise.all(
      keys.map(async (key) => {
        try {
          const outcome = live<R>(await kv.get(key));
          if (outcome !== undefined) this.#hand(key, outcome);
        } catch {
          // the watch, or the next reconnect, reads it
        }
      }),
    );
  }

  #hand(key: string, outcome: Outcome<R>): void {
    for (const waiter of [...(this.#waiters.get(key) ?? [])]) waiter.settle(outcome);
  }

  #failAll(error: unknown): void {
    for (const waiting of [...this.#waiters.values()]) for (const waiter of [...waiting]) waiter.fail(error);
  }

  #open(operation: string): Promise<{ link: Link; kv: KV }> {
    if (this.#closed) return Promise.reject(new ClosedError("[tranche/nats] result store is closed"));
    this.#opened ??= (async () => {
      const link = await openConnection(this.#source, `tranche results ${this.#bucket}`);
      link.onReconnect(() => void this.#reread([...this.#waiters.keys()]));
      try {
        const kvm = new Kvm(jetstream(link.nc, { timeout: timeoutOf(this.#source) }));
        const kv = await kvm.create(this.#bucket, { history: 1, replicas: this.#replicas, ...(this.#ttl === undefined ? {} : { ttl: this.#ttl }) });
        return { link, kv };
      } catch (error) {
        await link.release();
        throw transportError(operation, error, `bucket ${this.#bucket} on ${link.where()}`);
      }
    })().catch((error: unknown) => {
      this.#opened = undefined;
      throw error;
    });
    return this.#opened;
  }
}

function live<R>(entry: KvEntry | null): Outcome<R> | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  const stored = entry.json<Stored<R>>();
  if (stored.expiresAt !== undefined && stored.expiresAt <= Date.now()) return undefined;
  return stored.outcome;
}
