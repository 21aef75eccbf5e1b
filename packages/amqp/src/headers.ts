/**
 * Headers tranche puts on its messages (AMQP `headers` table). The item id is the message's
 * `messageId` property.
 */
export const Header = {
  /** Deliveries the item had before this copy of it was published (0 when absent). */
  deliveries: "tranche-deliveries",
  /** Handler runs that ended with a retry before this copy (0 when absent). */
  retries: "tranche-retries",
  /** Epoch ms before which the item must not run. */
  notBefore: "tranche-not-before",
  /** Dead letters: the reason's message. */
  reason: "tranche-reason",
  /** Dead letters: the reason's `name`. */
  errorName: "tranche-error",
  /** Dead letters: the delivery attempt that was dead-lettered. */
  attempt: "tranche-attempt",
  /** Dead letters: the queue the item was consumed from. */
  queue: "tranche-queue",
  /** Dead letters: epoch ms of the dead-lettering. */
  deadAt: "tranche-dead-at",
  /** Per-publish tag that pairs a `basic.return` with the publish it refuses. */
  publish: "tranche-publish",
} as const;

/** RabbitMQ's count of earlier deliveries of a message from a quorum queue. */
export const DELIVERY_COUNT = "x-delivery-count";

/** A non-negative whole number from a header value; `undefined` when absent or malformed. */
export function count(value: unknown): number | undefined {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** A header value on one line, as short as a header should be. */
export function oneLine(text: unknown, max = 1_000): string {
  return String(text).replace(/[\r\n]+/g, " ").slice(0, max);
}
