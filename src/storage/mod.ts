/**
 * raftkv storage: a node's durable, human-readable folder `DIR/logs_node_<id>/`.
 *
 * - `logs.txt`: one line per log entry, `NO-OP <term>` or `SET <key> <value> <term>` (fields quoted as JSON
 *   strings only when needed), then the client session and a CRC-32 (see README.md);
 * - `metadata.txt`: `key: value` lines (term, votedFor, commitLength, nodeId, clusterId), rewritten atomically;
 * - `dump.txt`: timestamped event lines for humans ({@link openDump});
 * - `lock`: held while a node uses the folder.
 *
 * {@link FileLogStore} persists what the Raft core's `Ready` asks for, durably, before messages leave;
 * {@link MemoryLogStore} is the same contract in memory for tests and the simulator.
 *
 * ```ts
 * import { FileLogStore } from "./mod.ts";
 * const store = await FileLogStore.open("/var/lib/raftkv", 2, "prod");
 * const { hardState, entries, commitIndex, warnings } = store.load();
 * await store.save({ hardState: { term: 1, votedFor: 2 }, appendFrom: 1, entries: [
 *   { index: 1, term: 1, command: { op: "noop" } },
 * ] });
 * await store.close();
 * ```
 *
 * @module
 */

export type { Command, Entry, HardState, NodeId, PersistedState } from "../raft/types.ts";
export { StorageError, type StorageErrorCode } from "./errors.ts";
export type { LoadedState, LogStore, SaveRequest } from "./log_store.ts";
export { FileLogStore, type FileLogStoreOptions } from "./file_store.ts";
export { MemoryDisk, MemoryLogStore } from "./memory_store.ts";
export { type Dump, type DumpOptions, formatJsonLine, openDump } from "./dump.ts";
export { encodeEntryHead, encodeEntryText, encodeToken } from "./codec.ts";
export { DUMP_FILE, LOCK_FILE, LOGS_FILE, METADATA_FILE, nodeFolder } from "./paths.ts";
