import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * The vitest config of a package under `pnpm mutate` (its vitest.mutate.config.ts), given that
 * package's folder as a URL: Stryker runs from the repository root, so the root is set here.
 * Property tests run few cases with a fixed seed, so each mutant runs in seconds and a rerun gives
 * the same verdict, which incremental mode relies on. A test that waits on a promise the mutant
 * never settles fails after `testTimeout` ms (a package whose slowest test runs longer under
 * Stryker sets it higher), before Stryker's own timeout would restart the runner. Test files
 * share one module graph instead of loading src/ each: Stryker switches mutants on at run time,
 * so a mutant run costs its tests, not a fresh import of everything.
 */
export function vitestMutateConfig(packageUrl: URL, { testTimeout = 3_000 } = {}) {
  return defineConfig({
    root: fileURLToPath(packageUrl),
    test: {
      include: ["test/**/*.test.ts"],
      testTimeout,
      isolate: false,
      env: { FC_RUNS: "15", FC_SEED: "20261202" },
    },
  });
}
