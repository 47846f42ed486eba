/**
 * Exponential back-off with "equal jitter": attempt `n` waits between half and all of
 * `min(maxMs, initialMs · 2ⁿ)`, so retrying clients spread out but never wait longer than the cap.
 *
 * @module
 */

export interface BackoffOptions {
  /** The first wait's upper bound (default 50 ms). */
  readonly initialMs?: number;
  /** The cap (default 500 ms). */
  readonly maxMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 50, maxMs: 500 };

/** The wait before retry number `attempt` (0-based); `random` returns [0, 1). */
export function backoffMs(
  attempt: number,
  opts: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initialMs = opts.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const maxMs = Math.max(initialMs, opts.maxMs ?? DEFAULT_BACKOFF.maxMs);
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return ceiling / 2 + random() * (ceiling / 2);
}
