/**
 * Gives back the node's cold executable pages: `madvise(MADV_DONTNEED)` on the deno executable's read-only
 * mappings that hold no private page (its code and read-only data), called through FFI to glibc like
 * `malloc_trim` (src/ops/malloc_trim.ts, same permission). The rule and its reasons: src/ops/README.md.
 *
 * Why: ~62 MiB of an idle node's ~95 MB RSS are pages of the deno executable mapped from disk (RssFile), most
 * of them touched only while the process starts (module loading, transpiling, V8's start-up snapshot,
 * ICU tables, CLI parsing) and never again. They stay mapped into the process, and counted in its RSS, until
 * it exits. `MADV_DONTNEED` unmaps them: the pages leave the node's resident set and stay in the kernel's
 * page cache as ordinary, unmapped (hence easily reclaimed) file cache; a page the node uses again faults
 * back in from the cache (a minor fault, no disk read while the cache holds it). Measured in
 * docs/operations.md "Memory" and docs/benchmarks.md (with and without, and the faults it costs).
 *
 * **The safety rule** ({@linkcode releasable}): only mappings that are
 * 1. of the deno executable itself (/proc/self/exe, by default; a regular file's path, never `[heap]`,
 *    `[stack]`, an anonymous, `(deleted)`, device or memfd mapping),
 * 2. NOT writable (no `w` in their permissions), and
 * 3. hold NO anonymous page (`Anonymous: 0 kB` in /proc/self/smaps).
 *
 * On a private file mapping (`MAP_PRIVATE`) a page the process has written is a copy-on-write private page
 * (counted as `Anonymous`); `MADV_DONTNEED` throws such a page away and the next read sees the file's
 * original bytes again: the process silently loses what it wrote. That is the case of `.data` (writable) and
 * of RELRO (relocated at load, then made read-only: `r--p` with `Anonymous` > 0, e.g. 2.3 MiB of the deno
 * executable). Rules 2 and 3 exclude them; rule 3 alone would be enough today, rule 2 also keeps out any
 * writable mapping whose first write has not happened yet when smaps is read. What is released holds only
 * the file's own bytes, which the kernel reads back identical. Rule 1 closes the window between reading
 * smaps and calling madvise: the executable's mappings exist from exec to exit, whereas a library could be
 * unloaded and its address range reused by an anonymous mapping in between (where `MADV_DONTNEED` would
 * zero live data). The shared libraries add ~2 MiB and are left alone for that reason.
 *
 * Why not `MADV_COLD` or `MADV_PAGEOUT`: `MADV_COLD` only moves the pages to the inactive list (they stay
 * mapped and in RSS until memory is short); `MADV_PAGEOUT` reclaims the pages (drops them from the page
 * cache too: the gentler call for the machine on a one-node-per-VM deployment, where the RAM really comes
 * back), but the kernel skips every page another process maps, and three nodes on one machine (the
 * benchmark, `raftkv cluster`) share the executable's pages: there it releases next to nothing
 * (docs/benchmarks.md "Memory, fourth round" has both measured). Both are available as `advice`; the node
 * uses `dontneed` unless `RAFTKV_FILE_PAGES` ({@linkcode FILE_PAGES_ENV}) names another, `data` (the read-only
 * data only, not the code), or `keep`.
 *
 * Fails soft like `malloc_trim`: not Linux, no FFI permission for libc, no /proc/self/smaps → `unavailable`
 * says why and the node does not release.
 *
 * @module
 */
import { LIBC_PATHS } from "./malloc_trim.ts";

/** One mapping of /proc/<pid>/smaps, with what the release rule looks at. */
export interface Mapping {
  readonly start: bigint;
  readonly end: bigint;
  /** e.g. `r-xp`, `r--p`, `rw-p`, `r--s`. */
  readonly perms: string;
  /** The pathname column ("" for an anonymous mapping; `[heap]`, `/usr/lib/…/libc.so.6`, `/x (deleted)`). */
  readonly path: string;
  readonly rssKb: number;
  readonly anonymousKb: number;
}

/** The `madvise` advice values used here (Linux's, identical on x86-64 and arm64). */
export const MADVISE = { dontneed: 4, cold: 20, pageout: 21 } as const;

/** Which advice {@linkcode openFilePageRelease}'s `release` gives. */
export type Advice = keyof typeof MADVISE;

/**
 * Which of the releasable mappings: `all`, or `data`: only those not executable (the read-only data: V8's
 * start-up snapshot, ICU tables), whose pages a serving node hardly touches again, leaving the code (most of
 * which a node under load pages back in) mapped.
 */
export type Scope = "all" | "data";

/** What one release did: the mappings advised and the resident KiB they held just before. */
export interface ReleaseReport {
  /** The mappings advised (as smaps showed them just before). */
  readonly advised: readonly Mapping[];
  readonly mappings: number;
  readonly residentKb: number;
  /** madvise calls that failed (EINVAL, EAGAIN…): counted, not thrown. */
  readonly failures: number;
}

/** What {@linkcode openFilePageRelease} found: a release function, or why there is none. */
export type FilePageRelease =
  | {
    readonly release: (advice?: Advice, scope?: Scope) => ReleaseReport;
    readonly readSelf: (name: string) => string;
    readonly unavailable?: undefined;
  }
  | { readonly release?: undefined; readonly readSelf?: undefined; readonly unavailable: string };

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/;

/** Parses /proc/<pid>/smaps text into its mappings. */
export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let cur:
    | { start: bigint; end: bigint; perms: string; path: string; rssKb: number; anonymousKb: number }
    | null = null;
  for (const line of text.split("\n")) {
    const h = HEADER.exec(line);
    if (h) {
      if (cur) out.push(cur);
      cur = {
        start: BigInt("0x" + h[1]),
        end: BigInt("0x" + h[2]),
        perms: h[3],
        path: h[4].trim(),
        rssKb: 0,
        // Unknown until read: a mapping whose Anonymous line is missing is never releasable.
        anonymousKb: -1,
      };
      continue;
    }
    if (!cur) continue;
    const f = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (f) {
      if (f[1] === "Rss") cur.rssKb = Number(f[2]);
      else cur.anonymousKb = Number(f[2]);
    }
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * The safety rule (see the module comment): a regular file's mapping, not writable, with no anonymous
 * (copy-on-write) page. Everything else is left alone.
 */
export function releasable(m: Mapping, files: readonly string[]): boolean {
  if (!m.path.startsWith("/")) return false; // anonymous, [heap], [stack], [vdso]…
  if (m.path.endsWith(" (deleted)") || m.path.startsWith("/dev/") || m.path.startsWith("/memfd:")) {
    return false;
  }
  if (!files.includes(m.path)) return false;
  if (m.perms.length !== 4 || m.perms[1] !== "-") return false; // writable (or unreadable smaps)
  if (m.anonymousKb !== 0) return false; // holds copy-on-write pages (RELRO), or unknown
  return m.end > m.start;
}

/** The mappings of `files` that {@linkcode releasable} accepts and that hold resident pages. */
export function releasableMappings(smapsText: string, files: readonly string[]): Mapping[] {
  return parseSmaps(smapsText).filter((m) => releasable(m, files) && m.rssKb > 0);
}

/**
 * Opens `madvise`, and `open`/`read`/`close` for /proc/self, from glibc (same FFI grant as `malloc_trim`).
 * `release(advice)` reads /proc/self/smaps, advises every {@linkcode releasable} mapping with resident pages,
 * and reports what it did; `readSelf(name)` returns /proc/self/<name> (`smaps`, `status`, `stat`).
 * Synchronous: a few ms (reading smaps is most of it), run at idle times only.
 *
 * Why through libc: Deno refuses every read under /proc/self without `--allow-all` (a release node runs with
 * named permissions, src/ops/permissions.ts), and the rule needs smaps. The FFI grant to libc already is
 * native access (see permissions.ts): reading the process's own smaps through it adds no power.
 */
export function openFilePageRelease(files?: readonly string[]): FilePageRelease {
  if (Deno.build.os !== "linux") return { unavailable: `not Linux (${Deno.build.os}): no /proc/self/smaps` };
  if (typeof Deno.dlopen !== "function") return { unavailable: "this Deno has no FFI (Deno.dlopen)" };
  const path = LIBC_PATHS.find((p) => {
    try {
      return Deno.permissions.querySync({ name: "ffi", path: p }).state === "granted" &&
        Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (path === undefined) {
    return { unavailable: `no FFI permission for glibc at ${LIBC_PATHS[0]} (--allow-ffi)` };
  }
  let lib;
  try {
    lib = Deno.dlopen(path, {
      madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
      open: { parameters: ["buffer", "i32"], result: "i32" },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
      readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
    });
  } catch (e) {
    return { unavailable: `${path}: no madvise (${e instanceof Error ? e.message : String(e)})` };
  }
  const { madvise, open, read, close, readlink } = lib.symbols;
  const chunk = new Uint8Array(256 * 1024);
  const readSelf = (name: string): string => {
    const fd = open(new TextEncoder().encode(`/proc/self/${name}\0`), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw new Error(`cannot open /proc/self/${name}`);
    try {
      const parts: Uint8Array[] = [];
      for (;;) {
        const n = Number(read(fd, chunk, BigInt(chunk.length)));
        if (n < 0) throw new Error(`cannot read /proc/self/${name}`);
        if (n === 0) break;
        parts.push(chunk.slice(0, n));
      }
      return new TextDecoder().decode(concat(parts));
    } finally {
      close(fd);
    }
  };
  try {
    readSelf("smaps_rollup");
  } catch (e) {
    return { unavailable: e instanceof Error ? e.message : String(e) };
  }
  // The executable as smaps names it: /proc/self/exe's target (through libc: Deno.execPath() needs
  // --allow-read for its path, which a sandboxed release may not grant).
  const exe = new Uint8Array(4096);
  const n = Number(readlink(new TextEncoder().encode("/proc/self/exe\0"), exe, BigInt(exe.length)));
  if (n <= 0 || n >= exe.length) return { unavailable: "cannot read /proc/self/exe" };
  const mapped = files ?? [new TextDecoder().decode(exe.subarray(0, n))];
  return {
    readSelf,
    release: (advice: Advice = "dontneed", scope: Scope = "all") => {
      const advised: Mapping[] = [];
      let residentKb = 0, failures = 0;
      for (const m of releasableMappings(readSelf("smaps"), mapped)) {
        if (scope === "data" && m.perms[2] !== "-") continue;
        if (madvise(m.start, m.end - m.start, MADVISE[advice]) === 0) {
          advised.push(m);
          residentKb += m.rssKb;
        } else {
          failures++;
        }
      }
      return { advised, mappings: advised.length, residentKb, failures };
    },
  };
}

/** open(2) flags (Linux, x86-64 and arm64 alike). */
const O_RDONLY = 0, O_CLOEXEC = 0o2000000;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The environment variable that chooses the node's release ({@linkcode filePagesChoice}). */
export const FILE_PAGES_ENV = "RAFTKV_FILE_PAGES";

/** What the node does at its idle times: nothing (`keep`), or one release. */
export type FilePagesChoice = "keep" | { readonly advice: Advice; readonly scope: Scope };

/**
 * The node's choice from {@link FILE_PAGES_ENV}'s value: `dontneed` (also when unset or empty), `data`
 * (`dontneed` on the read-only data only, not the code), `pageout`, `cold`, `keep` (never release), or a
 * refusal naming the allowed values.
 */
export function filePagesChoice(value: string | undefined): FilePagesChoice | { readonly refused: string } {
  const v = (value ?? "").trim();
  if (v === "" || v === "dontneed") return { advice: "dontneed", scope: "all" };
  if (v === "data") return { advice: "dontneed", scope: "data" };
  if (v === "keep") return "keep";
  if (v === "pageout" || v === "cold") return { advice: v, scope: "all" };
  return { refused: `${FILE_PAGES_ENV}=${v}: expected one of dontneed, data, pageout, cold, keep` };
}
