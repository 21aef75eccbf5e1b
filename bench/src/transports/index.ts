import type { TransportBench, TransportSuiteName } from "../transport-suite.js";
import { amqpBench } from "./amqp.js";
import { memoryBench } from "./memory.js";
import { natsBench } from "./nats.js";
import { redisBench } from "./redis.js";
import { sqsBench } from "./sqs.js";

/** The transport suites `--suite` can name, each a `TransportBench` in its own file. */
export const transportBenches: Record<TransportSuiteName, TransportBench> = {
  memory: memoryBench,
  redis: redisBench,
  sqs: sqsBench,
  nats: natsBench,
  amqp: amqpBench,
};
