import { type Attributes, type Link, ROOT_CONTEXT, SpanKind, context, trace } from "@opentelemetry/api";
import type { BatchContext, BatchHandler, BatchRequest } from "@tranche/core";
import { ATTR } from "./names.js";
import type { Recorder } from "./recorder.js";

/** Who runs the handler: a Worker (items settle on a transport) or batched() (in process). */
export type HandlerHost = "worker" | "batched";

/**
 * The handler in a `process` span (kind CONSUMER, the root of a trace) per batch, linked to each
 * item's producer context, and the batch's metrics: its size and flush reason, each item's wait in the buffer,
 * the handler's duration. Under a Worker each item's id keeps the span's context until the item
 * settles, as the parent of its settle span. `now` is the clock of the Batcher that stamped
 * `enqueuedAt`.
 */
export function traceHandler<T, R>(handler: BatchHandler<T, R>, recorder: Recorder, host: HandlerHost, now: () => number): BatchHandler<T, R> {
  return async function traced(requests: BatchRequest<T, R>[], batch: BatchContext): Promise<(R | Error)[] | void> {
    const { instruments, tracer } = recorder;
    const base = recorder.attributes();
    const reason = recorder.attributesWith(`reason:${batch.reason}`, () => ({ [ATTR.flushReason]: batch.reason }));
    instruments.batches.add(1, batch.reason, { [ATTR.flushReason]: batch.reason });
    instruments.batchSize.record(requests.length, reason);
    const durations = recorder.itemDurations;
    const at = durations ? now() : 0;
    const links: Link[] = [];
    for (const request of requests) {
      if (durations) instruments.waitDuration.record(Math.max(0, at - request.enqueuedAt) / 1000, base);
      const link = recorder.linkOf(request.headers, request.id);
      if (link !== undefined) links.push(link);
    }
    const attributes: Attributes = {
      ...reason,
      [ATTR.operationType]: "process",
      [ATTR.operationName]: "process",
      [ATTR.batchCount]: requests.length,
      [ATTR.batchId]: batch.batchId,
    };
    if (batch.group !== undefined) attributes[ATTR.group] = batch.group;
    if (requests.length === 1) attributes[ATTR.messageId] = (requests[0] as BatchRequest<T, R>).id;
    // A trace of its own: whatever context is active here (the worker's start, the call that filled the batch) is no parent of the batch.
    const span = tracer.startSpan(recorder.spanName("process"), { kind: SpanKind.CONSUMER, links, attributes }, ROOT_CONTEXT);
    const active = trace.setSpan(ROOT_CONTEXT, span);
    if (host === "worker") for (const request of requests) recorder.processes.set(request.id, active);
    const started = performance.now();
    let failure: string | undefined;
    try {
      return await context.with(active, () => handler(requests, batch));
    } catch (error) {
      failure = recorder.fail(span, error);
      throw error;
    } finally {
      span.end();
      instruments.processDuration.record((performance.now() - started) / 1000, failure === undefined ? base : { ...base, [ATTR.errorType]: failure });
    }
  };
}
