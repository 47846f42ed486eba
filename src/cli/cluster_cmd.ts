/**
 * `raftkv cluster [--nodes 5] [--base-port 7101] [--data-dir ./raftkv-data] [--config-out F]`: a local cluster
 * on loopback in one command, for trying raftkv out.
 *
 * - Writes a config for N nodes on 127.0.0.1:<base-port>… (default `<data-dir>/cluster.json`). An existing
 *   config with the same node count is kept (same cluster id, so a restarted cluster keeps its data); with
 *   `--base-port` given and different, its addresses are moved and the rest kept.
 * - Starts N children running this same program: `node --id i --config F --data-dir D --quiet
 *   --metrics-address 127.0.0.1:<m>`, output appended to `D/node_<i>.out`. Node i serves /metrics, /healthz and
 *   /readyz on `--metrics-base-port` + i - 1 (default: its gRPC port + 100, so 7201… next to 7101…);
 *   `--no-metrics` leaves them off. Each node's raw peer port (gRPC port + `rawPeerPortOffset`, default 1000,
 *   so 8101…) is printed next to its address.
 * - Run again on a folder whose cluster changed members (`admin add-node --replace`), it starts the members of
 *   the latest configuration the nodes' folders hold, not cluster.json's bootstrap list: a removed node is
 *   named and not started, a node added since is started with `--join --address` (cluster_members.ts).
 * - Waits until a leader serves, then prints the config path, the leader and the exact client command.
 * - Ctrl-C or SIGTERM: SIGTERM to every child, wait for them (SIGKILL after 20 s), exit 0.
 * - A child that dies on its own is reported with its last output lines and how to restart it; the others keep
 *   running (killing a node is a legitimate experiment). When none is left, exit 1.
 * - A node restarted by hand with that command is stopped too on Ctrl-C (found by the pid in its folder's lock
 *   file). A node left over from an earlier run (the ports taken) is named with its pid and how to stop it.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import {
  type ClusterConfig,
  clusterConfigToJson,
  ConfigError,
  DEFAULT_RAW_PEER_PORT_OFFSET,
  loadClusterConfig,
  localClusterConfig,
  parseAddress,
  parseClusterConfig,
} from "../config/cluster_config.ts";
import {
  CliError,
  errorLine,
  EXIT_FAILURE,
  EXIT_USAGE,
  portOption,
  positiveIntOption,
  shellQuote,
  userPath,
} from "./common.ts";
import { selfCommand } from "./self_command.ts";
import { NODE_ENV } from "../ops/permissions.ts";
import {
  CertificateStore,
  certPaths,
  type Identity,
  initCerts,
  issueCert,
  loadTlsMaterial,
} from "../security/mod.ts";
import { findLeader, StatusReader } from "./status.ts";
import { latestConfiguration, type NodePlan, type NodeToStart, planNodes } from "./cluster_members.ts";

const MAX_NODES = 99;
const LEADER_WAIT_MS = 30_000;
const STOP_WAIT_MS = 20_000;
const TAIL_LINES = 15;

/** A user-typed path, absolute (relative to the caller's folder, also under `deno task`). */
const absolute = userPath;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Names of `logs_node_<id>` folders in the data dir (data of an earlier cluster). */
function existingNodeDirs(dataDir: string): string[] {
  try {
    return [...Deno.readDirSync(dataDir)].filter((e) => e.isDirectory && /^logs_node_\d+$/.test(e.name))
      .map((e) => e.name);
  } catch {
    return [];
  }
}

export interface PrepareOptions {
  readonly nodes: number;
  readonly basePort: number;
  /** True when --base-port was given on the command line (not the default). */
  readonly basePortGiven: boolean;
  readonly dataDir: string;
  readonly configPath: string;
}

/** The config to run with, and a note on what happened to the existing one (if any). */
export async function prepareConfig(o: PrepareOptions): Promise<{ config: ClusterConfig; note: string }> {
  if (exists(o.configPath)) {
    let old: ClusterConfig;
    try {
      old = await loadClusterConfig(o.configPath);
    } catch (e) {
      throw new CliError(
        `the existing config is unusable (${errorLine(e)}); delete it or pick another --data-dir`,
        EXIT_USAGE,
      );
    }
    if (old.nodes.length === o.nodes) {
      const oldBase = parseAddress(old.nodes[0].address).port;
      if (!o.basePortGiven || oldBase === o.basePort) {
        return {
          config: old,
          note: `existing config kept, cluster ${old.clusterId}: its data is kept`,
        };
      }
      const moved = parseClusterConfig(
        {
          ...old,
          nodes: old.nodes.map((n, i) => ({ id: n.id, address: `127.0.0.1:${o.basePort + i}` })),
        },
        o.configPath,
      );
      await Deno.writeTextFile(o.configPath, clusterConfigToJson(moved));
      return {
        config: moved,
        note: `existing cluster ${old.clusterId} moved to ports from ${o.basePort}: its data is kept`,
      };
    }
    const dirs = existingNodeDirs(o.dataDir);
    if (dirs.length > 0) {
      throw new CliError(
        `${o.dataDir} holds data of a ${old.nodes.length}-node cluster (${o.configPath}); ` +
          `use --nodes ${old.nodes.length}, another --data-dir, or delete ${o.dataDir}`,
        EXIT_USAGE,
      );
    }
  }
  const clusterId = `local-${crypto.randomUUID().slice(0, 8)}`;
  let config: ClusterConfig;
  try {
    config = localClusterConfig(o.nodes, o.basePort, { clusterId });
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(errorLine(e), EXIT_USAGE);
    throw e;
  }
  await Deno.writeTextFile(o.configPath, clusterConfigToJson(config));
  return { config, note: `new config, cluster ${clusterId}` };
}

/**
 * Mutual TLS for the local cluster: certificates in `<data-dir>/certs` (made once, kept on restarts) and the
 * config's "tls" pointing at them, node and client/admin alike, so `client --config F` needs no more flags.
 */
async function secureLocalConfig(
  config: ClusterConfig,
  configPath: string,
  dataDir: string,
  joinedIds: readonly number[] = [],
): Promise<{ config: ClusterConfig; note: string }> {
  const dir = `${dataDir}/certs`;
  const ids = config.nodes.map((n) => n.id);
  // Members added since (add-node), not in cluster.json: a certificate too, once the CA exists.
  const others = joinedIds.filter((id) => !ids.includes(id));
  let note = "";
  if (!exists(certPaths.caCert(dir))) {
    await initCerts(dir, { nodes: ids });
    note = `; certificates created in ${dir}`;
  } else {
    for (const id of ids) {
      const nodeId: Identity = { role: "node", nodeId: id };
      if (!exists(certPaths.cert(dir, nodeId))) await issueCert(dir, nodeId);
    }
  }
  for (const id of others) {
    const nodeId: Identity = { role: "node", nodeId: id };
    if (!exists(certPaths.cert(dir, nodeId))) await issueCert(dir, nodeId);
  }
  const rel = (file: string) =>
    file.startsWith(`${dataDir}/`) && configPath.startsWith(`${dataDir}/`) &&
      !configPath.slice(dataDir.length + 1).includes("/")
      ? file.slice(dataDir.length + 1)
      : file;
  const tls = {
    cacert: rel(certPaths.caCert(dir)),
    cert: rel(`${dir}/node-{id}.crt`),
    key: rel(`${dir}/node-{id}.key`),
    clientCert: rel(certPaths.cert(dir, { role: "client", name: "default" })),
    clientKey: rel(certPaths.key(dir, { role: "client", name: "default" })),
    adminCert: rel(certPaths.cert(dir, { role: "admin", name: "default" })),
    adminKey: rel(certPaths.key(dir, { role: "admin", name: "default" })),
  };
  if (JSON.stringify(config.tls) === JSON.stringify(tls)) return { config, note };
  const secured = parseClusterConfig({ ...config, tls }, configPath);
  await Deno.writeTextFile(configPath, clusterConfigToJson(secured));
  return { config: secured, note };
}

/**
 * The raftkv node process that holds `dataDir/logs_node_<id>/lock` now, if any: the lock file names its pid, and
 * the process must still run `node … --id <id>` (a stale pid of an exited node, or reused by something else,
 * does not count).
 */
export function nodeHolder(dataDir: string, id: number): { pid: number; command: string } | undefined {
  let pid: number;
  try {
    const m = /^pid (\d+)$/.exec(Deno.readTextFileSync(`${dataDir}/logs_node_${id}/lock`).trim());
    if (!m) return undefined;
    pid = Number(m[1]);
  } catch {
    return undefined;
  }
  if (pid === Deno.pid) return undefined;
  let argv: string[];
  try {
    argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a !== "");
  } catch {
    return undefined; // gone (or no /proc)
  }
  const i = argv.indexOf("--id");
  if (!argv.includes("node") || i < 0 || argv[i + 1] !== String(id)) return undefined;
  return { pid, command: argv.map(shellQuote).join(" ") };
}

/** True when `pid` has exited (a zombie waiting for its parent counts as exited). */
function processGone(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** The raw peer port a node at `address` serves (undefined with `"peerTransport": "grpc"` and no offset). */
export function rawPeerPort(config: ClusterConfig, address: string): number | undefined {
  if (config.peerTransport === "grpc" && config.rawPeerPortOffset === undefined) return undefined;
  return parseAddress(address).port + (config.rawPeerPortOffset ?? DEFAULT_RAW_PEER_PORT_OFFSET);
}

/** The gap between a node's gRPC port and its metrics port when `--metrics-base-port` is not given. */
export const METRICS_PORT_OFFSET = 100;

/**
 * Each node's metrics address, by id: 127.0.0.1:<base + i> for the i-th node of the config, where base is
 * `metricsBasePort` or the first node's gRPC port + METRICS_PORT_OFFSET. Refuses a range that leaves the port
 * space or meets a gRPC port.
 */
export function metricsAddresses(config: ClusterConfig, metricsBasePort?: number): Map<number, string> {
  const grpc = config.nodes.map((n) => parseAddress(n.address).port);
  const base = metricsBasePort ?? grpc[0] + METRICS_PORT_OFFSET;
  const ports = config.nodes.map((_, i) => base + i);
  const flag = metricsBasePort === undefined
    ? `the default metrics ports (gRPC port + ${METRICS_PORT_OFFSET}, from ${base})`
    : `--metrics-base-port ${base}`;
  if (ports[ports.length - 1] > 65535) {
    throw new CliError(
      `${flag} leaves no room for ${ports.length} ports; pass --metrics-base-port or --no-metrics`,
      EXIT_USAGE,
    );
  }
  const clash = ports.find((p) => grpc.includes(p));
  if (clash !== undefined) {
    throw new CliError(
      `${flag}: port ${clash} is also a node's gRPC port; pass another --metrics-base-port`,
      EXIT_USAGE,
    );
  }
  const raw = config.nodes.map((n) => rawPeerPort(config, n.address)).filter((p) => p !== undefined);
  const rawClash = ports.find((p) => raw.includes(p));
  if (rawClash !== undefined) {
    throw new CliError(
      `${flag}: port ${rawClash} is also a node's raw peer port (gRPC port + rawPeerPortOffset); ` +
        `pass another --metrics-base-port`,
      EXIT_USAGE,
    );
  }
  return new Map(config.nodes.map((n, i) => [n.id, `127.0.0.1:${ports[i]}`]));
}

/** Refuses to start when a port is taken (a cluster already running, another program…). */
function checkPortsFree(config: ClusterConfig, dataDir: string, metrics: ReadonlyMap<number, string>): void {
  // gRPC ports first: a leftover node is named by the port it is best known by.
  const wanted = [
    ...config.nodes.map((n) => ({ id: n.id, address: n.address, what: "" })),
    ...config.nodes.filter((n) => metrics.has(n.id))
      .map((n) => ({ id: n.id, address: metrics.get(n.id)!, what: "metrics port " })),
  ];
  for (const n of wanted) {
    const { host, port } = parseAddress(n.address);
    try {
      const l = Deno.listen({ hostname: host.replace(/^\[|\]$/g, ""), port });
      l.close();
    } catch (e) {
      const why = e instanceof Deno.errors.AddrInUse ? "address already in use" : errorLine(e);
      const holder = nodeHolder(dataDir, n.id);
      if (holder) {
        throw new CliError(
          `node ${n.id} cannot use ${n.what}${n.address}: a raftkv node left over from an earlier run still holds it ` +
            `(pid ${holder.pid}: ${holder.command}); stop it with \`kill ${holder.pid}\` and start again`,
        );
      }
      throw new CliError(
        `node ${n.id} cannot use ${n.what}${n.address}: ${why} (a cluster already running? try ` +
          (n.what ? "--metrics-base-port or --no-metrics)" : "--base-port)"),
      );
    }
  }
}

/** One child node: its process, where its output goes, and the tail of that output. */
class Child {
  readonly id: number;
  readonly outPath: string;
  readonly process: Deno.ChildProcess;
  readonly exited: Promise<Deno.CommandStatus>;
  readonly tail: string[] = [];
  readonly #file: Deno.FsFile;
  #partial = "";
  #writes: Promise<unknown> = Promise.resolve();

  constructor(id: number, cmd: string, args: string[], outPath: string) {
    this.id = id;
    this.outPath = outPath;
    this.#file = Deno.openSync(outPath, { append: true, create: true });
    this.#write(`---- ${new Date().toISOString()} raftkv cluster started node ${id} ----\n`);
    this.process = new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...NODE_ENV }, // MALLOC_ARENA_MAX (src/ops/permissions.ts)
    }).spawn();
    const pumps = Promise.all([this.#pump(this.process.stdout), this.#pump(this.process.stderr)]);
    this.exited = this.process.status.then(async (s) => {
      await pumps.catch(() => {});
      await this.#writes.catch(() => {});
      try {
        this.#file.close();
      } catch {
        // already closed
      }
      return s;
    });
  }

  #write(text: string): void {
    const bytes = new TextEncoder().encode(text);
    this.#writes = this.#writes.then(() => this.#file.write(bytes)).catch(() => {});
    const lines = (this.#partial + text).split("\n");
    this.#partial = lines.pop() ?? "";
    for (const l of lines) {
      this.tail.push(l);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
    }
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    for await (const chunk of stream) this.#write(dec.decode(chunk, { stream: true }));
  }

  lastLines(): string[] {
    return this.#partial ? [...this.tail, this.#partial] : [...this.tail];
  }

  kill(signal: Deno.Signal): void {
    try {
      this.process.kill(signal);
    } catch {
      // already gone
    }
  }
}

export function clusterCommand() {
  return new Command("cluster")
    .description("start a local cluster of N nodes on loopback (Ctrl-C stops them all)")
    .option("--nodes <n>", "how many nodes", positiveIntOption, 5)
    .option("--base-port <port>", "port of node 1 (node i listens on base-port + i - 1)", portOption, 7101)
    .option("--data-dir <dir>", "where the config, logs_node_<i>/ and node_<i>.out go", "./raftkv-data")
    .option("--config-out <file>", "where to write the config (default: <data-dir>/cluster.json)")
    .option(
      "--metrics-base-port <port>",
      `node i serves /metrics on this port + i - 1 (default: its gRPC port + ${METRICS_PORT_OFFSET})`,
      portOption,
    )
    .option("--no-metrics", "serve no /metrics, /healthz, /readyz")
    .action(async (o, cmd) => {
      if (o.nodes > MAX_NODES) throw new CliError(`--nodes ${o.nodes}: at most ${MAX_NODES}`, EXIT_USAGE);
      if (o.basePort + o.nodes - 1 > 65535) {
        throw new CliError(`--base-port ${o.basePort} leaves no room for ${o.nodes} ports`, EXIT_USAGE);
      }
      const dataDir = absolute(o.dataDir);
      const configPath = absolute(o.configOut ?? `${dataDir}/cluster.json`);
      await Deno.mkdir(dataDir, { recursive: true });
      const { config, note } = await prepareConfig({
        nodes: o.nodes,
        basePort: o.basePort,
        basePortGiven: cmd.getOptionValueSource("basePort") === "cli",
        dataDir,
        configPath,
      });
      const plan = planNodes(config, dataDir, await latestConfiguration(dataDir));
      reportPlan(plan, dataDir);
      const joined = plan.start.filter((n) => n.join);
      // Metrics ports: cluster.json's nodes keep theirs (by position), nodes added since come after them.
      const all = {
        ...config,
        nodes: [...config.nodes, ...joined.map(({ id, address }) => ({ id, address }))],
      };
      const metrics = o.metrics ? metricsAddresses(all, o.metricsBasePort) : new Map<number, string>();
      for (const id of plan.removed) metrics.delete(id);
      const started = { ...config, nodes: plan.start.map(({ id, address }) => ({ id, address })) };
      checkPortsFree(started, dataDir, metrics);
      const secured = await secureLocalConfig(config, configPath, dataDir, joined.map((n) => n.id));
      return await runCluster(secured.config, configPath, dataDir, note + secured.note, metrics, plan.start);
    });
}

/** Says which nodes of cluster.json are not started, and why (the cluster's members changed). */
function reportPlan(plan: NodePlan, dataDir: string): void {
  if (plan.latest === undefined) return;
  const at =
    `the configuration at log index ${plan.latest.index} in ${dataDir}/logs_node_${plan.latest.nodeId}`;
  const ids = plan.latest.membership.members.map((m) => m.id).join(", ");
  for (const id of plan.removed) {
    console.error(
      `warning: node ${id} is not started: it was removed from the cluster (${at} has members ${ids}); ` +
        `cluster.json still lists it (harmless: clients skip it)`,
    );
  }
  for (const m of plan.notHere) {
    console.error(
      `warning: node ${m.id} (${m.address || "no address"}) is a member (${at}) but has no folder in ` +
        `${dataDir}: start it where its data is (raftkv node --id ${m.id} --join --address ${m.address} …)`,
    );
  }
  if (plan.start.length === 0) {
    throw new CliError(`no member of ${at} can be started from ${dataDir}`, EXIT_FAILURE);
  }
}

async function runCluster(
  config: ClusterConfig,
  configPath: string,
  dataDir: string,
  note: string,
  metrics: ReadonlyMap<number, string>,
  nodes: readonly NodeToStart[],
) {
  const joins = new Map(nodes.filter((n) => n.join).map((n) => [n.id, n.address]));
  const self = selfCommand();
  const line = (...args: string[]) => [self.cmd, ...self.args, ...args].map(shellQuote).join(" ");
  const nodeArgs = (id: number) => [
    "node",
    "--id",
    String(id),
    "--config",
    configPath,
    "--data-dir",
    dataDir,
    "--quiet",
    ...(metrics.has(id) ? ["--metrics-address", metrics.get(id)!] : []),
    ...(joins.has(id) ? ["--join", "--address", joins.get(id)!] : []),
  ];
  console.log(`raftkv cluster: ${nodes.length} nodes, data in ${dataDir}`);
  console.log(`config: ${configPath} (${note})`);

  const children = new Map<number, Child>();
  let stopping = false;
  let resolveStop!: () => void;
  const stopRequested = new Promise<void>((r) => (resolveStop = r));
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    resolveStop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  let alive = 0;
  let resolveAllDead!: () => void;
  const allDead = new Promise<void>((r) => (resolveAllDead = r));
  for (const n of nodes) {
    const child = new Child(n.id, self.cmd, [...self.args, ...nodeArgs(n.id)], `${dataDir}/node_${n.id}.out`);
    children.set(n.id, child);
    alive++;
    const scrape = metrics.has(n.id) ? `  metrics http://${metrics.get(n.id)}/metrics` : "";
    const rawPort = rawPeerPort(config, n.address);
    const raw = rawPort === undefined ? "" : `  raw peers :${rawPort}`;
    console.log(
      `  node ${n.id}  ${n.address}${raw}${scrape}  pid ${child.process.pid}  output ${child.outPath}`,
    );
    child.exited.then((status) => {
      alive--;
      if (!stopping) {
        const how = status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
        console.error(`node ${n.id} exited unexpectedly (${how}); last output (${child.outPath}):`);
        for (const l of child.lastLines()) console.error(`  | ${l}`);
        console.error(`restart it with: ${line(...nodeArgs(n.id))}`);
      }
      if (alive === 0) resolveAllDead();
    });
  }

  const adminFiles = {
    cacert: certPaths.caCert(`${dataDir}/certs`),
    cert: certPaths.cert(`${dataDir}/certs`, { role: "admin", name: "default" }),
    key: certPaths.key(`${dataDir}/certs`, { role: "admin", name: "default" }),
  };
  const asked = nodes.map(({ id, address }) => ({ id, address }));
  const reader = new StatusReader(asked, new CertificateStore(await loadTlsMaterial(adminFiles)));
  try {
    const outcome = await Promise.race([
      waitForLeader(reader, () => stopping || alive === 0),
      stopRequested.then(() => "stop" as const),
      allDead.then(() => "dead" as const),
    ]);
    if (outcome === "dead") {
      throw new CliError(`every node exited; see ${dataDir}/node_<id>.out`, EXIT_FAILURE);
    }
    if (outcome !== "stop" && !stopping) {
      if (outcome) {
        const s = outcome.status!;
        console.log(`leader: node ${s.id} (${outcome.node.address}, term ${s.term})`);
      } else {
        console.log(`no leader yet after ${LEADER_WAIT_MS / 1000} s; see ${dataDir}/node_<id>.out`);
      }
      const certs = `${dataDir}/certs`;
      const client = { role: "client", name: "default" } as const;
      console.log(
        "connect a client (mutual TLS; the config names these files too, so --config alone works):",
      );
      console.log(
        `  ${
          line(
            "client",
            "--config",
            configPath,
            "--cacert",
            certPaths.caCert(certs),
            "--cert",
            certPaths.cert(certs, client),
            "--key",
            certPaths.key(certs, client),
          )
        }`,
      );
      console.log("cluster status:");
      console.log(`  ${line("admin", "status", "--config", configPath)}`);
      if (metrics.size > 0) {
        const urls = [...metrics.values()].map((a) => `http://${a}/metrics`);
        console.log(`metrics (Prometheus text, plain HTTP; /healthz and /readyz next to it):`);
        console.log(`  curl -s ${urls[0]}    (all: ${urls.join(" ")})`);
      }
      console.log("press Ctrl-C to stop all nodes");
      const end = await Promise.race([stopRequested.then(() => "stop"), allDead.then(() => "dead")]);
      if (end === "dead" && !stopping) {
        // Nodes restarted by hand (the printed command) still run: they are this cluster; Ctrl-C stops them.
        const ours = new Set([...children.values()].map((c) => c.process.pid));
        const others = nodes.map((n) => ({ id: n.id, holder: nodeHolder(dataDir, n.id) }))
          .filter((x) => x.holder && !ours.has(x.holder.pid) && !processGone(x.holder.pid)).map((x) => x.id);
        if (others.length === 0) {
          throw new CliError(`every node exited; see ${dataDir}/node_<id>.out`, EXIT_FAILURE);
        }
        const which = others.length === 1 ? `node ${others[0]} runs` : `nodes ${others.join(", ")} run`;
        console.error(
          `every node this supervisor started has exited; ${which} outside it (restarted by hand): ` +
            `press Ctrl-C to stop ${others.length === 1 ? "it" : "them"}`,
        );
        await stopRequested;
      }
    }
  } finally {
    reader.close();
    stopping = true;
    const running = [...children.values()];
    if (alive > 0) console.log(`stopping ${alive} node${alive === 1 ? "" : "s"}...`);
    for (const c of running) c.kill("SIGTERM");
    const killer = setTimeout(() => {
      for (const c of running) c.kill("SIGKILL");
    }, STOP_WAIT_MS);
    await Promise.all(running.map((c) => c.exited));
    clearTimeout(killer);
    await stopHandStarted(nodes, dataDir, new Set(running.map((c) => c.process.pid)));
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  console.log("all nodes stopped");
}

/** Polls until a leader serves reads (or `give up` says so, or LEADER_WAIT_MS pass). */
async function waitForLeader(reader: StatusReader, giveUp: () => boolean) {
  const until = performance.now() + LEADER_WAIT_MS;
  while (performance.now() < until && !giveUp()) {
    const rows = await reader.read(500);
    const leader = findLeader(rows);
    if (leader?.status?.servingReads) return leader;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/**
 * Stops the nodes of this cluster that run outside the supervisor: restarted by hand with the command it
 * printed after a crash. They are found through their folders' lock files; SIGTERM (a leader hands off),
 * then SIGKILL after STOP_WAIT_MS.
 */
async function stopHandStarted(
  nodes: readonly { readonly id: number }[],
  dataDir: string,
  ours: Set<number>,
): Promise<void> {
  const others = nodes.map((n) => ({ id: n.id, holder: nodeHolder(dataDir, n.id) }))
    .filter((x) => x.holder && !ours.has(x.holder.pid));
  for (const { id, holder } of others) {
    console.log(`stopping node ${id} (pid ${holder!.pid}), started outside this supervisor...`);
    try {
      Deno.kill(holder!.pid, "SIGTERM");
    } catch { /* already gone */ }
  }
  const until = performance.now() + STOP_WAIT_MS;
  for (const { holder } of others) {
    while (!processGone(holder!.pid) && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!processGone(holder!.pid)) {
      try {
        Deno.kill(holder!.pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
}
