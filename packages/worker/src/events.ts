import type { ErrorInfo, FlushReason } from "@tranche/core";
import type { TransportOperationError } from "./errors.js";

/** A batch was handed to the handler. */
export interface FlushEvent {
  readonly batchId: string;
  readonly reason: FlushReason;
  readonly size: number;
  readonly group: string | undefined;
  /** ms the batch's oldest item waited between becoming eligible and the flush. */
  readonly waitedMs: number;
}

/** Every item of a batch has its outcome, and the transport has it too (or the worker gave up at `close`). */
export interface SettledEvent {
  readonly batchId: string;
  readonly acked: number;
  readonly failed: number;
  readonly retried: number;
  /** Items released back to the transport when `close({ timeout })` gave up on the batch. */
  readonly released: number;
  /** ms from the flush to here, transport calls included. */
  readonly durationMs: number;
}

/** An item goes back to the transport for another try. */
export interface RetryEvent {
  readonly id: string;
  /** The try that is over (the next delivery has `attempt + 1`). */
  readonly attempt: number;
  /** Epoch ms before which the item will not run again. */
  readonly notBefore: number;
}

/** An item goes to the dead letters, never to be delivered again. */
export interface DeadLetterEvent {
  readonly id: string;
  /** Deliveries of the item, this one included. */
  readonly attempt: number;
  /** Handler runs of the item, this one included when it ran; `undefined` when the transport cannot tell. */
  readonly runs: number | undefined;
  /** Why, as plain data: a listener that keeps events keeps no batch alive through an `Error`'s call sites. */
  readonly reason: ErrorInfo;
}

/** The events of a `Worker` and their listeners' arguments. */
export interface WorkerEvents {
  flush: [event: FlushEvent];
  settled: [event: SettledEvent];
  retry: [event: RetryEvent];
  deadLetter: [event: DeadLetterEvent];
  /** A transport or result-store call failed; the worker tries again or takes its fallback (`error.retrying`), and keeps running. */
  error: [error: TransportOperationError];
  /** The worker holds nothing any more (it had something before). */
  idle: [];
}

/** Emits worker events; a throwing listener must not break the worker's bookkeeping. */
export interface Emitter {
  emit<K extends keyof WorkerEvents>(event: K, ...args: WorkerEvents[K]): boolean;
}
