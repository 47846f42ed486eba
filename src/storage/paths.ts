/**
 * Where a node's files live: `DIR/logs_node_<id>/{logs.txt, metadata.txt, dump.txt, lock}`.
 *
 * @module
 */

/** Joins path segments with `/` (the product runs on Linux). */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** The folder of node `nodeId` under the data directory `dir`. */
export function nodeFolder(dir: string, nodeId: number): string {
  return joinPath(dir, `logs_node_${nodeId}`);
}

/** The parent directory of `path` (`.` when it has none). */
export function parentDir(path: string): string {
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  const slash = trimmed.lastIndexOf("/");
  if (slash < 0) return ".";
  return slash === 0 ? "/" : trimmed.slice(0, slash);
}

/** The log, one entry per line. */
export const LOGS_FILE = "logs.txt";
/** Term, vote, commit hint and identity. */
export const METADATA_FILE = "metadata.txt";
/** Timestamped event lines for humans. */
export const DUMP_FILE = "dump.txt";
/** Held (flock) while a node uses the folder. */
export const LOCK_FILE = "lock";
/** The state machine as of one log index (see snapshot_file.ts). */
export const SNAPSHOT_FILE = "snapshot.txt";
