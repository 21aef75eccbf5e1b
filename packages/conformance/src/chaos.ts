import { appendFileSync, existsSync, readFileSync } from "node:fs";
import type { BatchHandler, Delivery, Transport } from "@tranche/core";

/**
 * What a worker process records during a chaos run, one JSON line each. Outcome events are
 * written only once the transport call resolved: an outcome is "confirmed" from that moment.
 */
export type ChaosEvent =
  /** The handler was handed the item. */
  | { readonly e: "run"; readonly id: string; readonly attempt: number; readonly t: number; readonly pid: number }
  /** The handler returned (its outcomes go to the transport next). */
  | { readonly e: "handled"; readonly ids: readonly string[]; readonly t: number; readonly pid: number }
  /** The worker asked the transport to retry the item, not before `notBefore`. */
  | { readonly e: "retrying"; readonly id: string; readonly notBefore: number; readonly t: number; readonly pid: number }
  | { readonly e: "ack"; readonly ids: readonly string[]; readonly t: number; readonly pid: number }
  | { readonly e: "retry"; readonly id: string; readonly notBefore: number; readonly t: number; readonly pid: number }
  | { readonly e: "deadLetter"; readonly id: string; readonly reason: string; readonly t: number; readonly pid: number };

export type Record = (event: ChaosEvent) => void;

/** The transport, with every confirmed outcome and every retry request recorded. */
export function recordOutcomes<T>(transport: Transport<T>, record: Record): Transport<T> {
  const pid = process.pid;
  const extend = transport.extend;
  return {
    name: transport.name,
    capabilities: transport.capabilities,
    send: (payload, options) => transport.send(payload, options),
    sendMany: (payloads, options) => transport.sendMany(payloads, options),
    receive: (max, signal) => transport.receive(max, signal),
    async ack(deliveries: Delivery<T>[]): Promise<void> {
      await transport.ack(deliveries);
      if (deliveries.length > 0) record({ e: "ack", ids: deliveries.map((d) => d.id), t: Date.now(), pid });
    },
    async retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
      record({ e: "retrying", id: delivery.id, notBefore, t: Date.now(), pid });
      await transport.retry(delivery, notBefore);
      record({ e: "retry", id: delivery.id, notBefore, t: Date.now(), pid });
    },
    async deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
      await transport.deadLetter(delivery, reason);
      record({ e: "deadLetter", id: delivery.id, reason: `${reason.name}: ${reason.message}`, t: Date.now(), pid });
    },
    ...(extend === undefined ? {} : { extend: (deliveries: Delivery<T>[], until: number) => extend.call(transport, deliveries, until) }),
    release: (deliveries) => transport.release(deliveries),
    close: () => transport.close(),
  };
}

/** The handler, with every item it is handed recorded first, and the batch recorded again once the handler returned. */
export function recordRuns<T, R>(handler: BatchHandler<T, R>, record: Record): BatchHandler<T, R> {
  const pid = process.pid;
  return async (requests, context) => {
    const t = Date.now();
    for (const request of requests) record({ e: "run", id: request.id, attempt: request.attempt, t, pid });
    const returned = await handler(requests, context);
    record({ e: "handled", ids: requests.map((request) => request.id), t: Date.now(), pid });
    return returned;
  };
}

/** Appends each event to `path` as a JSON line, synchronously: what was recorded survives a SIGKILL. */
export function fileRecorder(path: string): Record {
  return (event) => appendFileSync(path, `${JSON.stringify(event)}\n`);
}

/** The events of every file (a missing file has none); a torn last line (a SIGKILL mid-write) is skipped. */
export function readEvents(paths: readonly string[]): ChaosEvent[] {
  const events: ChaosEvent[] = [];
  for (const path of paths) {
    if (!existsSync(path)) continue;
    for (const line of readFileSync(path, "utf8").split("\n")) {
      if (line === "") continue;
      try {
        events.push(JSON.parse(line) as ChaosEvent);
      } catch {
        // Only the line being written when the process was killed can be torn.
      }
    }
  }
  return events;
}

export interface ChaosInput {
  /** Ids of the decodable items sent. */
  readonly sent: readonly string[];
  /** Ids among them whose handler retries them once. */
  readonly retryOnce: readonly string[];
  /** Ids of the undecodable messages sent. */
  readonly garbage: readonly string[];
  readonly events: readonly ChaosEvent[];
  /** The broker's dead letters at the end. */
  readonly deadLetters: readonly { readonly id: string; readonly reason: string }[];
  /** Messages left on the broker at the end: ready, delayed and unacked. */
  readonly remaining: number;
  /** Results a producer awaited, and how many of those waits resolved. */
  readonly results?: { readonly awaited: number; readonly resolved: number };
  /** ms a run may start before a retry's `notBefore` without counting as early (clock granularity). @default 5 */
  readonly tolerance?: number;
}

export interface ChaosFigures {
  readonly sent: number;
  /** Handler runs in all. */
  readonly runs: number;
  /** Items with no confirmed ack, no dead letter, and no run whose handler returned. */
  readonly lost: number;
  /**
   * Items whose handler returned but whose outcome was never confirmed: settled by a call
   * whose reply was lost (a killed worker's last ack). Fine when the broker is empty.
   */
  readonly unconfirmed: number;
  /** Runs beyond the first run and one run per confirmed retry. */
  readonly duplicates: number;
  /** Duplicates whose previous run had no confirmed outcome when they started. */
  readonly duplicatesInDoubt: number;
  /** `duplicates` per item sent. */
  readonly duplicateRate: number;
  /** Items with a confirmed retry. */
  readonly retried: number;
  /** Runs that started before the `notBefore` of a retry asked earlier. */
  readonly earlyRuns: number;
  readonly deadLetters: number;
  readonly garbageDeadLettered: number;
  /** Dead letters of ids that are not garbage. */
  readonly unexpectedDeadLetters: number;
  readonly remaining: number;
  readonly resultsAwaited: number;
  readonly resultsResolved: number;
}

/** At most this share of the items may run twice (each in doubt). */
export const MAX_DUPLICATE_RATE = 0.02;

interface ItemLog {
  runs: number[];
  /** Confirmation times of acks and dead letters. */
  settled: number[];
  /** Times the handler returned with the item. */
  handled: number[];
  /** Confirmed retries. */
  retries: number[];
  /** Retries asked: `[asked at, notBefore]`. */
  asked: [number, number][];
}

/**
 * Checks a chaos run against SPEC §10: nothing lost; an item runs again only when the outcome
 * of its previous run was in doubt (not confirmed when the re-run started), on at most 2 % of
 * the items; no run before the `notBefore` of a retry asked before it; every undecodable message
 * dead-lettered and nothing else; the broker empty; every awaited result resolved.
 */
export function analyseChaos(input: ChaosInput): { figures: ChaosFigures; violations: string[] } {
  const tolerance = input.tolerance ?? 5;
  const violations: string[] = [];
  const logs = new Map<string, ItemLog>();
  const log = (id: string): ItemLog => {
    let entry = logs.get(id);
    if (entry === undefined) logs.set(id, (entry = { runs: [], settled: [], handled: [], retries: [], asked: [] }));
    return entry;
  };
  for (const event of input.events) {
    if (event.e === "run") log(event.id).runs.push(event.t);
    else if (event.e === "ack") for (const id of event.ids) log(id).settled.push(event.t);
    else if (event.e === "handled") for (const id of event.ids) log(id).handled.push(event.t);
    else if (event.e === "deadLetter") log(event.id).settled.push(event.t);
    else if (event.e === "retry") log(event.id).retries.push(event.t);
    else log(event.id).asked.push([event.t, event.notBefore]);
  }
  const garbage = new Set(input.garbage);
  const lettered = new Set(input.deadLetters.map((letter) => letter.id));
  let runs = 0;
  let lost = 0;
  let unconfirmed = 0;
  let duplicates = 0;
  let duplicatesInDoubt = 0;
  let retried = 0;
  let earlyRuns = 0;
  const report = (message: string): void => {
    if (violations.length < 50) violations.push(message);
  };
  for (const id of input.sent) {
    const item = logs.get(id);
    if (item === undefined || (item.settled.length === 0 && !lettered.has(id) && item.handled.length === 0)) {
      lost++;
      report(`${id}: lost (${item?.runs.length ?? 0} runs, none returned; never acked nor dead-lettered)`);
      continue;
    }
    if (item.settled.length === 0 && !lettered.has(id)) unconfirmed++;
    const times = [...item.runs].sort((a, b) => a - b);
    runs += times.length;
    if (item.retries.length > 0) retried++;
    for (let k = 0; k < times.length; k++) {
      const t = times[k] as number;
      for (const [askedAt, notBefore] of item.asked) {
        if (askedAt < t && t < notBefore - tolerance) {
          earlyRuns++;
          report(`${id}: ran at ${t}, ${notBefore - t} ms before the notBefore of a retry asked at ${askedAt}`);
        }
      }
      if (k === 0) continue;
      const expected = 1 + item.retries.filter((r) => r < t).length;
      if (k < expected) continue;
      duplicates++;
      const settledBefore = item.settled.some((s) => s < t);
      if (!settledBefore) duplicatesInDoubt++;
      else report(`${id}: ran again at ${t} after its outcome was confirmed`);
    }
  }
  for (const id of input.retryOnce) {
    const item = logs.get(id);
    if (item !== undefined && item.runs.length > 0 && item.retries.length === 0 && item.asked.length === 0) {
      report(`${id}: its handler should have retried it, but no retry was asked`);
    }
  }
  let garbageDeadLettered = 0;
  let unexpectedDeadLetters = 0;
  for (const id of lettered) {
    if (garbage.has(id)) garbageDeadLettered++;
    else {
      unexpectedDeadLetters++;
      report(`${id}: in the dead letters but not undecodable (${input.deadLetters.find((l) => l.id === id)?.reason ?? ""})`);
    }
  }
  for (const id of garbage) if (!lettered.has(id)) report(`${id}: undecodable, but not in the dead letters`);
  const sent = input.sent.length;
  const duplicateRate = sent === 0 ? 0 : duplicates / sent;
  if (duplicateRate > MAX_DUPLICATE_RATE) report(`duplicates ${duplicates} of ${sent} items (${(duplicateRate * 100).toFixed(2)} %) exceed ${MAX_DUPLICATE_RATE * 100} %`);
  if (input.remaining !== 0) report(`${input.remaining} messages left on the broker`);
  const results = input.results ?? { awaited: 0, resolved: 0 };
  if (results.resolved !== results.awaited) report(`${results.awaited - results.resolved} of ${results.awaited} awaited results never resolved`);
  return {
    figures: {
      sent,
      runs,
      lost,
      unconfirmed,
      duplicates,
      duplicatesInDoubt,
      duplicateRate,
      retried,
      earlyRuns,
      deadLetters: lettered.size,
      garbageDeadLettered,
      unexpectedDeadLetters,
      remaining: input.remaining,
      resultsAwaited: results.awaited,
      resultsResolved: results.resolved,
    },
    violations,
  };
}

/** The figures of a chaos run as a block of text for the test's output. */
export function formatChaos(name: string, f: ChaosFigures): string {
  return [
    `chaos ${name}:`,
    `  sent ${f.sent}, runs ${f.runs}, lost ${f.lost} (returned but unconfirmed ${f.unconfirmed})`,
    `  duplicates ${f.duplicates} (${(f.duplicateRate * 100).toFixed(2)} %), in doubt ${f.duplicatesInDoubt}`,
    `  retried ${f.retried}, runs before notBefore ${f.earlyRuns}`,
    `  dead letters ${f.deadLetters}: undecodable ${f.garbageDeadLettered}, other ${f.unexpectedDeadLetters}`,
    `  left on the broker ${f.remaining}, results resolved ${f.resultsResolved} of ${f.resultsAwaited}`,
  ].join("\n");
}
