import { TransportError } from "@tranche/core";

/** One entry an SQS batch call (or a single call) refused. */
export interface SqsEntryFailure {
  /** The item id the entry was for. */
  readonly id: string;
  /** SQS error code, e.g. `"InternalError"`, `"ReceiptHandleIsInvalid"`. */
  readonly code: string;
  readonly message: string;
  /** `true` when SQS blames the request (retrying the same entry will not help). */
  readonly senderFault: boolean;
}

/**
 * An SQS call failed, or some entries of a batch call were still refused after the
 * transport's own retries. Entries are never dropped silently: each refused one is
 * listed in `failures` (the sqs-consumer #193 bug, avoided). `retryable` says whether the
 * same call may succeed when tried again (see `TransportError`).
 */
export class SqsTransportError extends TransportError {
  // Typed as the base's literal until `TransportError.name` is typed `string`; the value is this class's.
  override readonly name = "SqsTransportError" as "TransportError";
  /** The SQS action, e.g. `"DeleteMessageBatch"`. */
  readonly operation: string;
  /** Refused entries; empty when the whole call failed (see `cause`). */
  readonly failures: readonly SqsEntryFailure[];

  /** `message` follows the package prefix and names the operation, e.g. `"DeleteMessageBatch failed: …"`. */
  constructor(operation: string, message: string, options: { retryable: boolean; cause?: unknown; failures?: readonly SqsEntryFailure[] }) {
    super(`[tranche/sqs] ${message}`, options);
    this.operation = operation;
    this.failures = options.failures ?? [];
  }
}

/**
 * `send` or `sendMany` stopped part-way: `sent` lists the item ids SQS confirmed, `unsent` the
 * others (in the order given). An unsent item may still have reached SQS when a reply was lost;
 * sending it again under the same id is safe (a FIFO queue drops the copy within its 5-minute
 * deduplication window; a standard queue delivers at least once anyway):
 *
 * ```ts
 * const ids = payloads.map(() => randomUUID());
 * try {
 *   await transport.sendMany(payloads, { ids });
 * } catch (error) {
 *   if (!SqsSendError.isInstance(error)) throw error;
 *   const rest = new Set(error.unsent);
 *   await transport.sendMany(payloads.filter((_, i) => rest.has(ids[i])), { ids: error.unsent });
 * }
 * ```
 */
export class SqsSendError extends SqsTransportError {
  override readonly name = "SqsSendError" as "TransportError";
  /** Every item id of the call, in the order of the payloads. */
  readonly ids: readonly string[];
  /** Ids SQS confirmed, in order. */
  readonly sent: readonly string[];
  /** Ids not confirmed, in order. */
  readonly unsent: readonly string[];

  constructor(
    message: string,
    options: { retryable: boolean; cause?: unknown; failures?: readonly SqsEntryFailure[]; ids: readonly string[]; sent: readonly string[]; unsent: readonly string[] },
  ) {
    super("SendMessageBatch", message, options);
    this.ids = options.ids;
    this.sent = options.sent;
    this.unsent = options.unsent;
  }
}
