import type { Delivery, Transport } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { describe, expect, it } from "vitest";
import { checkWorkerModel, conformanceCases, describeTransportConformance, runConformanceCase } from "../src/index.js";
import type { ConformanceOptions, ConformanceQueue } from "../src/index.js";
import { openContext } from "../src/context.js";
import { envRuns } from "../src/options.js";

const capabilities = { maxReceive: 3, nativeDelay: true, lease: true, nativeDeadLetter: false };

/** A transport whose receive resolves [] after `wait` ms on the clock, like an empty queue. */
function emptyQueue(clock: SimulatedClock | undefined, wait: number, closed: string[]): ConformanceQueue {
  const transport = {
    name: "empty",
    capabilities,
    receive: (_max: number, _signal: AbortSignal) =>
      new Promise<Delivery<unknown>[]>((resolve) => {
        if (clock === undefined) setTimeout(() => resolve([]), wait);
        else clock.setTimer(clock.now() + wait, () => resolve([]));
      }),
  } as unknown as Transport<unknown>;
  return {
    connect: async () => transport,
    sendRaw: async () => {},
    ...(clock === undefined ? {} : { advance: (ms: number) => clock.advance(ms), now: () => clock.now() }),
    close: async () => void closed.push("closed"),
  };
}

describe("conformance harness", () => {
  it("hands create the base lease and wait times timeScale, and a case's own settings", async () => {
    const seen: { lease: number; wait: number }[] = [];
    const options: ConformanceOptions = {
      name: "t",
      timeScale: 2.5,
      create: async (settings) => (seen.push(settings), emptyQueue(new SimulatedClock(), settings.wait, [])),
    };
    await openContext(options);
    await openContext(options, { wait: 20_000 });
    expect(seen).toEqual([
      { lease: 2500, wait: 500 },
      { lease: 2500, wait: 50_000 },
    ]);
  });

  it("rejects a timeScale that is not a number > 0", async () => {
    const options: ConformanceOptions = { name: "t", timeScale: 0, create: async () => emptyQueue(undefined, 0, []) };
    await expect(openContext(options)).rejects.toThrow(/`timeScale`.*got 0/);
  });

  it("moves a simulated clock while a receive waits, and only as far as needed", async () => {
    const clock = new SimulatedClock(1000);
    const { context } = await openContext({ name: "t", create: async ({ wait }) => emptyQueue(clock, wait, []) });
    const received = await context.receive(context.transport, 3);
    expect(received).toEqual([]);
    expect(clock.now() - 1000).toBeGreaterThanOrEqual(200);
    expect(clock.now() - 1000).toBeLessThan(300);
  });

  it("sleeps for real without advance, by the scaled time", async () => {
    const { context } = await openContext({ name: "t", timeScale: 0.5, create: async ({ wait }) => emptyQueue(undefined, wait, []) });
    const start = Date.now();
    await context.sleep(context.ms(100));
    expect(Date.now() - start).toBeGreaterThanOrEqual(45);
    expect(context.max(10)).toBe(3);
  });

  it("runConformanceCase closes the queue and reports a failed check", async () => {
    const closed: string[] = [];
    const options: ConformanceOptions = { name: "t", capabilities: { ...capabilities, maxReceive: 7 }, create: async ({ wait }) => emptyQueue(new SimulatedClock(), wait, closed) };
    await expect(runConformanceCase(options, "declares its capabilities")).rejects.toThrow();
    expect(closed).toEqual(["closed"]);
  });

  it("skips a case whose capability the transport lacks", async () => {
    const options: ConformanceOptions = {
      name: "t",
      capabilities: { ...capabilities, lease: false },
      create: async ({ wait }) => emptyQueue(new SimulatedClock(), wait, []),
    };
    const leaseCase = conformanceCases.find((c) => c.requires === "lease") as (typeof conformanceCases)[number];
    expect(await runConformanceCase(options, leaseCase.name)).toBe("skipped");
  });

  it("names every case once, and rejects an unknown name or bad options", async () => {
    expect(new Set(conformanceCases.map((c) => c.name)).size).toBe(conformanceCases.length);
    await expect(runConformanceCase({ name: "t", create: async () => emptyQueue(undefined, 0, []) }, "nope")).rejects.toThrow(/got "nope"/);
    expect(() => describeTransportConformance({ name: "t" } as ConformanceOptions)).toThrow(TypeError);
  });

  it("skips the connection cases, saying why, when the options give no server", async () => {
    const options: ConformanceOptions = { name: "t", create: async ({ wait }) => emptyQueue(new SimulatedClock(), wait, []) };
    const connection = conformanceCases.filter((c) => c.requires === "server");
    expect(connection.length).toBe(3);
    for (const c of connection) expect(await runConformanceCase(options, c.name)).toBe("skipped");
  });

  it("the worker model asks for the queue's clock when the queue has a simulated one", async () => {
    const Worker = class {} as never;
    const options: ConformanceOptions = { name: "t", Worker, create: async ({ wait }) => emptyQueue(new SimulatedClock(), wait, []) };
    await expect(checkWorkerModel(options, { runs: 1 })).rejects.toThrow(/needs the queue's `clock`/);
  });

  it("FC_RUNS sets the runs when it is a whole number, and is refused otherwise", () => {
    const saved = process.env.FC_RUNS;
    try {
      delete process.env.FC_RUNS;
      expect(envRuns()).toBeUndefined();
      process.env.FC_RUNS = "7";
      expect(envRuns()).toBe(7);
      for (const raw of ["lots", "", "0"]) {
        process.env.FC_RUNS = raw;
        expect(() => envRuns()).toThrow(/FC_RUNS/);
      }
    } finally {
      if (saved === undefined) delete process.env.FC_RUNS;
      else process.env.FC_RUNS = saved;
    }
  });
});
