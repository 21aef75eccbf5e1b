export { TrancheTelemetry } from "./telemetry.js";
export type { ObservedWorker, TelemetryOptions } from "./telemetry.js";
export type { StatsSource } from "./recorder.js";
export { SENT_AT } from "./names.js";
