// The suite as a network transport runs it: no `advance`, real sleeps. This proves the
// suite's real-time paths (deadlines, polling receives, the model at a low run count).
import { describeTransportConformance } from "@tranche/conformance";
import { MemoryTransport } from "../src/index.js";

describeTransportConformance({
  name: "MemoryTransport (real time)",
  async create({ lease, wait }) {
    const transport = new MemoryTransport({ visibilityTimeout: lease, wait });
    return {
      connect: async () => transport,
      sendRaw: async (raw) => void (await transport.sendRaw(raw)),
      close: () => transport.close(),
    };
  },
});
