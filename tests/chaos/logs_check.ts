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
import { readSnapshotFile, type SnapshotSession } from "../../src/storage/snapshot_file.ts";
import type { HistoryEvent } from "./history.ts";

export interface NodeLogs {
  readonly id: number;
  /** The entries logs.txt holds, from index `start + 1` (a `BASE <start> <term>` first line; 0 when none). */
  readonly entries: readonly LogLine[];
  readonly start?: number;
  /** From metadata.txt (0 when missing). */
  readonly commitLength: number;
  readonly dump: readonly string[];
  /** snapshot.txt, when the node has one (the state its compacted log continues from). */
  readonly snapshot?: NodeSnapshot;
}

export interface NodeSnapshot {
  readonly index: number;
  readonly sessions: readonly [string, SnapshotSession][];
  readonly pairs: readonly [string, string, number][];
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
  /** Acknowledged SETs found in no log because every log was compacted past them (snapshots). */
  readonly compactedAcks?: number;
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
  // A compacted log starts with `BASE <index> <term>`: the entries before are in snapshot.txt.
  const base = /^BASE (\d+) \d+ #/.exec(lines[0] ?? "");
  const start = base ? Number(base[1]) : 0;
  if (base) lines.shift();
  const entries = lines.map((l, i) => parseLogLine(l, start + i + 1));
  const meta = (await readText(`${dir}/metadata.txt`)) ?? "";
  const m = /^commitLength: (\d+)$/m.exec(meta);
  const dump = ((await readText(`${dir}/dump.txt`)) ?? "").split("\n").filter((l) => l !== "");
  const sessions: [string, SnapshotSession][] = [];
  const pairs: [string, string, number][] = [];
  const h = await readSnapshotFile(`${dir}/snapshot.txt`, {
    header() {},
    session: (c, s) => sessions.push([c, s]),
    pair: (k, v, version) => pairs.push([k, v, version]),
  });
  const snapshot = h === null ? undefined : { index: h.index, sessions, pairs };
  return { id, entries, start, commitLength: m ? Number(m[1]) : 0, dump, ...(snapshot ? { snapshot } : {}) };
}

function sameEntry(a: LogLine, b: LogLine): boolean {
  return a.raw === b.raw;
}

export function checkLogs(nodes: readonly NodeLogs[], history: readonly HistoryEvent[]): LogsReport {
  const anomalies: LogAnomaly[] = [];
  const last = (n: NodeLogs) => (n.start ?? 0) + n.entries.length;
  for (const n of nodes) {
    if (n.commitLength > last(n)) {
      anomalies.push({
        kind: "commit-beyond-log",
        description: `node ${n.id}: metadata.txt says ${n.commitLength} entries are committed, ` +
          `logs.txt holds up to ${last(n)}`,
      });
    }
  }
  const ref =
    [...nodes].sort((a, b) => Math.min(b.commitLength, last(b)) - Math.min(a.commitLength, last(a)))[0];
  const refLen = ref ? Math.min(ref.commitLength, last(ref)) : 0;
  const at = (n: NodeLogs, index: number) => n.entries[index - (n.start ?? 0) - 1];
  for (const n of nodes) {
    if (!ref || n === ref) continue;
    // Compare where both still hold entries (before that, both are in snapshots).
    const upto = Math.min(n.commitLength, last(n), refLen);
    for (let i = Math.max(n.start ?? 0, ref.start ?? 0) + 1; i <= upto; i++) {
      if (!sameEntry(at(n, i), at(ref, i))) {
        anomalies.push({
          kind: "committed-prefix-diverged",
          description: `index ${i}: node ${n.id} has ${JSON.stringify(at(n, i).raw)}, node ${ref.id} ` +
            `has ${JSON.stringify(at(ref, i).raw)} (both within their committed prefixes: ` +
            `${n.commitLength} and ${ref.commitLength})`,
        });
        break;
      }
    }
  }
  let compactedAcks = 0;
  // Every acknowledged SET is in the longest committed prefix.
  if (ref) {
    // The committed prefixes agree (checked above): gather each node's committed entries.
    const committed = new Set<string>();
    for (const n of nodes) {
      for (let i = (n.start ?? 0) + 1; i <= Math.min(n.commitLength, last(n)); i++) {
        const e = at(n, i);
        if (e.op === "SET" || e.op === "CAS") committed.add(`${e.key}\u0000${e.value}`);
      }
    }
    // Some committed index is held by no node's retained committed entries: every log was compacted past
    // it (a node replaced for good keeps an old uncompacted log, but only a short committed prefix of it).
    const covered = nodes
      .map((n) => [(n.start ?? 0) + 1, Math.min(n.commitLength, last(n))] as const)
      .filter(([from, to]) => from <= to)
      .sort((a, b) => a[0] - b[0]);
    let reach = 0;
    for (const [from, to] of covered) if (from <= reach + 1) reach = Math.max(reach, to);
    const compacted = reach < refLen;
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
      if (compacted) {
        // Every log was compacted: an old write lives on only in snapshots (if not overwritten since). The
        // history's linearizability check covers it.
        compactedAcks++;
        continue;
      }
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
  return {
    anomalies,
    committedLength: refLen,
    referenceNode: ref?.id ?? 0,
    terms: leaders.size,
    compactedAcks,
  };
}
