import { type Delivery, type SendOptions, type Transport, type TransportCapabilities, TransportError } from "@tranche/core";

export type Operation = "receive" | "ack" | "retry" | "deadLetter" | "extend" | "release";

/**
 * How an injected fault behaves:
 * - `throw`: the call rejects without reaching the transport;
 * - `throw-after`: the call reaches the transport, which does it, then rejects (a lost reply);
 * - `refuse`: the call rejects with a non-retryable `TransportError` without reaching the transport;
 * - `fail`: the call rejects with a plain `Error` (not a `TransportError`) without reaching the transport;
 * - `hang`: the call never settles and never reaches the transport (a lost request);
 * - `hang-after`: the call reaches the transport, which does it, but never settles (a lost reply).
 */
export type FaultMode = "throw" | "throw-after" | "refuse" | "fail" | "hang" | "hang-after";

/** One call as the worker made it, with the ids it was about and what became of it. */
export interface CallRecord {
  readonly op: Operation;
  readonly ids: string[];
  /** `attempt` of each delivery the call was about (ack, retry, deadLetter, extend, release). */
  readonly attempts: number[];
  readonly outcome: "ok" | FaultMode;
}

/**
 * Wraps a transport and injects faults into its calls: `inject(op, mode, count)` makes the
 * next `count` calls of `op` fail; `freeze()` makes every later call hang (a process that
 * stopped). Records every call.
 */
export class FaultyTransport<T> implements Transport<T> {
  readonly calls: CallRecord[] = [];
  private readonly faults = new Map<Operation, { mode: FaultMode; count: number }[]>();
  private readonly rules: { op: Operation; fault: (deliveries: Delivery<T>[]) => FaultMode | undefined }[] = [];
  private frozen = false;

  constructor(readonly inner: Transport<T>) {}

  get name(): string {
    return `faulty ${this.inner.name}`;
  }

  get capabilities(): TransportCapabilities {
    return this.inner.capabilities;
  }

  inject(op: Operation, mode: FaultMode, count = 1): void {
    const list = this.faults.get(op) ?? [];
    list.push({ mode, count });
    this.faults.set(op, list);
  }

  /** Every later call of `op` for which `fault` names a mode fails that way. */
  injectWhen(op: Operation, fault: (deliveries: Delivery<T>[]) => FaultMode | undefined): void {
    this.rules.push({ op, fault });
  }

  freeze(): void {
    this.frozen = true;
  }

  /** Ids in successful (or `hang-after`) calls of `op`: those the transport carried out. */
  done(op: Operation): string[] {
    return this.calls.filter((c) => c.op === op && (c.outcome === "ok" || c.outcome === "hang-after" || c.outcome === "throw-after")).flatMap((c) => c.ids);
  }

  send(payload: T, options?: SendOptions): Promise<string> {
    return this.inner.send(payload, options);
  }

  sendMany(payloads: T[], options?: { delay?: number }): Promise<string[]> {
    return this.inner.sendMany(payloads, options);
  }

  receive(max: number, signal: AbortSignal): Promise<Delivery<T>[]> {
    return this.through("receive", [], () => this.inner.receive(max, signal));
  }

  ack(deliveries: Delivery<T>[]): Promise<void> {
    return this.through("ack", deliveries, () => this.inner.ack(deliveries));
  }

  retry(delivery: Delivery<T>, notBefore: number): Promise<void> {
    return this.through("retry", [delivery], () => this.inner.retry(delivery, notBefore));
  }

  deadLetter(delivery: Delivery<T>, reason: Error): Promise<void> {
    return this.through("deadLetter", [delivery], () => this.inner.deadLetter(delivery, reason));
  }

  extend(deliveries: Delivery<T>[], until: number): Promise<void> {
    return this.through("extend", deliveries, () => (this.inner.extend as NonNullable<Transport<T>["extend"]>).call(this.inner, deliveries, until));
  }

  release(deliveries: Delivery<T>[]): Promise<void> {
    return this.through("release", deliveries, () => this.inner.release(deliveries));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private through<V>(op: Operation, deliveries: Delivery<T>[], call: () => Promise<V>): Promise<V> {
    const mode = this.frozen ? "hang" : (this.rules.find((r) => r.op === op && r.fault(deliveries) !== undefined)?.fault(deliveries) ?? this.take(op));
    const record = (outcome: CallRecord["outcome"], ids = deliveries.map((d) => d.id)) =>
      this.calls.push({ op, ids, attempts: deliveries.map((d) => d.attempt), outcome });
    if (mode === undefined) {
      const result = call();
      if (op === "receive") {
        return result.then((got) => {
          record("ok", (got as Delivery<T>[]).map((d) => d.id));
          return got;
        });
      }
      return result.then((value) => {
        record("ok");
        return value;
      });
    }
    record(mode);
    if (mode === "throw") return Promise.reject(new TransportError(`injected ${op} failure`, { retryable: true }));
    if (mode === "refuse") return Promise.reject(new TransportError(`injected ${op} refusal`, { retryable: false }));
    if (mode === "fail") return Promise.reject(new Error(`injected ${op} error`));
    if (mode === "throw-after") {
      return call().then(() => {
        throw new TransportError(`injected ${op} lost reply`, { retryable: true });
      });
    }
    if (mode === "hang-after") void call().catch(() => {});
    return new Promise<V>(() => {});
  }

  private take(op: Operation): FaultMode | undefined {
    const list = this.faults.get(op);
    const fault = list?.[0];
    if (fault === undefined) return undefined;
    if (--fault.count <= 0) list?.shift();
    return fault.mode;
  }
}
