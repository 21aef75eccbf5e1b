// The packages as a user gets them: `pnpm release:dry`'s tarballs, checked by publint and
// arethetypeswrong, installed with plain npm into an empty project outside the workspace, then
// imported (ESM) and required (CommonJS) on this Node and on the oldest one `engines` admits.
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publicPackages } from "../../../scripts/release-dry.mjs";

interface Packed {
  name: string;
  version: string;
  tarball: string;
  size: number;
}

/** The oldest Node every package's `engines` admits; the smoke scripts run on it too. */
const OLDEST_NODE = "20.0.0";
/** Entry points that are ES modules only, by design: `@tranche/conformance` imports vitest. */
const ESM_ONLY = new Set(["@tranche/conformance"]);

const here = fileURLToPath(new URL(".", import.meta.url));
const fixtures = join(here, "../fixtures");
const packages = publicPackages() as { dir: string; manifest: { name: string; engines?: { node?: string } } }[];
const work = mkdtempSync(join(tmpdir(), "tranche-packaging-"));
const project = join(work, "project");
let packed: Packed[] = [];

/** The environment of a plain npm user: none of the npm_* settings pnpm passes to scripts. */
const plainEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end without blocking the test worker (vitest talks to it meanwhile). */
function run(command: string, args: string[], cwd: string): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: plainEnv, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", (error) => resolve({ status: null, stdout, stderr: `${stderr}${String(error)}` }));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

function output(result: Ran): string {
  return `${result.stdout}${result.stderr}`;
}

function tarballOf(name: string): string {
  const found = packed.find((p) => p.name === name);
  if (found === undefined) throw new Error(`${name} was not packed`);
  return found.tarball;
}

beforeAll(async () => {
  const result = await run("node", [join(here, "../../../scripts/release-dry.mjs"), "--no-build", "--json", "--out", join(work, "tarballs")], here);
  expect(result.status, output(result)).toBe(0);
  packed = JSON.parse(result.stdout) as Packed[];
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("every public package", () => {
  it("is packed with its workspace: ranges rewritten, a LICENSE and its metadata", () => {
    expect(packed.map((p) => p.name).sort()).toEqual(packages.map((p) => p.manifest.name).sort());
    const license = readFileSync(join(here, "../../../LICENSE"), "utf8");
    for (const p of packed) {
      const manifest = JSON.parse(execFileSync("tar", ["-xOzf", p.tarball, "package/package.json"], { encoding: "utf8" }));
      expect(JSON.stringify(manifest), p.name).not.toContain("workspace:");
      expect(execFileSync("tar", ["-xOzf", p.tarball, "package/LICENSE"], { encoding: "utf8" }), p.name).toBe(license);
      expect(manifest, p.name).toMatchObject({
        license: "MIT",
        repository: { url: "git+https://github.com/tranche-js/tranche.git", directory: expect.stringMatching(/^packages\//) },
        homepage: expect.stringContaining("github.com/tranche-js/tranche"),
        bugs: { url: "https://github.com/tranche-js/tranche/issues" },
        keywords: expect.arrayContaining(["tranche"]),
        engines: { node: expect.stringMatching(/^(>=20|\^20\.0\.0 \|\| >=22\.0\.0)$/) },
      });
    }
  });

  it.each(packages.map((p) => p.manifest.name))("%s passes publint --strict", async (name) => {
    const result = await run("publint", ["--strict", tarballOf(name)], here);
    expect(result.status, output(result)).toBe(0);
    expect(result.stdout).toContain("All good!");
  });

  it.each(packages.map((p) => p.manifest.name))("%s passes arethetypeswrong under node10, node16 (CJS and ESM) and bundler", async (name) => {
    const ignore = ESM_ONLY.has(name) ? ["--ignore-rules", "cjs-resolves-to-esm"] : [];
    const result = await run("attw", [tarballOf(name), "--format", "table-flipped", "--no-emoji", "--no-color", ...ignore], here);
    expect(result.status, output(result)).toBe(0);
  });
});

describe("installed with npm outside the workspace", () => {
  beforeAll(async () => {
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, "package.json"), `${JSON.stringify({ name: "tranche-smoke", private: true }, null, 2)}\n`);
    for (const file of ["checks.cjs", "smoke.cjs", "smoke.mjs", "conformance.test.mjs"]) copyFileSync(join(fixtures, file), join(project, file));
    const vitest = JSON.parse(readFileSync(join(here, "../../../package.json"), "utf8")).devDependencies.vitest as string;
    // The conformance suite's peers, at the versions this repository tests with.
    const peers = [`vitest@${vitest}`, "fast-check@^4"];
    const result = await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...packed.map((p) => p.tarball), ...peers], project);
    expect(result.status, output(result)).toBe(0);
  }, 600_000);

  it("every entry point works from an ES module", async () => {
    const result = await run("node", ["smoke.mjs"], project);
    console.log(output(result));
    expect(result.status, output(result)).toBe(0);
  });

  it("every entry point works from CommonJS (require)", async () => {
    const result = await run("node", ["smoke.cjs"], project);
    console.log(output(result));
    expect(result.status, output(result)).toBe(0);
  });

  it("the conformance suite loads under vitest", async () => {
    const result = await run("npx", ["--no-install", "vitest", "run", "conformance.test.mjs"], project);
    expect(result.status, output(result)).toBe(0);
  }, 120_000);

  it(`both work on Node ${OLDEST_NODE}, the oldest that engines admits (require of ESM-only dependencies included)`, async () => {
    for (const { manifest } of packages) expect(manifest.engines?.node, manifest.name).toMatch(/^(>=20|\^20\.0\.0 \|\|)/);
    // The node package from the npm registry carries the binary for this platform.
    for (const script of ["smoke.cjs", "smoke.mjs"]) {
      const result = await run("npx", ["--yes", `node@${OLDEST_NODE}`, script], project);
      console.log(output(result));
      expect(result.status, output(result)).toBe(0);
      expect(result.stdout).toContain(`on Node v${OLDEST_NODE}`);
    }
  }, 600_000);
});
