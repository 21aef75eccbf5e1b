import { startNatsServer, type NatsServer } from "../../src/testing.js";

/**
 * The server a test file talks to: `NATS_URL` when set, else its own `nats-server -js` on a free
 * port with a temporary store directory. Call `close` in `afterAll`.
 */
export async function testServer(): Promise<{ url: string; close(): Promise<void> }> {
  const existing = process.env.NATS_URL;
  if (existing !== undefined && existing !== "") return { url: existing, close: async () => {} };
  const server: NatsServer = await startNatsServer();
  return { url: server.url, close: () => server.close() };
}

let counter = 0;
/** A stream/subject/durable triple no other test uses. */
export function uniqueQueue(prefix = "T"): { stream: string; subject: string; durable: string } {
  const tag = `${prefix}${process.pid}_${Date.now().toString(36)}_${counter++}`;
  return { stream: tag, subject: `tranche.test.${tag}`, durable: `w_${tag}` };
}
