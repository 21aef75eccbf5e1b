// Sums every package's vitest JSON report into one closing line: "tests: N passed, N failed".
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

let passed = 0;
let failed = 0;
let skipped = 0;
for (const root of ["packages", "examples", "bench", "tests"]) {
  if (!existsSync(root)) continue;
  const dirs = root === "bench" ? ["."] : readdirSync(root);
  for (const dir of dirs) {
    const report = join(root, dir, "test-results", "vitest.json");
    if (!existsSync(report)) continue;
    const json = JSON.parse(readFileSync(report, "utf8"));
    passed += json.numPassedTests;
    failed += json.numFailedTests;
    skipped += json.numPendingTests + json.numTodoTests;
  }
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
process.exitCode = passed > 0 && failed === 0 ? 0 : 1;
