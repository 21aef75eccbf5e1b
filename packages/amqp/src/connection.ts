import { ClosedError } from "@tranche/core";
import { connect, type Channel, type ChannelModel } from "amqplib";
import type { Socket } from "node:net";
import { AmqpTopologyError, timeoutError } from "./errors.js";
import { PREFIX, type ResolvedConnectionOptions } from "./options.js";
import { Publisher } from "./publisher.js";
import type { QueueSpec } from "./topology.js";

/** How long `close()` waits for the broker's close-ok before it drops the socket. */
const CLOSE_GRACE = 1_000;

/** Resolves with `promise`, or rejects with `onTimeout()` once `ms` have passed. */
export function within<V>(promise: Promise<V>, ms: number, onTimeout: () => Error): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The socket under an amqplib connection. */
function socketOf(model: ChannelModel): Socket | undefined {
  return (model as unknown as { connection?: { stream?: Socket } }).connection?.stream;
}

/**
 * One open AMQP connection and the channels the transport keeps on it. Once the connection
 * closes (`dead`), nothing on it is used again: the transport opens another session.
 */
export class Session {
  /** Why the connection closed; `undefined` while it is open. */
  dead: Error | undefined;
  /** Queues declared on this connection, with when (epoch ms); a new connection declares again. */
  readonly declared = new Map<string, number>();
  #publisher: Promise<Publisher> | undefined;
  #admin: Promise<Channel> | undefined;
  readonly #deathListeners = new Set<(error: Error) => void>();

  constructor(
    readonly model: ChannelModel,
    readonly options: ResolvedConnectionOptions,
  ) {
    model.on("error", (error: Error) => this.#die(error));
    model.on("close", (error?: Error) => this.#die(error ?? new Error("connection closed")));
    model.on("blocked", () => {
      // Publishes wait while the broker is out of memory or disk; `timeout` bounds each call.
    });
  }

  /** Runs `listener` once when the connection closes. */
  onDeath(listener: (error: Error) => void): void {
    if (this.dead !== undefined) listener(this.dead);
    else this.#deathListeners.add(listener);
  }

  #die(error: Error): void {
    if (this.dead !== undefined) return;
    this.dead = error;
    for (const listener of this.#deathListeners) listener(error);
    this.#deathListeners.clear();
  }

  /**
   * `promise`, or a retryable timeout error after `options.timeout`; a timeout drops the
   * connection, so a call whose reply was lost leaves nothing half-done on a live channel.
   */
  bounded<V>(operation: string, promise: Promise<V>): Promise<V> {
    return within(promise, this.options.timeout, () => {
      const error = timeoutError(operation, this.options.timeout, this.options.address);
      this.kill(error);
      return error;
    });
  }

  /** Drops the connection at once (no closing handshake): the broker puts back what it delivered on it. */
  kill(error: Error): void {
    this.#die(error);
    // Destroying with an error makes amqplib close its channels and stop its heartbeat timers.
    socketOf(this.model)?.destroy(error);
  }

  /** The confirm channel sends go through, opened on first use and again after it closed. */
  publisher(): Promise<Publisher> {
    const current = this.#publisher;
    if (current === undefined) return this.#openPublisher();
    // Of the calls that find it closed, the first opens the next one and the others take that.
    return current.then((p) => (p.closed === undefined ? p : this.#publisher === current ? this.#openPublisher() : this.publisher()));
  }

  #openPublisher(): Promise<Publisher> {
    const opening = this.model.createConfirmChannel().then((channel) => new Publisher(channel));
    this.#publisher = opening;
    opening.catch(() => {
      if (this.#publisher === opening) this.#publisher = undefined;
    });
    return opening;
  }

  /**
   * Declares a durable queue, or checks that it exists with these arguments. A queue that
   * exists with other arguments is an `AmqpTopologyError` (the broker closes the channel it was
   * asked on, so declarations use a channel of their own).
   */
  async declare(spec: QueueSpec, now: number): Promise<void> {
    const channel = await this.#adminChannel();
    try {
      await channel.assertQueue(spec.name, { durable: true, arguments: spec.arguments });
    } catch (error) {
      if ((error as { code?: unknown }).code === 406) {
        throw new AmqpTopologyError(
          `queue ${JSON.stringify(spec.name)} exists with other settings than this transport declares (${(error as Error).message}); give every worker the same queueType, deliveryLimit and queueArguments, or delete the queue`,
          { cause: error },
        );
      }
      throw error;
    }
    this.declared.set(spec.name, now);
  }

  #adminChannel(): Promise<Channel> {
    const current = this.#admin;
    if (current !== undefined) return current;
    const opening = this.model.createChannel().then((channel) => {
      const forget = (): void => {
        if (this.#admin === opening) this.#admin = undefined;
      };
      // A refused declaration closes this channel; the next one opens another.
      channel.on("error", forget);
      channel.on("close", forget);
      return channel;
    });
    this.#admin = opening;
    opening.catch(() => {
      if (this.#admin === opening) this.#admin = undefined;
    });
    return opening;
  }

  /** Closes the connection, waiting at most `CLOSE_GRACE` for the broker, then drops the socket. */
  async close(): Promise<void> {
    if (this.dead === undefined) {
      this.#die(new ClosedError(`${PREFIX} transport is closed`));
      await within(this.model.close(), CLOSE_GRACE, () => new Error("close timed out")).catch(() => {});
    }
    socketOf(this.model)?.destroy();
  }
}

/**
 * The transport's way to the broker: one session at a time, opened on demand. After a failed
 * attempt the next waits `reconnect.delay × 2^(failures − 1)` (at most `reconnect.maxDelay`), and
 * calls made meanwhile fail at once with the last error, so no call waits on a broker that is down.
 */
export class Link {
  #session: Session | undefined;
  #opening: Promise<Session> | undefined;
  #failures = 0;
  #retryAt = 0;
  #lastError: Error | undefined;
  #closed = false;

  constructor(
    readonly options: ResolvedConnectionOptions,
    /** Shown by the broker as the connection's name. */
    readonly connectionName: string,
  ) {}

  /** The open session, or a new one. */
  session(): Promise<Session> {
    if (this.#closed) return Promise.reject(new ClosedError(`${PREFIX} transport is closed`));
    const current = this.#session;
    if (current !== undefined && current.dead === undefined) return Promise.resolve(current);
    if (this.#opening !== undefined) return this.#opening;
    if (this.#lastError !== undefined && Date.now() < this.#retryAt) return Promise.reject(this.#lastError);
    const opening = this.#open().then(
      (session) => {
        this.#failures = 0;
        this.#lastError = undefined;
        this.#session = session;
        return session;
      },
      (error: Error) => {
        this.#failures++;
        const { delay, maxDelay } = this.options.reconnect;
        this.#retryAt = Date.now() + Math.min(maxDelay, delay * 2 ** (this.#failures - 1));
        this.#lastError = error;
        throw error;
      },
    );
    this.#opening = opening;
    void opening.finally(() => {
      if (this.#opening === opening) this.#opening = undefined;
    }).catch(() => {});
    return opening;
  }

  async #open(): Promise<Session> {
    const { url, socketOptions, connectTimeout } = this.options;
    const attempt = connect(url, {
      noDelay: true,
      ...socketOptions,
      timeout: connectTimeout,
      clientProperties: { connection_name: this.connectionName, ...socketOptions.clientProperties },
    });
    let abandoned = false;
    const model = await within(attempt, connectTimeout + 500, () => {
      abandoned = true;
      return Object.assign(new Error(`connect ETIMEDOUT ${this.options.address}`), { code: "ETIMEDOUT" });
    }).catch((error: unknown) => {
      // A connection that opens after its attempt gave up is closed unused.
      if (abandoned) void attempt.then((late) => socketOf(late)?.destroy(new Error("abandoned")), () => {});
      throw error;
    });
    const session = new Session(model, this.options);
    if (this.#closed) {
      await session.close();
      throw new ClosedError(`${PREFIX} transport is closed`);
    }
    return session;
  }

  /**
   * Closes the session (bounded, see `Session.close`); later calls reject with `ClosedError`. A
   * connection attempt under way is not waited for: it closes itself when it opens, or ends at
   * `connectTimeout`.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#session?.close();
  }
}
