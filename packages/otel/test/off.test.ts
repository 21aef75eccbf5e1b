// Off costs nothing: no other tranche package depends on OpenTelemetry or imports it, and a
// Worker with its transports runs in a process where loading any @opentelemetry package throws.
import { execFile } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const packagesDir = join(here, "../..");
const others = readdirSync(packagesDir).filter((name) => name !== "otel" && existsSync(join(packagesDir, name, "package.json")));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

/** Runs the fixture with OpenTelemetry refused; resolves with its exit code and output. */
async function runRefusingOtel(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["--import", "./refuse-otel.mjs", "worker-without-otel.mjs", ...args], {
      cwd: join(here, "fixtures"),
      timeout: 30_000,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

describe("with @tranche/otel unused, nothing of OpenTelemetry is loaded", () => {
  it.each(others)("packages/%s declares no OpenTelemetry dependency and its src imports none", (name) => {
    const manifest = JSON.parse(readFileSync(join(packagesDir, name, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
    for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
      expect(Object.keys(manifest[field] ?? {}).filter((dep) => dep.startsWith("@opentelemetry/")), field).toEqual([]);
    }
    const src = join(packagesDir, name, "src");
    for (const file of existsSync(src) ? sourceFiles(src) : []) {
      expect(readFileSync(file, "utf8"), file).not.toMatch(/["']@opentelemetry\//);
    }
  });

  it("a Worker over MemoryTransport runs, with @tranche/redis loaded, where loading @opentelemetry/* throws", async () => {
    const { code, output } = await runRefusingOtel();
    expect({ code, output }).toEqual({ code: 0, output: "handled 7\n" });
  }, 40_000);

  it("the same process fails once @tranche/otel is imported (the refusal works)", async () => {
    const { code, output } = await runRefusingOtel("--with-otel");
    expect(code).not.toBe(0);
    expect(output).toContain("refused to load @opentelemetry/api");
  }, 40_000);
});
