// `pnpm demo`: builds what the two in-memory examples use (quietly: the build log is shown only if
// the build fails), then runs them one after the other.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const demos = [
  { name: "quickstart", title: "batched() in one process: batch sizes, flush reasons, a delayed retry, a lone failure" },
  { name: "flaky-task", title: "a Worker over MemoryTransport: retries with the same id, a dead letter, results awaited by id" },
];

const filters = demos.map((d) => `--filter=@tranche/examples-${d.name}`);
const run = (args) => spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" }).status ?? 1;

let status = run([join(root, "scripts/quietly.mjs"), "--label", "building the demo (the first run takes a minute)", join(root, "node_modules/.bin/turbo"), "run", "build", ...filters]);
for (const [i, demo] of demos.entries()) {
  if (status !== 0) break;
  console.log(`${i > 0 ? "\n" : ""}== examples/${demo.name}: ${demo.title}\n`);
  status = run([join(root, "examples", demo.name, "dist/index.js")]);
}
process.exit(status);
