import type { Options } from "tsup";

/** Build settings every package shares; a package's tsup.config.ts names only its entries. */
export function packageConfig(entry: Record<string, string>): Options {
  return {
    entry,
    format: ["esm", "cjs"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
    splitting: false,
    treeshake: true,
    // Error classes are matched by name across package copies: keep class names through bundling.
    keepNames: true,
  };
}
