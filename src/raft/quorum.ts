/**
 * Quorum counting: how many voters make a majority, the index a majority holds, and the votes of a campaign.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

/** A majority of `voters` voters. */
export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The highest index that at least `quorum` of `matches` (one per voter, the leader's own included) have
 * reached: the `quorum`-th largest.
 */
export function quorumIndex(matches: readonly number[], quorum: number): number {
  const sorted = [...matches].sort((a, b) => b - a);
  return sorted[quorum - 1];
}

/** The grants collected by one campaign (PreVote or real), the candidate's own included. */
export class VoteCount {
  readonly #granted: Set<NodeId>;

  constructor(self: NodeId, private readonly quorum: number) {
    this.#granted = new Set([self]);
  }

  grant(from: NodeId): void {
    this.#granted.add(from);
  }

  get won(): boolean {
    return this.#granted.size >= this.quorum;
  }
}
