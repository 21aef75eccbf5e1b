// A user's CommonJS module: the same packages through their `require` types (`.d.cts`).
// `@tranche/conformance` is left out: it is an ES module only.
import amqp = require("@tranche/amqp");
import cli = require("@tranche/cli");
import core = require("@tranche/core");
import testing = require("@tranche/core/testing");
import memory = require("@tranche/memory");
import nats = require("@tranche/nats");
import otel = require("@tranche/otel");
import redis = require("@tranche/redis");
import sqs = require("@tranche/sqs");
import worker = require("@tranche/worker");

const clock = new testing.SimulatedClock();
const batcher = new core.Batcher<string>({ flushEvery: 2 });
batcher.add({ id: "1", payload: "a" }, clock.now());
const batches: core.Batch<string>[] = batcher.poll(clock.now());

const double = core.batched<number, number>((requests) => requests.map((request) => request.payload * 2), { clock });
const transport = new memory.MemoryTransport<number>({ clock });
const running = new worker.Worker(transport, (requests: core.BatchRequest<number, void>[]) => requests.forEach((request) => request.ack()), { clock });
const telemetry = new otel.TrancheTelemetry({ destination: "numbers" });
const adapters = [amqp.AmqpTransport, nats.NatsTransport, redis.RedisStreamsTransport, sqs.SqsTransport];

const exit: Promise<cli.ExitCode> = cli.main(["--help"]);

export = { exit, batches, double, running, telemetry, adapters };
