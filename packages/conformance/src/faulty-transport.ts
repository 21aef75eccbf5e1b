import { type DeadLetter, type DeadLetterPage, type Delivery, type QueueDepth, type SendOptions, type Transport, type TransportCapabilities, TransportError } from "@tranche/core";
import { PREFIX } from "./options.js";

/** The transport calls a fault can be injected into (the `QueueAdmin` calls that change the queue included). */
export type FaultOperation = "send" | "sendMany" | "receive" | "ack" | "retry" | "deadLetter" | "extend" | "release" | "redrive" | "purgeDeadLetters";

export const faultOperations: readonly FaultOperation[] = ["send", "sendMany", "receive", "ack", "retry", "deadLetter", "extend", "release", "redrive", "purgeDeadLetters"];

/**
 * What an injected fault does to a call:
 * - `fail`: rejects with a retryable `TransportError` without reaching the broker;
 * - `lost-reply`: reaches the broker, which applies it, then rejects with a retryable
 *   `TransportError` (the reply was lost);
 * - `hang`: never settles and never reaches the broker (the request was lost);
 * - `hang-after`: reaches the broker, which applies it, and never settles;
 * - `fatal`: rejects with a non-retryable `TransportError` without reaching the broker.
 */
export type FaultKind = "fail" | "lost-reply" | "hang" | "hang-after" | "fatal";

export const faultKinds: readonly FaultKind[] = ["fail", "lost-reply", "hang", "hang-after", "fatal"];

/** A call as a fault rule's `when` sees it, before it runs. */
export interface FaultCallInfo {
  readonly op: FaultOperation;
  /** 1 for the first call of `op` through this wrapper, 2 for the next... */
  readonly nth: number;
  /** Ids the call is about: its deliveries', the `id` option of a `send`, the ids of a `redrive` or `purgeDeadLetters` (none for `receive` or `"all"`). */
  readonly ids: readonly string[];
  /** `attempt` of each delivery the call is about. */
  readonly attempts: readonly number[];
}

/** One call through the wrapper and what became of it. */
export interface FaultCall extends FaultCallInfo {
  /** Place of the call's start in the shared sequence (see `FaultyTransportOptions.sequence`). */
  readonly seq: number;
  /** `now()` when the call started. */
  readonly at: number;
  /** For `retry`: the `notBefore` asked for. */
  readonly notBefore: number | undefined;
  /** The fault injected into this call, if any. */
  readonly fault: FaultKind | undefined;
  /**
   * What the broker did: `"skipped"` (the call never reached it), `"pending"`, `"resolved"`
   * (it applied the call) or `"rejected"`.
   */
  broker: "skipped" | "pending" | "resolved" | "rejected";
  /** What the caller saw: `"pending"` (a hung call stays so), `"resolved"` or `"rejected"`. */
  caller: "pending" | "resolved" | "rejected";
  /** Place in the shared sequence where the caller saw it settle; undefined while pending. */
  settledSeq: number | undefined;
  /** The ids a `receive` got from the broker, or the ids `send` / `sendMany` enqueued. */
  result: readonly string[];
}

/** Which calls a fault applies to. */
export interface FaultSchedule {
  /** How many calls it applies to, then it is spent. @default Infinity (until removed or `heal()`) */
  count?: number;
  /** Applies only to calls for which this holds (a spent count is not used on the others). */
  when?: (call: FaultCallInfo) => boolean;
}

/** An injected fault; `remove()` stops it. */
export interface InjectedFault {
  readonly ops: readonly FaultOperation[];
  readonly kind: FaultKind;
  /** Calls it has applied to so far. */
  readonly hits: number;
  /** Whether it still applies to calls (not removed, count not spent). */
  readonly active: boolean;
  remove(): void;
}

export interface FaultyTransportOptions {
  /**
   * Numbers events in one sequence shared with the caller's own records (a test numbering
   * handler runs on the same counter can order them against calls). @default a counter of its own
   */
  sequence?: () => number;
  /** Time stamps of `FaultCall.at`. @default Date.now */
  now?: () => number;
}

class Fault implements InjectedFault {
  hits = 0;
  removed = false;

  constructor(
    readonly ops: readonly FaultOperation[],
    readonly kind: FaultKind,
    private readonly count: number,
    private readonly when: ((call: FaultCallInfo) => boolean) | undefined,
  ) {}

  get active(): boolean {
    return !this.removed && this.hits < this.count;
  }

  applies(call: FaultCallInfo): boolean {
    return this.active && this.ops.includes(call.op) && (this.when === undefined || this.when(call));
  }

  remove(): void {
    this.removed = true;
  }
}

/** The ids and attempts of the deliveries a call is about. */
function deliveryCall(deliveries: readonly Delivery<unknown>[]): { ids: string[]; attempts: number[] } {
  if (!Array.isArray(deliveries)) return { ids: [], attempts: [] };
  return { ids: deliveries.map((d) => d?.id), attempts: deliveries.map((d) => d?.attempt) };
}

/** The ids of a `redrive` or `purgeDeadLetters` call (none for `"all"`). */
function idsCall(ids: readonly string[] | "all"): { ids: string[]; attempts: number[] } {
  return { ids: Array.isArray(ids) ? [...ids] : [], attempts: [] };
}

/**
 * A `Transport` wrapper that injects call faults (see `FaultKind`) into chosen operations and
 * records every call: what the caller saw and what reached the broker. A `Worker` over it meets
 * the faults a network gives it — a call refused, a reply lost, a call that never returns —
 * on any transport, without a network.
 *
 * ```ts
 * const faulty = injectFaults(transport);
 * faulty.inject("ack", "lost-reply", { count: 2 });          // the next two acks
 * faulty.inject(["retry", "deadLetter"], "hang");             // every one, until heal()
 * faulty.inject("ack", "fail", { when: (c) => c.ids.includes(id) });
 * faulty.heal();                                              // faults stop
 * ```
 */
export class FaultyTransport<T> implements Transport<T> {
  readonly calls: FaultCall[] = [];
  /** Present when the wrapped transport has it. */
  readonly extend?: (deliveries: Delivery<T>[], until: number) => Promise<void>;
  /** Present when the wrapped transport has it; never faulted (it changes nothing). */
  readonly depth?: () => Promise<QueueDepth>;
  /** Present when the wrapped transport has it; never faulted (it changes nothing). */
  readonly deadLetters?: (options?: DeadLetterPage) => Promise<DeadLetter<T>[]>;
  /** Present when the wrapped transport has it. */
  readonly redrive?: (ids: readonly string[] | "all", options?: { delay?: number }) => Promise<number>;
  /** Present when the wrapped transport has it. */
  readonly purgeDeadLetters?: (ids: readonly string[] | "all") => Promise<number>;
  private faults: Fault[] = [];
  private readonly counts = new Map<FaultOperation, number>();
  private readonly sequence: () => number;
  private readonly now: () => number;

  constructor(
    readonly inner: Transport<T>,
    options: FaultyTransportOptions = {},
  ) {
    if (typeof inner !== "object" || inner === null || typeof inner.receive !== "function") {
      throw new TypeError(`${PREFIX} Expected \`transport\` to be a Transport, got ${String(inner)}`);
    }
    let own = 0;
    this.sequence = options.sequence ?? (() => ++own);
    this.now = options.now ?? Date.now;
    const extend = inner.extend;
    if (typeof extend === "function") {
      this.extend = (deliveries, until) => this.through("extend", deliveryCall(deliveries), undefined, () => extend.call(inner, deliveries, until));
    }
    const { depth, deadLetters, redrive, purgeDeadLetters } = inner;
    if (typeof depth === "function") this.depth = () => depth.call(inner);
    if (typeof deadLetters === "function") this.deadLetters = (page) => deadLetters.call(inner, page);
    if (typeof redrive === "function") {
      this.redrive = (ids, options) => this.through("redrive", idsCall(ids), undefined, () => redrive.call(inner, ids, options));
    }
    if (typeof purgeDeadLetters === "function") {
      this.purgeDeadLetters = (ids) => this.through("purgeDeadLetters", idsCall(ids), undefined, () => purgeDeadLetters.call(inner, ids));
    }
  }

  get name(): string {
    return `faulty ${this.inner.name}`;
  }

  get capabilities(): TransportCapabilities {
    return this.inner.capabilities;
  }

  /** Injects `kind` into calls of `op` (one or several), as `schedule` says; every call when no schedule. */
  inject(op: FaultOperation | readonly FaultOperation[], kind: FaultKind, schedule: FaultSchedule = {}): InjectedFault {
    const ops = typeof op === "string" ? [op] : [...op];
    for (const o of ops) if (!faultOperations.includes(o)) throw new TypeError(`${PREFIX} Expected \`op\` to be one of ${faultOperations.join(", ")}, got ${JSON.stringify(o)}`);
    if (!faultKinds.includes(kind)) throw new TypeError(`${PREFIX} Expected \`kind\` to be one of ${faultKinds.join(", ")}, got ${JSON.stringify(kind)}`);
    const count = schedule.count ?? Infinity;
    if (!(count >= 0) || (count !== Infinity && !Number.isInteger(count))) throw new TypeError(`${PREFIX} Expected \`count\` to be an integer ≥ 0, got ${String(count)}`);
    const fault = new Fault(ops, kind, count, schedule.when);
    this.faults.push(fault);
    return fault;
  }

  /** Removes every fault: from now on each call goes through. Calls already hung stay hung. */
  heal(): void {
    for (const fault of this.faults) fault.remove();
    this.faults = [];
  }

  /** Whether any injected fault still applies to calls. */
  get faulting(): boolean {
    return this.faults.some((f) => f.active);
  }

  /** Ids of calls of `op` the broker applied (it resolved), whatever the caller saw. */
  applied(op: FaultOperation): string[] {
    return this.calls.filter((c) => c.op === op && c.broker === "resolved").flatMap((c) => (c.op === "receive" || c.op.startsWith("send") ? c.result : c.ids));
  }

  /** Ids of calls of `op` whose caller saw them succeed. */
  confirmed(op: FaultOperation): string[] {
    return this.calls.filter((c) => c.op === op && c.caller === "resolved").flatMap((c) => (c.op === "receive" || c.op.startsWith("send") ? c.result : c.ids));
  }

  send(payload: T, options?: SendOptions): Promise<string> {
    const id = typeof options?.id === "string" ? [options.id] : [];
    return this.through("send", { ids: id, attempts: [] }, undefined, () => this.inner.send(payload, options), (sent) => [sent]);
  }

  sendMany(payloads: T[], options?: { delay?: number }): Promise<string[]> {
    return this.through("sendMany", { ids: [], attempts: [] }, undefined, () => this.inner.sendMany(payloads, options), (sent) => sent);
  }

  receive(max: number, signal: AbortSignal): Promise<Delivery<T>[]> {
    return this.through("receive", { ids: [], attempts: [] }, undefined, () => this.inner.receive(max, signal), (got) => (Array.isArray(got) ? got.map((d) => d.id) : []));
  }

  ack(deliveries: Delivery<T>[]): Promise<void> {
    return this.through("ack", deliveryCall(deliveries), undefined, () => this.inner.ack(deliveries));
  }

  retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    return this.through("retry", deliveryCall([delivery]), notBefore, () => this.inner.retry(delivery, notBefore));
  }

  deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    return this.through("deadLetter", deliveryCall([delivery]), undefined, () => this.inner.deadLetter(delivery, reason));
  }

  release(deliveries: Delivery<T>[]): Promise<void> {
    return this.through("release", deliveryCall(deliveries), undefined, () => this.inner.release(deliveries));
  }

  /** Closes the wrapped transport; never faulted. */
  close(): Promise<void> {
    return this.inner.close();
  }

  private through<V>(
    op: FaultOperation,
    about: { ids: string[]; attempts: number[] },
    notBefore: number | undefined,
    call: () => Promise<V>,
    resultIds: (value: V) => string[] = () => [],
  ): Promise<V> {
    const nth = (this.counts.get(op) ?? 0) + 1;
    this.counts.set(op, nth);
    const info: FaultCallInfo = { op, nth, ids: about.ids, attempts: about.attempts };
    const fault = this.faults.find((f) => f.applies(info));
    if (fault !== undefined) fault.hits++;
    const kind = fault?.kind;
    const reaches = kind === undefined || kind === "lost-reply" || kind === "hang-after";
    const record: FaultCall = {
      ...info,
      seq: this.sequence(),
      at: this.now(),
      notBefore,
      fault: kind,
      broker: reaches ? "pending" : "skipped",
      caller: "pending",
      settledSeq: undefined,
      result: [],
    };
    this.calls.push(record);
    const settle = (caller: "resolved" | "rejected"): void => {
      record.caller = caller;
      record.settledSeq = this.sequence();
    };
    if (kind === "fail" || kind === "fatal") {
      settle("rejected");
      return Promise.reject(this.error(op, kind));
    }
    if (kind === "hang") return new Promise<V>(() => {});
    let reached: Promise<V>;
    try {
      reached = Promise.resolve(call());
    } catch (error) {
      reached = Promise.reject(error);
    }
    const broker = reached.then(
      (value) => {
        record.broker = "resolved";
        record.result = resultIds(value);
        return value;
      },
      (error: unknown) => {
        record.broker = "rejected";
        throw error;
      },
    );
    if (kind === "hang-after") {
      broker.catch(() => {});
      return new Promise<V>(() => {});
    }
    if (kind === "lost-reply") {
      return broker.then(
        () => {
          settle("rejected");
          throw this.error(op, kind);
        },
        (error: unknown) => {
          settle("rejected");
          throw error;
        },
      );
    }
    return broker.then(
      (value) => {
        settle("resolved");
        return value;
      },
      (error: unknown) => {
        settle("rejected");
        throw error;
      },
    );
  }

  private error(op: FaultOperation, kind: "fail" | "lost-reply" | "fatal"): TransportError {
    const what = kind === "fail" ? "failed before reaching the broker" : kind === "lost-reply" ? "reply lost after the broker applied it" : "rejected, not retryable";
    return new TransportError(`${PREFIX} injected fault: ${op} ${what}`, { retryable: kind !== "fatal" });
  }
}

/** Wraps `transport` in a `FaultyTransport` (no faults until `inject`). */
export function injectFaults<T>(transport: Transport<T>, options?: FaultyTransportOptions): FaultyTransport<T> {
  return new FaultyTransport(transport, options);
}
