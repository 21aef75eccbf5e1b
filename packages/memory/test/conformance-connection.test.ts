// The suite's connection-fault cases need a transport with a server to cut off. MemoryTransport
// has none, so here its queues are served over TCP (conformance-net-transport.ts): a correct
// client passes every connection case, and clients with the classic bugs fail them.
import type * as net from "node:net";
import { conformanceCases, runConformanceCase } from "@tranche/conformance";
import type { ConformanceOptions } from "@tranche/conformance";
import { afterAll, describe, expect, it } from "vitest";
import { NetTransport, type NetTransportOptions, QueueServer } from "./conformance-net-transport.js";

const server = await QueueServer.start();
afterAll(() => server.close());

type Client = new (options: NetTransportOptions) => NetTransport;
let queues = 0;

function suiteOn(Client: Client, timeScale = 1): ConformanceOptions {
  return {
    name: Client.name,
    server: server.endpoint,
    timeScale,
    async create({ lease, wait, endpoint }) {
      const name = `conformance-${++queues}`;
      const queue = server.open(name, { lease, wait });
      const clients: NetTransport[] = [];
      const at = endpoint ?? server.endpoint;
      return {
        connect: async () => clients[clients.push(new Client({ host: at.host, port: at.port, queue: name, wait })) - 1] as NetTransport,
        sendRaw: async (raw) => void (await queue.sendRaw(raw)),
        deadLetters: async () => (await queue.deadLetters()).map((l) => ({ id: l.id, reason: l.reason.message })),
        close: async () => {
          await Promise.all(clients.map((c) => c.close()));
          await server.drop(name);
        },
      };
    },
  };
}

/** Waits for the server however long it takes: a call never fails while it is unreachable. */
class QueuesWhileDown extends NetTransport {
  protected override async connect(): Promise<net.Socket> {
    for (;;) {
      try {
        return await super.connect();
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}

/** Once its connection is lost, it never connects again. */
class NeverReconnects extends NetTransport {
  private connected = false;
  protected override async connect(): Promise<net.Socket> {
    if (this.connected && (this.socket === undefined || this.socket.destroyed)) throw new Error("connection lost");
    const socket = await super.connect();
    this.connected = true;
    return socket;
  }
}

/** Waits for a reply for ever: a silent connection is never found dead. */
class NoReplyTimeout extends NetTransport {
  constructor(options: NetTransportOptions) {
    super({ ...options, replyTimeout: 2_000_000_000 });
  }
}

const connectionCases = conformanceCases.filter((c) => c.requires === "server");

describe("connection faults through a TcpProxy, on MemoryTransport queues served over TCP", () => {
  it("the suite has the three connection cases", () => {
    expect(connectionCases.map((c) => c.name.split(":")[0])).toEqual(["connection", "connection", "connection"]);
  });

  for (const connectionCase of connectionCases) {
    it(`a client that fails fast and reconnects passes "${connectionCase.name}"`, async () => {
      expect(await runConformanceCase(suiteOn(NetTransport), connectionCase.name)).toBe("passed");
    }, 120_000);
  }

  // At a third of the suite's times: a broken client waits out the whole recovery bound.
  const caught: [Client, string, RegExp][] = [
    [QueuesWhileDown, "server unreachable", /did not settle within/],
    [NeverReconnects, "cut mid-run", /after the heal, the worker never ran/],
    [NoReplyTimeout, "black-holed", /after the heal, the worker never ran/],
  ];
  for (const [Broken, fragment, why] of caught) {
    it(`${Broken.name} fails "${fragment}"`, async () => {
      const name = connectionCases.find((c) => c.name.includes(fragment))?.name as string;
      await expect(runConformanceCase(suiteOn(Broken, 0.3), name)).rejects.toThrow(why);
    }, 120_000);
  }
});
