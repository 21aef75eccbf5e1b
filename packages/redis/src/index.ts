export { RedisStreamsTransport } from "./redis-streams-transport.js";
export { RedisDelivery } from "./redis-delivery.js";
export { RedisResultStore } from "./redis-result-store.js";
export type { RedisResultStoreOptions } from "./redis-result-store.js";
export type { AnyRedisClient, RedisConnection, RedisStreamsTransportOptions, RedisTimeouts } from "./options.js";
