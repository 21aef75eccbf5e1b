import { SQSClient } from "@aws-sdk/client-sqs";

/** Credentials the emulator accepts (it checks none). */
const LOCAL_CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const REGION = "us-east-1";

export interface SqsEmulatorOptions {
  /** Port to listen on; 0 picks a free one. @default 0 */
  port?: number;
}

/** A running fauxqs emulator, in this process. */
export interface SqsEmulator {
  /** `http://127.0.0.1:<port>`: the endpoint for an `SQSClient`. */
  readonly endpoint: string;
  readonly port: number;
  /** Creates a queue (attributes as SQS names them, e.g. `{ VisibilityTimeout: "1" }`); resolves with its URL. */
  createQueue(name: string, attributes?: Record<string, string>): Promise<string>;
  /** A client for this endpoint, region and dummy credentials. */
  client(): SQSClient;
  /** The options an `SqsTransport` needs besides `queueUrl`. */
  readonly connection: { endpoint: string; region: string; credentials: typeof LOCAL_CREDENTIALS };
  stop(): Promise<void>;
}

/**
 * Starts the `fauxqs` SQS emulator in this process (for tests, benchmarks and the example). `fauxqs`
 * is not a dependency of `@tranche/sqs`: install it (`npm install -D fauxqs@1.9.2`) where you call this.
 */
export async function startSqsEmulator(options: SqsEmulatorOptions = {}): Promise<SqsEmulator> {
  let fauxqs: typeof import("fauxqs");
  try {
    fauxqs = await import("fauxqs");
  } catch (cause) {
    throw new Error("[tranche/sqs] the SQS emulator needs the `fauxqs` package: npm install -D fauxqs@1.9.2", { cause });
  }
  const server = await fauxqs.startFauxqs({ port: options.port ?? 0, logger: false, host: "localhost" });
  const endpoint = `http://127.0.0.1:${server.port}`;
  const connection = { endpoint, region: REGION, credentials: LOCAL_CREDENTIALS };
  return {
    endpoint,
    port: server.port,
    connection,
    async createQueue(name, attributes) {
      return server.createQueue(name, attributes === undefined ? undefined : { attributes }).queueUrl;
    },
    client: () => new SQSClient(connection),
    stop: () => server.stop(),
  };
}
