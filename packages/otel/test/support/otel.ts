import { type Attributes, context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  AggregationTemporality,
  type DataPoint,
  DataPointType,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { TrancheTelemetry, type TelemetryOptions } from "../../src/index.js";

// Without a context manager `context.with` does nothing: the handler would not run in its span.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

/** A point's value: a counter's or gauge's number, a histogram's count and sum. */
export type Value = number | { count: number; sum: number };

/**
 * The SDK's in-memory span and metric exporters behind a `TrancheTelemetry`: `spans()` lists what
 * ended, `points(name)` collects the metrics now and gives one instrument's points.
 */
export class Otel {
  readonly exporter = new InMemorySpanExporter();
  readonly tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(this.exporter)] });
  readonly metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  readonly reader = new PeriodicExportingMetricReader({ exporter: this.metricExporter, exportIntervalMillis: 3_600_000 });
  readonly meterProvider = new MeterProvider({ readers: [this.reader] });
  readonly propagator = new W3CTraceContextPropagator();

  telemetry(options: TelemetryOptions = {}): TrancheTelemetry {
    return new TrancheTelemetry({ tracerProvider: this.tracerProvider, meterProvider: this.meterProvider, propagator: this.propagator, ...options });
  }

  spans(name?: string): ReadableSpan[] {
    return this.exporter.getFinishedSpans().filter((span) => name === undefined || span.name === name);
  }

  async metrics(): Promise<MetricData[]> {
    await this.reader.forceFlush();
    const all = this.metricExporter.getMetrics();
    this.metricExporter.reset();
    return all.at(-1)?.scopeMetrics.flatMap((scope) => scope.metrics) ?? [];
  }

  /** The points of instrument `name` as `{ attributes, value }`, collected now. */
  async points(name: string): Promise<{ attributes: Attributes; value: Value }[]> {
    const metric = (await this.metrics()).find((m) => m.descriptor.name === name);
    if (metric === undefined) return [];
    return (metric.dataPoints as DataPoint<number | Histogram>[]).map((point) => ({
      attributes: point.attributes,
      value: metric.dataPointType === DataPointType.HISTOGRAM ? { count: (point.value as Histogram).count, sum: (point.value as Histogram).sum ?? 0 } : (point.value as number),
    }));
  }

  /** The sum over the points of `name` whose attributes include `where`: a counter's total, a histogram's count. */
  async total(name: string, where: Attributes = {}): Promise<number> {
    let total = 0;
    for (const { attributes, value } of await this.points(name)) {
      if (!Object.entries(where).every(([key, v]) => attributes[key] === v)) continue;
      total += typeof value === "number" ? value : value.count;
    }
    return total;
  }

  async shutdown(): Promise<void> {
    await this.tracerProvider.shutdown();
    await this.meterProvider.shutdown();
  }
}

/** The `traceparent` of a span: what a traced send puts in its message. */
export function traceparentOf(span: ReadableSpan): string {
  const { traceId, spanId } = span.spanContext();
  return `00-${traceId}-${spanId}-01`;
}
