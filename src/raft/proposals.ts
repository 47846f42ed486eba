/**
 * The leader's proposals in flight: which callers wait for which index, and the results that committed but
 * may not be released yet because the leader is not ready (rule 7).
 *
 * @module
 */
import type { Refusal, WriteOutcome, WriteResult } from "./types.ts";

export class Proposals {
  /** index → caller tags waiting for that entry to commit. */
  #pending = new Map<number, number[]>();
  /** Committed results held back until the leader is ready (rule 7). */
  #held: WriteResult[] = [];

  /** `tag` waits for the entry at `index`. */
  add(index: number, tag: number): void {
    const tags = this.#pending.get(index);
    if (tags) tags.push(tag);
    else this.#pending.set(index, [tag]);
  }

  /**
   * The entry at `index` committed and was applied, refused by the state machine when `refusal` is set: its
   * waiters' results (with what applying it did, `outcome`) are held until `release`.
   */
  committed(index: number, refusal?: Refusal, outcome?: WriteOutcome): void {
    const tags = this.#pending.get(index);
    if (!tags) return;
    this.#pending.delete(index);
    for (const tag of tags) {
      this.#held.push(
        refusal !== undefined
          ? { tag, index, ok: false, refusal }
          : { tag, index, ok: true, ...(outcome ? { outcome } : {}) },
      );
    }
  }

  get hasHeld(): boolean {
    return this.#held.length > 0;
  }

  /** The held results, handed over once (call only when the leader is ready). */
  release(): WriteResult[] {
    const out = this.#held;
    this.#held = [];
    return out;
  }

  /**
   * Leadership lost: every waiter, pending or held, is refused with `refusal`. A held result committed but was
   * never made visible: acknowledging it now could let a client read-after-write miss it at an old leader that
   * still holds its lease (sim seed 261). Its outcome is unknown to the client, which retries with the same
   * session; the state machine answers the retry without a new entry.
   */
  failAll(refusal: Refusal): WriteResult[] {
    const out: WriteResult[] = [];
    for (const [index, tags] of this.#pending) {
      for (const tag of tags) out.push({ tag, index, ok: false, refusal });
    }
    for (const r of this.#held) out.push({ tag: r.tag, index: r.index, ok: false, refusal });
    this.#pending = new Map();
    this.#held = [];
    return out;
  }

  /** For the invariant checks: the indexes waited for, and those of the held results. */
  indexes(): { pending: number[]; held: number[] } {
    return { pending: [...this.#pending.keys()], held: this.#held.map((r) => r.index) };
  }

  /** A new term: nothing is waiting. */
  clear(): void {
    this.#pending = new Map();
    this.#held = [];
  }
}
