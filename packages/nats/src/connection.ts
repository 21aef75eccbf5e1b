import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { NatsConnectionOptions } from "./options.js";

/** A connection an adapter uses, and whether it must close it. */
export interface HeldConnection {
  readonly nc: NatsConnection;
  readonly owned: boolean;
}

/** The given connection, or a new one to `servers` that reconnects forever (a restarted server must not stop a worker). */
export async function openConnection(options: NatsConnectionOptions, name: string): Promise<HeldConnection> {
  if (options.connection !== undefined) return { nc: options.connection, owned: false };
  const nc = await connect({
    servers: options.servers ?? "nats://127.0.0.1:4222",
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  });
  return { nc, owned: true };
}

/** Closes the connection if the adapter opened it, after flushing what it published. */
export async function releaseConnection(held: HeldConnection | undefined): Promise<void> {
  if (held === undefined || !held.owned || held.nc.isClosed()) return;
  try {
    await held.nc.flush();
  } catch {
    // closing anyway
  }
  await held.nc.close();
}
