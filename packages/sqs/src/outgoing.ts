import { createHash, randomUUID } from "node:crypto";
import type { SendMessageBatchRequestEntry } from "@aws-sdk/client-sqs";
import { type Codec, OversizeError } from "@tranche/core";
import { checkHeaders } from "@tranche/core/internal";
import { type Attributes, attributeBytes, messageBytes, numberAttribute, SQS_ATTRIBUTES, stringAttribute, truncateUtf8 } from "./attributes.js";
import { describe } from "./classify.js";
import type { BatchOutcome } from "./batches.js";
import { SqsSendError, SqsTransportError } from "./errors.js";
import { invalid, SQS_MAX_DELAY_MS } from "./options.js";

/** One item of a `send` or `sendMany`, as it goes into a `SendMessageBatch`. */
export interface Outgoing {
  readonly id: string;
  readonly bytes: number;
  readonly entry: SendMessageBatchRequestEntry;
}

/** Characters SQS refuses in a message body (it takes #x9, #xA, #xD, #x20–#xD7FF, #xE000–#xFFFD, #x10000–#x10FFFF). */
const REFUSED_CHARACTER = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** A code point SQS refuses, as `U+XXXX`, or `undefined` when it takes all of `text`. */
function refusedIn(text: string): string | undefined {
  const refused = REFUSED_CHARACTER.exec(text)?.[0];
  return refused === undefined ? undefined : `U+${(refused.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * The `tranche.headers` attribute of a send's headers (a JSON object), or `undefined` for none.
 * Throws a `TypeError` for headers that are not an object of strings, and a non-retryable
 * `SqsTransportError` for characters SQS refuses.
 */
export function headersAttribute(headers: unknown): Attributes[string] | undefined {
  const checked = checkHeaders("headers", headers, { prefix: "[tranche/sqs]" });
  if (checked === undefined) return undefined;
  const json = JSON.stringify(checked);
  const code = refusedIn(json);
  if (code !== undefined) {
    throw new SqsTransportError("SendMessageBatch", `headers cannot be sent: they hold ${code}, a character SQS refuses`, { retryable: false });
  }
  return stringAttribute(json);
}

/** FIFO deduplication ids are 1..128 printable ASCII characters; other item ids are hashed. */
export function deduplicationId(id: string): string {
  return /^[\x21-\x7e]{1,128}$/.test(id) ? id : createHash("sha256").update(id).digest("hex");
}

/** `DelaySeconds` for a wait of `ms`: whole seconds rounded up (a lower bound), at most SQS's 15 min. */
export function delaySeconds(ms: number): number {
  return Math.ceil(Math.min(Math.max(0, ms), SQS_MAX_DELAY_MS) / 1000);
}

function encode<T>(codec: Codec<T>, payload: T, id: string): string | Uint8Array {
  try {
    return codec.encode(payload);
  } catch (cause) {
    throw new SqsTransportError("SendMessageBatch", `item ${JSON.stringify(id)} cannot be encoded: ${describe(cause)}`, { retryable: false, cause });
  }
}

/**
 * The entries of a send, each checked before anything is sent: the codec encodes it and SQS
 * takes its characters (else a non-retryable `SqsTransportError`), and it fits with its
 * `headers` attribute (`OversizeError`). `group` is the FIFO message group of an item,
 * `undefined` on a standard queue.
 */
export function outgoing<T>(
  items: readonly { payload: T; id: string | undefined }[],
  o: { codec: Codec<T>; maxMessageBytes: number; fifo: boolean; group: (payload: T, id: string, index: number) => string },
  notBefore: number | undefined,
  delay: number | undefined,
  headers: Attributes[string] | undefined,
): Outgoing[] {
  return items.map((item, index) => {
    const id = item.id ?? randomUUID();
    if (typeof id !== "string" || id.length === 0) invalid("id", "a non-empty string", id);
    const encoded = encode(o.codec, item.payload, id);
    const binary = typeof encoded !== "string";
    const body = typeof encoded === "string" ? encoded : Buffer.from(encoded).toString("base64");
    const attributes: Attributes = { [SQS_ATTRIBUTES.id]: stringAttribute(id) };
    if (notBefore !== undefined) attributes[SQS_ATTRIBUTES.notBefore] = numberAttribute(notBefore);
    if (binary) attributes[SQS_ATTRIBUTES.encoding] = stringAttribute("base64");
    if (headers !== undefined) attributes[SQS_ATTRIBUTES.headers] = headers;
    const code = refusedIn(body);
    if (code !== undefined) {
      throw new SqsTransportError("SendMessageBatch", `item ${JSON.stringify(id)} cannot be sent: its body holds ${code}, a character SQS refuses (use a codec that escapes it)`, {
        retryable: false,
      });
    }
    const bytes = messageBytes(body, attributes);
    if (bytes > o.maxMessageBytes) {
      throw new OversizeError(bytes, o.maxMessageBytes, `[tranche/sqs] item ${JSON.stringify(id)} is ${bytes} bytes as an SQS message, over the limit of ${o.maxMessageBytes}`);
    }
    const entry: SendMessageBatchRequestEntry = { Id: String(index), MessageBody: body, MessageAttributes: attributes };
    if (o.fifo) {
      entry.MessageGroupId = o.group(item.payload, id, index);
      entry.MessageDeduplicationId = deduplicationId(id);
    } else if (notBefore !== undefined) {
      entry.DelaySeconds = delaySeconds(delay as number);
    }
    return { id, bytes, entry };
  });
}

/** The `SqsSendError` of a send some of whose items SQS did not confirm. */
export function sendError(all: readonly Outgoing[], outcome: BatchOutcome<Outgoing>): SqsSendError {
  const done = new Set(outcome.done);
  const ids = all.map((e) => e.id);
  const sent = all.filter((e) => done.has(e)).map((e) => e.id);
  const unsent = all.filter((e) => !done.has(e)).map((e) => e.id);
  const failures = outcome.refused.map((r) => r.failure);
  const errors = outcome.failed.map((f) => f.error);
  const retryable = failures.every((f) => !f.senderFault) && errors.every((e) => (e as SqsTransportError).retryable === true);
  const first = failures[0];
  const why =
    first !== undefined ? `SendMessageBatch: item ${JSON.stringify(first.id)} refused: ${first.code} ${first.message}`.trim() : describe(errors[0]).replace(/^\[tranche\/sqs\] /, "");
  const skipped = outcome.skipped.length > 0 ? `, ${outcome.skipped.length} held back behind a failed item of their message group` : "";
  return new SqsSendError(`${why}; ${unsent.length} of ${ids.length} items not sent (${sent.length} sent${skipped})`, {
    retryable,
    ...(errors[0] === undefined ? {} : { cause: errors[0] }),
    failures,
    ids,
    sent,
    unsent,
  });
}

/** Longest reason kept in a dead letter, in characters. */
const REASON_CHARS = 1_000;
const ELLIPSIS = "…";

/**
 * The attributes of a dead letter: id, encoding, headers, attempt, retries (when known), the
 * reason's error name and message. The reason is cut to what fits within `maxBytes` with the body; it is
 * left out when nothing of it fits. Throws a non-retryable `SqsTransportError` when the body and
 * the other attributes alone exceed `maxBytes`.
 */
export function deadLetterAttributes(
  body: string,
  carried: { id: string; encoding: Attributes[string] | undefined; headers: Attributes[string] | undefined; attempt: number; retries: number | undefined },
  reason: Error,
  maxBytes: number,
): Attributes {
  const attributes: Attributes = { [SQS_ATTRIBUTES.id]: stringAttribute(carried.id) };
  if (carried.encoding !== undefined) attributes[SQS_ATTRIBUTES.encoding] = carried.encoding;
  if (carried.headers !== undefined) attributes[SQS_ATTRIBUTES.headers] = carried.headers;
  attributes[SQS_ATTRIBUTES.attempt] = numberAttribute(carried.attempt);
  if (carried.retries !== undefined) attributes[SQS_ATTRIBUTES.retries] = numberAttribute(carried.retries);
  attributes[SQS_ATTRIBUTES.error] = stringAttribute(String(reason?.name ?? "Error").slice(0, 256) || "Error");
  const size = messageBytes(body, attributes);
  if (size > maxBytes) {
    throw new SqsTransportError("SendMessage", `deadLetter: item ${JSON.stringify(carried.id)} is ${size} bytes as a dead letter, over maxMessageBytes ${maxBytes}, even without its reason`, {
      retryable: false,
    });
  }
  const text = String(reason?.message ?? reason).slice(0, REASON_CHARS) || "(no message)";
  const room = maxBytes - size - attributeBytes(SQS_ATTRIBUTES.reason, stringAttribute(""));
  const fits = Buffer.byteLength(text, "utf8") <= room ? text : truncateUtf8(text, room - Buffer.byteLength(ELLIPSIS, "utf8"));
  if (fits.length > 0) attributes[SQS_ATTRIBUTES.reason] = stringAttribute(fits === text ? text : fits + ELLIPSIS);
  return attributes;
}
