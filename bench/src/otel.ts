import { context, metrics, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, NoopSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { type Transport, batched } from "@tranche/core";
import { MemoryTransport } from "@tranche/memory";
import { TrancheTelemetry } from "@tranche/otel";
import { Worker } from "@tranche/worker";
import { trancheOptions } from "./contenders.js";
import { median, roundOrder, spread, yieldToEventLoop } from "./stats.js";
import { fill, handler } from "./transport-suite.js";

export interface OtelSettings {
  /** `batched()` calls per round, awaited `chunk` at a time. */
  calls: number;
  chunk: number;
  /** Items a Worker drains from a MemoryTransport per round. */
  items: number;
  batchSize: number;
  rounds: number;
  warmupRounds: number;
}

export type OtelVariant = "off" | "on" | "on, itemDurations: false" | "on + context manager";

export interface OtelResult {
  what: "batched()" | "Worker on MemoryTransport";
  variant: OtelVariant;
  itemsPerSec: number;
  spread: number;
}

const VARIANTS: readonly OtelVariant[] = ["off", "on", "on, itemDurations: false", "on + context manager"];

/**
 * The SDK as an application sets it up, minus the export: every span is recorded and dropped at
 * its end, every metric aggregated and never read. The context manager (AsyncLocalStorage, which
 * the Node SDK registers) is the application's choice and costs every promise, so it is a variant
 * of its own, enabled only during its rounds.
 */
function sdk(): { telemetry: TrancheTelemetry; lite: TrancheTelemetry; shutdown(): Promise<void> } {
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] });
  const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const options = { tracerProvider, meterProvider, propagator: new W3CTraceContextPropagator(), destination: "bench" };
  return {
    telemetry: new TrancheTelemetry(options),
    lite: new TrancheTelemetry({ ...options, itemDurations: false }),
    shutdown: async () => void (await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()])),
  };
}

const contextManager = new AsyncLocalStorageContextManager();

/** Runs `body` with the context manager enabled when `variant` asks for it. */
async function within<V>(variant: OtelVariant, body: () => Promise<V>): Promise<V> {
  if (variant !== "on + context manager") return body();
  context.setGlobalContextManager(contextManager.enable());
  try {
    return await body();
  } finally {
    context.disable();
    contextManager.disable();
  }
}

async function drive(call: (n: number) => Promise<number>, total: number, chunk: number): Promise<void> {
  const pending: Promise<number>[] = new Array(chunk);
  for (let done = 0; done < total; done += chunk) {
    for (let i = 0; i < chunk; i++) pending[i] = call(i);
    await Promise.all(pending);
    await yieldToEventLoop();
  }
}

async function drain(transport: Transport<number>, wrap: TrancheTelemetry | undefined, items: number, batchSize: number): Promise<number> {
  const run = (requests: { payload: number }[]) => handler(requests.map((r) => r.payload));
  const worker = new Worker<number>(transport, wrap === undefined ? run : wrap.handler(run), { flushEvery: batchSize, flushInterval: 0, maxBuffered: batchSize });
  wrap?.observe(worker);
  let acked = 0;
  const drained = new Promise<void>((resolve) =>
    worker.on("settled", (event) => {
      acked += event.acked;
      if (acked >= items) resolve();
    }),
  );
  const started = performance.now();
  await worker.start();
  await drained;
  const ms = performance.now() - started;
  await worker.close();
  return ms;
}

/**
 * Instrumentation off, on, and on with a context manager, alternating round by round in a
 * balanced order: `batched()` (the in-process suite's setup at one batch size) and a Worker
 * draining a MemoryTransport (the memory suite's setup; the items were sent through the traced
 * transport, so each carries a trace context the process span links to).
 */
export async function runOtel(settings: OtelSettings, log: (line: string) => void): Promise<OtelResult[]> {
  const { calls, chunk, items, batchSize, rounds, warmupRounds } = settings;
  const results: OtelResult[] = [];
  const samples = new Map<string, number[]>();
  const record = (what: OtelResult["what"], variant: OtelVariant, perSec: number) => {
    const key = `${what}\u0000${variant}`;
    samples.set(key, [...(samples.get(key) ?? []), perSec]);
  };
  const { telemetry, lite, shutdown } = sdk();
  const options = trancheOptions(batchSize, 10 * chunk);
  const double = async (requests: { payload: number }[]) => requests.map((r) => r.payload * 2);
  const fns = { off: batched(double, options), on: telemetry.batched(double, options), lite: lite.batched(double, options) };
  for (let round = -warmupRounds; round < rounds; round++) {
    for (const v of roundOrder(VARIANTS.length, round)) {
      const variant = VARIANTS[v] as OtelVariant;
      const fn = variant === "off" ? fns.off : variant === "on, itemDurations: false" ? fns.lite : fns.on;
      const ms = await within(variant, async () => {
        const started = performance.now();
        await drive(fn, calls, chunk);
        return performance.now() - started;
      });
      if (round >= 0) record("batched()", variant, (calls / ms) * 1000);

      const transport = new MemoryTransport<number>();
      const traced = variant === "off" ? undefined : variant === "on, itemDurations: false" ? lite : telemetry;
      await fill(traced === undefined ? transport : traced.transport(transport), items, 10_000);
      const drainMs = await within(variant, () => drain(traced === undefined ? transport : traced.transport(transport), traced, items, batchSize));
      await transport.close();
      if (round >= 0) record("Worker on MemoryTransport", variant, (items / drainMs) * 1000);
    }
    log(`  otel round ${round + 1}/${rounds}${round < 0 ? " (warm-up)" : ""}`);
  }
  await Promise.all([fns.off.close(), fns.on.close(), fns.lite.close()]);
  await shutdown();
  // Nothing global stays registered for the suites after this one.
  trace.disable();
  metrics.disable();
  propagation.disable();
  for (const what of ["batched()", "Worker on MemoryTransport"] as const) {
    for (const variant of VARIANTS) {
      const values = samples.get(`${what}\u0000${variant}`) ?? [];
      results.push({ what, variant, itemsPerSec: median(values), spread: spread(values) });
    }
  }
  return results;
}

/** The suite's table: items/s per variant and each "on" as a share of "off". */
export function otelTable(results: readonly OtelResult[], settings: OtelSettings): string {
  const rows = ["| what | instrumentation | items/s | vs off |", "|---|---|---:|---:|"];
  for (const r of results) {
    const off = results.find((o) => o.what === r.what && o.variant === "off")?.itemsPerSec ?? Number.NaN;
    const rate = r.itemsPerSec >= 1e6 ? `${(r.itemsPerSec / 1e6).toFixed(2)} M/s` : `${Math.round(r.itemsPerSec / 1e3)} k/s`;
    rows.push(`| ${r.what} | ${r.variant} | ${rate} ±${Math.round(r.spread * 100)}% | ${(r.itemsPerSec / off).toFixed(2)}× |`);
  }
  return [
    ...rows,
    "",
    `median of ${settings.rounds} rounds, variants alternating in a balanced order; batched(): ${settings.calls.toLocaleString("en-US")} calls per round in chunks of ${settings.chunk}, flushEvery ${settings.batchSize}; Worker: ${settings.items.toLocaleString("en-US")} items, flushEvery ${settings.batchSize}.`,
    "on: TrancheTelemetry around batched() / the transport, handler and worker, with the SDK's BasicTracerProvider (spans recorded, dropped at their end) and MeterProvider (aggregated, never read), W3C propagator; itemDurations: false leaves out the two per-item histograms; + context manager: AsyncLocalStorageContextManager enabled too.",
  ].join("\n");
}
