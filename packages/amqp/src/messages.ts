import type { Message, MessageProperties, Options } from "amqplib";
import type { Delivery } from "@tranche/core";
import { DELIVERY_COUNT, Header, oneLine } from "./headers.js";
import type { Outgoing } from "./publisher.js";

/**
 * Headers the broker sets on a message, which a copy must not inherit; and tranche's own, which a
 * copy sets anew. Every other header is the producer's: a copy keeps it, and a delivery's
 * `headers` are those with string values.
 */
export function inherited(name: string): boolean {
  return !(name.startsWith("x-death") || name.startsWith("x-first-death") || name.startsWith("x-last-death") || name === DELIVERY_COUNT || name.startsWith("tranche-"));
}

/** Headers of other producers are carried over to a copy only while they are this small (JSON length); `send` refuses larger ones. */
export const MAX_INHERITED = 16_384;

/** The producer's headers of a message with string values (`Delivery.headers`); `undefined` for none. */
export function producerHeaders(table: Record<string, unknown> | undefined): Record<string, string> | undefined {
  let headers: Record<string, string> | undefined;
  for (const name in table) {
    const value = table[name];
    if (typeof value === "string" && inherited(name)) (headers ??= {})[name] = value;
  }
  return headers;
}

/** Properties a copy keeps; never `userId` (the broker checks it against the publisher) nor `expiration`. */
const KEPT: readonly (keyof MessageProperties & keyof Options.Publish)[] = ["contentType", "contentEncoding", "correlationId", "replyTo", "type", "appId", "timestamp", "priority"];

/**
 * A new copy of a delivered message for `queue`: the same bytes and id, the headers of other
 * producers, and tranche's headers from `fields` (an absent `notBefore` is left out).
 */
function copyOf(message: Message, id: string, queue: string, fields: Record<string, string | number | undefined>): Outgoing {
  const headers: Record<string, unknown> = {};
  const source = message.properties.headers ?? {};
  for (const name of Object.keys(source)) if (inherited(name)) headers[name] = source[name];
  if (Object.keys(headers).length > 0 && !(sizeOf(headers) <= MAX_INHERITED)) for (const name of Object.keys(headers)) delete headers[name];
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) headers[name] = value;
  const properties: Options.Publish = { messageId: id, headers };
  for (const key of KEPT) {
    const value = message.properties[key];
    if (value !== undefined && value !== null) (properties as Record<string, unknown>)[key] = value;
  }
  return { queue, content: message.content, properties };
}

/** Rough encoded size of a headers table; `Infinity` for one JSON cannot measure. */
function sizeOf(headers: Record<string, unknown>): number {
  try {
    return JSON.stringify(headers, (_, value: unknown) => (typeof value === "bigint" ? String(value) : value)).length;
  } catch {
    return Infinity;
  }
}

/** A copy that puts the item back as it was (a release, an early arrival moved on): the delivery it replaces is not counted. */
export function unchangedCopy(message: Message, delivery: Delivery<unknown>, queue: string, now: number): Outgoing {
  return copyOf(message, delivery.id, queue, {
    [Header.deliveries]: delivery.attempt - 1,
    [Header.retries]: delivery.retries ?? 0,
    [Header.notBefore]: delivery.notBefore !== undefined && delivery.notBefore > now ? delivery.notBefore : undefined,
  });
}

/** The copy of a retry: its delivery and the retry are counted, and it runs no earlier than `notBefore`. */
export function retryCopy(message: Message, delivery: Delivery<unknown>, queue: string, notBefore: number, now: number): Outgoing {
  return copyOf(message, delivery.id, queue, {
    [Header.deliveries]: delivery.attempt,
    [Header.retries]: (delivery.retries ?? 0) + 1,
    [Header.notBefore]: notBefore > now ? Math.ceil(notBefore) : undefined,
  });
}

/** A dead letter: the raw bytes, the reason, the counts and the queue the item came from. */
export function deadLetterCopy(message: Message, delivery: Delivery<unknown>, queue: string, from: string, reason: Error, now: number): Outgoing {
  return copyOf(message, delivery.id, queue, {
    [Header.reason]: oneLine(reason?.message ?? String(reason)),
    [Header.errorName]: oneLine(reason?.name ?? "Error", 200),
    [Header.attempt]: delivery.attempt,
    [Header.retries]: delivery.retries ?? 0,
    [Header.queue]: from,
    [Header.deadAt]: Math.round(now),
  });
}

/** A dead letter sent back to `queue` as a fresh item: its bytes, id and the producer's headers, no counts, `notBefore` when given. */
export function redrivenCopy(message: Message, id: string, queue: string, notBefore: number | undefined): Outgoing {
  return copyOf(message, id, queue, { [Header.notBefore]: notBefore });
}

/** A message for `queue` exactly as it is (every header but the broker's delivery count and the publish tag): a dead letter put back behind the others. */
export function keptCopy(message: Message, queue: string): Outgoing {
  const headers: Record<string, unknown> = { ...message.properties.headers };
  delete headers[DELIVERY_COUNT];
  delete headers[Header.publish];
  const properties: Options.Publish = { headers };
  if (typeof message.properties.messageId === "string") properties.messageId = message.properties.messageId;
  for (const key of KEPT) {
    const value = message.properties[key];
    if (value !== undefined && value !== null) (properties as Record<string, unknown>)[key] = value;
  }
  return { queue, content: message.content, properties };
}
