import { defineConfig } from "tsup";
import { packageConfig } from "../tsup.base.js";

// Dependencies stay external: dataloader and batshit run as published, @tranche/core from its dist.
export default defineConfig({ ...packageConfig({ index: "src/index.ts", soak: "src/soak.ts" }), format: ["esm"], dts: false });
