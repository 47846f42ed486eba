/**
 * `raftkv node` loads only what a node runs (src/cli/program.ts imports each subcommand when it runs): its static
 * module graph (mod.ts's, plus node_cmd.ts's, which program.ts imports dynamically) holds no REPL, benchmark,
 * certificate generation (@peculiar/x509), chart or etcd client. Each of those cost an idle node memory
 * (docs/operations.md "Memory"). The graph comes from `deno info --json`, following static imports only.
 */
import { ok } from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

interface InfoModule {
  readonly specifier: string;
  readonly dependencies?: readonly {
    readonly code?: { readonly specifier: string };
    readonly isDynamic?: boolean;
  }[];
}

async function info(entry: string): Promise<Map<string, InfoModule>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`deno info ${entry}: ${new TextDecoder().decode(out.stderr)}`);
  const json = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
  return new Map(json.modules.map((m) => [m.specifier, m]));
}

/** Every module reachable from `entry` through static imports (type-only imports are not code). */
async function staticGraph(entry: string): Promise<string[]> {
  const modules = await info(entry);
  const seen = new Set<string>();
  const stack = [new URL(entry, ROOT).href];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of modules.get(s)?.dependencies ?? []) {
      if (d.code && !d.isDynamic) stack.push(d.code.specifier);
    }
  }
  return [...seen].map((s) => s.startsWith(ROOT.href) ? s.slice(ROOT.href.length) : s);
}

/** What a node must not load, as substrings of module specifiers. */
const NOT_FOR_A_NODE = [
  "src/cli/repl.ts",
  "src/cli/bench_cmd.ts",
  "src/bench/",
  "src/cli/cluster_cmd.ts",
  "src/cli/status_watch.ts",
  "src/cli/certs_cmd.ts",
  "src/security/certs.ts",
  "@peculiar/x509",
  "echarts",
  "etcd3",
];

Deno.test("raftkv node's static module graph holds no REPL, bench, cluster runner or certificate generation", async () => {
  const graph = [...await staticGraph("mod.ts"), ...await staticGraph("src/cli/node_cmd.ts")];
  ok(graph.includes("src/node/raft_node.ts"), "the graph was read (the node itself is in it)");
  const found = NOT_FOR_A_NODE.filter((bad) => graph.some((m) => m.includes(bad)));
  ok(found.length === 0, `raftkv node loads ${found.join(", ")}: import it dynamically where it is used`);
});

Deno.test("the same check sees @peculiar/x509 and the benchmark where they are used (it can fail)", async () => {
  const certs = await staticGraph("src/cli/certs_cmd.ts");
  ok(certs.some((m) => m.includes("@peculiar/x509")), certs.join("\n"));
  const bench = await staticGraph("src/cli/bench_cmd.ts");
  ok(bench.some((m) => m.includes("src/bench/")), bench.join("\n"));
});
