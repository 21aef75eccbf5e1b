export { AmqpTransport } from "./amqp-transport.js";
export { AmqpTopologyError } from "./errors.js";
export { Header } from "./headers.js";
export type { AmqpConnectionOptions, AmqpTransportOptions, QueueType } from "./options.js";
