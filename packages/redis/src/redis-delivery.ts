import type { Delivery } from "@tranche/core";

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

  constructor(
    readonly id: string,
    readonly payload: T,
    readonly attempt: number,
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
    throw new TypeError(`[tranche/redis] Expected a delivery received from a RedisStreamsTransport, got ${JSON.stringify(d?.id ?? d)}`);
  }
  return d as RedisDelivery<T>;
}
