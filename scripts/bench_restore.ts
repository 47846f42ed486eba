/**
 * The follower's restore path alone, without sockets: a snapshot file is cut into the chunks a leader sends,
 * each chunk given as the wire hands it over (a Node Buffer view, as protobuf decodes it), parsed and fed into
 * a state built beside the live one, as a wiped follower does while a snapshot arrives (issue 10's rebuild):
 *
 *   deno run -A --v8-flags=--max-semi-space-size=1,--expose-gc scripts/bench_restore.ts [--keys 100000] \
 *     [--value-size 100] [--chunk-bytes 1048576] [--runs 15]
 *
 * Prints ms per run and keys/s for the parse + insert step, the part of a rebuild that is the follower's CPU
 * and not the transport's. The V8 flags are the node's (src/ops/permissions.ts: a 1 MiB young generation, so
 * the restore's surviving strings are copied out of it as in a node); each run starts after a full collection.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import { KvStore } from "../src/kv/mod.ts";
import { SnapshotParser } from "../src/storage/snapshot_file.ts";
import { encodeSnapshot } from "../src/storage/snapshot_file.ts";
import type { Entry } from "../src/raft/types.ts";

const { values: argv } = parseArgs({
  args: Deno.args,
  options: {
    keys: { type: "string", default: "100000" },
    "value-size": { type: "string", default: "100" },
    "chunk-bytes": { type: "string", default: String(1 << 20) },
    runs: { type: "string", default: "15" },
  },
});
const KEYS = Number(argv.keys), VALUE = "v".repeat(Number(argv["value-size"]));
const CHUNK = Number(argv["chunk-bytes"]), RUNS = Number(argv.runs);

const source = new KvStore();
for (let i = 1; i <= KEYS; i++) {
  const e: Entry = {
    index: i,
    term: 1,
    command: { op: "set", key: `key${i - 1}`, value: VALUE, clientId: "c-7f3a", seq: i },
  };
  source.apply(e);
}
const view = source.snapshot();
const bytes = encodeSnapshot({
  header: { index: view.index, term: 1, keys: view.keys, sessions: view.sessions },
  sessions: () => view.sessionEntries(),
  nextPairs: (max) => view.nextPairs(max),
});
view.close();
console.log(`# bench_restore: ${KEYS} keys, ${bytes.length} bytes, chunks of ${CHUNK} bytes`);

const times: number[] = [];
for (let run = 0; run < RUNS; run++) {
  // Each chunk in its own Buffer, as a frame off the wire is.
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += CHUNK) chunks.push(Buffer.from(bytes.subarray(at, at + CHUNK)));
  (globalThis as { gc?: () => void }).gc?.();
  const kv = new KvStore();
  let restore: ReturnType<KvStore["beginRestore"]> | undefined;
  const t0 = performance.now();
  const parser = new SnapshotParser("bench", {
    header: (h) => (restore = kv.beginRestore(h.index)),
    session: (c, s) => restore!.session(c, s),
    pair: (k, v, version) => restore!.pair(k, v, version),
  });
  for (const c of chunks) parser.push(c);
  parser.finish();
  restore!.commit();
  const ms = performance.now() - t0;
  times.push(ms);
  console.log(
    `run ${run + 1}: ${ms.toFixed(1)} ms, ${Math.round(KEYS / (ms / 1000)).toLocaleString("en")} keys/s`,
  );
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(
  `median ${median.toFixed(1)} ms: ${Math.round(KEYS / (median / 1000)).toLocaleString("en")} keys/s`,
);
