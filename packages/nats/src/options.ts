import { jsonCodec, systemClock, type Clock, type Codec } from "@tranche/core";
import { checkInteger, checkMs, invalidOption } from "@tranche/core/internal";
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
  /**
   * Longest time in ms one call waits for the server: connecting, a publish ack, a JetStream API
   * reply, a flush. A call that gets no answer within it rejects with a retryable `TransportError`;
   * while the connection is down, calls reject at once. @default 5_000
   */
  timeout?: number;
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
  /**
   * The ledger: a second stream (limits retention, file storage) where workers record what a
   * crashed server may forget, each write confirmed before the call that made it resolves: the
   * stream sequence of every message they settled (JetStream 2.9 keeps a consumer's acks and a
   * work-queue's deletions in memory for up to seconds), and for each retried or released message
   * its `notBefore`, retries and releases (a nak's delay and delivery count do not survive a
   * restart either). Workers read it when they (re)connect, settle again (without running them)
   * redeliveries of settled messages, and hold early ones. `false` turns it off: retries then
   * count as deliveries (`retries` is unknown) and a retry's delay is kept by the server only.
   * @default { stream: `${stream}_LEDGER`, subject: `${subject}.ledger`, maxAge: 86_400_000 }
   */
  ledger?: false | LedgerOptions;
}

export interface LedgerOptions {
  /** Stream of the ledger; created if absent. @default `${stream}_LEDGER` */
  stream?: string;
  /** Subject prefix of the ledger's entries (`<subject>.settled`, `<subject>.m.…`); no other stream may capture it. @default `${subject}.ledger` */
  subject?: string;
  /**
   * ms an entry is kept (the stream's max age, set when it is created). Keep it above the longest
   * retry delay: a record older than it no longer holds a retried message back after a restart.
   * @default 86_400_000
   */
  maxAge?: number;
}

export interface ResolvedLedger {
  readonly stream: string;
  readonly subject: string;
  readonly maxAge: number;
}

export interface ResolvedNatsTransportOptions<T> {
  readonly stream: string;
  readonly subject: string;
  readonly durable: string;
  readonly deadLetterSubject: string;
  readonly ackWait: number;
  readonly maxAckPending: number;
  readonly wait: number;
  readonly timeout: number;
  readonly codec: Codec<T>;
  readonly streamConfig: Partial<StreamConfig>;
  readonly clock: Clock;
  readonly ledger: ResolvedLedger | undefined;
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
  if (options.timeout !== undefined) checkMs("timeout", options.timeout, { min: 100, prefix: PREFIX });
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
  const ledger = resolveLedger(o.ledger, stream, subject, deadLetterSubject);
  if (typeof clock !== "object" || clock === null || typeof clock.now !== "function") invalid("clock", "a Clock", clock);
  return {
    stream,
    subject,
    durable,
    deadLetterSubject,
    ackWait: checkMs("ackWait", o.ackWait ?? 30_000, { min: 100, prefix: PREFIX }),
    maxAckPending: checkInteger("maxAckPending", o.maxAckPending ?? 20_000, { min: 1, prefix: PREFIX }),
    wait: checkMs("wait", o.wait ?? 5_000, { min: 10, prefix: PREFIX }),
    timeout: timeoutOf(o),
    codec,
    streamConfig,
    clock,
    ledger,
  };
}

/** The `timeout` of a connection's options (checked by `checkConnection`). */
export function timeoutOf(options: NatsConnectionOptions): number {
  return options.timeout ?? 5_000;
}

function resolveLedger(value: unknown, stream: string, subject: string, deadLetterSubject: string): ResolvedLedger | undefined {
  if (value === false) return undefined;
  if (value !== undefined && (typeof value !== "object" || value === null)) invalid("ledger", "false or an object", value);
  const o = (value ?? {}) as LedgerOptions;
  const ledgerStream = checkName("ledger.stream", o.stream ?? `${stream}_LEDGER`);
  if (ledgerStream === stream) invalid("ledger.stream", "different from `stream`", ledgerStream);
  const ledgerSubject = checkSubject("ledger.subject", o.subject ?? `${subject}.ledger`);
  if (subjectMatches(`${ledgerSubject}.>`, subject) || subjectMatches(`${ledgerSubject}.>`, deadLetterSubject) || ledgerSubject === subject || ledgerSubject === deadLetterSubject) {
    invalid("ledger.subject", "a prefix that captures neither `subject` nor `deadLetterSubject`", ledgerSubject);
  }
  return { stream: ledgerStream, subject: ledgerSubject, maxAge: checkMs("ledger.maxAge", o.maxAge ?? 86_400_000, { min: 1_000, prefix: PREFIX }) };
}

// True when a stream subject (possibly with `*` / `>` wildcards) matches a literal subject.
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
