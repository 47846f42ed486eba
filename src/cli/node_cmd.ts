/**
 * `raftkv node --id N [--config cluster.json] [--data-dir DIR] [--quiet]`: runs one node in the foreground.
 *
 * - Prints one start-up line (`node 2 serving on 127.0.0.1:7102, logs in DIR/logs_node_2`), then the dump lines
 *   (as in dump.txt) unless `--quiet`.
 * - SIGTERM or SIGINT: a leader hands leadership off (revoking its lease), the node stops, exit 0. A second
 *   signal while stopping exits 1 at once.
 * - A fatal node error (e.g. the disk failing): `error: node 2 failed: …`, exit 1.
 * - Unknown `--id` or a bad config: one line, exit 2. Address in use: one line naming it, exit 1.
 * - TLS (default): `--cacert --cert --key` or cluster.json's "tls"; `--insecure` runs plain text with a warning.
 *   SIGHUP reloads the certificate files without a restart.
 * - Under systemd (`Type=notify`) it sends READY=1 once it serves and STOPPING=1 when it begins to stop.
 * - `--metrics-address HOST:PORT` (or the node's `metricsAddress` in the config): `/metrics`, `/healthz`,
 *   `/readyz` on that HTTP port (src/metrics/). `--log-format json`: the stdout log as JSON lines.
 * - Relative `--config`/`--data-dir` resolve against the caller's folder (`$INIT_CWD` under `deno task`).
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import {
  createNodeMetrics,
  type MetricsServer,
  readiness,
  serveMetrics,
  storageProbe,
} from "../metrics/mod.ts";
import { formatJsonLine, nodeFolder, StorageError } from "../storage/mod.ts";
import { parseAddress } from "../config/cluster_config.ts";
import { RaftNode } from "../node/raft_node.ts";
import { BROKEN_RULES, type BrokenRule } from "../raft/state_machine.ts";
import { notifyReady, notifyStopping } from "../ops/sd_notify.ts";
import { startIdleGc } from "../ops/idle_gc.ts";
import { openMallocTrim } from "../ops/malloc_trim.ts";
import { FILE_PAGES_ENV, filePagesChoice, openFilePageRelease } from "../ops/file_pages.ts";
import {
  CliError,
  configPathFrom,
  errorLine,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  loadConfigOrExit,
  loadTlsOrExit,
  positiveIntOption,
  resolveTlsFiles,
  type TlsCliOptions,
  userPath,
  withTlsOptions,
} from "./common.ts";
import { describeIdentity } from "../security/identity.ts"; // not mod.ts: it loads certs.ts (@peculiar/x509)

/**
 * How to get past a refusal at start-up. A damaged or missing file in a node's folder is refused (never guessed
 * around); the node can be rebuilt from the others, as long as they still form a healthy majority.
 */
export function recoveryHint(e: unknown, folder: string): string {
  if (!(e instanceof StorageError)) return "";
  if (e.code === "corrupt") {
    return ` To recover: check that the rest of the cluster is healthy (\`raftkv admin status\` shows a leader ` +
      `and a majority reachable), then move ${folder} aside (or delete it) and start this node again: it ` +
      `rejoins empty and the leader sends it the whole log. Do not do this on more than a minority of nodes ` +
      `at once: committed entries live only on the folders you keep.`;
  }
  if (e.code === "locked") return " Stop the other process first (or use another --data-dir).";
  if (e.code === "foreign") {
    return ` This folder belongs to another node or cluster: check --id, --data-dir and clusterId in the config.`;
  }
  return "";
}

/** Turns a start-up failure into one line: an address in use gets named, with a hint. */
export function describeStartError(e: unknown, id: number, address: string, folder = ""): string {
  const msg = errorLine(e);
  const hint = recoveryHint(e, folder);
  if (hint) return `node ${id} could not start: ${msg}.${hint}`;
  if (/EADDRINUSE|address already in use|No address added/i.test(msg)) {
    return `node ${id} cannot listen on ${address}: address already in use (is another node running there?)`;
  }
  if (/cannot listen on/i.test(msg)) return `node ${id} ${msg}`;
  return `node ${id} could not start: ${msg}`;
}

/**
 * True when something already listens on `address` (checked before starting, so the user gets one clean line
 * instead of a gRPC bind failure). Any other outcome (e.g. a name that does not resolve here) says false and
 * leaves the verdict to the node's own start-up.
 */
export function addressInUse(address: string): boolean {
  let host: string, port: number;
  try {
    ({ host, port } = parseAddress(address));
  } catch {
    return false;
  }
  try {
    Deno.listen({ hostname: host.replace(/^\[|\]$/g, ""), port }).close();
    return false;
  } catch (e) {
    return e instanceof Deno.errors.AddrInUse;
  }
}

export function nodeCommand() {
  return withTlsOptions(new Command("node"))
    .description("run one node of the cluster in the foreground (SIGTERM/Ctrl-C stops it gracefully)")
    .requiredOption("--id <n>", "this node's id (from the config)", positiveIntOption)
    .option("--config <file>", "cluster config (default: $RAFTKV_CONFIG or ./cluster.json)")
    .option("--data-dir <dir>", "where logs_node_<id>/ lives", ".")
    .option("-q, --quiet", "do not echo dump lines to stdout")
    .option("--address <host:port>", "listen here (required with --join: the node is not in the config)")
    .option(
      "--join",
      "a new node, not in the config's bootstrap members: it waits to be added (raftkv admin add-node), " +
        "then receives the cluster's state; keep --join --address on its restarts",
    )
    .option(
      "--metrics-address <host:port>",
      "serve /metrics, /healthz, /readyz over HTTP here (default: off)",
    )
    .addOption(
      new Option("--log-format <format>", "stdout log: text (as dump.txt) or json (JSON lines)")
        .choices(["text", "json"] as const).default("text" as const),
    )
    .action(async (o) => {
      const dataDir = userPath(o.dataDir);
      const say = (line: string) =>
        console.log(o.logFormat === "json" ? formatJsonLine("info", line, { node: o.id }) : line);
      const sayError = (line: string) =>
        console.error(
          o.logFormat === "json" ? formatJsonLine("error", line, { node: o.id }) : `error: ${line}`,
        );
      const { path, explicit } = configPathFrom(o.config);
      const config = await loadConfigOrExit(path, explicit);
      const configured = config.nodes.find((n) => n.id === o.id);
      if (o.join && configured) {
        throw new CliError(
          `node id ${o.id} is in ${path}: --join is for a new node with a fresh id (ids in use: ${
            config.nodes.map((n) => n.id).join(", ")
          })`,
          EXIT_USAGE,
        );
      }
      if (o.join && o.address === undefined) {
        throw new CliError("--join needs --address HOST:PORT (where this new node listens)", EXIT_USAGE);
      }
      const self = o.address !== undefined ? { id: o.id, address: o.address } : configured;
      if (!self) {
        throw new CliError(
          `node id ${o.id} is not in ${path} (ids: ${
            config.nodes.map((n) => n.id).join(", ")
          }): a new node starts with --join --address HOST:PORT`,
          EXIT_USAGE,
        );
      }
      const tls = await loadTlsOrExit(
        resolveTlsFiles(o as TlsCliOptions, { config, configPath: path, nodeId: o.id }),
      );
      if (tls && (tls.material.identity.role !== "node" || tls.material.identity.nodeId !== o.id)) {
        throw new CliError(
          `${tls.material.files.cert} is the certificate of ${describeIdentity(tls.material.identity)}, ` +
            `not node ${o.id}`,
          EXIT_USAGE,
        );
      }
      const busy = addressInUse(self.address);
      if (busy) {
        throw new CliError(
          `node ${o.id} cannot listen on ${self.address}: address already in use (is another node running there?)`,
        );
      }
      const logsDir = nodeFolder(dataDir, o.id);
      const metricsAddress = o.metricsAddress ?? self.metricsAddress;
      if (metricsAddress !== undefined) {
        try {
          parseAddress(metricsAddress);
        } catch (e) {
          throw new CliError(`--metrics-address: ${errorLine(e)}`, EXIT_USAGE);
        }
        if (metricsAddress === self.address) {
          throw new CliError(
            `--metrics-address must differ from the gRPC address ${self.address}`,
            EXIT_USAGE,
          );
        }
      }
      const metrics = metricsAddress !== undefined ? createNodeMetrics(o.id) : undefined;
      // Negative controls (tests/chaos): a core safety rule switched off on purpose. Never in production.
      const broken = Deno.env.get("RAFTKV_NEGATIVE_CONTROL");
      if (broken !== undefined && !(BROKEN_RULES as readonly string[]).includes(broken)) {
        throw new CliError(
          `RAFTKV_NEGATIVE_CONTROL must be one of ${BROKEN_RULES.join(", ")} (got ${JSON.stringify(broken)})`,
          EXIT_USAGE,
        );
      }
      if (broken !== undefined) {
        console.error(
          `WARNING: node ${o.id} runs with the safety rule ${broken} SWITCHED OFF (negative control)`,
        );
      }
      let node: RaftNode;
      try {
        node = await RaftNode.start({
          ...(broken !== undefined ? { brokenRule: broken as BrokenRule } : {}),
          config,
          id: o.id,
          dataDir,
          echo: !o.quiet,
          logFormat: o.logFormat,
          metrics,
          address: o.address,
          join: o.join,
          tls,
          limits: config.transportLimits,
        });
      } catch (e) {
        throw new CliError(describeStartError(e, o.id, self.address, logsDir), EXIT_FAILURE, { cause: e });
      }
      let metricsServer: MetricsServer | undefined;
      if (metrics && metricsAddress !== undefined) {
        let failed = false;
        node.failed.catch(() => (failed = true));
        const writable = storageProbe(logsDir);
        try {
          metricsServer = await serveMetrics(metricsAddress, metrics, {
            healthz: async () =>
              failed
                ? { ok: false, detail: `unhealthy: node ${o.id} stopped on a fatal error` }
                : await writable(),
            readyz: () => readiness(node.status()),
          });
        } catch (e) {
          await node.stop();
          throw new CliError(`node ${o.id}: ${errorLine(e)}`, EXIT_FAILURE, { cause: e });
        }
      }
      say(
        `node ${o.id} serving on ${self.address} (cluster ${config.clusterId}), logs in ${logsDir}` +
          (metricsServer ? `, metrics on http://${metricsServer.address}/metrics` : ""),
      );
      if (o.join) {
        // A joined node restarted with --join (its systemd unit keeps the flag) finds its addition in its own
        // log or snapshot: it is a member, and telling the operator to add it again would mislead.
        const member = node.status().membership?.members.find((m) => m.id === o.id);
        console.log(
          member !== undefined
            ? `node ${o.id} is a member of the cluster (${
              member.voter ? "voter" : "learner"
            }, its addition is ` +
              `in its log): --join is harmless on its restarts`
            : `node ${o.id} waits to be added: raftkv admin add-node --id ${o.id} --address ${self.address} ` +
              `--config ${path}`,
        );
      }
      // Once serving (a node that fails to start says only why).
      if (!tls) {
        console.error(
          `warning: node ${o.id} runs WITHOUT TLS (--insecure): anyone who can reach ${self.address} can read ` +
            `and write keys, transfer leadership and speak Raft to it`,
        );
      }
      await notifyReady(`node ${o.id} serving on ${self.address}`);
      // Memory back after a burst (unref'd timer): V8's heap, then glibc's free pages.
      const malloc = openMallocTrim();
      if (malloc.unavailable) {
        node.note(`Node ${o.id} will not return freed native memory to the system: ${malloc.unavailable}.`);
      }
      // The executable's cold pages (src/ops/file_pages.ts), after each trim; the first quiet moment after
      // start counts as the end of a burst (start-up's garbage and cold pages).
      const releaseFilePages = fileReleaser(o.id, node.note.bind(node));
      startIdleGc(() => node.status().commitIndex, {
        trim: malloc.trim || releaseFilePages ? () => (malloc.trim?.(), releaseFilePages?.()) : undefined,
        collectAtStart: true,
      });
      const code = await new Promise<number>((resolve) => {
        let stopping = false;
        const onSignal = () => {
          if (stopping) {
            sayError(`node ${o.id}: second signal while stopping; exiting at once`);
            Deno.exit(EXIT_FAILURE);
          }
          stopping = true;
          void notifyStopping(`node ${o.id} stopping`);
          node.stop({ handOff: true }).then(
            async () => {
              await metricsServer?.close();
              resolve(EXIT_OK);
            },
            (e) => {
              sayError(`node ${o.id} did not stop cleanly: ${errorLine(e)}`);
              resolve(EXIT_FAILURE);
            },
          );
        };
        // SIGHUP (systemctl reload): reread the certificate files; new handshakes use them, open connections
        // and leadership stay. Unusable files are refused and the old ones kept.
        Deno.addSignalListener("SIGHUP", () => {
          if (!tls) return void console.error(`node ${o.id}: SIGHUP ignored: no TLS (--insecure)`);
          tls.reload().then(
            (m) =>
              console.log(
                `node ${o.id}: certificates reloaded (${m.files.cert}, valid until ${m.notAfter.toISOString()})`,
              ),
            (e) =>
              console.error(
                `error: node ${o.id}: certificate reload refused, keeping the old ones: ${errorLine(e)}`,
              ),
          );
        });
        Deno.addSignalListener("SIGTERM", onSignal);
        Deno.addSignalListener("SIGINT", onSignal);
        node.failed.catch((e) => {
          sayError(`node ${o.id} failed: ${errorLine(e)}`);
          resolve(EXIT_FAILURE);
        });
      });
      if (code !== EXIT_OK) throw new CliError("", code); // already reported
    });
}

/**
 * The node's release of the executable's cold pages, as RAFTKV_FILE_PAGES chooses (default `dontneed`), or
 * undefined (`keep`, refused value, or unavailable: said once in dump.txt).
 */
function fileReleaser(id: number, note: (message: string) => void): (() => void) | undefined {
  const choice = filePagesChoice(Deno.env.get(FILE_PAGES_ENV));
  if (choice === "keep") return undefined;
  if ("refused" in choice) {
    note(`Node ${id} keeps the executable's pages mapped: ${choice.refused}.`);
    return undefined;
  }
  const { release, unavailable } = openFilePageRelease();
  if (release === undefined) {
    note(`Node ${id} will not release the executable's cold pages: ${unavailable}.`);
    return undefined;
  }
  return () => void release(choice.advice, choice.scope);
}
