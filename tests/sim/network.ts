/**
 * The simulated network: per-message latency (a uniform base with a heavy tail, so messages reorder), loss,
 * duplication, and node↔node link cuts (symmetric or one-way partitions) and slow links.
 *
 * A cut is checked when a message is *sent*: what is already on the wire still arrives (it had passed the
 * point that broke). Client↔node links are never cut by node partitions (an isolated old leader stays
 * reachable by clients, which is what makes a stale lease dangerous); they only see latency and loss.
 *
 * @module
 */
import type { Prng } from "./prng.ts";

export interface NetworkOptions {
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
  /** Chance that a message also waits an exponential tail (heavy-tailed latency). */
  readonly tailChance: number;
  readonly tailMeanMs: number;
  readonly lossChance: number;
  readonly duplicateChance: number;
  /** Loss on client↔node links (so client timeouts happen). */
  readonly clientLossChance: number;
}

export class Network {
  /** blocked[from][to]: node `from` cannot reach node `to` (ids are 1-based). */
  readonly #blocked: boolean[][];
  /** Extra one-way latency on a link (a slow link). */
  readonly #extraMs: number[][];
  /** Extra loss on top of the options (a loss burst). */
  lossBurst = 0;
  /** Nodes whose client traffic is dropped (a client-side network problem; scenarios use it briefly). */
  readonly clientBlocked = new Set<number>();

  constructor(readonly nodeCount: number, readonly options: NetworkOptions, private readonly rng: Prng) {
    this.#blocked = Array.from(
      { length: nodeCount + 1 },
      () => new Array<boolean>(nodeCount + 1).fill(false),
    );
    this.#extraMs = Array.from({ length: nodeCount + 1 }, () => new Array<number>(nodeCount + 1).fill(0));
  }

  isBlocked(from: number, to: number): boolean {
    return this.#blocked[from][to];
  }

  cut(from: number, to: number): void {
    if (from !== to) this.#blocked[from][to] = true;
  }

  cutBoth(a: number, b: number): void {
    this.cut(a, b);
    this.cut(b, a);
  }

  /** Restores the link between `a` and `b`, both ways. */
  connect(a: number, b: number): void {
    this.#blocked[a][b] = false;
    this.#blocked[b][a] = false;
  }

  /** Cuts every link between the two groups, both ways. */
  partition(groupA: readonly number[], groupB: readonly number[]): void {
    for (const a of groupA) for (const b of groupB) this.cutBoth(a, b);
  }

  /** Cuts `id` off from every other node (`inbound`/`outbound` choose the directions). */
  isolate(id: number, inbound = true, outbound = true): void {
    for (let other = 1; other <= this.nodeCount; other++) {
      if (other === id) continue;
      if (outbound) this.cut(id, other);
      if (inbound) this.cut(other, id);
    }
  }

  slow(from: number, to: number, extraMs: number): void {
    this.#extraMs[from][to] = extraMs;
  }

  heal(): void {
    for (const row of this.#blocked) row.fill(false);
    for (const row of this.#extraMs) row.fill(0);
    this.lossBurst = 0;
    this.clientBlocked.clear();
  }

  /** True when some link is cut or slowed. */
  get disturbed(): boolean {
    return this.#blocked.some((row) => row.some((b) => b)) ||
      this.#extraMs.some((row) => row.some((x) => x > 0)) ||
      this.lossBurst > 0 || this.clientBlocked.size > 0;
  }

  #latency(): number {
    const o = this.options;
    let ms = this.rng.range(o.latencyMsMin, o.latencyMsMax);
    if (this.rng.chance(o.tailChance)) ms += this.rng.exponential(o.tailMeanMs);
    return ms;
  }

  /** Delays of the copies of one node→node message: [] when cut or lost, two entries when duplicated. */
  nodeDelays(from: number, to: number): number[] {
    if (this.#blocked[from][to]) return [];
    if (this.rng.chance(this.options.lossChance + this.lossBurst)) return [];
    const extra = this.#extraMs[from][to];
    const out = [this.#latency() + extra];
    if (this.rng.chance(this.options.duplicateChance)) out.push(this.#latency() + extra);
    return out;
  }

  /** Delay of one message between a client and node `node`, or undefined when lost. */
  clientDelay(node: number): number | undefined {
    if (this.clientBlocked.has(node)) return undefined;
    if (this.rng.chance(this.options.clientLossChance)) return undefined;
    return this.#latency();
  }

  /** The cut links as `a->b` pairs (symmetric ones as `a<->b`), for transcripts. */
  describeCuts(): string {
    const parts: string[] = [];
    for (let a = 1; a <= this.nodeCount; a++) {
      for (let b = 1; b <= this.nodeCount; b++) {
        if (!this.#blocked[a][b]) continue;
        if (this.#blocked[b][a]) {
          if (a < b) parts.push(`${a}<->${b}`);
        } else parts.push(`${a}->${b}`);
      }
    }
    return parts.length === 0 ? "none" : parts.join(" ");
  }
}
