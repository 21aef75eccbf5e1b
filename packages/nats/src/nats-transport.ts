import { ClosedError, checkInteger, checkMs, decodeWith, type Delivery, type SendOptions, type Transport, type TransportCapabilities } from "@tranche/core";
import {
  AckPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { headers as natsHeaders, nuid, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { openConnection, releaseConnection, type HeldConnection } from "./connection.js";
import { NatsSetupError } from "./errors.js";
import { Header } from "./headers.js";
import { invalid, PREFIX, resolveNatsTransportOptions, type NatsTransportOptions, type ResolvedNatsTransportOptions } from "./options.js";
import { pull } from "./pull.js";

// Acknowledgement bodies of the JetStream protocol (what JsMsg.ack/nak/working/term publish).
const ACK = "+ACK";
const NAK = "-NAK";
const WORKING = "+WPI";
const TERM = "+TERM";

// A send of many payloads waits for this many publish acks at a time.
const PUBLISH_WINDOW = 2_000;

interface Connected {
  readonly held: HeldConnection;
  readonly js: JetStreamClient;
  readonly nextSubject: string;
}

/**
 * A `Transport` on a NATS JetStream stream and a durable pull consumer with explicit acks.
 *
 * | operation | JetStream |
 * |---|---|
 * | receive | pull request (`batch` = max, `expires` = `wait`, `no_wait`) |
 * | ack | `+ACK` each, one flush |
 * | retry | `-NAK` with a delay |
 * | extend | `+WPI` (working) |
 * | release | `-NAK` |
 * | dead letter | publish to `deadLetterSubject`, then `+TERM` |
 * | crash recovery | AckWait |
 *
 * JetStream (2.9) has no delayed publish: a delayed `send` carries its `notBefore` in a header,
 * and its first delivery is handed back with a delay for the rest (see `receive`).
 */
export class NatsTransport<T = unknown> implements Transport<T> {
  readonly name = "nats";
  readonly capabilities: TransportCapabilities = {
    // One pull request returns up to this many messages; the worker asks for less.
    maxReceive: 10_000,
    // `retry` is kept by the server (nak delay), but a delayed `send` is held by the workers.
    nativeDelay: false,
    lease: true,
    nativeDeadLetter: false,
  };

  readonly #options: ResolvedNatsTransportOptions<T>;
  readonly #source: NatsTransportOptions<T>;
  readonly #messages = new WeakMap<Delivery<T>, Msg>();
  readonly #receives = new Set<AbortController>();
  #connected: Promise<Connected> | undefined;
  #closed = false;

  constructor(options?: NatsTransportOptions<T>) {
    this.#options = resolveNatsTransportOptions(options);
    this.#source = options ?? {};
  }

  /** Connects and creates (or checks) the stream and the durable consumer. Every other method calls it. */
  ready(): Promise<void> {
    return this.#connect().then(() => undefined);
  }

  /** The connection in use (opened on first use). */
  async connection(): Promise<NatsConnection> {
    return (await this.#connect()).held.nc;
  }

  async send(payload: T, options?: SendOptions): Promise<string> {
    const id = options?.id ?? nuid.next();
    if (typeof id !== "string" || id === "") invalid("id", "a non-empty string", id);
    const { js } = await this.#connect();
    await js.publish(this.#options.subject, this.#options.codec.encode(payload), { headers: this.#headers(id, options?.delay) });
    return id;
  }

  async sendMany(payloads: T[], options?: { delay?: number }): Promise<string[]> {
    const { js } = await this.#connect();
    const ids = payloads.map(() => nuid.next());
    for (let start = 0; start < payloads.length; start += PUBLISH_WINDOW) {
      const acks: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(start + PUBLISH_WINDOW, payloads.length); i++) {
        acks.push(js.publish(this.#options.subject, this.#options.codec.encode(payloads[i] as T), { headers: this.#headers(ids[i] as string, options?.delay) }));
      }
      await Promise.all(acks);
    }
    return ids;
  }

  /**
   * One pull request for up to `max` messages that waits at most `wait` ms for the first.
   *
   * A delayed send's first delivery is not returned: it is nak'ed with the time left, so the
   * server brings it back when due and the "not before" bound holds without a worker holding it.
   * That delivery is not counted in `attempt`. A later delivery that is still early (its delay
   * nak was lost in a crash) is returned with `notBefore`, and the worker holds it.
   */
  async receive(max: number, signal: AbortSignal): Promise<Delivery<T>[]> {
    checkInteger("max", max, { min: 1, prefix: PREFIX });
    this.#assertOpen();
    const { held, nextSubject } = await this.#connect();
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    signal.addEventListener("abort", abort, { once: true });
    if (signal.aborted) controller.abort();
    this.#receives.add(controller);
    let msgs: Msg[];
    try {
      const request = { subject: nextSubject, batch: Math.min(max, this.capabilities.maxReceive), expires: this.#options.wait };
      msgs = await pull(held.nc, request, controller.signal, (abandoned) => this.#respondAll(abandoned, NAK));
    } finally {
      signal.removeEventListener("abort", abort);
      this.#receives.delete(controller);
    }
    const now = this.#options.clock.now();
    const deliveries: Delivery<T>[] = [];
    for (const msg of msgs) {
      const delivery = this.#toDelivery(msg, now);
      if (delivery !== undefined) deliveries.push(delivery);
    }
    return deliveries;
  }

  async ack(deliveries: Delivery<T>[]): Promise<void> {
    if (deliveries.length === 0) return;
    const { held } = await this.#connect();
    for (const delivery of deliveries) this.#msg(delivery).respond(ACK);
    await held.nc.flush();
  }

  async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    const msg = this.#msg(delivery);
    const { held } = await this.#connect();
    nak(msg, notBefore - this.#options.clock.now());
    await held.nc.flush();
  }

  async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    const msg = this.#msg(delivery);
    const { js, held } = await this.#connect();
    const h = natsHeaders();
    h.set(Header.id, delivery.id);
    h.set(Header.reason, oneLine(reason?.message ?? String(reason)));
    h.set(Header.errorName, oneLine(reason?.name ?? "Error"));
    h.set(Header.subject, msg.subject);
    h.set(Header.attempt, String(delivery.attempt));
    // Stored first, then terminated: a crash in between leaves a duplicate dead letter, never a lost item.
    await js.publish(this.#options.deadLetterSubject, msg.data, { headers: h });
    msg.respond(TERM);
    await held.nc.flush();
  }

  /** Resets the AckWait of each delivery (`working()`); the lease then runs `ackWait` from now, whatever `until` says. */
  async extend(deliveries: Delivery<T>[], _until: number): Promise<void> {
    if (deliveries.length === 0) return;
    const { held } = await this.#connect();
    for (const delivery of deliveries) this.#msg(delivery).respond(WORKING);
    await held.nc.flush();
  }

  async release(deliveries: Delivery<T>[]): Promise<void> {
    if (deliveries.length === 0) return;
    const { held } = await this.#connect();
    this.#respondAll(deliveries.map((d) => this.#msg(d)), NAK);
    await held.nc.flush();
  }

  /** Ends pending receives and closes the connection if the transport opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const controller of this.#receives) controller.abort();
    const connected = this.#connected;
    if (connected === undefined) return;
    await releaseConnection(await connected.then((c) => c.held).catch(() => undefined));
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError("[tranche/nats] transport is closed");
  }

  #headers(id: string, delay: number | undefined) {
    const h = natsHeaders();
    h.set(Header.id, id);
    if (delay !== undefined) {
      checkMs("delay", delay, { prefix: PREFIX });
      if (delay > 0) h.set(Header.notBefore, String(Math.ceil(this.#options.clock.now() + delay)));
    }
    return h;
  }

  #toDelivery(msg: Msg, now: number): Delivery<T> | undefined {
    const deliveryCount = deliveryCountOf(msg.reply);
    const h = msg.headers;
    const notBeforeHeader = h?.get(Header.notBefore);
    const notBefore = notBeforeHeader ? Number(notBeforeHeader) : undefined;
    // A delayed send always spends its first delivery on this hand-back, due or not, so that
    // every later delivery can discount exactly one.
    if (notBefore !== undefined && deliveryCount === 1) {
      nak(msg, notBefore - now);
      return undefined;
    }
    const id = h?.get(Header.id) || `seq-${streamSequenceOf(msg.reply)}`;
    const attempt = notBefore === undefined ? deliveryCount : Math.max(1, deliveryCount - 1);
    const decoded = decodeWith(this.#options.codec, msg.data);
    const delivery: Delivery<T> =
      "error" in decoded
        ? { id, payload: undefined as T, attempt, leaseUntil: now + this.#options.ackWait, error: decoded.error }
        : { id, payload: decoded.payload, attempt, leaseUntil: now + this.#options.ackWait };
    if (notBefore !== undefined && notBefore > now) (delivery as { notBefore?: number }).notBefore = notBefore;
    this.#messages.set(delivery, msg);
    return delivery;
  }

  #msg(delivery: Delivery<T>): Msg {
    const msg = this.#messages.get(delivery);
    if (msg === undefined) throw new TypeError(`[tranche/nats] delivery ${JSON.stringify(delivery?.id)} was not received by this transport`);
    return msg;
  }

  #respondAll(msgs: Msg[], body: string): void {
    for (const msg of msgs) msg.respond(body);
  }

  #connect(): Promise<Connected> {
    if (this.#closed) return Promise.reject(new ClosedError("[tranche/nats] transport is closed"));
    this.#connected ??= this.#setUp();
    return this.#connected;
  }

  async #setUp(): Promise<Connected> {
    const held = await openConnection(this.#source, `tranche ${this.#options.durable}`);
    try {
      const jsm = await jetstreamManager(held.nc);
      await ensureStream(jsm, this.#options);
      await ensureConsumer(jsm, this.#options);
      const o = this.#options;
      return { held, js: jetstream(held.nc), nextSubject: `$JS.API.CONSUMER.MSG.NEXT.${o.stream}.${o.durable}` };
    } catch (error) {
      this.#connected = undefined;
      await releaseConnection(held);
      throw error;
    }
  }
}

function nak(msg: Msg, delay: number): void {
  const ms = Math.ceil(delay);
  msg.respond(ms > 0 ? `${NAK} ${JSON.stringify({ delay: ms * 1_000_000 })}` : NAK);
}

function oneLine(text: string): string {
  // Header values cannot hold line breaks.
  return String(text).replace(/[\r\n]+/g, " ").slice(0, 1_000);
}

// Reply subjects: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or with
// <domain>.<account hash> after ACK (12 tokens or more) on newer servers.
function ackTokens(reply: string | undefined): string[] {
  const tokens = (reply ?? "").split(".");
  return tokens.length >= 11 ? tokens.slice(4) : tokens.slice(2);
}

function deliveryCountOf(reply: string | undefined): number {
  const n = Number(ackTokens(reply)[2]);
  return Number.isSafeInteger(n) && n >= 1 ? n : 1;
}

function streamSequenceOf(reply: string | undefined): string {
  return ackTokens(reply)[3] ?? "0";
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
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

async function ensureStream(jsm: JetStreamManager, o: ResolvedNatsTransportOptions<unknown>): Promise<void> {
  let info;
  try {
    info = await jsm.streams.info(o.stream);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
    try {
      info = await jsm.streams.add({
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        ...o.streamConfig,
        name: o.stream,
        subjects: [o.subject, o.deadLetterSubject],
      });
    } catch (addError) {
      // Another worker created it first.
      info = await jsm.streams.info(o.stream).catch(() => {
        throw addError;
      });
    }
  }
  const subjects = info.config.subjects ?? [];
  if (!subjects.some((s) => subjectMatches(s, o.subject))) {
    throw new NatsSetupError(`stream ${o.stream} does not capture subject ${o.subject} (its subjects: ${subjects.join(", ") || "none"})`);
  }
  if (!subjects.some((s) => subjectMatches(s, o.deadLetterSubject))) {
    // Dead letters may live in another stream; one must capture them, or they would be dropped.
    await jsm.streams.find(o.deadLetterSubject).catch((cause) => {
      throw new NatsSetupError(`no stream captures the dead-letter subject ${o.deadLetterSubject}`, { cause });
    });
  }
}

async function ensureConsumer(jsm: JetStreamManager, o: ResolvedNatsTransportOptions<unknown>): Promise<void> {
  const tunables: Partial<ConsumerConfig> = {
    ack_wait: o.ackWait * 1_000_000,
    max_deliver: o.maxDeliver === Infinity ? -1 : o.maxDeliver,
    max_ack_pending: o.maxAckPending,
  };
  let info;
  try {
    info = await jsm.consumers.info(o.stream, o.durable);
  } catch (error) {
    if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
    const config: Partial<ConsumerConfig> = { durable_name: o.durable, ack_policy: AckPolicy.Explicit, filter_subject: o.subject, max_waiting: 512, ...tunables };
    info = await jsm.consumers.add(o.stream, config).catch(async (addError) => {
      return jsm.consumers.info(o.stream, o.durable).catch(() => {
        throw addError;
      });
    });
  }
  const c = info.config;
  const where = `consumer ${o.durable} of stream ${o.stream}`;
  if (c.deliver_subject) throw new NatsSetupError(`${where} is a push consumer; tranche needs a pull consumer`);
  if (c.ack_policy !== AckPolicy.Explicit) throw new NatsSetupError(`${where} has ack_policy ${c.ack_policy}; tranche needs "explicit"`);
  const filters = c.filter_subjects ?? (c.filter_subject ? [c.filter_subject] : []);
  if (filters.length > 0 && !filters.some((f) => subjectMatches(f, o.subject))) {
    throw new NatsSetupError(`${where} filters ${filters.join(", ")}, not ${o.subject}`);
  }
  if (c.ack_wait !== tunables.ack_wait || c.max_deliver !== tunables.max_deliver || c.max_ack_pending !== tunables.max_ack_pending) {
    // The settings follow the transport that connects last: give every worker the same options.
    await jsm.consumers.update(o.stream, o.durable, tunables);
  }
}
