// The system clock's timers: one fires at its absolute time, not before, and a cleared one never.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { systemClock } from "../src/clock.js";

describe("systemClock", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"], now: 10_000 });
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("fires a timer at its time (epoch ms), not before, and one already due at once", () => {
    const fired: string[] = [];
    systemClock.setTimer(11_000, () => fired.push("later"));
    systemClock.setTimer(9_000, () => fired.push("due"));
    vi.advanceTimersByTime(0);
    expect(fired).toEqual(["due"]);
    vi.advanceTimersByTime(999);
    expect(fired).toEqual(["due"]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["due", "later"]);
  });

  it("never fires a cleared timer", () => {
    const fired: string[] = [];
    const timer = systemClock.setTimer(10_500, () => fired.push("cleared"));
    systemClock.clearTimer(timer);
    vi.advanceTimersByTime(1_000);
    expect(fired).toEqual([]);
  });
});

describe("systemClock, real timers", () => {
  it("waits for a timer beyond setTimeout's 2^31 − 1 ms range instead of firing it at once", async () => {
    // Node fires a setTimeout longer than 2^31 − 1 ms after 1 ms: the clock caps the wait.
    let fired = false;
    const timer = systemClock.setTimer(Date.now() + 2 ** 40, () => (fired = true));
    await new Promise((resolve) => setTimeout(resolve, 30));
    systemClock.clearTimer(timer);
    expect(fired).toBe(false);
  });
});
