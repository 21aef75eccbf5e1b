/**
 * Attribute and header names. The `messaging.*` and `error.type` attributes are OpenTelemetry's
 * messaging semantic conventions; `tranche.*` ones are what those conventions have no name for.
 */
export const ATTR = {
  system: "messaging.system",
  destination: "messaging.destination.name",
  consumerGroup: "messaging.consumer.group.name",
  operationType: "messaging.operation.type",
  operationName: "messaging.operation.name",
  messageId: "messaging.message.id",
  batchCount: "messaging.batch.message_count",
  errorType: "error.type",
  batchId: "tranche.batch.id",
  flushReason: "tranche.flush.reason",
  group: "tranche.group",
  outcome: "tranche.outcome",
  retryable: "tranche.retryable",
  attempt: "tranche.attempt",
  notBefore: "tranche.retry.not_before",
  deadLetterReason: "tranche.dead_letter.reason",
  deadLetterMessage: "tranche.dead_letter.message",
} as const;

/**
 * The header a traced `send` adds: the producer's clock (epoch ms) at the send, from which a
 * settle measures enqueue-to-settle latency. Not `tranche-…`: transports keep that prefix for
 * their own headers and drop it from copies.
 */
export const SENT_AT = "x-tranche-sent-at";

/** `messaging.system` of each tranche transport (by `transport.name`): the conventions' value where they have one. */
export const SYSTEMS: Readonly<Record<string, string>> = { sqs: "aws_sqs", amqp: "rabbitmq", redis: "redis", nats: "nats", memory: "memory" };

/** Longest dead-letter reason message kept on a span. */
export const MAX_REASON = 1000;
