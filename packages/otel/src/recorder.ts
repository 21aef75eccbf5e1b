import {
  type Attributes,
  type BatchObservableResult,
  type Context,
  type Link,
  type Meter,
  type Span,
  SpanStatusCode,
  type TextMapPropagator,
  type Tracer,
  ROOT_CONTEXT,
  isSpanContextValid,
  trace,
} from "@opentelemetry/api";
import { type Instruments, createInstruments } from "./instruments.js";
import { ATTR, SENT_AT } from "./names.js";

/** Reads and writes message headers for a propagator. */
export const headerGetter = {
  get: (carrier: Readonly<Record<string, string>>, key: string): string | undefined => carrier[key],
  keys: (carrier: Readonly<Record<string, string>>): string[] => Object.keys(carrier),
};
export const headerSetter = {
  set: (carrier: Record<string, string>, key: string, value: string): void => void (carrier[key] = value),
};

/** What `Recorder` needs from `TrancheTelemetry`'s options, resolved. */
export interface RecorderSettings {
  readonly tracer: Tracer;
  /** Called once, at the first record: a global meter provider registered after the telemetry was made is still used. */
  readonly meter: () => Meter;
  readonly propagator: TextMapPropagator;
  readonly now: () => number;
  readonly system: string | undefined;
  readonly destination: string | undefined;
  readonly consumerGroup: string | undefined;
  readonly itemDurations: boolean;
}

/** Counts a statistics source (a Worker, a batched() function) reports, summed into the gauges. */
export interface StatsSource {
  /** Items buffered, eligible or delayed. */
  readonly held: number;
  /** Unsettled items of batches in flight. */
  readonly inFlight: number;
  /** Batches in flight. */
  readonly inFlightBatches: number;
}

/** The item counts of a `batched()` function, as its Batcher keeps them. */
interface ItemCounts {
  readonly items: { readonly accepted: number; readonly acked: number; readonly failed: number; readonly retried: number };
}

/** What the gauges (and, for `batched()`, the item counters) read at each collection. */
interface Source {
  readonly stats: () => StatsSource;
  readonly counts: boolean;
}

/**
 * The state one `TrancheTelemetry` shares between its transport, handler and worker hooks: the
 * tracer and instruments, the attributes every span and point carries, and the process span of
 * each item in flight (a settle span's parent).
 */
export class Recorder {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  readonly now: () => number;
  /** Whether each item's wait and time to settle are recorded (see `TelemetryOptions.itemDurations`). */
  readonly itemDurations: boolean;
  /** The process span context of each item id whose batch ran, until the item is settled. */
  readonly processes = new Map<string, Context>();
  private readonly settings: RecorderSettings;
  private system: string | undefined;
  private base: Attributes | undefined;
  private readonly derived = new Map<string, Attributes>();
  private made: Instruments | undefined;
  private meter: Meter | undefined;
  private readonly sources = new Set<Source>();

  constructor(settings: RecorderSettings) {
    this.settings = settings;
    this.tracer = settings.tracer;
    this.propagator = settings.propagator;
    this.now = settings.now;
    this.itemDurations = settings.itemDurations;
    this.system = settings.system;
  }

  get instruments(): Instruments {
    if (this.made === undefined) {
      const meter = this.meterOnce();
      const made = createInstruments(meter);
      const tallies = [made.sent, made.consumed, made.received, made.acked, made.retried, made.deadLettered, made.failed, made.batches, made.transportErrors];
      meter.addBatchObservableCallback((result) => this.collect(result), [...tallies.map((t) => t.counter), made.held, made.inFlight, made.inFlightBatches]);
      this.made = made;
    }
    return this.made;
  }

  /** `messaging.system` from the first transport traced, unless the options named one. */
  noteSystem(system: string): void {
    if (this.system !== undefined) return;
    this.system = system;
    this.base = undefined;
    this.derived.clear();
  }

  /** `messaging.system`, `messaging.destination.name` and `messaging.consumer.group.name`, as known. */
  attributes(): Attributes {
    if (this.base === undefined) {
      const { destination, consumerGroup } = this.settings;
      const base: Attributes = { [ATTR.system]: this.system ?? "tranche" };
      if (destination !== undefined) base[ATTR.destination] = destination;
      if (consumerGroup !== undefined) base[ATTR.consumerGroup] = consumerGroup;
      this.base = base;
    }
    return this.base;
  }

  /**
   * The base attributes with `extra`, made once per `key` (a point's attributes are hashed on
   * every record; one object per set spares at least its allocation).
   */
  attributesWith(key: string, extra: () => Attributes): Attributes {
    let found = this.derived.get(key);
    if (found === undefined) {
      found = { ...this.attributes(), ...extra() };
      this.derived.set(key, found);
    }
    return found;
  }

  /** Attributes of a settle-time point: how the item settled. */
  outcome(outcome: "ack" | "dead_letter" | "fail"): Attributes {
    return this.attributesWith(`outcome:${outcome}`, () => ({ [ATTR.outcome]: outcome }));
  }

  /** `{operation} {destination}`, the conventions' span name; the operation alone when no destination is known. */
  spanName(operation: string): string {
    const { destination } = this.settings;
    return destination === undefined ? operation : `${operation} ${destination}`;
  }

  /** A link to the producer context `headers` carry, or `undefined` when they carry none. */
  linkOf(headers: Readonly<Record<string, string>> | undefined, id: string): Link | undefined {
    if (headers === undefined) return undefined;
    const producer = trace.getSpanContext(this.propagator.extract(ROOT_CONTEXT, headers, headerGetter));
    return producer !== undefined && isSpanContextValid(producer) ? { context: producer, attributes: { [ATTR.messageId]: id } } : undefined;
  }

  /** Whether the headers already carry a trace context (a producer's own creation context is kept as it is). */
  hasContext(headers: Readonly<Record<string, string>>): boolean {
    return this.propagator.fields().some((field) => headers[field] !== undefined);
  }

  /** Epoch ms a traced producer sent the item at, from its headers. */
  sentAt(headers: Readonly<Record<string, string>> | undefined): number | undefined {
    const raw = headers?.[SENT_AT];
    if (raw === undefined) return undefined;
    const at = Number(raw);
    return Number.isFinite(at) ? at : undefined;
  }

  /** Marks a span failed with `error`; returns its `error.type`. */
  fail(span: Span, error: unknown): string {
    const type = errorType(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    span.setAttribute(ATTR.errorType, type);
    if (error instanceof Error) span.recordException(error);
    return type;
  }

  /**
   * Adds a source to the held and in-flight gauges; with `counts`, a `batched()` function whose
   * Batcher's item counts (accepted, acked, failed, retried) feed the item counters.
   */
  addSource(stats: () => StatsSource & Partial<ItemCounts>, counts = false): void {
    void this.instruments;
    this.sources.add({ stats, counts });
  }

  private collect(result: BatchObservableResult): void {
    const made = this.made as Instruments;
    const base = this.attributes();
    let held = 0;
    let inFlight = 0;
    let inFlightBatches = 0;
    let received = 0;
    let acked = 0;
    let failed = 0;
    let retried = 0;
    for (const source of this.sources) {
      const stats = source.stats() as StatsSource & Partial<ItemCounts>;
      held += stats.held;
      inFlight += stats.inFlight;
      inFlightBatches += stats.inFlightBatches;
      if (source.counts && stats.items !== undefined) {
        received += stats.items.accepted;
        acked += stats.items.acked;
        failed += stats.items.failed;
        retried += stats.items.retried;
      }
    }
    made.received.observe(result, base, received);
    made.acked.observe(result, base, acked);
    made.failed.observe(result, base, failed);
    made.retried.observe(result, base, retried);
    for (const tally of [made.sent, made.consumed, made.deadLettered, made.batches, made.transportErrors]) tally.observe(result, base);
    if (this.sources.size === 0) return;
    result.observe(made.held, held, base);
    result.observe(made.inFlight, inFlight, base);
    result.observe(made.inFlightBatches, inFlightBatches, base);
  }

  private meterOnce(): Meter {
    this.meter ??= this.settings.meter();
    return this.meter;
  }
}

/** `error.type` of a thrown value: its class name, low in cardinality. */
export function errorType(error: unknown): string {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === "string" && name !== "" ? name : "_OTHER";
}
