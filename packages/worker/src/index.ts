export { Worker } from "./worker.js";
export type { CloseOptions } from "./worker.js";
export type { WorkerStats } from "./stats.js";
export type { WorkerOptions } from "./options.js";
export type { DeadLetterEvent, FlushEvent, RetryEvent, SettledEvent, WorkerEvents } from "./events.js";
export { DeliveryLimitError, TransportOperationError, isRetryable } from "./errors.js";
export type { TransportOperation } from "./errors.js";
