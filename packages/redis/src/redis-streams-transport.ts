import { randomUUID } from "node:crypto";
import { ClosedError, jsonCodec } from "@tranche/core";
import { checkHeaders, checkInteger, checkMs, checkTime, errorInfo } from "@tranche/core/internal";
import type { Codec, DeadLetter, DeadLetterPage, Delivery, QueueAdmin, QueueDepth, SendManyOptions, SendOptions, Transport, TransportCapabilities } from "@tranche/core";
import { RESP_TYPES } from "redis";
import type { RedisArgument } from "redis";
import { Connection, ignore, settledWithin, sleep } from "./connection.js";
import { encodeError, isGroupGone, replyCode } from "./errors.js";
import type { RedisStreamsTransportOptions } from "./options.js";
import { PREFIX, checkCodec, checkConnection, checkName, checkOptionsObject, checkTimeouts, defaultConsumerName, hashTagged, invalid, tagOf } from "./options.js";
import { RedisQueueAdmin } from "./queue-admin.js";
import { RedisDelivery, bytes, deliveryOf, entriesOf, headersField, redisDelivery } from "./redis-delivery.js";
import { runScript } from "./scripts.js";

/** Every reply of a blob string as a Buffer (payloads are bytes), every map as a flat array. */
const RAW = { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer, [RESP_TYPES.MAP]: Array } as const;
/** Scheduled items the mover adds to the stream per call. */
const MOVE_LIMIT = 1000;
/** Wait before asking the schedule again when its head is due by our clock but not by the server's. */
const SKEW_PAUSE = 25;

/** Characters of a dead letter's reason stack kept. */
const MAX_STACK = 8192;

/** ms `close()` gives each of its steps (waking a blocking read, waiting for it, pending replies). */
const CLOSE_GRACE = 1000;

/**
 * A `Transport` on a Redis stream and consumer group (Redis ≥ 7.0, node-redis v5).
 *
 * Items are stream entries with the fields `id` (item id), `payload` (codec bytes), `headers`
 * (JSON, when sent with some; every copy of the item keeps them) and, for re-added items,
 * `attempt` (deliveries before this entry), `retries` and `notBefore`. An entry
 * written by another producer needs only `payload`; its entry id then serves as item id. Blocking
 * reads run on a connection of their own, so acks never wait behind them.
 *
 * Faults: calls reject with a `TransportError` (see `transportError` for what is retryable);
 * nothing waits for a server that is down. Every call can be repeated after a lost reply: `ack`
 * is idempotent, and `retry`, `release` and `deadLetter` check in the same Lua step that the
 * entry is still pending, so a repeat is a no-op. A consumer group that vanished (the stream was
 * deleted, a server without persistence restarted) is created again by the next `receive`; the
 * deliveries it held went with it, and settling them is a no-op.
 */
export class RedisStreamsTransport<T = unknown> implements Transport<T>, QueueAdmin<T> {
  readonly name = "redis";
  /**
   * `maxReceive` bounds one `XREADGROUP COUNT`. Delays are kept by Redis (a sorted set moved into
   * the stream by a Lua script); leases are pending-entry idle times; dead letters are a stream
   * the transport writes, not a broker feature.
   */
  readonly capabilities: TransportCapabilities = { maxReceive: 1000, nativeDelay: true, lease: true, nativeDeadLetter: false };
  /** The keys this transport uses, all in one hash slot; `deadLetterIndex` maps item ids to their letters. */
  readonly keys: { readonly stream: string; readonly schedule: string; readonly deadLetter: string; readonly deadLetterIndex: string };
  readonly group: string;
  readonly consumer: string;

  private readonly commands: Connection;
  private readonly codec: Codec<T>;
  private readonly admin: RedisQueueAdmin<T>;
  private readonly blockMs: number;
  private readonly minIdle: number;
  private readonly trimInterval: number;
  /** The connection of blocking reads, opened by the first `receive`. */
  private reader: Connection | undefined;
  private opening: Promise<void> | undefined;
  private closed = false;
  /** The receive running on the reader connection; the next one waits for it. */
  private receiving: Promise<unknown> = Promise.resolve();
  /** `CLIENT ID` of the reader connection, to wake its blocking read with `CLIENT UNBLOCK`. */
  private readerId: Promise<number> | undefined;
  /** The blocking read in progress and when it would end by itself. */
  private blocking: { until: number } | undefined;
  /** Cursor through this consumer's own pending entries, until the first scan after start is done. */
  private ownCursor: string | undefined = "0";
  private reapCursor = "0-0";
  private nextReap = 0;
  private nextDue = 0;
  private nextTrim: number;

  constructor(options: RedisStreamsTransportOptions<T>) {
    const o = checkOptionsObject(options);
    const connection = checkConnection(o);
    const stream = hashTagged(checkName("stream", o.stream));
    this.group = o.group === undefined ? "tranche" : checkName("group", o.group);
    this.consumer = o.consumer === undefined ? defaultConsumerName() : checkName("consumer", o.consumer);
    this.blockMs = o.blockMs === undefined ? 1000 : checkMs("blockMs", o.blockMs, { prefix: PREFIX });
    this.minIdle = o.minIdle === undefined ? 30_000 : checkMs("minIdle", o.minIdle, { min: 1, prefix: PREFIX });
    this.trimInterval = o.trimInterval === undefined ? 60_000 : checkMs("trimInterval", o.trimInterval, { allowInfinity: true, prefix: PREFIX });
    const settings = checkTimeouts(o);
    this.codec = checkCodec<T>(o.codec) ?? (jsonCodec as Codec<T>);
    const deadLetter = o.deadLetterStream === undefined ? `${stream}:dlq` : checkName("deadLetterStream", o.deadLetterStream);
    if (tagOf(deadLetter) !== tagOf(stream)) invalid("deadLetterStream", `a key with the stream's hash tag {${tagOf(stream)}}`, deadLetter);
    this.keys = { stream, schedule: `${stream}:delayed`, deadLetter, deadLetterIndex: `${deadLetter}:ids` };
    this.commands = Connection.open(connection, settings);
    this.admin = new RedisQueueAdmin(this.commands, this.keys, this.group, this.codec);
    this.nextTrim = Date.now() + this.trimInterval;
  }

  async send(payload: T, options?: SendOptions): Promise<string> {
    const o = options === undefined ? {} : (checkOptionsObject(options) as SendOptions);
    if (o.id !== undefined && (typeof o.id !== "string" || o.id === "")) invalid("id", "a non-empty string", o.id);
    const [id] = await this.enqueue("send", [this.encode("send", payload)], o);
    return id!;
  }

  /** Adds every payload (pipelined), or, when one cannot be encoded, none. */
  async sendMany(payloads: T[], options?: SendManyOptions): Promise<string[]> {
    if (!Array.isArray(payloads)) invalid("payloads", "an array", payloads);
    const o = options === undefined ? {} : (checkOptionsObject(options) as SendManyOptions);
    return this.enqueue("sendMany", payloads.map((payload) => this.encode("sendMany", payload)), { delay: o.delay, headers: o.headers });
  }

  /**
   * Adds an entry with these payload bytes as they are, without the codec: what a producer with
   * another codec (or a broken one) would write. Undecodable bytes arrive with a `DecodeError`.
   */
  async sendRaw(raw: string | Uint8Array, options?: SendOptions): Promise<string> {
    if (typeof raw !== "string" && !(raw instanceof Uint8Array)) invalid("raw", "a string or Uint8Array", raw);
    const o = options === undefined ? {} : (checkOptionsObject(options) as SendOptions);
    const [id] = await this.enqueue("sendRaw", [raw], o);
    return id!;
  }

  async receive(max: number, signal: AbortSignal): Promise<RedisDelivery<T>[]> {
    this.assertOpen();
    checkInteger("max", max, { min: 1, prefix: PREFIX });
    const count = Math.min(max, this.capabilities.maxReceive);
    if (signal?.aborted) return [];
    const previous = this.receiving;
    let done!: () => void;
    this.receiving = new Promise<void>((resolve) => (done = resolve));
    try {
      await previous;
      await this.opened();
      return await this.receiveLoop(count, signal);
    } catch (error) {
      if (this.closed) return [];
      throw this.commands.error("receive", error);
    } finally {
      done();
    }
  }

  /** One `XACK` for all of them. Idempotent: acking an entry again (or one whose group is gone) does nothing. */
  async ack(deliveries: Delivery<T>[]): Promise<void> {
    this.assertOpen();
    if (deliveries.length === 0) return;
    const ids = deliveries.map((delivery) => redisDelivery(delivery).entryId);
    await this.commands.send("ack", ["XACK", this.keys.stream, this.group, ...ids]);
  }

  /**
   * Acks this delivery's entry and, in the same Lua step, adds the item again (now when
   * `notBefore` is due, else to the schedule the mover empties) with `retries + 1` and
   * `attempt + 1` on its next delivery. Ignored for a stale handle (the entry was acked, or
   * reclaimed since), so a repeat after a lost reply adds nothing.
   */
  async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    this.assertOpen();
    checkTime("notBefore", notBefore, { prefix: PREFIX });
    const d = redisDelivery(delivery);
    await this.requeue("retry", d, notBefore, d.attempt, d.retries + 1);
  }

  /**
   * Adds an entry to the dead-letter stream (fields `id`, `payload` bytes, `attempt`, `retries`,
   * `reason`, `reasonName`, `reasonStack`, `entry`, `at`, and `headers` when the item has some),
   * replacing an older letter of the item,
   * and acks the delivery's entry, in one Lua step that does both only while the entry is
   * pending: a repeat writes no second dead letter.
   */
  async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    this.assertOpen();
    const d = redisDelivery(delivery);
    const { name, message, stack } = errorInfo(reason);
    const args = [this.group, d.entryId, d.id, this.rawOf("deadLetter", d), String(d.attempt), String(d.retries), message, name, stack?.slice(0, MAX_STACK) ?? "", d.rawHeaders ?? ""];
    const keys = [this.keys.stream, this.keys.deadLetter, this.keys.deadLetterIndex];
    await this.settle(runScript(this.commands, "deadLetter", "deadLetter", keys, args));
  }

  /**
   * Renews leases (`XCLAIM … TIME … JUSTID` to this consumer) of the deliveries it still holds,
   * so that they become claimable at `until`. A pending entry's idle time cannot be negative:
   * a lease reaches at most `minIdle` past now.
   */
  async extend(deliveries: Delivery<T>[], until: number): Promise<void> {
    this.assertOpen();
    checkTime("until", until, { prefix: PREFIX });
    if (deliveries.length === 0) return;
    const pairs = deliveries.flatMap((delivery) => {
      const d = redisDelivery(delivery);
      return [d.entryId, String(d.deliveryCount)];
    });
    const args = [this.group, this.consumer, String(Math.floor(until - this.minIdle)), ...pairs];
    await this.settle(runScript(this.commands, "extend", "extend", [this.keys.stream], args));
  }

  /**
   * Gives deliveries back at once: each entry is acked and its item added again at the stream's
   * end, in one Lua step. Not a delivery: the next one has the same `attempt`.
   */
  async release(deliveries: Delivery<T>[]): Promise<void> {
    this.assertOpen();
    const handles = deliveries.map((delivery) => redisDelivery(delivery));
    await Promise.all(handles.map((d) => this.requeue("release", d, d.notBefore ?? 0, d.attempt - 1, d.retries)));
  }

  /**
   * Messages by state, exact and read in one step (see `RedisQueueAdmin.depth`): `ready` is the
   * group's lag plus due scheduled items, `delayed` the schedule, `inFlight` the group's pending
   * entries, `deadLettered` the dead-letter stream's length.
   */
  async depth(): Promise<QueueDepth> {
    this.assertOpen();
    return this.admin.depth();
  }

  /** The dead letters, oldest first: up to `limit`, after the letter of item id `after`. One letter per item: the newest. */
  async deadLetters(options?: DeadLetterPage): Promise<DeadLetter<T>[]> {
    this.assertOpen();
    return this.admin.deadLetters(options);
  }

  /**
   * Sends dead letters back under their ids with their payload bytes and a fresh count
   * (`attempt` 1 and `retries` 0 on the next delivery), not before `delay` ms from now; each
   * leaves the dead letters in the same Lua step. Ids not there are skipped. Resolves with how
   * many went back.
   */
  async redrive(ids: readonly string[] | "all", options?: { delay?: number }): Promise<number> {
    this.assertOpen();
    const moved = await this.admin.redrive(ids, options);
    if (moved > 0 && options?.delay) this.noteDue(Date.now() + options.delay);
    return moved;
  }

  /** Deletes dead letters for good; resolves with how many. */
  async purgeDeadLetters(ids: readonly string[] | "all"): Promise<number> {
    this.assertOpen();
    return this.admin.purge(ids);
  }

  /**
   * Stops: wakes a blocking `receive` (which resolves `[]`), waits for it, and closes the reader
   * connection, and the client when the transport opened it. Each step is bounded, so `close()`
   * resolves within a few seconds while Redis is unreachable, and leaves nothing that keeps the
   * process alive. Later calls throw `ClosedError`. Entries still held stay pending: a restart
   * with the same `consumer` re-reads them, other consumers reclaim them after `minIdle`.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await settledWithin(this.unblock(true), CLOSE_GRACE);
    await settledWithin(this.receiving, CLOSE_GRACE);
    await this.reader?.close(0);
    await this.commands.close(CLOSE_GRACE);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError(`${PREFIX} transport is closed`);
  }

  private encode(operation: string, payload: T): string | Uint8Array {
    try {
      return this.codec.encode(payload);
    } catch (error) {
      throw encodeError(operation, "the payload", error);
    }
  }

  /** Opens the reader connection and creates the group (`MKSTREAM`, from the stream's start), once. A producer never gets here. */
  private opened(): Promise<void> {
    this.opening ??= this.open().catch((error: unknown) => {
      this.opening = undefined;
      throw error;
    });
    return this.opening;
  }

  private async open(): Promise<void> {
    if (this.reader === undefined) {
      const reader = this.commands.duplicate();
      // A new connection has a new CLIENT ID.
      reader.on("connect", () => (this.readerId = undefined));
      this.reader = reader;
    }
    await this.reader.ready("receive");
    await this.createGroup();
  }

  /** Creates the group from the stream's start (`0`): after the stream vanished, everything added since is read. */
  private async createGroup(): Promise<void> {
    try {
      await this.commands.send("receive", ["XGROUP", "CREATE", this.keys.stream, this.group, "0", "MKSTREAM"]);
    } catch (error) {
      if (replyCode((error as Error).cause) !== "BUSYGROUP") throw error;
    }
    this.reapCursor = "0-0";
  }

  /** Runs a script that settles deliveries; when the group is gone, so are the deliveries it held: nothing is left to settle (`undefined`). */
  private async settle<R>(call: Promise<R>): Promise<R | undefined> {
    try {
      return await call;
    } catch (error) {
      if (!isGroupGone(error)) throw error;
      return undefined;
    }
  }

  /** Adds entries with fields `id`, `payload` and, when sent with headers, `headers` (JSON). */
  private async enqueue(operation: string, raws: (string | Uint8Array)[], options: SendOptions): Promise<string[]> {
    this.assertOpen();
    const ms = options.delay === undefined ? 0 : checkMs("delay", options.delay, { prefix: PREFIX });
    const headers = headersField(checkHeaders("headers", options.headers, { prefix: PREFIX }));
    const ids = raws.map(() => options.id ?? randomUUID());
    if (raws.length === 0) return ids;
    if (ms > 0) {
      const notBefore = Math.ceil(Date.now() + ms);
      const triples = raws.flatMap((raw, i) => [randomUUID(), ids[i]!, bytes(raw)]);
      await runScript(this.commands, operation, "schedule", [this.keys.schedule], [String(notBefore), headers ?? "", ...triples]);
      this.noteDue(notBefore);
    } else {
      const tail = headers === undefined ? [] : ["headers", headers];
      // Issued together, node-redis writes them as one pipeline.
      await this.commands.run(operation, (client) =>
        Promise.all(raws.map((raw, i) => client.sendCommand(["XADD", this.keys.stream, "*", "id", ids[i]!, "payload", bytes(raw), ...tail]))),
      );
    }
    return ids;
  }

  /** The requeue script for `d`, writing `attempt` (deliveries before the next one) and `retries`. */
  private async requeue(operation: string, d: RedisDelivery<T>, notBefore: number, attempt: number, retries: number): Promise<void> {
    const due = Math.ceil(notBefore);
    const args = [this.group, this.consumer, d.entryId, String(d.deliveryCount), d.id, String(attempt), String(retries), String(due), this.rawOf(operation, d), d.rawHeaders ?? ""];
    const result = await this.settle(runScript<number>(this.commands, operation, "requeue", [this.keys.stream, this.keys.schedule], args));
    if (result === 2) this.noteDue(due);
  }

  private rawOf(operation: string, d: RedisDelivery<T>): RedisArgument {
    return d.raw ?? bytes(this.encode(operation, d.payload));
  }

  /** A scheduled item falls due at `at`: wake a blocking read that would sleep past it. */
  private noteDue(at: number): void {
    if (at >= this.nextDue) return;
    this.nextDue = at;
    if (this.blocking !== undefined && this.blocking.until > at) this.unblock(false).catch(ignore);
  }

  private async receiveLoop(count: number, signal: AbortSignal): Promise<RedisDelivery<T>[]> {
    const deadline = Date.now() + this.blockMs;
    let recreated = false;
    for (;;) {
      if (signal.aborted || this.closed) return [];
      try {
        const got = await this.receiveOnce(count, deadline, signal);
        if (got !== undefined) return got;
      } catch (error) {
        // The group is gone (the stream was deleted, or a server without persistence restarted).
        if (!isGroupGone(error) || recreated) throw error;
        recreated = true;
        await this.createGroup();
      }
    }
  }

  /** One round of the receive loop: own pending entries, a due reap, due scheduled items, then a read; `undefined` to go round again. */
  private async receiveOnce(count: number, deadline: number, signal: AbortSignal): Promise<RedisDelivery<T>[] | undefined> {
    let now = Date.now();
    if (this.ownCursor !== undefined) {
      const got = await this.claim("own", this.ownCursor, count);
      this.ownCursor = got.next === "0-0" ? undefined : got.next;
      return got.deliveries.length > 0 ? this.handOver(got.deliveries, signal) : undefined;
    }
    if (now >= this.nextReap) {
      const got = await this.claim("idle", this.reapCursor, count);
      this.reapCursor = got.next;
      if (got.next === "0-0") this.nextReap = now + Math.max(1, this.minIdle / 2);
      // The consumer that scheduled an item may be gone: look at the schedule on every reap.
      this.nextDue = Math.min(this.nextDue, now);
      if (got.deliveries.length > 0) return this.handOver(got.deliveries, signal);
    }
    if (now >= this.nextDue) await this.move(now);
    if (now >= this.nextTrim) {
      this.nextTrim = now + this.trimInterval;
      runScript(this.commands, "receive", "trim", [this.keys.stream], []).catch(ignore);
    }
    now = Date.now();
    const block = this.blockMs === 0 ? undefined : Math.max(1, Math.ceil(Math.min(deadline, this.nextDue, this.nextReap) - now));
    const deliveries = await this.read(count, block, signal);
    if (deliveries.length > 0) return this.handOver(deliveries, signal);
    if (block === undefined || Date.now() >= deadline) return [];
    return undefined;
  }

  /**
   * What a receive aborted meanwhile got goes straight back, so it is not stuck with a consumer
   * that will not run it; as with `release`, that is no delivery.
   */
  private async handOver(deliveries: RedisDelivery<T>[], signal: AbortSignal): Promise<RedisDelivery<T>[]> {
    if (!signal.aborted && !this.closed) return deliveries;
    await Promise.all(deliveries.map((d) => this.requeue("receive", d, d.notBefore ?? 0, d.attempt - 1, d.retries)));
    return [];
  }

  private async read(count: number, block: number | undefined, signal: AbortSignal): Promise<RedisDelivery<T>[]> {
    const reader = this.reader!;
    const args = ["XREADGROUP", "GROUP", this.group, this.consumer, "COUNT", String(count)];
    if (block !== undefined) args.push("BLOCK", String(block));
    args.push("STREAMS", this.keys.stream, ">");
    const blocking = block === undefined ? undefined : { until: Date.now() + block };
    const onAbort = (): void => void this.unblock(true).catch(ignore);
    let reply: unknown;
    try {
      reply = await reader.run("receive", (client) => {
        // Pipelined ahead of the read on the same connection: no extra round trip.
        if (block !== undefined) this.readerId ??= this.clientId(client);
        this.blocking = blocking;
        signal.addEventListener("abort", onAbort);
        return client.sendCommand(args, { typeMapping: RAW });
      }, block ?? 0);
    } finally {
      if (this.blocking === blocking) this.blocking = undefined;
      signal.removeEventListener("abort", onAbort);
    }
    const entries = entriesOf(reply);
    const leaseUntil = Date.now() + this.minIdle;
    return entries.map(([entryId, fields]) => deliveryOf(this.codec, entryId.toString(), fields ?? [], 1, leaseUntil));
  }

  private clientId(client: Connection["client"]): Promise<number> {
    const id = client.sendCommand<number>(["CLIENT", "ID"]);
    id.catch(() => (this.readerId = undefined));
    return id;
  }

  /** Wakes the blocking read; with `untilDone`, retries until it has (the read may not have reached the server yet). */
  private async unblock(untilDone: boolean): Promise<void> {
    const blocking = this.blocking;
    while (blocking !== undefined && this.blocking === blocking) {
      const id = await this.readerId;
      if (id === undefined) return;
      const woken = await this.commands.send<number>("receive", ["CLIENT", "UNBLOCK", String(id)]);
      if (woken === 1 || !untilDone) return;
      await sleep(5);
    }
  }

  private async claim(mode: "own" | "idle", cursor: string, count: number): Promise<{ next: string; deliveries: RedisDelivery<T>[] }> {
    const [next, flat] = await runScript<[Buffer, (Buffer | Buffer[] | number)[]]>(
      this.commands,
      "receive",
      "claim",
      [this.keys.stream],
      [this.group, this.consumer, mode, cursor, String(count), String(this.minIdle)],
      RAW,
    );
    const leaseUntil = Date.now() + this.minIdle;
    const deliveries: RedisDelivery<T>[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      deliveries.push(deliveryOf(this.codec, String(flat[i]), flat[i + 1] as Buffer[], Number(flat[i + 2]), leaseUntil));
    }
    return { next: next.toString(), deliveries };
  }

  private async move(now: number): Promise<void> {
    const [moved, next] = await runScript<[number, Buffer | null]>(this.commands, "receive", "move", [this.keys.stream, this.keys.schedule], [String(MOVE_LIMIT)], RAW);
    this.nextDue = moved === MOVE_LIMIT ? now : next === null ? Infinity : Number(next.toString());
    if (moved === 0 && this.nextDue <= now) this.nextDue = now + SKEW_PAUSE;
  }
}
