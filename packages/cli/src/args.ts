import { parseArgs } from "node:util";
import { UsageError } from "./errors.js";

/** Every flag `tranche` knows; a flag not listed is a usage error. */
const OPTIONS = {
  transport: { type: "string" },
  json: { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  limit: { type: "string" },
  after: { type: "string" },
  all: { type: "boolean" },
  delay: { type: "string" },
  "redis-url": { type: "string" },
  stream: { type: "string" },
  group: { type: "string" },
  "dead-letter-stream": { type: "string" },
  "queue-url": { type: "string" },
  "dlq-url": { type: "string" },
  endpoint: { type: "string" },
  region: { type: "string" },
  "nats-url": { type: "string" },
  durable: { type: "string" },
  subject: { type: "string" },
  "dead-letter-subject": { type: "string" },
  "amqp-url": { type: "string" },
  queue: { type: "string" },
  "dead-letter-queue": { type: "string" },
} as const;

/** The flags given, by name; `undefined` when absent. */
export type Flags = {
  -readonly [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]["type"] extends "boolean" ? boolean : string;
};

/** What the command line asks for. */
export type Command =
  | { readonly name: "help" }
  | { readonly name: "version" }
  | { readonly name: "depth" }
  | { readonly name: "ls" }
  | { readonly name: "show"; readonly id: string }
  | { readonly name: "redrive"; readonly ids: readonly string[] | "all" }
  | { readonly name: "purge"; readonly ids: readonly string[] | "all" };

export interface CommandLine {
  readonly command: Command;
  readonly flags: Flags;
}

const DLQ_COMMANDS = ["ls", "show", "redrive", "purge"];

/** Parses `argv` (without node and the script) with `node:util`'s `parseArgs`; throws `UsageError`. */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const parsed = parse(argv);
  const flags = parsed.values as Flags;
  const [first, second, ...rest] = parsed.positionals;
  if (flags.help || first === "help") return { command: { name: "help" }, flags };
  if (flags.version) return { command: { name: "version" }, flags };
  if (first === undefined) throw new UsageError("a command is needed: depth, or dlq ls|show|redrive|purge (tranche --help)");
  if (first === "depth") {
    if (second !== undefined) throw new UsageError(`depth takes no arguments, got ${JSON.stringify(second)}`);
    return { command: { name: "depth" }, flags };
  }
  if (first !== "dlq") throw new UsageError(`unknown command ${JSON.stringify(first)}: depth, or dlq ls|show|redrive|purge (tranche --help)`);
  if (second === undefined || !DLQ_COMMANDS.includes(second)) {
    throw new UsageError(`dlq needs one of ${DLQ_COMMANDS.join(", ")}${second === undefined ? "" : `, got ${JSON.stringify(second)}`}`);
  }
  if (second === "ls") {
    if (rest.length > 0) throw new UsageError(`dlq ls takes no ids (page with --limit and --after), got ${JSON.stringify(rest[0])}`);
    return { command: { name: "ls" }, flags };
  }
  if (second === "show") {
    if (rest.length !== 1) throw new UsageError("dlq show takes one id");
    return { command: { name: "show", id: rest[0] as string }, flags };
  }
  if (flags.all && rest.length > 0) throw new UsageError(`dlq ${second}: give ids or --all, not both`);
  if (!flags.all && rest.length === 0) throw new UsageError(`dlq ${second} needs the ids of the dead letters, or --all`);
  const ids = flags.all ? "all" : rest;
  return { command: second === "redrive" ? { name: "redrive", ids } : { name: "purge", ids }, flags };
}

function parse(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
  }
}

/** A whole number ≥ 1 from a flag. */
export function count(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} must be a whole number ≥ 1, got ${JSON.stringify(value)}`);
  return n;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds from a duration flag: `1500`, `1500ms`, `30s`, `5m`, `1h`. */
export function duration(name: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (match === null) throw new UsageError(`--${name} must be a duration (1500, 1500ms, 30s, 5m, 1h), got ${JSON.stringify(value)}`);
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? "ms"] as number));
}

/** The help screen. */
export const HELP = `tranche — queue depth and dead letters of a tranche queue

Usage
  tranche depth                              messages by state: ready, delayed, in flight, dead-lettered
  tranche dlq ls [--limit n] [--after id]    dead letters, oldest first (--all: every one)
  tranche dlq show <id>                      one dead letter in full: payload, reason, stack
  tranche dlq redrive <id…> | --all          send dead letters back to the queue, as fresh items
                 [--delay 30s]               … not before this long from now
  tranche dlq purge <id…> | --all [--yes]    delete dead letters for good (asks first)

Options
  --json                 machine-readable output on stdout
  --yes, -y              purge without asking (needed when stdin is not a terminal)
  --transport <name>     memory | redis | sqs | nats | amqp; else inferred from the flags or
                         the environment (the one of REDIS_URL, SQS_QUEUE_URL, NATS_URL, AMQP_URL set)

Redis     --redis-url (REDIS_URL)  --stream (TRANCHE_STREAM)  --group [tranche]  --dead-letter-stream
SQS       --queue-url (SQS_QUEUE_URL)  --dlq-url (SQS_DLQ_URL)  --endpoint (SQS_ENDPOINT)  --region (AWS_REGION)
NATS      --nats-url (NATS_URL)  --stream (TRANCHE_STREAM)  --durable [tranche-worker]  --subject  --dead-letter-subject
RabbitMQ  --amqp-url (AMQP_URL)  --queue (TRANCHE_QUEUE) [tranche]  --dead-letter-queue

Exit codes
  0  done
  1  the operation failed: the broker unreachable, no such dead letter, a purge declined
  2  usage: an unknown flag, missing configuration, a transport package not installed,
     a purge without --yes and no terminal to ask on
`;
