// `pnpm mutate:core`: StrykerJS over core's sources, run from the repository root.
import { strykerConfig } from "../../scripts/stryker-config.mjs";

export default strykerConfig({
  name: "core",
  mutate: [
    "packages/core/src/**/*.ts",
    // Re-exports and types only: nothing to mutate that a test could tell.
    "!packages/core/src/index.ts",
    "!packages/core/src/testing.ts",
    "!packages/core/src/internal.ts",
  ],
});
