/**
 * Paths the user typed, made absolute against the folder they typed them in.
 *
 * `deno task` runs its command in the folder of deno.json, not the caller's; it sets `INIT_CWD` to the caller's
 * folder. So a relative path resolves against `$INIT_CWD` when this process was started by `deno task` (its
 * working directory is the repo root), else against the working directory; errors can name the absolute path.
 *
 * @module
 */

/** `path` made absolute (normalised: no `.` or `..` parts). */
export function userPath(path: string): string {
  if (path.startsWith("/")) return normalise(path);
  let cwd: string;
  try {
    cwd = Deno.cwd();
  } catch {
    return path;
  }
  return normalise(`${taskCaller(cwd) ?? cwd}/${path}`);
}

/** The repo root (where deno.json and mod.ts live) when running from source. */
const SOURCE_ROOT = import.meta.url.startsWith("file:")
  ? normalise(decodeURIComponent(new URL("../../", import.meta.url).pathname))
  : undefined;

/**
 * `$INIT_CWD`, but only when this process is the one `deno task` started: its working directory is then the
 * repo root. A process started elsewhere (by a test, by `raftkv cluster`) may inherit a stale INIT_CWD from an
 * ancestor task and must use its own working directory.
 */
function taskCaller(cwd: string): string | undefined {
  let init: string | undefined;
  try {
    init = Deno.env.get("INIT_CWD") || undefined;
  } catch {
    return undefined; // no permission to read it (a release build lists what it reads)
  }
  if (init === undefined || SOURCE_ROOT === undefined || normalise(cwd) !== SOURCE_ROOT) return undefined;
  return init;
}

function normalise(path: string): string {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return `/${parts.join("/")}`;
}
