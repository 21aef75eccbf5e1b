import { TrancheError } from "@tranche/core";

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
 * listed in `failures` (the sqs-consumer #193 bug, avoided).
 */
export class SqsTransportError extends TrancheError {
  override readonly name = "SqsTransportError";
  /** The SQS action, e.g. `"DeleteMessageBatch"`. */
  readonly operation: string;
  /** Refused entries; empty when the whole call failed (see `cause`). */
  readonly failures: readonly SqsEntryFailure[];

  constructor(operation: string, message: string, options?: { cause?: unknown; failures?: readonly SqsEntryFailure[] }) {
    super(`[tranche/sqs] ${operation}: ${message}`, options);
    this.operation = operation;
    this.failures = options?.failures ?? [];
  }
}
