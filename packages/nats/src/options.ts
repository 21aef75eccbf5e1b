import { checkInteger, checkMs, invalidOption, jsonCodec, systemClock, type Clock, type Codec } from "@tranche/core";
import type { StreamConfig } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

/** How an adapter reaches NATS: an open connection, or servers to connect to. */
export interface NatsConnectionOptions {
  /** An open connection. The adapter uses it and leaves it open at `close()`. */
  connection?: NatsConnection;
  /**
   * Server URL(s) to connect to when no `connection` is given. The adapter owns that
   * connection: it reconnects forever and is closed at `close()`.
   * @default "nats://127.0.0.1:4222"
   */
  servers?: string | string[];
}

export interface NatsTransportOptions<T> extends NatsConnectionOptions {
  /** JetStream stream that holds the items; created (file storage, work-queue retention) if absent. @default "TRANCHE" */
  stream?: string;
  /** Subject items are published to; the durable consumer filters on it. @default "tranche.items" */
  subject?: string;
  /** Durable pull consumer shared by every worker. Created if absent. @default "tranche-worker" */
  durable?: string;
  /** Subject dead letters are published to; a created stream captures it too. @default `${subject}.dead` */
  deadLetterSubject?: string;
  /** Consumer AckWait in ms: a delivery neither acked nor extended within it is redelivered. @default 30_000 */
  ackWait?: number;
  /**
   * Consumer MaxDeliver: a backstop after which the server stops delivering a message that no
   * worker settles (a poison message that kills its process). The worker dead-letters long before
   * it through `retry.attempts`. An integer ≥ 1, or Infinity for no limit. @default 20
   */
  maxDeliver?: number;
  /**
   * Consumer MaxAckPending: deliveries out at once across all workers. Keep it at least the sum of
   * the workers' `maxBuffered`, or workers starve while the server waits for acks. @default 20_000
   */
  maxAckPending?: number;
  /** Longest time in ms one `receive` waits for a first message (the pull request's `expires`). @default 5_000 */
  wait?: number;
  /** Payload encoding. @default JSON */
  codec?: Codec<T>;
  /** Extra stream settings used when the transport creates the stream (`num_replicas`, `max_bytes`...). */
  streamConfig?: Partial<StreamConfig>;
  /** Source of epoch-ms time for delays. @default systemClock */
  clock?: Clock;
}

export interface ResolvedNatsTransportOptions<T> {
  readonly stream: string;
  readonly subject: string;
  readonly durable: string;
  readonly deadLetterSubject: string;
  readonly ackWait: number;
  readonly maxDeliver: number;
  readonly maxAckPending: number;
  readonly wait: number;
  readonly codec: Codec<T>;
  readonly streamConfig: Partial<StreamConfig>;
  readonly clock: Clock;
}

/** Message prefix of this package's errors. */
export const PREFIX = "[tranche/nats]";

/** Throws the `TypeError` of a bad option or argument (see `invalidOption`). */
export function invalid(name: string, expected: string, value: unknown): never {
  throw invalidOption(name, expected, value, PREFIX);
}

// Stream and consumer names may not hold whitespace, dots, `*`, `>` or path separators.
const NAME = /^[^\s.*>/\\]+$/;
// A literal subject: dot-separated tokens without wildcards.
const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

export function checkName(name: string, value: unknown): string {
  if (typeof value !== "string" || !NAME.test(value)) invalid(name, "a name without spaces, dots, `*`, `>` or slashes", value);
  return value;
}

function checkSubject(name: string, value: unknown): string {
  if (typeof value !== "string" || !SUBJECT.test(value)) invalid(name, "a subject without wildcards", value);
  return value;
}

export function checkConnection(options: NatsConnectionOptions): void {
  if (options.connection !== undefined && options.servers !== undefined) {
    invalid("servers", "absent when `connection` is given", options.servers);
  }
  if (options.connection !== undefined && (typeof options.connection !== "object" || options.connection === null || typeof options.connection.publish !== "function")) {
    invalid("connection", "a NatsConnection", options.connection);
  }
  const servers = options.servers;
  if (servers !== undefined && !(typeof servers === "string" || (Array.isArray(servers) && servers.length > 0 && servers.every((s) => typeof s === "string")))) {
    invalid("servers", "a URL or a non-empty array of URLs", servers);
  }
}

export function resolveNatsTransportOptions<T>(options: NatsTransportOptions<T> | undefined): ResolvedNatsTransportOptions<T> {
  if (options !== undefined && (typeof options !== "object" || options === null)) invalid("options", "an object", options);
  const o = options ?? {};
  checkConnection(o);
  const stream = checkName("stream", o.stream ?? "TRANCHE");
  const subject = checkSubject("subject", o.subject ?? "tranche.items");
  const durable = checkName("durable", o.durable ?? "tranche-worker");
  const deadLetterSubject = checkSubject("deadLetterSubject", o.deadLetterSubject ?? `${subject}.dead`);
  if (deadLetterSubject === subject) invalid("deadLetterSubject", "different from `subject`", deadLetterSubject);
  const codec = o.codec ?? (jsonCodec as Codec<T>);
  if (typeof codec !== "object" || codec === null || typeof codec.encode !== "function" || typeof codec.decode !== "function") {
    invalid("codec", "an object with encode and decode", codec);
  }
  const streamConfig = o.streamConfig ?? {};
  if (typeof streamConfig !== "object" || streamConfig === null) invalid("streamConfig", "an object", streamConfig);
  const clock = o.clock ?? systemClock;
  if (typeof clock !== "object" || clock === null || typeof clock.now !== "function") invalid("clock", "a Clock", clock);
  return {
    stream,
    subject,
    durable,
    deadLetterSubject,
    ackWait: checkMs("ackWait", o.ackWait ?? 30_000, { min: 100, prefix: PREFIX }),
    maxDeliver: checkInteger("maxDeliver", o.maxDeliver ?? 20, { min: 1, allowInfinity: true, prefix: PREFIX }),
    maxAckPending: checkInteger("maxAckPending", o.maxAckPending ?? 20_000, { min: 1, prefix: PREFIX }),
    wait: checkMs("wait", o.wait ?? 5_000, { min: 10, prefix: PREFIX }),
    codec,
    streamConfig,
    clock,
  };
}
