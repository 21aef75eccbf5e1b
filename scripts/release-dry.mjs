// `pnpm release:dry`: builds every public package and packs it into dist-packages/ as `pnpm
// publish` would (workspace: ranges rewritten to the versions they point at), without publishing.
// Options: --out <dir> (default dist-packages), --no-build (pack what dist/ holds), --json (print
// the tarballs as JSON).
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The workspace's public packages: packages/* that are not private, by directory. */
export function publicPackages() {
  const dirs = readdirSync(join(root, "packages")).map((name) => join(root, "packages", name));
  return dirs
    .filter((dir) => statSync(join(dir, "package.json"), { throwIfNoEntry: false })?.isFile())
    .map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) }))
    .filter(({ manifest }) => manifest.private !== true);
}

/** Packs each public package into `out`; returns the tarballs with their sizes. */
export function packAll(out) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const packed = [];
  for (const { dir, manifest } of publicPackages()) {
    const printed = execFileSync("pnpm", ["pack", "--pack-destination", out], { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const tarball = printed.trim().split("\n").pop();
    const shipped = execFileSync("tar", ["-xOzf", tarball, "package/package.json"], { encoding: "utf8" });
    if (shipped.includes("workspace:")) throw new Error(`${manifest.name}: the packed package.json still has a workspace: range`);
    const files = execFileSync("tar", ["-tzvf", tarball], { encoding: "utf8" }).trim().split("\n");
    const unpacked = files.reduce((sum, line) => sum + Number(line.split(/\s+/)[2] ?? 0), 0);
    packed.push({ name: manifest.name, version: manifest.version, tarball, size: statSync(tarball).size, unpacked, files: files.length });
  }
  return packed;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const outIndex = args.indexOf("--out");
  const out = resolve(outIndex >= 0 ? args[outIndex + 1] : join(root, "dist-packages"));
  if (!args.includes("--no-build")) {
    execFileSync("node", [join(root, "scripts/quietly.mjs"), "--label", "building the packages", "turbo", "run", "build", "--filter=./packages/*"], {
      cwd: root,
      stdio: "inherit",
    });
  }
  const packed = packAll(out);
  if (args.includes("--json")) {
    console.log(JSON.stringify(packed));
    process.exit(0);
  }
  const kB = (bytes) => `${(bytes / 1024).toFixed(1)} kB`;
  for (const p of packed) {
    console.log(`${`${p.name}@${p.version}`.padEnd(28)} ${kB(p.size).padStart(9)} packed, ${kB(p.unpacked).padStart(9)} unpacked, ${String(p.files).padStart(2)} files  ${p.tarball}`);
  }
  console.log(`\nnothing was published; install a tarball with: npm install ${join(out, "<file>.tgz")}`);
}
