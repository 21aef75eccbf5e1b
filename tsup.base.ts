import type { Options } from "tsup";

/** What a package may add to the shared settings. */
export interface PackageBuild {
  /**
   * ESM-only dependencies to bundle into the CommonJS build (their ESM build keeps importing
   * them), so that `require()` works on every Node version `engines` admits, including those
   * without `require(esm)` (before 20.19).
   */
  bundleInCjs?: string[];
  /**
   * Entries share their common modules as chunks instead of each bundling its own copy: one
   * class, one `instanceof`, for a package whose entries expose the same classes.
   */
  splitting?: boolean;
}

/** Build settings every package shares; a package's tsup.config.ts names only its entries. */
export function packageConfig(entry: Record<string, string>, build: PackageBuild = {}): Options {
  const bundleInCjs = build.bundleInCjs ?? [];
  return {
    entry,
    format: ["esm", "cjs"],
    dts: true,
    // Maps point stack traces (`--enable-source-maps`) at src/ lines; they leave the sources out,
    // which would otherwise be most of a tarball, twice over.
    sourcemap: true,
    esbuildOptions(options) {
      options.sourcesContent = false;
    },
    clean: true,
    target: "node20",
    platform: "node",
    splitting: build.splitting ?? false,
    treeshake: true,
    // Error classes are matched by name across package copies: keep class names through bundling.
    keepNames: true,
    ...(bundleInCjs.length > 0 ? { noExternal: bundleInCjs, esbuildPlugins: [externalInEsm(bundleInCjs)] } : {}),
  };
}

type EsbuildPlugin = NonNullable<Options["esbuildPlugins"]>[number];

/**
 * Keeps `names` external in the ESM build only. `noExternal` makes tsup bundle them in every
 * format; tsup builds both formats as ESM before tree-shaking, so the format is read from the
 * `TSUP_FORMAT` it defines.
 */
function externalInEsm(names: string[]): EsbuildPlugin {
  const escaped = names.map((name) => name.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"));
  const filter = new RegExp(`^(?:${escaped.join("|")})(?:/|$)`);
  return {
    name: "tranche:external-in-esm",
    setup(build) {
      if (build.initialOptions.define?.TSUP_FORMAT !== JSON.stringify("esm")) return;
      build.onResolve({ filter }, (args) => ({ path: args.path, external: true }));
    },
  };
}
