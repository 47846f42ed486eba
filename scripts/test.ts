/**
 * Runs the test suite and ends with one plain line CI understands: `N passed, N failed[, N skipped]`.
 *
 *     deno run -A scripts/test.ts [extra deno test args…]     (what `deno task test` runs)
 *
 * Runs `deno test -A` over src/ and tests/ with NO_COLOR=1 using the same Deno binary, streams its output
 * as it comes, parses Deno's closing summary (`ok | 12 passed (3 steps) | 0 failed (3s)`,
 * `FAILED | 2 passed | 1 failed | 1 ignored (81ms)`), prints the plain line and exits with deno test's exit
 * code. When no summary can be found (e.g. a type error stopped the run) it prints `0 passed, 1 failed` and
 * exits non-zero. Tests run one file at a time (no --parallel): many are timing-sensitive (leases,
 * elections) and this machine has 2 cores.
 *
 * @module
 */

const DEFAULT_PATHS = ["src/", "tests/"];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Counts from Deno's summary line. */
export interface Summary {
  readonly ok: boolean;
  readonly passed: number;
  readonly failed: number;
  readonly ignored: number;
}

/** Parses one line of `deno test` output; undefined unless it is the closing summary. */
export function parseSummary(line: string): Summary | undefined {
  // deno-lint-ignore no-control-regex
  const plain = line.replace(/\x1b\[[0-9;]*m/g, "").trim();
  const m = plain.match(
    /^(ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(.*)$/,
  );
  if (!m) return undefined;
  const ignored = m[4].match(/\| (\d+) ignored/);
  return {
    ok: m[1] === "ok",
    passed: Number(m[2]),
    failed: Number(m[3]),
    ignored: ignored ? Number(ignored[1]) : 0,
  };
}

/** The line CI reads. */
export function formatSummary(s: Summary): string {
  return `${s.passed} passed, ${s.failed} failed${s.ignored > 0 ? `, ${s.ignored} skipped` : ""}`;
}

async function main(args: string[]): Promise<number> {
  // Test only what was named, if any argument names a file or folder; otherwise src/ and tests/.
  const namesPath = args.some((a) => !a.startsWith("-") && exists(a));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...args, ...(namesPath ? [] : DEFAULT_PATHS)],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();

  let summary: Summary | undefined;
  let pending = "";
  const encoder = new TextEncoder();
  const write = (s: string) => Deno.stdout.writeSync(encoder.encode(s));
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    write(chunk);
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) summary = parseSummary(line) ?? summary;
  }
  summary = parseSummary(pending) ?? summary;
  const { code } = await child.status;

  if (summary === undefined) {
    console.error(`scripts/test.ts: no test summary found in deno test's output (exit code ${code})`);
    console.log("0 passed, 1 failed");
    return code === 0 ? 1 : code;
  }
  console.log(formatSummary(summary));
  if (code === 0 && (!summary.ok || summary.failed > 0)) return 1;
  return code;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
