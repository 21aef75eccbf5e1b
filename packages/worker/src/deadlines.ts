import type { Clock } from "@tranche/core";
import { type Link, LinkedList } from "./linked-list.js";

/** A call under way that fails if it has not settled by `at` (epoch ms): a node of the list of `Deadlines`. */
export interface Deadline extends Link<Deadline> {
  readonly at: number;
  readonly expire: () => void;
}

/**
 * The `ioTimeout` of every transport call of a worker, on one timer instead of one per call.
 *
 * All calls get the same timeout, so they fall due in the order they start: a FIFO list keeps
 * them in deadline order, and the timer only ever waits for the oldest. A call that settles
 * leaves the list in O(1) and leaves the timer alone; when the timer fires, it expires what is
 * due and waits again for the oldest left: no Node timer is armed and cleared per call (what
 * that cost is in bench/README.md).
 *
 * While the worker runs, the timer may stay armed with nothing in the list (until it fires, at
 * most `timeout` later); after `close()` it goes as soon as the list is empty, so a closed
 * worker keeps no process alive.
 */
export class Deadlines {
  /** Calls under way, oldest (due first) at the head. */
  private readonly calls = new LinkedList<Deadline>();
  private timer: unknown = undefined;
  /** Expiring what is due: a call started meanwhile waits for the re-arm at the end. */
  private firing = false;
  private closed = false;
  private readonly fire = (): void => {
    this.timer = undefined;
    this.firing = true;
    try {
      const now = this.clock.now();
      for (let node = this.calls.head; node !== undefined && node.at <= now; node = this.calls.head) {
        this.end(node);
        node.expire();
      }
    } finally {
      this.firing = false;
    }
    const oldest = this.calls.head;
    if (oldest !== undefined) this.timer = this.clock.setTimer(oldest.at, this.fire);
  };

  constructor(
    private readonly clock: Clock,
    private readonly timeout: number,
  ) {}

  /** Starts the clock of a call: `expire` runs if `end` has not been called within the timeout. */
  start(expire: () => void): Deadline {
    const node = this.calls.push({ at: this.clock.now() + this.timeout, expire, prev: undefined, next: undefined });
    if (this.timer === undefined && !this.firing) this.timer = this.clock.setTimer(node.at, this.fire);
    return node;
  }

  /** The call settled in time (or expired): it leaves the list. Later calls for it do nothing. */
  end(node: Deadline): void {
    if (this.calls.remove(node) && this.closed && this.calls.head === undefined) this.disarm();
  }

  /** From now on the timer is cleared whenever no call is left. */
  close(): void {
    this.closed = true;
    if (this.calls.head === undefined) this.disarm();
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }
}
