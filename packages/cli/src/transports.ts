import type { QueueAdmin, Transport } from "@tranche/core";
import type { Target, TransportName } from "./config.js";
import { UsageError } from "./errors.js";

/** A transport with its `QueueAdmin` methods: what every command works on. */
export type AdminTransport = Transport<unknown> & QueueAdmin<unknown>;

/** The package and class of each transport. */
const PACKAGES: Record<TransportName, { readonly name: string; readonly className: string }> = {
  memory: { name: "@tranche/memory", className: "MemoryTransport" },
  redis: { name: "@tranche/redis", className: "RedisStreamsTransport" },
  sqs: { name: "@tranche/sqs", className: "SqsTransport" },
  nats: { name: "@tranche/nats", className: "NatsTransport" },
  amqp: { name: "@tranche/amqp", className: "AmqpTransport" },
};

/** Loads a module by name (`import()`; a parameter, so tests can stand in for a package that is not installed). */
export type Importer = (specifier: string) => Promise<Record<string, unknown>>;

const importPackage: Importer = (specifier) => import(specifier) as Promise<Record<string, unknown>>;

/**
 * Opens the transport of `target`, loading its package only now: each is an optional peer
 * dependency of the CLI, installed by who uses it. One that is missing is a `UsageError` saying
 * what to install.
 */
export async function openTransport(target: Target, load: Importer = importPackage): Promise<AdminTransport> {
  const { name, className } = PACKAGES[target.transport];
  let module: Record<string, unknown>;
  try {
    module = await load(name);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // The package itself missing, not one of its own dependencies.
    const itself = String((error as Error).message).includes(`'${name}'`);
    if ((code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && itself) {
      throw new UsageError(`--transport ${target.transport} needs ${name}, which is not installed: npm install ${name}`);
    }
    throw error;
  }
  const Transport = module[className] as (new (options: Record<string, unknown>) => AdminTransport) | undefined;
  if (typeof Transport !== "function") throw new UsageError(`${name} has no ${className}: install a version that matches @tranche/cli`);
  const transport = new Transport(target.options);
  for (const method of ["depth", "deadLetters", "redrive", "purgeDeadLetters"] as const) {
    if (typeof transport[method] !== "function") {
      await transport.close();
      throw new UsageError(`${name} has no ${method}(): install a version with the dead-letter tooling (QueueAdmin)`);
    }
  }
  return transport;
}
