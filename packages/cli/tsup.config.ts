import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";
import { packageConfig } from "../../tsup.base.js";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as { version: string };

// `cli` is the `tranche` command (its shebang makes the built file executable); `--version` prints `version`.
export default defineConfig({ ...packageConfig({ index: "src/index.ts", cli: "src/cli.ts" }), define: { TRANCHE_CLI_VERSION: JSON.stringify(version) } });
