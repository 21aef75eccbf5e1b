// MemoryTransport queues served over TCP (JSON lines), and a client Transport for them: a small
// network transport, so that the conformance suite's connection-fault cases run in this package,
// and deliberately broken clients prove that they fail. Test support, not a product.
import * as net from "node:net";
import { ClosedError, DecodeError, TransportError } from "@tranche/core";
import type { Delivery, SendOptions, Transport, TransportCapabilities } from "@tranche/core";
import { MemoryTransport } from "../src/index.js";

const PREFIX = "[tranche/memory-net]";

interface Request {
  n: number;
  q: string;
  op: string;
  [key: string]: unknown;
}

interface WireDelivery {
  token: string;
  id: string;
  attempt: number;
  retries?: number;
  notBefore?: number;
  leaseUntil?: number;
  payload?: unknown;
  error?: string;
  raw?: string;
}

/** Queues by name, each a MemoryTransport on the system clock, served on 127.0.0.1. */
export class QueueServer {
  readonly queues = new Map<string, { transport: MemoryTransport<unknown>; tokens: Map<string, Delivery<unknown>> }>();
  private readonly sockets = new Set<net.Socket>();
  private tokens = 0;

  private constructor(private readonly server: net.Server) {}

  static async start(): Promise<QueueServer> {
    const server = net.createServer();
    const queueServer = new QueueServer(server);
    server.on("connection", (socket) => queueServer.serve(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return queueServer;
  }

  get endpoint(): { host: string; port: number } {
    return { host: "127.0.0.1", port: (this.server.address() as net.AddressInfo).port };
  }

  /** Makes (in-process) an empty queue. */
  open(name: string, settings: { lease: number; wait: number }): MemoryTransport<unknown> {
    const transport = new MemoryTransport<unknown>({ visibilityTimeout: settings.lease, wait: settings.wait });
    this.queues.set(name, { transport, tokens: new Map() });
    return transport;
  }

  async drop(name: string): Promise<void> {
    await this.queues.get(name)?.transport.close();
    this.queues.delete(name);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const name of [...this.queues.keys()]) await this.drop(name);
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    const receives = new Map<number, AbortController>();
    const gone = (): void => {
      this.sockets.delete(socket);
      for (const controller of receives.values()) controller.abort();
    };
    socket.on("close", gone);
    socket.on("error", () => socket.destroy());
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        const request = JSON.parse(line) as Request;
        if (request.op === "abort") {
          receives.get(request.of as number)?.abort();
          continue;
        }
        void this.handle(request, receives).then(
          (value) => socket.writable && socket.write(`${JSON.stringify({ n: request.n, ok: true, value })}\n`),
          (error: Error) => socket.writable && socket.write(`${JSON.stringify({ n: request.n, ok: false, message: error.message })}\n`),
        );
      }
    });
  }

  private async handle(request: Request, receives: Map<number, AbortController>): Promise<unknown> {
    const queue = this.queues.get(request.q);
    if (queue === undefined) throw new Error(`no queue ${request.q}`);
    const { transport, tokens } = queue;
    const held = (list: unknown): Delivery<unknown>[] => (list as string[]).map((t) => tokens.get(t)).filter((d): d is Delivery<unknown> => d !== undefined);
    const delay = request.delay as number | undefined;
    switch (request.op) {
      case "send":
        return transport.sendRaw(request.raw as string, { ...(request.id === undefined ? {} : { id: request.id as string }), ...(delay === undefined ? {} : { delay }) });
      case "sendMany": {
        const ids: string[] = [];
        for (const raw of request.raws as string[]) ids.push(await transport.sendRaw(raw, delay === undefined ? {} : { delay }));
        return ids;
      }
      case "receive": {
        const controller = new AbortController();
        receives.set(request.n, controller);
        try {
          const deliveries = await transport.receive(request.max as number, controller.signal);
          return deliveries.map((d): WireDelivery => {
            const token = String(++this.tokens);
            tokens.set(token, d);
            const { error, payload, ...rest } = d;
            return error === undefined ? { token, ...rest, payload } : { token, ...rest, error: error.message, raw: String((error as DecodeError).raw) };
          });
        } finally {
          receives.delete(request.n);
        }
      }
      case "ack":
        return transport.ack(held(request.tokens));
      case "retry":
        for (const d of held([request.token])) await transport.retry(d, request.notBefore as number);
        return undefined;
      case "deadLetter": {
        const reason = request.reason as { name: string; message: string };
        for (const d of held([request.token])) await transport.deadLetter(d, Object.assign(new Error(reason.message), { name: reason.name }));
        return undefined;
      }
      case "extend":
        return transport.extend(held(request.tokens), request.until as number);
      case "release":
        return transport.release(held(request.tokens));
      default:
        throw new Error(`unknown op ${request.op}`);
    }
  }
}

const TOKEN = Symbol("token");

export interface NetTransportOptions {
  host: string;
  port: number;
  queue: string;
  /** The queue's receive wait: a receive's reply may take this long. */
  wait: number;
  /** ms a connection attempt may take. */
  connectTimeout?: number;
  /** ms a reply may take beyond a receive's wait; then the connection counts as dead. */
  replyTimeout?: number;
}

interface Pending {
  readonly op: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/**
 * A client of one `QueueServer` queue. Calls fail with a retryable `TransportError` naming the
 * address when the connection cannot be made, breaks or stays silent past its reply timeout;
 * the next call connects again.
 */
export class NetTransport implements Transport<unknown> {
  readonly name = "memory-net";
  readonly capabilities: TransportCapabilities = { maxReceive: 100, nativeDelay: true, lease: true, nativeDeadLetter: false };
  protected socket: net.Socket | undefined;
  protected connecting: Promise<net.Socket> | undefined;
  protected readonly pending = new Map<number, Pending>();
  protected closed = false;
  private next = 0;

  constructor(protected readonly options: NetTransportOptions) {}

  protected get address(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  protected failure(op: string, cause: unknown): TransportError {
    const message = cause instanceof Error ? cause.message : String(cause);
    return new TransportError(`${PREFIX} ${op} failed: ${message.includes(this.address) ? message : `${message} (${this.address})`}`, { retryable: true, cause });
  }

  /** The live connection, or a new one. */
  protected connect(): Promise<net.Socket> {
    if (this.socket !== undefined && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.connecting ??= new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: this.options.host, port: this.options.port });
      const timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${this.options.connectTimeout ?? 2000} ms`)), this.options.connectTimeout ?? 2000);
      socket.once("connect", () => {
        clearTimeout(timer);
        this.adopt(socket);
        resolve(socket);
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    }).finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  protected adopt(socket: net.Socket): void {
    this.socket = socket;
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
        const reply = JSON.parse(buffer.slice(0, end)) as { n: number; ok: boolean; value?: unknown; message?: string };
        buffer = buffer.slice(end + 1);
        const pending = this.pending.get(reply.n);
        if (pending === undefined) continue;
        this.pending.delete(reply.n);
        clearTimeout(pending.timer);
        if (reply.ok) pending.resolve(reply.value);
        else pending.reject(new TransportError(`${PREFIX} ${pending.op} failed: ${reply.message}`, { retryable: false }));
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.socket === socket) this.socket = undefined;
      this.failAll(new Error("connection closed"));
    });
  }

  protected failAll(cause: unknown): void {
    for (const [n, pending] of this.pending) {
      this.pending.delete(n);
      clearTimeout(pending.timer);
      pending.reject(this.closed ? new ClosedError(`${PREFIX} transport is closed`) : this.failure(pending.op, cause));
    }
  }

  /** One request; `extra` ms more than the reply timeout for a receive's wait. */
  protected async call(op: string, body: Record<string, unknown>, extra = 0, signal?: AbortSignal): Promise<unknown> {
    if (this.closed) throw new ClosedError(`${PREFIX} transport is closed`);
    let socket: net.Socket;
    try {
      socket = await this.connect();
    } catch (error) {
      throw this.failure(op, error);
    }
    const n = ++this.next;
    const replyTimeout = this.options.replyTimeout ?? 2000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(n);
        // A silent connection is dead: the next call connects again.
        socket.destroy();
        reject(this.failure(op, new Error(`no reply within ${replyTimeout + extra} ms`)));
      }, replyTimeout + extra);
      this.pending.set(n, { op, resolve, reject, timer });
      socket.write(`${JSON.stringify({ n, q: this.options.queue, op, ...body })}\n`);
      signal?.addEventListener("abort", () => socket.writable && socket.write(`${JSON.stringify({ n: ++this.next, q: this.options.queue, op: "abort", of: n })}\n`), { once: true });
    });
  }

  protected encode(payload: unknown): string {
    try {
      const raw = JSON.stringify(payload);
      if (raw === undefined) throw new TypeError("undefined is not JSON");
      return raw;
    } catch (error) {
      throw new TransportError(`${PREFIX} cannot encode payload: ${(error as Error).message}`, { retryable: false, cause: error });
    }
  }

  async send(payload: unknown, options?: SendOptions): Promise<string> {
    return (await this.call("send", { raw: this.encode(payload), ...options })) as string;
  }

  async sendMany(payloads: unknown[], options?: { delay?: number }): Promise<string[]> {
    const raws = payloads.map((p) => this.encode(p));
    return (await this.call("sendMany", { raws, ...options })) as string[];
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery<unknown>[]> {
    if (signal.aborted) return [];
    const wire = (await this.call("receive", { max: Math.min(max, this.capabilities.maxReceive) }, this.options.wait, signal)) as WireDelivery[];
    return wire.map(({ token, error, raw, ...rest }) => {
      const delivery = error === undefined ? { ...rest } : { ...rest, error: new DecodeError(raw ?? "", { message: error }) };
      Object.defineProperty(delivery, TOKEN, { value: token });
      return delivery as Delivery<unknown>;
    });
  }

  private tokens(deliveries: Delivery<unknown>[]): string[] {
    return deliveries.map((d) => (d as { [TOKEN]?: string })[TOKEN] ?? "");
  }

  async ack(deliveries: Delivery<unknown>[]): Promise<void> {
    await this.call("ack", { tokens: this.tokens(deliveries) });
  }

  async retry(delivery: Delivery<unknown>, notBefore: number): Promise<void> {
    await this.call("retry", { token: this.tokens([delivery])[0], notBefore });
  }

  async deadLetter(delivery: Delivery<unknown>, reason: Error): Promise<void> {
    await this.call("deadLetter", { token: this.tokens([delivery])[0], reason: { name: reason.name, message: reason.message } });
  }

  async extend(deliveries: Delivery<unknown>[], until: number): Promise<void> {
    await this.call("extend", { tokens: this.tokens(deliveries), until });
  }

  async release(deliveries: Delivery<unknown>[]): Promise<void> {
    await this.call("release", { tokens: this.tokens(deliveries) });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new ClosedError(`${PREFIX} transport is closed`));
    this.socket?.destroy();
  }
}
