/**
 * The Deno permissions a raftkv release runs with: baked into the `deno compile` binary by
 * scripts/build.ts, and passed to `deno run` for the bundle (dist/raftkv.bundle.js). Not `-A`: a node
 * cannot touch what it was not granted (FFI to glibc only, no sys info beyond the host name, only named env
 * vars).
 *
 * | flag | why |
 * |---|---|
 * | `--allow-net` | serve gRPC and dial peers; addresses come from the config, so not scoped |
 * | `--allow-read` | the config file, the data dir, and `Deno.execPath()`; paths are run-time options |
 * | `--allow-write` | the data dir (logs_node_N/), `systemd-unit --install` (/etc/…), `cluster`'s dirs |
 * | `--allow-env=<names>` | only the variables raftkv and its npm dependencies read (listed below) |
 * | `--allow-sys=hostname` | grpc-js calls `os.hostname()` when a DNS TXT service config names hosts |
 * | `--allow-run` | `cluster` spawns the binary itself (its path is known only at run time); `systemd-unit --install` runs getent/useradd/chown |
 * | `--allow-ffi=<libc paths>` | glibc's `malloc_trim` after an idle collection (src/ops/malloc_trim.ts): 10–15 MiB of RSS back after a burst; `madvise` of the executable's cold pages (src/ops/file_pages.ts, which reads /proc/self/smaps through libc's `open`/`read`: Deno refuses /proc/self without `-A`); only the paths of `LIBC_PATHS` |
 * | `--unstable-net` | `Deno.listenDatagram` on a unix socket, for sd_notify (`READY=1`) |
 *
 * FFI to libc is, in effect, native access for any code in the process (libc can do anything); Deno's
 * permissions are a guard against the npm dependencies, and this grant weakens it. Kept because it is the only
 * way to give glibc's freed pages back (docs/operations.md "Memory"); a deployment that prefers the stricter
 * sandbox can drop the flag from the bundle's `deno run` line (a compiled binary bakes it in): the node then says once
 * in dump.txt that it does not trim.
 *
 * Environment variables are listed one by one because a compiled binary never prompts: reading an
 * unlisted one throws `NotCapable`. tests/ops/self_contained_test.ts scans the bundle for every
 * `process.env.X` / `Deno.env.get("X")` and fails when one is missing here, so a dependency upgrade that
 * reads a new variable is caught by CI rather than in production.
 *
 * @module
 */
import { LIBC_PATHS } from "./malloc_trim.ts";

/** Every environment variable raftkv (or a bundled dependency) reads. Sorted. */
export const ENV_VARS_READ: readonly string[] = [
  // @bufbuild/protobuf
  "BUF_BIGINT_DISABLE",
  // commander: colour decisions for help output
  "CLICOLOR_FORCE",
  "FORCE_COLOR",
  // @grpc/grpc-js
  "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
  "GRPC_EXPERIMENTAL_ENABLE_OUTLIER_DETECTION",
  "GRPC_NODE_DEBUG_SEND_ERROR_DETAILS",
  "GRPC_NODE_TRACE",
  "GRPC_NODE_USE_ALTERNATIVE_RESOLVER",
  "GRPC_NODE_VERBOSITY",
  "GRPC_SSL_CIPHER_SUITES",
  "GRPC_TRACE",
  "GRPC_VERBOSITY",
  // raftkv REPL history location (src/cli/repl.ts)
  "HOME",
  // raftkv: the caller's folder under `deno task`, for relative paths (src/config/user_path.ts)
  "INIT_CWD",
  // raftkv: no colours when set
  "NO_COLOR",
  // raftkv: systemd readiness (src/ops/sd_notify.ts)
  "NOTIFY_SOCKET",
  // raftkv: TLS files and plain-text opt-in for client/admin commands (src/cli/common.ts, src/bench/worker.ts)
  "RAFTKV_CACERT",
  "RAFTKV_CERT",
  // raftkv: the default config path (src/cli/common.ts)
  "RAFTKV_CONFIG",
  // raftkv node: which release of the executable's cold pages (src/ops/file_pages.ts)
  "RAFTKV_FILE_PAGES",
  "RAFTKV_INSECURE",
  "RAFTKV_KEY",
  // raftkv node: a safety rule switched off for a negative control (tests/chaos; refused unless a known rule)
  "RAFTKV_NEGATIVE_CONTROL",
  // raftkv REPL history location on Windows (src/cli/repl.ts)
  "USERPROFILE",
  // @grpc/grpc-js proxy support (disabled by channel options, but read at start-up)
  "grpc_proxy",
  "http_proxy",
  "https_proxy",
  "no_grpc_proxy",
  "no_proxy",
];

/** `os` information the program may ask for (`--allow-sys=…`). */
export const SYS_APIS_USED: readonly string[] = ["hostname"];

/** Unstable APIs the program needs (`--unstable-…`). */
export const UNSTABLE_FLAGS: readonly string[] = ["--unstable-net"];

/** The permission and unstable flags for `deno compile` and `deno run` of a release build. */
export function releaseRunFlags(): string[] {
  return [
    "--allow-net",
    "--allow-read",
    "--allow-write",
    `--allow-env=${ENV_VARS_READ.join(",")}`,
    `--allow-sys=${SYS_APIS_USED.join(",")}`,
    "--allow-run",
    `--allow-ffi=${LIBC_PATHS.join(",")}`,
    ...UNSTABLE_FLAGS,
  ];
}

/**
 * V8 flags every raftkv process runs with (a node above all; docs/operations.md "Memory"): a 1 MiB semi-space
 * caps V8's young generation at a few MiB instead of letting it grow to tens of MiB under load (the cost is
 * more frequent, each cheaper, scavenges); `--expose-gc` lets a node collect once when a burst of writes is
 * over (src/ops/idle_gc.ts) instead of keeping the burst's heap until V8's memory reducer runs ~30 s later.
 * Baked into the `deno compile` binary; `deno run` callers pass them too.
 */
export const V8_FLAGS: readonly string[] = ["--max-semi-space-size=1", "--expose-gc"];

/** {@link V8_FLAGS} as the one `deno run`/`deno compile` argument. */
export function v8FlagsArg(): string {
  return `--v8-flags=${V8_FLAGS.join(",")}`;
}

/**
 * Environment every raftkv node process starts with (next to {@link V8_FLAGS}; glibc reads it at process start,
 * so it cannot be set from inside): `MALLOC_ARENA_MAX=2`. glibc's default is up to 8 malloc arenas per core,
 * one more for each thread that meets contention, and each keeps the memory freed into it: after 300,000 SETs
 * the large anonymous regions (the arenas) held 15–23 MiB of a node's RSS against 5–7 MiB with 2, RSS 121–129
 * against 114–117 MB (docs/benchmarks.md). `mallopt(M_ARENA_MAX)` from the running node did not help (the
 * arenas exist by then).
 *
 * `MALLOC_MMAP_THRESHOLD_=65536`: allocations of 64 KiB and more get their own mapping, returned to the system
 * when freed. glibc's default threshold starts at 128 KiB but rises to the size of each large block freed (up to
 * 32 MiB), after which the runtime's large buffers (HTTP/2 and socket buffers, 1 MiB snapshot chunks) are carved
 * from the main arena and leave it fragmented: `malloc_trim` cannot give back a page with one live byte. After
 * 100,000 SETs, node RSS 64–72 MB against 69–82 (main arena 10–15 MiB against 16–23), for about twice the minor
 * page faults under load (~2,000/s against ~1,000/s per node: each large block is fresh zeroed pages) and no
 * throughput change visible on the shared machine (docs/benchmarks.md "Memory, fourth round").
 *
 * Set by the systemd unit (`Environment=`), `raftkv cluster` and the test harness; a node started by hand runs
 * without them, only with more memory.
 */
export const NODE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "65536",
};
