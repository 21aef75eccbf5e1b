export { startSqsEmulator } from "./emulator.js";
export type { SqsEmulator, SqsEmulatorOptions } from "./emulator.js";
