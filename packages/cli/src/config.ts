import type { Flags } from "./args.js";
import { UsageError } from "./errors.js";

/** The transports `tranche` drives, each from its own package. */
export const TRANSPORTS = ["memory", "redis", "sqs", "nats", "amqp"] as const;
export type TransportName = (typeof TRANSPORTS)[number];

/** Which queue to look at, on which broker, and how to name it to a person. */
export interface Target {
  readonly transport: TransportName;
  /** The options of the transport's constructor. */
  readonly options: Record<string, unknown>;
  /** E.g. `redis stream {orders} at 127.0.0.1:6379, group tranche`. */
  readonly label: string;
  /** The queue's name as `--json` reports it. */
  readonly queue: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The flag or environment variable that selects each broker when `--transport` is absent. */
const SELECTORS: Record<Exclude<TransportName, "memory">, { flag: keyof Flags; env: string }> = {
  redis: { flag: "redis-url", env: "REDIS_URL" },
  sqs: { flag: "queue-url", env: "SQS_QUEUE_URL" },
  nats: { flag: "nats-url", env: "NATS_URL" },
  amqp: { flag: "amqp-url", env: "AMQP_URL" },
};

/** Flags of each broker, for "this flag belongs to another transport" errors. */
const OWN_FLAGS: Record<TransportName, readonly (keyof Flags)[]> = {
  memory: [],
  redis: ["redis-url", "stream", "group", "dead-letter-stream"],
  sqs: ["queue-url", "dlq-url", "endpoint", "region"],
  nats: ["nats-url", "stream", "durable", "subject", "dead-letter-subject"],
  amqp: ["amqp-url", "queue", "dead-letter-queue"],
};

/** The transport to use: `--transport`, else the one whose URL flag is given, else the one whose URL is in the environment. */
export function chooseTransport(flags: Flags, env: Env): TransportName {
  if (flags.transport !== undefined) {
    if (!(TRANSPORTS as readonly string[]).includes(flags.transport)) {
      throw new UsageError(`--transport must be one of ${TRANSPORTS.join(", ")}, got ${JSON.stringify(flags.transport)}`);
    }
    return flags.transport as TransportName;
  }
  const entries = Object.entries(SELECTORS) as [Exclude<TransportName, "memory">, { flag: keyof Flags; env: string }][];
  const byFlag = entries.filter(([, s]) => flags[s.flag] !== undefined);
  if (byFlag.length > 1) throw new UsageError(`flags of several brokers (${byFlag.map(([, s]) => `--${s.flag}`).join(", ")}): give one, or --transport`);
  if (byFlag.length === 1) return (byFlag[0] as [Exclude<TransportName, "memory">, unknown])[0];
  const byEnv = entries.filter(([, s]) => (env[s.env] ?? "") !== "");
  if (byEnv.length === 1) return (byEnv[0] as [Exclude<TransportName, "memory">, unknown])[0];
  if (byEnv.length > 1) throw new UsageError(`several brokers in the environment (${byEnv.map(([, s]) => s.env).join(", ")}): pass --transport`);
  throw new UsageError("no broker given: pass --redis-url, --queue-url, --nats-url or --amqp-url (or set REDIS_URL, SQS_QUEUE_URL, NATS_URL or AMQP_URL), or --transport");
}

/** The transport and its options from the flags, then the environment. Throws `UsageError` for what is missing or misplaced. */
export function resolveTarget(flags: Flags, env: Env): Target {
  const transport = chooseTransport(flags, env);
  const foreign = TRANSPORTS.filter((t) => t !== transport)
    .flatMap((t) => OWN_FLAGS[t])
    .filter((flag) => flags[flag] !== undefined && !OWN_FLAGS[transport].includes(flag));
  if (foreign.length > 0) throw new UsageError(`--${foreign[0]} is not a setting of --transport ${transport}`);
  const pick = (flag: keyof Flags, name?: string): string | undefined => {
    const value = flags[flag] ?? (name === undefined ? undefined : env[name]);
    return value === "" ? undefined : (value as string | undefined);
  };
  const need = (flag: keyof Flags, name?: string): string => {
    const value = pick(flag, name);
    if (value === undefined) throw new UsageError(`${transport} needs --${flag}${name === undefined ? "" : ` (or ${name})`}`);
    return value;
  };
  switch (transport) {
    case "memory":
      return { transport, options: {}, label: "an in-process memory queue (empty: it lives only as long as this command)", queue: "memory" };
    case "redis": {
      const url = need("redis-url", "REDIS_URL");
      const stream = need("stream", "TRANCHE_STREAM");
      const group = pick("group") ?? "tranche";
      const deadLetterStream = pick("dead-letter-stream");
      return {
        transport,
        options: { url, stream, group, ...(deadLetterStream === undefined ? {} : { deadLetterStream }) },
        label: `redis stream ${stream} at ${address(url)}, group ${group}`,
        queue: stream,
      };
    }
    case "sqs": {
      const queueUrl = need("queue-url", "SQS_QUEUE_URL");
      const deadLetterQueueUrl = pick("dlq-url", "SQS_DLQ_URL");
      const endpoint = pick("endpoint", "SQS_ENDPOINT");
      const region = pick("region", "AWS_REGION") ?? env.AWS_DEFAULT_REGION;
      return {
        transport,
        options: {
          queueUrl,
          ...(deadLetterQueueUrl === undefined ? {} : { deadLetterQueueUrl }),
          ...(endpoint === undefined ? {} : { endpoint }),
          ...(region === undefined || region === "" ? {} : { region }),
        },
        label: `sqs queue ${queueUrl}`,
        queue: queueUrl,
      };
    }
    case "nats": {
      const url = need("nats-url", "NATS_URL");
      const stream = pick("stream", "TRANCHE_STREAM") ?? "TRANCHE";
      const options: Record<string, unknown> = { servers: url, stream };
      for (const [flag, option] of [["durable", "durable"], ["subject", "subject"], ["dead-letter-subject", "deadLetterSubject"]] as const) {
        const value = pick(flag);
        if (value !== undefined) options[option] = value;
      }
      return { transport, options, label: `nats stream ${stream} at ${address(url)}, durable ${(options.durable as string | undefined) ?? "tranche-worker"}`, queue: stream };
    }
    case "amqp": {
      const url = need("amqp-url", "AMQP_URL");
      const queue = pick("queue", "TRANCHE_QUEUE") ?? "tranche";
      const deadLetterQueue = pick("dead-letter-queue");
      return {
        transport,
        options: { url, queue, ...(deadLetterQueue === undefined ? {} : { deadLetterQueue }) },
        label: `rabbitmq queue ${queue} at ${address(url)}`,
        queue,
      };
    }
  }
}

/** `host:port` of a broker URL, without credentials (what a person needs to tell brokers apart). */
function address(url: string): string {
  try {
    const u = new URL(url);
    return u.host === "" ? url : u.host;
  } catch {
    return url;
  }
}
