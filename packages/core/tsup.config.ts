import { defineConfig } from "tsup";
import { packageConfig } from "../../tsup.base.js";

export default defineConfig(packageConfig({ index: "src/index.ts", internal: "src/internal.ts", testing: "src/testing.ts" }, { splitting: true }));
