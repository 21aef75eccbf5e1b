import { ClosedError, TransportError, type Delivery, type SendManyOptions, type SendOptions, type Transport, type TransportCapabilities, type DeadLetter, type DeadLetterPage, type QueueAdmin, type QueueDepth } from "@tranche/core";
import { checkInteger, checkMs, checkTime, decodeWith } from "@tranche/core/internal";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type PubAck } from "@nats-io/jetstream";
import { nuid, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { encodeWith, isNoResponders, transportError } from "./classify.js";
import { openConnection, withTimeout, type Link } from "./connection.js";
import { Header } from "./headers.js";
import { HeldDeliveries, type Held } from "./held.js";
import { Ledger, type MessageRecord } from "./ledger.js";
import { attemptOf, infoOf, itemHeaders, type MessageInfo, oneLine, producerHeaders, sendHeaders } from "./message.js";
import { invalid, PREFIX, resolveNatsTransportOptions, type NatsTransportOptions, type ResolvedNatsTransportOptions } from "./options.js";
import { heartbeatFor, pull, type PullResult } from "./pull.js";
import { NatsQueueAdmin } from "./queue-admin.js";
import { ensureConsumer, ensureLedgerStream, ensureStream } from "./setup.js";
import { deleteSettled } from "./sweep.js";

// Acknowledgement bodies of the JetStream protocol (what JsMsg.ack/nak/working/term publish);
// the ack, sent once per item, encoded once.
const ACK = new TextEncoder().encode("+ACK");
const NAK = "-NAK";
const WORKING = "+WPI";
const TERM = "+TERM";

// A send of many payloads waits for this many publish acks at a time.
const PUBLISH_WINDOW = 2_000;
// Least time between two sweeps for settled messages a crashed server brought back.
const SWEEP_EVERY = 2_000;
const SWEEP_IDLE_EVERY = 10_000;

/** A connection with the JetStream contexts on it. */
interface Session {
  readonly link: Link;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

/**
 * A `Transport` on a NATS JetStream stream and a durable pull consumer with explicit acks.
 *
 * | operation | JetStream |
 * |---|---|
 * | receive | pull request (`batch` = max, `expires` = `wait`, `no_wait`, idle heartbeat) |
 * | ack | `+ACK` each, one flush, one ledger entry |
 * | retry | ledger record (retries, notBefore), then `-NAK` with the delay |
 * | extend | `+WPI` (working) |
 * | release | ledger record (a release: not counted in `attempt`), then `-NAK` |
 * | dead letter | publish to `deadLetterSubject` (`Nats-Msg-Id`), then `+TERM`, one ledger entry |
 * | crash recovery | AckWait |
 *
 * Only a transport that receives creates or changes the consumer; one that only sends touches
 * no consumer, and creates the stream only when a publish finds none.
 */
export class NatsTransport<T = unknown> implements Transport<T>, QueueAdmin<T> {
  readonly name = "nats";
  readonly capabilities: TransportCapabilities = {
    // One pull request returns up to this many messages; the worker asks for less.
    maxReceive: 10_000,
    // Delays are kept by the server (a nak delay) but not across its restarts: workers hold early deliveries.
    nativeDelay: false,
    lease: true,
    nativeDeadLetter: false,
  };

  readonly #options: ResolvedNatsTransportOptions<T>;
  readonly #source: NatsTransportOptions<T>;
  readonly #held = new HeldDeliveries<T>();
  readonly #receives = new Set<AbortController>();
  readonly #background = new Set<Promise<unknown>>();
  readonly #ledger: Ledger | undefined;
  readonly #admin: NatsQueueAdmin<T>;
  #session: Promise<Session> | undefined;
  #closed = false;
  // Receiving side: what was set up for which connection epoch.
  #setUp: Promise<void> | undefined;
  #setUpEpoch = -1;
  #consumerInDoubt = true;
  #incarnation: string | undefined;
  #sweep = { from: 1, due: false, running: false, last: 0 };

  constructor(options?: NatsTransportOptions<T>) {
    this.#options = resolveNatsTransportOptions(options);
    this.#source = options ?? {};
    this.#ledger = this.#options.ledger === undefined ? undefined : new Ledger(this.#options.ledger);
    this.#admin = new NatsQueueAdmin(this.#options, {
      connect: async (operation) => {
        const s = await this.#connect(operation);
        s.link.assertOnline(operation);
        return { jsm: s.jsm, where: s.link.where() };
      },
      publish: async (operation, subject, data, options) => this.#publish(await this.#connect(operation), operation, subject, data, options),
    });
  }

  /**
   * Connects and checks the stream, creating it if absent. It does not touch the consumer: a
   * transport that receives creates or updates it on its first `receive`.
   */
  async ready(): Promise<void> {
    const s = await this.#connect("ready");
    try {
      this.#incarnation = await ensureStream(s.jsm, this.#options as ResolvedNatsTransportOptions<unknown>);
    } catch (error) {
      throw transportError("ready", error, `stream ${this.#options.stream} on ${s.link.where()}`);
    }
  }

  /** The connection in use (opened on first use). */
  async connection(): Promise<NatsConnection> {
    return (await this.#connect("connection")).link.nc;
  }

  async send(payload: T, options?: SendOptions): Promise<string> {
    const id = options?.id ?? nuid.next();
    if (typeof id !== "string" || id === "") invalid("id", "a non-empty string", id);
    const headers = this.#sendHeaders(id, options?.delay, sendHeaders(options?.headers));
    const data = encodeWith(this.#options.codec, payload);
    const s = await this.#connect("send");
    await this.#publish(s, "send", this.#options.subject, data, { headers });
    return id;
  }

  async sendMany(payloads: T[], options?: SendManyOptions): Promise<string[]> {
    if (!Array.isArray(payloads)) invalid("payloads", "an array", payloads);
    const ids = payloads.map(() => nuid.next());
    const headers = sendHeaders(options?.headers);
    const messages = payloads.map((payload, i) => ({ data: encodeWith(this.#options.codec, payload), headers: this.#sendHeaders(ids[i] as string, options?.delay, headers) }));
    const s = await this.#connect("sendMany");
    await this.#publishAll(s, "sendMany", messages);
    return ids;
  }

  /**
   * One pull request for up to `max` messages that waits at most `wait` ms for the first.
   *
   * A delayed send is not returned on its first delivery: it is nak'ed with the time left, so
   * the server brings it back when due; that hand-back is not counted in `attempt`. A delivery
   * that is still early (its nak delay was lost in a server restart, a retrying worker crashed)
   * is returned with `notBefore`, and the worker holds it. A redelivered message is looked up in
   * the ledger (its retries, releases and bound); one the ledger says was settled before is
   * acked again and not returned.
   */
  async receive(max: number, signal: AbortSignal): Promise<Delivery<T>[]> {
    checkInteger("max", max, { min: 1, prefix: PREFIX });
    this.#assertOpen();
    const s = await this.#connect("receive");
    await this.#setUpReceiving(s);
    s.link.assertOnline("receive");
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    signal.addEventListener("abort", abort, { once: true });
    if (signal.aborted) controller.abort();
    this.#receives.add(controller);
    const o = this.#options;
    let result: PullResult;
    try {
      const request = { subject: `$JS.API.CONSUMER.MSG.NEXT.${o.stream}.${o.durable}`, batch: Math.min(max, this.capabilities.maxReceive), expires: o.wait, heartbeat: heartbeatFor(o.wait) };
      result = await pull(s.link.nc, request, controller.signal, (abandoned) => this.#track(this.#putBack(s, abandoned)));
    } catch (error) {
      // A consumer deleted under the request (409) or no responder (503): set it up again next time.
      this.#consumerInDoubt = true;
      throw transportError("receive", error, s.link.where());
    } finally {
      signal.removeEventListener("abort", abort);
      this.#receives.delete(controller);
    }
    if (result.silent) this.#consumerInDoubt = true;
    const sinceSweep = Date.now() - this.#sweep.last;
    if ((this.#sweep.due && sinceSweep >= SWEEP_EVERY) || (result.msgs.length === 0 && sinceSweep >= SWEEP_IDLE_EVERY)) this.#track(this.#sweepSettled(s));
    if (result.msgs.length === 0) return [];
    // Messages that came over a connection reached again are checked against a fresh ledger.
    try {
      await this.#setUpReceiving(s);
      return await this.#deliveries(s, result.msgs);
    } catch (error) {
      this.#track(this.#putBack(s, result.msgs));
      throw error;
    }
  }

  async ack(deliveries: Delivery<T>[]): Promise<void> {
    if (deliveries.length === 0) return;
    const held = deliveries.map((d) => this.#held.of(d));
    const s = await this.#connect("ack");
    s.link.assertOnline("ack");
    for (const h of held) h.msg.respond(ACK);
    await this.#settled(s, "ack", held);
    this.#held.done(held);
  }

  /**
   * Records the item's retries + 1 and `notBefore` in the ledger, then naks the message with the
   * delay: the server brings it back when due, and after a restart that forgot the delay, the
   * delivery comes with `notBefore` and the worker holds it. Repeating it writes the same record.
   */
  async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    checkTime("notBefore", notBefore, { prefix: PREFIX });
    const held = this.#held.of(delivery);
    const s = await this.#connect("retry");
    s.link.assertOnline("retry");
    const delay = notBefore - this.#options.clock.now();
    const { retries = 0, released = [] } = held.record ?? {};
    await this.#record(s, "retry", held, { retries: retries + 1, ...(delay > 0 ? { notBefore } : {}), released });
    nak(held.msg, delay);
    await s.link.flush("retry");
    this.#held.done([held]);
  }

  async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    const held = this.#held.of(delivery);
    const s = await this.#connect("deadLetter");
    s.link.assertOnline("deadLetter");
    const { msg, info } = held;
    // The producer's headers stay with the item, for a redrive.
    const h = itemHeaders(info.id, undefined, producerHeaders(msg.headers));
    h.set(Header.reason, oneLine(reason?.message ?? String(reason)));
    h.set(Header.errorName, oneLine(reason?.name ?? "Error"));
    h.set(Header.subject, msg.subject);
    h.set(Header.attempt, String(attemptOf(info, held.record?.released)));
    h.set(Header.retries, String(held.record?.retries ?? 0));
    // Stored first, then terminated: a crash in between leaves the item to be dead-lettered again,
    // and the repeated publish is dropped as a duplicate.
    await this.#publish(s, "deadLetter", this.#options.deadLetterSubject, msg.data, { headers: h, msgID: `dead:${held.incarnation ?? ""}:${info.seq}` });
    msg.respond(TERM);
    await this.#settled(s, "deadLetter", [held]);
    this.#held.done([held]);
  }

  /** Resets the AckWait of each delivery (`working()`); the lease then runs `ackWait` from now, whatever `until` says. */
  async extend(deliveries: Delivery<T>[], _until: number): Promise<void> {
    if (deliveries.length === 0) return;
    const held = deliveries.map((d) => this.#held.of(d));
    const s = await this.#connect("extend");
    s.link.assertOnline("extend");
    for (const h of held) h.msg.respond(WORKING);
    await s.link.flush("extend");
  }

  /**
   * Records each release in the ledger (so the next delivery has the same `attempt`), then naks
   * the messages for immediate redelivery.
   */
  async release(deliveries: Delivery<T>[]): Promise<void> {
    if (deliveries.length === 0) return;
    const held = deliveries.map((d) => this.#held.of(d));
    const s = await this.#connect("release");
    s.link.assertOnline("release");
    await this.#release(s, held);
    await s.link.flush("release");
    this.#held.done(held);
  }

  /**
   * Messages by state, exact, from the durable consumer's info and the stream's subject counts:
   * `ready` is its `num_pending`, `inFlight` its `num_ack_pending` — a retry (a nak with a delay)
   * and a delayed send once first delivered wait there too, so `delayed` is 0 — and
   * `deadLettered` the messages on `deadLetterSubject`. Creates nothing.
   */
  async depth(): Promise<QueueDepth> {
    this.#assertOpen();
    return this.#admin.depth();
  }

  /**
   * The dead letters (messages on `deadLetterSubject`), oldest first, one per item id: up to
   * `limit`, after the letter of item id `after`. Each call reads them all through a short-lived
   * consumer that acks nothing.
   */
  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    this.#assertOpen();
    return this.#admin.deadLetters(options);
  }

  /**
   * Publishes dead letters back to `subject` under their ids with their bytes and the producer's
   * headers, as fresh items (not before `delay` ms from now), then deletes them: an interrupted
   * redrive loses nothing, and a repeat within the stream's duplicate window publishes nothing
   * twice. Resolves with how many items went back.
   */
  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    this.#assertOpen();
    return this.#admin.redrive(ids, options);
  }

  /** Deletes dead letters for good (`"all"`: a purge of the subject); resolves with how many. */
  async purgeDeadLetters(ids: readonly string[] | "all"): Promise<number> {
    this.#assertOpen();
    return this.#admin.purge(ids);
  }

  /** Ends pending receives and closes the connection if the transport opened it, within 2 × `timeout` while the server is down. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const controller of this.#receives) controller.abort();
    await withTimeout(Promise.allSettled([...this.#background]), this.#options.timeout, "").catch(() => {});
    const session = this.#session;
    if (session === undefined) return;
    const s = await session.catch(() => undefined);
    await s?.link.release();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError("[tranche/nats] transport is closed");
  }

  #sendHeaders(id: string, delay: number | undefined, headers: Readonly<Record<string, string>> | undefined): MsgHdrs {
    if (delay === undefined) return itemHeaders(id, undefined, headers);
    checkMs("delay", delay, { prefix: PREFIX });
    const notBefore = delay > 0 ? this.#options.clock.now() + delay : undefined;
    return itemHeaders(id, notBefore, headers);
  }

  async #deliveries(s: Session, msgs: Msg[]): Promise<Delivery<T>[]> {
    const now = this.#options.clock.now();
    const ledger = this.#ledger;
    const incarnation = this.#incarnation;
    const epoch = s.link.epoch;
    const infos = msgs.map(infoOf);
    const records = infos.map((info) => (ledger === undefined || incarnation === undefined ? undefined : ledger.known(incarnation, info.seq)));
    // A redelivery may have been retried or released by another worker since the ledger was read.
    const lookups: Promise<void>[] = [];
    infos.forEach((info, i) => {
      if (ledger === undefined || incarnation === undefined || info.deliveryCount === 1) return;
      lookups.push(ledger.lookup(s.jsm, incarnation, info.seq).then((record) => void (records[i] = record)));
    });
    if (lookups.length > 0) await Promise.all(lookups);
    const held = msgs.map((msg, i): Held => ({ msg, epoch, info: infos[i] as MessageInfo, incarnation, record: records[i] }));
    const deliveries: Delivery<T>[] = [];
    for (const h of held) {
      const { msg, info, record } = h;
      if (ledger?.isSettled(incarnation, info.seq)) {
        msg.respond(ACK);
        continue;
      }
      if (this.#held.adopt(h)) continue;
      // The hand-back of a delayed send's first delivery, due or not, so that every later one discounts exactly one.
      if (info.notBefore !== undefined && info.deliveryCount === 1) {
        nak(msg, info.notBefore - now);
        continue;
      }
      const decoded = decodeWith(this.#options.codec, msg.data);
      const base = { id: info.id, attempt: attemptOf(info, record?.released), leaseUntil: now + this.#options.ackWait, ...(ledger === undefined ? {} : { retries: record?.retries ?? 0 }) };
      const delivery: Delivery<T> = "error" in decoded ? { ...base, payload: undefined as T, error: decoded.error } : { ...base, payload: decoded.payload };
      const notBefore = Math.max(info.notBefore ?? 0, record?.notBefore ?? 0);
      if (notBefore > now) (delivery as { notBefore?: number }).notBefore = notBefore;
      const headers = producerHeaders(msg.headers);
      if (headers !== undefined) (delivery as { headers?: Readonly<Record<string, string>> }).headers = headers;
      this.#held.add(delivery, h);
      deliveries.push(delivery);
    }
    return deliveries;
  }

  /** Records a release of each delivery (its delivery count), then naks it; one whose record failed is not nak'ed. */
  async #release(s: Session, held: Held[]): Promise<void> {
    await Promise.all(
      held.map(async (h) => {
        const { retries = 0, notBefore, released = [] } = h.record ?? {};
        await this.#record(s, "release", h, { retries, ...(notBefore === undefined ? {} : { notBefore }), released: [...released, h.info.deliveryCount] });
        nak(h.msg, 0);
      }),
    );
  }

  /** Writes the record of a held message to the ledger, and keeps it once the server confirmed it. */
  async #record(s: Session, operation: string, held: Held, record: MessageRecord): Promise<void> {
    const ledger = this.#ledger;
    if (ledger === undefined || held.incarnation === undefined) return;
    await this.#publish(s, operation, ledger.recordSubject(held.incarnation, held.info.seq), JSON.stringify(record), {}, () => ensureLedgerStream(s.jsm, ledger.config));
    ledger.remember(held.incarnation, held.info.seq, record);
  }

  /**
   * Gives back messages of a pull that ended before they could be returned. When their release
   * cannot be recorded they are left to AckWait: a nak without its record would count a delivery
   * that never ran as an attempt.
   */
  async #putBack(s: Session, msgs: Msg[]): Promise<void> {
    const held = msgs
      .map((msg): Held => {
        const info = infoOf(msg);
        return { msg, epoch: s.link.epoch, info, incarnation: this.#incarnation, record: this.#ledger?.known(this.#incarnation, info.seq) };
      })
      .filter((h) => !this.#held.adopt(h));
    await this.#release(s, held).catch(() => {});
  }

  /** Resolves once the server has the acks just sent and the ledger has their entry. */
  async #settled(s: Session, operation: string, held: Held[]): Promise<void> {
    const ledger = this.#ledger;
    if (ledger === undefined) return s.link.flush(operation);
    const byIncarnation = new Map<string, number[]>();
    for (const h of held) {
      if (h.incarnation === undefined) continue;
      const seqs = byIncarnation.get(h.incarnation) ?? [];
      seqs.push(h.info.seq);
      byIncarnation.set(h.incarnation, seqs);
    }
    const entries = [...byIncarnation].map(([incarnation, seqs]) =>
      this.#publish(s, operation, ledger.settledSubject, ledger.settledEntry(incarnation, seqs), {}, () => ensureLedgerStream(s.jsm, ledger.config)),
    );
    await Promise.all([s.link.flush(operation), ...entries]);
    // A settled message comes back only if the server forgets its ack, and then it is looked up again.
    for (const h of held) ledger.forget(h.incarnation, h.info.seq);
  }

  async #publishAll(s: Session, operation: string, messages: { data: string | Uint8Array; headers: MsgHdrs }[]): Promise<void> {
    for (let start = 0; start < messages.length; start += PUBLISH_WINDOW) {
      const window = messages.slice(start, start + PUBLISH_WINDOW);
      await Promise.all(window.map(({ data, headers }) => this.#publish(s, operation, this.#options.subject, data, { headers })));
    }
  }

  /**
   * Publishes and waits for the stream's ack. A publish nobody answers finds no stream for the
   * subject: `ensure` (by default: check, or create, the work stream) runs and the publish is
   * made once more, so a producer needs no setup call and a deleted stream comes back.
   */
  async #publish(
    s: Session,
    operation: string,
    subject: string,
    data: string | Uint8Array,
    options: { headers?: MsgHdrs; msgID?: string },
    ensure: () => Promise<unknown> = () => ensureStream(s.jsm, this.#options as ResolvedNatsTransportOptions<unknown>),
  ): Promise<PubAck> {
    s.link.assertOnline(operation);
    const publish = (): Promise<PubAck> => s.js.publish(subject, data, { ...options, timeout: this.#options.timeout });
    try {
      return await publish();
    } catch (error) {
      if (!isNoResponders(error)) throw transportError(operation, error, s.link.where());
    }
    try {
      await ensure();
      return await publish();
    } catch (error) {
      throw transportError(operation, error, `${subject} on ${s.link.where()}`);
    }
  }

  /**
   * Makes sure the consumer, the ledger and what was read from it belong to the connection as
   * it is now: on first use, after every reconnect (the server may have restarted and lost
   * recent acks) and after a pull that found the consumer gone. Creates whatever is missing.
   */
  #setUpReceiving(s: Session): Promise<void> {
    if (!this.#consumerInDoubt && this.#setUpEpoch === s.link.epoch) return Promise.resolve();
    this.#setUp ??= (async () => {
      const epoch = s.link.epoch;
      const o = this.#options as ResolvedNatsTransportOptions<unknown>;
      try {
        s.link.assertOnline("receive");
        this.#incarnation = await ensureStream(s.jsm, o);
        this.#held.keepOnly(this.#incarnation);
        await ensureConsumer(s.jsm, o);
        if (this.#ledger !== undefined) {
          await ensureLedgerStream(s.jsm, this.#ledger.config);
          await this.#ledger.load(s.link.nc, s.jsm, this.#incarnation);
        }
        this.#consumerInDoubt = false;
        this.#setUpEpoch = epoch;
        this.#sweep.from = 1;
        this.#sweep.due = true;
      } catch (error) {
        throw transportError("receive", error, `setting up consumer ${o.durable} of stream ${o.stream} on ${s.link.where()}`);
      } finally {
        this.#setUp = undefined;
      }
    })();
    return this.#setUp;
  }

  /**
   * Deletes settled messages a crashed server brought back (see `deleteSettled`): after each
   * set-up from the start of the stream, then, at most every `SWEEP_EVERY` while the stream holds
   * more messages than the consumer accounts for and every `SWEEP_IDLE_EVERY` while receives find
   * nothing, the part the ack floor has passed since.
   */
  async #sweepSettled(s: Session): Promise<void> {
    const sweep = this.#sweep;
    if (sweep.running) return;
    sweep.running = true;
    sweep.last = Date.now();
    try {
      const { from, due } = await deleteSettled(s.jsm, this.#options as ResolvedNatsTransportOptions<unknown>, sweep.from, () => this.#closed);
      sweep.from = from;
      sweep.due = due;
    } catch {
      // The next receive sweeps again.
    } finally {
      sweep.running = false;
    }
  }

  #track(promise: Promise<unknown>): void {
    this.#background.add(promise);
    void promise.finally(() => this.#background.delete(promise));
  }

  #connect(operation: string): Promise<Session> {
    if (this.#closed) return Promise.reject(new ClosedError("[tranche/nats] transport is closed"));
    this.#session ??= (async () => {
      const link = await openConnection(this.#source, `tranche ${this.#options.durable}`);
      // Pulls on a dropped connection end at once; the next receive reports the disconnect.
      link.onDisconnect(() => {
        for (const controller of this.#receives) controller.abort();
      });
      const timeout = this.#options.timeout;
      return { link, js: jetstream(link.nc, { timeout }), jsm: await jetstreamManager(link.nc, { timeout, checkAPI: false }) };
    })().catch((error: unknown) => {
      this.#session = undefined;
      throw TransportError.isInstance(error) ? error : transportError(operation, error);
    });
    return this.#session;
  }
}

function nak(msg: Msg, delay: number): void {
  const ms = Math.ceil(delay);
  msg.respond(ms > 0 ? `${NAK} ${JSON.stringify({ delay: ms * 1_000_000 })}` : NAK);
}
