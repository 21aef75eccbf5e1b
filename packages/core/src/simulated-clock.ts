import type { Clock } from "./clock.js";
import { checkMs } from "./validation.js";

interface Timer {
  readonly at: number;
  readonly fn: () => void;
  active: boolean;
}

/** Lets every promise chain that can settle without real I/O or timers do so. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A clock that moves only when told to. `advance` runs due timers in time order
 * (ties in the order they were set) and lets promises settle before, between and
 * after them, so handler code runs as it would in real time — without sleeping.
 */
export class SimulatedClock implements Clock {
  private time: number;
  private timers: Timer[] = [];
  private active = 0;
  private moving: Promise<void> = Promise.resolve();

  constructor(start = 0) {
    this.time = checkMs("start", start);
  }

  now(): number {
    return this.time;
  }

  setTimer(at: number, fn: () => void): unknown {
    const timer: Timer = { at: Math.max(at, this.time), fn, active: true };
    this.timers.push(timer);
    this.active++;
    return timer;
  }

  clearTimer(handle: unknown): void {
    const timer = handle as Timer | undefined;
    if (timer !== undefined && timer !== null && timer.active === true) {
      timer.active = false;
      this.active--;
    }
  }

  /** Timers set and neither fired nor cleared. */
  get pendingTimers(): number {
    return this.active;
  }

  /** Absolute time of the next timer, if any. */
  get nextTimer(): number | undefined {
    return this.due(Infinity)?.at;
  }

  /** Moves time forward by `ms`, running every timer due on the way. */
  advance(ms: number): Promise<void> {
    checkMs("ms", ms);
    return this.enqueue(() => this.time + ms);
  }

  /** Moves time to `t` (epoch ms, not before now), running every timer due on the way. */
  advanceTo(t: number): Promise<void> {
    if (typeof t !== "number" || Number.isNaN(t)) checkMs("t", t);
    return this.enqueue(() => {
      if (t < this.time) throw new RangeError(`[tranche/core] cannot move a SimulatedClock back from ${this.time} to ${t}`);
      return t;
    });
  }

  /** Lets pending promise chains settle without moving time. */
  tick(): Promise<void> {
    return this.enqueue(() => this.time);
  }

  // Calls made without awaiting the previous one run one after another.
  private enqueue(target: () => number): Promise<void> {
    const run = this.moving.then(() => this.run(target()));
    this.moving = run.catch(() => {});
    return run;
  }

  private async run(target: number): Promise<void> {
    await settle();
    for (;;) {
      const timer = this.due(target);
      if (timer === undefined) break;
      this.timers.splice(this.timers.indexOf(timer), 1);
      timer.active = false;
      this.active--;
      // Never back: setTimer clamps to now, and due() picks the earliest timer.
      this.time = timer.at;
      timer.fn();
      await settle();
    }
    this.time = target;
    await settle();
  }

  // `timers` stays in the order the timers were set and only a strictly earlier timer replaces
  // `best`, so of timers due at the same time the first set wins.
  private due(until: number): Timer | undefined {
    let best: Timer | undefined;
    const timers = this.timers;
    let write = 0;
    for (let read = 0; read < timers.length; read++) {
      const timer = timers[read] as Timer;
      if (!timer.active) continue;
      timers[write++] = timer;
      if (timer.at <= until && (best === undefined || timer.at < best.at)) best = timer;
    }
    timers.length = write;
    return best;
  }
}
