// `tranche` against a nats-server -js of its own.
import { randomUUID } from "node:crypto";
import { NatsTransport } from "@tranche/nats";
import { freePort, type NatsServer, startNatsServer } from "@tranche/nats/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, tranche } from "./support/run.js";

let server: NatsServer;
const opened: NatsTransport<unknown>[] = [];
beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await Promise.all(opened.map((t) => t.close()));
  await server?.close();
});

const never = new AbortController().signal;

describe("tranche on NATS JetStream", () => {
  it("depth, dlq ls, show, redrive and purge", async () => {
    const tag = `C${randomUUID().slice(0, 8)}`;
    const q = { stream: tag, subject: `cli.${tag}`, durable: `w_${tag}` };
    const transport = new NatsTransport<unknown>({ servers: server.url, ...q, wait: 300 });
    opened.push(transport);
    await transport.sendMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const got: Awaited<ReturnType<NatsTransport<unknown>["receive"]>> = [];
    while (got.length < 3) got.push(...(await transport.receive(3 - got.length, never)));
    for (const d of got.slice(0, 2)) await transport.deadLetter(d, new Error(`failed ${String((d.payload as { n: number }).n)}`));
    await transport.send({ n: 4 });
    const flags = ["--nats-url", server.url, "--stream", q.stream, "--subject", q.subject, "--durable", q.durable];

    const depth = await tranche(["depth", ...flags]);
    expect(depth.code, depth.stderr).toBe(0);
    expect(depth.stdout).toMatch(/^nats stream C\w+ at 127\.0\.0\.1:\d+, durable w_C\w+ \(exact\)\n\s+ready\s+1\n\s+delayed\s+0\n\s+in flight\s+1\n\s+dead-lettered\s+2\n$/);

    const listed = json(await tranche(["dlq", "ls", "--json", ...flags]));
    expect(listed.letters.map((l: { id: string }) => l.id)).toEqual(got.slice(0, 2).map((d) => d.id));
    expect((await tranche(["dlq", "show", got[0]!.id, ...flags])).stdout).toMatch(/reason\s+Error: failed \d\n/);

    expect(json(await tranche(["dlq", "redrive", got[0]!.id, "--json", ...flags]))).toEqual({ redriven: 1, requested: 1 });
    const back: typeof got = [];
    while (!back.some((d) => d.id === got[0]!.id)) back.push(...(await transport.receive(10, never)));
    expect(back.find((d) => d.id === got[0]!.id)).toMatchObject({ attempt: 1, retries: 0 });
    expect(json(await tranche(["dlq", "purge", "--all", "--yes", "--json", ...flags]))).toEqual({ purged: 1 });
    expect(json(await tranche(["depth", "--json", ...flags]))).toMatchObject({ deadLettered: 0 });
  });

  it("a server nobody answers on: exit 1 within seconds, one line naming it", async () => {
    const port = await freePort();
    const down = await tranche(["depth", "--nats-url", `nats://127.0.0.1:${port}`]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(new RegExp(`^tranche: \\[tranche/nats\\] .*127\\.0\\.0\\.1:${port}.*\\n$`));
    expect(down.took).toBeLessThan(15_000);
  });
});
