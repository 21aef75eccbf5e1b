import { type Attributes, ROOT_CONTEXT, SpanKind, context, trace } from "@opentelemetry/api";
import { type Delivery, type SendOptions, type Transport, TransportError } from "@tranche/core";
import { ATTR, MAX_REASON, SENT_AT, SYSTEMS } from "./names.js";
import { type Recorder, headerSetter } from "./recorder.js";

type SettleOperation = "ack" | "retry" | "dead_letter" | "release";

/**
 * `transport` with its sends traced (a `send` span, kind PRODUCER, whose context goes into the
 * message's headers with the send time) and its settle calls traced (`ack`, `retry`,
 * `dead_letter`, `release` spans, kind CLIENT, children of the item's `process` span), and their
 * metrics recorded. Every other property is the transport's own, so transport-specific methods
 * (`sendRaw`, `keys`, …) still work on it.
 */
export function traceTransport<X extends Transport<any>>(transport: X, recorder: Recorder): X {
  recorder.noteSystem(SYSTEMS[transport.name] ?? transport.name);
  type T = X extends Transport<infer P> ? P : never;
  const own: Partial<Transport<T>> = {
    send: (payload, options) => send(recorder, options, 1, (o) => transport.send(payload, o)),
    sendMany: (payloads, options) => send(recorder, options, Array.isArray(payloads) ? payloads.length : 0, (o) => transport.sendMany(payloads, o)),
    async receive(max, signal) {
      const got = await transport.receive(max, signal);
      if (got.length > 0) {
        recorder.instruments.consumed.add(got.length, "receive", { [ATTR.operationName]: "receive" });
        recorder.instruments.received.add(got.length);
      }
      return got;
    },
    ack: (deliveries) => settle(recorder, "ack", deliveries, {}, () => transport.ack(deliveries)),
    retry: (delivery, notBefore) => settle(recorder, "retry", [delivery], { [ATTR.notBefore]: notBefore }, () => transport.retry(delivery, notBefore)),
    deadLetter: (delivery, reason) => settle(recorder, "dead_letter", [delivery], reasonAttributes(reason), () => transport.deadLetter(delivery, reason)),
    release: (deliveries) => settle(recorder, "release", deliveries, {}, () => transport.release(deliveries)),
  };
  const bound = new Map<PropertyKey, { source: unknown; fn: unknown }>();
  return new Proxy(transport, {
    get(target, key) {
      if (Object.hasOwn(own, key)) return own[key as keyof typeof own];
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      // Bound to the transport itself: its methods may use private fields, which a proxy lacks.
      const known = bound.get(key);
      if (known?.source === value) return known.fn;
      const fn = (value as (...args: unknown[]) => unknown).bind(target);
      bound.set(key, { source: value, fn });
      return fn;
    },
  });
}

function reasonAttributes(reason: unknown): Attributes {
  const error = reason as { name?: unknown; message?: unknown } | null;
  return {
    [ATTR.deadLetterReason]: typeof error?.name === "string" ? error.name : "Error",
    [ATTR.deadLetterMessage]: String(error?.message ?? reason).slice(0, MAX_REASON),
  };
}

/** A traced `send` or `sendMany`: the span's context and the send time go into the headers (a context the producer set is kept). */
async function send<V>(recorder: Recorder, options: SendOptions | undefined, count: number, call: (options: SendOptions | undefined) => Promise<V>): Promise<V> {
  const given = options?.headers;
  // Not headers at all: the transport refuses them, untraced.
  if (given !== undefined && (typeof given !== "object" || given === null)) return call(options);
  const operation = recorder.attributesWith("operation:send", () => ({ [ATTR.operationName]: "send" }));
  const attributes: Attributes = { ...operation, [ATTR.operationType]: "send" };
  if (count !== 1) attributes[ATTR.batchCount] = count;
  const span = recorder.tracer.startSpan(recorder.spanName("send"), { kind: SpanKind.PRODUCER, attributes }, context.active());
  const active = trace.setSpan(context.active(), span);
  const headers: Record<string, string> = { ...given };
  if (!recorder.hasContext(headers)) recorder.propagator.inject(active, headers, headerSetter);
  headers[SENT_AT] ??= String(recorder.now());
  const started = performance.now();
  let failure: string | undefined;
  try {
    const result = await context.with(active, () => call({ ...options, headers }));
    if (typeof result === "string") span.setAttribute(ATTR.messageId, result);
    return result;
  } catch (error) {
    failure = recorder.fail(span, error);
    throw error;
  } finally {
    span.end();
    const recorded = failure === undefined ? operation : { ...operation, [ATTR.errorType]: failure };
    recorder.instruments.sent.add(count, failure === undefined ? "send" : `send ${failure}`, { [ATTR.operationName]: "send", ...(failure === undefined ? {} : { [ATTR.errorType]: failure }) });
    recorder.instruments.operationDuration.record((performance.now() - started) / 1000, recorded);
  }
}

/**
 * A traced settle call, a child of the items' `process` span. What the transport confirmed is
 * counted: acked, retried, dead-lettered (by the reason's name), and for acks and dead letters
 * each item's time from its send.
 */
async function settle(recorder: Recorder, operation: SettleOperation, deliveries: readonly Delivery<unknown>[], extra: Attributes, call: () => Promise<void>): Promise<void> {
  let recorded = recorder.attributesWith(`operation:${operation}`, () => ({ [ATTR.operationName]: operation }));
  const attributes: Attributes = { ...recorded, [ATTR.operationType]: "settle", ...extra };
  const [first] = deliveries;
  if (deliveries.length === 1 && first !== undefined) {
    attributes[ATTR.messageId] = first.id;
    attributes[ATTR.attempt] = first.attempt;
  } else {
    attributes[ATTR.batchCount] = deliveries.length;
  }
  const parent = processOf(recorder, deliveries) ?? ROOT_CONTEXT;
  const span = recorder.tracer.startSpan(recorder.spanName(operation), { kind: SpanKind.CLIENT, attributes }, parent);
  const started = performance.now();
  let failure: unknown;
  let failed = false;
  try {
    await call();
    confirmed(recorder, operation, deliveries, extra);
  } catch (error) {
    failed = true;
    failure = error;
    const type = recorder.fail(span, error);
    recorded = { ...recorded, [ATTR.errorType]: type };
    if (TransportError.isInstance(error)) span.setAttribute(ATTR.retryable, (error as TransportError).retryable);
    throw error;
  } finally {
    span.end();
    recorder.instruments.operationDuration.record((performance.now() - started) / 1000, recorded);
    // A call the worker will repeat keeps its parent; otherwise the items are done with it.
    if (!failed || !(TransportError.isInstance(failure) && (failure as TransportError).retryable)) {
      for (const delivery of deliveries) recorder.processes.delete(delivery.id);
    }
  }
}

function processOf(recorder: Recorder, deliveries: readonly Delivery<unknown>[]) {
  for (const delivery of deliveries) {
    const found = recorder.processes.get(delivery.id);
    if (found !== undefined) return found;
  }
  return undefined;
}

function confirmed(recorder: Recorder, operation: SettleOperation, deliveries: readonly Delivery<unknown>[], extra: Attributes): void {
  const { instruments } = recorder;
  if (operation === "retry") {
    instruments.retried.add(deliveries.length);
    return;
  }
  if (operation === "release") return;
  if (operation === "ack") {
    instruments.acked.add(deliveries.length);
  } else {
    const reason = extra[ATTR.deadLetterReason] as string;
    instruments.deadLettered.add(deliveries.length, reason, { [ATTR.errorType]: reason });
  }
  if (!recorder.itemDurations) return;
  const outcome = recorder.outcome(operation === "ack" ? "ack" : "dead_letter");
  const now = recorder.now();
  for (const delivery of deliveries) {
    const sentAt = recorder.sentAt(delivery.headers);
    if (sentAt !== undefined) instruments.settleDuration.record(Math.max(0, now - sentAt) / 1000, outcome);
  }
}
