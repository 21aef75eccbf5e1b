// Runs a command with its output held back, e.g. a build before a demo: the output is printed
// only when the command fails. `node scripts/quietly.mjs [--label text] <command> [args…]`
import { spawn } from "node:child_process";

const argv = process.argv.slice(2);
let label = "building";
if (argv[0] === "--label") {
  label = argv[1] ?? label;
  argv.splice(0, 2);
}
const [command, ...args] = argv;
if (command === undefined) {
  console.error("usage: node scripts/quietly.mjs [--label text] <command> [args…]");
  process.exit(2);
}

const output = [];
const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: process.stderr.isTTY ? "1" : "0" } });
child.stdout.on("data", (chunk) => output.push(chunk));
child.stderr.on("data", (chunk) => output.push(chunk));
// A fresh clone builds for a while: say what is going on rather than sit silent.
const notice = setTimeout(() => process.stderr.write(`${label}…\n`), 3000);
child.on("error", (error) => {
  clearTimeout(notice);
  console.error(`could not run ${command}: ${error.message}`);
  process.exit(1);
});
child.on("close", (code, signal) => {
  clearTimeout(notice);
  if (code === 0) return;
  process.stderr.write(Buffer.concat(output));
  console.error(`\n${[command, ...args].join(" ")} failed (${signal ?? `exit code ${code}`})`);
  process.exit(code ?? 1);
});
