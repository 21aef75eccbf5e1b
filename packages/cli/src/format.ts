import type { DeadLetter, QueueDepth } from "@tranche/core";
import type { TransportName } from "./config.js";

/** How exact each broker's counts are, as the depth screen says it. */
const EXACTNESS: Record<TransportName, string> = {
  memory: "exact",
  redis: "exact",
  sqs: "approximate, as SQS counts",
  nats: "exact",
  amqp: "ready messages as RabbitMQ counts them; AMQP does not count unacknowledged ones",
};

/** Width of the names column of the depth and show screens. */
const NAME_WIDTH = 16;

/** Whether the broker counts messages in flight at all (AMQP 0-9-1 does not). */
export function countsInFlight(transport: TransportName): boolean {
  return transport !== "amqp";
}

/** The depth screen. */
export function depthText(transport: TransportName, label: string, depth: QueueDepth): string {
  const rows: [string, string][] = [
    ["ready", String(depth.ready)],
    ["delayed", String(depth.delayed)],
    ["in flight", countsInFlight(transport) ? String(depth.inFlight) : "n/a"],
    ["dead-lettered", String(depth.deadLettered)],
  ];
  const width = Math.max(...rows.map(([, value]) => value.length));
  return `${label} (${EXACTNESS[transport]})\n${rows.map(([name, value]) => `  ${name.padEnd(NAME_WIDTH)}${value.padStart(width)}`).join("\n")}\n`;
}

/** `2026-12-02 08:01:02Z`: a dead letter's time, to the second, in UTC. */
export function timeText(at: number): string {
  return at > 0 ? `${new Date(at).toISOString().slice(0, 19).replace("T", " ")}Z` : "unknown";
}

/** `4 min ago`, `2 h ago`, `3 days ago`. */
export function ago(at: number, now: number): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  const days = Math.floor(s / 86_400);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}

function reasonText(letter: DeadLetter<unknown>): string {
  return letter.reason.message === "" ? letter.reason.name : `${letter.reason.name}: ${letter.reason.message}`;
}

function clip(text: string, width: number): string {
  const line = text.replace(/\s*\n\s*/g, " ");
  return line.length <= width ? line : `${line.slice(0, Math.max(1, width - 1))}…`;
}

/**
 * The dead letters as a table: id, when, attempt, retries and the reason, cut to `columns`
 * characters a line (the reason is what gives way); `next` is the id to page on from, if more.
 */
export function lettersText(label: string, letters: readonly DeadLetter<unknown>[], next: string | undefined, columns: number): string {
  if (letters.length === 0) return `no dead letters in ${label}\n`;
  const header = ["ID", "DEAD-LETTERED", "ATTEMPT", "RETRIES", "REASON"];
  const rows = letters.map((l) => [l.id, timeText(l.at), String(l.attempt), l.retries === undefined ? "?" : String(l.retries), reasonText(l)]);
  const widths = header.slice(0, 4).map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const used = widths.reduce((sum, w) => sum + w + 2, 0);
  const line = (cells: string[]): string =>
    [cells[0]!.padEnd(widths[0]!), cells[1]!.padEnd(widths[1]!), cells[2]!.padStart(widths[2]!), cells[3]!.padStart(widths[3]!), clip(cells[4]!, Math.max(20, columns - used))].join("  ");
  const more = next === undefined ? "" : `more after ${next}: tranche dlq ls --after ${next}\n`;
  const title = `${letters.length} dead letter${letters.length === 1 ? "" : "s"} in ${label}${next === undefined ? "" : " (first page)"}`;
  return `${title}\n${line(header)}\n${rows.map(line).join("\n")}\n${more}`;
}

/** One dead letter in full. */
export function letterText(label: string, letter: DeadLetter<unknown>, now: number): string {
  const indent = (text: string): string => text.replace(/\n/g, `\n${" ".repeat(NAME_WIDTH + 2)}`);
  const rows: [string, string][] = [
    ["dead-lettered", letter.at > 0 ? `${timeText(letter.at)} (${ago(letter.at, now)})` : "unknown"],
    ["attempt", `${letter.attempt}${letter.retries === undefined ? "" : letter.retries === 0 ? " (no retries)" : ` (${letter.retries} ${letter.retries === 1 ? "retry" : "retries"})`}`],
    ["reason", reasonText(letter)],
  ];
  const raw = rawText(letter.raw);
  if (letter.payload !== undefined) rows.push(["payload", JSON.stringify(letter.payload, null, 2) ?? String(letter.payload)]);
  else rows.push(["payload", `cannot be decoded (${byteLength(letter.raw)} bytes kept)`], ["raw", raw.encoding === "utf8" ? raw.text : `base64 ${raw.text}`]);
  if (letter.reason.stack !== undefined) rows.push(["stack", letter.reason.stack]);
  return `${letter.id} in ${label}\n${rows.map(([name, value]) => `  ${name.padEnd(NAME_WIDTH)}${indent(value)}`).join("\n")}\n`;
}

function byteLength(raw: string | Uint8Array): number {
  return typeof raw === "string" ? Buffer.byteLength(raw) : raw.byteLength;
}

/** The bytes of a letter as text when they are UTF-8, else base64. */
export function rawText(raw: string | Uint8Array): { text: string; encoding: "utf8" | "base64" } {
  if (typeof raw === "string") return { text: raw, encoding: "utf8" };
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const text = bytes.toString("utf8");
  return Buffer.from(text, "utf8").equals(bytes) ? { text, encoding: "utf8" } : { text: bytes.toString("base64"), encoding: "base64" };
}

/** A dead letter as `--json` prints it: `raw` as text (`rawEncoding` says which), `payload` null when undecodable. */
export function letterJson(letter: DeadLetter<unknown>): Record<string, unknown> {
  const raw = rawText(letter.raw);
  return {
    id: letter.id,
    at: letter.at,
    deadLetteredAt: letter.at > 0 ? new Date(letter.at).toISOString() : null,
    attempt: letter.attempt,
    retries: letter.retries ?? null,
    reason: letter.reason,
    payload: letter.payload === undefined ? null : letter.payload,
    raw: raw.text,
    rawEncoding: raw.encoding,
  };
}
