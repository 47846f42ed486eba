/**
 * Durations on the command line: `500ms`, `5s`, `1.5s`, `1m`, `1h`, and sums such as `1m30s`.
 *
 * @module
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Thrown for text that is not a duration; the message says what is accepted. */
export class DurationError extends Error {
  override readonly name = "DurationError";
}

/** Milliseconds in `text` (e.g. `"5s"` → 5000). A bare number is refused: the unit must be explicit. */
export function parseDuration(text: string): number {
  const s = text.trim();
  const example = "use a number with a unit: ms, s, m or h (e.g. 500ms, 5s, 1m, 1m30s)";
  if (s === "") throw new DurationError(`empty duration; ${example}`);
  if (/^\d+(\.\d+)?$/.test(s)) throw new DurationError(`"${text}" has no unit; ${example}`);
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < s.length) {
    part.lastIndex = at;
    const m = part.exec(s);
    if (!m) throw new DurationError(`"${text}" is not a duration; ${example}`);
    total += Number(m[1]) * UNIT_MS[m[2]];
    at = part.lastIndex;
  }
  if (!Number.isFinite(total)) throw new DurationError(`"${text}" is too large`);
  return total;
}

/** A short human form: `800 ms`, `5 s`, `1.5 s`, `2 m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(2))} s`;
  return `${Number((ms / 60_000).toFixed(2))} m`;
}
