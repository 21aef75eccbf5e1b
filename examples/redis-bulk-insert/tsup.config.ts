import { defineConfig } from "tsup";
import { packageConfig } from "../../tsup.base.js";

export default defineConfig({
  ...packageConfig({ index: "src/index.ts", producer: "src/producer.ts", worker: "src/worker.ts" }),
  format: ["esm"],
  dts: false,
});
