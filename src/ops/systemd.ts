/**
 * The systemd unit of a raftkv node: one `raftkv.service` per VM, running
 * `raftkv node --id N --config /etc/raftkv/cluster.json --data-dir /var/lib/raftkv --quiet`.
 *
 * - {@linkcode renderUnit} returns the unit text (pure; what `raftkv systemd-unit` prints).
 * - {@linkcode installUnit} writes it to `/etc/systemd/system/raftkv.service`, copies the cluster config to
 *   `/etc/raftkv/cluster.json`, creates the `raftkv` system user if missing, and returns the systemctl
 *   commands that start it (it does not run them: the operator or the deploy script does).
 * - {@linkcode systemdUnitCommand} is the same as a commander subcommand for the CLI.
 *
 * Choices worth knowing:
 * - `Type=notify`: the node sends `READY=1` (src/ops/sd_notify.ts) once it serves, so `systemctl start`
 *   returns when the node answers, and dependent units start after that.
 * - `KillSignal=SIGTERM` + `TimeoutStopSec=30`: on SIGTERM a leader hands leadership off (revoking its lease)
 *   before it exits 0; 30 s covers a hand-off even with multi-region timings (election 3–6 s).
 * - `Restart=on-failure`: a crash or a fatal disk error restarts the node after 1 s; a clean stop (exit 0)
 *   does not.
 * - Sandboxing: the node writes only its data dir (`ProtectSystem=strict` + `StateDirectory`). No
 *   `MemoryDenyWriteExecute`: V8's JIT needs writable-executable memory.
 *
 * @example Print the unit for node 2
 * ```ts
 * import { renderUnit } from "./systemd.ts";
 * console.log(renderUnit({ id: 2, configPath: "/etc/raftkv/cluster.json" }));
 * ```
 *
 * @module
 */
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import { type ClusterConfig, ConfigError, loadClusterConfig } from "../config/cluster_config.ts";
import { userPath } from "../config/user_path.ts";
import { VERSION } from "../version.ts";
import { NODE_ENV } from "./permissions.ts";

export const UNIT_NAME = "raftkv.service";
export const DEFAULT_BINARY_PATH = "/usr/local/bin/raftkv";
export const DEFAULT_USER = "raftkv";
export const DEFAULT_DATA_DIR = "/var/lib/raftkv";
/** Where installUnit puts the cluster config; the unit's ExecStart points here. */
export const INSTALLED_CONFIG_PATH = "/etc/raftkv/cluster.json";
/** The `Documentation=` line (systemd accepts http(s), file, info and man URLs; `man:` fails verify here). */
export const DOCS_URL = "https://github.com/raftkv/raftkv/blob/main/docs/operations.md";
/** How long systemd waits for a graceful stop (leadership hand-off included) before SIGKILL. */
export const STOP_TIMEOUT_SEC = 30;

export interface UnitOptions {
  /** The node id (from the cluster config). */
  readonly id: number;
  /** Path of the cluster config on the machine that runs the unit. */
  readonly configPath: string;
  readonly binaryPath?: string;
  /** The system user and group the node runs as. */
  readonly user?: string;
  /** The data dir (the node writes `<dataDir>/logs_node_<id>/`). Under /var/lib/ systemd creates it. */
  readonly dataDir?: string;
  readonly docsUrl?: string;
  /**
   * Issue 11: a node added after bootstrap (not in the config): the unit runs it with `--join --address`
   * at this "host:port". Empty: a bootstrap member.
   */
  readonly joinAddress?: string;
}

/** Thrown for options that cannot make a working unit; the message names the option and its value. */
export class UnitOptionsError extends Error {
  override name = "UnitOptionsError";
}

/**
 * Quotes one ExecStart word the way systemd parses it: `%` specifiers and `$` variables are escaped, and a
 * word with spaces, quotes or backslashes is double-quoted with C-style escapes.
 */
export function quoteExecArg(arg: string): string {
  const escaped = arg.replaceAll("%", "%%").replaceAll("$", "$$$$");
  if (escaped !== "" && /^[A-Za-z0-9_@%+=:,./$-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function checkAbsolute(name: string, path: string): void {
  if (!path.startsWith("/")) throw new UnitOptionsError(`${name} must be an absolute path, got "${path}"`);
  if (/[\n\r\0]/.test(path)) throw new UnitOptionsError(`${name} must not contain control characters`);
}

function checkUnitOptions(o: UnitOptions): Required<UnitOptions> {
  const r: Required<UnitOptions> = {
    id: o.id,
    configPath: o.configPath,
    binaryPath: o.binaryPath ?? DEFAULT_BINARY_PATH,
    user: o.user ?? DEFAULT_USER,
    dataDir: (o.dataDir ?? DEFAULT_DATA_DIR).replace(/\/+$/, ""),
    docsUrl: o.docsUrl ?? DOCS_URL,
    joinAddress: o.joinAddress ?? "",
  };
  if (r.joinAddress !== "" && !/^[^\s:]+:[1-9][0-9]{0,4}$/.test(r.joinAddress)) {
    throw new UnitOptionsError(`the --join address must be host:port, got "${r.joinAddress}"`);
  }
  if (!Number.isInteger(r.id) || r.id < 1) {
    throw new UnitOptionsError(`id must be a positive integer, got ${o.id}`);
  }
  checkAbsolute("configPath", r.configPath);
  checkAbsolute("binaryPath", r.binaryPath);
  checkAbsolute("dataDir", r.dataDir);
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(r.user)) {
    throw new UnitOptionsError(`user must be a system user name like "raftkv", got "${r.user}"`);
  }
  if (!/^https?:\/\/\S+$/.test(r.docsUrl)) throw new UnitOptionsError(`docsUrl must be an http(s) URL`);
  return r;
}

/** The `StateDirectory=` value for a data dir under /var/lib/ (systemd creates and chowns it), else undefined. */
function stateDirectoryOf(dataDir: string): string | undefined {
  const m = /^\/var\/lib\/([^/].*)$/.exec(dataDir);
  return m ? m[1] : undefined;
}

/** The unit file text for one node. */
export function renderUnit(opts: UnitOptions): string {
  const o = checkUnitOptions(opts);
  const exec = [
    o.binaryPath,
    "node",
    "--id",
    String(o.id),
    "--config",
    o.configPath,
    "--data-dir",
    o.dataDir,
    "--quiet",
    ...(o.joinAddress !== "" ? ["--join", "--address", o.joinAddress] : []),
  ]
    .map(quoteExecArg)
    .join(" ");
  const stateDir = stateDirectoryOf(o.dataDir);
  const lines = [
    `# raftkv node ${o.id}: generated by \`raftkv systemd-unit\` (raftkv ${VERSION}).`,
    `# Stop it with \`systemctl stop raftkv\`: a leader hands leadership off first (SIGTERM, exit 0).`,
    `# Listens on its address in the config (clients, admin, gRPC peers) and on that port + rawPeerPortOffset`,
    `# (default 1000, e.g. 7101 -> 8101: raw peer traffic): open both between the nodes.`,
    "[Unit]",
    `Description=raftkv node ${o.id} (replicated key-value store on Raft with a leader lease)`,
    `Documentation=${o.docsUrl}`,
    "After=network-online.target",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=notify",
    "NotifyAccess=main",
    `ExecStart=${exec}`,
    // `systemctl reload raftkv`: reread the TLS certificates and keys (no restart, leadership kept).
    "ExecReload=/bin/kill -HUP $MAINPID",
    "Restart=on-failure",
    "RestartSec=1",
    "TimeoutStartSec=120",
    `TimeoutStopSec=${STOP_TIMEOUT_SEC}`,
    "KillSignal=SIGTERM",
    `User=${o.user}`,
    `Group=${o.user}`,
    ...(stateDir ? [`StateDirectory=${stateDir}`, "StateDirectoryMode=0750"] : []),
    `WorkingDirectory=${o.dataDir}`,
    `ReadWritePaths=${o.dataDir}`,
    "Environment=NO_COLOR=1",
    ...Object.entries(NODE_ENV).map(([name, value]) => `Environment=${name}=${value}`),
    "LimitNOFILE=65536",
    "UMask=0027",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "CapabilityBoundingSet=",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ];
  return lines.join("\n");
}

/** Paths the unit's sandbox hides from the service (ProtectHome=yes, PrivateTmp=yes), with the reason. */
export function hiddenPathReason(path: string): string | undefined {
  if (/^\/(home|root|run\/user)(\/|$)/.test(path)) return "ProtectHome=yes hides /home, /root and /run/user";
  if (/^\/(tmp|var\/tmp)(\/|$)/.test(path)) return "PrivateTmp=yes gives the service its own empty /tmp";
  return undefined;
}

/** What `systemd-unit` prints and `--install` writes: the same unit text, checked against the config. */
export interface PreparedUnit {
  /** The unit text (its ExecStart reads the installed config, /etc/raftkv/cluster.json). */
  readonly text: string;
  /** The config given, as an absolute path. */
  readonly sourceConfigPath: string;
  readonly config: ClusterConfig;
  /** Problems the unit would meet at run time (paths its sandbox hides); one line each. */
  readonly warnings: readonly string[];
}

/**
 * Resolves the given config path (relative to the caller's folder), loads and checks it, refuses an id it does
 * not list, and renders the unit exactly as {@link installUnit} writes it. Warns about a binary or data dir
 * the sandbox would hide.
 */
export async function prepareUnit(opts: UnitOptions): Promise<PreparedUnit> {
  const sourceConfigPath = userPath(opts.configPath);
  let config: ClusterConfig;
  try {
    config = await loadClusterConfig(sourceConfigPath);
  } catch (e) {
    throw new UnitOptionsError(e instanceof ConfigError ? e.message : String(e));
  }
  const listed = config.nodes.some((n) => n.id === opts.id);
  if (listed && opts.joinAddress) {
    throw new UnitOptionsError(`node id ${opts.id} is in ${sourceConfigPath}: --join is for new ids only`);
  }
  if (!listed && !opts.joinAddress) {
    throw new UnitOptionsError(
      `node id ${opts.id} is not in ${sourceConfigPath} (ids: ${
        config.nodes.map((n) => n.id).join(", ")
      }): a node added after bootstrap needs --join HOST:PORT`,
    );
  }
  const text = renderUnit({ ...opts, configPath: INSTALLED_CONFIG_PATH });
  const warnings: string[] = [];
  const binary = opts.binaryPath ?? DEFAULT_BINARY_PATH;
  const dataDir = opts.dataDir ?? DEFAULT_DATA_DIR;
  for (
    const [what, path, fix] of [
      ["--binary", binary, "install it under /usr/local/bin (or /opt)"],
      ["--data-dir", dataDir, "use a folder under /var/lib (the default, /var/lib/raftkv) or /srv"],
    ] as const
  ) {
    const why = hiddenPathReason(path);
    if (why) warnings.push(`${what} ${path} will not be reachable by the service: ${why}; ${fix}`);
  }
  // The unit passes no TLS flags: the node finds its files through the installed config, or does not start.
  if (!config.tls) {
    warnings.push(
      `${sourceConfigPath} names no "tls" files: the node will not start (mutual TLS is the default and the ` +
        `unit passes no --cacert/--cert/--key); add "tls": {"cacert", "cert", "key"} (docs/operations.md §2a)`,
    );
  } else {
    for (const k of ["cacert", "cert", "key"] as const) {
      const path = config.tls[k];
      if (path.startsWith("/")) continue;
      const installed = `${INSTALLED_CONFIG_PATH.replace(/\/[^/]*$/, "")}/${
        path.replaceAll("{id}", String(opts.id))
      }`;
      warnings.push(
        `tls.${k} "${path}" is relative to the config's folder: the installed node reads ${installed}; ` +
          `put the file there, or give an absolute path`,
      );
    }
  }
  try {
    const st = await Deno.stat(binary);
    if (!st.isFile) warnings.push(`--binary ${binary} is not a file`);
  } catch {
    warnings.push(`--binary ${binary} does not exist on this machine (yet): the unit runs it at start`);
  }
  return { text, sourceConfigPath, config, warnings };
}

export interface InstallOptions extends Omit<UnitOptions, "configPath"> {
  /** The cluster config to install (validated, and it must list `id`). */
  readonly configPath: string;
  /** Prefix for every path written (tests use a temp dir); default "/". */
  readonly rootDir?: string;
  /** Create the system user when missing (default true; needs root). */
  readonly createUser?: boolean;
}

export interface InstallResult {
  /** Files written (with rootDir prefixed). */
  readonly unitPath: string;
  readonly configPath: string;
  /** True when this call created the system user. */
  readonly userCreated: boolean;
  /** See {@link PreparedUnit.warnings}. */
  readonly warnings: readonly string[];
  /** What to run next, in order (each an argv). */
  readonly commands: readonly (readonly string[])[];
}

async function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr).trim() };
}

async function userExists(user: string): Promise<boolean> {
  return (await run("getent", ["passwd", user])).code === 0;
}

async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text, { mode });
  await Deno.chmod(tmp, mode); // writeTextFile's mode is filtered by the umask
  await Deno.rename(tmp, path);
}

function join(root: string, path: string): string {
  return root === "/" ? path : `${root.replace(/\/+$/, "")}${path}`;
}

/**
 * Installs the unit for node `id`: validates the config, copies it to /etc/raftkv/cluster.json, writes
 * /etc/systemd/system/raftkv.service, creates the system user if missing. Returns the systemctl commands
 * to run (`daemon-reload`, `enable --now raftkv`).
 */
export async function installUnit(opts: InstallOptions): Promise<InstallResult> {
  const root = opts.rootDir ?? "/";
  const { text: unitText, sourceConfigPath, warnings } = await prepareUnit(opts);
  const dataDir = (opts.dataDir ?? DEFAULT_DATA_DIR).replace(/\/+$/, "");
  const user = opts.user ?? DEFAULT_USER;

  let userCreated = false;
  if ((opts.createUser ?? true) && !(await userExists(user))) {
    const r = await run("useradd", [
      "--system",
      "--user-group",
      "--no-create-home",
      "--home-dir",
      dataDir,
      "--shell",
      "/usr/sbin/nologin",
      user,
    ]);
    if (r.code !== 0) throw new Error(`useradd ${user} failed (exit ${r.code}): ${r.stderr}`);
    userCreated = true;
  }

  const configDir = join(root, "/etc/raftkv");
  await Deno.mkdir(configDir, { recursive: true, mode: 0o755 });
  const configPath = join(root, INSTALLED_CONFIG_PATH);
  await writeFileAtomic(configPath, await Deno.readTextFile(sourceConfigPath), 0o644);

  const unitDir = join(root, "/etc/systemd/system");
  await Deno.mkdir(unitDir, { recursive: true, mode: 0o755 });
  const unitPath = `${unitDir}/${UNIT_NAME}`;
  await writeFileAtomic(unitPath, unitText, 0o644);

  if (!stateDirectoryOf(dataDir)) {
    // systemd creates only /var/lib/* state directories; create any other data dir for the user ourselves.
    const dir = join(root, dataDir);
    await Deno.mkdir(dir, { recursive: true, mode: 0o750 });
    if (opts.createUser ?? true) {
      const r = await run("chown", [`${user}:${user}`, dir]);
      if (r.code !== 0) throw new Error(`chown ${user} ${dir} failed (exit ${r.code}): ${r.stderr}`);
    }
  }

  return {
    unitPath,
    configPath,
    userCreated,
    warnings,
    commands: [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "raftkv"]],
  };
}

function parseId(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(`must be a positive integer, got "${value}"`);
  }
  return n;
}

/**
 * `raftkv systemd-unit --id N --config PATH [--binary PATH] [--data-dir DIR] [--user NAME] [--install]`:
 * prints the unit, or (with `--install`, as root) installs it and prints the commands that start it.
 */
export function systemdUnitCommand() {
  return new Command("systemd-unit")
    .description(
      "print the systemd unit of a node, or install it (/etc/systemd/system/raftkv.service, " +
        "/etc/raftkv/cluster.json, the raftkv system user)",
    )
    .requiredOption("--id <n>", "node id", parseId)
    .requiredOption("--config <path>", "cluster config (checked; installed to /etc/raftkv/cluster.json)")
    .option("--binary <path>", "the raftkv executable the unit runs", DEFAULT_BINARY_PATH)
    .option("--data-dir <dir>", "data dir of the node", DEFAULT_DATA_DIR)
    .option("--user <name>", "system user (and group) the node runs as", DEFAULT_USER)
    .option("--install", "install the unit, the config and the user (needs root)")
    .option("--join <host:port>", "a node added after bootstrap: run it with --join --address HOST:PORT")
    .action(async (o) => {
      if (!o.install) {
        // Exactly what --install writes (its ExecStart reads the installed copy of the config).
        const p = await prepareUnit({
          id: o.id,
          configPath: o.config,
          binaryPath: o.binary,
          dataDir: o.dataDir,
          user: o.user,
          joinAddress: o.join,
        });
        for (const w of p.warnings) console.error(`warning: ${w}`);
        console.error(
          `note: --install copies ${p.sourceConfigPath} to ${INSTALLED_CONFIG_PATH}, which this unit reads`,
        );
        Deno.stdout.writeSync(new TextEncoder().encode(p.text));
        return;
      }
      const r = await installUnit({
        id: o.id,
        configPath: o.config,
        binaryPath: o.binary,
        dataDir: o.dataDir,
        user: o.user,
        joinAddress: o.join,
      });
      for (const w of r.warnings) console.error(`warning: ${w}`);
      if (r.userCreated) console.log(`created system user ${o.user}`);
      console.log(`wrote ${r.configPath}`);
      console.log(`wrote ${r.unitPath}`);
      console.log("now run:");
      for (const c of r.commands) console.log(`  ${c.join(" ")}`);
    });
}
