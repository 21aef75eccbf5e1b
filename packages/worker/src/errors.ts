import { TrancheError } from "@tranche/core";

/** What the worker was doing when a transport or result-store call failed. */
export type TransportOperation = "receive" | "ack" | "retry" | "deadLetter" | "extend" | "release" | "close" | "results.set";

/**
 * A transport (or result-store) call threw, rejected or did not settle within `ioTimeout`.
 * Emitted as the worker's `"error"` event; the worker tries the call again after a backoff
 * (receive, ack, retry, deadLetter, results.set) or at the next renewal (extend), and keeps running.
 */
export class TransportOperationError extends TrancheError {
  override readonly name = "TransportOperationError";

  constructor(
    readonly operation: TransportOperation,
    /** Tries of this call so far, this one included. */
    readonly tries: number,
    cause: unknown,
  ) {
    super(`[tranche/worker] ${operation} failed (try ${tries}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
