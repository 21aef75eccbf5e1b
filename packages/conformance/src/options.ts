import type { Clock, QueueDepth, Transport, TransportCapabilities } from "@tranche/core";
import type { Endpoint } from "./tcp-proxy.js";
import type { WorkerConstructor } from "./worker-like.js";

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
   * The transport's `Clock`, which the suite hands to the `Worker`s it runs on the queue. Needed
   * with `advance` (a worker on the system clock would not see simulated time pass).
   */
  clock?: Clock;
  /**
   * The queue's dead letters, for transports that can list them but have no `deadLetters()` of
   * their own (`QueueAdmin`); without this hook the suite reads the transport's. The suite checks
   * that a dead-lettered item is there once, with its reason (the reason's message, or a text
   * containing it) and, when given, the `attempt` and `retries` of the delivery that was
   * dead-lettered.
   */
  deadLetters?(): Promise<{ id: string; reason: string; attempt?: number | undefined; retries?: number | undefined }[]>;
  /** Closes every transport `connect` made and removes the queue. */
  close(): Promise<void>;
}

/** What `ConformanceOptions.create` is asked for. */
export interface QueueSettings {
  /** ms a delivery stays leased (visibility timeout, AckWait, reaper `minIdle`...), about. */
  lease: number;
  /** Longest ms a `receive` waits for a message, about. */
  wait: number;
  /**
   * Where every transport `connect()` makes must connect instead of `server` (a `TcpProxy` the
   * suite runs in front of it); given only to the connection-fault cases. `create`'s own setup
   * (making the queue), `sendRaw`, `deadLetters` and `close` may use the server directly: they
   * must work while the endpoint is cut.
   */
  endpoint?: Endpoint;
}

export interface ConformanceOptions {
  /** Shown in the `describe` title. */
  name: string;
  /**
   * Makes a fresh, empty queue whose deliveries are leased for about `lease` ms and whose
   * `receive` waits at most about `wait` ms, with its transports connecting to `endpoint` when
   * given (see `QueueSettings`).
   */
  create(settings: QueueSettings): Promise<ConformanceQueue>;
  /**
   * The transport's server (or a function that starts or finds it). With it, the
   * connection-fault cases run: a `TcpProxy` between the transports and the server is cut,
   * black-holed and healed. Without it (an in-process transport) they are skipped.
   */
  server?: Endpoint | (() => Endpoint | Promise<Endpoint>);
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
  /**
   * `QueueDepth` fields the transport cannot count, which the depth case leaves unchecked (AMQP
   * 0-9-1 tells a queue's ready messages but not its unacknowledged ones). @default none
   */
  uncountedDepth?: readonly (keyof QueueDepth)[];
  /**
   * The broker keeps a delayed message as an unacknowledged one (JetStream: a nak with a delay),
   * so `depth()` counts it in `inFlight` and `delayed` stays 0; the depth case then expects that.
   * @default false
   */
  delayedInFlight?: boolean;
  /** Runs of the model-based property test; `FC_RUNS` overrides it. @default 100 with `advance`, else 5 */
  modelRuns?: number;
  /** Runs of the worker model under call faults; `FC_RUNS` overrides it. @default 1000 with `advance`, else 3 */
  workerRuns?: number;
  /** The `Worker` class the worker cases run. @default `Worker` from `@tranche/worker` */
  Worker?: WorkerConstructor;
}

/** `FC_RUNS` from the environment when it is set (a number ≥ 1), else undefined. */
export function envRuns(): number | undefined {
  const raw = typeof process === "undefined" ? undefined : process.env.FC_RUNS;
  if (raw === undefined) return undefined;
  const runs = Number(raw);
  if (!Number.isInteger(runs) || runs < 1) throw new TypeError(`${PREFIX} Expected FC_RUNS to be an integer ≥ 1, got ${JSON.stringify(raw)}`);
  return runs;
}

/** `FC_SEED` from the environment when it is set, to replay a failure. */
export function envSeed(): number | undefined {
  const raw = typeof process === "undefined" ? undefined : process.env.FC_SEED;
  return raw === undefined || raw === "" ? undefined : Number(raw);
}
