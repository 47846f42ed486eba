/**
 * Rendering a node's log for `admin dump-log`: one entry per line with its index (logs.txt's wording and
 * string encoding, `encodeEntryHead`), and a marker line after the last committed entry.
 *
 * ```text
 *  1  NO-OP 1
 *  2  SET name1 Jon 1
 * ---- commit index 2 ----
 *  3  SET name2 "two words" 1
 * ```
 *
 * @module
 */
import type { Entry } from "../raft/types.ts";
import { encodeEntryHead } from "../storage/codec.ts";

export function commitMarker(commitIndex: number): string {
  return `---- commit index ${commitIndex} ----`;
}

/** The text form: the marker goes after the last entry with index ≤ commitIndex (first when there is none). */
export function renderLog(entries: readonly Entry[], commitIndex: number): string {
  if (entries.length === 0) return `(no entries)\n${commitMarker(commitIndex)}`;
  const width = String(entries[entries.length - 1].index).length;
  const lines: string[] = [];
  let marked = false;
  if (entries[0].index > commitIndex) {
    lines.push(commitMarker(commitIndex));
    marked = true;
  }
  entries.forEach((e, i) => {
    lines.push(`${String(e.index).padStart(width)}  ${encodeEntryHead(e)}`);
    const next = entries[i + 1];
    if (!marked && e.index <= commitIndex && (next === undefined || next.index > commitIndex)) {
      lines.push(commitMarker(commitIndex));
      marked = true;
    }
  });
  return lines.join("\n");
}

/** The `--json` form of one entry: index, term, op, key/value/clientId/seq for SET, and the text. */
export function entryJson(e: Entry): Record<string, unknown> {
  const c = e.command;
  const base = { index: e.index, term: e.term };
  if (c.op === "config") return { ...base, op: "CONFIG", membership: c.membership, text: encodeEntryHead(e) };
  if (c.op === "noop") return { ...base, op: "NO-OP", text: encodeEntryHead(e) };
  return {
    ...base,
    op: c.op.toUpperCase(),
    key: c.key,
    ...(c.op === "cas"
      ? ("version" in c.expect ? { expectedVersion: c.expect.version } : { expected: c.expect.value })
      : {}),
    ...(c.op === "del" ? {} : { value: c.value }),
    clientId: c.clientId,
    seq: c.seq,
    text: encodeEntryHead(e),
  };
}
