// A user's project compiled against the built declarations of every public package, with the
// settings of the strictest users: `strict`, `exactOptionalPropertyTypes` and `skipLibCheck` off,
// so every shipped .d.ts and .d.cts is checked, not only the parts the project touches.
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { beforeAll, expect, it } from "vitest";

const consumer = fileURLToPath(new URL("../consumer", import.meta.url));
const root = fileURLToPath(new URL("../../..", import.meta.url));
const packages = ["amqp", "cli", "conformance", "core", "memory", "nats", "otel", "redis", "sqs", "worker"];
/** Declarations of the `@tranche/nats` SDK that fail `exactOptionalPropertyTypes` on their own. */
const UPSTREAM = `${sep}@nats-io${sep}`;

let program: ts.Program;
let diagnostics: readonly ts.Diagnostic[];

beforeAll(() => {
  const config = ts.getParsedCommandLineOfConfigFile(join(consumer, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => expect.fail(ts.flattenDiagnosticMessageText(d.messageText, "\n")) });
  if (config === undefined) throw new Error("consumer/tsconfig.json did not parse");
  program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
  diagnostics = ts.getPreEmitDiagnostics(program);
});

function format(diagnostic: ts.Diagnostic): string {
  const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
  if (diagnostic.file === undefined) return text;
  const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
  return `${relative(root, diagnostic.file.fileName)}:${line + 1}: ${text}`;
}

it("compiles with the strictest settings", () => {
  expect(program.getCompilerOptions()).toMatchObject({ strict: true, exactOptionalPropertyTypes: true, skipLibCheck: false });
});

it("reads every package's built .d.ts and .d.cts, not its sources", () => {
  const files = program.getSourceFiles().map((file) => relative(root, file.fileName));
  for (const name of packages) {
    const dist = join("packages", name, "dist");
    expect(files, name).toContain(join(dist, "index.d.ts"));
    if (name !== "conformance") expect(files, name).toContain(join(dist, "index.d.cts"));
    expect(files.filter((file) => file.startsWith(join("packages", name, "src"))), name).toEqual([]);
  }
});

it("has no type errors in tranche's declarations or in the user's code", () => {
  const ours = diagnostics.filter((d) => d.file === undefined || !dirname(d.file.fileName).includes(UPSTREAM));
  expect(ours.map(format)).toEqual([]);
});
