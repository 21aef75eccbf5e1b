/**
 * What tranche's own packages (`@tranche/worker`, the transports) share beyond the public API:
 * the driver base a `Worker` extends, the Batcher's entries and in-flight batches, option
 * checkers and helpers for transports. A transport written outside this repository may use
 * them; they follow the package's version but are not covered by the public API's stability.
 *
 * @module
 */
export { Batcher } from "./batcher.js";
export { Entry } from "./entry.js";
export { Flight } from "./flight.js";
export type { Thresholds } from "./batcher.js";
export { BatchDriver, DriverRequest } from "./driver.js";
export type { DriverItem } from "./driver.js";
export { decodeWith } from "./codec.js";
export { Heap } from "./heap.js";
export { backoffDelay, resolveOptions } from "./options.js";
export type { ResolvedOptions } from "./options.js";
export { errorInfo } from "./transport.js";
export { checkDeadLetterIds, checkDeadLetterPage, checkHeaders, checkInteger, checkMs, checkTime, invalidOption, quote } from "./validation.js";
export type { CheckOptions, RangeOptions } from "./validation.js";
