import type { Delivery } from "@tranche/core";
import { type BatchDriver, DriverRequest } from "@tranche/core/internal";
import type { LeaseGroup, Leased } from "./leases.js";

/** The outcomes of one batch, gathered until every item has one and the transport has them. */
export interface BatchRecord<T, R> {
  readonly id: string;
  readonly startedAt: number;
  /** The acked items, `ackedCount` of them: sized for the whole batch, trimmed when it completes. */
  readonly acked: WorkItem<T, R>[];
  ackedCount: number;
  failed: number;
  retried: number;
  released: number;
  readonly calls: Promise<void>[];
}

/** One delivery: the Batcher's entry and the handler's request, plus what the worker tracks. */
export class WorkItem<T, R> extends DriverRequest<T, R> implements Leased<T> {
  // Assigned in the constructor, not class fields, as `Entry` in @tranche/core does: one is built per delivery.
  declare readonly delivery: Delivery<T>;
  declare batch: BatchRecord<T, R> | undefined;
  declare value: R | undefined;
  /** Its lease group while the worker holds it and renews its lease. */
  declare lease: LeaseGroup<T> | undefined;
  /** Handler runs that ended with a retry, as the transport carried them, plus retries kept here. */
  declare retries: number | undefined;
  /** The `notBefore` of a retry kept here (`retryHere`): no other worker may run it earlier. */
  declare heldUntil: number;

  constructor(driver: BatchDriver<T, R, WorkItem<T, R>>, delivery: Delivery<T>) {
    super(driver, delivery.payload, delivery.id, delivery.attempt);
    (this as { delivery: Delivery<T> }).delivery = delivery;
    this.batch = undefined;
    this.value = undefined;
    this.lease = undefined;
    this.retries = delivery.retries;
    this.heldUntil = 0;
  }

  get headers(): Readonly<Record<string, string>> | undefined {
    return this.delivery.headers;
  }
}
