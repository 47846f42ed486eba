/**
 * The one error type of the storage layer.
 *
 * @module
 */

/**
 * Why a storage operation failed:
 * - `corrupt`: a file fails its checksum or does not parse (the message names the file and line);
 * - `foreign`: the folder belongs to another node id or cluster;
 * - `locked`: another process (or another open store) holds the folder;
 * - `invalid`: the caller asked for something the log cannot do (a gap, a decreasing term, ...);
 * - `closed`: the store was closed;
 * - `failed`: an earlier I/O error left the files in an unknown state; the store refuses further writes;
 * - `io`: an I/O error (the cause is attached).
 */
export type StorageErrorCode = "corrupt" | "foreign" | "locked" | "invalid" | "closed" | "failed" | "io";

/** A storage failure. `path` and `line` (1-based) are set when a specific file and line are at fault. */
export class StorageError extends Error {
  /** Always `"StorageError"`. */
  override readonly name = "StorageError";
  /** What kind of failure this is. */
  readonly code: StorageErrorCode;
  /** The file at fault, when one is. */
  readonly path?: string;
  /** The 1-based line at fault in `path`, when one is. */
  readonly line?: number;

  /** Builds an error; `cause` is attached as the standard `Error.cause`. */
  constructor(
    code: StorageErrorCode,
    message: string,
    options?: { path?: string; line?: number; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options?.path !== undefined) this.path = options.path;
    if (options?.line !== undefined) this.line = options.line;
  }
}
