import { defineConfig } from "tsup";
import { packageConfig } from "../../tsup.base.js";

// p-queue is ESM-only: the CommonJS build bundles it, so require() works on Node 20 before 20.19 (root README).
export default defineConfig(packageConfig({ index: "src/index.ts" }, { bundleInCjs: ["p-queue"] }));
