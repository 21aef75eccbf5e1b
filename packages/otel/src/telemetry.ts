import { type MeterProvider, type TextMapPropagator, type TracerProvider, metrics, propagation, trace } from "@opentelemetry/api";
import { type BatchHandler, type BatchOptions, type Batched, type CallOptions, type Transport, batched } from "@tranche/core";
import { invalidOption } from "@tranche/core/internal";
import { ATTR } from "./names.js";
import { Recorder, type StatsSource, errorType } from "./recorder.js";
import { traceHandler } from "./traced-handler.js";
import { traceTransport } from "./traced-transport.js";

const SCOPE = "@tranche/otel";
const PREFIX = "[tranche/otel]";

/** Options of `new TrancheTelemetry()`. */
export interface TelemetryOptions {
  /** Where spans go. @default the global tracer provider (`trace.getTracerProvider()`) */
  tracerProvider?: TracerProvider;
  /** Where metrics go. @default the global meter provider, as registered when the first metric is recorded */
  meterProvider?: MeterProvider;
  /** How a trace context goes into message headers and comes out. @default the global propagator (`propagation`) */
  propagator?: TextMapPropagator;
  /** `messaging.destination.name`: the queue, stream or subject, in span names and on every span and point. @default none */
  destination?: string;
  /**
   * `messaging.system`. @default from the first transport traced: `aws_sqs`, `rabbitmq`, `redis`,
   * `nats`, `memory` (else its `name`); `tranche` when none is
   */
  system?: string;
  /** `messaging.consumer.group.name` (a Redis consumer group, a NATS durable consumer). @default none */
  consumerGroup?: string;
  /**
   * The clock of send times, latencies and waits in the buffer: give the Worker's own `clock`
   * when it has one (a `SimulatedClock` in tests). @default `Date.now`
   */
  clock?: {
    /** The current time, epoch ms. */
    now(): number;
  };
  /**
   * Record each item's wait in the buffer and its time to settle (`tranche.item.wait.duration`,
   * `tranche.item.settle.duration`): two histogram points per item. The SDK hashes a point's
   * attributes on every record, which costs more than `batched()`'s own work per item (see the
   * bench README); turn it off for hot in-process functions, and the rest costs per batch.
   * @default true
   */
  itemDurations?: boolean;
}

/**
 * What `TrancheTelemetry.observe` reads of a `Worker`: its `"error"` events and its `stats`.
 * Structural, so this package does not depend on `@tranche/worker`.
 */
export interface ObservedWorker {
  /** Listens to the worker's failed transport calls (`TransportOperationError`). */
  on(event: "error", listener: (error: { readonly operation: string; readonly retryable: boolean; readonly cause?: unknown }) => void): unknown;
  /** The counts the gauges read at each collection. */
  readonly stats: StatsSource;
}

/**
 * OpenTelemetry traces and metrics for one queue's producer and Worker, or for `batched()`
 * functions. Nothing of it runs unless you wrap something with it; without this package nothing
 * of OpenTelemetry is loaded.
 *
 * ```ts
 * const telemetry = new TrancheTelemetry({ destination: "orders" });
 * const transport = telemetry.transport(new RedisStreamsTransport({ url, stream: "orders" }));
 * const worker = telemetry.observe(new Worker(transport, telemetry.handler(handler), options));
 * await transport.send(order); // a `send orders` span; its context travels in the message
 * ```
 *
 * Use one per Worker: it keeps each running item's `process` span until the item settles.
 */
export class TrancheTelemetry {
  readonly #recorder: Recorder;

  constructor(options: TelemetryOptions = {}) {
    if (typeof options !== "object" || options === null) throw invalidOption("options", "an object", options, PREFIX);
    for (const name of ["destination", "system", "consumerGroup"] as const) {
      const value = options[name];
      if (value !== undefined && (typeof value !== "string" || value === "")) throw invalidOption(name, "a non-empty string", value, PREFIX);
    }
    const itemDurations = options.itemDurations ?? true;
    if (typeof itemDurations !== "boolean") throw invalidOption("itemDurations", "a boolean", itemDurations, PREFIX);
    const clock = options.clock;
    if (clock !== undefined && typeof clock?.now !== "function") throw invalidOption("clock", "an object with now()", clock, PREFIX);
    const { tracerProvider, meterProvider } = options;
    this.#recorder = new Recorder({
      tracer: (tracerProvider ?? trace).getTracer(SCOPE),
      meter: () => (meterProvider ?? metrics).getMeter(SCOPE),
      propagator: options.propagator ?? propagation,
      now: clock === undefined ? Date.now : () => clock.now(),
      system: options.system,
      destination: options.destination,
      consumerGroup: options.consumerGroup,
      itemDurations,
    });
  }

  /**
   * The transport, traced: `send` and `sendMany` in a `send` span (kind PRODUCER) whose context
   * the message carries in its headers, with the send time (`x-tranche-sent-at`); the settle
   * calls (`ack`, `retry`, `deadLetter`, `release`) in spans (kind CLIENT) that are children of
   * the item's `process` span; and their metrics. Everything else is the transport's own.
   */
  transport<X extends Transport<any>>(transport: X): X {
    const t = transport as Partial<Transport<unknown>> | null;
    if (typeof t !== "object" || t === null || typeof t.send !== "function" || typeof t.receive !== "function") {
      throw invalidOption("transport", "a Transport", transport, PREFIX);
    }
    return traceTransport(transport, this.#recorder);
  }

  /**
   * The handler of a Worker, traced: one `process` span (kind CONSUMER) per batch, linked to each
   * item's producer span, with the batch's size, flush reason and group; and the batch metrics.
   */
  handler<T, R>(handler: BatchHandler<T, R>): BatchHandler<T, R> {
    if (typeof handler !== "function") throw invalidOption("handler", "a function", handler, PREFIX);
    return traceHandler(handler, this.#recorder, "worker", this.#recorder.now);
  }

  /**
   * Adds a Worker's held and in-flight counts to the gauges and counts its failed transport
   * calls (`"error"` events) by operation and retryability. Returns the worker.
   */
  observe<W extends ObservedWorker>(worker: W): W {
    const w = worker as Partial<ObservedWorker> | null;
    if (typeof w !== "object" || w === null || typeof w.on !== "function" || typeof w.stats !== "object") {
      throw invalidOption("worker", "a Worker", worker, PREFIX);
    }
    const recorder = this.#recorder;
    worker.on("error", (error) => {
      const type = errorType(error.cause ?? error);
      // The spans' name of the operation: `dead_letter`, as the conventions spell settle operations.
      const operation = error.operation === "deadLetter" ? "dead_letter" : error.operation;
      recorder.instruments.transportErrors.add(1, `${operation} ${error.retryable} ${type}`, {
        [ATTR.operationName]: operation,
        [ATTR.retryable]: error.retryable,
        [ATTR.errorType]: type,
      });
    });
    recorder.addSource(() => worker.stats);
    return worker;
  }

  /**
   * `batched(handler, options)` with the same metrics where they apply: items received, acked,
   * failed and retried (its Batcher's counts, read when metrics are collected), each call's time
   * to its outcome, the batch metrics and `process` spans, and the held and in-flight gauges.
   */
  batched<T, R>(handler: BatchHandler<T, R>, options?: BatchOptions<T>): Batched<T, R> {
    if (typeof handler !== "function") throw invalidOption("handler", "a function", handler, PREFIX);
    const recorder = this.#recorder;
    const clock = options?.clock;
    const now = clock === undefined ? recorder.now : () => clock.now();
    const inner = batched(traceHandler(handler, recorder, "batched", now), options);
    recorder.addSource(() => inner.stats, true);
    if (!recorder.itemDurations) return inner;
    const { settleDuration } = recorder.instruments;
    // The item counts come from the Batcher's own (see addSource); a call only times itself.
    const call = (payload: T, callOptions?: CallOptions): Promise<R> => {
      const start = now();
      const pending = inner(payload, callOptions);
      pending.then(
        () => settleDuration.record(Math.max(0, now() - start) / 1000, recorder.outcome("ack")),
        () => settleDuration.record(Math.max(0, now() - start) / 1000, recorder.outcome("fail")),
      );
      return pending;
    };
    const traced = Object.assign(call, {
      flush: () => inner.flush(),
      close: (closeOptions?: { timeout?: number }) => inner.close(closeOptions),
    });
    Object.defineProperty(traced, "stats", { get: () => inner.stats, enumerable: true });
    return traced as unknown as Batched<T, R>;
  }
}
