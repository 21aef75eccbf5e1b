import { checkHeaders } from "@tranche/core/internal";
import { headers as natsHeaders, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { Header } from "./headers.js";
import { PREFIX, invalid } from "./options.js";

/** Header names tranche (`Tranche-…`) and the server (`Nats-…`) keep for themselves, in any case. */
const RESERVED = /^(tranche|nats)-/i;

/**
 * A send's `headers`, checked for what NATS carries unchanged: names of printable ASCII without
 * `:` and not reserved, values without line breaks or surrounding whitespace (NATS trims it).
 */
export function sendHeaders(value: unknown): Readonly<Record<string, string>> | undefined {
  const headers = checkHeaders("headers", value, { prefix: PREFIX });
  if (headers === undefined) return undefined;
  for (const [name, text] of Object.entries(headers)) {
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name) || RESERVED.test(name)) invalid("headers", "names of printable ASCII without ':', not Tranche-* or Nats-*", name);
    if (/[\r\n]/.test(text) || text.trim() !== text) invalid(`headers[${JSON.stringify(name)}]`, "a value without line breaks or surrounding whitespace", text);
  }
  return headers;
}

/** The producer's headers of a message (`Delivery.headers`): all but tranche's and the server's; `undefined` for none. */
export function producerHeaders(h: MsgHdrs | undefined): Record<string, string> | undefined {
  let headers: Record<string, string> | undefined;
  for (const name of h?.keys() ?? []) if (!RESERVED.test(name)) (headers ??= {})[name] = (h as MsgHdrs).get(name);
  return headers;
}

/** What a delivered message says about its item, from its ack subject and tranche's headers. */
export interface MessageInfo {
  /** Stream sequence of this message. */
  readonly seq: number;
  /** Deliveries of this message so far, this one included (JetStream's count). */
  readonly deliveryCount: number;
  readonly id: string;
  /** The delayed send's bound (`Tranche-Not-Before`). */
  readonly notBefore: number | undefined;
}

// Reply subjects: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or with
// <domain>.<account hash> after ACK (12 tokens or more) on newer servers.
function ackTokens(reply: string | undefined): string[] {
  const tokens = (reply ?? "").split(".");
  return tokens.length >= 11 ? tokens.slice(4) : tokens.slice(2);
}

function count(text: string | undefined, min: number): number {
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min ? n : min;
}

export function infoOf(msg: Msg): MessageInfo {
  const tokens = ackTokens(msg.reply);
  const seq = count(tokens[3], 0);
  const h = msg.headers;
  const notBefore = Number(h?.get(Header.notBefore) || NaN);
  return {
    seq,
    deliveryCount: count(tokens[2], 1),
    id: h?.get(Header.id) || `seq-${seq}`,
    notBefore: Number.isFinite(notBefore) ? notBefore : undefined,
  };
}

/**
 * The item's `attempt` on this delivery: JetStream's delivery count, less the releases the
 * ledger recorded and the hand-back a delayed send spends on its first delivery, due or not.
 */
export function attemptOf(info: MessageInfo, released: readonly number[] = []): number {
  const handBack = info.notBefore === undefined ? 0 : 1;
  const releases = released.filter((dc) => dc < info.deliveryCount).length;
  return Math.max(1, info.deliveryCount - handBack - releases);
}

/** Headers of a sent item: the producer's, its id, and its bound when the send is delayed. */
export function itemHeaders(id: string, notBefore?: number, headers?: Readonly<Record<string, string>>): MsgHdrs {
  const h = natsHeaders();
  if (headers !== undefined) for (const [name, value] of Object.entries(headers)) h.set(name, value);
  h.set(Header.id, id);
  if (notBefore !== undefined) h.set(Header.notBefore, String(Math.ceil(notBefore)));
  return h;
}

/** Header values cannot hold line breaks. */
export function oneLine(text: string): string {
  return String(text).replace(/[\r\n]+/g, " ").slice(0, 1_000);
}
