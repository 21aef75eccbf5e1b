// A Worker over a MemoryTransport, traced and measured with @tranche/otel. A "checkout" sends
// five orders; the worker charges them in batches, retries one once and dead-letters a bad one.
// Then the process scrapes its own Prometheus endpoint once, prints the tranche lines, and prints
// the trace: the send spans, the process spans linked to them, and the settle spans.
//
//   pnpm --filter @tranche/examples-otel-prometheus start
//
// No server needed: the Prometheus exporter serves on a free port of this process.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { SpanKind, context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { MemoryTransport } from "@tranche/memory";
import { TrancheTelemetry } from "@tranche/otel";
import { Worker } from "@tranche/worker";

interface Order {
  order: number;
  cents: number;
}

// The OpenTelemetry setup an application makes once: a context manager (so the handler runs inside
// its span), where spans go, and a Prometheus exporter as the metric reader.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const prometheus = new PrometheusExporter({ preventServerStart: true });
const meterProvider = new MeterProvider({ readers: [prometheus] });
const server = createServer((request, response) => prometheus.getMetricsRequestHandler(request, response));
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const metricsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;

// tranche's part: one TrancheTelemetry for the queue, around the transport, the handler and the worker.
const telemetry = new TrancheTelemetry({ destination: "orders", tracerProvider, meterProvider, propagator: new W3CTraceContextPropagator() });
const transport = telemetry.transport(new MemoryTransport<Order>());
const worker = telemetry.observe(
  new Worker<Order>(
    transport,
    telemetry.handler<Order, unknown>(async (requests) => {
      // Runs inside the batch's `process` span: trace.getActiveSpan() is it, and spans started here are its children.
      for (const request of requests) {
        const { order, cents } = request.payload;
        if (cents < 0) request.fail(new RangeError(`order ${order}: negative amount ${cents}`));
        else if (order === 3 && request.attempt === 1) request.retry({ delay: 100 }); // the card processor said "try later"
        else request.ack();
      }
    }),
    { flushEvery: 3, flushInterval: 50, retry: { attempts: 3 } },
  ),
);

let settled = 0;
worker.on("settled", (e) => (settled += e.acked + e.failed));
await worker.start();
await tracerProvider.getTracer("shop").startActiveSpan("checkout", async (checkout) => {
  await transport.send({ order: 1, cents: 1200 });
  await transport.sendMany([
    { order: 2, cents: 800 },
    { order: 3, cents: 4500 },
    { order: 4, cents: -5 },
    { order: 5, cents: 300 },
  ]);
  checkout.end();
});
const deadline = Date.now() + 10_000;
while (settled < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
await worker.close();

// One scrape, as Prometheus would make it.
const scrape = await (await fetch(metricsUrl)).text();
const lines = scrape.split("\n").filter((line) => /^(tranche|messaging)_/.test(line));
const buckets = lines.filter((line) => /_bucket\{/.test(line));
console.log(`GET ${metricsUrl}: the tranche and messaging series (${buckets.length} histogram _bucket lines left out)\n`);
for (const line of lines) if (!buckets.includes(line)) console.log(`  ${line.replace(/,?otel_scope_name="[^"]*"/, "")}`);

// The trace, as a tracing backend would show it: children under their parent, links named.
const finished = spans.getFinishedSpans();
const byId = new Map(finished.map((span) => [span.spanContext().spanId, span]));
const label = (span: ReadableSpan) => `${span.name} [${SpanKind[span.kind]}]`;
const shown: Record<string, unknown> = {};
function print(span: ReadableSpan, depth: number): void {
  const pick = ["messaging.message.id", "messaging.batch.message_count", "tranche.flush.reason", "tranche.retry.not_before", "tranche.dead_letter.reason", "error.type"];
  for (const key of Object.keys(shown)) delete shown[key];
  for (const key of pick) if (span.attributes[key] !== undefined) shown[key] = span.attributes[key];
  console.log(`  ${"  ".repeat(depth)}${label(span)} ${JSON.stringify(shown)}`);
  for (const link of span.links) {
    const producer = byId.get(link.context.spanId);
    console.log(`  ${"  ".repeat(depth + 1)}↳ link to ${producer === undefined ? link.context.spanId : label(producer)} for item ${String(link.attributes?.["messaging.message.id"]).slice(0, 8)}…`);
  }
  for (const child of finished) if (child.parentSpanContext?.spanId === span.spanContext().spanId) print(child, depth + 1);
}
console.log(`\ntrace ${finished[0]?.spanContext().traceId} and the batches linked to it: ${finished.length} spans\n`);
for (const root of finished.filter((span) => span.parentSpanContext === undefined || !byId.has(span.parentSpanContext.spanId))) print(root, 0);

await new Promise((resolve) => server.close(resolve));
await Promise.all([transport.close(), tracerProvider.shutdown(), meterProvider.shutdown()]);

const wanted = ["tranche_items_acked_total", "tranche_items_dead_lettered_total", "tranche_items_retried_total", "tranche_batch_size", "tranche_item_settle_duration"];
const missing = wanted.filter((name) => !lines.some((line) => line.startsWith(name)));
const linked = finished.some((span) => span.kind === SpanKind.CONSUMER && span.links.length > 0);
if (settled < 5 || missing.length > 0 || !linked) {
  console.error(`\nexpected 5 settled orders (got ${settled}), the metrics ${missing.join(", ") || "(all there)"} and a process span linked to its producers (${linked})`);
  process.exit(1);
}
