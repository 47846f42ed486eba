/**
 * The one hook between a node and its {@linkcode WatchHub}: collects the changes the KvStore applies and
 * publishes them when the node says the entries behind them are durable (after the Ready's save).
 *
 * @module
 */
import type { KvChange, KvStore } from "../kv/kv_store.ts";
import type { WatchHub } from "./watch_hub.ts";

export class WatchFeed {
  #pending: KvChange[] = [];

  /** Subscribes to `kv`'s changes; create it before the core replays the log, so the replay is retained. */
  constructor(private readonly kv: KvStore, readonly hub: WatchHub) {
    kv.onChange = (c) => this.#pending.push(c);
  }

  /** Publishes what was applied so far (call once the entries applied are committed and durable here). */
  flush(): void {
    if (this.#pending.length === 0 && this.kv.appliedIndex <= this.hub.lastIndex) return;
    const changes = this.#pending;
    this.#pending = [];
    this.hub.publish(changes, this.kv.appliedIndex);
  }
}
