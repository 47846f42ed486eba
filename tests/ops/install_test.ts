/**
 * `deno task install`: a `raftkv` launcher (pinned Deno + the bundle) that runs without `deno` on PATH, without
 * the task runner's `Task raftkv …` line, and without internet access.
 */
import { ok, strictEqual } from "node:assert/strict";
import { REPO_PATH, run } from "./helpers.ts";

Deno.test("deno task install writes a raftkv launcher that works without deno on PATH and prints no Task line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-install-bin-" });
  try {
    const inst = await run(Deno.execPath(), ["run", "-A", "scripts/install.ts", "--bin-dir", `${dir}/bin`], {
      cwd: REPO_PATH,
      timeoutMs: 300_000,
    });
    strictEqual(inst.code, 0, inst.stderr);
    ok(inst.stderr.includes(`wrote ${dir}/bin/raftkv`), inst.stderr);
    const env = { PATH: "/usr/bin:/bin", HOME: dir };
    const t0 = performance.now();
    const v = await run(`${dir}/bin/raftkv`, ["--version"], { clearEnv: true, env, cwd: dir });
    const ms = performance.now() - t0;
    strictEqual(v.code, 0, v.stderr);
    ok(/^raftkv \S+/.test(v.stdout), v.stdout);
    ok(!/Task raftkv/.test(v.stdout + v.stderr), v.stdout + v.stderr);
    // A relative path is resolved against the caller's folder, and a refusal is one line naming it.
    const c = await run(`${dir}/bin/raftkv`, ["client", "--config", "nope.json", "get", "k"], {
      clearEnv: true,
      env,
      cwd: dir,
    });
    strictEqual(c.code, 2, c.stderr);
    ok(c.stderr.includes(`${dir}/nope.json`), c.stderr);
    console.log(`launcher --version: ${ms.toFixed(0)} ms`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
