import { invalidOption } from "@tranche/core";
import { describe, it } from "vitest";
import { conformanceCases } from "./cases.js";
import type { ConformanceCase } from "./cases.js";
import { CLOSE_BOUND } from "./connection-cases.js";
import { openContext } from "./context.js";
import { bounded } from "./expectations.js";
import { checkTransportModel } from "./model.js";
import { type ConformanceOptions, PREFIX } from "./options.js";
import { TcpProxy } from "./tcp-proxy.js";
import { checkWorkerModel } from "./worker-model.js";

/** Why a case was skipped, or undefined when it runs. */
function skipReason(options: ConformanceOptions, conformanceCase: ConformanceCase, capabilities?: { lease: boolean }): string | undefined {
  if (conformanceCase.requires === "server" && options.server === undefined) {
    return "connection faults need the transport's server: the options give no `server` (an in-process transport has no connection to cut)";
  }
  if (conformanceCase.requires === "lease" && capabilities !== undefined && !capabilities.lease) return "the transport does not declare `lease`";
  return undefined;
}

/**
 * Runs one case on a fresh queue and closes it. Rejects with the case's assertion error, or
 * resolves `"skipped"` when the transport lacks what the case needs (a capability, a `server`).
 */
export async function runConformanceCase(options: ConformanceOptions, name: string): Promise<"passed" | "skipped"> {
  const found = conformanceCases.find((c) => c.name === name);
  if (found === undefined) throw invalidOption("name", "the name of a case", name, PREFIX);
  return (await runCase(options, found)) === undefined ? "passed" : "skipped";
}

/** Runs a case; resolves undefined when it passed, else why it was skipped. */
async function runCase(options: ConformanceOptions, conformanceCase: ConformanceCase): Promise<string | undefined> {
  const early = skipReason(options, conformanceCase);
  if (early !== undefined) return early;
  let proxy: TcpProxy | undefined;
  if (conformanceCase.requires === "server") {
    const server = typeof options.server === "function" ? await options.server() : options.server;
    proxy = await TcpProxy.start(server as NonNullable<typeof server>);
  }
  try {
    const { context, queue } = await openContext(options, conformanceCase.settings, proxy);
    let failed = false;
    try {
      const reason = skipReason(options, conformanceCase, context.capabilities);
      if (reason !== undefined) return reason;
      await conformanceCase.run(context).catch((error: unknown) => {
        failed = true;
        throw error;
      });
      return undefined;
    } finally {
      proxy?.heal();
      // A failed close after a failed case would hide the case's failure.
      const closing = bounded(queue.close(), CLOSE_BOUND, "queue.close()");
      await (failed ? closing.catch(() => {}) : closing);
    }
  } finally {
    await proxy?.close();
  }
}

/**
 * Registers the transport conformance suite as vitest `describe`/`it` blocks: one `it` per case
 * (see `conformanceCases`), the model-based property test (`checkTransportModel`) and the worker
 * model under call faults (`checkWorkerModel`). Call it at the top level of a test file.
 */
export function describeTransportConformance(options: ConformanceOptions): void {
  if (typeof options !== "object" || options === null || typeof options.create !== "function") {
    throw invalidOption("options", "an object with create()", options, PREFIX);
  }
  const scale = options.timeScale ?? 1;
  // Real-time cases sleep a few leases at most; connection cases wait for a reconnect; the models sleep through their sequences.
  const caseTimeout = 30_000 + 30_000 * scale;
  const modelTimeout = 120_000 + 120_000 * scale;
  describe(`transport conformance: ${options.name}`, () => {
    for (const conformanceCase of conformanceCases) {
      it(
        conformanceCase.name,
        async (test) => {
          const skipped = await runCase(options, conformanceCase);
          if (skipped !== undefined) test.skip(skipped);
        },
        conformanceCase.requires === "server" ? caseTimeout * 3 : caseTimeout,
      );
    }
    it("model: at-least-once, nothing after its ack, no retry before notBefore, one lease at a time", () => checkTransportModel(options), modelTimeout);
    it(
      "worker model: under random call faults a Worker loses nothing, re-runs only what was in doubt, keeps the retry lower bound, and drains once faults stop",
      () => checkWorkerModel(options),
      modelTimeout,
    );
  });
}
