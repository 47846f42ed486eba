/**
 * The key-value state machine raftkv replicates.
 *
 * ```ts
 * import { KvStore } from "./mod.ts";
 * const kv = new KvStore();
 * kv.apply({ index: 1, term: 1, command: { op: "set", key: "k", value: "v", clientId: "c1", seq: 1 } });
 * kv.get("k"); // "v"
 * ```
 * @module
 */
export { DEFAULT_KV_LIMITS, KvStore } from "./kv_store.ts";
export type { KvLimits, KvRestore, KvSnapshot } from "./kv_store.ts";
export { FrozenMap, type FrozenView } from "./frozen_map.ts";
