/**
 * Watchers during a chaos run, and the watch checker (issue 15).
 *
 * Each watcher follows a prefix from log index 1 through the client library (which reconnects to any node
 * and resumes after the last index it saw). The checker replays the longest committed prefix of the logs
 * through a KvStore to get the committed changes (SET, DELETE of an existing key, CAS that held), and
 * requires every watcher's events to be exactly those changes for its prefix, in order, from its start up
 * to the last event it saw: no gap, no duplicate, no reordering, and no event that was never committed.
 *
 * @module
 */
import { RaftkvClient } from "../../src/client/mod.ts";
import { type KvChange, KvStore } from "../../src/kv/kv_store.ts";
import type { Entry } from "../../src/raft/types.ts";
import { parseEntryText } from "../../src/storage/codec.ts";
import type { NodeAddress } from "../../src/config/cluster_config.ts";
import type { NodeLogs } from "./logs_check.ts";

export interface WatchRecord {
  readonly name: string;
  readonly prefix: string;
  readonly fromIndex: number;
  readonly events: KvChange[];
  /** Why the watch stopped early (an error), if it did. */
  error?: string;
  /** Nodes the stream (re)started at. */
  readonly connects: number[];
}

export interface Watchers {
  readonly records: readonly WatchRecord[];
  /** Stops every watcher and waits for them. */
  stop(): Promise<void>;
}

/** Starts one watcher per prefix, from index 1, with a reconnect budget long enough to outlast faults. */
export function startWatchers(nodes: readonly NodeAddress[], prefixes: readonly string[]): Watchers {
  const abort = new AbortController();
  const client = new RaftkvClient({ nodes, timeoutMs: 60_000, attemptTimeoutMs: 1000 });
  const records: WatchRecord[] = [];
  const runs = prefixes.map(async (prefix, i) => {
    const rec: WatchRecord = { name: `watcher${i}`, prefix, fromIndex: 1, events: [], connects: [] };
    records.push(rec);
    try {
      const events = client.watch(prefix, {
        prefix: true,
        fromIndex: 1,
        signal: abort.signal,
        reconnectTimeoutMs: 60_000,
        onConnect: (c) => rec.connects.push(c.nodeId),
      });
      for await (const e of events) rec.events.push(e);
    } catch (e) {
      if (!abort.signal.aborted) rec.error = e instanceof Error ? e.message : String(e);
    }
  });
  return {
    records,
    async stop() {
      abort.abort();
      await Promise.all(runs);
      client.close();
    },
  };
}

/** The changes of the longest committed prefix among `nodes` (replayed through a KvStore). */
export function committedChanges(nodes: readonly NodeLogs[]): KvChange[] {
  let ref: NodeLogs | undefined;
  for (const n of nodes) {
    const len = Math.min(n.commitLength, n.entries.length);
    if (!ref || len > Math.min(ref.commitLength, ref.entries.length)) ref = n;
  }
  if (!ref) return [];
  const kv = new KvStore();
  const changes: KvChange[] = [];
  kv.onChange = (c) => changes.push(c);
  const len = Math.min(ref.commitLength, ref.entries.length);
  for (let i = 0; i < len; i++) {
    const raw = ref.entries[i].raw.replace(/ #[0-9a-f]{8}$/, "");
    const entry: Entry = parseEntryText(raw, i + 1);
    kv.apply(entry);
  }
  return changes;
}

/**
 * Problems with one watcher's events against the committed changes: each event must be the next committed
 * change under its prefix. Events beyond the known committed prefix are checked only for order (a watcher may
 * have seen an entry committed after the last commit hint was written).
 */
export function checkWatcher(rec: WatchRecord, committed: readonly KvChange[]): string[] {
  const problems: string[] = [];
  const expected = committed.filter((c) => c.index >= rec.fromIndex && c.key.startsWith(rec.prefix));
  const lastKnown = committed.length > 0 ? committed[committed.length - 1].index : 0;
  let prev = 0;
  for (let i = 0; i < rec.events.length; i++) {
    const e = rec.events[i];
    if (e.index <= prev) {
      problems.push(
        `${rec.name}: event ${i} at index ${e.index} after index ${prev} (duplicate or out of order)`,
      );
      break;
    }
    prev = e.index;
    if (e.index > lastKnown) continue;
    const want = expected[i];
    if (!want || want.index !== e.index || want.op !== e.op || want.key !== e.key || want.value !== e.value) {
      problems.push(
        `${rec.name} (prefix ${JSON.stringify(rec.prefix)}): event ${i} is ${describe(e)}, the committed ` +
          `change there is ${want ? describe(want) : "none"}`,
      );
      break;
    }
  }
  return problems;
}

function describe(c: KvChange): string {
  return `${c.index} ${c.op.toUpperCase()} ${JSON.stringify(c.key)}${
    c.op === "del" ? "" : ` ${JSON.stringify(c.value)}`
  }`;
}
