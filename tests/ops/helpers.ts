/**
 * Small helpers shared by the operations tests: the repo path, running a command to completion with a
 * time limit, and polling a condition (never a fixed sleep as a way of waiting).
 *
 * @module
 */

export const REPO_PATH = decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  readonly clearEnv?: boolean;
  /** Kill the process (SIGKILL) after this long; default 120 s. */
  readonly timeoutMs?: number;
}

/** Runs `cmd args…` to completion and returns its exit code and output. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    cwd: opts.cwd,
    env: { NO_COLOR: "1", ...opts.env },
    clearEnv: opts.clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, opts.timeoutMs ?? 120_000);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `pred` every `everyMs` until it returns a truthy value; throws naming `what` after `timeoutMs`. */
export async function poll<T>(
  what: string,
  pred: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  timeoutMs: number,
  everyMs = 20,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (true) {
    try {
      const r = await pred();
      if (r) return r;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (performance.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Free loopback ports: bind :0 for each at once (so they differ), then release them. */
export function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** Is `name` on PATH? */
export async function onPath(name: string): Promise<boolean> {
  try {
    return (await run("sh", ["-c", `command -v ${name}`])).code === 0;
  } catch {
    return false;
  }
}

/** Asserts that `text` contains `part`, showing both when it does not. */
export function assertIncludes(text: string, part: string, msg = ""): void {
  if (!text.includes(part)) {
    throw new Error(
      `${msg ? `${msg}: ` : ""}expected the text to include ${JSON.stringify(part)}; text:\n${text}`,
    );
  }
}

/** A child whose stdout and stderr are collected as they come. */
export function spawn(args: string[]): { child: Deno.ChildProcess; out: () => string } {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO_PATH,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) text += dec.decode(c, { stream: true });
  };
  void pump(child.stdout);
  void pump(child.stderr);
  return { child, out: () => text };
}

/**
 * The first of `n` consecutive loopback ports that are free now, with the `n` from 100 and from 1000 above free
 * too (cluster takes base-port … base-port+n-1, their metrics ports 100 above and raw peer ports 1000 above).
 */
export function consecutiveFreePorts(n: number, from = 20000): number {
  // Start where another test process (its own pid) is unlikely to look: one of the hundreds from `from` to 60000.
  const starts = Math.floor((60000 - from) / 100);
  for (let base = from + (Deno.pid % starts) * 100; base < 65000; base += 7) {
    const held: Deno.Listener[] = [];
    try {
      for (let i = 0; i < n; i++) {
        held.push(Deno.listen({ hostname: "127.0.0.1", port: base + i }));
        held.push(Deno.listen({ hostname: "127.0.0.1", port: base + 100 + i }));
        held.push(Deno.listen({ hostname: "127.0.0.1", port: base + 1000 + i }));
      }
      return base;
    } catch {
      continue;
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error(`no ${n} consecutive free ports`);
}
