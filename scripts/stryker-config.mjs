/**
 * The StrykerJS settings `pnpm mutate` shares between its targets (packages/core/stryker.config.mjs,
 * packages/worker/stryker.config.mjs). Stryker runs from the repository root, so every path here is
 * relative to it. The sandbox holds only the target package and what its tests load from outside
 * it (scripts/fc-runs.ts, the root package.json and tsconfig.base.json); each package's
 * node_modules is linked in, so workspace dependencies resolve to their built dist/.
 */
export function strykerConfig({ name, mutate }) {
  const report = `reports/mutation/${name}`;
  return {
    testRunner: "vitest",
    // Stryker looks for plugins beside its own package, which pnpm's layout does not give it.
    plugins: [import.meta.resolve("@stryker-mutator/vitest-runner")],
    // Each package's vitest.mutate.config.ts: see scripts/vitest-mutate-config.ts.
    vitest: { configFile: `packages/${name}/vitest.mutate.config.ts` },
    mutate,
    ignorePatterns: [
      "/*",
      "!/package.json",
      "!/tsconfig.base.json",
      "!/scripts",
      "!/packages",
      "/packages/*",
      `!/packages/${name}`,
      `/packages/${name}/test-results`,
    ],
    coverageAnalysis: "perTest",
    // A static mutant (module-level code, run once on import) needs every test rerun in a fresh
    // runner: left out, and listed as ignored in the report.
    ignoreStatic: true,
    incremental: true,
    incrementalFile: `${report}/incremental.json`,
    reporters: ["clear-text", "progress-append-only", "html", "json"],
    htmlReporter: { fileName: `${report}/index.html` },
    jsonReporter: { fileName: `${report}/mutation.json` },
    clearTextReporter: { allowEmojis: false, logTests: false, reportScoreTable: true },
    // Two cores shared with others: one mutant at a time.
    concurrency: 1,
    // A mutant that runs past 1.5× the unmutated time plus 5 s is a timeout (it counts as detected)
    // and costs a restart of the test runner; one that leaves a promise pending fails sooner, on
    // vitest's test timeout (scripts/vitest-mutate-config.ts).
    timeoutFactor: 1.5,
    timeoutMS: 5_000,
  };
}

