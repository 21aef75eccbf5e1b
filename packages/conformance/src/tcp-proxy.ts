import * as net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** A TCP address. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** Options of `TcpProxy.start`. */
export interface TcpProxyOptions {
  /** Port to listen on (on 127.0.0.1). @default a free port */
  port?: number;
}

type Mode = "forward" | "blackhole" | "cut" | "closed";

/** One client connection and, while it forwards, its connection to the target. */
interface Pair {
  readonly client: net.Socket;
  upstream: net.Socket | undefined;
  /** Forwarding stopped for good: the pair is silent (black-holed) until it closes. */
  silent: boolean;
}

const PREFIX = "[tranche/conformance]";

/** How long `heal()` keeps trying to listen again on its port when another socket holds it. */
const RELISTEN_TRIES = 100;
const RELISTEN_PAUSE = 50;

/**
 * A TCP proxy between clients and a server, for connection faults in tests (no vitest import:
 * worker processes use it too). Clients connect to `host:port`; each connection is forwarded to
 * the target on a connection of its own.
 *
 * - `cut()`: every open connection is reset (RST) and new ones are refused (the port stops
 *   listening), as when the server's host goes away.
 * - `blackhole()`: connections stay open but nothing is forwarded either way, and new ones are
 *   accepted and held silent: a network that drops packets. Clients notice only by their own
 *   timeouts.
 * - `heal()`: new connections are forwarded again. Connections cut or black-holed before stay
 *   dead: a client must reconnect.
 */
export class TcpProxy {
  readonly host = "127.0.0.1";
  readonly target: Endpoint;
  #port: number;
  #server: net.Server | undefined;
  #mode: Mode = "forward";
  readonly #pairs = new Set<Pair>();
  /** Ends once the port listens again after a `heal()`; `close()` waits for it. */
  #listening: Promise<void> = Promise.resolve();

  private constructor(target: Endpoint, port: number) {
    this.target = { host: target.host, port: target.port };
    this.#port = port;
  }

  /** Starts a proxy to `target`, listening on 127.0.0.1 (a free port unless `options.port`). */
  static async start(target: Endpoint, options: TcpProxyOptions = {}): Promise<TcpProxy> {
    if (typeof target !== "object" || target === null || typeof target.host !== "string" || !Number.isInteger(target.port)) {
      throw new TypeError(`${PREFIX} Expected \`target\` to be { host, port }, got ${JSON.stringify(target)}`);
    }
    const port = options.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new TypeError(`${PREFIX} Expected \`port\` to be an integer 0..65535, got ${String(port)}`);
    const proxy = new TcpProxy(target, port);
    await proxy.#listen();
    return proxy;
  }

  /** Where clients connect. */
  get port(): number {
    return this.#port;
  }

  /** `host:port`, where clients connect. */
  get address(): string {
    return `${this.host}:${this.#port}`;
  }

  /** `"forward"`, `"blackhole"`, `"cut"` or `"closed"`. */
  get mode(): Mode {
    return this.#mode;
  }

  /** Open client connections (forwarding or silent). */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Resets every open connection and refuses new ones until `heal()`. */
  cut(): void {
    if (this.#mode === "closed") return;
    this.#mode = "cut";
    void this.#stopListening();
    for (const pair of this.#pairs) this.#destroy(pair, true);
  }

  /** Keeps every connection open but forwards nothing either way; new connections are held silent. */
  blackhole(): void {
    if (this.#mode === "closed") return;
    const wasCut = this.#mode === "cut";
    this.#mode = "blackhole";
    for (const pair of this.#pairs) this.#silence(pair);
    if (wasCut) this.#relisten();
  }

  /** Forwards new connections again; connections cut or black-holed before stay dead. */
  heal(): void {
    if (this.#mode === "closed" || this.#mode === "forward") return;
    const wasCut = this.#mode === "cut";
    this.#mode = "forward";
    if (wasCut) this.#relisten();
  }

  /** Stops listening and destroys every connection. Resolves once all are gone. */
  async close(): Promise<void> {
    if (this.#mode === "closed") return;
    this.#mode = "closed";
    await this.#listening;
    const stopped = this.#stopListening();
    const gone = [...this.#pairs].map((pair) => this.#destroy(pair, false));
    await Promise.all([stopped, ...gone]);
  }

  #listen(): Promise<void> {
    const server = net.createServer({ noDelay: true }, (client) => this.#accept(client));
    return new Promise<void>((resolve, reject) => {
      const failed = (error: Error): void => reject(error);
      server.once("error", failed);
      server.listen({ port: this.#port, host: this.host, exclusive: true }, () => {
        server.off("error", failed);
        // A listening socket that fails later (it cannot once bound) must not crash the process.
        server.on("error", () => {});
        this.#server = server;
        this.#port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  /** Listens on the same port again, trying for a while if another socket holds it meanwhile. */
  #relisten(): void {
    this.#listening = (async () => {
      for (let tries = 1; ; tries++) {
        if (this.#mode === "closed" || this.#mode === "cut" || this.#server !== undefined) return;
        try {
          await this.#listen();
          // close() stops it once this ends; a cut() meanwhile stops it here.
          if ((this.#mode as Mode) === "cut") void this.#stopListening();
          return;
        } catch (error) {
          if (tries >= RELISTEN_TRIES) {
            process.emitWarning(`${PREFIX} TcpProxy cannot listen on ${this.address} again: ${(error as Error).message}`);
            return;
          }
          await sleep(RELISTEN_PAUSE);
        }
      }
    })();
  }

  /** Refuses new connections from now on; resolves once the listening socket is closed. */
  #stopListening(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    return new Promise((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  }

  #accept(client: net.Socket): void {
    const pair: Pair = { client, upstream: undefined, silent: false };
    this.#pairs.add(pair);
    client.on("error", () => this.#destroy(pair, false));
    client.on("close", () => this.#destroy(pair, false));
    if (this.#mode === "cut" || this.#mode === "closed") {
      this.#destroy(pair, true);
      return;
    }
    if (this.#mode === "blackhole") {
      this.#silence(pair);
      return;
    }
    const upstream = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
    pair.upstream = upstream;
    // The target closing or failing ends the client's connection too, unless the pair is silent.
    upstream.on("error", () => (pair.silent ? upstream.destroy() : this.#destroy(pair, true)));
    upstream.on("close", () => {
      if (!pair.silent) this.#destroy(pair, false);
    });
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Stops forwarding a pair for good; what either side sends is read and dropped. */
  #silence(pair: Pair): void {
    if (pair.silent) return;
    pair.silent = true;
    const { client, upstream } = pair;
    client.unpipe();
    upstream?.unpipe();
    for (const socket of [client, upstream]) {
      if (socket === undefined) continue;
      socket.removeAllListeners("data");
      socket.on("data", () => {});
      socket.resume();
    }
    // A client that ends its side of a silent connection is gone: let it go.
    client.once("end", () => this.#destroy(pair, false));
  }

  /** Destroys both sockets of a pair (with RST when `reset`); resolves once the client's has closed. */
  #destroy(pair: Pair, reset: boolean): Promise<void> {
    this.#pairs.delete(pair);
    const sockets = [pair.client, pair.upstream].filter((s): s is net.Socket => s !== undefined);
    const closed = sockets.map((socket) => (socket.closed ? Promise.resolve() : new Promise<void>((resolve) => socket.once("close", () => resolve()))));
    for (const socket of sockets) {
      if (socket.destroyed) continue;
      if (reset && typeof socket.resetAndDestroy === "function" && !socket.connecting) socket.resetAndDestroy();
      else socket.destroy();
    }
    return Promise.all(closed).then(() => undefined);
  }
}
