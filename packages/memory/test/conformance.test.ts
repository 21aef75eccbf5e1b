import { describeTransportConformance } from "@tranche/conformance";
import { SimulatedClock } from "@tranche/core/testing";
import { MemoryTransport } from "../src/index.js";

describeTransportConformance({
  name: "MemoryTransport",
  async create({ lease, wait }) {
    const clock = new SimulatedClock(Date.UTC(2025, 0, 1));
    const transport = new MemoryTransport({ clock, visibilityTimeout: lease, wait });
    return {
      connect: async () => transport, // one instance, shared by every consumer
      sendRaw: async (raw) => void (await transport.sendRaw(raw)),
      advance: (ms) => clock.advance(ms),
      now: () => clock.now(),
      clock,
      deadLetters: async () => (await transport.deadLetters()).map((l) => ({ id: l.id, reason: l.reason.message, attempt: l.attempt, retries: l.retries })),
      close: () => transport.close(),
    };
  },
});
