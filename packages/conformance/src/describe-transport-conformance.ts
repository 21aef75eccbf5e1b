import { invalidOption } from "@tranche/core";
import { describe, it } from "vitest";
import { conformanceCases } from "./cases.js";
import type { ConformanceCase } from "./cases.js";
import { openContext } from "./context.js";
import { checkTransportModel } from "./model.js";
import { type ConformanceOptions, PREFIX } from "./options.js";

/**
 * Runs one case on a fresh queue and closes it. Rejects with the case's assertion error, or
 * resolves `"skipped"` when the transport lacks the capability the case needs.
 */
export async function runConformanceCase(options: ConformanceOptions, name: string): Promise<"passed" | "skipped"> {
  const found = conformanceCases.find((c) => c.name === name);
  if (found === undefined) throw invalidOption("name", "the name of a case", name, PREFIX);
  return runCase(options, found);
}

async function runCase(options: ConformanceOptions, conformanceCase: ConformanceCase): Promise<"passed" | "skipped"> {
  const { context, queue } = await openContext(options, conformanceCase.settings);
  try {
    if (conformanceCase.requires !== undefined && !context.capabilities[conformanceCase.requires]) return "skipped";
    await conformanceCase.run(context);
    return "passed";
  } finally {
    await queue.close();
  }
}

/**
 * Registers the transport conformance suite as vitest `describe`/`it` blocks: one `it` per case
 * (see `conformanceCases`) plus the model-based property test (`checkTransportModel`). Call it at
 * the top level of a test file.
 */
export function describeTransportConformance(options: ConformanceOptions): void {
  if (typeof options !== "object" || options === null || typeof options.create !== "function") {
    throw invalidOption("options", "an object with create()", options, PREFIX);
  }
  const scale = options.timeScale ?? 1;
  // Real-time cases sleep a few leases at most; the model test sleeps through its sequences.
  const caseTimeout = 30_000 + 30_000 * scale;
  const modelTimeout = 120_000 + 120_000 * scale;
  describe(`transport conformance: ${options.name}`, () => {
    for (const conformanceCase of conformanceCases) {
      it(
        conformanceCase.name,
        async (test) => {
          if ((await runCase(options, conformanceCase)) === "skipped") test.skip(`the transport does not declare \`${conformanceCase.requires}\``);
        },
        caseTimeout,
      );
    }
    it("model: at-least-once, nothing after its ack, no retry before notBefore, one lease at a time", () => checkTransportModel(options), modelTimeout);
  });
}
