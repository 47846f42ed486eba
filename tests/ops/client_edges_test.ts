/**
 * Rough edges a new user hit with the one-shot client: values larger than a command line (stdin, a file), a
 * missing key told apart from an empty one (the REPL's `SET k --value-file F` too), and relative paths given from a subfolder under `deno task`.
 */
import { ok, strictEqual } from "node:assert/strict";
import { IT, withCluster } from "../integration/harness.ts";
import { REPO_PATH } from "./helpers.ts";

/** Runs the CLI with `input` on stdin, from `cwd`, with extra environment. */
async function cli(
  args: readonly string[],
  opts: { input?: string; cwd?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO_PATH}/mod.ts`, ...args],
    cwd: opts.cwd ?? REPO_PATH,
    env: { NO_COLOR: "1", ...opts.env },
    stdin: opts.input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.input !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.input));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test(
  "values over the command-line limit go in from stdin or a file, and get --json tells missing from empty",
  IT,
  async () => {
    await withCluster(
      { nodes: 3, name: "client-edges", extraConfig: { maxValueBytes: 1_000_000 } },
      async (c) => {
        const C = ["client", "--config", c.configPath];
        const big = "x".repeat(300_000) + "\nend\n"; // more than one argument may carry (~128 KiB)
        const viaStdin = await cli([...C, "set", "big", "-"], { input: big });
        strictEqual(viaStdin.code, 0, viaStdin.stderr);
        let got = await cli([...C, "get", "big", "--json"]);
        strictEqual(got.code, 0, got.stderr);
        const j = JSON.parse(got.stdout);
        strictEqual(j.found, true);
        strictEqual(j.value, big, "stdin's bytes are kept exactly, trailing newline included");

        const file = `${c.dir}/value.txt`;
        await Deno.writeTextFile(file, "ünïcode from a file");
        const viaFile = await cli([...C, "set", "f", "--value-file", file]);
        strictEqual(viaFile.code, 0, viaFile.stderr);
        strictEqual((await c.client().get("f")).value, "ünïcode from a file");

        const both = await cli([...C, "set", "f", "v", "--value-file", file]);
        strictEqual(both.code, 2, "a value and --value-file together are refused");
        const tooBig = await cli([...C, "set", "huge", "-"], { input: "y".repeat(1_000_001) });
        strictEqual(tooBig.code, 1);
        ok(/1000001 bytes; the limit is 1000000 \(maxValueBytes\)/.test(tooBig.stderr), tooBig.stderr);

        // The REPL takes a file the same way: `SET <key> --value-file F`, same bytes, same limits and refusals.
        const bigFile = `${c.dir}/big.txt`, binFile = `${c.dir}/bin.dat`;
        await Deno.writeTextFile(bigFile, "z".repeat(1_000_001));
        await Deno.writeFile(binFile, new Uint8Array([0xff, 0xfe, 0x00, 0x41]));
        const repl = await cli(C, {
          input: [
            `set rf --value-file ${file}`,
            `set "r big" --value-file "${bigFile}"`,
            `set rbin --value-file ${binFile}`,
            `set rnone --value-file ${c.dir}/no-such-file`,
            "get rf",
          ].join("\n") + "\n",
        });
        // Piped, with failed lines: the first failure's one-shot code (the too-big SET: 1), after every line ran.
        strictEqual(repl.code, 1, repl.stderr);
        strictEqual((await c.client().get("rf")).value, "ünïcode from a file");
        ok(/^OK {2}\(node \d/.test(repl.stdout), repl.stdout);
        ok(repl.stdout.includes('"ünïcode from a file"'), repl.stdout);
        const errors = repl.stderr.trim().split("\n");
        strictEqual(errors.length, 4, repl.stderr);
        strictEqual(
          errors[3],
          "error: 3 of 5 commands failed; exit code 1, that of the first failure (line 2)",
        );
        ok(/1000001 bytes; the limit is 1000000 \(maxValueBytes\)/.test(errors[0]), errors[0]);
        ok(errors[1].includes(`the value from ${binFile} is not valid UTF-8 text`), errors[1]);
        ok(errors[2].includes(`cannot read --value-file ${c.dir}/no-such-file`), errors[2]);
        strictEqual((await c.client().get("r big")).found, false);

        // Missing vs empty: the same empty line on stdout, told apart by --json and a note on stderr.
        strictEqual((await cli([...C, "set", "empty", ""])).code, 0);
        const empty = await cli([...C, "get", "empty"]);
        const missing = await cli([...C, "get", "nope"]);
        strictEqual(empty.stdout, "\n");
        strictEqual(missing.stdout, "\n");
        strictEqual(empty.stderr, "");
        ok(/note: key "nope" does not exist/.test(missing.stderr), missing.stderr);
        strictEqual(missing.code, 0, "a missing key is an answer, not a failure");
        got = await cli([...C, "get", "nope", "--json"]);
        strictEqual(got.stdout.trim(), JSON.stringify({ key: "nope", value: "", found: false }));
        got = await cli([...C, "get", "empty", "--json"]);
        strictEqual(got.stdout.trim(), JSON.stringify({ key: "empty", value: "", found: true }));
      },
    );
  },
);

Deno.test(
  "under deno task, a relative --config resolves against the caller's folder (INIT_CWD) and errors show it absolute",
  IT,
  async () => {
    const sub = await Deno.makeTempDir({ prefix: "raftkv-initcwd-" });
    try {
      // The process runs in the repo root (as `deno task` does); INIT_CWD names where the user typed the command.
      const r = await cli(["client", "--config", "conf/cluster.json", "get", "k"], {
        env: { INIT_CWD: sub },
      });
      strictEqual(r.code, 2);
      ok(r.stderr.includes(`${sub}/conf/cluster.json`), `the error names the absolute path: ${r.stderr}`);
      await Deno.mkdir(`${sub}/conf`);
      await Deno.writeTextFile(`${sub}/conf/cluster.json`, "{not json");
      const bad = await cli(["client", "--config", "conf/cluster.json", "get", "k"], {
        env: { INIT_CWD: sub },
      });
      ok(bad.stderr.includes(`${sub}/conf/cluster.json is not valid JSON`), bad.stderr);
    } finally {
      await Deno.remove(sub, { recursive: true });
    }
  },
);
