export { SqsTransport } from "./sqs-transport.js";
export type { SqsSendManyOptions, SqsSendOptions } from "./sqs-transport.js";
export { SQS_ATTRIBUTES, SQS_MAX_ATTRIBUTES, messageBytes } from "./attributes.js";
export { SqsSendError, SqsTransportError } from "./errors.js";
export type { SqsEntryFailure } from "./errors.js";
export { SQS_MAX_BATCH_BYTES, SQS_MAX_DELAY_MS, SQS_MAX_MESSAGE_BYTES, SQS_MAX_VISIBILITY_MS } from "./options.js";
export type { SqsTransportOptions } from "./options.js";
