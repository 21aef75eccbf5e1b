import type { BatcherStats } from "@tranche/core";

/** What `worker.stats` reports. */
export interface WorkerStats extends BatcherStats {
  /**
   * Deliveries the worker holds: buffered, delayed, in flight, and settled but not yet
   * acked, retried or dead-lettered on the transport. Never more than `maxBuffered`.
   */
  deliveries: number;
  /** Transport calls and their results, counted in deliveries (`receives` and `errors` in calls). */
  transport: {
    receives: number;
    received: number;
    acked: number;
    retried: number;
    deadLettered: number;
    released: number;
    extended: number;
    /** Failed tries of transport and result-store calls (each one an `"error"` event). */
    errors: number;
    /** Transport calls queued or running. */
    pending: number;
  };
}

/** The transport counts a worker keeps as it goes (`pending` is read off its calls). */
export type TransportCounts = Omit<WorkerStats["transport"], "pending">;
