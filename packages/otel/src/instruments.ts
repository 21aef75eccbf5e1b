import type { Histogram, Meter, ObservableGauge } from "@opentelemetry/api";
import { Tally } from "./tally.js";

/** The conventions' advised buckets for messaging durations, in s. */
const OPERATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** An item's wait and its time to settle span retries and delays: up to ten minutes, in s. */
const ITEM_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const SIZE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/** Every instrument `TrancheTelemetry` records to; the README lists them with their units. Counters are tallies (see `Tally`). */
export interface Instruments {
  readonly sent: Tally;
  readonly consumed: Tally;
  readonly received: Tally;
  readonly acked: Tally;
  readonly retried: Tally;
  readonly deadLettered: Tally;
  readonly failed: Tally;
  readonly batches: Tally;
  readonly transportErrors: Tally;
  readonly operationDuration: Histogram;
  readonly processDuration: Histogram;
  readonly batchSize: Histogram;
  readonly waitDuration: Histogram;
  readonly settleDuration: Histogram;
  readonly held: ObservableGauge;
  readonly inFlight: ObservableGauge;
  readonly inFlightBatches: ObservableGauge;
}

export function createInstruments(meter: Meter): Instruments {
  const counter = (name: string, unit: string, description: string) => new Tally(meter.createObservableCounter(name, { unit, description }));
  const histogram = (name: string, unit: string, description: string, buckets: number[]) =>
    meter.createHistogram(name, { unit, description, advice: { explicitBucketBoundaries: buckets } });
  const gauge = (name: string, unit: string, description: string) => meter.createObservableGauge(name, { unit, description });
  return {
    sent: counter("messaging.client.sent.messages", "{message}", "Messages a traced transport sent (send, sendMany)."),
    consumed: counter("messaging.client.consumed.messages", "{message}", "Messages a traced transport's receive handed to the worker."),
    received: counter("tranche.items.received", "{item}", "Items that entered the buffer: a Worker's deliveries, batched()'s calls."),
    acked: counter("tranche.items.acked", "{item}", "Items acked: confirmed by the transport (Worker), resolved (batched())."),
    retried: counter("tranche.items.retried", "{item}", "Items sent back for another try: confirmed by the transport (Worker), retried (batched())."),
    deadLettered: counter("tranche.items.dead_lettered", "{item}", "Items dead-lettered, confirmed by the transport; error.type is the reason's name."),
    failed: counter("tranche.items.failed", "{item}", "batched() calls that rejected."),
    batches: counter("tranche.batches", "{batch}", "Batches handed to the handler, by flush reason."),
    transportErrors: counter("tranche.transport.errors", "{error}", "Failed transport and result-store calls of a Worker, by operation and retryability."),
    operationDuration: histogram("messaging.client.operation.duration", "s", "Duration of transport calls: send and the settle calls (ack, retry, dead_letter, release).", OPERATION_BUCKETS),
    processDuration: histogram("messaging.process.duration", "s", "Duration of the handler's run on one batch.", OPERATION_BUCKETS),
    batchSize: histogram("tranche.batch.size", "{item}", "Items per batch, by flush reason.", SIZE_BUCKETS),
    waitDuration: histogram("tranche.item.wait.duration", "s", "Time an item spent in the buffer before its batch started (delays included).", ITEM_BUCKETS),
    settleDuration: histogram(
      "tranche.item.settle.duration",
      "s",
      "Time from an item's send (its x-tranche-sent-at header) or batched() call to its settle, retries included; tranche.outcome says how it settled.",
      ITEM_BUCKETS,
    ),
    held: gauge("tranche.items.held", "{item}", "Items buffered (eligible or delayed), not in flight."),
    inFlight: gauge("tranche.items.in_flight", "{item}", "Unsettled items of batches in flight."),
    inFlightBatches: gauge("tranche.batches.in_flight", "{batch}", "Batches whose handler runs or whose items are not all settled."),
  };
}
