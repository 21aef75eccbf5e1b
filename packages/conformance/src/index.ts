export { describeTransportConformance, runConformanceCase } from "./describe-transport-conformance.js";
export { conformanceCases } from "./cases.js";
export type { ConformanceCase } from "./cases.js";
export { checkTransportModel } from "./model.js";
export type { ModelCheckOptions } from "./model.js";
export { CaseContext } from "./context.js";
export type { Received } from "./context.js";
export type { ConformanceOptions, ConformanceQueue } from "./options.js";
