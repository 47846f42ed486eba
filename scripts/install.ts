/**
 * `deno task install [--bin-dir DIR]`: a fast local `raftkv` command, without `npx … task raftkv` (~2 s and a
 * `Task raftkv …` line per call) and without internet access (unlike `deno compile`).
 *
 * 1. Builds the bundle (`deno bundle`, offline) as `deno task bundle` does, into `DIR/raftkv.bundle.js`.
 * 2. Writes `DIR/raftkv` (default `$HOME/.local/bin/raftkv`): a short shell launcher that runs the bundle
 *    with the pinned Deno (this repo's scripts/deno/node_modules/.bin/deno when installed, else the Deno
 *    running this script) and the release permissions. The bundle lives next to it, so a rebuild or a
 *    `git clean` of the checkout does not break the command.
 *
 * Run it again after pulling changes.
 *
 * A missing DIR is created (with its parents, as `mkdir -p`; the output says so). A DIR it cannot install into
 * (a file, a path through a file, a folder it may not write or create) is refused before the build, with one
 * line naming the path, why, and what to pass instead: exit 1. A bad argument exits 64.
 *
 * @module
 */
import { releaseRunFlags, v8FlagsArg } from "../src/ops/permissions.ts";
import { build } from "./build.ts";

const USAGE = "usage: deno task install [--bin-dir DIR]   (default: $HOME/.local/bin)";

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The Deno binary the launcher runs: the repo's pinned one when present, else this one. */
export function pinnedDeno(root: string): string {
  for (const candidate of [`${root}/scripts/deno/node_modules/.bin/deno`]) {
    try {
      return Deno.realPathSync(candidate);
    } catch { /* not installed */ }
  }
  return Deno.realPathSync(Deno.execPath());
}

/** The launcher script's text. */
export function launcherText(deno: string, bundle: string): string {
  const run = [deno, "run", "--quiet", ...releaseRunFlags(), v8FlagsArg(), bundle].map(shellQuote).join(" ");
  return [
    "#!/bin/sh",
    "# raftkv launcher written by `deno task install`: the pinned Deno running the raftkv bundle.",
    `[ -x ${
      shellQuote(deno)
    } ] || { echo "raftkv: ${deno} is gone; run \\\`deno task install\\\` again" >&2; exit 1; }`,
    `exec ${run} "$@"`,
    "",
  ].join("\n");
}

/** A --bin-dir the launcher cannot go to; the message names the path, why, and what to pass instead. */
export class InstallError extends Error {
  override readonly name = "InstallError";
}

const DEFAULT_HINT = "(default: $HOME/.local/bin)";

/** `Permission denied` from `Permission denied (os error 13): mkdir '…'`. */
function reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/ \(os error \d+\).*$/s, "").split("\n")[0];
}

function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const i = trimmed.lastIndexOf("/");
  return i <= 0 ? "/" : trimmed.slice(0, i);
}

/**
 * Makes `binDir` (absolute) ready for the launcher and the bundle, before the build: creates it when missing
 * (resolves with `created DIR`, else undefined) and checks that it can write there. Throws
 * {@linkcode InstallError} when it cannot.
 */
export async function prepareBinDir(binDir: string): Promise<string | undefined> {
  const info = statOrUndefined(binDir);
  let note: string | undefined;
  if (info && !info.isDirectory) {
    throw new InstallError(
      `--bin-dir ${binDir} is a file, not a folder: pass the folder to put the raftkv command in, ` +
        `e.g. --bin-dir ${parentOf(binDir)}`,
    );
  }
  if (!info) {
    // The nearest existing ancestor: a file there means the path cannot be a folder.
    let existing = parentOf(binDir);
    while (existing !== "/" && !statOrUndefined(existing)) existing = parentOf(existing);
    if (!statOrUndefined(existing)?.isDirectory) {
      throw new InstallError(
        `--bin-dir ${binDir} cannot be created: ${existing} is a file, not a folder; pass a folder path ` +
          DEFAULT_HINT,
      );
    }
    try {
      await Deno.mkdir(binDir, { recursive: true });
    } catch (e) {
      throw new InstallError(
        `--bin-dir ${binDir} does not exist and cannot be created in ${existing} (${reason(e)}): ` +
          `pass a folder you can write to ${DEFAULT_HINT}`,
      );
    }
    note = `created ${binDir}`;
  }
  const probe = `${binDir}/.raftkv-install-probe-${Deno.pid}`;
  try {
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (e) {
    throw new InstallError(
      `--bin-dir ${binDir} is not writable (${reason(e)}): pass a folder you can write to ${DEFAULT_HINT}`,
    );
  }
  for (const name of ["raftkv", "raftkv.bundle.js"]) {
    if (statOrUndefined(`${binDir}/${name}`)?.isDirectory) {
      throw new InstallError(
        `--bin-dir ${binDir}: ${binDir}/${name} is a folder, which the launcher cannot replace: remove it ` +
          `or pass another --bin-dir`,
      );
    }
  }
  return note;
}

export async function install(root: string, binDir: string): Promise<number> {
  const created = await prepareBinDir(binDir);
  if (created) console.error(`raftkv install: ${created}`);
  const bundle = `${binDir}/raftkv.bundle.js`;
  const code = await build({ root, bundle: true, output: bundle });
  if (code !== 0) return code;
  const deno = pinnedDeno(root);
  const launcher = `${binDir}/raftkv`;
  const tmp = `${launcher}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, launcherText(deno, bundle), { mode: 0o755 });
  await Deno.chmod(tmp, 0o755);
  await Deno.rename(tmp, launcher);
  console.error(`raftkv install: wrote ${launcher} (runs ${bundle} with ${deno})`);
  const path = (Deno.env.get("PATH") ?? "").split(":");
  if (!path.includes(binDir)) {
    console.error(`raftkv install: ${binDir} is not on your PATH; add it: export PATH="${binDir}:$PATH"`);
  }
  console.error(`try: ${launcher} --version`);
  return 0;
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const args = [...Deno.args];
  let binDir = `${Deno.env.get("HOME") ?? root}/.local/bin`;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--bin-dir" && args[i + 1]) binDir = args[++i];
    else if (args[i].startsWith("--bin-dir=") && args[i].length > "--bin-dir=".length) {
      binDir = args[i].slice("--bin-dir=".length);
    } else if (args[i] === "--bin-dir" || args[i] === "--bin-dir=") {
      console.error(`--bin-dir needs a folder\n${USAGE}`);
      Deno.exit(64);
    } else {
      console.error(`unknown argument "${args[i]}"\n${USAGE}`);
      Deno.exit(64);
    }
  }
  const initCwd = Deno.env.get("INIT_CWD");
  if (!binDir.startsWith("/")) binDir = `${initCwd ?? Deno.cwd()}/${binDir}`;
  try {
    Deno.exit(await install(root, binDir));
  } catch (e) {
    // One line, no stack: a refused --bin-dir says what to pass; anything else (a full disk…) names its type.
    const what = e instanceof InstallError ? e.message : `${reason(e)} (${e instanceof Error ? e.name : e})`;
    console.error(`raftkv install: ${what}`);
    Deno.exit(1);
  }
}
