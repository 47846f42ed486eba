/**
 * Watchers during a chaos run, and the watch checker (issue 15).
 *
 * Each watcher follows a prefix from log index 1 through the client library (which reconnects to any node
 * and resumes after the last index it saw). The checker replays the longest committed prefix of the logs
 * through a KvStore to get the committed changes (SET, DELETE of an existing key, CAS that held), and
 * requires every watcher's events to be exactly those changes for its prefix, in order, from its start up
 * to the last event it saw: no gap, no duplicate, no reordering, and no event that was never committed.
 *
 * Snapshots (issue 10): a compacted log is replayed from its node's snapshot.txt, so the changes are known
 * from the snapshot's index + 1 on (events before are checked for order only). A node whose watch history no
 * longer reaches the watcher's position answers `compacted` with the oldest index it has: the watcher records
 * that declared gap and resumes there; the changes inside a declared gap are the only ones it may miss.
 *
 * @module
 */
import { RaftkvClient, WatchError } from "../../src/client/mod.ts";
import { type KvChange, KvStore } from "../../src/kv/kv_store.ts";
import type { Entry } from "../../src/raft/types.ts";
import { parseEntryText } from "../../src/storage/codec.ts";
import type { NodeAddress } from "../../src/config/cluster_config.ts";
import type { CertificateStore } from "../../src/security/mod.ts";
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
  /** Indexes [from, to) a node said were compacted away (`compacted`): the watcher resumed at `to`. */
  readonly gaps: { from: number; to: number }[];
}

export interface Watchers {
  readonly records: readonly WatchRecord[];
  /** Stops every watcher and waits for them. */
  stop(): Promise<void>;
}

/** Starts one watcher per prefix, from index 1, with a reconnect budget long enough to outlast faults. */
export function startWatchers(
  nodes: readonly NodeAddress[],
  prefixes: readonly string[],
  tls?: CertificateStore,
): Watchers {
  const abort = new AbortController();
  // With mutual TLS (deno task chaos without --insecure) the watchers present the harness's certificate.
  const client = new RaftkvClient({
    nodes,
    timeoutMs: 60_000,
    attemptTimeoutMs: 1000,
    ...(tls ? { tls } : {}),
  });
  const records: WatchRecord[] = [];
  const runs = prefixes.map(async (prefix, i) => {
    const rec: WatchRecord = {
      name: `watcher${i}`,
      prefix,
      fromIndex: 1,
      events: [],
      connects: [],
      gaps: [],
    };
    records.push(rec);
    let from = 1;
    while (!abort.signal.aborted) {
      try {
        const events = client.watch(prefix, {
          prefix: true,
          fromIndex: from,
          signal: abort.signal,
          reconnectTimeoutMs: 60_000,
          onConnect: (c) => rec.connects.push(c.nodeId),
        });
        for await (const e of events) {
          rec.events.push(e);
          from = e.index + 1;
        }
        return;
      } catch (e) {
        if (abort.signal.aborted) return;
        if (e instanceof WatchError && e.kind === "compacted" && e.oldestIndex > from) {
          // The node's history starts later (snapshots): a declared gap, resumed where it starts.
          rec.gaps.push({ from, to: e.oldestIndex });
          from = e.oldestIndex;
          continue;
        }
        rec.error = e instanceof Error ? e.message : String(e);
        return;
      }
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

/** The committed changes, known from index `knownFrom` on (1 unless the logs were compacted). */
export interface CommittedChanges {
  readonly changes: KvChange[];
  readonly knownFrom: number;
}

/**
 * The changes of the longest committed prefix among `nodes`, replayed through a KvStore: from index 1, or,
 * when that node's log was compacted, from its snapshot (whose state the replay starts from).
 */
export function committedChanges(nodes: readonly NodeLogs[]): CommittedChanges {
  const end = (n: NodeLogs) => Math.min(n.commitLength, (n.start ?? 0) + n.entries.length);
  let ref: NodeLogs | undefined;
  for (const n of nodes) if (!ref || end(n) > end(ref)) ref = n;
  if (!ref) return { changes: [], knownFrom: 1 };
  const kv = new KvStore();
  const start = ref.start ?? 0;
  let from = 1;
  if (start > 0 || ref.snapshot !== undefined) {
    const snap = ref.snapshot;
    if (snap === undefined || snap.index < start) {
      throw new Error(`node ${ref.id}: logs.txt starts after ${start}, but no snapshot.txt covers it`);
    }
    const r = kv.beginRestore(snap.index);
    for (const [c, s] of snap.sessions) r.session(c, s);
    for (const [k, v, version] of snap.pairs) r.pair(k, v, version);
    r.commit();
    from = snap.index + 1;
  }
  const changes: KvChange[] = [];
  kv.onChange = (c) => changes.push(c);
  for (let index = from; index <= end(ref); index++) {
    const raw = ref.entries[index - start - 1].raw.replace(/ #[0-9a-f]{8}$/, "");
    const entry: Entry = parseEntryText(raw, index);
    kv.apply(entry);
  }
  return { changes, knownFrom: from };
}

/**
 * Problems with one watcher's events against the committed changes: each event must be the next committed
 * change under its prefix. Events beyond the known committed prefix are checked only for order (a watcher may
 * have seen an entry committed after the last commit hint was written).
 */
export function checkWatcher(rec: WatchRecord, known: CommittedChanges): string[] {
  const problems: string[] = [];
  const committed = known.changes;
  const inGap = (index: number) => (rec.gaps ?? []).some((g) => index >= g.from && index < g.to);
  const expected = committed.filter((c) =>
    c.index >= rec.fromIndex && c.key.startsWith(rec.prefix) && !inGap(c.index)
  );
  const lastKnown = committed.length > 0 ? committed[committed.length - 1].index : 0;
  let prev = 0;
  let j = 0; // the next expected change
  for (let i = 0; i < rec.events.length; i++) {
    const e = rec.events[i];
    if (e.index <= prev) {
      problems.push(
        `${rec.name}: event ${i} at index ${e.index} after index ${prev} (duplicate or out of order)`,
      );
      break;
    }
    prev = e.index;
    if (e.index < known.knownFrom) continue; // before the snapshot the logs start from: order only
    if (inGap(e.index)) {
      problems.push(`${rec.name}: event ${i} at index ${e.index} inside a gap declared compacted`);
      break;
    }
    if (e.index > lastKnown) continue;
    const want = expected[j++];
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
