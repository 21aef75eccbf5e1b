import type { SQSClient, SQSClientConfig } from "@aws-sdk/client-sqs";
import { type Clock, type Codec, jsonCodec, systemClock } from "@tranche/core";
import { checkInteger, checkMs, invalidOption } from "@tranche/core/internal";

/** The largest message SQS accepts, body plus attributes, in bytes (1 MiB since August 2025; 256 KiB before). */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;
/** The largest `SendMessageBatch` request, summed over its messages, in bytes. */
export const SQS_MAX_BATCH_BYTES = 1_048_576;
/** The longest visibility timeout, and the most a message may stay invisible after one receive: 12 h. */
export const SQS_MAX_VISIBILITY_MS = 43_200_000;
/** The longest `DelaySeconds`: 15 min. */
export const SQS_MAX_DELAY_MS = 900_000;

export interface SqsTransportOptions<T> {
  /** URL of the queue to consume and send to. A name ending in `.fifo` makes it a FIFO queue. */
  queueUrl: string;
  /** An `SQSClient` to use (not destroyed by `close()`). Without it the transport makes one from `region`, `endpoint`, `credentials`. */
  client?: SQSClient;
  /** AWS region of the client the transport makes. @default the SDK's (AWS_REGION, profile) */
  region?: SQSClientConfig["region"];
  /** Endpoint of the client the transport makes, e.g. `"http://127.0.0.1:4566"` for an emulator. @default AWS */
  endpoint?: SQSClientConfig["endpoint"];
  /** Credentials of the client the transport makes. @default the SDK's provider chain */
  credentials?: SQSClientConfig["credentials"];
  /**
   * How long a received message stays invisible to other consumers, in ms, rounded up to whole
   * seconds; passed on every `ReceiveMessage`. The worker renews it with `extend` while it holds
   * the item. @default 30_000
   */
  visibilityTimeout?: number;
  /** Long polling: seconds a `ReceiveMessage` waits for a first message, 0..20. @default 20 */
  waitTimeSeconds?: number;
  /** Most deliveries one `receive` returns; `receive` makes up to `maxReceive / 10` `ReceiveMessage` calls. @default 100 */
  maxReceive?: number;
  /**
   * Queue that `deadLetter` sends to (with the reason in the `tranche.reason` attribute) before
   * deleting the message. A transport that receives needs it, or `nativeDeadLetter: true`;
   * without either, `receive` throws a `TypeError` before taking anything. Sending needs neither.
   */
  deadLetterQueueUrl?: string;
  /**
   * Set when the queue has a `RedrivePolicy`: `deadLetter` then hands the message back at once
   * (without the reason) and the queue moves it after `maxReceiveCount` receives. The transport
   * does not look the policy up. @default false
   */
  nativeDeadLetter?: boolean;
  /** Payload ⇄ message body. A `Uint8Array` body travels base64-encoded. @default JSON */
  codec?: Codec<T>;
  /** FIFO queue. @default `queueUrl` ends in `.fifo` */
  fifo?: boolean;
  /**
   * FIFO only: message group of an item, a constant or a function of the payload and item id;
   * `send(payload, { messageGroupId })` overrides it per item. Order holds within a group.
   * @default "default" (one group: strictly one item at a time)
   */
  messageGroupId?: string | ((payload: T, id: string) => string);
  /** Largest message in bytes (body plus attributes); a larger item is refused with `OversizeError`. @default 1_048_576 */
  maxMessageBytes?: number;
  /** Largest `SendMessageBatch` request in bytes. @default 1_048_576 */
  maxBatchBytes?: number;
  /** Tries of a batch entry SQS refused with a server fault, before it is surfaced as an error. @default 3 */
  entryAttempts?: number;
  /**
   * Most time one SQS call may take, in ms, before it fails with a retryable `SqsTransportError`
   * (its outcome unknown; every call is safe to repeat). A `ReceiveMessage` long poll gets its
   * `waitTimeSeconds` on top. The client the transport makes also gives up connecting after
   * `min(requestTimeout, 2_000)` ms. @default 5_000
   */
  requestTimeout?: number;
  /** Source of time for `leaseUntil`, `notBefore` and the 12 h visibility budget. @default systemClock */
  clock?: Clock;
}

export interface ResolvedSqsOptions<T> {
  readonly queueUrl: string;
  readonly visibilitySeconds: number;
  readonly waitTimeSeconds: number;
  readonly maxReceive: number;
  readonly deadLetterQueueUrl: string | undefined;
  readonly nativeDeadLetter: boolean;
  readonly codec: Codec<T>;
  readonly fifo: boolean;
  readonly messageGroupId: (payload: T, id: string) => string;
  readonly maxMessageBytes: number;
  readonly maxBatchBytes: number;
  readonly entryAttempts: number;
  readonly requestTimeout: number;
  readonly clock: Clock;
  /** Where the calls go, for error messages: the `endpoint` option, else the queue URL's origin. */
  readonly address: string;
}

/** Message prefix of this package's errors. */
export const PREFIX = "[tranche/sqs]";

/** Throws the `TypeError` of a bad option or argument (see `invalidOption`). */
export function invalid(name: string, expected: string, value: unknown): never {
  throw invalidOption(name, expected, value, PREFIX);
}

function url(name: string, value: unknown): string {
  if (typeof value !== "string" || !URL.canParse(value)) invalid(name, "a queue URL", value);
  return value;
}

/** Applies defaults and validates eagerly; throws `TypeError` quoting the first bad value. */
export function resolveSqsOptions<T>(options: SqsTransportOptions<T>): ResolvedSqsOptions<T> {
  if (typeof options !== "object" || options === null) invalid("options", "an object with `queueUrl`", options);
  const o = options;
  const queueUrl = url("queueUrl", o.queueUrl);
  const visibility = checkMs("visibilityTimeout", o.visibilityTimeout ?? 30_000, { max: SQS_MAX_VISIBILITY_MS, prefix: PREFIX });
  const codec = o.codec ?? (jsonCodec as Codec<T>);
  if (typeof codec?.encode !== "function" || typeof codec.decode !== "function") invalid("codec", "a Codec with encode and decode", codec);
  const group = o.messageGroupId ?? "default";
  if (typeof group !== "function" && (typeof group !== "string" || group.length === 0 || group.length > 128)) {
    invalid("messageGroupId", "a string of 1..128 characters or a function", group);
  }
  const clock = o.clock ?? systemClock;
  if (typeof clock?.now !== "function") invalid("clock", "a Clock", clock);
  if (o.client !== undefined && typeof (o.client as { send?: unknown } | null)?.send !== "function") invalid("client", "an SQSClient", o.client);
  if (o.fifo !== undefined && typeof o.fifo !== "boolean") invalid("fifo", "a boolean", o.fifo);
  if (o.nativeDeadLetter !== undefined && typeof o.nativeDeadLetter !== "boolean") invalid("nativeDeadLetter", "a boolean", o.nativeDeadLetter);
  return {
    queueUrl,
    visibilitySeconds: Math.ceil(visibility / 1000),
    waitTimeSeconds: checkInteger("waitTimeSeconds", o.waitTimeSeconds ?? 20, { min: 0, max: 20, prefix: PREFIX }),
    maxReceive: checkInteger("maxReceive", o.maxReceive ?? 100, { min: 1, max: 10_000, prefix: PREFIX }),
    deadLetterQueueUrl: o.deadLetterQueueUrl === undefined ? undefined : url("deadLetterQueueUrl", o.deadLetterQueueUrl),
    nativeDeadLetter: o.nativeDeadLetter ?? false,
    codec,
    fifo: o.fifo ?? new URL(queueUrl).pathname.endsWith(".fifo"),
    messageGroupId: typeof group === "function" ? group : () => group,
    maxMessageBytes: checkInteger("maxMessageBytes", o.maxMessageBytes ?? SQS_MAX_MESSAGE_BYTES, { min: 1024, max: SQS_MAX_MESSAGE_BYTES, prefix: PREFIX }),
    maxBatchBytes: checkInteger("maxBatchBytes", o.maxBatchBytes ?? SQS_MAX_BATCH_BYTES, { min: 1024, max: SQS_MAX_BATCH_BYTES, prefix: PREFIX }),
    entryAttempts: checkInteger("entryAttempts", o.entryAttempts ?? 3, { min: 1, max: 100, prefix: PREFIX }),
    requestTimeout: checkMs("requestTimeout", o.requestTimeout ?? 5_000, { min: 100, max: 3_600_000, prefix: PREFIX }),
    clock,
    address: typeof o.endpoint === "string" ? o.endpoint : new URL(queueUrl).origin,
  };
}
