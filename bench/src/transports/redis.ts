import { RedisStreamsTransport } from "@tranche/redis";
import { startRedisServer } from "@tranche/redis/testing";
import { createClient } from "redis";
import { type TransportBench, type TransportBenchSettings, type TransportContenders, fill, handler, timeWorker } from "../transport-suite.js";

/**
 * Redis Streams: a Worker on `RedisStreamsTransport` against a hand-written
 * `XREADGROUP … COUNT batchSize BLOCK` + `XACK` loop (node-redis, JSON payloads parsed), on one
 * `redis-server` (no persistence) that the bench starts on a free port. Each round fills a fresh
 * stream (not timed) and deletes it after.
 */
export const redisBench: TransportBench = {
  suite: "redis",
  items: { full: 100_000, quick: 20_000 },
  async open(settings: TransportBenchSettings): Promise<TransportContenders> {
    const server = await startRedisServer();
    const client = createClient({ url: server.url });
    client.on("error", () => {});
    await client.connect();
    let round = 0;

    /** A fresh stream holding `settings.items` entries and its group; not timed. */
    async function filledStream(): Promise<RedisStreamsTransport<number>> {
      const transport = new RedisStreamsTransport<number>({ client, stream: `bench-${round++}`, blockMs: 1000, trimInterval: Infinity });
      await fill(transport, settings.items, 10_000);
      return transport;
    }

    return {
      async worker() {
        const transport = await filledStream();
        const ms = await timeWorker(transport, settings.items, { flushEvery: settings.batchSize, flushInterval: 0 });
        await transport.close();
        await client.del([transport.keys.stream]);
        return ms;
      },

      async raw() {
        const transport = await filledStream();
        const { stream: key } = transport.keys;
        await transport.close();
        await client.xGroupCreate(key, transport.group, "0");
        let acked = 0;
        const started = performance.now();
        while (acked < settings.items) {
          const reply = await client.xReadGroup(transport.group, "raw", { key, id: ">" }, { COUNT: settings.batchSize, BLOCK: 1000 });
          const messages = (reply as { messages: { id: string; message: Record<string, string> }[] }[] | null)?.[0]?.messages ?? [];
          await handler(messages.map((m) => JSON.parse(m.message.payload!) as number));
          if (messages.length > 0) await client.xAck(key, transport.group, messages.map((m) => m.id));
          acked += messages.length;
        }
        const ms = performance.now() - started;
        await client.del([key]);
        return ms;
      },

      async close() {
        await client.close();
        await server.close();
      },
    };
  },
};
