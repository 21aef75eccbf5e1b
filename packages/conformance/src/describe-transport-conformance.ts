import { invalidOption } from "@tranche/core/internal";
import type { Transport, TransportCapabilities } from "@tranche/core";
import { describe, it } from "vitest";
import { conformanceCases } from "./cases.js";
import type { ConformanceCase, Requirement } from "./cases.js";
import { CLOSE_BOUND } from "./connection-cases.js";
import { openContext } from "./context.js";
import { bounded } from "./expectations.js";
import { checkTransportModel } from "./model.js";
import { type ConformanceOptions, PREFIX } from "./options.js";
import { TcpProxy } from "./tcp-proxy.js";
import { checkWorkerModel } from "./worker-model.js";

/** What `conformanceCase` requires, as a list. */
function requirements(conformanceCase: ConformanceCase): readonly Requirement[] {
  const { requires } = conformanceCase;
  return requires === undefined ? [] : typeof requires === "string" ? [requires] : requires;
}

/** The `QueueAdmin` methods the admin cases call. */
const ADMIN_METHODS = ["depth", "deadLetters", "redrive", "purgeDeadLetters"] as const;

/**
 * Why a case is skipped, or undefined when it runs. Without `transport` (before the queue is
 * made), only what the options tell.
 */
function skipReason(options: ConformanceOptions, conformanceCase: ConformanceCase, transport?: Transport<unknown>, capabilities?: TransportCapabilities): string | undefined {
  const needs = requirements(conformanceCase);
  if (needs.includes("server") && options.server === undefined) {
    return "connection faults need the transport's server: the options give no `server` (an in-process transport has no connection to cut)";
  }
  if (transport === undefined) return undefined;
  if (needs.includes("lease") && capabilities !== undefined && !capabilities.lease) return "the transport does not declare `lease`";
  const missing = ADMIN_METHODS.filter((method) => typeof transport[method] !== "function");
  if (needs.includes("admin") && missing.length > 0) {
    return `the transport has no QueueAdmin (no ${missing.join(", ")}): depth and dead-letter tooling are not checked`;
  }
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
  if (requirements(conformanceCase).includes("server")) {
    const server = typeof options.server === "function" ? await options.server() : options.server;
    proxy = await TcpProxy.start(server as NonNullable<typeof server>);
  }
  try {
    const { context, queue } = await openContext(options, conformanceCase.settings, proxy);
    let failed = false;
    try {
      const reason = skipReason(options, conformanceCase, context.transport, context.capabilities);
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
        requirements(conformanceCase).includes("server") ? caseTimeout * 3 : caseTimeout,
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
