/**
 * A local raftkv cluster for integration tests: N real node processes on loopback, fast timings, and the
 * probes a test needs (statuses over the Admin service, the logs folder parsed, the CLI run as a process).
 *
 * ```ts
 * Deno.test({ name: "…", ...IT, fn: async () => {
 *   await withCluster({ nodes: 5 }, async (c) => {
 *     const leader = await c.leader();          // exactly one leader serving reads
 *     await c.client().set("k", "v");           // a RaftkvClient, closed with the cluster
 *     await c.kill(leader.id, "SIGKILL");
 *     await c.leader(10_000, c.ids.filter((id) => id !== leader.id));
 *     c.restart(leader.id);
 *   });                                         // always stopped; on failure: tails printed, temp dir kept
 * } });
 * ```
 *
 * Each node runs as `deno run -A mod.ts node --id N --config <tmp>/cluster.json --data-dir <tmp>/data --quiet`
 * with its stdout/stderr appended to `<tmp>/node_N.{stdout,stderr}.txt`. Set RAFTKV_IT_KEEP=1 to keep the
 * temp dirs of passing tests too.
 *
 * Waiting is always by polling a condition (`waitFor`), never by sleeping a fixed time; a timeout names
 * what was awaited and prints the last statuses and the tail of each node's output.
 *
 * @module
 */

import { ClusterStub } from "../../src/transport/client_stub.ts";
import type { NodeStatus } from "../../src/transport/api.ts";
import { RaftkvClient, type RaftkvClientOptions } from "../../src/client/mod.ts";
import { CertificateStore, certPaths, initCerts, loadTlsMaterial } from "../../src/security/mod.ts";
import { poll } from "../ops/helpers.ts";
import { NODE_ENV, v8FlagsArg } from "../../src/ops/permissions.ts";
import { DEFAULT_RAW_PEER_PORT_OFFSET } from "../../src/config/cluster_config.ts";
import { freePortsWithRawPorts, freeRawPortOffset } from "../../src/transport/raw/mod.ts";

export type { NodeStatus };

const REPO = new URL("../../", import.meta.url);
const REPO_PATH = decodeURIComponent(REPO.pathname).replace(/\/$/, "");

/** The timings the harness uses unless told otherwise (SPEC §2: lease < election min, 2·heartbeat ≤ lease). */
export const FAST_TIMINGS = {
  heartbeatIntervalMs: 50,
  electionTimeoutMsMin: 300,
  electionTimeoutMsMax: 600,
  leaseDurationMs: 240,
  maxClockDrift: 0.01,
} as const;

export type Timings = { -readonly [K in keyof typeof FAST_TIMINGS]: number };

export interface StartOptions {
  /** Number of nodes (ids 1..n). Default 5. */
  readonly nodes?: number;
  readonly timings?: Partial<Timings>;
  /** Extra config fields (e.g. rpcTimeoutMs). */
  readonly extraConfig?: Record<string, unknown>;
  /** Wait until a leader serves reads before returning. Default true. */
  readonly waitForLeader?: boolean;
  /** Label for the temp dir. */
  readonly name?: string;
  /** Plain text (`--insecure`) instead of mutual TLS (the default, as in production). */
  readonly insecure?: boolean;
  /** Give every node a `metricsAddress` (an HTTP port for /metrics, /healthz, /readyz). Default false. */
  readonly metrics?: boolean;
  /**
   * Raw peer ports (served by default at gRPC port + `rawPeerPortOffset`): by default the config gets an offset
   * whose raw ports are free and below the ephemeral range (-30000 unless taken), so that no other listener or
   * outgoing connection holds one. `"default"`: no offset in the config (the product's 1000), the gRPC ports
   * picked so that port + 1000 is free too. Nothing with `extraConfig.peerTransport` "grpc" and no offset there.
   */
  readonly rawPorts?: "free" | "default";
}

/** Statuses by node id; undefined for a node that did not answer. */
export type Statuses = ReadonlyMap<number, NodeStatus | undefined>;

/** One parsed logs.txt line. */
export interface LogLine {
  /** 1-based line number = log index. */
  readonly index: number;
  readonly op: "SET" | "NO-OP" | "DEL" | "CAS" | "CONFIG";
  readonly key?: string;
  /** SET: the value; CAS: the new value. */
  readonly value?: string;
  /** CAS: the expectation token as written (a value, `@absent` or `@v=<n>`). */
  readonly expected?: string;
  readonly term: number;
  /** Client session (`@c=<id> s=<seq>`) when the line carries one. */
  readonly clientId?: string;
  readonly seq?: number;
  /** Whatever followed the term (session, checksum), verbatim. */
  readonly rest: string;
  readonly raw: string;
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit. */
  readonly ms: number;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Free loopback ports: bind :0 for each (all at once so they differ), then release them. */
export function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** Reads one token of a logs.txt line at `pos`: a bare word or a JSON string. */
function readToken(s: string, pos: number): { value: string; end: number } {
  if (s[pos] === '"') {
    let j = pos + 1;
    while (j < s.length && s[j] !== '"') j += s[j] === "\\" ? 2 : 1;
    if (j >= s.length) throw new Error(`unterminated quoted token at column ${pos + 1}`);
    return { value: JSON.parse(s.slice(pos, j + 1)) as string, end: j + 1 };
  }
  let end = s.indexOf(" ", pos);
  if (end < 0) end = s.length;
  if (end === pos) throw new Error(`empty token at column ${pos + 1}`);
  return { value: s.slice(pos, end), end };
}

/** Parses one logs.txt line's leading fields (op, key, value, term); trailing fields are kept in `rest`. */
export function parseLogLine(raw: string, index: number): LogLine {
  let pos: number;
  let op: LogLine["op"];
  let key: string | undefined, value: string | undefined, expected: string | undefined;
  if (raw.startsWith("NO-OP ")) {
    op = "NO-OP";
    pos = 6;
  } else if (raw.startsWith("SET ")) {
    op = "SET";
    const k = readToken(raw, 4);
    if (raw[k.end] !== " ") throw new Error(`line ${index}: expected a space after the key: ${raw}`);
    const v = readToken(raw, k.end + 1);
    if (raw[v.end] !== " ") throw new Error(`line ${index}: expected a space after the value: ${raw}`);
    key = k.value;
    value = v.value;
    pos = v.end + 1;
  } else if (raw.startsWith("DEL ")) {
    op = "DEL";
    const k = readToken(raw, 4);
    if (raw[k.end] !== " ") throw new Error(`line ${index}: expected a space after the key: ${raw}`);
    key = k.value;
    pos = k.end + 1;
  } else if (raw.startsWith("CAS ")) {
    op = "CAS";
    const k = readToken(raw, 4);
    if (raw[k.end] !== " ") throw new Error(`line ${index}: expected a space after the key: ${raw}`);
    const x = readToken(raw, k.end + 1);
    if (raw[x.end] !== " ") {
      throw new Error(`line ${index}: expected a space after the expected value: ${raw}`);
    }
    const v = readToken(raw, x.end + 1);
    if (raw[v.end] !== " ") throw new Error(`line ${index}: expected a space after the new value: ${raw}`);
    key = k.value;
    expected = x.value;
    value = v.value;
    pos = v.end + 1;
  } else if (raw.startsWith("CONFIG ")) {
    // Issue 11: a membership change; `value` is its configuration (JSON).
    op = "CONFIG";
    const c = readToken(raw, 7);
    if (raw[c.end] !== " ") {
      throw new Error(`line ${index}: expected a space after the configuration: ${raw}`);
    }
    value = c.value;
    pos = c.end + 1;
  } else {
    throw new Error(`line ${index}: unknown op: ${raw}`);
  }
  const t = /^(\d+)/.exec(raw.slice(pos));
  if (!t) throw new Error(`line ${index}: missing term: ${raw}`);
  const term = Number(t[1]);
  const rest = raw.slice(pos + t[1].length).trim();
  let clientId: string | undefined, seq: number | undefined;
  if (rest.startsWith("@c=")) {
    const c = readToken(rest, 3);
    clientId = c.value;
    const s = /^ s=(\d+)/.exec(rest.slice(c.end));
    if (s) seq = Number(s[1]);
  }
  return {
    index,
    op,
    key,
    value,
    ...(expected !== undefined ? { expected } : {}),
    term,
    clientId,
    seq,
    rest,
    raw,
  };
}

interface NodeProc {
  child: Deno.ChildProcess;
  status: Promise<Deno.CommandStatus>;
  exited?: Deno.CommandStatus;
}

export class LocalCluster {
  /** The temp dir holding the config, the data dir and the processes' output. */
  readonly dir: string;
  readonly configPath: string;
  readonly dataDir: string;
  readonly ids: readonly number[];
  readonly addresses: ReadonlyMap<number, string>;
  /** Each node's metrics listener (host:port), when started with `metrics: true`. */
  metricsAddresses: ReadonlyMap<number, string> = new Map();
  readonly timings: Timings;
  /** The node entry point: `<repo>/mod.ts node`. */
  readonly entry: readonly string[];
  /** The certificate folder (`<dir>/certs`); the admin certificate's store, undefined in plain text. */
  readonly certsDir: string;
  tls: CertificateStore | undefined;
  /** The flags a CLI command needs for TLS (admin certificate), or `--insecure`. */
  tlsArgs: readonly string[] = ["--insecure"];
  readonly #procs = new Map<number, NodeProc>();
  readonly #stubs = new Map<string, ClusterStub>();
  readonly #clients: RaftkvClient[] = [];
  #lastStatuses: Statuses = new Map();
  #stopped = false;

  private constructor(dir: string, ids: number[], addresses: Map<number, string>, timings: Timings) {
    this.dir = dir;
    this.configPath = `${dir}/cluster.json`;
    this.dataDir = `${dir}/data`;
    this.ids = ids;
    this.addresses = addresses;
    this.timings = timings;
    this.entry = [`${REPO_PATH}/mod.ts`, "node"];
    this.certsDir = `${dir}/certs`;
  }

  static async start(opts: StartOptions = {}): Promise<LocalCluster> {
    const n = opts.nodes ?? 5;
    const timings: Timings = { ...FAST_TIMINGS, ...opts.timings };
    const dir = await Deno.makeTempDir({ prefix: `raftkv-it-${opts.name ?? "cluster"}-` });
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    const extra = opts.extraConfig ?? {};
    const explicitOffset = typeof extra.rawPeerPortOffset === "number" ? extra.rawPeerPortOffset : undefined;
    const servesRaw = extra.peerTransport !== "grpc" || explicitOffset !== undefined;
    const ports = !servesRaw
      ? freePorts(n)
      : explicitOffset !== undefined
      ? freePortsWithRawPorts(n, explicitOffset)
      : opts.rawPorts === "default"
      ? freePortsWithRawPorts(n, DEFAULT_RAW_PEER_PORT_OFFSET)
      : freePorts(n);
    const rawOffset = !servesRaw ? undefined : explicitOffset ??
      (opts.rawPorts === "default" ? DEFAULT_RAW_PEER_PORT_OFFSET : freeRawPortOffset(ports));
    const rawPorts = rawOffset === undefined ? [] : ports.map((p) => p + rawOffset);
    const addresses = new Map(ids.map((id, i) => [id, `127.0.0.1:${ports[i]}`]));
    const c = new LocalCluster(dir, ids, addresses, timings);
    let tls: Record<string, string> | undefined;
    if (!opts.insecure) {
      await initCerts(c.certsDir, { nodes: ids });
      const admin = { role: "admin", name: "default" } as const,
        client = { role: "client", name: "default" } as const;
      tls = {
        cacert: certPaths.caCert(c.certsDir),
        cert: `${c.certsDir}/node-{id}.crt`,
        key: `${c.certsDir}/node-{id}.key`,
        clientCert: certPaths.cert(c.certsDir, client),
        clientKey: certPaths.key(c.certsDir, client),
        adminCert: certPaths.cert(c.certsDir, admin),
        adminKey: certPaths.key(c.certsDir, admin),
      };
      c.tls = new CertificateStore(
        await loadTlsMaterial({ cacert: tls.cacert, cert: tls.adminCert, key: tls.adminKey }),
      );
      c.tlsArgs = ["--cacert", tls.cacert, "--cert", tls.adminCert, "--key", tls.adminKey];
    }
    if (opts.metrics) {
      const mports = freePorts(n + 2 * ports.length)
        .filter((p) => !ports.includes(p) && !rawPorts.includes(p))
        .slice(0, n);
      c.metricsAddresses = new Map(ids.map((id, i) => [id, `127.0.0.1:${mports[i]}`]));
    }
    const config = {
      clusterId: `it-${dir.split("-").pop()}`.replace(/[^A-Za-z0-9._-]/g, "").slice(0, 64),
      nodes: ids.map((id) => ({
        id,
        address: addresses.get(id)!,
        ...(opts.metrics ? { metricsAddress: c.metricsAddresses.get(id)! } : {}),
      })),
      ...timings,
      ...(tls ? { tls } : {}),
      ...(rawOffset !== undefined && opts.rawPorts !== "default" ? { rawPeerPortOffset: rawOffset } : {}),
      ...opts.extraConfig,
    };
    await Deno.writeTextFile(c.configPath, JSON.stringify(config, null, 2) + "\n");
    await Deno.mkdir(c.dataDir, { recursive: true });
    try {
      for (const id of ids) c.#spawn(id);
      if (opts.waitForLeader ?? true) await c.leader(20_000);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  // ------------------------------------------------------------------------------------------------------
  // Paths.

  nodeDir(id: number): string {
    return `${this.dataDir}/logs_node_${id}`;
  }
  logsPath(id: number): string {
    return `${this.nodeDir(id)}/logs.txt`;
  }
  metadataPath(id: number): string {
    return `${this.nodeDir(id)}/metadata.txt`;
  }
  dumpPath(id: number): string {
    return `${this.nodeDir(id)}/dump.txt`;
  }
  stdoutPath(id: number): string {
    return `${this.dir}/node_${id}.stdout.txt`;
  }
  stderrPath(id: number): string {
    return `${this.dir}/node_${id}.stderr.txt`;
  }

  // ------------------------------------------------------------------------------------------------------
  // Processes.

  #spawn(id: number): void {
    const args = [
      "run",
      "-A",
      v8FlagsArg(), // as a release node runs (src/ops/permissions.ts)
      ...this.entry,
      "--id",
      String(id),
      "--config",
      this.#configFor.get(id) ?? this.configPath,
      "--data-dir",
      this.dataDir,
      "--quiet",
      ...(this.tls ? [] : ["--insecure"]),
    ];
    // `exec` keeps the pid, so signals reach the node itself; output is appended to files across restarts.
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `exec "$0" "$@" >>'${this.stdoutPath(id)}' 2>>'${this.stderrPath(id)}'`,
        Deno.execPath(),
        ...args,
      ],
      cwd: REPO_PATH,
      env: { NO_COLOR: "1", ...NODE_ENV }, // MALLOC_ARENA_MAX, as a release node runs
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const proc: NodeProc = { child, status: child.status };
    proc.status.then((s) => (proc.exited = s));
    this.#procs.set(id, proc);
  }

  /**
   * Node `id` reads `path` instead of the cluster's config from its next (re)start on (undefined: the cluster's
   * again), e.g. to run one node as an older release would be configured.
   */
  useConfig(id: number, path: string | undefined): void {
    if (path === undefined) this.#configFor.delete(id);
    else this.#configFor.set(id, path);
  }
  readonly #configFor = new Map<number, string>();

  /** True while node `id`'s process runs. */
  isRunning(id: number): boolean {
    const p = this.#procs.get(id);
    return p !== undefined && p.exited === undefined;
  }

  /** Sends `signal` to node `id` without waiting (e.g. SIGHUP: reload the certificates). */
  signal(id: number, signal: Deno.Signal): void {
    this.#procs.get(id)?.child.kill(signal);
  }

  /** Sends `signal` to node `id` and waits for the process to exit (SIGTERM: up to 10 s, then SIGKILL). */
  async kill(id: number, signal: "SIGKILL" | "SIGTERM" = "SIGKILL"): Promise<Deno.CommandStatus> {
    const p = this.#procs.get(id);
    if (!p) throw new Error(`node ${id} was never started`);
    this.#dropStub(this.addresses.get(id)!);
    if (p.exited) return p.exited;
    try {
      p.child.kill(signal);
    } catch { /* already gone */ }
    if (signal === "SIGTERM") {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), 10_000)));
      const r = await Promise.race([p.status, late]);
      clearTimeout(timer);
      if (r === "late") {
        console.log(`harness: node ${id} ignored SIGTERM for 10 s; sending SIGKILL`);
        try {
          p.child.kill("SIGKILL");
        } catch { /* gone */ }
      }
    }
    return await p.status;
  }

  /** Sends SIGKILL to several nodes at once (signals first, then waits), e.g. to lose a majority in one go. */
  async killMany(ids: readonly number[]): Promise<void> {
    for (const id of ids) {
      const p = this.#procs.get(id);
      if (p && !p.exited) {
        try {
          p.child.kill("SIGKILL");
        } catch { /* gone */ }
      }
    }
    await Promise.all(ids.map((id) => this.kill(id, "SIGKILL")));
  }

  /** Starts node `id` again (it must have exited). */
  restart(id: number): void {
    if (this.isRunning(id)) throw new Error(`node ${id} is still running`);
    this.#dropStub(this.addresses.get(id)!);
    this.#spawn(id);
  }

  /** The exit status of node `id`'s process, waiting up to `timeoutMs`; undefined if it still runs. */
  async exitStatus(id: number, timeoutMs: number): Promise<Deno.CommandStatus | undefined> {
    const p = this.#procs.get(id);
    if (!p) throw new Error(`node ${id} was never started`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    const r = await Promise.race([p.status, late]);
    clearTimeout(timer);
    return r;
  }

  /** What node `id` printed (stdout + stderr, all its runs). */
  async output(id: number): Promise<{ stdout: string; stderr: string }> {
    const read = async (p: string) => {
      try {
        return await Deno.readTextFile(p);
      } catch {
        return "";
      }
    };
    return { stdout: await read(this.stdoutPath(id)), stderr: await read(this.stderrPath(id)) };
  }

  // ------------------------------------------------------------------------------------------------------
  // Probes.

  stub(address: string): ClusterStub {
    let s = this.#stubs.get(address);
    if (!s) {
      s = new ClusterStub(address, {}, { tls: this.tls });
      this.#stubs.set(address, s);
    }
    return s;
  }

  /** The stub of node `id` (cached; replaced when the node is killed or restarted). */
  stubOf(id: number): ClusterStub {
    return this.stub(this.addresses.get(id)!);
  }

  #dropStub(address: string): void {
    this.#stubs.get(address)?.close();
    this.#stubs.delete(address);
  }

  /** Node `id`'s status, or undefined when it does not answer within `deadlineMs`. */
  async status(id: number, deadlineMs = 250): Promise<NodeStatus | undefined> {
    if (!this.isRunning(id)) return undefined;
    try {
      return await this.stubOf(id).status(deadlineMs);
    } catch {
      return undefined;
    }
  }

  async statusAll(deadlineMs = 250): Promise<Statuses> {
    const all = await Promise.all(this.ids.map((id) => this.status(id, deadlineMs)));
    const m = new Map(this.ids.map((id, i) => [id, all[i]]));
    this.#lastStatuses = m;
    return m;
  }

  /** A one-line-per-node rendering of statuses, for failure messages and logs. */
  static describe(statuses: Statuses): string {
    return [...statuses].map(([id, s]) =>
      s
        ? `  node ${id}: ${s.role} term=${s.term} leader=${s.leaderId} commit=${s.commitIndex} ` +
          `last=${s.lastLogIndex}/t${s.lastLogTerm} lease=${s.leaseRemainingMs.toFixed(0)}ms ` +
          `wait=${s.leaseWaitRemainingMs.toFixed(0)}ms serving=${s.servingReads} rpcs=${s.peerRpcCount}`
        : `  node ${id}: (no answer)`
    ).join("\n");
  }

  /**
   * Polls statuses every ~20 ms until `pred` returns a truthy value, and returns it. On timeout, throws an
   * error naming `what`, with the last statuses and the tail of each node's output.
   */
  async waitFor<T>(
    pred: (s: Statuses) => T | undefined | false | null | Promise<T | undefined | false | null>,
    timeoutMs: number,
    what: string,
  ): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let lastErr: unknown;
    while (true) {
      const t0 = performance.now();
      const s = await this.statusAll();
      try {
        const r = await pred(s);
        if (r) return r;
        lastErr = undefined;
      } catch (e) {
        lastErr = e;
      }
      if (performance.now() >= deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}\nlast statuses:\n${LocalCluster.describe(s)}` +
            (lastErr ? `\nlast predicate error: ${lastErr}` : "") + `\n${await this.tails()}`,
        );
      }
      await sleep(Math.max(0, 20 - (performance.now() - t0)));
    }
  }

  /** Polls an arbitrary condition (not statuses) every ~20 ms; same error reporting as `waitFor`. */
  async waitUntil<T>(
    pred: () => T | undefined | false | null | Promise<T | undefined | false | null>,
    timeoutMs: number,
    what: string,
  ): Promise<T> {
    try {
      return await poll(what, pred, timeoutMs);
    } catch (e) {
      const statuses = LocalCluster.describe(await this.statusAll());
      const reason = e instanceof Error ? e.message : String(e);
      throw new Error(`${reason}\nstatuses now:\n${statuses}\n${await this.tails()}`);
    }
  }

  /** Waits for exactly one node that is leader and serves reads; returns its status. */
  async leader(timeoutMs = 10_000, among: readonly number[] = this.ids): Promise<NodeStatus> {
    return await this.waitFor(
      (s) => {
        const leaders = among.map((id) => s.get(id)).filter((x): x is NodeStatus => x?.role === "leader");
        return leaders.length === 1 && leaders[0].servingReads ? leaders[0] : undefined;
      },
      timeoutMs,
      "exactly one leader serving reads",
    );
  }

  /** Waits until every node in `ids` has `lastLogIndex` and `commitIndex` ≥ `index`. */
  async waitForReplication(
    index: number,
    ids: readonly number[] = this.ids,
    timeoutMs = 10_000,
  ): Promise<Statuses> {
    return await this.waitFor(
      (s) =>
        ids.every((id) =>
          (s.get(id)?.commitIndex ?? -1) >= index && (s.get(id)?.lastLogIndex ?? -1) >= index
        ) && s,
      timeoutMs,
      `nodes ${ids.join(",")} to have index ${index} committed`,
    );
  }

  /** A RaftkvClient that knows every node (5 s deadline unless told); closed with the cluster. */
  client(opts: Partial<RaftkvClientOptions> = {}): RaftkvClient {
    const c = new RaftkvClient({
      nodes: this.ids.map((id) => ({ id, address: this.addresses.get(id)! })),
      timeoutMs: 5000,
      tls: this.tls,
      ...opts,
    });
    this.#clients.push(c);
    return c;
  }

  /** RAFTKV_CACERT/CERT/KEY naming the admin certificate (or RAFTKV_INSECURE=1) for CLI commands. */
  tlsEnv(): Record<string, string> {
    if (!this.tls) return { RAFTKV_INSECURE: "1" };
    const f = this.tls.material.files;
    return { RAFTKV_CACERT: f.cacert, RAFTKV_CERT: f.cert, RAFTKV_KEY: f.key };
  }

  /** Runs `mod.ts <args…>` as a process (e.g. `["client", "--config", c.configPath, "get", "k"]`). */
  async runCli(args: readonly string[], timeoutMs = 30_000): Promise<CliResult> {
    const t0 = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${REPO_PATH}/mod.ts`, ...args],
      cwd: REPO_PATH,
      env: { NO_COLOR: "1", ...this.tlsEnv() },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, timeoutMs);
    const out = await child.output();
    clearTimeout(timer);
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      ms: performance.now() - t0,
    };
  }

  // ------------------------------------------------------------------------------------------------------
  // The logs folder.

  /** logs.txt parsed, one entry per complete line (a torn last line without newline is left out). */
  async readLogs(id: number): Promise<LogLine[]> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.logsPath(id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
    const lines = text.split("\n");
    lines.pop(); // after the last newline: "" or a torn line
    return lines.map((l, i) => parseLogLine(l, i + 1));
  }

  /** metadata.txt as `key: value` pairs (numbers where numeric). */
  async readMetadata(id: number): Promise<Record<string, string | number>> {
    const text = await Deno.readTextFile(this.metadataPath(id));
    const out: Record<string, string | number> = {};
    for (const line of text.split("\n")) {
      const m = /^([A-Za-z]+): (.*)$/.exec(line);
      if (m) out[m[1]] = /^\d+$/.test(m[2]) ? Number(m[2]) : m[2];
    }
    return out;
  }

  /** dump.txt lines. */
  async readDump(id: number): Promise<string[]> {
    try {
      const text = await Deno.readTextFile(this.dumpPath(id));
      return text.split("\n").filter((l) => l !== "");
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  }

  /** Waits until node `id`'s dump.txt has a line matching `pattern`; returns the first such line. */
  async waitForDump(id: number, pattern: string | RegExp, timeoutMs = 5000): Promise<string> {
    const test = (l: string) => typeof pattern === "string" ? l.includes(pattern) : pattern.test(l);
    return await this.waitUntil(
      async () => (await this.readDump(id)).find(test),
      timeoutMs,
      `node ${id}'s dump.txt to show ${pattern}`,
    );
  }

  /** The last lines of each node's output and dump, for failure messages. */
  async tails(lines = 8): Promise<string> {
    const parts: string[] = [];
    for (const id of this.ids) {
      const { stdout, stderr } = await this.output(id);
      const dump = await this.readDump(id);
      const tail = (s: string) =>
        s.split("\n").filter((l) => l).slice(-lines).map((l) => `    ${l}`).join("\n");
      parts.push(
        `--- node ${id} (${this.isRunning(id) ? "running" : `exited ${this.#procs.get(id)?.exited?.code}`})` +
          (stderr.trim() ? `\n  stderr:\n${tail(stderr)}` : "") +
          (stdout.trim() ? `\n  stdout:\n${tail(stdout)}` : "") +
          `\n  dump.txt:\n${tail(dump.join("\n"))}`,
      );
    }
    return parts.join("\n");
  }

  /** Kills every node, closes every stub and removes the temp dir (kept with `keep` or RAFTKV_IT_KEEP set). */
  async stop(opts: { keep?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const c of this.#clients) c.close();
    for (const s of this.#stubs.values()) s.close();
    this.#stubs.clear();
    for (const [, p] of this.#procs) {
      if (!p.exited) {
        try {
          p.child.kill("SIGKILL");
        } catch { /* gone */ }
      }
    }
    await Promise.all([...this.#procs.values()].map((p) => p.status));
    if (opts.keep || Deno.env.get("RAFTKV_IT_KEEP")) {
      console.log(`harness: kept ${this.dir}`);
    } else {
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts a cluster, runs `fn`, and always stops it. When `fn` throws, prints the tail of every node's output
 * and dump.txt and keeps the temp dir for inspection (its path is printed).
 */
export async function withCluster(opts: StartOptions, fn: (c: LocalCluster) => Promise<void>): Promise<void> {
  const c = await LocalCluster.start(opts);
  let failed = true;
  try {
    await fn(c);
    failed = false;
  } finally {
    if (failed) {
      const s = await c.statusAll().catch(() => new Map());
      console.log(`harness: test failed; statuses:\n${LocalCluster.describe(s)}\n${await c.tails(12)}`);
    }
    await c.stop({ keep: failed });
  }
}

/** Options for integration tests that run processes and gRPC channels. */
export const IT = { sanitizeResources: false, sanitizeOps: false } as const;
