export { Batcher } from "./batcher.js";
export type { AddResult, Batch, BatcherStats, Coalesced, Flight, Item, NewItem } from "./batcher.js";
export { batched } from "./batched.js";
export type { BatchOptions, Batched, BatchedStats, CallOptions } from "./batched.js";
export { BatchDriver, DriverRequest } from "./driver.js";
export type { BatchContext, BatchHandler, BatchRequest, DriverItem } from "./driver.js";
export { systemClock } from "./clock.js";
export type { Clock } from "./clock.js";
export { decodeWith, jsonCodec } from "./codec.js";
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
export { Heap } from "./heap.js";
export { backoffDelay, resolveOptions } from "./options.js";
export type { Backoff, BatcherOptions, FlushReason, ResolvedOptions, RetryOptions } from "./options.js";
export { errorInfo } from "./transport.js";
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
export { checkDeadLetterIds, checkDeadLetterPage, checkHeaders, checkInteger, checkMs, checkTime, invalidOption, quote } from "./validation.js";
export type { CheckOptions, RangeOptions } from "./validation.js";
