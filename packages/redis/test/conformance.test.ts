import { describeTransportConformance } from "@tranche/conformance";
import { afterAll } from "vitest";
import { RedisStreamsTransport } from "../src/index.js";
import { testServer, uniqueStream } from "./support/redis.js";

const server = await testServer();
afterAll(() => server.close());

describeTransportConformance({
  name: "RedisStreamsTransport",
  async create({ lease, wait }) {
    const stream = uniqueStream("conformance");
    const open = (): RedisStreamsTransport => new RedisStreamsTransport({ url: server.url, stream, minIdle: lease, blockMs: wait });
    const admin = open();
    const consumers: RedisStreamsTransport[] = [];
    return {
      connect: async () => consumers[consumers.push(open()) - 1]!,
      sendRaw: async (raw) => void (await admin.sendRaw(raw)),
      deadLetters: async () => (await admin.deadLetters()).map((d) => ({ id: d.id, reason: d.reason })),
      close: () => Promise.all([admin, ...consumers].map((t) => t.close())).then(() => undefined),
    };
  },
});
