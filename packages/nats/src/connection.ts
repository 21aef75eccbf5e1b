import { TransportError } from "@tranche/core";
import { connect, type NatsConnection, type Status } from "@nats-io/transport-node";
import { transportError } from "./classify.js";
import { PREFIX, timeoutOf, type NatsConnectionOptions } from "./options.js";

const DEFAULT_SERVER = "nats://127.0.0.1:4222";

/**
 * A connection an adapter uses, whether it must close it, and its state as the status events
 * tell it: calls made while it is down reject at once instead of waiting for a reconnect.
 */
export class Link {
  readonly nc: NatsConnection;
  readonly owned: boolean;
  /** Up to now; false from a disconnect until the next reconnect. */
  online = true;
  /** Counts reconnects: a server reached again may have restarted and lost recent state. */
  epoch = 0;
  readonly #timeout: number;
  readonly #status: AsyncIterable<Status> & { stop?: () => void };
  readonly #onReconnect = new Set<() => void>();
  readonly #onDisconnect = new Set<() => void>();

  constructor(nc: NatsConnection, owned: boolean, timeout: number) {
    this.nc = nc;
    this.owned = owned;
    this.#timeout = timeout;
    this.#status = nc.status() as AsyncIterable<Status> & { stop?: () => void };
    void this.#watch();
  }

  async #watch(): Promise<void> {
    try {
      for await (const status of this.#status) {
        if (status.type === "disconnect" || status.type === "staleConnection" || status.type === "close") {
          this.online = false;
          for (const listener of this.#onDisconnect) listener();
        } else if (status.type === "reconnect") {
          this.online = true;
          this.epoch++;
          for (const listener of this.#onReconnect) listener();
        }
      }
    } catch {
      // the iterator ends with the connection
    }
  }

  /** The server this connection talks to (or tries to), for error messages. */
  where(): string {
    try {
      return `server nats://${this.nc.getServer()}`;
    } catch {
      return "server unknown";
    }
  }

  /** Calls `listener` after every reconnect; returns the function that removes it. */
  onReconnect(listener: () => void): () => void {
    this.#onReconnect.add(listener);
    return () => this.#onReconnect.delete(listener);
  }

  /** Calls `listener` when the connection drops; returns the function that removes it. */
  onDisconnect(listener: () => void): () => void {
    this.#onDisconnect.add(listener);
    return () => this.#onDisconnect.delete(listener);
  }

  /** Rejects `operation` at once while the connection is down. */
  assertOnline(operation: string): void {
    if (this.nc.isClosed()) throw new TransportError(`${PREFIX} ${operation} failed: the connection is closed (${this.where()})`, { retryable: false });
    if (!this.online) throw new TransportError(`${PREFIX} ${operation} failed: not connected, reconnecting (${this.where()})`, { retryable: true });
  }

  /** Waits until the server has processed everything published so far, at most `timeout`. */
  async flush(operation: string): Promise<void> {
    this.assertOnline(operation);
    try {
      await withTimeout(this.nc.flush(), this.#timeout, "flush timed out");
    } catch (error) {
      throw transportError(operation, error, this.where());
    }
  }

  /** Closes the connection if the adapter opened it (after a bounded flush when it is up). */
  async release(): Promise<void> {
    this.#onReconnect.clear();
    this.#onDisconnect.clear();
    if (!this.owned) {
      this.#status.stop?.();
      return;
    }
    if (this.nc.isClosed()) return;
    if (this.online) await withTimeout(this.nc.flush(), this.#timeout, "flush timed out").catch(() => {});
    await withTimeout(this.nc.close(), this.#timeout, "close timed out").catch(() => {});
  }
}

/**
 * The given connection, or a new one to `servers` that reconnects forever (a restarted server
 * must not stop a worker) and detects a silent network within a few pings.
 */
export async function openConnection(options: NatsConnectionOptions, name: string): Promise<Link> {
  const timeout = timeoutOf(options);
  if (options.connection !== undefined) return new Link(options.connection, false, timeout);
  const servers = options.servers ?? DEFAULT_SERVER;
  try {
    const nc = await connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout, pingInterval: 5_000, maxPingOut: 2 });
    return new Link(nc, true, timeout);
  } catch (error) {
    throw transportError("connect", error, `server ${Array.isArray(servers) ? servers.join(", ") : servers}`);
  }
}

/** `promise`, or a rejection with `message` after `ms`; the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref?.();
  });
  return Promise.race([promise, timedOut]).finally(() => clearTimeout(timer));
}
