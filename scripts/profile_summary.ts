/**
 * Where a node's CPU goes, by subsystem, from a V8 `.cpuprofile` (issue 16):
 *
 *   deno run --allow-read scripts/profile_summary.ts [--window-seconds S [--align] | --last S] [--ops N] FILE.cpuprofile…
 *
 * For each profile (e.g. written by `deno task trace-set --cpu-prof DIR` or `deno task idle-cpu --cpu-prof
 * DIR`) it finds the `--window-seconds` window (default: the whole profile) with the most non-idle samples,
 * attributes each sample's self time to a category by its innermost frame that names a source (a native
 * frame such as `writeBuffer` counts where its JavaScript caller is, except the few named below), and prints
 * ms per category in that window, ms/s, and µs per operation when `--ops` (operations completed in the window,
 * e.g. SET/s × seconds) is given. `--align` reads the same stretch of time in every profile: the busiest
 * profile's busiest window (e.g. the leader's during `trace-set --tput-seconds`), so followers are read then.
 *
 * Categories: GC, "(program)" (the runtime outside JavaScript: event loop, op dispatch, Rust http2 and socket
 * code), the socket write (`writeBuffer`), fsync, grpc-js, the `node:http2` polyfill, Node streams/net,
 * protobuf (@bufbuild and src/gen), raftkv's transport (codec, server, peer client), driver, Raft core, kv,
 * storage (append encoding), dump/logging, node, Deno core (promises, ops, timers), other.
 *
 * @module
 */
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const NAMED: Record<string, string> = {
  "(garbage collector)": "GC",
  "(program)": "runtime outside JS (program)",
  "(idle)": "idle",
  "(root)": "runtime outside JS (program)",
  writeBuffer: "socket write (writeBuffer)",
  op_fs_file_sync_data_async: "fsync",
  op_fs_file_sync_async: "fsync",
  op_fs_fdatasync_async: "fsync",
};

function categoryOfUrl(url: string): string | undefined {
  if (url === "") return undefined;
  if (url.includes("@grpc/grpc-js")) return "grpc-js";
  if (url.includes("@bufbuild/protobuf") || url.includes("/src/gen/")) return "protobuf";
  if (url.includes("@logtape") || url.includes("/src/storage/dump")) return "dump/logging";
  if (url.includes("internal/http2") || url.endsWith("/http2.ts")) return "node:http2 polyfill";
  if (url.startsWith("ext:deno_node") || url.startsWith("node:")) return "node streams/net/other polyfill";
  if (url.includes("/src/transport/")) return "raftkv transport";
  if (url.includes("/src/driver/")) return "driver";
  if (url.includes("/src/raft/")) return "raft core";
  if (url.includes("/src/kv/") || url.includes("/src/watch/")) return "kv/watch";
  if (url.includes("/src/storage/")) return "storage (encode, append)";
  if (url.includes("/src/node/")) return "node";
  if (url.includes("/src/metrics/")) return "metrics";
  if (url.startsWith("ext:")) return "Deno core (promises, ops, timers)";
  return "other";
}

export function summarize(
  profile: Profile,
  windowSeconds: number | undefined,
  fixed?: { fromUs: number; toUs: number },
): { windowMs: number; fromUs: number; toUs: number; byCategory: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const catCache = new Map<number, string>();
  const categoryOf = (id: number): string => {
    const cached = catCache.get(id);
    if (cached !== undefined) return cached;
    const frame = byId.get(id)!.callFrame;
    let cat = NAMED[frame.functionName] ?? categoryOfUrl(frame.url);
    if (cat === undefined) {
      const p = parent.get(id);
      cat = p === undefined ? "runtime outside JS (program)" : categoryOf(p);
    }
    catCache.set(id, cat);
    return cat;
  };
  // Sample i lasts until the next sample: its duration is timeDeltas[i + 1].
  const times: number[] = [];
  let t = profile.startTime;
  for (const d of profile.timeDeltas) times.push(t += d);
  const dur = (i: number) => (i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : 0);
  let from = 0, to = profile.samples.length;
  if (fixed !== undefined) {
    from = times.findIndex((t) => t >= fixed.fromUs);
    if (from < 0) from = times.length;
    to = times.findIndex((t) => t > fixed.toUs);
    if (to < 0) to = times.length;
  } else if (windowSeconds !== undefined) {
    const w = windowSeconds * 1e6;
    let best = -1, lo = 0, busy = 0;
    for (let hi = 0; hi < profile.samples.length; hi++) {
      if (categoryOf(profile.samples[hi]) !== "idle") busy += dur(hi);
      while (times[hi] - times[lo] > w) {
        if (categoryOf(profile.samples[lo]) !== "idle") busy -= dur(lo);
        lo++;
      }
      if (busy > best) [best, from, to] = [busy, lo, hi + 1];
    }
  }
  const byCategory = new Map<string, number>();
  for (let i = from; i < to; i++) {
    const cat = categoryOf(profile.samples[i]);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + dur(i) / 1000);
  }
  const fromUs = times[from] ?? 0, toUs = times[to - 1] ?? 0;
  return { windowMs: (toUs - fromUs) / 1000, fromUs, toUs, byCategory };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      "window-seconds": { type: "string" },
      ops: { type: "string" },
      align: { type: "boolean" },
      last: { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  const windowSeconds = values["window-seconds"] ? Number(values["window-seconds"]) : undefined;
  const ops = values.ops ? Number(values.ops) : undefined;
  const profiles = positionals.map((file) => ({ file, profile: JSON.parse(Deno.readTextFileSync(file)) }));
  // --align: the window is the busiest profile's busiest one (e.g. the leader's load phase), and the same
  // stretch of time (V8's monotonic clock, shared by the processes of one machine) is read in every profile.
  let fixed: { fromUs: number; toUs: number } | undefined;
  if (values.align && windowSeconds !== undefined) {
    const busiest = (p: Profile) => summarize(p, windowSeconds);
    const all = profiles.map((p) => busiest(p.profile));
    const total = (r: ReturnType<typeof summarize>) =>
      [...r.byCategory].filter(([c]) => c !== "idle").reduce((s, [, ms]) => s + ms, 0);
    const best = all.reduce((a, b) => (total(b) > total(a) ? b : a));
    fixed = { fromUs: best.fromUs, toUs: best.toUs };
  }
  for (const { file, profile } of profiles) {
    if (values.last !== undefined) {
      // --last S: the S seconds before the profile's last half second (an idle run's measuring phase; the
      // last half second is the stop).
      const endUs = profile.endTime - 500_000;
      fixed = { fromUs: endUs - Number(values.last) * 1e6, toUs: endUs };
    }
    const { windowMs, byCategory } = summarize(profile, windowSeconds, fixed);
    const rows = [...byCategory].filter(([c]) => c !== "idle").sort((a, b) => b[1] - a[1]);
    const busy = rows.reduce((s, [, ms]) => s + ms, 0);
    console.log(`${file}: window ${(windowMs / 1000).toFixed(1)} s, busy ${busy.toFixed(0)} ms`);
    for (const [cat, ms] of [...rows, ["total busy", busy] as [string, number]]) {
      const perOp = ops ? `  ${(ms * 1000 / ops).toFixed(1).padStart(7)} µs/op` : "";
      console.log(
        `  ${cat.padEnd(36)} ${ms.toFixed(0).padStart(7)} ms ${
          (ms / (windowMs / 1000)).toFixed(1).padStart(7)
        } ms/s${perOp}`,
      );
    }
  }
}
