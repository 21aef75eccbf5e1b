import { jsonCodec, systemClock, type Clock, type Codec } from "@tranche/core";
import { checkInteger, checkMs, invalidOption } from "@tranche/core/internal";
import type { SocketOptions } from "amqplib";

/** Message prefix of this package's errors. */
export const PREFIX = "[tranche/amqp]";

/** Queue types the transport declares. */
export type QueueType = "quorum" | "classic";

/** How the transport reaches RabbitMQ. It owns the connection: it opens it, reopens it after a fault, and closes it. */
export interface AmqpConnectionOptions {
  /**
   * Broker URL: `amqp://user:password@host:port/vhost` (or `amqps://`), with amqplib's query
   * settings (`frameMax`, `channelMax`, `heartbeat`...).
   * @default "amqp://guest:guest@127.0.0.1:5672"
   */
  url?: string;
  /** amqplib socket options: TLS settings, `clientProperties`, `credentials`. */
  socketOptions?: SocketOptions;
  /**
   * Heartbeat in seconds, unless the URL sets `heartbeat`: a connection silent for two of them is
   * taken as dead, so a broker that vanishes without closing the socket is noticed.
   * @default 5
   */
  heartbeat?: number;
  /** ms the TCP connect and the AMQP handshake may take before the attempt fails. @default 4_000 */
  connectTimeout?: number;
  /**
   * ms one broker call may take (a publish confirm, the round trip after an ack, a declaration). A call past it fails
   * with a retryable `TransportError` and the connection is dropped, so nothing stays in doubt
   * on it: the broker puts back whatever it had delivered on that connection.
   * @default 10_000
   */
  timeout?: number;
  /**
   * Wait before connecting again after a failed attempt: `delay × 2^(failures − 1)`, at most
   * `maxDelay` (ms). Calls made during the wait fail at once with the last connection error.
   * @default { delay: 100, maxDelay: 5_000 }
   */
  reconnect?: { delay?: number; maxDelay?: number };
}

export interface AmqpTransportOptions<T> extends AmqpConnectionOptions {
  /** The work queue. @default "tranche" */
  queue?: string;
  /**
   * Type of every queue the transport declares: `"quorum"` (replicated, counts deliveries in
   * `x-delivery-count`, dead-letters at least once) or `"classic"` (lighter; `attempt` is then a
   * lower bound, see the README).
   * @default "quorum"
   */
  queueType?: QueueType;
  /** Queue dead letters go to. @default `${queue}.dead` */
  deadLetterQueue?: string;
  /**
   * `x-delivery-limit` of a quorum work queue: after this many deliveries without an outcome the
   * broker moves a message to the dead-letter queue itself. A guard against a message that kills
   * every worker that takes it; the worker's own `maxDeliveries` does the same with a reason.
   * An integer ≥ 1. @default none (no limit)
   */
  deliveryLimit?: number;
  /** More arguments for the work queue's declaration (`x-max-length`...). Every worker must pass the same. @default {} */
  queueArguments?: Record<string, unknown>;
  /**
   * `basic.qos` prefetch: deliveries the broker hands this transport before it acks some. The
   * deliveries a worker holds all count, so set it to the worker's `maxBuffered`; the broker then
   * never pushes more than the worker may hold.
   * @default 1_000
   */
  prefetch?: number;
  /** Longest time in ms one `receive` waits for a first message. @default 5_000 */
  wait?: number;
  /** Payload encoding. @default JSON */
  codec?: Codec<T>;
  /** Source of epoch-ms time for delays. @default systemClock */
  clock?: Clock;
}

export interface ResolvedConnectionOptions {
  readonly url: string;
  /** `host:port`, named in connection errors. */
  readonly address: string;
  readonly socketOptions: SocketOptions;
  readonly connectTimeout: number;
  readonly timeout: number;
  readonly reconnect: { readonly delay: number; readonly maxDelay: number };
}

export interface ResolvedAmqpTransportOptions<T> extends ResolvedConnectionOptions {
  readonly queue: string;
  readonly queueType: QueueType;
  readonly deadLetterQueue: string;
  readonly deliveryLimit: number | undefined;
  readonly queueArguments: Record<string, unknown>;
  readonly prefetch: number;
  readonly wait: number;
  readonly codec: Codec<T>;
  readonly clock: Clock;
}

/** Throws the `TypeError` of a bad option or argument (see `invalidOption`). */
export function invalid(name: string, expected: string, value: unknown): never {
  throw invalidOption(name, expected, value, PREFIX);
}

// AMQP short strings: at most 255 bytes; RabbitMQ reserves the `amq.` prefix.
function checkQueueName(name: string, value: unknown): string {
  if (typeof value !== "string" || value === "" || Buffer.byteLength(value) > 200 || value.startsWith("amq.")) {
    invalid(name, "a queue name of 1 to 200 bytes, not starting with `amq.`", value);
  }
  return value;
}

function checkObject<V extends object>(name: string, value: V | undefined): V | undefined {
  if (value !== undefined && (typeof value !== "object" || value === null || Array.isArray(value))) invalid(name, "an object", value);
  return value;
}

/** Checks the connection options; `url` gets the heartbeat unless it sets one. */
export function resolveConnectionOptions(o: AmqpConnectionOptions): ResolvedConnectionOptions {
  const raw = o.url ?? "amqp://guest:guest@127.0.0.1:5672";
  let parsed: URL;
  try {
    if (typeof raw !== "string") throw new TypeError("not a string");
    parsed = new URL(raw);
  } catch {
    invalid("url", "an amqp:// or amqps:// URL", raw);
  }
  if (parsed.protocol !== "amqp:" && parsed.protocol !== "amqps:") invalid("url", "an amqp:// or amqps:// URL", raw);
  const heartbeat = checkInteger("heartbeat", o.heartbeat ?? 5, { min: 0, prefix: PREFIX });
  if (!parsed.searchParams.has("heartbeat")) parsed.searchParams.set("heartbeat", String(heartbeat));
  const port = parsed.port === "" ? (parsed.protocol === "amqp:" ? "5672" : "5671") : parsed.port;
  const reconnect = checkObject("reconnect", o.reconnect) ?? {};
  const delay = checkMs("reconnect.delay", reconnect.delay ?? 100, { min: 1, prefix: PREFIX });
  const maxDelay = checkMs("reconnect.maxDelay", reconnect.maxDelay ?? Math.max(5_000, delay), { min: delay, prefix: PREFIX });
  return {
    url: parsed.toString(),
    address: `${parsed.hostname}:${port}`,
    socketOptions: checkObject("socketOptions", o.socketOptions) ?? {},
    connectTimeout: checkMs("connectTimeout", o.connectTimeout ?? 4_000, { min: 1, prefix: PREFIX }),
    timeout: checkMs("timeout", o.timeout ?? 10_000, { min: 1, prefix: PREFIX }),
    reconnect: { delay, maxDelay },
  };
}

export function resolveAmqpTransportOptions<T>(options: AmqpTransportOptions<T> | undefined): ResolvedAmqpTransportOptions<T> {
  if (options !== undefined && (typeof options !== "object" || options === null)) invalid("options", "an object", options);
  const o = options ?? {};
  const queue = checkQueueName("queue", o.queue ?? "tranche");
  const queueType = o.queueType ?? "quorum";
  if (queueType !== "quorum" && queueType !== "classic") invalid("queueType", '"quorum" or "classic"', queueType);
  const deadLetterQueue = checkQueueName("deadLetterQueue", o.deadLetterQueue ?? `${queue}.dead`);
  if (deadLetterQueue === queue) invalid("deadLetterQueue", "different from `queue`", deadLetterQueue);
  const deliveryLimit = o.deliveryLimit === undefined ? undefined : checkInteger("deliveryLimit", o.deliveryLimit, { min: 1, prefix: PREFIX });
  if (deliveryLimit !== undefined && queueType !== "quorum") invalid("deliveryLimit", 'absent with queueType "classic" (only quorum queues count deliveries)', deliveryLimit);
  const codec = o.codec ?? (jsonCodec as Codec<T>);
  if (typeof codec !== "object" || codec === null || typeof codec.encode !== "function" || typeof codec.decode !== "function") {
    invalid("codec", "an object with encode and decode", codec);
  }
  const clock = o.clock ?? systemClock;
  if (typeof clock !== "object" || clock === null || typeof clock.now !== "function") invalid("clock", "a Clock", clock);
  return {
    ...resolveConnectionOptions(o),
    queue,
    queueType,
    deadLetterQueue,
    deliveryLimit,
    queueArguments: checkObject("queueArguments", o.queueArguments) ?? {},
    // Above 65 535 RabbitMQ treats the prefetch as unlimited.
    prefetch: checkInteger("prefetch", o.prefetch ?? 1_000, { min: 1, max: 65_535, prefix: PREFIX }),
    wait: checkMs("wait", o.wait ?? 5_000, { min: 1, prefix: PREFIX }),
    codec,
    clock,
  };
}
