import { describeTransportConformance } from "@tranche/conformance";
import { afterAll } from "vitest";
import { RedisStreamsTransport } from "../src/index.js";
import { testServer, uniqueStream } from "./support/redis.js";

const server = await testServer();
afterAll(() => server.close());
const { hostname, port } = new URL(server.url);

describeTransportConformance({
  name: "RedisStreamsTransport",
  // The connection cases put a TcpProxy in front of it and hand its address to `create` as `endpoint`.
  server: { host: hostname, port: Number(port || 6379) },
  async create({ lease, wait, endpoint }) {
    const stream = uniqueStream("conformance");
    const url = endpoint === undefined ? server.url : `redis://${endpoint.host}:${endpoint.port}`;
    const open = (at: string): RedisStreamsTransport => new RedisStreamsTransport({ url: at, stream, minIdle: lease, blockMs: wait });
    const admin = open(server.url);
    const consumers: RedisStreamsTransport[] = [];
    return {
      connect: async () => consumers[consumers.push(open(url)) - 1]!,
      sendRaw: async (raw) => void (await admin.sendRaw(raw)),
      close: () => Promise.all([admin, ...consumers].map((t) => t.close())).then(() => undefined),
    };
  },
});
