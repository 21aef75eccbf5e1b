import { createHash } from "node:crypto";
import type { RedisArgument, TypeMapping } from "redis";
import type { Connection } from "./connection.js";
import { replyCode } from "./errors.js";

/**
 * The Lua scripts of the transport. Each one touches only keys of one hash tag (the stream's),
 * runs atomically, and reads the server's clock with `TIME` (allowed since Redis 7.0's effect
 * replication), so "due" means due on the server.
 */

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * True when `entry` is pending for `consumer` with `count` deliveries: the delivery handle that
 * names it is still the entry's newest delivery (a reclaim by anyone bumps the count).
 */
const HOLDS = `local function holds(stream, group, consumer, entry, count)
  local p = redis.call('XPENDING', stream, group, entry, entry, 1)
  local e = p[1]
  return e ~= nil and e[2] == consumer and tostring(e[4]) == count
end`;

/** Appends [entryId, fields, deliveryCount] of each live entry; entries deleted from the stream are acked away. */
const COLLECT = `local function collect(stream, group, entries, out)
  for _, e in ipairs(entries) do
    if e[2] then
      local p = redis.call('XPENDING', stream, group, e[1], e[1], 1)
      if p[1] then
        out[#out + 1] = e[1]
        out[#out + 1] = e[2]
        out[#out + 1] = p[1][4]
      end
    else
      redis.call('XACK', stream, group, e[1])
    end
  end
end`;

/**
 * Adds an item entry to `stream` with `fields`, and its `headers` field (JSON) when it has one:
 * the headers travel with every copy of the item, a scheduled one included (the 7th packed value).
 */
const ADD = `local function add(stream, fields, headers)
  if headers and headers ~= '' then
    fields[#fields + 1] = 'headers'
    fields[#fields + 1] = headers
  end
  return redis.call('XADD', stream, '*', unpack(fields))
end`;

export const scripts = {
  /**
   * KEYS: stream. ARGV: group, consumer, mode, cursor, count, minIdle.
   * mode "own": this consumer's pending entries after `cursor` (restart recovery);
   * mode "idle": XAUTOCLAIM of entries idle ≥ minIdle from `cursor` (crash recovery).
   * Returns { nextCursor, [entryId, fields, deliveryCount]... }; nextCursor "0-0" ends a scan.
   */
  claim: `${COLLECT}
local out = {}
local nextCursor = '0-0'
if ARGV[3] == 'own' then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[5], 'STREAMS', KEYS[1], ARGV[4])
  local entries = (r and r[1] and r[1][2]) or {}
  if #entries > 0 then nextCursor = entries[#entries][1] end
  collect(KEYS[1], ARGV[1], entries, out)
else
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[6], ARGV[4], 'COUNT', ARGV[5])
  nextCursor = r[1]
  collect(KEYS[1], ARGV[1], r[2], out)
end
return { nextCursor, out }`,

  /**
   * Retry and release. KEYS: stream, schedule. ARGV: group, consumer, entryId, deliveryCount,
   * itemId, attempt, retries, notBefore, payload, headers ('' for none). If the handle still holds the entry: ack it and,
   * in the same step, add the item again now (notBefore due) or put it in the schedule, with the
   * `attempt` (deliveries before the next one) and `retries` given. Returns 1 when moved, 2 when
   * scheduled, 0 for a stale handle: one reclaimed since, or one whose entry this very call
   * already moved (a repeat after a lost reply).
   */
  requeue: `${HOLDS}
${NOW}
${ADD}
if not holds(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if tonumber(ARGV[8]) <= now then
  add(KEYS[1], { 'id', ARGV[5], 'payload', ARGV[9], 'attempt', ARGV[6], 'retries', ARGV[7], 'notBefore', ARGV[8] }, ARGV[10])
  return 1
end
redis.call('ZADD', KEYS[2], ARGV[8], cmsgpack.pack(ARGV[3], ARGV[5], ARGV[6], ARGV[8], ARGV[9], ARGV[7], ARGV[10]))
return 2`,

  /** Delayed sends. KEYS: schedule. ARGV: notBefore, headers ('' for none), then (token, itemId, payload) triples. */
  schedule: `for i = 3, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], ARGV[1], cmsgpack.pack(ARGV[i], ARGV[i + 1], '0', ARGV[1], ARGV[i + 2], '0', ARGV[2]))
end
return (#ARGV - 2) / 3`,

  /**
   * The mover. KEYS: stream, schedule. ARGV: limit. Adds every due scheduled item to the stream
   * (with its id, attempt, retries, notBefore and headers) and removes it from the schedule, atomically.
   * Returns { moved, score of the next scheduled item or false }.
   */
  move: `${NOW}
${ADD}
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local _, id, attempt, notBefore, payload, retries, headers = cmsgpack.unpack(m)
  add(KEYS[1], { 'id', id, 'payload', payload, 'attempt', attempt, 'retries', retries or '0', 'notBefore', notBefore }, headers)
  redis.call('ZREM', KEYS[2], m)
end
local nextDue = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return { #due, nextDue[2] or false }`,

  /**
   * Dead letter. KEYS: stream, dead-letter stream, its index (item id → letter entry id). ARGV:
   * group, entryId, itemId, payload, attempt, retries, reason, reasonName, reasonStack, headers. If the
   * entry is still pending (for any consumer: a late dead letter is an outcome, as a late ack
   * is), adds the dead letter (replacing an older letter of the item), indexes it and acks the
   * entry in one step. Returns 1 when written, 0 when the entry is settled already: a repeat
   * after a lost reply writes nothing.
   */
  deadLetter: `${NOW}
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if p[1] == nil then return 0 end
local older = redis.call('HGET', KEYS[3], ARGV[3])
if older then redis.call('XDEL', KEYS[2], older) end
local fields = { 'id', ARGV[3], 'payload', ARGV[4], 'attempt', ARGV[5], 'retries', ARGV[6], 'reason', ARGV[7], 'reasonName', ARGV[8], 'entry', ARGV[2], 'at', string.format('%d', now) }
if ARGV[9] ~= '' then
  fields[#fields + 1] = 'reasonStack'
  fields[#fields + 1] = ARGV[9]
end
if ARGV[10] and ARGV[10] ~= '' then
  fields[#fields + 1] = 'headers'
  fields[#fields + 1] = ARGV[10]
end
local letter = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('HSET', KEYS[3], ARGV[3], letter)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1`,

  /**
   * Redrive. KEYS: stream, schedule, dead-letter stream, its index. ARGV: delay (ms), then
   * "all", the newest letter entry id to take and how many, or "ids" and item ids. Each letter
   * found goes back under its item id with its payload bytes, its headers and a fresh count (no `attempt`,
   * `retries` 0): to the stream, or with a delay to the schedule; then, in the same step, it
   * leaves the dead letters. Returns how many went back.
   */
  redrive: `${NOW}
${ADD}
local delay = tonumber(ARGV[1])
local function field(f, name)
  for i = 1, #f, 2 do
    if f[i] == name then return f[i + 1] end
  end
end
local function back(letter, f)
  local id = field(f, 'id') or letter
  local payload = field(f, 'payload') or ''
  local headers = field(f, 'headers') or ''
  if delay > 0 then
    local due = string.format('%d', now + delay)
    redis.call('ZADD', KEYS[2], due, cmsgpack.pack(letter, id, '0', due, payload, '0', headers))
  else
    add(KEYS[1], { 'id', id, 'payload', payload }, headers)
  end
  redis.call('XDEL', KEYS[3], letter)
  if redis.call('HGET', KEYS[4], id) == letter then redis.call('HDEL', KEYS[4], id) end
end
local n = 0
if ARGV[2] == 'all' then
  for _, e in ipairs(redis.call('XRANGE', KEYS[3], '-', ARGV[3], 'COUNT', ARGV[4])) do
    back(e[1], e[2])
    n = n + 1
  end
  return n
end
for i = 3, #ARGV do
  local letter = redis.call('HGET', KEYS[4], ARGV[i])
  if letter then
    local e = redis.call('XRANGE', KEYS[3], letter, letter)[1]
    if e then
      back(letter, e[2])
      n = n + 1
    else
      redis.call('HDEL', KEYS[4], ARGV[i])
    end
  end
end
return n`,

  /**
   * Purge. KEYS: dead-letter stream, its index. ARGV: "all", or "ids" and item ids. Deletes the
   * letters (all of them with the keys) and their index entries. Returns how many letters went.
   */
  purge: `if ARGV[1] == 'all' then
  local n = redis.call('XLEN', KEYS[1])
  redis.call('DEL', KEYS[1], KEYS[2])
  return n
end
local n = 0
for i = 2, #ARGV do
  local letter = redis.call('HGET', KEYS[2], ARGV[i])
  if letter then
    n = n + redis.call('XDEL', KEYS[1], letter)
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return n`,

  /**
   * Depth. KEYS: stream, schedule, dead-letter stream. ARGV: group. Returns { group found (1/0),
   * its lag (-1 when Redis cannot tell), its pending count, its last-delivered id, the stream's
   * length, scheduled items due, scheduled items not due, dead letters }, read in one step.
   */
  depth: `${NOW}
local found, lag, pending, last = 0, -1, 0, '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[1] then
      found = 1
      pending = info['pending']
      last = info['last-delivered-id']
      if info['lag'] then lag = info['lag'] end
    end
  end
end
local at = string.format('%d', now)
return { found, lag, pending, last, redis.call('XLEN', KEYS[1]), redis.call('ZCOUNT', KEYS[2], '-inf', at), redis.call('ZCOUNT', KEYS[2], '(' .. at, '+inf'), redis.call('XLEN', KEYS[3]) }`,

  /**
   * Lease renewal. KEYS: stream. ARGV: group, consumer, deliveryTime (epoch ms), then
   * (entryId, deliveryCount) pairs. Claims to itself (JUSTID: the delivery count stays) only the
   * entries it still holds, never one another consumer reclaimed. Returns how many it renewed.
   */
  extend: `${HOLDS}
local n = 0
for i = 4, #ARGV, 2 do
  if holds(KEYS[1], ARGV[1], ARGV[2], ARGV[i], ARGV[i + 1]) then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'TIME', ARGV[3], 'JUSTID')
    n = n + 1
  end
end
return n`,

  /**
   * Trimming that never loses work. KEYS: stream. Deletes the entries below the oldest one some
   * group still needs: its oldest pending entry, or the first after its last-delivered id.
   * Returns the number of entries deleted (0 with no group).
   */
  trim: `local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local minId = nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local ms, seq = parse(info['last-delivered-id'])
  local need = ms .. '-' .. (seq + 1)
  if info['pending'] > 0 then
    local summary = redis.call('XPENDING', KEYS[1], info['name'])
    if less(summary[2], need) then need = summary[2] end
  end
  if minId == nil or less(need, minId) then minId = need end
end
return redis.call('XTRIM', KEYS[1], 'MINID', minId)`,
} as const;

export type ScriptName = keyof typeof scripts;

const shas = Object.fromEntries(
  Object.entries(scripts).map(([name, source]) => [name, createHash("sha1").update(source).digest("hex")]),
) as Record<ScriptName, string>;

/**
 * Runs a script by its SHA1, sending its source only when the server does not know it (first use,
 * or after a restart or `SCRIPT FLUSH`).
 */
export function runScript<R>(
  connection: Connection,
  operation: string,
  name: ScriptName,
  keys: readonly RedisArgument[],
  args: readonly RedisArgument[],
  typeMapping?: TypeMapping,
): Promise<R> {
  const tail = [String(keys.length), ...keys, ...args];
  const options = typeMapping === undefined ? undefined : { typeMapping };
  return connection.run(operation, async (client) => {
    try {
      return await client.sendCommand<R>(["EVALSHA", shas[name], ...tail], options);
    } catch (error) {
      if (replyCode(error) !== "NOSCRIPT") throw error;
      return client.sendCommand<R>(["EVAL", scripts[name], ...tail], options);
    }
  });
}
