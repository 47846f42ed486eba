/**
 * A plain-text table: a header row, columns padded to their widest cell, two spaces between columns, no
 * colours or box characters (so it reads the same in a terminal, a log and a test).
 *
 * @module
 */

export interface Column {
  readonly header: string;
  /** Numbers read better right-aligned (default "left"). */
  readonly align?: "left" | "right";
}

/** Renders `rows` (cells already as text) under `columns`; lines end without trailing spaces. */
export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? "";
        return c.align === "right" ? cell.padStart(widths[i]) : cell.padEnd(widths[i]);
      })
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...rows.map(line)].join("\n");
}
