/**
 * The REPL's line grammar:
 *
 * ```text
 * SET <key> <value>   value = the rest of the line (spaces kept inside, trimmed at both ends),
 *                     or one "quoted string" (JSON escapes: \" \\ \n \t \uXXXX) for exact text
 * SET <key> --value-file <file>   the value is the file's bytes, as `raftkv client set --value-file` reads them
 * GET <key>           key = a bare word or a "quoted string"
 * DEL <key>
 * CAS <key> <expected> <new>   expected: a value, @absent (the key must not exist) or @v=<version>
 * LIST [<prefix>]     keys (and values) under the prefix, in key order
 * WATCH <key> [<from-index>]   changes as they commit, until Ctrl-C; `<prefix>*` (bare) watches a prefix
 * help | ?            exit | quit
 * ```
 * Command words are case-insensitive; an empty line or one starting with `#` does nothing.
 * Quoted output of the REPL (e.g. `"a b"`) can be pasted back as input.
 *
 * @module
 */

export type ReplCommand =
  | { readonly kind: "set"; readonly key: string; readonly value: string }
  | { readonly kind: "setFile"; readonly key: string; readonly file: string }
  | { readonly kind: "get"; readonly key: string }
  | { readonly kind: "del"; readonly key: string }
  | { readonly kind: "cas"; readonly key: string; readonly expect: CasExpect; readonly value: string }
  | { readonly kind: "list"; readonly prefix: string }
  | { readonly kind: "watch"; readonly key: string; readonly prefix: boolean; readonly fromIndex: number }
  | { readonly kind: "help" }
  | { readonly kind: "exit" }
  | { readonly kind: "empty" }
  | { readonly kind: "error"; readonly message: string };

import type { CasExpect } from "../raft/types.ts";

export const REPL_HELP = [
  "commands:",
  '  SET <key> <value>   store value (the rest of the line; or a "quoted string" for exact text)',
  "  SET <key> --value-file <file>  store the file's bytes (UTF-8 text, up to the cluster's maxValueBytes;",
  '                      a path with spaces in "quotes"; SET k "--value-file x" stores that text)',
  '  GET <key>           print the value ("" when the key does not exist)',
  "  DEL <key>           remove the key",
  "  CAS <key> <expected> <new>  write <new> iff the key holds <expected>; <expected> may be @absent",
  "                      (the key must not exist) or @v=<version>; a failed CAS shows the current value",
  "  LIST [<prefix>]     keys and values under the prefix, in key order",
  "  WATCH <key> [<from-index>]  print changes as they commit until Ctrl-C; <prefix>* watches a prefix",
  "  help                this text",
  "  exit                quit (or Ctrl-D)",
  'keys and values with spaces: SET "my key" "two  spaces" ; GET "my key"',
  "from a pipe (printf 'SET a 1\\nGET a\\n' | raftkv client): every line runs, then the exit code is 0 if all",
  "  succeeded, else the first failure's, as the one-shot command: 1 failed, 2 not a command, 3 CAS did not hold",
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

/** Every token from `at` to the end of the line. */
function readTokens(
  line: string,
  at: number,
): { tokens: { text: string; quoted: boolean }[] } | { error: string } {
  const tokens: { text: string; quoted: boolean }[] = [];
  let i = skipSpaces(line, at);
  while (i < line.length) {
    const quoted = line[i] === '"';
    const t = readToken(line, i);
    if ("error" in t) return t;
    tokens.push({ text: t.text, quoted });
    const next = skipSpaces(line, t.end);
    if (next === t.end && next < line.length) return { error: "put a space between the words" };
    i = next;
  }
  return { tokens };
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
    case "del":
    case "delete": {
      const args = readTokens(line, at);
      if ("error" in args) return { kind: "error", message: args.error };
      if (args.tokens.length !== 1) {
        return { kind: "error", message: 'usage: DEL <key> (quote a key with spaces: "my key")' };
      }
      return { kind: "del", key: args.tokens[0].text };
    }
    case "cas": {
      const args = readTokens(line, at);
      if ("error" in args) return { kind: "error", message: args.error };
      if (args.tokens.length !== 3) {
        return {
          kind: "error",
          message: "usage: CAS <key> <expected> <new> (expected: a value, @absent or @v=<n>)",
        };
      }
      const [key, expected, value] = args.tokens;
      let expect: CasExpect = { value: expected.text };
      if (!expected.quoted && expected.text.startsWith("@")) {
        const m = /^@v=(\d{1,15})$/.exec(expected.text);
        if (expected.text === "@absent") expect = { version: 0 };
        else if (m) expect = { version: Number(m[1]) };
        else {return {
            kind: "error",
            message: `"${expected.text}": use @absent, @v=<version>, or quote a value starting with @`,
          };}
      }
      return { kind: "cas", key: key.text, expect, value: value.text };
    }
    case "list":
    case "ls": {
      const args = readTokens(line, at);
      if ("error" in args) return { kind: "error", message: args.error };
      if (args.tokens.length > 1) return { kind: "error", message: "usage: LIST [<prefix>]" };
      return { kind: "list", prefix: args.tokens[0]?.text ?? "" };
    }
    case "watch": {
      const args = readTokens(line, at);
      if ("error" in args) return { kind: "error", message: args.error };
      const [key, from] = args.tokens;
      if (key === undefined || args.tokens.length > 2 || (from && !/^\d{1,15}$/.test(from.text))) {
        return {
          kind: "error",
          message: "usage: WATCH <key> [<from-index>]  (<prefix>* for a prefix, * for all)",
        };
      }
      const prefix = !key.quoted && key.text.endsWith("*");
      return {
        kind: "watch",
        key: prefix ? key.text.slice(0, -1) : key.text,
        prefix,
        fromIndex: from ? Number(from.text) : 0,
      };
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
      if (
        line.startsWith("--value-file", valueAt) &&
        (line.length === valueAt + 12 || /\s/.test(line[valueAt + 12]))
      ) {
        // As the one-shot `client set <key> --value-file F`; a quoted "--value-file …" stays a value.
        const args = readTokens(line, valueAt + 12);
        if ("error" in args) return { kind: "error", message: args.error };
        if (args.tokens.length !== 1) {
          return {
            kind: "error",
            message: 'usage: SET <key> --value-file <file> (quote a path with spaces: "a b")',
          };
        }
        return { kind: "setFile", key: key.text, file: args.tokens[0].text };
      }
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
