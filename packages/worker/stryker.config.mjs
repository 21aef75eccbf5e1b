// `pnpm mutate:worker`: StrykerJS over the worker's sources, run from the repository root. The
// worker's tests import them from ../src, so its mutants run there; @tranche/core and
// @tranche/memory come from their built dist/.
import { strykerConfig } from "../../scripts/stryker-config.mjs";

export default strykerConfig({
  name: "worker",
  mutate: [
    "packages/worker/src/**/*.ts",
    // Re-exports and types only: nothing to mutate that a test could tell.
    "!packages/worker/src/index.ts",
    "!packages/worker/src/events.ts",
    "!packages/worker/src/stats.ts",
  ],
});
