import { describe, expect, it } from "vitest";
import { MemoryTransport } from "@tranche/memory";
import { Worker, type WorkerOptions } from "../src/index.js";

const transport = new MemoryTransport<number>();
const make = (options: WorkerOptions<number>) => () => new Worker(transport, async () => {}, options);

describe("Worker options", () => {
  it.each([
    [{ lease: 0 }, "[tranche/worker] Expected `lease` to be a number of ms > 0, got 0"],
    [{ ioTimeout: -1 }, "[tranche/worker] Expected `ioTimeout` to be a number of ms > 0, got -1"],
    [{ ioBackoff: { delay: 500, maxDelay: 100 } }, "[tranche/worker] Expected `ioBackoff.maxDelay` to be a number of ms ≥ ioBackoff.delay (500), got 100"],
    [{ ioConcurrency: 1.5 }, "[tranche/worker] Expected `ioConcurrency` to be an integer ≥ 1, got 1.5"],
    [{ ioMaxRetryTime: -5 }, "[tranche/worker] Expected `ioMaxRetryTime` to be a number of ms ≥ 0 or Infinity, got -5"],
    [{ maxDeliveries: 0 }, "[tranche/worker] Expected `maxDeliveries` to be an integer ≥ 1 or Infinity, got 0"],
    [{ maxDeliveries: null as unknown as number }, "[tranche/worker] Expected `maxDeliveries` to be an integer ≥ 1 or Infinity, got null"],
    [{ closeTransport: "yes" as unknown as boolean }, '[tranche/worker] Expected `closeTransport` to be a boolean, got "yes"'],
    [{ results: {} as never }, "[tranche/worker] Expected `results` to be a ResultStore with set, get and wait, got {}"],
    [{ resultTtl: Number.NaN }, "[tranche/worker] Expected `resultTtl` to be a number of ms > 0, got NaN"],
    [{ flushEvery: 0 }, "[tranche/core] Expected `flushEvery` to be an integer ≥ 1, got 0"],
    [{ maxBuffered: 5, flushEvery: 10 }, "[tranche/core] Expected `maxBuffered` to be an integer ≥ flushEvery (10), got 5"],
  ] as [WorkerOptions<number>, string][])("%j throws a TypeError quoting the value", (options, message) => {
    expect(make(options)).toThrow(TypeError);
    expect(make(options)).toThrow(message);
  });

  it("rejects a handler that is not a function and a transport that is not one", () => {
    expect(() => new Worker(transport, 42 as never)).toThrow("[tranche/core] Expected `handler` to be a function, got 42");
    expect(() => new Worker({} as never, async () => {})).toThrow("[tranche/worker] Expected `transport` to be a Transport");
  });

  it("close() rejects bad options without closing", async () => {
    const worker = new Worker(transport, async () => {});
    await expect(worker.close({ timeout: -1 })).rejects.toThrow("[tranche/worker] Expected `timeout` to be a number of ms ≥ 0 or Infinity, got -1");
    await expect(worker.close({ drain: "no" as never })).rejects.toThrow(TypeError);
    await worker.start();
    await worker.close({ drain: false, timeout: 0 });
  });
});
