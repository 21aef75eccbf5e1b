// The vitest config of `pnpm mutate` (stryker.config.mjs beside it).
import { vitestMutateConfig } from "../../scripts/vitest-mutate-config.js";

// retention.test.ts runs a long soak of its own: seconds under Stryker.
export default vitestMutateConfig(new URL(".", import.meta.url), { testTimeout: 20_000 });
