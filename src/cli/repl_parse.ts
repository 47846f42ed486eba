/**
 * The REPL's line grammar:
 *
 * ```text
 * SET <key> <value>   value = the rest of the line (spaces kept inside, trimmed at both ends),
 *                     or one "quoted string" (JSON escapes: \" \\ \n \t \uXXXX) for exact text
 * GET <key>           key = a bare word or a "quoted string"
 * help | ?            exit | quit
 * ```
 * Command words are case-insensitive; an empty line or one starting with `#` does nothing.
 * Quoted output of the REPL (e.g. `"a b"`) can be pasted back as input.
 *
 * @module
 */

export type ReplCommand =
  | { readonly kind: "set"; readonly key: string; readonly value: string }
  | { readonly kind: "get"; readonly key: string }
  | { readonly kind: "help" }
  | { readonly kind: "exit" }
  | { readonly kind: "empty" }
  | { readonly kind: "error"; readonly message: string };

export const REPL_HELP = [
  "commands:",
  '  SET <key> <value>   store value (the rest of the line; or a "quoted string" for exact text)',
  '  GET <key>           print the value ("" when the key does not exist)',
  "  help                this text",
  "  exit                quit (or Ctrl-D)",
  'keys and values with spaces: SET "my key" "two  spaces" ; GET "my key"',
].join("\n");

/** Reads a `"…"` string starting at `at` (which holds the opening quote); returns it and the index after. */
function readQuoted(line: string, at: number): { text: string; end: number } | { error: string } {
  let i = at + 1;
  while (i < line.length) {
    const c = line[i];
    if (c === "\\") i += 2;
    else if (c === '"') {
      try {
        return { text: JSON.parse(line.slice(at, i + 1)) as string, end: i + 1 };
      } catch {
        return { error: `bad escape in ${line.slice(at, i + 1)} (use \\" \\\\ \\n \\t \\uXXXX)` };
      }
    } else i++;
  }
  return { error: 'unterminated quoted string (missing closing ")' };
}

/** Reads a key (bare word or quoted string) at `at` (no leading spaces). */
function readToken(line: string, at: number): { text: string; end: number } | { error: string } {
  if (line[at] === '"') return readQuoted(line, at);
  let end = at;
  while (end < line.length && !/\s/.test(line[end])) end++;
  return { text: line.slice(at, end), end };
}

function skipSpaces(line: string, at: number): number {
  while (at < line.length && /\s/.test(line[at])) at++;
  return at;
}

/** Parses one REPL line. */
export function parseReplLine(line: string): ReplCommand {
  let at = skipSpaces(line, 0);
  if (at === line.length || line[at] === "#") return { kind: "empty" };
  const wordEnd = readToken(line, at);
  if ("error" in wordEnd) return { kind: "error", message: wordEnd.error };
  const word = wordEnd.text.toLowerCase();
  at = skipSpaces(line, wordEnd.end);
  const rest = line.slice(at);
  switch (word) {
    case "help":
    case "?":
      return { kind: "help" };
    case "exit":
    case "quit":
    case "\\q":
      return { kind: "exit" };
    case "get": {
      if (rest.trim() === "") return { kind: "error", message: "usage: GET <key>" };
      const key = readToken(line, at);
      if ("error" in key) return { kind: "error", message: key.error };
      if (skipSpaces(line, key.end) !== line.length) {
        return {
          kind: "error",
          message: 'GET takes one key; quote a key with spaces: GET "my key"',
        };
      }
      return { kind: "get", key: key.text };
    }
    case "set": {
      if (rest.trim() === "") return { kind: "error", message: "usage: SET <key> <value>" };
      const key = readToken(line, at);
      if ("error" in key) return { kind: "error", message: key.error };
      const valueAt = skipSpaces(line, key.end);
      if (valueAt === line.length) {
        return { kind: "error", message: 'usage: SET <key> <value> (SET k "" for empty)' };
      }
      if (valueAt === key.end) return { kind: "error", message: "put a space between the key and the value" };
      if (line[valueAt] === '"') {
        const value = readQuoted(line, valueAt);
        if ("error" in value) return { kind: "error", message: value.error };
        if (skipSpaces(line, value.end) === line.length) {
          return { kind: "set", key: key.text, value: value.text };
        }
        // A quote that does not span the rest: take the rest of the line literally (`"hi" she said`).
      }
      return { kind: "set", key: key.text, value: line.slice(valueAt).trimEnd() };
    }
    default:
      return { kind: "error", message: `unknown command "${wordEnd.text}" (type help)` };
  }
}
