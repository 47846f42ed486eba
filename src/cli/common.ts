/**
 * What the commands share: exit codes, the one-line error type, option parsers, and finding the cluster
 * (a config file, or `--node host:port` addresses).
 *
 * @module
 */
import { InvalidArgumentError } from "@commander-js/extra-typings";
import {
  type ClusterConfig,
  ConfigError,
  loadClusterConfig,
  type NodeAddress,
  parseAddress,
} from "../config/cluster_config.ts";
import { DurationError, parseDuration } from "./duration.ts";
// tls.ts, not the folder's mod.ts: that one also exports certs.ts (@peculiar/x509), which a node never needs.
import { CertificateStore, loadTlsMaterial, TlsConfigError } from "../security/tls.ts";
import { userPath } from "../config/user_path.ts";

export { userPath };

/** Exit codes: 0 success, 1 the operation failed, 2 bad usage or configuration. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** `client cas` whose comparison did not hold (the CAS was applied as a no-op): not an error, not OK. */
export const EXIT_CAS_FAILED = 3;

/** An expected failure: printed as `error: <message>` (one line, no stack), then exit with `exitCode`. */
export class CliError extends Error {
  override readonly name = "CliError";
  readonly exitCode: number;

  constructor(message: string, exitCode: number = EXIT_FAILURE, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** The default config path when neither `--config` nor `RAFTKV_CONFIG` says otherwise. */
export const DEFAULT_CONFIG_PATH = "./cluster.json";

/** An environment variable, or undefined when unset or not readable (a release build lists what it may read). */
export function readEnv(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined;
  }
}

/** The first line of an error's message (what a user sees). */
export function errorLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0].trim() || (e instanceof Error ? e.name : "unknown error");
}

// ----------------------------------------------------------------------------------------------------------
// Option parsers for commander (they throw commander's InvalidArgumentError, which it reports with the option).

/** `--timeout 5s` → 5000; must be positive. */
export function durationOption(value: string): number {
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (e) {
    throw new InvalidArgumentError(e instanceof DurationError ? e.message : String(e));
  }
  if (ms <= 0) throw new InvalidArgumentError("must be more than zero");
  return ms;
}

/** A positive integer (node ids, counts). */
export function positiveIntOption(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) {
    throw new InvalidArgumentError(`"${value}" is not a positive integer`);
  }
  return Number(value);
}

/** A non-negative integer (log indexes, limits). */
export function nonNegativeIntOption(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`"${value}" is not a non-negative integer`);
  return Number(value);
}

/** A TCP port 1..65535. */
export function portOption(value: string): number {
  const n = positiveIntOption(value);
  if (n > 65535) throw new InvalidArgumentError(`port ${n} is outside 1..65535`);
  return n;
}

/** Repeatable `--node host:port`: collects the addresses, checking each. */
export function collectAddress(value: string, previous: string[] = []): string[] {
  try {
    parseAddress(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return [...previous, value];
}

// ----------------------------------------------------------------------------------------------------------
// Finding the cluster.

/** The nodes a command talks to, and where that list came from (for messages). */
export interface ClusterTarget {
  readonly nodes: readonly NodeAddress[];
  /** e.g. `cluster.json` or `--node` */
  readonly source: string;
  /** The config file's path, when one was used. */
  readonly configPath?: string;
  readonly config?: ClusterConfig;
  /** The certificate to call the nodes with; undefined: plain text (asked for with --insecure). */
  readonly tls?: CertificateStore;
}

/** The config path a command uses: `--config`, else `$RAFTKV_CONFIG`, else `./cluster.json` (made absolute). */
export function configPathFrom(option: string | undefined): { path: string; explicit: boolean } {
  if (option !== undefined) return { path: userPath(option), explicit: true };
  const env = readEnv("RAFTKV_CONFIG");
  if (env !== undefined) return { path: userPath(env), explicit: true };
  return { path: userPath(DEFAULT_CONFIG_PATH), explicit: false };
}

/** Loads a config file; a bad or missing file becomes a one-line CliError with exit code 2. */
export async function loadConfigOrExit(path: string, explicit: boolean): Promise<ClusterConfig> {
  if (!explicit) {
    try {
      await Deno.stat(path);
    } catch {
      throw new CliError(
        `no cluster config: ${path} does not exist (pass --config FILE, set RAFTKV_CONFIG, or use --node host:port)`,
        EXIT_USAGE,
      );
    }
  }
  try {
    return await loadClusterConfig(path);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(errorLine(e), EXIT_USAGE, { cause: e });
    throw e;
  }
}

/**
 * The nodes to talk to: `--node` addresses (ids unknown, learned from replies) or the config file.
 * Giving both is refused.
 */
export async function resolveCluster(
  opts: { config?: string; node?: string[] } & TlsCliOptions,
  role: "client" | "admin" = "client",
): Promise<ClusterTarget> {
  const addresses = opts.node ?? [];
  if (addresses.length > 0) {
    if (opts.config !== undefined) throw new CliError("use either --config or --node, not both", EXIT_USAGE);
    const unique = [...new Set(addresses)];
    const tls = await loadTlsOrExit(resolveTlsFiles(opts, { role }));
    return { nodes: unique.map((address) => ({ id: 0, address })), source: "--node", tls };
  }
  const { path, explicit } = configPathFrom(opts.config);
  const config = await loadConfigOrExit(path, explicit);
  const tls = await loadTlsOrExit(resolveTlsFiles(opts, { config, configPath: path, role }));
  return { nodes: config.nodes, source: path, configPath: path, config, tls };
}

/** `node 3` or, for a node known only by address, the address. */
export function nodeLabel(n: NodeAddress): string {
  return n.id > 0 ? `node ${n.id}` : n.address;
}

/** Quotes a word for a POSIX shell when it needs it (for commands the user may copy). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

// ----------------------------------------------------------------------------------------------------------
// TLS (issue 12): etcdctl-style flags, environment variables, cluster.json's "tls".

/** The environment variables client and admin commands read when the flags are absent. */
export const TLS_ENV = {
  cacert: "RAFTKV_CACERT",
  cert: "RAFTKV_CERT",
  key: "RAFTKV_KEY",
  /** `1` or `true`: plain text, as `--insecure`. */
  insecure: "RAFTKV_INSECURE",
} as const;

export interface TlsCliOptions {
  cacert?: string;
  cert?: string;
  key?: string;
  insecure?: true;
}

/** Adds `--cacert --cert --key --insecure` to a command. */
export function withTlsOptions<C extends { option(flags: string, description: string): C }>(cmd: C): C {
  return cmd
    .option("--cacert <file>", `CA certificate to trust (default: $${TLS_ENV.cacert})`)
    .option("--cert <file>", `this side's certificate (default: $${TLS_ENV.cert})`)
    .option("--key <file>", `this side's private key (default: $${TLS_ENV.key})`)
    .option(
      "--insecure",
      `plain text, no TLS (default: $${TLS_ENV.insecure}=1): anyone on the network gets in`,
    );
}

/** Resolves a config-relative path and the `{id}` placeholder. */
function configPath(path: string, configFile: string | undefined, id: number | undefined): string {
  const p = id === undefined ? path : path.replaceAll("{id}", String(id));
  if (p.startsWith("/") || configFile === undefined) return p;
  const dir = configFile.includes("/") ? configFile.slice(0, configFile.lastIndexOf("/")) : ".";
  return `${dir}/${p}`;
}

/**
 * The TLS files a command uses, or `undefined` for plain text (only when asked for: `--insecure` or
 * `RAFTKV_INSECURE=1`). Flags win over the environment, which wins over cluster.json's `tls` (for a node
 * all three files; for a client or admin command only `cacert`, the certificate being the user's own).
 */
export function resolveTlsFiles(
  o: TlsCliOptions,
  context: { config?: ClusterConfig; configPath?: string; nodeId?: number; role?: "client" | "admin" },
): { cacert: string; cert: string; key: string } | undefined {
  // Literal names: the bundle check (tests/ops/self_contained_test.ts) finds every variable read this way.
  const env: Record<string, string | undefined> = {
    [TLS_ENV.cacert]: readEnv("RAFTKV_CACERT"),
    [TLS_ENV.cert]: readEnv("RAFTKV_CERT"),
    [TLS_ENV.key]: readEnv("RAFTKV_KEY"),
  };
  const envInsecure = /^(1|true|yes)$/i.test(readEnv("RAFTKV_INSECURE") ?? "");
  const anyFlag = o.cacert !== undefined || o.cert !== undefined || o.key !== undefined;
  if (o.insecure) {
    if (anyFlag) throw new CliError("--insecure cannot be combined with --cacert/--cert/--key", EXIT_USAGE);
    return undefined;
  }
  const fromConfig = context.config?.tls;
  const node = context.nodeId;
  const role = context.role ?? "client";
  const configured = (field: "cacert" | "cert" | "key"): string | undefined => {
    if (!fromConfig) return undefined;
    if (node !== undefined || field === "cacert") return fromConfig[field];
    const own = field === "cert" ? fromConfig[`${role}Cert`] : fromConfig[`${role}Key`];
    return own ?? (field === "cert" ? fromConfig.clientCert : fromConfig.clientKey);
  };
  const pick = (flag: string | undefined, envName: string, field: "cacert" | "cert" | "key") => {
    const fromFile = configured(field);
    // A node reads flags and the config only: the variables are the client's and admin's (they would
    // otherwise hand a node an operator's certificate).
    return flag ?? (anyFlag || node !== undefined ? undefined : env[envName]) ??
      (fromFile === undefined ? undefined : configPath(fromFile, context.configPath, node));
  };
  const cacert = pick(o.cacert, TLS_ENV.cacert, "cacert");
  const cert = pick(o.cert, TLS_ENV.cert, "cert");
  const key = pick(o.key, TLS_ENV.key, "key");
  if (cacert === undefined && cert === undefined && key === undefined && envInsecure) return undefined;
  if (cacert === undefined || cert === undefined || key === undefined) {
    const missing = [["--cacert", cacert], ["--cert", cert], ["--key", key]].filter(([, v]) =>
      v === undefined
    )
      .map(([f]) => f).join(", ");
    throw new CliError(
      `TLS is on by default and ${missing} ${missing.includes(",") ? "are" : "is"} missing: pass ` +
        `--cacert/--cert/--key (or set ${TLS_ENV.cacert}, ${TLS_ENV.cert}, ${TLS_ENV.key}` +
        `${node !== undefined ? `, or "tls" in the config` : ""}), or --insecure for plain text`,
      EXIT_USAGE,
    );
  }
  return { cacert, cert, key };
}

/** Loads the TLS files into a certificate store (undefined: plain text); unusable files exit 2 with one line. */
export async function loadTlsOrExit(
  files: { cacert: string; cert: string; key: string } | undefined,
): Promise<CertificateStore | undefined> {
  if (files === undefined) return undefined;
  try {
    return new CertificateStore(await loadTlsMaterial(files));
  } catch (e) {
    if (e instanceof TlsConfigError) throw new CliError(errorLine(e), EXIT_USAGE, { cause: e });
    throw e;
  }
}
