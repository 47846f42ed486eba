/**
 * Gives the C allocator's free memory back to the system: glibc's `malloc_trim(0)`, called through FFI.
 *
 * Why: the Deno runtime (Rust: gRPC/HTTP/2 buffers, file I/O, V8's own malloc'd tables) allocates with glibc's
 * malloc, and glibc keeps what is freed in its arenas instead of returning it: after a burst of writes the
 * main arena (`[heap]` in /proc/<pid>/smaps) held 25–33 MiB of a node's RSS against ~10 MiB idle, although V8's
 * heap was back to its idle size. `malloc_trim(0)` releases the free pages of every arena (the top by
 * shrinking, the rest with `madvise(MADV_DONTNEED)`): measured with gdb on nodes after 300,000 SETs, [heap] went
 * from 24.8–33.0 to 13.0–17.6 MiB and RSS down by 10–15 MiB (docs/operations.md "Memory"). It takes a few ms;
 * src/ops/idle_gc.ts calls it right after its idle collection, never while writes flow.
 *
 * Fails soft: another OS, a libc without `malloc_trim` (musl), no glibc at any of {@linkcode LIBC_PATHS}, or
 * no FFI permission for it (the release permissions grant `--allow-ffi` for exactly those paths,
 * src/ops/permissions.ts) → {@linkcode openMallocTrim} says why and the node simply does not trim. The
 * permission is queried, never requested: a node never prompts.
 *
 * @module
 */

/** What {@linkcode openMallocTrim} found: a trim function, or why there is none. */
export type MallocTrim =
  | { readonly trim: () => boolean; readonly unavailable?: undefined }
  | { readonly trim?: undefined; readonly unavailable: string };

/**
 * Where glibc's `libc.so.6` lives on the Linux distributions raftkv is deployed on (Debian/Ubuntu multiarch for
 * x86-64 and arm64, then Fedora/RHEL). Absolute paths, because Deno's `--allow-ffi=<path>` grant matches the
 * path given to `Deno.dlopen` (a bare soname would be resolved against the working directory).
 */
export const LIBC_PATHS: readonly string[] = [
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
  "/usr/lib/aarch64-linux-gnu/libc.so.6",
  "/lib64/libc.so.6",
  "/usr/lib64/libc.so.6",
];

/** Opens `malloc_trim` from glibc; `trim()` returns true when memory was given back. */
export function openMallocTrim(): MallocTrim {
  if (Deno.build.os !== "linux") return { unavailable: `not Linux (${Deno.build.os}): no glibc malloc_trim` };
  if (typeof Deno.dlopen !== "function") return { unavailable: "this Deno has no FFI (Deno.dlopen)" };
  const granted = LIBC_PATHS.filter((path) => {
    try {
      return Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
    } catch {
      return false;
    }
  });
  if (granted.length === 0) return { unavailable: `no FFI permission for ${LIBC_PATHS[0]} (--allow-ffi)` };
  const path = granted.find(exists);
  if (path === undefined) return { unavailable: `no glibc at ${granted.join(", ")}` };
  try {
    const lib = Deno.dlopen(path, { malloc_trim: { parameters: ["usize"], result: "i32" } });
    return { trim: () => lib.symbols.malloc_trim(0n) === 1 };
  } catch (e) {
    // not glibc after all (musl has no malloc_trim)
    return { unavailable: `${path}: no malloc_trim (${e instanceof Error ? e.message : String(e)})` };
  }
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false; // absent, or not readable: not ours to load
  }
}
