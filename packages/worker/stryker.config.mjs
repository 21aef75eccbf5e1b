// `pnpm mutate:worker`: StrykerJS over the worker's driver, run from the repository root. The
// worker's tests import it from ../src, so its mutants run there; @tranche/core and
// @tranche/memory come from their built dist/.
import { strykerConfig } from "../../scripts/stryker-config.mjs";

export default strykerConfig({ name: "worker", mutate: ["packages/worker/src/worker-driver.ts", "packages/worker/src/leases.ts", "packages/worker/src/store-outcomes.ts"] });
