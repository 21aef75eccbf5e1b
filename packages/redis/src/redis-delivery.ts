import { DecodeError } from "@tranche/core";
import { decodeWith } from "@tranche/core/internal";
import type { Codec, Delivery } from "@tranche/core";
import type { RedisArgument } from "redis";
import { PREFIX } from "./options.js";

/**
 * A delivery from a Redis stream. `id` is the item id (stable across retries and re-sends);
 * `entryId` and `deliveryCount` name this delivery of it: the stream entry and how many times the
 * group has handed that entry out. A handle whose entry was since reclaimed by another consumer
 * (or by this one) no longer matches, so its retry, release and extend are ignored.
 */
export class RedisDelivery<T> implements Delivery<T> {
  /** The entry's payload bytes as the stream keeps them. */
  declare readonly raw: Buffer;
  declare readonly notBefore?: number;
  declare readonly error?: Error;
  declare readonly headers?: Readonly<Record<string, string>>;
  /** The entry's `headers` field as the stream keeps it (JSON), carried by a retry, a release and a dead letter. */
  declare readonly rawHeaders?: Buffer;

  constructor(
    readonly id: string,
    readonly payload: T,
    readonly attempt: number,
    /** Handler runs of the item that ended with a retry, before this delivery. */
    readonly retries: number,
    /** Stream entry id, e.g. `1718000000000-0`. */
    readonly entryId: string,
    /** Deliveries of this stream entry so far (`XPENDING`'s counter); generation of this handle. */
    readonly deliveryCount: number,
    raw: Buffer,
    readonly leaseUntil: number,
    notBefore?: number,
    error?: Error,
  ) {
    // Kept off the enumerable fields so logs and `toEqual` show the delivery, not its bytes.
    Object.defineProperty(this, "raw", { value: raw });
    if (notBefore !== undefined) (this as { notBefore?: number }).notBefore = notBefore;
    if (error !== undefined) (this as { error?: Error }).error = error;
  }
}

/** The Redis handle of a delivery (a copy made with `{ ...delivery }` has lost `raw`), or a TypeError for one that did not come from a Redis transport. */
export function redisDelivery<T>(delivery: Delivery<T>): RedisDelivery<T> {
  const d = delivery as Partial<RedisDelivery<T>>;
  if (typeof d !== "object" || d === null || typeof d.entryId !== "string" || typeof d.deliveryCount !== "number") {
    throw new TypeError(`${PREFIX} Expected a delivery received from a RedisStreamsTransport, got ${JSON.stringify(d?.id ?? d)}`);
  }
  return d as RedisDelivery<T>;
}

/**
 * Headers from an entry's `headers` field: a JSON object of strings. Another producer's field
 * that is not one is no headers (the bytes still travel with the item).
 */
export function headersOf(value: Buffer): Readonly<Record<string, string>> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString());
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  return Object.values(parsed).every((v) => typeof v === "string") ? (parsed as Record<string, string>) : undefined;
}

/** Header bytes for an entry's `headers` field; `undefined` for none. */
export function headersField(headers: Readonly<Record<string, string>> | undefined): string | undefined {
  return headers === undefined ? undefined : JSON.stringify(headers);
}

/** A whole number ≥ 0 from a field's bytes; 0 when absent or not one. */
function count(value: Buffer | undefined): number {
  if (value === undefined) return 0;
  const n = Number(value.toString());
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/**
 * The delivery of stream entry `entryId` with `fields` (`id`, `payload`, `headers` when sent with
 * some, and for re-added items `attempt` = deliveries before the entry, `retries`, `notBefore`),
 * handed out `deliveryCount` times. An entry without `id` (another producer's) has its entry id as item id; one without
 * `payload`, or with bytes the codec cannot decode, carries a `DecodeError`.
 */
export function deliveryOf<T>(codec: Codec<T>, entryId: string, fields: Buffer[], deliveryCount: number, leaseUntil: number): RedisDelivery<T> {
  let id: Buffer | undefined;
  let raw: Buffer | undefined;
  let attempt: Buffer | undefined;
  let retries: Buffer | undefined;
  let notBefore: Buffer | undefined;
  let headers: Buffer | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1]!;
    switch (fields[i]!.toString()) {
      case "id":
        id = value;
        break;
      case "payload":
        raw = value;
        break;
      case "attempt":
        attempt = value;
        break;
      case "retries":
        retries = value;
        break;
      case "notBefore":
        notBefore = value;
        break;
      case "headers":
        headers = value;
    }
  }
  const itemId = id?.toString() || entryId;
  const tries = count(attempt) + deliveryCount;
  const retried = count(retries);
  const due = count(notBefore) || undefined;
  let delivery: RedisDelivery<T>;
  if (raw === undefined) {
    const error = new DecodeError(Buffer.alloc(0), { message: `${PREFIX} stream entry ${entryId} has no \`payload\` field` });
    delivery = new RedisDelivery<T>(itemId, undefined as T, tries, retried, entryId, deliveryCount, Buffer.alloc(0), leaseUntil, due, error);
  } else {
    const decoded = decodeWith(codec, raw);
    delivery =
      "payload" in decoded
        ? new RedisDelivery<T>(itemId, decoded.payload, tries, retried, entryId, deliveryCount, raw, leaseUntil, due)
        : new RedisDelivery<T>(itemId, undefined as T, tries, retried, entryId, deliveryCount, raw, leaseUntil, due, decoded.error);
  }
  if (headers !== undefined) {
    Object.defineProperty(delivery, "rawHeaders", { value: headers });
    const parsed = headersOf(headers);
    if (parsed !== undefined) (delivery as { headers?: Readonly<Record<string, string>> }).headers = parsed;
  }
  return delivery;
}

/** An entry's flat `[name, value, …]` fields by name. */
export function fieldsOf(fields: Buffer[]): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!.toString(), fields[i + 1]!);
  return map;
}

/** A stream entry as a reply with blob strings as Buffers holds it; `null` fields for an entry deleted since. */
export type Entry = [entryId: Buffer, fields: Buffer[] | null];

/** Payload bytes as a command argument (a view of a `Uint8Array`, not a copy). */
export function bytes(raw: string | Uint8Array): RedisArgument {
  return typeof raw === "string" || Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** The entries of an `XREADGROUP` reply on one stream: `[[name, entries]]` (RESP2) or `[name, entries]` (RESP3 map as array). */
export function entriesOf(reply: unknown): Entry[] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  const first = reply[0] as unknown;
  return (Array.isArray(first) ? (first[1] as Entry[]) : (reply[1] as Entry[])) ?? [];
}
