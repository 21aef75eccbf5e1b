export { Batcher } from "./batcher-api.js";
export type { AddResult, Batch, BatcherConstructor, BatcherStats, Coalesced, Item, NewItem } from "./batcher-api.js";
export { batched } from "./batched.js";
export type { BatchOptions, Batched, BatchedStats, CallOptions } from "./batched.js";
export type { BatchContext, BatchHandler, BatchRequest } from "./handler.js";
export { systemClock } from "./clock.js";
export type { Clock } from "./clock.js";
export { jsonCodec } from "./codec.js";
export type { Codec } from "./codec.js";
export {
  BatchResultError,
  BufferFullError,
  ClosedError,
  DecodeError,
  OversizeError,
  RetriesExhaustedError,
  SettledError,
  TimeoutError,
  TrancheError,
  TransportError,
} from "./errors.js";
export type { Backoff, BatcherOptions, FlushReason, RetryOptions } from "./options.js";
export type {
  DeadLetter,
  DeadLetterPage,
  Delivery,
  ErrorInfo,
  Outcome,
  QueueAdmin,
  QueueDepth,
  ResultStore,
  SendManyOptions,
  SendOptions,
  Transport,
  TransportCapabilities,
} from "./transport.js";
