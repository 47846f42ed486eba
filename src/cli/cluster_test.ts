import { ok, rejects, strictEqual } from "node:assert/strict";
import { clusterConfigToJson, loadClusterConfig, localClusterConfig } from "../config/cluster_config.ts";
import { CliError } from "./common.ts";
import { metricsAddresses, prepareConfig, rawPeerPort } from "./cluster_cmd.ts";
import { isCompiled, selfCommand } from "./self_command.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-cluster-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const opts = (dir: string, nodes: number, basePort = 7101, basePortGiven = false) => ({
  nodes,
  basePort,
  basePortGiven,
  dataDir: dir,
  configPath: `${dir}/cluster.json`,
});

Deno.test("cluster writes a new loopback config with a fresh cluster id", async () => {
  await withDir(async (dir) => {
    const { config, note } = await prepareConfig(opts(dir, 3, 7300));
    strictEqual(config.nodes.map((n) => n.address).join(","), "127.0.0.1:7300,127.0.0.1:7301,127.0.0.1:7302");
    ok(config.clusterId.startsWith("local-"), config.clusterId);
    ok(note.startsWith("new config"), note);
    strictEqual((await loadClusterConfig(`${dir}/cluster.json`)).clusterId, config.clusterId);
  });
});

Deno.test("cluster keeps an existing config with the same node count, so a restart keeps its data", async () => {
  await withDir(async (dir) => {
    const first = await prepareConfig(opts(dir, 3));
    const again = await prepareConfig(opts(dir, 3));
    strictEqual(again.config.clusterId, first.config.clusterId);
    ok(again.note.startsWith("existing config kept"), again.note);
    const moved = await prepareConfig(opts(dir, 3, 7400, true));
    strictEqual(moved.config.clusterId, first.config.clusterId);
    strictEqual(moved.config.nodes[0].address, "127.0.0.1:7400");
  });
});

Deno.test("cluster refuses another node count over a data dir that holds data", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/cluster.json`, clusterConfigToJson(localClusterConfig(3, 7101)));
    await Deno.mkdir(`${dir}/logs_node_1`);
    await rejects(prepareConfig(opts(dir, 5)), (e: unknown) => {
      ok(e instanceof CliError && e.exitCode === 2, String(e));
      ok(e.message.includes("holds data of a 3-node cluster"), e.message);
      return true;
    });
  });
});

Deno.test("cluster gives node i a metrics port 100 above its gRPC port, or from --metrics-base-port", () => {
  const config = localClusterConfig(3, 7101);
  strictEqual(
    [...metricsAddresses(config).entries()].join(" "),
    "1,127.0.0.1:7201 2,127.0.0.1:7202 3,127.0.0.1:7203",
  );
  strictEqual(
    [...metricsAddresses(config, 9100).values()].join(" "),
    "127.0.0.1:9100 127.0.0.1:9101 127.0.0.1:9102",
  );
});

Deno.test("cluster refuses metrics ports that meet a gRPC port or leave the port space", () => {
  const refused = (f: () => unknown, words: string) => {
    try {
      f();
    } catch (e) {
      ok(e instanceof CliError && e.exitCode === 2, String(e));
      ok(e.message.includes(words), e.message);
      return;
    }
    throw new Error(`not refused: ${words}`);
  };
  refused(() => metricsAddresses(localClusterConfig(3, 7101), 7099), "port 7101 is also a node's gRPC port");
  refused(() => metricsAddresses(localClusterConfig(3, 7101), 65534), "leaves no room for 3 ports");
  refused(
    () => metricsAddresses(localClusterConfig(3, 7101), 8102),
    "port 8102 is also a node's raw peer port",
  );
});

Deno.test("cluster names each node's raw peer port: gRPC port + 1000 by default, none on explicit gRPC peers", () => {
  const config = localClusterConfig(3, 7101);
  strictEqual(rawPeerPort(config, "127.0.0.1:7102"), 8102);
  strictEqual(rawPeerPort({ ...config, rawPeerPortOffset: -2000 }, "127.0.0.1:7102"), 5102);
  strictEqual(rawPeerPort({ ...config, peerTransport: "grpc" }, "127.0.0.1:7102"), undefined);
});

Deno.test("from source the program restarts itself as deno run -A --v8-flags=… mod.ts", () => {
  strictEqual(isCompiled("/usr/bin/deno"), false);
  strictEqual(isCompiled("/usr/local/bin/raftkv"), true);
  const self = selfCommand();
  strictEqual(self.cmd, Deno.execPath());
  strictEqual(self.args[0], "run");
  strictEqual(self.args[1], "-A");
  strictEqual(self.args[2], "--v8-flags=--max-semi-space-size=1,--expose-gc");
  ok(self.args[3].endsWith("/mod.ts"), self.args[3]);
});
