/**
 * Several load-generating processes started together (one client process saturates long before a cluster does).
 *
 * The protocol, one JSON object per line on the child's stdout:
 * 1. the child prepares its target (connects, finds the leader) and prints `{"t":"ready"}`;
 * 2. once every child is ready the parent writes `go` to each child's stdin, so all start at the same moment;
 * 3. while it runs the child prints `{"t":"progress","ops":…,"errors":…}` about twice a second;
 * 4. at the end it prints `{"t":"result","result":…,"target":…,"cpuUs":…}` (its own CPU time during the run)
 *    and exits 0. A child that cannot run prints
 *    `{"t":"error","message":…}` and exits 1.
 *
 * @module
 */
import process from "node:process";
import {
  type LoadResult,
  type LoadResultJson,
  type LoadSpec,
  type LoadTarget,
  mergeResults,
  type Progress,
  resultFromJson,
  resultToJson,
  runLoad,
} from "./load.ts";

const encoder = new TextEncoder();

function emit(obj: unknown): void {
  const bytes = encoder.encode(JSON.stringify(obj) + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** Resolves when a line `go` arrives on stdin (or stdin closes: then rejects). */
async function waitForGo(): Promise<void> {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stdin closed before the start signal");
      buf += value;
      if (buf.split("\n").some((l) => l.trim() === "go")) return;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * The child side: prepare `target`, report ready, wait for `go`, run `spec`, report the result.
 * `describe` names the target after `prepare` (e.g. the leader's address).
 */
export async function serveAsChild(
  target: LoadTarget,
  spec: LoadSpec,
  describe: () => string = () => "",
): Promise<number> {
  try {
    await target.prepare();
  } catch (e) {
    emit({ t: "error", message: e instanceof Error ? e.message : String(e) });
    await target.close();
    return 1;
  }
  emit({ t: "ready" });
  try {
    await waitForGo();
    const cpu0 = process.cpuUsage();
    const result = await runLoad(spec, target, {
      progressEveryMs: 500,
      onProgress: (p) => emit({ t: "progress", ops: p.ops, errors: p.errors }),
    });
    const cpu = process.cpuUsage(cpu0);
    emit({ t: "result", result: resultToJson(result), target: describe(), cpuUs: cpu.user + cpu.system });
    return 0;
  } catch (e) {
    emit({ t: "error", message: e instanceof Error ? e.message : String(e) });
    return 1;
  } finally {
    await target.close();
  }
}

export interface ChildCommand {
  readonly cmd: string;
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
}

export interface RunChildrenOptions {
  /** Called about twice a second with the sums over all children. */
  readonly onProgress?: (p: Progress) => void;
  /** How long children may take to become ready (default 30 s). */
  readonly readyTimeoutMs?: number;
  /** Called right before the start signal goes out (e.g. to read CPU counters). */
  readonly onStart?: () => void;
  /** How long the run may take once started, after which children are killed (ms). */
  readonly runTimeoutMs: number;
}

export interface ChildrenResult {
  readonly result: LoadResult;
  /** What each child said it was talking to. */
  readonly targets: readonly string[];
  /** CPU time (user + system) the children spent during the run, µs, summed. */
  readonly clientCpuUs: number;
}

/** An error of a child process (its message, or its exit status and last stderr). */
export class ChildError extends Error {
  override readonly name = "ChildError";
}

interface ChildState {
  proc: Deno.ChildProcess;
  ready: boolean;
  progress: { ops: number; errors: number };
  result?: LoadResultJson;
  target?: string;
  cpuUs?: number;
  error?: string;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  done: Promise<void>;
}

/** The parent side: starts every command, starts them together, merges their results. */
export async function runChildren(
  commands: readonly ChildCommand[],
  opts: RunChildrenOptions,
): Promise<ChildrenResult> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  let onReady: () => void = () => {};
  let onFail: (e: Error) => void = () => {};
  const allReady = new Promise<void>((res, rej) => {
    onReady = res;
    onFail = rej;
  });
  allReady.catch(() => {});
  const children: ChildState[] = [];
  const check = () => {
    const failed = children.find((c) => c.error !== undefined);
    if (failed) onFail(new ChildError(failed.error!));
    else if (children.length === commands.length && children.every((c) => c.ready)) onReady();
  };

  for (const c of commands) {
    const proc = new Deno.Command(c.cmd, {
      args: [...c.args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...(c.env ?? {}) },
    }).spawn();
    const state: ChildState = {
      proc,
      ready: false,
      progress: { ops: 0, errors: 0 },
      stdin: proc.stdin.getWriter(),
      done: Promise.resolve(),
    };
    let stderrTail = "";
    const readErr = (async () => {
      for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
        stderrTail = (stderrTail + chunk).slice(-2000);
      }
    })();
    const readOut = (async () => {
      let buf = "";
      for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line.startsWith("{")) continue;
          let msg: Record<string, unknown>;
          try {
            msg = JSON.parse(line);
          } catch {
            continue;
          }
          if (msg.t === "ready") state.ready = true;
          else if (msg.t === "progress") {
            state.progress = { ops: Number(msg.ops), errors: Number(msg.errors) };
          } else if (msg.t === "result") {
            state.result = msg.result as LoadResultJson;
            state.target = String(msg.target ?? "");
            state.cpuUs = Number(msg.cpuUs ?? 0);
          } else if (msg.t === "error") state.error = String(msg.message);
          check();
        }
      }
    })();
    state.done = Promise.all([readOut, readErr, proc.status]).then(([, , status]) => {
      if (state.result === undefined && state.error === undefined) {
        const how = status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
        const tail = stderrTail.trim().split("\n").slice(-3).join(" | ");
        state.error = `a load process ended without a result (${how})${tail ? `: ${tail}` : ""}`;
      }
      check();
    });
    children.push(state);
  }
  check();

  const killAll = () => {
    for (const c of children) {
      try {
        c.proc.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let progressTimer: ReturnType<typeof setInterval> | undefined;
  try {
    await Promise.race([
      allReady,
      new Promise((_, rej) => {
        timer = setTimeout(
          () => rej(new ChildError(`load processes not ready within ${readyTimeoutMs} ms`)),
          readyTimeoutMs,
        );
      }),
    ]);
    clearTimeout(timer);
    opts.onStart?.();
    const t0 = performance.now();
    const go = encoder.encode("go\n");
    await Promise.all(children.map((c) => c.stdin.write(go).then(() => c.stdin.close()).catch(() => {})));
    if (opts.onProgress) {
      progressTimer = setInterval(() => {
        let ops = 0, errors = 0;
        for (const c of children) {
          ops += c.progress.ops;
          errors += c.progress.errors;
        }
        opts.onProgress!({ elapsedMs: performance.now() - t0, ops, errors });
      }, 500);
    }
    await Promise.race([
      Promise.all(children.map((c) => c.done)),
      new Promise((_, rej) => {
        timer = setTimeout(
          () => rej(new ChildError(`load processes still running after ${opts.runTimeoutMs} ms`)),
          opts.runTimeoutMs,
        );
      }),
    ]);
    const failed = children.find((c) => c.error !== undefined);
    if (failed) throw new ChildError(failed.error!);
    return {
      result: mergeResults(children.map((c) => resultFromJson(c.result!))),
      targets: children.map((c) => c.target ?? ""),
      clientCpuUs: children.reduce((a, c) => a + (c.cpuUs ?? 0), 0),
    };
  } catch (e) {
    killAll();
    await Promise.all(children.map((c) => c.done.catch(() => {})));
    throw e;
  } finally {
    clearTimeout(timer);
    clearInterval(progressTimer);
    for (const c of children) {
      try {
        c.stdin.releaseLock();
      } catch {
        // closed
      }
    }
  }
}

/** Splits `total` into `parts` near-equal non-negative integers (the first ones get the remainder). */
export function split(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  const extra = total - base * parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}
