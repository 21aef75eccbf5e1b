import type { Transport, TransportCapabilities } from "@tranche/core";

/** Message prefix of this package's errors. */
export const PREFIX = "[tranche/conformance]";

/**
 * One fresh, empty queue under test. The suite makes one per case and closes it after.
 * Everything it hands out talks to the same queue.
 */
export interface ConformanceQueue {
  /**
   * A transport on this queue. Every call is another consumer (a competing worker: another
   * consumer name, connection or client), and each is a producer too.
   */
  connect(): Promise<Transport<unknown>>;
  /** Puts raw bytes on the queue that the default codec cannot decode (the "garbage" case). */
  sendRaw(raw: string | Uint8Array): Promise<void>;
  /**
   * Lets `ms` of the transport's time pass. Transports on a `SimulatedClock` advance it;
   * network transports leave this out and the suite sleeps for real.
   */
  advance?(ms: number): Promise<void>;
  /** The transport's epoch-ms time (`clock.now()`); `Date.now()` when absent. */
  now?(): number;
  /**
   * The queue's dead letters, for transports that can list them (`MemoryTransport.deadLetters()`,
   * a DLQ stream or subject). When present, the suite checks that a dead-lettered item is there
   * with its reason (the reason's message, or a text containing it).
   */
  deadLetters?(): Promise<{ id: string; reason: string }[]>;
  /** Closes every transport `connect` made and removes the queue. */
  close(): Promise<void>;
}

export interface ConformanceOptions {
  /** Shown in the `describe` title. */
  name: string;
  /**
   * Makes a fresh, empty queue whose deliveries are leased for about `lease` ms (visibility
   * timeout, AckWait, reaper `minIdle`...) and whose `receive` waits at most about `wait` ms.
   */
  create(settings: { lease: number; wait: number }): Promise<ConformanceQueue>;
  /**
   * Real milliseconds per suite millisecond. The suite's base lease is 1 000 ms and its waits are a
   * few hundred ms; a transport whose lease cannot be that short (SQS visibility is whole seconds)
   * or whose server is slow passes a larger scale. @default 1
   */
  timeScale?: number;
  /**
   * What the transport is expected to declare. The suite checks that `transport.capabilities`
   * matches, then skips by it (no lease cases without `lease`). @default what the transport declares
   */
  capabilities?: TransportCapabilities;
  /** Runs of the model-based property test. @default 100 with `advance`, else 5 */
  modelRuns?: number;
}
