/**
 * A cluster of real raftkv node processes whose peer traffic goes through the harness's proxies
 * ({@linkcode ProxyNetwork}), with the process faults of the nemesis: kill -9 and restart, SIGSTOP/SIGCONT,
 * and a clock rate per (re)start through libfaketime.
 *
 * Every node listens on its own loopback port P_i, the address of node i in *its own* config file. In that
 * file every other node j is listed at the proxy port of the link i → j, which forwards to P_j. The cluster id
 * and the node ids are the same in every file, so the nodes see one cluster. Clients (and the harness's
 * status poller) dial P_i directly: a node cut off from its peers stays reachable by clients.
 *
 * @module
 */
import { ClusterStub } from "../../src/transport/client_stub.ts";
import type { NodeStatus } from "../../src/transport/api.ts";
import { ProxyNetwork } from "./proxy.ts";
import { peerTransportFields } from "../../src/transport/raw/mod.ts";
import {
  CertificateStore,
  certPaths,
  initCerts,
  issueCert,
  loadTlsMaterial,
} from "../../src/security/mod.ts";
import type { MembershipReply } from "../../src/transport/api.ts";
import type { ConfigurationView } from "./gate.ts";

const REPO_PATH = decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");

export const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

export function faketimeAvailable(): boolean {
  try {
    return Deno.statSync(FAKETIME_LIB).isFile;
  } catch {
    return false;
  }
}

/** Clusters with processes that may still run (for {@linkcode killEveryNode} on Ctrl-C). */
const LIVE = new Set<ChaosCluster>();

/** kill -9 every node process of every cluster of this process, at once (for signal handlers). */
export function killEveryNode(): void {
  for (const c of LIVE) c.killNow();
}

/** The timings of the chaos cluster (SPEC §2 checks: lease·(1+ε) < election min, 2·heartbeat ≤ lease). */
export const CHAOS_TIMINGS = {
  heartbeatIntervalMs: 50,
  electionTimeoutMsMin: 300,
  electionTimeoutMsMax: 600,
  leaseDurationMs: 240,
  maxClockDrift: 0.02,
} as const;

export interface ChaosClusterOptions {
  /** Folder for configs, data and process output (created; must be empty or absent). */
  readonly dir: string;
  readonly nodes?: number;
  readonly timings?: Partial<typeof CHAOS_TIMINGS>;
  /** Clock rate per node at first start (1 = real time). */
  readonly initialRates?: ReadonlyMap<number, number>;
  /** Plain text (`--insecure` on every node) instead of mutual TLS (the default, as in production). */
  readonly insecure?: boolean;
  /** Extra environment of every node process (e.g. RAFTKV_NEGATIVE_CONTROL for a negative control). */
  readonly nodeEnv?: Readonly<Record<string, string>>;
  /** Node-to-node traffic over the raw peer transport (the default; proxied on its ports too) or "grpc". */
  readonly peerTransport?: "grpc" | "raw";
}

/** A node process that ended without the harness asking. */
export interface UnexpectedExit {
  readonly id: number;
  readonly code: number;
  readonly signal: string | null;
  /** How long after its start. */
  readonly afterMs: number;
  /** The last line it printed (its reason, if it gave one). */
  readonly lastLine: string;
}

export function describeExit(e: UnexpectedExit): string {
  return `node ${e.id} exited by itself with code ${e.code}${e.signal ? ` (signal ${e.signal})` : ""} ` +
    `${e.afterMs} ms after its start${e.lastLine ? `: ${e.lastLine}` : ""}`;
}

interface Proc {
  child: Deno.ChildProcess;
  exited: Promise<Deno.CommandStatus>;
  done: boolean;
  paused: boolean;
  killedByHarness: boolean;
  rate: number;
  startedAtMs: number;
  /** The end of its output (stdout and stderr), for exit reasons. */
  tail: string;
  out: Promise<void>;
}

/** A replacement that did not finish in its budget: `dead` is gone for good, `successor` runs. */
export class ReplacementError extends Error {
  constructor(readonly dead: number, readonly successor: number, message: string) {
    super(message);
    this.name = "ReplacementError";
  }
}

export class ChaosCluster {
  readonly dir: string;
  readonly dataDir: string;
  /** The members now (a replaced node leaves, its successor joins): what clients, nemesis and poller use. */
  #members: readonly number[];
  /** Every id listed in the config files (members, replaced nodes, and their successors). */
  #configured: number[];
  /** Ids started with `--join --address` (replacements): never listed in their own config file. */
  readonly #joined = new Set<number>();
  /** Replaced id → its successor. */
  readonly #successor = new Map<number, number>();
  /** Nodes replaced for good (killed, never restarted), in order. */
  readonly retired: number[] = [];
  /** Node id → the address it listens on (what clients dial). */
  readonly #addresses: Map<number, string>;
  readonly net: ProxyNetwork;
  readonly timings: typeof CHAOS_TIMINGS;
  readonly clusterId: string;
  readonly #procs = new Map<number, Proc>();
  readonly #stubs = new Map<number, ClusterStub>();
  readonly #rates = new Map<number, number>();
  /** Process starts, including the first ones. */
  starts = 0;
  /** Unexpected exits (not caused by the harness), as lines for the report. */
  readonly unexpectedExits: UnexpectedExit[] = [];

  /** The certificates (`<dir>/certs`) and the admin certificate the harness's stubs use. */
  readonly certsDir: string;
  tls: CertificateStore | undefined;

  #nodeEnv: Readonly<Record<string, string>> = {};

  /** `peerTransport` and `rawPeerPortOffset` for every config file (no offset with gRPC peers). */
  readonly #peerFields: { peerTransport?: "grpc" | "raw"; rawPeerPortOffset?: number };

  private constructor(
    dir: string,
    ports: Map<number, number>,
    timings: typeof CHAOS_TIMINGS,
    peerFields: { peerTransport?: "grpc" | "raw"; rawPeerPortOffset?: number } = {},
  ) {
    this.#peerFields = peerFields;
    this.dir = dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
    this.dataDir = `${this.dir}/data`;
    this.certsDir = `${this.dir}/certs`;
    this.#members = [...ports.keys()];
    this.#configured = [...ports.keys()];
    this.#addresses = new Map([...ports].map(([id, p]) => [id, `127.0.0.1:${p}`]));
    this.net = new ProxyNetwork(ports, peerFields.rawPeerPortOffset);
    this.timings = timings;
    this.clusterId = `chaos-${Math.floor(Math.random() * 1e9).toString(36)}`;
  }

  static async start(opts: ChaosClusterOptions): Promise<ChaosCluster> {
    const n = opts.nodes ?? 5;
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    const listeners = ids.map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
    const ports = new Map(ids.map((id, i) => [id, (listeners[i].addr as Deno.NetAddr).port]));
    // The proxies bind their ports while the nodes' ports are still held, so none can take a node's port.
    const peerFields = peerTransportFields(opts.peerTransport ?? "raw", [...ports.values()]);
    const c = new ChaosCluster(opts.dir, ports, { ...CHAOS_TIMINGS, ...opts.timings }, peerFields);
    c.#nodeEnv = opts.nodeEnv ?? {};
    for (const l of listeners) l.close();
    await Deno.mkdir(c.dataDir, { recursive: true });
    await Deno.mkdir(`${c.dir}/config`, { recursive: true });
    await Deno.mkdir(`${c.dir}/out`, { recursive: true });
    // Mutual TLS, as in production: the proxies pass the encrypted bytes through untouched.
    await initCerts(c.certsDir, { nodes: ids, force: true });
    const admin = { role: "admin", name: "default" } as const;
    if (!opts.insecure) {
      c.tls = new CertificateStore(
        await loadTlsMaterial({
          cacert: certPaths.caCert(c.certsDir),
          cert: certPaths.cert(c.certsDir, admin),
          key: certPaths.key(c.certsDir, admin),
        }),
      );
    }
    for (const id of ids) {
      await Deno.writeTextFile(c.configPath(id), JSON.stringify(c.#configFor(id), null, 2) + "\n");
    }
    // Clients' view: every node at its real address (used by `admin` commands if a person replays).
    await Deno.writeTextFile(`${c.dir}/config/client.json`, JSON.stringify(c.#configFor(0), null, 2) + "\n");
    LIVE.add(c);
    for (const id of ids) c.spawn(id, opts.initialRates?.get(id) ?? 1);
    return c;
  }

  get ids(): readonly number[] {
    return this.#members;
  }

  /** Every node that ever ran, replaced ones included (their folders stay for the logs check). */
  get everIds(): readonly number[] {
    return this.#configured;
  }

  get addresses(): ReadonlyMap<number, string> {
    return this.#addresses;
  }

  /** The node that took `id`'s place (following replacements), or `id` itself. */
  resolve(id: number): number {
    while (this.#successor.has(id)) id = this.#successor.get(id)!;
    return id;
  }

  configPath(id: number): string {
    return `${this.dir}/config/node_${id}.json`;
  }

  logsDir(id: number): string {
    return `${this.dataDir}/logs_node_${id}`;
  }

  /** Node `self`'s config: itself at its real address, every other node behind the proxy self → j. */
  #configFor(self: number): Record<string, unknown> {
    return {
      clusterId: this.clusterId,
      // A replacement's own file does not list it (it starts with --join --address); the others list it
      // behind a proxy, which takes effect at their next restart (until then they dial the address in the
      // log, its real one, past the proxies).
      nodes: this.#configured.filter((j) => !(j === self && this.#joined.has(j))).map((j) => ({
        id: j,
        address: j === self || self === 0 ? this.#addresses.get(j)! : this.net.addressFor(self, j),
      })),
      ...this.timings,
      ...this.#peerFields,
      // Issue 10: a small snapshot threshold, so that snapshots, compaction and InstallSnapshot (after a kill
      // or a wipe) happen many times per run.
      snapshotThresholdEntries: 500,
      snapshotTrailingEntries: 50,
      snapshotChunkBytes: 64 * 1024,
      tls: {
        cacert: certPaths.caCert(this.certsDir),
        cert: `${this.certsDir}/node-{id}.crt`,
        key: `${this.certsDir}/node-{id}.key`,
        adminCert: `${this.certsDir}/admin.crt`,
        adminKey: `${this.certsDir}/admin.key`,
        clientCert: `${this.certsDir}/client.crt`,
        clientKey: `${this.certsDir}/client.key`,
      },
    };
  }

  isRunning(id: number): boolean {
    const p = this.#procs.get(id);
    return p !== undefined && !p.done;
  }

  isPaused(id: number): boolean {
    return this.#procs.get(id)?.paused ?? false;
  }

  rate(id: number): number {
    return this.#rates.get(id) ?? 1;
  }

  /** Starts node `id` with clock rate `rate` (1: no libfaketime). */
  spawn(id: number, rate = 1): void {
    if (this.isRunning(id)) throw new Error(`node ${id} is already running`);
    const env: Record<string, string> = { NO_COLOR: "1", ...this.#nodeEnv };
    if (rate !== 1) {
      env.LD_PRELOAD = FAKETIME_LIB;
      env.FAKETIME = `+0 x${rate}`;
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${REPO_PATH}/mod.ts`,
        "node",
        "--id",
        String(id),
        "--config",
        this.configPath(id),
        "--data-dir",
        this.dataDir,
        "--quiet",
        ...(this.tls ? [] : ["--insecure"]),
        ...(this.#joined.has(id) ? ["--join", "--address", this.#addresses.get(id)!] : []),
      ],
      env,
      cwd: this.dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.starts++;
    this.#rates.set(id, rate);
    const startedAtMs = performance.now();
    const proc: Proc = {
      child,
      exited: child.status,
      done: false,
      paused: false,
      killedByHarness: false,
      rate,
      startedAtMs,
      tail: "",
      out: Promise.resolve(),
    };
    proc.out = this.#capture(id, proc, rate);
    this.#procs.set(id, proc);
    proc.exited.then(async (s) => {
      proc.done = true;
      if (proc.killedByHarness) return;
      const afterMs = Math.round(performance.now() - startedAtMs);
      await proc.out;
      const lastLine = proc.tail.split("\n").map((l) => l.trim()).filter((l) => l !== "").pop() ?? "";
      this.unexpectedExits.push({ id, code: s.code, signal: s.signal, afterMs, lastLine });
    });
  }

  async #capture(id: number, proc: Proc, rate: number): Promise<void> {
    const child = proc.child;
    const dec = new TextDecoder();
    const file = await Deno.open(`${this.dir}/out/node_${id}.txt`, { create: true, append: true });
    const enc = new TextEncoder();
    await file.write(enc.encode(`--- start at ${new Date().toISOString()} clock rate x${rate}\n`));
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) {
        proc.tail = (proc.tail + dec.decode(chunk, { stream: true })).slice(-2000);
        await file.write(chunk);
      }
    };
    await Promise.allSettled([pump(child.stdout), pump(child.stderr)]);
    file.close();
  }

  /** kill -9 (a paused node is killed too); resolves once the process is gone. */
  async kill(id: number): Promise<void> {
    const p = this.#procs.get(id);
    if (!p || p.done) return;
    p.killedByHarness = true;
    try {
      p.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await p.exited;
    await p.out;
    p.paused = false;
    this.#dropStub(id);
  }

  async restart(id: number, rate = this.rate(id)): Promise<void> {
    await this.kill(id);
    this.spawn(id, rate);
  }

  pause(id: number): void {
    const p = this.#procs.get(id);
    if (!p || p.done || p.paused) return;
    Deno.kill(p.child.pid, "SIGSTOP");
    p.paused = true;
  }

  resume(id: number): void {
    const p = this.#procs.get(id);
    if (!p || p.done || !p.paused) return;
    Deno.kill(p.child.pid, "SIGCONT");
    p.paused = false;
  }

  stub(id: number): ClusterStub {
    let s = this.#stubs.get(id);
    if (!s) {
      s = new ClusterStub(this.#addresses.get(id)!, {}, { tls: this.tls });
      this.#stubs.set(id, s);
    }
    return s;
  }

  #dropStub(id: number): void {
    this.#stubs.get(id)?.close();
    this.#stubs.delete(id);
  }

  async status(id: number, deadlineMs = 200): Promise<NodeStatus | undefined> {
    if (!this.isRunning(id) || this.isPaused(id)) return undefined;
    try {
      return await this.stub(id).status(deadlineMs);
    } catch {
      return undefined;
    }
  }

  async statusAll(deadlineMs = 200): Promise<Map<number, NodeStatus | undefined>> {
    const all = await Promise.all(this.ids.map((id) => this.status(id, deadlineMs)));
    return new Map(this.ids.map((id, i) => [id, all[i]]));
  }

  /** The node that serves reads with the highest term, polled until `timeoutMs`. */
  async waitForLeader(timeoutMs: number, among: readonly number[] = this.ids): Promise<NodeStatus> {
    const end = performance.now() + timeoutMs;
    let last = "";
    while (performance.now() < end) {
      const all = await this.statusAll();
      const serving = [...all.values()]
        .filter((s): s is NodeStatus => s !== undefined && s.servingReads && among.includes(s.id))
        .sort((a, b) => b.term - a.term);
      if (serving.length > 0) return serving[0];
      last = [...all].map(([id, s]) => `${id}:${s ? `${s.role}/t${s.term}` : "down"}`).join(" ");
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no leader serving reads within ${timeoutMs} ms (last statuses: ${last})`);
  }

  /**
   * Replaces node `dead` for good, as an operator replaces a dead VM (issue 11): kill -9 (it never runs
   * again; its folder stays for the logs check), then a fresh node — the next unused id, a new port with its
   * own proxies, its certificate — started with `--join --address` and added with Admin.AddNode (the leader
   * promotes it once caught up), and Admin.RemoveNode for the dead one, in the order `removeFirst` says.
   * The new node is a member (clients, nemesis and poller use it) from its start. Resolves with its id once
   * it is a voter of a committed, non-joint configuration without `dead`.
   */
  async replace(dead: number, removeFirst: boolean, log: (line: string) => void, timeoutMs = 60_000) {
    if (!this.#members.includes(dead)) throw new Error(`node ${dead} is not a member`);
    const end = performance.now() + timeoutMs;
    await this.kill(dead);
    this.#members = this.#members.filter((x) => x !== dead);
    this.retired.push(dead);
    const id = Math.max(...this.#configured) + 1;
    const hold = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (hold.addr as Deno.NetAddr).port;
    this.net.addNode(id, port); // binds the proxies while the node's port is still held
    hold.close();
    const address = `127.0.0.1:${port}`;
    this.#addresses.set(id, address);
    this.#configured.push(id);
    this.#joined.add(id);
    this.#successor.set(dead, id);
    if (this.tls) await issueCert(this.certsDir, { role: "node", nodeId: id });
    for (const j of [0, ...this.#configured]) {
      const path = j === 0 ? `${this.dir}/config/client.json` : this.configPath(j);
      await Deno.writeTextFile(path, JSON.stringify(this.#configFor(j), null, 2) + "\n");
    }
    this.spawn(id, 1);
    this.#members = [...this.#members, id];
    log(`node ${id} started at ${address} with --join`);
    try {
      await this.#changeMembership(dead, id, removeFirst, end, log);
    } catch (e) {
      throw new ReplacementError(dead, id, e instanceof Error ? e.message : String(e));
    }
    return id;
  }

  /**
   * Finishes a replacement that ran out of its budget (the gate's repair): RemoveNode `dead`, AddNode
   * `successor`, wait until it is a voter of a committed, non-joint configuration. Each step finds what is
   * already done, as `raftkv admin add-node --replace` does when rerun. Throws if not done in `timeoutMs`.
   */
  async finishReplacement(dead: number, successor: number, log: (line: string) => void, timeoutMs = 60_000) {
    await this.#changeMembership(dead, successor, true, performance.now() + timeoutMs, log);
  }

  async #changeMembership(
    dead: number,
    id: number,
    removeFirst: boolean,
    end: number,
    log: (line: string) => void,
  ): Promise<void> {
    const remove = async () => {
      const r = await this.#atLeader(
        `remove-node ${dead}`,
        (st) => st.removeNode(dead, 5000),
        end,
        "is not a member",
      );
      log(`remove-node ${dead}: ${r}`);
    };
    if (removeFirst) await remove();
    const a = await this.#atLeader(
      `add-node ${id}`,
      (st) => st.addNode(id, this.#addresses.get(id)!, false, 5000),
      end,
      "already a",
    );
    log(`add-node ${id}: ${a}`);
    await this.#waitVoter(id, end);
    log(`node ${id} is a voter`);
    if (!removeFirst) await remove();
  }

  /**
   * The gate's look at the cluster: every member's status (1 s each, so a slow node under load still counts
   * as answering), and the leader with the highest term among them.
   */
  async configurationView(): Promise<ConfigurationView> {
    const all = await this.statusAll(1000);
    const answering = new Set([...all].filter(([, s]) => s !== undefined).map(([id]) => id));
    const leader = [...all.values()]
      .filter((s): s is NodeStatus => s !== undefined && s.role === "leader")
      .sort((a, b) => b.term - a.term)[0];
    return { leader, members: this.ids, answering };
  }

  /**
   * Runs a membership change at the leader, retrying what a change may meet on the way (no leader, not the
   * leader, a change in progress, a voter not yet heard from, not committed in time, a lost reply) until
   * `end`. `doneText`: the
   * refusal that says a lost reply's change was applied.
   */
  async #atLeader(
    what: string,
    f: (stub: ClusterStub) => Promise<MembershipReply>,
    end: number,
    doneText: string,
  ): Promise<string> {
    let last = "no leader";
    while (performance.now() < end) {
      const l = await this.waitForLeader(Math.max(100, end - performance.now())).catch(() => undefined);
      if (l === undefined) break;
      try {
        const r = await f(this.stub(l.id));
        if (r.ok) return `committed at index ${r.index} (leader ${l.id})`;
        if (r.error.includes(doneText)) return `already done (${r.error})`;
        last = r.error;
        // Refusals that can never pass end it at once. Everything else passes with time: not the leader, a
        // change in progress, no entry of its term yet, voters not heard from, not committed in time.
        if (/fresh id|already in use|must be a positive|needs an address|last voter/.test(r.error)) {
          throw new Error(`${what} refused: ${r.error}`);
        }
      } catch (e) {
        if (e instanceof Error && e.message.startsWith(`${what} refused`)) throw e;
        last = e instanceof Error ? e.message : String(e);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what} not done in time (last: ${last})`);
  }

  /** Polls the leader until node `id` is a voter of a committed, non-joint configuration. */
  async #waitVoter(id: number, end: number): Promise<void> {
    while (performance.now() < end) {
      const l = await this.waitForLeader(Math.max(100, end - performance.now())).catch(() => undefined);
      const m = l?.membership;
      if (
        l && m && !m.outgoingVoters && m.members.some((x) => x.id === id && x.voter) &&
        l.commitIndex >= (l.membershipIndex ?? 0)
      ) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`node ${id} did not become a voter in time`);
  }

  /** Heals the network, resumes paused nodes and starts every stopped node (at its last clock rate). */
  healAll(rate?: (id: number) => number): void {
    this.net.heal(true);
    for (const id of this.ids) {
      this.resume(id);
      if (!this.isRunning(id)) this.spawn(id, rate ? rate(id) : this.rate(id));
    }
  }

  /** SIGTERM every running node (resumed first), kill -9 whatever is left after `graceMs`. */
  async terminateAll(graceMs = 5000): Promise<void> {
    await Promise.all(this.ids.map(async (id) => {
      const p = this.#procs.get(id);
      if (!p || p.done) return;
      p.killedByHarness = true;
      this.resume(id);
      try {
        p.child.kill("SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          p.child.kill("SIGKILL");
        } catch { /* gone */ }
      }, graceMs);
      await p.exited;
      clearTimeout(timer);
      await p.out;
    }));
  }

  /** Sends SIGKILL to every node process without waiting (signal handlers). */
  killNow(): void {
    for (const p of this.#procs.values()) {
      if (p.done) continue;
      p.killedByHarness = true;
      try {
        Deno.kill(p.child.pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }

  /** Kills every node still running (kill -9), closes stubs and proxies. */
  async close(): Promise<void> {
    LIVE.delete(this);
    await Promise.all(this.ids.map((id) => this.kill(id)));
    for (const s of this.#stubs.values()) s.close();
    this.#stubs.clear();
    this.net.close();
  }
}
