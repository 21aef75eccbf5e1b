export { TcpProxy } from "./tcp-proxy.js";
export type { Endpoint, TcpProxyOptions } from "./tcp-proxy.js";
