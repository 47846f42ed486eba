/**
 * Builds a raftkv release.
 *
 *     deno task build  [--target x86_64-unknown-linux-gnu] [--output dist/raftkv]
 *     deno task bundle [--output dist/raftkv.bundle.js]
 *
 * 1. Stamps the git commit (short hash, `+dirty` when the tree has changes) into src/build_info.ts.
 * 2. `deno compile` with the release permissions of src/ops/permissions.ts (not -A) into dist/raftkv, or with
 *    `--bundle`, `deno bundle` into dist/raftkv.bundle.js (one JS file, npm packages inlined, with a
 *    `#!/usr/bin/env -S deno run <permissions>` line so it runs as `./raftkv.bundle.js`).
 * 3. Restores src/build_info.ts (in a `finally`, also when the compile fails).
 *
 * `deno compile` downloads its base runtime (denort) from dl.deno.land on first use; without that server it
 * fails, and this script says so plainly and exits 2 (on a machine with internet access it works; the
 * runtime is cached afterwards). Any other failure exits 1.
 *
 * @module
 */
import { releaseRunFlags, v8FlagsArg } from "../src/ops/permissions.ts";

export const BUILD_INFO_PATH = "src/build_info.ts";
export const DEFAULT_BINARY_OUTPUT = "dist/raftkv";
export const DEFAULT_BUNDLE_OUTPUT = "dist/raftkv.bundle.js";
export const ENTRY = "mod.ts";
/** Exit code when `deno compile` could not download its base runtime. */
export const EXIT_RUNTIME_UNAVAILABLE = 2;

/** The committed content of src/build_info.ts (what a source checkout reads). */
export function buildInfoSource(commit: string): string {
  return (
    "// Rewritten by scripts/build.ts when compiling a release binary; keep this default committed.\n" +
    `export const BUILD_COMMIT: string = ${JSON.stringify(commit)};\n`
  );
}

/**
 * True when `deno compile` failed because it could not fetch the denort base runtime (no network, DNS,
 * proxy…), as opposed to a problem with the program.
 */
export function isRuntimeDownloadError(output: string): boolean {
  return /Setting up base binary|denort-[\w-]+\.zip|dl\.deno\.land/.test(output) &&
    /error sending request|dns error|Connect|timed out|Could not|failed to download|status/i.test(output);
}

/** git's stdout (untrimmed), or undefined when git fails or is missing. */
async function gitRaw(args: string[], cwd: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("git", { args, cwd, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : undefined;
  } catch {
    return undefined; // no git
  }
}

async function git(args: string[], cwd: string): Promise<string | undefined> {
  return (await gitRaw(args, cwd))?.trim();
}

/** `abc1234`, `abc1234+dirty`, or `unknown` outside a git checkout. */
export async function commitStamp(root: string): Promise<string> {
  const hash = await git(["rev-parse", "--short", "HEAD"], root);
  if (hash === undefined) return "unknown";
  const status = await git(["status", "--porcelain"], root);
  return status === undefined || status !== "" ? `${hash}+dirty` : hash;
}

export interface BuildOptions {
  /** Repository root (where mod.ts is). */
  readonly root: string;
  readonly bundle: boolean;
  readonly output: string;
  /** `deno compile --target` (cross-compiling), e.g. x86_64-unknown-linux-gnu. */
  readonly target?: string;
  /** The deno executable (default: the one running this script). */
  readonly deno?: string;
}

/** The `deno compile` / `deno bundle` argv (without the deno executable). */
export function buildArgs(o: BuildOptions): string[] {
  if (o.bundle) {
    return ["bundle", "--quiet", "--platform", "deno", "--packages", "bundle", "--output", o.output, ENTRY];
  }
  return [
    "compile",
    ...releaseRunFlags(),
    v8FlagsArg(),
    ...(o.target ? ["--target", o.target] : []),
    "--output",
    o.output,
    ENTRY,
  ];
}

/** Runs a command with its output streamed to stderr, and returns the exit code and the text it printed. */
async function runTee(cmd: string, args: string[], cwd: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      output += dec.decode(chunk, { stream: true });
      await Deno.stderr.write(chunk);
    }
  };
  const [status] = await Promise.all([child.status, pump(child.stdout), pump(child.stderr)]);
  return { code: status.code, output };
}

/** Builds; returns the process exit code (0 ok, 2 runtime not downloadable, 1 other failures). */
export async function build(o: BuildOptions): Promise<number> {
  const deno = o.deno ?? Deno.execPath();
  const infoPath = `${o.root}/${BUILD_INFO_PATH}`;
  // Restore the committed default (not whatever is on disk: a build killed mid-way leaves a stamp behind).
  const original = (await gitRaw(["show", `HEAD:${BUILD_INFO_PATH}`], o.root)) ??
    await Deno.readTextFile(infoPath);
  const commit = await commitStamp(o.root);
  const outDir = o.output.includes("/") ? o.output.slice(0, o.output.lastIndexOf("/")) : ".";
  await Deno.mkdir(outDir.startsWith("/") ? outDir : `${o.root}/${outDir}`, { recursive: true });
  const args = buildArgs(o);
  console.error(`raftkv build: commit ${commit}`);
  console.error(`raftkv build: ${[deno, ...args].join(" ")}`);
  let result: { code: number; output: string };
  try {
    await Deno.writeTextFile(infoPath, buildInfoSource(commit));
    result = await runTee(deno, args, o.root);
  } finally {
    await Deno.writeTextFile(infoPath, original);
  }
  if (result.code !== 0) {
    if (!o.bundle && isRuntimeDownloadError(result.output)) {
      console.error(
        "\nraftkv build: FAILED: `deno compile` could not download its base runtime (denort) from " +
          "dl.deno.land: this machine has no access to Deno's download server.\n" +
          "On a machine with internet access the same command works (the runtime is cached after the first " +
          "build). Without it, this works offline and needs no `deno` on PATH:\n" +
          `  ${Deno.execPath()} task install     (a \`raftkv\` launcher in ~/.local/bin: pinned Deno + the bundle)\n` +
          `  ${Deno.execPath()} task bundle      (just dist/raftkv.bundle.js)`,
      );
      return EXIT_RUNTIME_UNAVAILABLE;
    }
    console.error(`\nraftkv build: FAILED: deno ${args[0]} exited with ${result.code}`);
    return 1;
  }
  const outPath = o.output.startsWith("/") ? o.output : `${o.root}/${o.output}`;
  const size = (await Deno.stat(outPath)).size;
  console.error(`raftkv build: wrote ${o.output} (${(size / 1024 / 1024).toFixed(1)} MiB, commit ${commit})`);
  if (o.bundle) console.error(`run it with: ${deno} run ${releaseRunFlags().join(" ")} ${outPath} --help`);
  return 0;
}

const USAGE = "usage: deno run -A scripts/build.ts [--bundle] [--target TRIPLE] [--output PATH]";

/** Parses the script's arguments; throws with the usage on a bad one. */
export function parseBuildArgs(argv: readonly string[], root: string): BuildOptions {
  let bundle = false, target: string | undefined, output: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--bundle") bundle = true;
    else if (a === "--target") target = value();
    else if (a === "--output" || a === "-o") output = value();
    else if (a.startsWith("--target=")) target = a.slice("--target=".length);
    else if (a.startsWith("--output=")) output = a.slice("--output=".length);
    else throw new Error(`unknown argument "${a}"\n${USAGE}`);
  }
  if (bundle && target) throw new Error(`--target applies to the compiled binary, not --bundle\n${USAGE}`);
  return { root, bundle, target, output: output ?? (bundle ? DEFAULT_BUNDLE_OUTPUT : DEFAULT_BINARY_OUTPUT) };
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  let opts: BuildOptions;
  try {
    opts = parseBuildArgs(Deno.args, root);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(64);
  }
  Deno.exit(await build(opts));
}
