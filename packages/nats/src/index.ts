export { NatsTransport } from "./nats-transport.js";
export { NatsKvResultStore } from "./nats-kv-result-store.js";
export type { NatsKvResultStoreOptions } from "./nats-kv-result-store.js";
export { NatsPullError, NatsSetupError } from "./errors.js";
export { Header } from "./headers.js";
export type { LedgerOptions, NatsConnectionOptions, NatsTransportOptions } from "./options.js";
