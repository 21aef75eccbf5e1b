import { describeTransportConformance } from "@tranche/conformance";
import { brokerEndpoint, createAmqpQueue } from "./support/conformance-queue.js";

// Against the shared RabbitMQ (AMQP_URL, else 127.0.0.1:5672); real time, so no `advance`.
describeTransportConformance({
  name: "AmqpTransport",
  create: createAmqpQueue,
  server: brokerEndpoint(),
  capabilities: { maxReceive: 100, nativeDelay: false, lease: false, nativeDeadLetter: false },
  // AMQP 0-9-1 tells a queue's ready messages, not its unacknowledged ones.
  uncountedDepth: ["inFlight"],
});
