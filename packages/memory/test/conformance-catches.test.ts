// The conformance suite must be able to fail. Each transport below is a MemoryTransport with one
// deliberate bug; the suite's own case functions (exported for this) run against it and must
// reject. The same cases pass on the real MemoryTransport in conformance.test.ts.
import { checkTransportModel, conformanceCases, runConformanceCase } from "@tranche/conformance";
import type { ConformanceOptions } from "@tranche/conformance";
import type { Delivery } from "@tranche/core";
import { SimulatedClock } from "@tranche/core/testing";
import { describe, expect, it } from "vitest";
import { MemoryTransport } from "../src/index.js";
import type { MemoryTransportOptions } from "../src/index.js";

type Variant = new (options: MemoryTransportOptions<unknown>) => MemoryTransport<unknown>;

function suiteOn(Broken: Variant): ConformanceOptions {
  return {
    name: Broken.name,
    async create({ lease, wait }) {
      const clock = new SimulatedClock(Date.UTC(2025, 0, 1));
      const transport = new Broken({ clock, visibilityTimeout: lease, wait });
      return {
        connect: async () => transport,
        sendRaw: async (raw) => void (await transport.sendRaw(raw)),
        advance: (ms) => clock.advance(ms),
        now: () => clock.now(),
        deadLetters: async () => transport.deadLetters().map((l) => ({ id: l.id, reason: l.reason.message })),
        close: () => transport.close(),
      };
    },
  };
}

function caseNamed(fragment: string): string {
  const found = conformanceCases.find((c) => c.name.includes(fragment));
  if (found === undefined) throw new Error(`no conformance case named like ${fragment}`);
  return found.name;
}

class AckDoesNothing extends MemoryTransport<unknown> {
  override async ack(): Promise<void> {}
}

class RetriesAtOnce extends MemoryTransport<unknown> {
  override retry(delivery: Delivery<unknown>): Promise<void> {
    return super.retry(delivery, 0);
  }
}

/** Leases far shorter than asked: a second consumer gets items still held by the first. */
class ShortLease extends MemoryTransport<unknown> {
  constructor(options: MemoryTransportOptions<unknown>) {
    super({ ...options, visibilityTimeout: 1 });
  }
}

class ExtendDoesNothing extends MemoryTransport<unknown> {
  override async extend(): Promise<void> {}
}

/** Silently drops every third delivery. */
class LosesMessages extends MemoryTransport<unknown> {
  private handedOut = 0;
  override async receive(max: number, signal: AbortSignal): Promise<Delivery<unknown>[]> {
    const deliveries = await super.receive(max, signal);
    const lost = deliveries.filter(() => ++this.handedOut % 3 === 0);
    await super.ack(lost);
    return deliveries.filter((d) => !lost.includes(d));
  }
}

class ReleaseDoesNothing extends MemoryTransport<unknown> {
  override async release(): Promise<void> {}
}

class IgnoresAbort extends MemoryTransport<unknown> {
  override receive(max: number): Promise<Delivery<unknown>[]> {
    return super.receive(max, new AbortController().signal);
  }
}

/** Hides undecodable messages instead of delivering them with a DecodeError. */
class SwallowsGarbage extends MemoryTransport<unknown> {
  override async receive(max: number, signal: AbortSignal): Promise<Delivery<unknown>[]> {
    const deliveries = await super.receive(max, signal);
    await super.ack(deliveries.filter((d) => d.error !== undefined));
    return deliveries.filter((d) => d.error === undefined);
  }
}

class RedeliversDeadLetters extends MemoryTransport<unknown> {
  override deadLetter(delivery: Delivery<unknown>): Promise<void> {
    return super.release([delivery]);
  }
}

class OpenAfterClose extends MemoryTransport<unknown> {
  override async close(): Promise<void> {}
}

describe("the conformance suite catches broken transports", () => {
  const caught: [Variant, string][] = [
    [AckDoesNothing, "ack removes the item"],
    [RetriesAtOnce, "retry(d, notBefore)"],
    [ShortLease, "two consumers never hold"],
    [ShortLease, "expired lease is redelivered"],
    [ExtendDoesNothing, "extend keeps a lease"],
    [LosesMessages, "sendMany returns one id"],
    [ReleaseDoesNothing, "release redelivers promptly"],
    [IgnoresAbort, "promptly when its signal aborts"],
    [SwallowsGarbage, "undecodable message"],
    [RedeliversDeadLetters, "deadLetter is never redelivered"],
    [OpenAfterClose, "after close throws ClosedError"],
  ];
  for (const [Broken, fragment] of caught) {
    it(`${Broken.name} fails "${fragment}…"`, async () => {
      await expect(runConformanceCase(suiteOn(Broken), caseNamed(fragment))).rejects.toThrow();
    });
  }

  it("the same cases pass on MemoryTransport itself", async () => {
    for (const fragment of new Set(caught.map(([, f]) => f))) {
      expect(await runConformanceCase(suiteOn(MemoryTransport), caseNamed(fragment))).toBe("passed");
    }
  });

  const modelCatches: [Variant, RegExp][] = [
    [AckDoesNothing, /after its ack/],
    [RetriesAtOnce, /before its notBefore/],
    [ShortLease, /leased twice/],
    [LosesMessages, /at-least-once/],
  ];
  for (const [Broken, message] of modelCatches) {
    it(`the model test catches ${Broken.name}`, async () => {
      await expect(checkTransportModel(suiteOn(Broken), { runs: 200 })).rejects.toThrow(message);
    });
  }
});
