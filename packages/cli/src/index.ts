export { main } from "./main.js";
export type { CliIo, CliOutput } from "./main.js";
export { ExitCode } from "./errors.js";
export type { Importer } from "./transports.js";
