/**
 * How to run this same program again (for `cluster`'s child nodes and for the commands it prints):
 *
 * - compiled (`deno compile`): the executable itself;
 * - from source: `deno run -A <repo>/mod.ts`;
 * - the bundle (`dist/raftkv.bundle.js`): `deno run <release permissions> <bundle>`.
 *
 * @module
 */
import { releaseRunFlags, v8FlagsArg } from "../ops/permissions.ts";

export interface SelfCommand {
  /** The executable. */
  readonly cmd: string;
  /** Arguments that come before raftkv's own (empty when compiled). */
  readonly args: readonly string[];
}

function basename(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}

function fromFileUrl(url: string): string {
  return decodeURIComponent(new URL(url).pathname);
}

/** True when running as a `deno compile` executable (the runtime is not a `deno` binary). */
export function isCompiled(execPath: string = Deno.execPath()): boolean {
  return !/^deno(\.exe)?$/i.test(basename(execPath));
}

/** The command line that starts this program. */
export function selfCommand(): SelfCommand {
  const exec = Deno.execPath();
  if (isCompiled(exec)) return { cmd: exec, args: [] };
  const here = import.meta.url;
  if (here.startsWith("file:") && here.endsWith("/src/cli/self_command.ts")) {
    // Deno finds deno.json (the import map) from mod.ts's folder, whatever the working directory.
    const root = fromFileUrl(new URL("../../", here).href).replace(/\/$/, "");
    return { cmd: exec, args: ["run", "-A", v8FlagsArg(), `${root}/mod.ts`] };
  }
  // Bundled: this code lives inside the main module.
  return { cmd: exec, args: ["run", ...releaseRunFlags(), v8FlagsArg(), fromFileUrl(Deno.mainModule)] };
}
