/**
 * End-of-run checks over the nodes' logs folders (read after every node has been stopped):
 * - the committed prefixes agree: node n's first `commitLength` entries (metadata.txt) equal the entries at
 *   the same indexes of the node with the longest committed prefix, and no node records more committed
 *   entries than its logs.txt holds;
 * - every acknowledged SET is in the longest committed prefix (nothing acknowledged was lost);
 * - at most one node became leader in any term (dump.txt `Node X became the leader for term T.`).
 *
 * @module
 */
import { type LogLine, parseLogLine } from "../integration/harness.ts";
import type { HistoryEvent } from "./history.ts";

export interface NodeLogs {
  readonly id: number;
  readonly entries: readonly LogLine[];
  /** From metadata.txt (0 when missing). */
  readonly commitLength: number;
  readonly dump: readonly string[];
}

export interface LogAnomaly {
  readonly kind:
    | "committed-prefix-diverged"
    | "commit-beyond-log"
    | "acked-set-lost"
    | "two-leaders-one-term";
  readonly description: string;
}

export interface LogsReport {
  readonly anomalies: LogAnomaly[];
  /** The longest committed prefix and the node that has it. */
  readonly committedLength: number;
  readonly referenceNode: number;
  readonly terms: number;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Reads `logs_node_<id>/` (logs.txt without a torn last line, metadata.txt, dump.txt). */
export async function readNodeLogs(dir: string, id: number): Promise<NodeLogs> {
  const logs = (await readText(`${dir}/logs.txt`)) ?? "";
  const lines = logs.split("\n");
  lines.pop(); // "" after the last newline, or a torn line
  const entries = lines.map((l, i) => parseLogLine(l, i + 1));
  const meta = (await readText(`${dir}/metadata.txt`)) ?? "";
  const m = /^commitLength: (\d+)$/m.exec(meta);
  const dump = ((await readText(`${dir}/dump.txt`)) ?? "").split("\n").filter((l) => l !== "");
  return { id, entries, commitLength: m ? Number(m[1]) : 0, dump };
}

function sameEntry(a: LogLine, b: LogLine): boolean {
  return a.raw === b.raw;
}

export function checkLogs(nodes: readonly NodeLogs[], history: readonly HistoryEvent[]): LogsReport {
  const anomalies: LogAnomaly[] = [];
  for (const n of nodes) {
    if (n.commitLength > n.entries.length) {
      anomalies.push({
        kind: "commit-beyond-log",
        description: `node ${n.id}: metadata.txt says ${n.commitLength} entries are committed, ` +
          `logs.txt holds ${n.entries.length}`,
      });
    }
  }
  const ref =
    [...nodes].sort((a, b) =>
      Math.min(b.commitLength, b.entries.length) - Math.min(a.commitLength, a.entries.length)
    )[0];
  const refLen = ref ? Math.min(ref.commitLength, ref.entries.length) : 0;
  for (const n of nodes) {
    if (!ref || n === ref) continue;
    const upto = Math.min(n.commitLength, n.entries.length, refLen);
    for (let i = 0; i < upto; i++) {
      if (!sameEntry(n.entries[i], ref.entries[i])) {
        anomalies.push({
          kind: "committed-prefix-diverged",
          description:
            `index ${i + 1}: node ${n.id} has ${JSON.stringify(n.entries[i].raw)}, node ${ref.id} ` +
            `has ${JSON.stringify(ref.entries[i].raw)} (both within their committed prefixes: ` +
            `${n.commitLength} and ${ref.commitLength})`,
        });
        break;
      }
    }
  }
  // Every acknowledged SET is in the longest committed prefix.
  if (ref) {
    const committed = new Set<string>();
    for (let i = 0; i < refLen; i++) {
      const e = ref.entries[i];
      if (e.op === "SET" || e.op === "CAS") committed.add(`${e.key}\u0000${e.value}`);
    }
    const anywhere = new Set<string>();
    for (const n of nodes) {
      for (const e of n.entries) {
        if (e.op === "SET" || e.op === "CAS") anywhere.add(`${e.key}\u0000${e.value}`);
      }
    }
    let lost = 0;
    for (const e of history) {
      // An acknowledged SET, or a CAS acknowledged as having held, wrote its value.
      const written = e.type !== "ok"
        ? null
        : e.f === "set"
        ? e.value
        : e.f === "cas"
        ? (e.value as readonly [string | null, string])[1]
        : null;
      if (typeof written !== "string") continue;
      if (committed.has(`${e.key}\u0000${written}`)) continue;
      lost++;
      if (lost <= 5) {
        anomalies.push({
          kind: "acked-set-lost",
          description:
            `${e.f.toUpperCase()} ${e.key}=${written} acknowledged at ${
              e.time.toFixed(1)
            } ms (process ${e.process}) is ` +
            `not in the committed prefix of node ${ref.id} (${refLen} entries)` +
            (anywhere.has(`${e.key}\u0000${written}`)
              ? "; it is in some node's log beyond"
              : "; in no node's log"),
        });
      }
    }
    if (lost > 5) {
      anomalies.push({ kind: "acked-set-lost", description: `… ${lost} acknowledged SETs in all` });
    }
  }
  // At most one leader per term, from the dumps.
  const leaders = new Map<number, Set<number>>();
  for (const n of nodes) {
    for (const line of n.dump) {
      const m = /Node (\d+) became the leader for term (\d+)\./.exec(line);
      if (!m) continue;
      const term = Number(m[2]);
      const set = leaders.get(term) ?? new Set<number>();
      set.add(Number(m[1]));
      leaders.set(term, set);
    }
  }
  for (const [term, ids] of leaders) {
    if (ids.size > 1) {
      anomalies.push({
        kind: "two-leaders-one-term",
        description: `dump.txt: nodes ${[...ids].join(", ")} each became the leader for term ${term}`,
      });
    }
  }
  return { anomalies, committedLength: refLen, referenceNode: ref?.id ?? 0, terms: leaders.size };
}
