import type { MessageAttributeValue } from "@aws-sdk/client-sqs";

/** Message attributes the transport writes and reads. */
export const SQS_ATTRIBUTES = {
  /** Item id, stable across retries and re-sends. */
  id: "tranche.id",
  /** Deliveries before this message existed (a re-sent retry carries its attempts). */
  attempt: "tranche.attempt",
  /** Handler runs that ended with a retry before this message existed. */
  retries: "tranche.retries",
  /** Epoch ms before which the item must not run. */
  notBefore: "tranche.notBefore",
  /** `"base64"` when the codec produced bytes. */
  encoding: "tranche.encoding",
  /** The headers the item was sent with (`SendOptions.headers`), as a JSON object: one attribute for all of them. */
  headers: "tranche.headers",
  /** Dead letters: the reason's message and error name. */
  reason: "tranche.reason",
  error: "tranche.error",
} as const;

/** The most message attributes SQS accepts on one message. */
export const SQS_MAX_ATTRIBUTES = 10;

const OWN_PREFIX = "tranche.";

export type Attributes = Record<string, MessageAttributeValue>;

export function stringAttribute(value: string): MessageAttributeValue {
  return { DataType: "String", StringValue: value };
}

export function numberAttribute(value: number): MessageAttributeValue {
  return { DataType: "Number", StringValue: String(value) };
}

/** Bytes one attribute adds to a message as SQS counts them: name, type and value. */
export function attributeBytes(name: string, attribute: MessageAttributeValue): number {
  let size = Buffer.byteLength(name, "utf8") + Buffer.byteLength(attribute.DataType ?? "", "utf8");
  if (attribute.StringValue !== undefined) size += Buffer.byteLength(attribute.StringValue, "utf8");
  if (attribute.BinaryValue !== undefined) size += attribute.BinaryValue.byteLength;
  return size;
}

/** Size of a message as SQS counts it: body plus each attribute's name, type and value. */
export function messageBytes(body: string, attributes: Attributes): number {
  let size = Buffer.byteLength(body, "utf8");
  for (const [name, attribute] of Object.entries(attributes)) size += attributeBytes(name, attribute);
  return size;
}

/** A number attribute of a received message, or `undefined` when absent or not a number. */
export function numberOf(attributes: Attributes, name: string): number | undefined {
  const raw = attributes[name]?.StringValue;
  if (raw === undefined) return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}

/** What a re-sent copy of a message carries besides the body. */
export interface Carried {
  readonly id: string;
  /** Deliveries before the copy. */
  readonly attempt: number;
  /** Handler runs that ended with a retry before the copy. */
  readonly retries: number;
  readonly notBefore: number;
}

/** The headers of a received message (`tranche.headers`); `undefined` when absent or not a JSON object of strings. */
export function headersOf(attributes: Attributes): Readonly<Record<string, string>> | undefined {
  const raw = attributes[SQS_ATTRIBUTES.headers]?.StringValue;
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  return Object.values(parsed).every((v) => typeof v === "string") ? (parsed as Record<string, string>) : undefined;
}

/**
 * The attributes of a re-sent copy of a message: the transport's own (id, encoding, headers, and
 * attempt and retries when not 0, and `notBefore`), then the message's other attributes in name order
 * while they fit within SQS's 10 attributes and `maxBytes` in all; those that do not fit are
 * dropped (a handler never sees attributes). `undefined` when the body and the transport's own
 * attributes alone exceed `maxBytes`.
 */
export function copyAttributes(body: string, original: Attributes, carried: Carried, maxBytes: number): Attributes | undefined {
  const attributes: Attributes = { [SQS_ATTRIBUTES.id]: stringAttribute(carried.id) };
  for (const own of [SQS_ATTRIBUTES.encoding, SQS_ATTRIBUTES.headers]) {
    const attribute = original[own];
    if (attribute !== undefined) attributes[own] = attribute;
  }
  if (carried.attempt > 0) attributes[SQS_ATTRIBUTES.attempt] = numberAttribute(carried.attempt);
  if (carried.retries > 0) attributes[SQS_ATTRIBUTES.retries] = numberAttribute(carried.retries);
  attributes[SQS_ATTRIBUTES.notBefore] = numberAttribute(carried.notBefore);
  let size = messageBytes(body, attributes);
  if (size > maxBytes) return undefined;
  let count = Object.keys(attributes).length;
  for (const name of Object.keys(original).sort()) {
    if (name.startsWith(OWN_PREFIX) || count >= SQS_MAX_ATTRIBUTES) continue;
    const attribute = original[name] as MessageAttributeValue;
    const bytes = attributeBytes(name, attribute);
    if (size + bytes > maxBytes) continue;
    attributes[name] = attribute;
    size += bytes;
    count++;
  }
  return attributes;
}

/** The longest prefix of `text` within `bytes` UTF-8 bytes, never splitting a character. */
export function truncateUtf8(text: string, bytes: number): string {
  if (Buffer.byteLength(text, "utf8") <= bytes) return text;
  let out = "";
  let used = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char, "utf8");
    if (used + size > bytes) break;
    out += char;
    used += size;
  }
  return out;
}
