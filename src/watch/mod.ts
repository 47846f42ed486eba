/**
 * WATCH: the node-side fan-out of committed changes (SET, DELETE, successful CAS) to watchers, with a bounded
 * history for resuming and a bounded buffer per watcher. See README.md for the rules.
 *
 * @example Feed a hub from a KvStore and watch a prefix
 * ```ts
 * import { KvStore } from "../kv/mod.ts";
 * import { WatchFeed, WatchHub } from "./mod.ts";
 * const kv = new KvStore();
 * const hub = new WatchHub({ firstIndex: 1 });
 * const feed = new WatchFeed(kv, hub);
 * const w = hub.open({ key: "cfg/", prefix: true, fromIndex: 0 });
 * kv.apply({ index: 1, term: 1, command: { op: "set", key: "cfg/a", value: "1", clientId: "", seq: 0 } });
 * feed.flush(); // after the entry is durable
 * if (!("end" in w)) console.log(await w.next()); // { events: [{ index: 1, op: "set", key: "cfg/a", value: "1" }] }
 * ```
 *
 * @module
 */
export {
  BATCH_MAX,
  DEFAULT_BUFFER_MAX,
  DEFAULT_HISTORY_MAX,
  DEFAULT_WATCHERS_MAX,
  type WatchEnd,
  Watcher,
  WatchHub,
  type WatchHubOptions,
  type WatchNext,
  type WatchSpec,
} from "./watch_hub.ts";
export { WatchFeed } from "./feed.ts";
