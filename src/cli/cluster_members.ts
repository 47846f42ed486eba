/**
 * Which nodes `raftkv cluster` starts: the members of the latest configuration its nodes' folders hold, not
 * only cluster.json's list. cluster.json is the bootstrap configuration; after `admin add-node --replace 3`
 * the members live in the log (a `CONFIG` entry in logs.txt, or the `CONFIG` line of snapshot.txt once the
 * log was compacted past it; docs/operations.md §7). Starting cluster.json's list again would bring the
 * replaced node back from its stale (or deleted) folder, and leave the new one down.
 *
 * The rules ({@linkcode planNodes}):
 * - no folder holds a configuration entry: cluster.json's nodes, as before;
 * - a node of cluster.json that is no member of the latest configuration (nor an outgoing voter of a joint
 *   one) is not started, and named;
 * - a member missing from cluster.json (the replacement) is started with `--join --address <its address>`
 *   (as docs/operations.md says to restart a joined node) when its folder is in the data dir; without a
 *   folder there it is named, not started: an empty folder would make a voter that forgot its votes.
 *
 * The latest configuration is the one with the highest (term, index) among the folders' own latest ones (a
 * node uses the latest in its log, committed or not); a folder that cannot be read is skipped (the node
 * itself refuses to start on it, naming the damage).
 *
 * @module
 */
import type { ClusterConfig } from "../config/cluster_config.ts";
import type { Member, Membership } from "../raft/membership.ts";
import { parseLog } from "../storage/file_log.ts";
import { LOGS_FILE, nodeFolder } from "../storage/paths.ts";
import { readSnapshotFile, snapshotPath } from "../storage/snapshot_file.ts";

/** A configuration found in a node's folder. */
export interface FolderConfiguration {
  /** The node whose folder holds it. */
  readonly nodeId: number;
  /** Log index of the configuration entry. */
  readonly index: number;
  /** Its term (for a snapshot's CONFIG line: the snapshot's term, which is at least the entry's). */
  readonly term: number;
  readonly membership: Membership;
}

/** One node to start. */
export interface NodeToStart {
  readonly id: number;
  readonly address: string;
  /** Not in cluster.json: started with `--join --address`. */
  readonly join: boolean;
}

export interface NodePlan {
  readonly start: readonly NodeToStart[];
  /** Nodes of cluster.json that are no longer members (not started). */
  readonly removed: readonly number[];
  /** Members missing from cluster.json without a folder in the data dir (not started). */
  readonly notHere: readonly Member[];
  /** The configuration the plan follows (undefined: cluster.json's). */
  readonly latest?: FolderConfiguration;
}

const NO_SINK = { header() {}, session() {}, pair() {} };

function isNewer(a: FolderConfiguration, b: FolderConfiguration | undefined): boolean {
  return b === undefined || a.term > b.term || (a.term === b.term && a.index > b.index);
}

/** The `logs_node_<id>` folders of `dataDir`, by id. */
function nodeIdsWithFolders(dataDir: string): number[] {
  try {
    return [...Deno.readDirSync(dataDir)]
      .map((e) => (e.isDirectory ? /^logs_node_(\d+)$/.exec(e.name) : null))
      .filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/** The latest configuration in one node's folder: its log's last CONFIG entry, else its snapshot's. */
async function folderConfiguration(
  dataDir: string,
  nodeId: number,
): Promise<FolderConfiguration | undefined> {
  const folder = nodeFolder(dataDir, nodeId);
  try {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await Deno.readFile(`${folder}/${LOGS_FILE}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (bytes !== undefined) {
      const entries = parseLog(bytes, `${folder}/${LOGS_FILE}`, 0).entries;
      for (let i = entries.length - 1; i >= 0; i--) {
        const c = entries[i].command;
        if (c.op === "config") {
          return { nodeId, index: entries[i].index, term: entries[i].term, membership: c.membership };
        }
      }
    }
    const header = await readSnapshotFile(snapshotPath(folder), NO_SINK);
    if (header?.config) {
      return { nodeId, index: header.config.index, term: header.term, membership: header.config.membership };
    }
  } catch {
    // Unreadable or damaged: the node refuses to start on it and says why; it tells us nothing here.
  }
  return undefined;
}

/** The latest configuration any node folder in `dataDir` holds, or undefined when none holds one. */
export async function latestConfiguration(dataDir: string): Promise<FolderConfiguration | undefined> {
  let latest: FolderConfiguration | undefined;
  for (const id of nodeIdsWithFolders(dataDir)) {
    const found = await folderConfiguration(dataDir, id);
    if (found && isNewer(found, latest)) latest = found;
  }
  return latest;
}

/** The nodes to start (see the module's rules). */
export function planNodes(
  config: ClusterConfig,
  dataDir: string,
  latest: FolderConfiguration | undefined,
): NodePlan {
  if (latest === undefined) {
    return { start: config.nodes.map((n) => ({ ...n, join: false })), removed: [], notHere: [] };
  }
  const members = new Set([
    ...latest.membership.members.map((m) => m.id),
    ...latest.membership.outgoingVoters ?? [],
  ]);
  const configured = new Set(config.nodes.map((n) => n.id));
  const haveFolder = new Set(nodeIdsWithFolders(dataDir));
  const start: NodeToStart[] = config.nodes.filter((n) => members.has(n.id)).map((n) => ({
    ...n,
    join: false,
  }));
  const removed = config.nodes.filter((n) => !members.has(n.id)).map((n) => n.id);
  const notHere: Member[] = [];
  for (const m of latest.membership.members) {
    if (configured.has(m.id)) continue;
    if (haveFolder.has(m.id) && m.address !== "") start.push({ id: m.id, address: m.address, join: true });
    else notHere.push(m);
  }
  return { start, removed, notHere, latest };
}
