import { describeTransportConformance } from "@tranche/conformance";
import { afterAll } from "vitest";
import { closeConformanceServer, createNatsQueue, natsEndpoint } from "./support/conformance-queue.js";

// Against a nats-server -js started on a free port (or NATS_URL); real time, so no `advance`.
describeTransportConformance({
  name: "NatsTransport",
  create: createNatsQueue,
  server: natsEndpoint,
  capabilities: { maxReceive: 10_000, nativeDelay: false, lease: true, nativeDeadLetter: false },
  // A retry and a delayed send wait in the consumer as unacknowledged messages (naks with a delay).
  delayedInFlight: true,
});
afterAll(closeConformanceServer);
