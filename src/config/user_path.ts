/**
 * Paths the user typed, made absolute against the folder they typed them in.
 *
 * `deno task` runs its command in the folder of deno.json, not the caller's; it sets `INIT_CWD` to the caller's
 * folder. So a relative path resolves against `$INIT_CWD` when set, else the working directory, and errors
 * can name the absolute path.
 *
 * @module
 */

/** `path` made absolute (normalised: no `.` or `..` parts). */
export function userPath(path: string): string {
  if (path.startsWith("/")) return normalise(path);
  let base: string | undefined;
  try {
    base = Deno.env.get("INIT_CWD") || undefined;
  } catch { /* no env permission: use the working directory */ }
  if (base === undefined) {
    try {
      base = Deno.cwd();
    } catch {
      return path;
    }
  }
  return normalise(`${base}/${path}`);
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
