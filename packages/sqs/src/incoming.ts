import { randomUUID } from "node:crypto";
import type { Message } from "@aws-sdk/client-sqs";
import { type Codec, type Delivery } from "@tranche/core";
import { decodeWith } from "@tranche/core/internal";
import { headersOf, numberOf, SQS_ATTRIBUTES } from "./attributes.js";
import type { Receipt } from "./receipt.js";

/** A message as `ReceiveMessage` returned it, and when that call was sent. */
export interface Received {
  readonly message: Message;
  readonly receivedAt: number;
}

export type MutableDelivery<T> = { -readonly [K in keyof Delivery<T>]: Delivery<T>[K] };

/**
 * The delivery of a received message and the receipt the transport keeps for it. `attempt` is
 * the receive count plus the deliveries a copy carries; `retries` is carried too (0 when absent),
 * except on a FIFO queue, where a retry keeps its message and the count cannot travel.
 */
export function toDelivery<T>(
  { message, receivedAt }: Received,
  o: { readonly fifo: boolean; readonly codec: Codec<T>; readonly visibilitySeconds: number },
): { delivery: Delivery<T>; receipt: Receipt } {
  const attributes = message.MessageAttributes ?? {};
  const body = message.Body ?? "";
  const id = attributes[SQS_ATTRIBUTES.id]?.StringValue ?? message.MessageId ?? randomUUID();
  const receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? 1) || 1;
  const attempt = (numberOf(attributes, SQS_ATTRIBUTES.attempt) ?? 0) + receiveCount;
  const retries = numberOf(attributes, SQS_ATTRIBUTES.retries) ?? (o.fifo ? undefined : 0);
  const notBefore = numberOf(attributes, SQS_ATTRIBUTES.notBefore);
  const raw = attributes[SQS_ATTRIBUTES.encoding]?.StringValue === "base64" ? new Uint8Array(Buffer.from(body, "base64")) : body;
  const decoded = decodeWith(o.codec, raw);
  const leaseUntil = receivedAt + o.visibilitySeconds * 1000;
  const receipt: Receipt = {
    handle: message.ReceiptHandle ?? "",
    messageId: message.MessageId ?? id,
    id,
    receivedAt,
    body,
    attributes,
    group: o.fifo ? (message.Attributes?.MessageGroupId ?? "default") : undefined,
    sequence: o.fifo ? BigInt(message.Attributes?.SequenceNumber ?? 0) : 0n,
    attempt,
    retries,
    leaseUntil,
    outcome: undefined,
    hidden: false,
    copied: false,
    settled: false,
    busy: Promise.resolve(),
  };
  const delivery: MutableDelivery<T> = { id, payload: "payload" in decoded ? decoded.payload : (undefined as T), attempt, leaseUntil };
  if (retries !== undefined) delivery.retries = retries;
  if (notBefore !== undefined) delivery.notBefore = notBefore;
  if ("error" in decoded) delivery.error = decoded.error;
  const headers = headersOf(attributes);
  if (headers !== undefined) delivery.headers = headers;
  return { delivery, receipt };
}
