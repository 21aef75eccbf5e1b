// @tranche/core has no runtime dependencies (SPEC §1): nothing in package.json, and the
// built files load nothing but each other and node: built-ins.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(packageDir, "dist");
const esmFiles = ["index.js", "testing.js"];
const cjsFiles = ["index.cjs", "testing.cjs"];

/** Every module specifier a built file loads: static and dynamic imports, re-exports, require(). */
function specifiers(code: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\bimport\s*(?:[\w*${}\s,]+?\s*from\s*)?["']([^"']+)["']/g, // import x from "m"; import "m"
    /\bexport\s*(?:\*|\{[^}]*\})\s*(?:as\s+\w+\s*)?from\s*["']([^"']+)["']/g, // export … from "m"
    /\bimport\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g, // import("m")
    /\brequire\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g, // require("m")
  ];
  for (const pattern of patterns) for (const match of code.matchAll(pattern)) found.push(match[1] as string);
  return found;
}

/** Loads made with a computed name cannot be checked: there must be none. */
function computedLoads(code: string): string[] {
  return [...code.matchAll(/\b(?:require|import)\s*\(\s*(?!["'`])[^)]/g)].map((m) => m[0]);
}

const allowed = (specifier: string) => specifier.startsWith("./") || specifier.startsWith("../") || specifier.startsWith("node:");

describe("@tranche/core has no runtime dependencies", () => {
  beforeAll(() => {
    if (![...esmFiles, ...cjsFiles].every((file) => existsSync(join(dist, file)))) {
      execFileSync("npx", ["tsup"], { cwd: packageDir, stdio: "ignore" });
    }
  }, 120_000);

  it("package.json declares no dependencies, peer or optional dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as Record<string, unknown>;
    for (const field of ["dependencies", "peerDependencies", "optionalDependencies", "bundleDependencies", "bundledDependencies"]) {
      const value = pkg[field];
      expect(value === undefined || Object.keys(value as object).length === 0, `${field}: ${JSON.stringify(value)}`).toBe(true);
    }
  });

  it("the specifier scanner finds every kind of load (so the checks below can fail)", () => {
    const sample = [
      'import a from "pkg-a";',
      'import { b } from "pkg-b";',
      'import * as c from "pkg-c";',
      'import "pkg-d";',
      'export { e } from "pkg-e";',
      'export * from "pkg-f";',
      'const g = await import("pkg-g");',
      'const h = require("pkg-h");',
      'var i = require("node:fs");',
      'import j from "./chunk.js";',
    ].join("\n");
    expect(specifiers(sample).sort()).toEqual(["./chunk.js", "node:fs", "pkg-a", "pkg-b", "pkg-c", "pkg-d", "pkg-e", "pkg-f", "pkg-g", "pkg-h"]);
    expect(specifiers(sample).filter((s) => !allowed(s))).toHaveLength(8);
    expect(computedLoads("require(name); import(url);")).toHaveLength(2);
  });

  it.each([...esmFiles, ...cjsFiles])("dist/%s loads only relative files and node: built-ins", (file) => {
    const code = readFileSync(join(dist, file), "utf8");
    const outside = specifiers(code).filter((s) => !allowed(s));
    expect(outside).toEqual([]);
    expect(computedLoads(code)).toEqual([]);
    // A bare built-in name ("fs" rather than "node:fs") would also pass the bundler silently.
    expect(specifiers(code).filter((s) => builtinModules.includes(s))).toEqual([]);
  });

  it.each([...esmFiles, ...cjsFiles])("dist/%s has what the package exports", (file) => {
    const code = readFileSync(join(dist, file), "utf8");
    expect(code).toContain(file.startsWith("index") ? "batched" : "SimulatedClock");
  });

  it("the CJS build loads in a bare node process with nothing resolvable but itself", () => {
    // Run from a directory with no node_modules in reach, so any bare require would throw.
    const script = `
      const Module = require("node:module");
      const original = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (!request.startsWith(".") && !request.startsWith("/") && !request.startsWith("node:")) {
          throw new Error("tried to load " + request);
        }
        return original.call(this, request, ...rest);
      };
      const core = require(${JSON.stringify(join(dist, "index.cjs"))});
      const testing = require(${JSON.stringify(join(dist, "testing.cjs"))});
      if (typeof core.batched !== "function" || typeof testing.SimulatedClock !== "function") throw new Error("missing exports");
      process.stdout.write("ok");
    `;
    expect(execFileSync(process.execPath, ["-e", script], { cwd: "/", encoding: "utf8" })).toBe("ok");
  });
});
