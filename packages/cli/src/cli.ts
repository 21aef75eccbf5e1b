#!/usr/bin/env node
// The `tranche` command. Everything it does is `main`; this file only wires it to the process.
import { oneLine } from "./errors.js";
import { main } from "./main.js";

// A failure is one line on stderr, and so is a warning. The AWS SDK's notice that its future
// versions need a newer Node is about the SDK, not this command: it is off unless asked for.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
process.removeAllListeners("warning");
process.on("warning", (warning) => void process.stderr.write(`tranche: warning: ${oneLine(`${warning.name}: ${warning.message}`)}\n`));

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
