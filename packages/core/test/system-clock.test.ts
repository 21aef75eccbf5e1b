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
