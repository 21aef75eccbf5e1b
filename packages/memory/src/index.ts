export { MemoryTransport } from "./memory-transport.js";
export type { MemoryTransportOptions, MemoryTransportStats } from "./memory-transport.js";
export { MemoryResultStore } from "./memory-result-store.js";
export type { MemoryResultStoreOptions } from "./memory-result-store.js";
