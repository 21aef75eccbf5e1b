import type { Clock, Delivery, Transport } from "@tranche/core";
import type { Io } from "./io.js";
import type { TransportCounts } from "./stats.js";

/** A delivery whose lease the worker renews while it holds it. */
export interface Leased<T> {
  readonly delivery: Delivery<T>;
  /** Its group while the worker holds it; `undefined` once let go. */
  lease: LeaseGroup<T> | undefined;
}

/**
 * Deliveries received together, renewed together: one deadline and one `extend` call for all,
 * rather than a record per delivery.
 */
export interface LeaseGroup<T> {
  readonly items: Leased<T>[];
  /** Items of the group the worker still holds. */
  live: number;
  /** Epoch ms the earliest lease of the group ends. */
  leaseUntil: number;
  /** Epoch ms of the next renewal; Infinity while one is under way. */
  renewAt: number;
  /** Place in `Leases.groups`. */
  index: number;
}

/**
 * Renews the leases of what a worker holds: a group is renewed halfway through what is left
 * of its lease, and every group due within a quarter lease goes in the same `extend` call. A
 * failed renewal is tried again after `retryIn()` ms, while the lease lasts.
 */
export class Leases<T> {
  private readonly groups: LeaseGroup<T>[] = [];
  private timer: unknown = undefined;
  private at = Infinity;

  constructor(
    private readonly clock: Clock,
    /** ms a renewal extends a lease by. */
    private readonly lease: number,
    /** Extends the leases of `due` to `until`; resolves `true` when the transport did. */
    private readonly extend: (due: Delivery<T>[], until: number) => Promise<boolean>,
    private readonly retryIn: () => number,
  ) {}

  /** Starts renewing a group of deliveries just received. */
  add(group: LeaseGroup<T>, now: number): void {
    group.renewAt = now + (group.leaseUntil - now) / 2;
    group.index = this.groups.push(group) - 1;
    if (group.renewAt < this.at) this.arm(group.renewAt);
  }

  /** The worker let go of `item`: once its group has none left, the group is no longer renewed. */
  letGo(item: Leased<T>): void {
    const group = item.lease;
    if (group === undefined) return;
    item.lease = undefined;
    if (--group.live > 0) return;
    const last = this.groups.pop() as LeaseGroup<T>;
    if (last !== group) {
      this.groups[group.index] = last;
      last.index = group.index;
    }
    group.index = -1;
  }

  /** Renews nothing more. */
  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.at = Infinity;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.at = at;
    this.timer = this.clock.setTimer(at, () => this.renew());
  }

  /** Extends every lease due soon in one call, then re-arms for the next. */
  private renew(): void {
    this.timer = undefined;
    this.at = Infinity;
    const now = this.clock.now();
    const until = now + this.lease;
    const horizon = now + this.lease / 4;
    const groups: LeaseGroup<T>[] = [];
    const due: Delivery<T>[] = [];
    for (const group of this.groups) {
      if (group.renewAt <= horizon && group.leaseUntil < until) {
        group.renewAt = Infinity;
        groups.push(group);
        for (const item of group.items) if (item.lease === group) due.push(item.delivery);
      }
    }
    if (groups.length > 0) {
      void this.extend(due, until).then((ok) => {
        const at = this.clock.now();
        for (const group of groups) {
          if (ok) group.leaseUntil = until;
          group.renewAt = ok ? at + (until - at) / 2 : at + this.retryIn();
        }
        this.rearm();
      });
    }
    this.rearm();
  }

  private rearm(): void {
    let next = Infinity;
    for (const group of this.groups) if (group.renewAt < next) next = group.renewAt;
    if (next < this.at) this.arm(next);
  }
}

/**
 * The `Leases` of a worker's deliveries on `transport`, renewed with its `extend`, one try per
 * renewal (the next after one backoff step) and each delivery renewed counted in `counts`;
 * `undefined` when the transport has no lease to renew.
 */
export function transportLeases<T>(transport: Transport<T>, clock: Clock, io: Io, lease: number, counts: Pick<TransportCounts, "extended">): Leases<T> | undefined {
  const extend = transport.extend;
  if (!transport.capabilities.lease || typeof extend !== "function") return undefined;
  return new Leases<T>(
    clock,
    lease,
    async (due, until) => {
      const outcome = await io.once("extend", () => extend.call(transport, due, until), true);
      if (!("value" in outcome)) return false;
      counts.extended += due.length;
      return true;
    },
    () => io.backoff(1),
  );
}
