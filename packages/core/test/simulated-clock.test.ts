import { describe, expect, it } from "vitest";
import { SimulatedClock } from "../src/testing.js";

describe("SimulatedClock", () => {
  it("starts at 0 or at the given time, and only moves when told to", async () => {
    expect(new SimulatedClock().now()).toBe(0);
    const clock = new SimulatedClock(1_700_000_000_000);
    expect(clock.now()).toBe(1_700_000_000_000);
    await clock.tick();
    expect(clock.now()).toBe(1_700_000_000_000);
    await clock.advance(250);
    expect(clock.now()).toBe(1_700_000_000_250);
    await clock.advanceTo(1_700_000_001_000);
    expect(clock.now()).toBe(1_700_000_001_000);
  });

  it("rejects a negative or non-numeric start", () => {
    expect(() => new SimulatedClock(-1)).toThrow(new TypeError("[tranche/core] Expected `start` to be a number of ms ≥ 0, got -1"));
    expect(() => new SimulatedClock(Number.NaN)).toThrow(TypeError);
  });

  it("runs timers in time order, ties in the order they were set, each at its own time", async () => {
    const clock = new SimulatedClock();
    const fired: [string, number][] = [];
    const at = (t: number, label: string) => clock.setTimer(t, () => fired.push([label, clock.now()]));
    at(300, "c");
    at(100, "a1");
    at(200, "b");
    at(100, "a2");
    at(100, "a3");
    await clock.advance(250);
    expect(fired).toEqual([
      ["a1", 100],
      ["a2", 100],
      ["a3", 100],
      ["b", 200],
    ]);
    expect(clock.now()).toBe(250);
    await clock.advance(50);
    expect(fired.at(-1)).toEqual(["c", 300]);
  });

  it("does not run a timer before its time", async () => {
    const clock = new SimulatedClock();
    let fired = false;
    clock.setTimer(100, () => (fired = true));
    await clock.advance(99);
    expect(fired).toBe(false);
    await clock.advance(1);
    expect(fired).toBe(true);
  });

  it("runs a timer set in the past at the next advance, at the current time", async () => {
    const clock = new SimulatedClock(1000);
    let firedAt: number | undefined;
    clock.setTimer(10, () => (firedAt = clock.now()));
    await clock.tick();
    expect(firedAt).toBe(1000);
  });

  it("runs timers that a timer sets, when due within the same advance", async () => {
    const clock = new SimulatedClock();
    const fired: number[] = [];
    clock.setTimer(10, () => {
      fired.push(clock.now());
      clock.setTimer(clock.now() + 10, () => fired.push(clock.now()));
      clock.setTimer(clock.now() + 100, () => fired.push(clock.now()));
    });
    await clock.advance(50);
    expect(fired).toEqual([10, 20]);
  });

  it("lets promise chains settle between timers", async () => {
    const clock = new SimulatedClock();
    const log: string[] = [];
    clock.setTimer(100, () => {
      log.push("timer 100");
      // A long chain of promise hops, as async handler code would have.
      void Promise.resolve()
        .then(() => Promise.resolve())
        .then(async () => {
          for (let i = 0; i < 1000; i++) await null;
          log.push(`chain done at ${clock.now()}`);
          // Set from inside the chain: it must still run in this advance.
          clock.setTimer(150, () => log.push("timer 150"));
        });
    });
    clock.setTimer(200, () => log.push("timer 200"));
    await clock.advance(300);
    expect(log).toEqual(["timer 100", "chain done at 100", "timer 150", "timer 200"]);
  });

  it("lets promises settle before the first timer runs", async () => {
    const clock = new SimulatedClock();
    const log: string[] = [];
    void Promise.resolve().then(() => {
      log.push("promise");
      clock.setTimer(5, () => log.push("timer from promise"));
    });
    await clock.advance(10);
    expect(log).toEqual(["promise", "timer from promise"]);
  });

  it("clearTimer cancels a timer; unknown and fired handles are ignored", async () => {
    const clock = new SimulatedClock();
    const fired: string[] = [];
    const a = clock.setTimer(10, () => fired.push("a"));
    clock.setTimer(20, () => fired.push("b"));
    clock.clearTimer(a);
    clock.clearTimer(a);
    clock.clearTimer(undefined);
    clock.clearTimer(null);
    clock.clearTimer({ bogus: true });
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(30);
    expect(fired).toEqual(["b"]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("clearTimer from inside a timer cancels a later one in the same advance", async () => {
    const clock = new SimulatedClock();
    const fired: string[] = [];
    const later = clock.setTimer(20, () => fired.push("later"));
    clock.setTimer(10, () => {
      fired.push("first");
      clock.clearTimer(later);
    });
    await clock.advance(30);
    expect(fired).toEqual(["first"]);
  });

  it("pendingTimers counts timers set and neither fired nor cleared", async () => {
    const clock = new SimulatedClock();
    expect(clock.pendingTimers).toBe(0);
    const a = clock.setTimer(10, () => {});
    clock.setTimer(20, () => {});
    clock.setTimer(30, () => {});
    expect(clock.pendingTimers).toBe(3);
    clock.clearTimer(a);
    expect(clock.pendingTimers).toBe(2);
    await clock.advance(20);
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextTimer).toBe(30);
    await clock.advance(10);
    expect(clock.pendingTimers).toBe(0);
    expect(clock.nextTimer).toBeUndefined();
  });

  it("advanceTo backwards rejects with a RangeError and leaves time alone", async () => {
    const clock = new SimulatedClock(500);
    await expect(clock.advanceTo(499)).rejects.toThrow(new RangeError("[tranche/core] cannot move a SimulatedClock back from 500 to 499"));
    expect(clock.now()).toBe(500);
    // A negative time is a move back too, not a bad argument.
    await expect(clock.advanceTo(-1)).rejects.toThrow(new RangeError("[tranche/core] cannot move a SimulatedClock back from 500 to -1"));
    // The clock is still usable afterwards.
    await clock.advanceTo(600);
    expect(clock.now()).toBe(600);
  });

  it("advanceTo rejects a time that is not a number with a TypeError, before anything runs", () => {
    const clock = new SimulatedClock(500);
    expect(() => clock.advanceTo("600" as never)).toThrow(new TypeError('[tranche/core] Expected `t` to be a number of ms ≥ 0, got "600"'));
    expect(() => clock.advanceTo(Number.NaN)).toThrow(TypeError);
    expect(clock.now()).toBe(500);
  });

  it("advance rejects a negative or non-numeric step", () => {
    const clock = new SimulatedClock();
    expect(() => clock.advance(-1)).toThrow(new TypeError("[tranche/core] Expected `ms` to be a number of ms ≥ 0, got -1"));
    expect(() => clock.advance(Number.NaN)).toThrow(TypeError);
  });

  it("advances called without awaiting run one after another", async () => {
    const clock = new SimulatedClock();
    const fired: number[] = [];
    clock.setTimer(15, () => fired.push(clock.now()));
    clock.setTimer(25, () => fired.push(clock.now()));
    const first = clock.advance(10);
    const second = clock.advance(10);
    const third = clock.advance(10);
    await Promise.all([first, second, third]);
    expect(clock.now()).toBe(30);
    expect(fired).toEqual([15, 25]);
  });

  it("an advance to the same time runs timers due now", async () => {
    const clock = new SimulatedClock(100);
    let fired = 0;
    clock.setTimer(100, () => fired++);
    await clock.advance(0);
    expect(fired).toBe(1);
    clock.setTimer(100, () => fired++);
    await clock.advanceTo(100);
    expect(fired).toBe(2);
    expect(clock.now()).toBe(100);
  });
});
