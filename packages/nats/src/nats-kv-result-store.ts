import { ClosedError, TimeoutError, checkMs, type Outcome, type ResultStore } from "@tranche/core";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { openConnection, releaseConnection, type HeldConnection } from "./connection.js";
import { checkConnection, checkName, invalid, PREFIX, type NatsConnectionOptions } from "./options.js";

export interface NatsKvResultStoreOptions extends NatsConnectionOptions {
  /** KV bucket holding the outcomes; created (file storage) if absent. @default "tranche-results" */
  bucket?: string;
  /**
   * Age in ms after which the server drops an outcome (the bucket's max age), applied when the
   * store creates the bucket. A `set(id, outcome, ttl)` with a shorter `ttl` is honoured on read.
   * @default none (kept until deleted)
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

/**
 * A `ResultStore` on a JetStream KV bucket. `wait()` watches the key (the watch delivers the
 * current value first, so nothing stored before the watch started is missed); it never polls.
 */
export class NatsKvResultStore<R = unknown> implements ResultStore<R> {
  readonly #source: NatsKvResultStoreOptions;
  readonly #bucket: string;
  readonly #ttl: number | undefined;
  readonly #replicas: number;
  #opened: Promise<{ held: HeldConnection; kv: KV }> | undefined;
  #closed = false;

  constructor(options?: NatsKvResultStoreOptions) {
    if (options !== undefined && (typeof options !== "object" || options === null)) invalid("options", "an object", options);
    const o = options ?? {};
    checkConnection(o);
    this.#source = o;
    this.#bucket = checkName("bucket", o.bucket ?? "tranche-results");
    this.#ttl = o.ttl === undefined ? undefined : checkMs("ttl", o.ttl, { min: 1, prefix: PREFIX });
    const replicas = o.replicas ?? 1;
    if (replicas !== 1 && replicas !== 3 && replicas !== 5) invalid("replicas", "1, 3 or 5", replicas);
    this.#replicas = replicas;
  }

  async set(id: string, outcome: Outcome<R>, ttl?: number): Promise<void> {
    if (ttl !== undefined) checkMs("ttl", ttl, { prefix: PREFIX });
    const { kv } = await this.#open();
    const stored: Stored<R> = ttl === undefined ? { outcome } : { outcome, expiresAt: Date.now() + ttl };
    await kv.put(keyOf(id), JSON.stringify(stored));
  }

  async get(id: string): Promise<Outcome<R> | undefined> {
    const { kv } = await this.#open();
    return live<R>(await kv.get(keyOf(id)));
  }

  async wait(id: string, options: { timeout?: number; signal?: AbortSignal } = {}): Promise<Outcome<R>> {
    const timeout = options.timeout === undefined ? undefined : checkMs("timeout", options.timeout, { prefix: PREFIX });
    const { kv } = await this.#open();
    const signal = options.signal;
    if (signal?.aborted) throw new TimeoutError(timeout ?? 0, `[tranche/nats] wait for ${JSON.stringify(id)} was aborted`);
    const watch = await kv.watch({ key: keyOf(id) });
    return new Promise<Outcome<R>>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const end = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        watch.stop();
      };
      const onAbort = (): void => {
        end();
        reject(new TimeoutError(timeout ?? 0, `[tranche/nats] wait for ${JSON.stringify(id)} was aborted`));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== undefined) {
        timer = setTimeout(() => {
          end();
          reject(new TimeoutError(timeout, `[tranche/nats] no result for ${JSON.stringify(id)} within ${timeout} ms`));
        }, timeout);
      }
      void (async () => {
        try {
          for await (const entry of watch) {
            const outcome = live<R>(entry);
            if (outcome !== undefined) {
              end();
              resolve(outcome);
              return;
            }
          }
        } catch (error) {
          end();
          reject(error);
        }
      })();
    });
  }

  /** Closes the connection if the store opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const opened = this.#opened;
    if (opened !== undefined) await releaseConnection(await opened.then((o) => o.held).catch(() => undefined));
  }

  #open(): Promise<{ held: HeldConnection; kv: KV }> {
    if (this.#closed) return Promise.reject(new ClosedError("[tranche/nats] result store is closed"));
    this.#opened ??= (async () => {
      const held = await openConnection(this.#source, `tranche results ${this.#bucket}`);
      try {
        const kv = await new Kvm(held.nc).create(this.#bucket, { history: 1, replicas: this.#replicas, ...(this.#ttl === undefined ? {} : { ttl: this.#ttl }) });
        return { held, kv };
      } catch (error) {
        this.#opened = undefined;
        await releaseConnection(held);
        throw error;
      }
    })();
    return this.#opened;
  }
}

function live<R>(entry: KvEntry | null): Outcome<R> | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  const stored = entry.json<Stored<R>>();
  if (stored.expiresAt !== undefined && stored.expiresAt <= Date.now()) return undefined;
  return stored.outcome;
}
