// The vitest config of `pnpm mutate` (stryker.config.mjs beside it).
import { vitestMutateConfig } from "../../scripts/vitest-mutate-config.js";

export default vitestMutateConfig(new URL(".", import.meta.url));
