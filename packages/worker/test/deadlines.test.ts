import { SimulatedClock } from "@tranche/core/testing";
import { describe, expect, it } from "vitest";
import { Deadlines } from "../src/deadlines.js";

/** A SimulatedClock that counts the timers armed on it. */
function countingClock(): { clock: SimulatedClock; armed: () => number } {
  const clock = new SimulatedClock(1_000);
  let armed = 0;
  const setTimer = clock.setTimer.bind(clock);
  clock.setTimer = (at, fn) => {
    armed++;
    return setTimer(at, fn);
  };
  return { clock, armed: () => armed };
}

describe("Deadlines", () => {
  it("expires each call that has not ended at start + timeout, in start order, and no ended one", async () => {
    const { clock } = countingClock();
    const deadlines = new Deadlines(clock, 100);
    const expired: string[] = [];
    const a = deadlines.start(() => expired.push(`a@${clock.now()}`));
    await clock.advance(30);
    const b = deadlines.start(() => expired.push(`b@${clock.now()}`));
    await clock.advance(30);
    deadlines.start(() => expired.push(`c@${clock.now()}`));
    deadlines.end(b);
    await clock.advance(39);
    expect(expired).toEqual([]);
    await clock.advance(1);
    expect(expired).toEqual(["a@1100"]);
    await clock.advance(100);
    expect(expired).toEqual(["a@1100", "c@1160"]);
    deadlines.end(a); // ended after it expired: nothing happens
    expect(clock.pendingTimers).toBe(0);
  });

  it("arms one timer for a stream of calls that each end in time, not one per call", async () => {
    const { clock, armed } = countingClock();
    const deadlines = new Deadlines(clock, 1_000);
    let expired = 0;
    for (let i = 0; i < 500; i++) {
      deadlines.end(deadlines.start(() => expired++));
      await clock.advance(10);
    }
    // 5 s of calls under a 1 s timeout: the timer woke about once a second and re-armed for the oldest call.
    expect(expired).toBe(0);
    expect(armed()).toBeLessThanOrEqual(6);
  });

  it("a call started while expiring others is timed too, on the same single timer", async () => {
    const { clock } = countingClock();
    const deadlines = new Deadlines(clock, 100);
    const expired: string[] = [];
    deadlines.start(() => {
      expired.push(`first@${clock.now()}`);
      deadlines.start(() => expired.push(`retry@${clock.now()}`)); // a caller that tries again at once
    });
    await clock.advance(100);
    expect(expired).toEqual(["first@1100"]);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(100);
    expect(expired).toEqual(["first@1100", "retry@1200"]);
  });

  it("after close, clears the timer as soon as no call is left, so a closed worker keeps no process alive", async () => {
    const { clock } = countingClock();
    const deadlines = new Deadlines(clock, 100);
    deadlines.end(deadlines.start(() => {}));
    expect(clock.pendingTimers).toBe(1); // armed while running, even with nothing left
    deadlines.close();
    expect(clock.pendingTimers).toBe(0);
    let expired = false;
    const late = deadlines.start(() => (expired = true));
    expect(clock.pendingTimers).toBe(1);
    deadlines.end(late);
    expect(clock.pendingTimers).toBe(0);
    const hung = deadlines.start(() => (expired = true));
    await clock.advance(100);
    expect(expired).toBe(true);
    expect(clock.pendingTimers).toBe(0);
    // The expired call has left the list: ending it again touches neither the list nor the timer.
    let nextExpired = false;
    deadlines.start(() => (nextExpired = true));
    deadlines.end(hung);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(100);
    expect(nextExpired).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });
});
