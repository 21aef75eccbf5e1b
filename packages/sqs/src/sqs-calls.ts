import { ChangeMessageVisibilityBatchCommand, DeleteMessageBatchCommand } from "@aws-sdk/client-sqs";
import { ClosedError } from "@tranche/core";
import { type BatchOutcome, type BatchSpec, sendBatches } from "./batches.js";
import { callError, entriesError, mergeErrors } from "./classify.js";
import { SqsTransportError } from "./errors.js";
import { bySequence, type Receipt } from "./receipt.js";

/** A call aborted by the caller's signal: not an error, `receive` resolves `[]`. */
export const ABORTED = Symbol("aborted");

// Batch calls (send, delete, visibility) in flight at once: a receive of 100 is answered by 10
// parallel calls, so its ack goes out the same way rather than as 8 and then 2 stragglers.
const BATCH_CONCURRENCY = 10;
// Refusals of a visibility change whose lease is gone already: for a release, the job is done.
const LEASE_GONE = new Set(["ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"]);

/** `client.send` with its overloads erased: every call site names its own output type. */
export type Send = (command: unknown, options?: { abortSignal?: AbortSignal }) => Promise<any>;

/** A visibility change of one delivery. */
export interface Visibility {
  readonly receipt: Receipt;
  readonly seconds: number;
}

/**
 * The SQS calls of one transport: each bounded by `requestTimeout`, aborted by `close()`, its
 * errors classified. The batch calls on deliveries settle each receipt once SQS confirmed it,
 * and throw one error for whatever is left.
 */
export class SqsCalls {
  #closed = false;
  /** Aborts of the calls under way, for `close()`. */
  readonly #inflight = new Set<AbortController>();

  constructor(
    private readonly send: Send,
    private readonly options: { readonly queueUrl: string; readonly requestTimeout: number; readonly address: string; readonly entryAttempts: number },
  ) {}

  /** Aborts every call under way (they reject with `ClosedError`) and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const call of this.#inflight) call.abort();
  }

  /**
   * One SQS call, bounded by `requestTimeout` (plus `wait`), aborted by `close()` and by `signal`.
   * Rejects with a classified `SqsTransportError`, `ClosedError` after `close()`, or `ABORTED`
   * when `signal` aborted it.
   */
  async call<O>(operation: string, command: unknown, options: { wait?: number; signal?: AbortSignal } = {}): Promise<O> {
    if (this.#closed) throw new ClosedError("[tranche/sqs] the transport is closed");
    const limit = this.options.requestTimeout + (options.wait ?? 0);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, limit);
    const { signal } = options;
    const onAbort = () => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#inflight.add(controller);
    try {
      return (await this.send(command, { abortSignal: controller.signal })) as O;
    } catch (error) {
      if (this.#closed) throw new ClosedError("[tranche/sqs] the transport is closed", { cause: error });
      if (signal?.aborted) throw ABORTED;
      if (timedOut) {
        throw new SqsTransportError(operation, `${operation} failed: no reply within ${limit} ms (${this.options.address})`, { retryable: true, cause: error });
      }
      throw callError(operation, error, this.options.address);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.#inflight.delete(controller);
    }
  }

  /** `items` through one kind of batch call (see `sendBatches`). */
  batch<I, E extends { Id: string }>(items: I[], spec: Omit<BatchSpec<I, E>, "entryAttempts" | "concurrency">): Promise<BatchOutcome<I>> {
    return sendBatches(items, { ...spec, entryAttempts: this.options.entryAttempts, concurrency: BATCH_CONCURRENCY });
  }

  /** Deletes the messages of `list`; each is settled once SQS confirmed its delete. */
  async delete(list: readonly Receipt[]): Promise<void> {
    if (list.length === 0) return;
    const outcome = await this.batch([...new Set(list)], {
      entry: (r, Id) => ({ Id, ReceiptHandle: r.handle }),
      call: (Entries) => this.call("DeleteMessageBatch", new DeleteMessageBatchCommand({ QueueUrl: this.options.queueUrl, Entries })),
      idOf: (r) => r.id,
    });
    for (const r of outcome.done) r.settled = true;
    this.throwFailures("DeleteMessageBatch", outcome);
  }

  /** Makes the messages of `list` visible again, later FIFO siblings first; each is settled (released) once SQS confirmed. */
  async visibleNow(list: readonly Receipt[]): Promise<void> {
    if (list.length === 0) return;
    // A FIFO queue puts a message made visible at the head of its group: the last one first keeps order.
    const ordered = [...new Set(list)].sort((a, b) => bySequence(b, a)).map((receipt) => ({ receipt, seconds: 0 }));
    const outcome = await this.changeVisibility(ordered, true);
    for (const { receipt } of outcome.done) {
      receipt.outcome ??= "release";
      receipt.settled = true;
    }
    this.throwFailures("ChangeMessageVisibilityBatch", outcome);
  }

  /** `ChangeMessageVisibilityBatch`; with `ignoreLost`, entries whose lease is already gone are done (a release). */
  changeVisibility(entries: Visibility[], ignoreLost: boolean): Promise<BatchOutcome<Visibility>> {
    return this.batch(entries, {
      entry: (e, Id) => ({ Id, ReceiptHandle: e.receipt.handle, VisibilityTimeout: e.seconds }),
      call: (Entries) => this.call("ChangeMessageVisibilityBatch", new ChangeMessageVisibilityBatchCommand({ QueueUrl: this.options.queueUrl, Entries })),
      idOf: (e) => e.receipt.id,
      ...(ignoreLost ? { ignore: (code: string) => LEASE_GONE.has(code) } : {}),
    });
  }

  /** Throws one error for every entry refused and every request failed, if any. */
  throwFailures<I>(operation: string, outcome: BatchOutcome<I>): void {
    const errors: unknown[] = outcome.failed.map((f) => f.error);
    if (outcome.refused.length > 0) errors.unshift(entriesError(operation, outcome.refused.map((r) => r.failure)));
    if (errors.length > 0) throw closedOr(mergeErrors(operation, errors), outcome);
  }
}

/** `ClosedError` (caused by `error`) when `close()` cut requests of `outcome` short, else `error`. */
export function closedOr<I>(error: unknown, outcome: BatchOutcome<I>): unknown {
  if (!outcome.failed.some((f) => ClosedError.isInstance(f.error))) return error;
  return new ClosedError("[tranche/sqs] the transport is closed", { cause: error });
}
