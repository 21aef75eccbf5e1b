import { createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { NatsPullError } from "./errors.js";

/** Where a pull request goes and how much it asks for. */
export interface PullRequest {
  /** `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`. */
  readonly subject: string;
  /** Most messages to return. */
  readonly batch: number;
  /** Longest wait in ms for a first message. */
  readonly expires: number;
  /** Idle heartbeat in ms the server sends while the request waits; absent for short requests. */
  readonly heartbeat?: number;
}

export interface PullResult {
  readonly msgs: Msg[];
  /**
   * The server stopped answering: no heartbeat for two intervals, or no end of the request well
   * after it expired. The request was lost (a disconnect, a restarted server) or its consumer
   * no longer exists (the server drops requests for a consumer it does not know, silently).
   */
  readonly silent: boolean;
}

// Status codes that end a pull request normally: no messages, the request expired, or a limit
// (max ack pending, max waiting, batch completed) that the next request may clear.
const BENIGN_409 = /exceeded|completed|max ?waiting|leadership/i;

/** The idle heartbeat for a request that waits `expires` ms: none for short ones, at most 1 s. */
export function heartbeatFor(expires: number): number | undefined {
  return expires >= 400 ? Math.min(1_000, Math.floor(expires / 4)) : undefined;
}

/**
 * One JetStream pull request, the request `consumer.fetch` sends, with `no_wait` set alongside
 * `expires`: the server (2.9+) then waits up to `expires` for a first message and ends the
 * request as soon as nothing more is pending, instead of holding it open until the batch is full.
 * That is what lets a worker get a partial batch at once without cancelling a request, which
 * would race with messages already on the wire. Aborting unsubscribes, which ends the request
 * on the server; messages that arrived by then are handed to `onAbandoned`, as are those of a
 * request that ends with an error or in silence.
 */
export function pull(nc: NatsConnection, request: PullRequest, signal: AbortSignal, onAbandoned: (msgs: Msg[]) => void): Promise<PullResult> {
  if (signal.aborted) return Promise.resolve({ msgs: [], silent: false });
  return new Promise<PullResult>((resolve, reject) => {
    const inbox = createInbox();
    const msgs: Msg[] = [];
    const started = Date.now();
    let lastHeard = started;
    let settled = false;
    const finish = (how: { error?: Error; aborted?: boolean; silent?: boolean }): void => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      signal.removeEventListener("abort", onAbort);
      sub.unsubscribe();
      if (how.aborted === true || how.error !== undefined || how.silent === true) {
        if (msgs.length > 0) onAbandoned(msgs.splice(0));
      }
      if (how.error !== undefined) reject(how.error);
      else resolve({ msgs, silent: how.silent === true });
    };
    const onAbort = (): void => finish({ aborted: true });
    const sub = nc.subscribe(inbox, {
      callback: (error, msg) => {
        if (error !== null) return finish({ error });
        lastHeard = Date.now();
        const code = msg.headers?.code ?? 0;
        if (code !== 0 && msg.data.length === 0) {
          if (code === 100) return; // idle heartbeat
          const description = msg.headers?.description ?? "";
          if (code === 404 || code === 408 || (code === 409 && BENIGN_409.test(description))) return finish({});
          return finish({ error: new NatsPullError(code, description, code !== 400, consumerOf(request.subject)) });
        }
        msgs.push(msg);
        if (msgs.length >= request.batch) finish({});
      },
    });
    signal.addEventListener("abort", onAbort, { once: true });
    const hb = request.heartbeat;
    // The server ends the request at `expires` and sends heartbeats until then; silence beyond
    // either means nobody is serving it any more.
    const watchdog = setInterval(
      () => {
        const now = Date.now();
        if ((hb !== undefined && now - lastHeard > 2 * hb + 1_000) || now - started > request.expires + 2_000) finish({ silent: true });
      },
      Math.min(hb ?? 250, 250),
    );
    const body = { batch: request.batch, expires: Math.round(request.expires * 1e6), no_wait: true, ...(hb === undefined ? {} : { idle_heartbeat: Math.round(hb * 1e6) }) };
    try {
      nc.publish(request.subject, JSON.stringify(body), { reply: inbox });
    } catch (cause) {
      finish({ error: cause as Error });
    }
  });
}

// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`
function consumerOf(subject: string): string {
  const tokens = subject.split(".");
  return `consumer ${tokens[6] ?? "?"} of stream ${tokens[5] ?? "?"}`;
}

/**
 * Reads the messages of `stream` on `filter` (all of them, or as `deliver_policy` says) through a
 * short-lived ephemeral consumer, in stream order, and deletes the consumer afterwards.
 */
export async function readAll(
  nc: NatsConnection,
  jsm: { consumers: { add(stream: string, config: object): Promise<{ name: string }>; delete(stream: string, name: string): Promise<unknown> } },
  options: { stream: string; filter: string; deliver_policy?: string; opt_start_time?: string },
  onMsg: (msg: Msg) => void,
): Promise<void> {
  const { stream, filter, ...from } = options;
  // Explicit acks (a pull consumer needs them), never sent: the consumer is deleted after the read.
  const info = await jsm.consumers.add(stream, {
    ack_policy: "explicit",
    filter_subject: filter,
    inactive_threshold: 60_000_000_000,
    max_ack_pending: -1,
    ...from,
  });
  try {
    const subject = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${info.name}`;
    const never = new AbortController().signal;
    for (;;) {
      const { msgs, silent } = await pull(nc, { subject, batch: 1_000, expires: 200 }, never, () => {});
      if (silent) throw new Error(`reading ${stream} got no reply`);
      for (const msg of msgs) onMsg(msg);
      if (msgs.length < 1_000) return;
    }
  } finally {
    await jsm.consumers.delete(stream, info.name).catch(() => {});
  }
}
