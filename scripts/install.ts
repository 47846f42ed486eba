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

export async function install(root: string, binDir: string): Promise<number> {
  await Deno.mkdir(binDir, { recursive: true });
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
    else if (args[i].startsWith("--bin-dir=")) binDir = args[i].slice("--bin-dir=".length);
    else {
      console.error(`unknown argument "${args[i]}"\n${USAGE}`);
      Deno.exit(64);
    }
  }
  const initCwd = Deno.env.get("INIT_CWD");
  if (!binDir.startsWith("/")) binDir = `${initCwd ?? Deno.cwd()}/${binDir}`;
  Deno.exit(await install(root, binDir));
}
