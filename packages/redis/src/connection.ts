import { createClient } from "redis";
import type { RedisArgument, TypeMapping } from "redis";
import { transportError } from "./errors.js";
import type { AnyRedisClient } from "./options.js";

export function ignore(): void {}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Resolves when `promise` settles or after `ms`, whichever is first; never rejects. */
export function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  return Promise.race([promise.then(ignore, ignore), sleep(ms)]);
}

/** Wait before the `retries`-th reconnect attempt in a row: doubling from 50 ms, capped at 1 s, with jitter. */
export function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** retries, 1000) + Math.floor(Math.random() * 50);
}

/** Settings of a `Connection`. */
export interface ConnectionSettings {
  /** ms a call waits for a connection being made; also node-redis's `connectTimeout`. */
  readonly connectTimeout: number;
  /** ms of silence, with commands awaiting their replies, after which the connection counts as dead. */
  readonly commandTimeout: number;
}

type Factory = (socket: { connectTimeout: number; reconnectStrategy: (retries: number) => number | false }) => AnyRedisClient;
type Event = "connect" | "ready";

/**
 * One node-redis connection of a transport or store.
 *
 * - Commands are sent only on a ready connection: while it (re)connects, a call waits for the
 *   outcome of the attempt in progress or the next one (at most `connectTimeout`) and fails with
 *   its error. Nothing is queued offline, so a call never waits for a server that is not there.
 * - It reconnects by itself, with a capped backoff.
 * - A silent connection (a network that drops packets: no reply for `commandTimeout` while
 *   commands wait, or a handshake that never ends) fails the calls waiting on it, and one the
 *   connection opened is replaced by a new one.
 * - Every error comes out as a classified `TransportError` (see `transportError`).
 */
export class Connection {
  /** `host:port` (or the socket path) the client connects to, for error messages. */
  readonly address: string;
  private current: AnyRedisClient;
  /** Why the connection is down; `undefined` while it is up, and before its first attempt failed. */
  private failure: Error | undefined;
  private closed = false;
  private readonly listeners: [Event, () => void][] = [];
  /** Calls awaiting a reply, and when the last reply (or the first of those calls) came. */
  private outstanding = 0;
  private lastProgress = 0;
  /** Extra silence allowed while a blocking command is out. */
  private patience = 0;
  private watchdog: ReturnType<typeof setTimeout> | undefined;
  /** Fails the calls in flight when the connection is found silent: one function per call, dropped when the call ends, so nothing of a call outlives it. */
  private readonly inFlight = new Set<(error: Error) => void>();
  /** Runs from a socket's connect to its handshake's end: a handshake into a silent network would wait forever. */
  private handshake: ReturnType<typeof setTimeout> | undefined;
  /** Settles with the outcome of the connect attempt in progress or the next one; shared by the calls waiting for it. */
  private attempt: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  private readonly onError = (error: Error): void => {
    clearTimeout(this.handshake);
    this.failure = error;
    this.attempt?.reject(error);
    this.attempt = undefined;
  };
  private readonly onReady = (): void => {
    clearTimeout(this.handshake);
    this.failure = undefined;
    this.attempt?.resolve();
    this.attempt = undefined;
  };
  private readonly onConnect = (): void => {
    clearTimeout(this.handshake);
    const { connectTimeout } = this.settings;
    this.handshake = setTimeout(() => this.replace(new NoReplyError(connectTimeout, "to the handshake")), connectTimeout);
    this.handshake.unref();
  };

  private constructor(
    private readonly create: Factory,
    /** Opened here: replaced when silent, closed on `close()`; a user's client is left as it is. */
    private readonly owned: boolean,
    private readonly settings: ConnectionSettings,
  ) {
    this.current = this.make();
    this.address = addressOf(this.current);
  }

  /** The user's client, or one opened from a URL without an offline queue, with a connect timeout and a capped reconnect backoff. */
  static open(connection: { client: AnyRedisClient } | { url: string }, settings: ConnectionSettings): Connection {
    if ("client" in connection) return new Connection(() => connection.client, false, settings);
    return new Connection((socket) => createClient({ url: connection.url, disableOfflineQueue: true, socket }) as AnyRedisClient, true, settings);
  }

  /** The node-redis client in use now (a silent one is replaced). */
  get client(): AnyRedisClient {
    return this.current;
  }

  /** Calls `listener` on `event` of this client and of every client that replaces it. */
  on(event: Event, listener: () => void): void {
    this.listeners.push([event, listener]);
    this.current.on(event, listener);
  }

  /** A new connection with this client's options (for blocking reads or pub/sub), with the settings of `open` whatever the client's own. */
  duplicate(): Connection {
    const base = (this.current.options?.socket ?? {}) as object;
    const client = this.current;
    return new Connection((socket) => client.duplicate({ disableOfflineQueue: true, socket: { ...base, ...socket } }) as AnyRedisClient, true, this.settings);
  }

  /** The client once it is ready; see the class comment for how long that takes. */
  async ready(operation: string): Promise<AnyRedisClient> {
    const client = this.current;
    if (client.isReady) return client;
    if (!client.isOpen) {
      this.failure = undefined;
      client.connect().catch(ignore);
    }
    const { connectTimeout } = this.settings;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.failure ?? new ConnectionTimeoutError(connectTimeout)), connectTimeout + 250);
    });
    try {
      await Promise.race([this.nextAttempt(), timeout]);
    } catch (error) {
      throw this.error(operation, error);
    } finally {
      clearTimeout(timer);
    }
    return this.current;
  }

  /**
   * Runs `use` on the ready client; its errors come out classified. `patience`: ms of silence the
   * command may take beyond `commandTimeout` (a blocking read).
   */
  async run<R>(operation: string, use: (client: AnyRedisClient) => Promise<R>, patience = 0): Promise<R> {
    const client = await this.ready(operation);
    if (this.outstanding++ === 0) this.lastProgress = Date.now();
    if (patience > this.patience) this.patience = patience;
    if (this.watchdog === undefined) this.watch();
    let silenced!: (error: Error) => void;
    const silent = new Promise<never>((_, reject) => (silenced = reject));
    this.inFlight.add(silenced);
    try {
      return await Promise.race([use(client), silent]);
    } catch (error) {
      throw this.error(operation, error);
    } finally {
      this.inFlight.delete(silenced);
      if (--this.outstanding === 0) this.patience = 0;
      this.lastProgress = Date.now();
    }
  }

  /** One command. */
  send<R>(operation: string, args: readonly RedisArgument[], typeMapping?: TypeMapping): Promise<R> {
    return this.run(operation, (client) => client.sendCommand<R>(args, typeMapping === undefined ? undefined : { typeMapping }));
  }

  /** `error` of `operation` as a classified `TransportError` that names the cause and this connection's address. */
  error(operation: string, error: unknown): Error {
    return transportError(operation, error, { address: this.address, connectionFailure: this.failure });
  }

  /**
   * Stops reconnecting and closes a connection opened here: replies to commands already sent are
   * awaited for at most `grace` ms (a `PING` answered means every earlier command was), then the
   * socket is destroyed. A user's client is left open. Leaves no timer or socket behind that
   * outlives a connect attempt in progress (bounded by `connectTimeout`).
   */
  async close(grace: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.watchdog);
    const client = this.current;
    // Errors still come (a socket closing meanwhile) and must not go unheard.
    if (this.owned) client.on("error", ignore);
    this.detach(client);
    if (!this.owned) return;
    if (client.isReady && grace > 0) await settledWithin(client.sendCommand(["PING"]), grace);
    retire(client);
  }

  private nextAttempt(): Promise<void> {
    if (this.attempt === undefined) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(ignore);
      this.attempt = { promise, resolve, reject };
    }
    return this.attempt.promise;
  }

  private make(): AnyRedisClient {
    const client: AnyRedisClient = this.create({
      connectTimeout: this.settings.connectTimeout,
      reconnectStrategy: (retries) => (this.closed || this.current !== client ? false : reconnectDelay(retries)),
    });
    client.on("error", this.onError);
    client.on("ready", this.onReady);
    client.on("connect", this.onConnect);
    for (const [event, listener] of this.listeners) client.on(event, listener);
    return client;
  }

  private detach(client: AnyRedisClient): void {
    clearTimeout(this.handshake);
    client.off("error", this.onError);
    client.off("ready", this.onReady);
    client.off("connect", this.onConnect);
    for (const [event, listener] of this.listeners) client.off(event, listener);
  }

  /** Checks for silence when the longest allowed one would have passed; stops while no call is out. */
  private watch(): void {
    const allowed = this.settings.commandTimeout + this.patience;
    const due = this.lastProgress + allowed - Date.now();
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined;
      if (this.outstanding === 0 || this.closed) return;
      const quiet = Date.now() - this.lastProgress;
      if (quiet < this.settings.commandTimeout + this.patience) return this.watch();
      const error = new NoReplyError(quiet);
      this.failure = error;
      for (const fail of this.inFlight) fail(error);
      this.inFlight.clear();
      this.lastProgress = Date.now();
      if (this.owned) this.replace(error);
    }, Math.max(10, due));
    this.watchdog.unref();
  }

  /** Drops a silent client for a new one (a connection this opened only). */
  private replace(error: Error): void {
    if (!this.owned || this.closed) return;
    const old = this.current;
    old.on("error", ignore);
    this.detach(old);
    this.current = this.make();
    this.failure = error;
    retire(old);
    this.current.connect().catch(ignore);
  }
}

/** Destroys a client for good: no reconnects, commands in flight rejected, the socket closed. Its errors must be listened to (`ignore`) already. */
function retire(client: AnyRedisClient): void {
  if (!client.isOpen) return;
  client.unref();
  try {
    client.destroy();
  } catch {
    // Closed meanwhile: nothing left to destroy.
  }
}

/** No connection within `connectTimeout`: the server is not answering (a firewall that drops packets, a host that is down). */
class ConnectionTimeoutError extends Error {
  constructor(ms: number) {
    super(`no connection within ${ms} ms`);
  }
}

/** Commands waited `ms` for a reply and none came: the connection is silent (a network that drops packets). */
class NoReplyError extends Error {
  constructor(ms: number, what = "") {
    super(`no reply ${what === "" ? "" : `${what} `}for ${ms} ms`);
  }
}

function addressOf(client: AnyRedisClient): string {
  const socket = (client.options?.socket ?? {}) as { host?: string; port?: number; path?: string };
  if (socket.path !== undefined) return socket.path;
  return `${socket.host ?? "localhost"}:${socket.port ?? 6379}`;
}
