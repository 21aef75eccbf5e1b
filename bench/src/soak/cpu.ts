import { readFileSync, readdirSync } from "node:fs";

/** Units of the times in /proc/<pid>/stat (USER_HZ), per second: 100 on every Linux. */
const TICKS_PER_SECOND = 100;

/**
 * CPU ms used so far by this process and by its running child processes (the servers it
 * started), read from /proc on Linux; elsewhere this process's own.
 */
export function cpuMs(): number {
  const own = process.cpuUsage();
  return (own.user + own.system) / 1000 + childrenMs();
}

function childrenMs(): number {
  if (process.platform !== "linux") return 0;
  let total = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // The fields after "(command)": state, ppid, … utime and stime are the 12th and 13th of them.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[1]) !== process.pid) continue;
    total += ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  }
  return total;
}
