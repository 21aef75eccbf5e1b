// The API reference builds from the TSDoc comments with no broken link and no undocumented export
// beyond those docs/undocumented.txt still lists (scripts/docs.mjs, what `pnpm run docs` runs).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const out = mkdtempSync(join(tmpdir(), "tranche-api-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it("the API reference builds without warnings", async () => {
  const { status, output } = await new Promise<{ status: number | null; output: string }>((resolve) => {
    const child = spawn("node", [join(root, "scripts/docs.mjs"), "--out", out], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("close", (code) => resolve({ status: code, output }));
  });
  expect(status, output).toBe(0);
  expect(existsSync(join(out, "index.html"))).toBe(true);
  expect(existsSync(join(out, "modules", "_tranche_core.index.html"))).toBe(true);
}, 600_000);
