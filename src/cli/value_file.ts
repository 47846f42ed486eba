/**
 * A SET value read from a file, shared by `raftkv client set <key> --value-file F` and the REPL's
 * `SET <key> --value-file F`: exactly the file's bytes (a trailing newline is part of the value), which must be
 * UTF-8 text. The size limit (`maxValueBytes`) is the cluster's, checked by the SET like any other value.
 *
 * @module
 */
import { CliError, EXIT_USAGE, userPath } from "./common.ts";

/** The bytes of a value as text; `from` names where they came from (a path, or `stdin`) in the refusal. */
export function decodeValue(bytes: Uint8Array, from: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new CliError(
      `the value from ${from} is not valid UTF-8 text (raftkv stores text values)`,
      EXIT_USAGE,
    );
  }
}

/** The file's bytes as the value (a relative path is the user's: see `userPath`). */
export async function readValueFile(file: string): Promise<string> {
  const from = userPath(file);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(from);
  } catch (e) {
    throw new CliError(`cannot read --value-file ${from}: ${e instanceof Error ? e.message : e}`, EXIT_USAGE);
  }
  return decodeValue(bytes, from);
}
