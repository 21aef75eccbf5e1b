import { defineConfig } from "tsup";
import { packageConfig } from "../../tsup.base.js";

export default defineConfig(packageConfig({ index: "src/index.ts", chaos: "src/chaos.ts", net: "src/net.ts" }));
