import { randomUUID } from "node:crypto";
import { ClosedError, DecodeError, checkInteger, checkMs, checkTime, decodeWith, jsonCodec } from "@tranche/core";
import type { Codec, Delivery, SendOptions, Transport, TransportCapabilities } from "@tranche/core";
import { RESP_TYPES } from "redis";
import type { RedisArgument } from "redis";
import { CommandClient, closeClient, ignore, sleep } from "./connection.js";
import type { AnyRedisClient, RedisConnection } from "./options.js";
import { PREFIX, checkCodec, checkConnection, checkName, checkOptionsObject, defaultConsumerName, hashTagged, invalid, tagOf } from "./options.js";
import { RedisDelivery, redisDelivery } from "./redis-delivery.js";
import { runScript } from "./scripts.js";

export type RedisStreamsTransportOptions<T> = RedisConnection & {
  /**
   * Name of the stream. Its key is hash-tagged for Redis Cluster: `"jobs"` lives at `{jobs}`, its
   * schedule at `{jobs}:delayed` and its dead letters at `{jobs}:dlq`. A name that already holds a
   * `{tag}` is used as is.
   */
  stream: string;
  /** Consumer group: the workers of one group share the stream's items. @default "tranche" */
  group?: string;
  /**
   * Consumer name within the group. Give each worker process a name that survives its restarts
   * (a pod or host name, a StatefulSet ordinal): a restarted consumer re-reads its own pending
   * entries at once instead of waiting `minIdle` for the reaper. @default `<hostname>-<pid>`
   */
  consumer?: string;
  /** Longest time in ms one `receive` waits (`XREADGROUP … BLOCK`) before resolving `[]`; 0 never blocks. @default 1000 */
  blockMs?: number;
  /**
   * Lease in ms: an entry a consumer has held this long without an `extend` is taken over by
   * another consumer's reaper (`XAUTOCLAIM`), with `attempt + 1`. Crash-recovery delay. @default 30_000
   */
  minIdle?: number;
  /** Stream that dead letters go to; must share the stream's hash tag. @default `<stream key>:dlq` */
  deadLetterStream?: string;
  /** Turns payloads into the bytes of an entry's `payload` field, and back. @default jsonCodec */
  codec?: Codec<T>;
  /**
   * ms between trims of the stream, in `receive`: entries every group has received and acked are
   * deleted (`XTRIM MINID` below the oldest entry some group still needs); pending and undelivered
   * entries never are. `Infinity` turns trimming off. @default 60_000
   */
  trimInterval?: number;
};

/** A dead-lettered entry, as `deadLetters()` reads it back from the dead-letter stream. */
export interface RedisDeadLetter<T> {
  readonly id: string;
  /** The decoded payload; `undefined` when the bytes could not be decoded (see `error`). */
  readonly payload: T | undefined;
  /** The payload bytes as the stream kept them. */
  readonly raw: Buffer;
  /** Deliveries of the item before it was dead-lettered. */
  readonly attempt: number;
  /** `reason.message` of the `deadLetter` call. */
  readonly reason: string;
  /** `reason.name`. */
  readonly reasonName: string;
  /** Epoch ms of the `deadLetter` call. */
  readonly at: number;
  /** The stream entry that was dead-lettered. */
  readonly entryId: string;
  /** The dead-letter stream's own entry id. */
  readonly deadLetterId: string;
  /** The `DecodeError` when the bytes cannot be decoded. */
  readonly error?: Error;
}

/** Every reply of a blob string as a Buffer (payloads are bytes), every map as a flat array. */
const RAW = { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer, [RESP_TYPES.MAP]: Array } as const;
/** Scheduled items the mover adds to the stream per call. */
const MOVE_LIMIT = 1000;
/** Wait before asking the schedule again when its head is due by our clock but not by the server's. */
const SKEW_PAUSE = 25;

type Entry = [entryId: Buffer, fields: Buffer[] | null];

/**
 * A `Transport` on a Redis stream and consumer group (Redis ≥ 7.0, node-redis v5).
 *
 * Items are stream entries with the fields `id` (item id), `payload` (codec bytes) and, for
 * retried items, `attempt` (deliveries so far) and `notBefore`. An entry written by another
 * producer needs only `payload`; its entry id then serves as item id. Blocking reads run on a
 * connection of their own, so acks never wait behind them.
 */
export class RedisStreamsTransport<T = unknown> implements Transport<T> {
  readonly name = "redis";
  /**
   * `maxReceive` bounds one `XREADGROUP COUNT`. Delays are kept by Redis (a sorted set moved into
   * the stream by a Lua script); leases are pending-entry idle times; dead letters are a stream
   * the transport writes, not a broker feature.
   */
  readonly capabilities: TransportCapabilities = { maxReceive: 1000, nativeDelay: true, lease: true, nativeDeadLetter: false };
  /** The keys this transport uses, all in one hash slot. */
  readonly keys: { readonly stream: string; readonly schedule: string; readonly deadLetter: string };
  readonly group: string;
  readonly consumer: string;

  private readonly commands: CommandClient;
  private readonly client: AnyRedisClient;
  private readonly codec: Codec<T>;
  private readonly blockMs: number;
  private readonly minIdle: number;
  private readonly trimInterval: number;
  private reader: AnyRedisClient | undefined;
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
    this.codec = checkCodec<T>(o.codec) ?? (jsonCodec as Codec<T>);
    const deadLetter = o.deadLetterStream === undefined ? `${stream}:dlq` : checkName("deadLetterStream", o.deadLetterStream);
    if (tagOf(deadLetter) !== tagOf(stream)) invalid("deadLetterStream", `a key with the stream's hash tag {${tagOf(stream)}}`, deadLetter);
    this.keys = { stream, schedule: `${stream}:delayed`, deadLetter };
    this.commands = new CommandClient(connection);
    this.client = this.commands.client;
    this.nextTrim = Date.now() + this.trimInterval;
  }

  async send(payload: T, options?: SendOptions): Promise<string> {
    const o = options === undefined ? {} : (checkOptionsObject(options) as SendOptions);
    if (o.id !== undefined && (typeof o.id !== "string" || o.id === "")) invalid("id", "a non-empty string", o.id);
    const [id] = await this.enqueue([this.codec.encode(payload)], o.delay, o.id);
    return id!;
  }

  /** Adds every payload (pipelined), or, when one cannot be encoded, none. */
  async sendMany(payloads: T[], options?: { delay?: number }): Promise<string[]> {
    if (!Array.isArray(payloads)) invalid("payloads", "an array", payloads);
    const o = options === undefined ? {} : checkOptionsObject(options);
    return this.enqueue(payloads.map((payload) => this.codec.encode(payload)), o.delay);
  }

  /**
   * Adds an entry with these payload bytes as they are, without the codec: what a producer with
   * another codec (or a broken one) would write. Undecodable bytes arrive with a `DecodeError`.
   */
  async sendRaw(raw: string | Uint8Array, options?: SendOptions): Promise<string> {
    if (typeof raw !== "string" && !(raw instanceof Uint8Array)) invalid("raw", "a string or Uint8Array", raw);
    const o = options === undefined ? {} : (checkOptionsObject(options) as SendOptions);
    const [id] = await this.enqueue([raw], o.delay, o.id);
    return id!;
  }

  async receive(max: number, signal: AbortSignal): Promise<RedisDelivery<T>[]> {
    this.assertOpen();
    checkInteger("max", max, { min: 1, prefix: PREFIX });
    const count = Math.min(max, this.capabilities.maxReceive);
    if (signal?.aborted) return [];
    await this.ready();
    const previous = this.receiving;
    let done!: () => void;
    this.receiving = new Promise<void>((resolve) => (done = resolve));
    try {
      await previous;
      return await this.receiveLoop(count, signal);
    } catch (error) {
      if (this.closed) return [];
      throw error;
    } finally {
      done();
    }
  }

  /** One `XACK` for all of them. Idempotent: acking an entry again does nothing. */
  async ack(deliveries: Delivery<T>[]): Promise<void> {
    this.assertOpen();
    if (deliveries.length === 0) return;
    const ids = deliveries.map((delivery) => redisDelivery(delivery).entryId);
    await this.connected();
    await this.client.sendCommand(["XACK", this.keys.stream, this.group, ...ids]);
  }

  /**
   * Acks this delivery's entry and, in the same Lua step, adds the item again (now when
   * `notBefore` is due, else to the schedule the mover empties) with `attempt + 1` on its next
   * delivery. Ignored for a stale handle (the entry was acked, or reclaimed since).
   */
  async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    this.assertOpen();
    checkTime("notBefore", notBefore, { prefix: PREFIX });
    await this.requeue(redisDelivery(delivery), notBefore);
  }

  /**
   * Adds an entry to the dead-letter stream (fields `id`, `payload` bytes, `attempt`, `reason`,
   * `reasonName`, `entry`, `at`) and acks the delivery's entry, in one `MULTI`.
   */
  async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    this.assertOpen();
    const d = redisDelivery(delivery);
    await this.connected();
    const message = String((reason as Error | undefined)?.message ?? reason);
    const name = String((reason as Error | undefined)?.name ?? "Error");
    await this.client
      .multi()
      .addCommand(["XADD", this.keys.deadLetter, "*", "id", d.id, "payload", this.rawOf(d), "attempt", String(d.attempt), "reason", message, "reasonName", name, "entry", d.entryId, "at", String(Date.now())])
      .addCommand(["XACK", this.keys.stream, this.group, d.entryId])
      .exec();
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
    await this.connected();
    await runScript(this.client, "extend", [this.keys.stream], [this.group, this.consumer, String(Math.floor(until - this.minIdle)), ...pairs]);
  }

  /** Gives deliveries back at once: each entry is acked and its item added again at the stream's end, in one Lua step. */
  async release(deliveries: Delivery<T>[]): Promise<void> {
    this.assertOpen();
    const handles = deliveries.map((delivery) => redisDelivery(delivery));
    await Promise.all(handles.map((d) => this.requeue(d, d.notBefore ?? 0)));
  }

  /** Reads the dead-letter stream, oldest first. */
  async deadLetters(options?: { count?: number }): Promise<RedisDeadLetter<T>[]> {
    const count = options?.count ?? 1000;
    checkInteger("count", count, { min: 1, prefix: PREFIX });
    await this.connected();
    const entries = await this.client.sendCommand<Entry[]>(["XRANGE", this.keys.deadLetter, "-", "+", "COUNT", String(count)], { typeMapping: RAW });
    return entries.map(([deadLetterId, fields]) => {
      const f = fieldsOf(fields ?? []);
      const raw = f.get("payload") ?? Buffer.alloc(0);
      const decoded = decodeWith(this.codec, raw);
      return {
        id: f.get("id")?.toString() ?? "",
        payload: "payload" in decoded ? decoded.payload : undefined,
        raw,
        attempt: Number(f.get("attempt")?.toString() ?? 0),
        reason: f.get("reason")?.toString() ?? "",
        reasonName: f.get("reasonName")?.toString() ?? "",
        at: Number(f.get("at")?.toString() ?? 0),
        entryId: f.get("entry")?.toString() ?? "",
        deadLetterId: deadLetterId.toString(),
        ...("error" in decoded ? { error: decoded.error } : {}),
      };
    });
  }

  /**
   * Stops: wakes a blocking `receive` (which resolves `[]`), waits for it, and closes the reader
   * connection, and the client when the transport opened it. Later calls throw `ClosedError`.
   * Entries still held stay pending: a restart with the same `consumer` re-reads them, other
   * consumers reclaim them after `minIdle`.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.unblock(true).catch(ignore);
    await Promise.race([this.receiving, sleep(2000)]);
    if (this.reader !== undefined) await closeClient(this.reader);
    await this.commands.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError("[tranche/redis] transport is closed");
  }

  /** Connects the client (once). Enough for producing: a producer never creates a group. */
  private connected(): Promise<void> {
    return this.commands.connect();
  }

  /** Connects, opens the reader connection and creates the group (`MKSTREAM`, from the stream's start), once. */
  private ready(): Promise<void> {
    this.opening ??= this.open().catch((error: unknown) => {
      this.opening = undefined;
      throw error;
    });
    return this.opening;
  }

  private async open(): Promise<void> {
    const reader = await this.commands.duplicate();
    // A new connection has a new CLIENT ID.
    reader.on("connect", () => (this.readerId = undefined));
    this.reader = reader;
    await this.createGroup();
  }

  private async createGroup(): Promise<void> {
    try {
      await this.client.sendCommand(["XGROUP", "CREATE", this.keys.stream, this.group, "0", "MKSTREAM"]);
    } catch (error) {
      if (!String((error as Error | undefined)?.message).startsWith("BUSYGROUP")) throw error;
    }
  }

  private async enqueue(raws: (string | Uint8Array)[], delay: unknown, id?: string): Promise<string[]> {
    this.assertOpen();
    const ms = delay === undefined ? 0 : checkMs("delay", delay, { prefix: PREFIX });
    const ids = raws.map(() => id ?? randomUUID());
    await this.connected();
    if (raws.length === 0) return ids;
    if (ms > 0) {
      const notBefore = Math.ceil(Date.now() + ms);
      const triples = raws.flatMap((raw, i) => [randomUUID(), ids[i]!, bytes(raw)]);
      await runScript(this.client, "schedule", [this.keys.schedule], [String(notBefore), ...triples]);
      this.noteDue(notBefore);
    } else {
      // Issued together, node-redis writes them as one pipeline.
      await Promise.all(raws.map((raw, i) => this.client.sendCommand(["XADD", this.keys.stream, "*", "id", ids[i]!, "payload", bytes(raw)])));
    }
    return ids;
  }

  private async requeue(d: RedisDelivery<T>, notBefore: number): Promise<void> {
    await this.connected();
    const due = Math.ceil(notBefore);
    const result = await runScript<number>(
      this.client,
      "requeue",
      [this.keys.stream, this.keys.schedule],
      [this.group, this.consumer, d.entryId, String(d.deliveryCount), d.id, String(d.attempt), String(due), this.rawOf(d)],
    );
    if (result === 2) this.noteDue(due);
  }

  private rawOf(d: RedisDelivery<T>): RedisArgument {
    return d.raw ?? bytes(this.codec.encode(d.payload));
  }

  /** A scheduled item falls due at `at`: wake a blocking read that would sleep past it. */
  private noteDue(at: number): void {
    if (at >= this.nextDue) return;
    this.nextDue = at;
    if (this.blocking !== undefined && this.blocking.until > at) this.unblock(false).catch(ignore);
  }

  private async receiveLoop(count: number, signal: AbortSignal): Promise<RedisDelivery<T>[]> {
    const deadline = Date.now() + this.blockMs;
    for (;;) {
      if (signal.aborted || this.closed) return [];
      let now = Date.now();
      if (this.ownCursor !== undefined) {
        const got = await this.claim("own", this.ownCursor, count);
        this.ownCursor = got.next === "0-0" ? undefined : got.next;
        if (got.deliveries.length > 0) return this.handOver(got.deliveries, signal);
        continue;
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
        runScript(this.client, "trim", [this.keys.stream], []).catch(ignore);
      }
      now = Date.now();
      const block = this.blockMs === 0 ? undefined : Math.max(1, Math.ceil(Math.min(deadline, this.nextDue, this.nextReap) - now));
      const deliveries = await this.read(count, block, signal);
      if (deliveries.length > 0) return this.handOver(deliveries, signal);
      if (block === undefined || Date.now() >= deadline) return [];
    }
  }

  /** What a receive aborted meanwhile got goes straight back, so it is not stuck with a consumer that will not run it. */
  private async handOver(deliveries: RedisDelivery<T>[], signal: AbortSignal): Promise<RedisDelivery<T>[]> {
    if (!signal.aborted && !this.closed) return deliveries;
    await Promise.all(deliveries.map((d) => this.requeue(d, d.notBefore ?? 0)));
    return [];
  }

  private async read(count: number, block: number | undefined, signal: AbortSignal): Promise<RedisDelivery<T>[]> {
    const reader = this.reader!;
    const args = ["XREADGROUP", "GROUP", this.group, this.consumer, "COUNT", String(count)];
    if (block !== undefined) {
      args.push("BLOCK", String(block));
      // Pipelined ahead of the read on the same connection: no extra round trip.
      this.readerId ??= reader.sendCommand<number>(["CLIENT", "ID"]).catch((error: unknown) => {
        this.readerId = undefined;
        throw error;
      });
    }
    args.push("STREAMS", this.keys.stream, ">");
    const blocking = block === undefined ? undefined : { until: Date.now() + block };
    const onAbort = (): void => void this.unblock(true).catch(ignore);
    this.blocking = blocking;
    signal.addEventListener("abort", onAbort);
    let reply: unknown;
    try {
      reply = await reader.sendCommand(args, { typeMapping: RAW });
    } catch (error) {
      // The group is gone (the stream was deleted, or a server without persistence restarted).
      if (String((error as Error | undefined)?.message).startsWith("NOGROUP")) {
        await this.createGroup();
        return [];
      }
      throw error;
    } finally {
      if (this.blocking === blocking) this.blocking = undefined;
      signal.removeEventListener("abort", onAbort);
    }
    const entries = entriesOf(reply);
    const leaseUntil = Date.now() + this.minIdle;
    return entries.map(([entryId, fields]) => this.delivery(entryId.toString(), fields ?? [], 1, leaseUntil));
  }

  /** Wakes the blocking read; with `untilDone`, retries until it has (the read may not have reached the server yet). */
  private async unblock(untilDone: boolean): Promise<void> {
    const blocking = this.blocking;
    while (blocking !== undefined && this.blocking === blocking) {
      const id = await this.readerId;
      if (id === undefined) return;
      const woken = await this.client.sendCommand<number>(["CLIENT", "UNBLOCK", String(id)]);
      if (woken === 1 || !untilDone) return;
      await sleep(5);
    }
  }

  private async claim(mode: "own" | "idle", cursor: string, count: number): Promise<{ next: string; deliveries: RedisDelivery<T>[] }> {
    const [next, flat] = await runScript<[Buffer, (Buffer | Buffer[] | number)[]]>(
      this.client,
      "claim",
      [this.keys.stream],
      [this.group, this.consumer, mode, cursor, String(count), String(this.minIdle)],
      RAW,
    );
    const leaseUntil = Date.now() + this.minIdle;
    const deliveries: RedisDelivery<T>[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      deliveries.push(this.delivery(String(flat[i]), flat[i + 1] as Buffer[], Number(flat[i + 2]), leaseUntil));
    }
    return { next: next.toString(), deliveries };
  }

  private async move(now: number): Promise<void> {
    const [moved, next] = await runScript<[number, Buffer | null]>(this.client, "move", [this.keys.stream, this.keys.schedule], [String(MOVE_LIMIT)], RAW);
    this.nextDue = moved === MOVE_LIMIT ? now : next === null ? Infinity : Number(next.toString());
    if (moved === 0 && this.nextDue <= now) this.nextDue = now + SKEW_PAUSE;
  }

  private delivery(entryId: string, fields: Buffer[], deliveryCount: number, leaseUntil: number): RedisDelivery<T> {
    let id: string | undefined;
    let raw: Buffer | undefined;
    let before = 0;
    let notBefore: number | undefined;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const value = fields[i + 1]!;
      switch (fields[i]!.toString()) {
        case "id":
          id = value.toString();
          break;
        case "payload":
          raw = value;
          break;
        case "attempt":
          before = Number(value.toString());
          break;
        case "notBefore":
          notBefore = Number(value.toString());
      }
    }
    id ||= entryId;
    const attempt = (Number.isSafeInteger(before) && before > 0 ? before : 0) + deliveryCount;
    const due = notBefore !== undefined && Number.isFinite(notBefore) && notBefore > 0 ? notBefore : undefined;
    if (raw === undefined) {
      const error = new DecodeError(Buffer.alloc(0), { message: `[tranche/redis] stream entry ${entryId} has no \`payload\` field` });
      return new RedisDelivery<T>(id, undefined as T, attempt, entryId, deliveryCount, Buffer.alloc(0), leaseUntil, due, error);
    }
    const decoded = decodeWith(this.codec, raw);
    return "payload" in decoded
      ? new RedisDelivery<T>(id, decoded.payload, attempt, entryId, deliveryCount, raw, leaseUntil, due)
      : new RedisDelivery<T>(id, undefined as T, attempt, entryId, deliveryCount, raw, leaseUntil, due, decoded.error);
  }
}

function bytes(raw: string | Uint8Array): RedisArgument {
  return typeof raw === "string" || Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

function fieldsOf(fields: Buffer[]): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!.toString(), fields[i + 1]!);
  return map;
}

/** The entries of an `XREADGROUP` reply on one stream: `[[name, entries]]` (RESP2) or `[name, entries]` (RESP3 map as array). */
function entriesOf(reply: unknown): Entry[] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  const first = reply[0] as unknown;
  return (Array.isArray(first) ? (first[1] as Entry[]) : (reply[1] as Entry[])) ?? [];
}

