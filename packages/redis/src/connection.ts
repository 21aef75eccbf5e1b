import { createClient } from "redis";
import type { AnyRedisClient } from "./options.js";

/** Connection errors surface as rejected commands; the client reconnects by itself. */
export function ignore(): void {}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Closes gracefully (pending replies first), or drops the connection when the server does not answer. */
export async function closeClient(client: AnyRedisClient, grace = 1000): Promise<void> {
  if (!client.isOpen) return;
  try {
    await Promise.race([client.close(), sleep(grace)]);
  } catch {
    // Closing a connection that broke meanwhile: nothing left to close gracefully.
  }
  if (client.isOpen) client.destroy();
}

/** The command client of a transport or store: the user's (left open on close) or one it opened from a URL. */
export class CommandClient {
  readonly client: AnyRedisClient;
  private readonly owned: boolean;
  private connecting: Promise<void> | undefined;

  constructor(connection: { client: AnyRedisClient } | { url: string }) {
    if ("client" in connection) {
      this.client = connection.client;
      this.owned = false;
    } else {
      this.client = createClient({ url: connection.url }) as AnyRedisClient;
      this.client.on("error", ignore);
      this.owned = true;
    }
  }

  /** Connects once (a user's client only if it is not open yet); a failed attempt is tried again next time. */
  connect(): Promise<void> {
    this.connecting ??= (this.client.isOpen ? Promise.resolve() : this.client.connect().then(ignore)).catch((error: unknown) => {
      this.connecting = undefined;
      throw error;
    });
    return this.connecting;
  }

  /** A new connection with the client's options, for blocking reads or pub/sub. */
  async duplicate(): Promise<AnyRedisClient> {
    await this.connect();
    const connection = this.client.duplicate() as AnyRedisClient;
    connection.on("error", ignore);
    await connection.connect();
    return connection;
  }

  async close(): Promise<void> {
    if (this.owned) await closeClient(this.client);
  }
}
