/**
 * The release is self-contained and runs with its release permissions (src/ops/permissions.ts), not -A.
 *
 * - The bundle (`deno task bundle`): one JS file with every npm package inlined, copied to an empty temp dir
 *   and run from there with read/write limited to that dir (so it cannot lean on the source tree,
 *   node_modules or deno.json): a 3-node cluster elects a leader, `client set k v` says OK, `client get k`
 *   prints v, and SIGTERM stops every node with exit code 0.
 * - The compiled binary (`deno task build`): `deno compile` needs to download its base runtime from
 *   dl.deno.land. Where it cannot (no network), the test is reported as IGNORED with the reason printed;
 *   where it can, the binary gets the same smoke test plus a `--version` check of the commit stamp.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { ENV_VARS_READ, releaseRunFlags } from "../../src/ops/permissions.ts";
import { isRuntimeDownloadError } from "../../scripts/build.ts";
import { assertIncludes, freePorts, poll, REPO_PATH, run, type RunResult } from "./helpers.ts";

const DENO = Deno.execPath();
const BUILD_INFO = `${REPO_PATH}/src/build_info.ts`;
const FAST_TIMINGS = {
  heartbeatIntervalMs: 50,
  electionTimeoutMsMin: 300,
  electionTimeoutMsMax: 600,
  leaseDurationMs: 240,
};

/** The release flags with read and write narrowed to `dir` (and no run: a node spawns nothing). */
function sandboxFlags(dir: string): string[] {
  return releaseRunFlags().flatMap((f) => {
    if (f === "--allow-read") return [`--allow-read=${dir}`];
    if (f === "--allow-write") return [`--allow-write=${dir}`];
    if (f === "--allow-run") return [];
    return [f];
  });
}

/** Runs `scripts/build.ts` with `args`; checks that src/build_info.ts is left as it was. */
async function runBuild(args: string[]): Promise<RunResult> {
  const before = await Deno.readTextFile(BUILD_INFO);
  const r = await run(DENO, ["run", "-A", `${REPO_PATH}/scripts/build.ts`, ...args], {
    cwd: REPO_PATH,
    timeoutMs: 300_000,
  });
  strictEqual(await Deno.readTextFile(BUILD_INFO), before, "the build must restore src/build_info.ts");
  return r;
}

/** Finds, anywhere in a parsed JSON value, a node status that is a leader serving reads. */
function servingLeader(v: unknown): Record<string, unknown> | undefined {
  if (Array.isArray(v)) {
    for (const x of v) {
      const r = servingLeader(x);
      if (r) return r;
    }
  } else if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (o.role === "leader" && o.servingReads === true) return o;
    for (const x of Object.values(o)) {
      const r = servingLeader(x);
      if (r) return r;
    }
  }
  return undefined;
}

/**
 * Starts 3 nodes of `cmd` (argv prefix, e.g. `[deno, run, …flags, raftkv.bundle.js]`) in `dir`, waits for a
 * leader, sets and gets a key through the client command, stops the nodes with SIGTERM and checks they exit 0.
 */
async function smokeCluster(cmd: readonly string[], dir: string): Promise<void> {
  const ports = freePorts(3);
  const cli = (args: string[]) => run(cmd[0], [...cmd.slice(1), ...args], { cwd: dir, timeoutMs: 30_000 });
  // Mutual TLS as in production, with certificates the program makes itself.
  const certs = await cli(["certs", "init", "--dir", "certs", "--nodes", "1,2,3"]);
  strictEqual(certs.code, 0, `certs init failed: ${certs.stdout}${certs.stderr}`);
  const config = {
    clusterId: "smoke",
    nodes: ports.map((p, i) => ({ id: i + 1, address: `127.0.0.1:${p}` })),
    ...FAST_TIMINGS,
    tls: {
      cacert: "certs/ca.crt",
      cert: "certs/node-{id}.crt",
      key: "certs/node-{id}.key",
      clientCert: "certs/client.crt",
      clientKey: "certs/client.key",
      adminCert: "certs/admin.crt",
      adminKey: "certs/admin.key",
    },
  };
  await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(config, null, 2));
  const nodes = [1, 2, 3].map((id) => {
    const child = new Deno.Command(cmd[0], {
      args: [...cmd.slice(1), "node", "--id", String(id), "--config", "cfg.json", "--data-dir", "d"],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return { id, child, output: child.output() };
  });
  const describe = async () => {
    const dec = new TextDecoder();
    const parts = [];
    for (const n of nodes) {
      n.child.kill("SIGKILL");
      const o = await n.output;
      parts.push(
        `--- node ${n.id} exit ${o.code}\n${dec.decode(o.stdout).slice(-2000)}${dec.decode(o.stderr)}`,
      );
    }
    return parts.join("\n");
  };
  let stopped = false;
  try {
    let last: RunResult | undefined;
    await poll(
      "a leader serving reads (admin status --json)",
      async () => {
        last = await cli(["admin", "status", "--json", "--config", "cfg.json"]);
        if (last.code !== 0 && last.stdout.trim() === "") return undefined;
        return servingLeader(JSON.parse(last.stdout));
      },
      30_000,
      100,
    ).catch(async (e) => {
      throw new Error(`${e}\nlast admin status: ${JSON.stringify(last)}\n${await describe()}`);
    });
    // Each node reports its certificate's whole days left: `certs init` issued them for 730 days from an hour
    // ago, so 729 (null only for a node that did not answer).
    const rows = JSON.parse(last!.stdout) as {
      reachable: boolean;
      certificateExpiresInDays: number | null;
    }[];
    for (const r of rows) {
      strictEqual(r.certificateExpiresInDays, r.reachable ? 729 : null, JSON.stringify(r));
    }

    const set = await cli(["client", "--config", "cfg.json", "set", "k", "v"]);
    strictEqual(set.code, 0, `client set failed: ${set.stdout}${set.stderr}`);
    assertIncludes(set.stdout, "OK", "client set prints OK");
    const get = await cli(["client", "--config", "cfg.json", "get", "k"]);
    strictEqual(get.code, 0, `client get failed: ${get.stdout}${get.stderr}`);
    strictEqual(get.stdout.trim().split("\n").pop()?.trim(), "v", `client get prints v:\n${get.stdout}`);

    for (const n of nodes) n.child.kill("SIGTERM");
    const outs = await Promise.all(nodes.map((n) => n.output));
    stopped = true;
    const dec = new TextDecoder();
    deepStrictEqual(
      outs.map((o) => o.code),
      [0, 0, 0],
      `every node exits 0 after SIGTERM:\n${outs.map((o) => dec.decode(o.stderr)).join("\n")}`,
    );
    for (const id of [1, 2, 3]) {
      const dump = await Deno.readTextFile(`${dir}/d/logs_node_${id}/dump.txt`);
      assertIncludes(dump, `Node ${id} stopped.`, `node ${id}'s dump.txt`);
    }
  } finally {
    if (!stopped) {
      for (const n of nodes) {
        try {
          n.child.kill("SIGKILL");
        } catch { /* gone */ }
      }
      await Promise.all(nodes.map((n) => n.output.catch(() => undefined)));
    }
  }
}

Deno.test({
  name: "the bundle runs a 3-node cluster from an empty directory with only the release permissions",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "raftkv-bundle-" });
    try {
      const built = `${tmp}/build/raftkv.bundle.js`;
      const b = await runBuild(["--bundle", "--output", built]);
      strictEqual(b.code, 0, `deno task bundle failed:\n${b.stdout}${b.stderr}`);
      const js = await Deno.readTextFile(built);
      // Nothing left to fetch or to find on disk: only node: built-ins stay external.
      const specifierPatterns = [
        /^\s*(?:import|export)\b[^;\n]*?\bfrom\s*["']([^"']+)["']/gm, // static ESM imports
        /^\s*import\s*["']([^"']+)["']/gm, // side-effect imports
        /\bimport\(\s*["']([^"']+)["']\s*\)/g, // dynamic imports
        /\b__require\d*\(\s*["']([^"']+)["']\s*\)/g, // CommonJS requires of bundled npm code
      ];
      const imports = specifierPatterns.flatMap((re) => [...js.matchAll(re)].map((m) => m[1]));
      ok(imports.includes("node:fs"), "the import scan finds the bundle's node: imports");
      const external = imports.filter((s) => !s.startsWith("node:"));
      deepStrictEqual([...new Set(external)], [], "the bundle imports only node: built-ins");

      // Every environment variable the bundled code reads is granted (a compiled binary never prompts).
      const read = new Set([
        ...[...js.matchAll(/process\.env\.([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]),
        ...[...js.matchAll(/process\.env\[\s*["']([^"']+)["']\s*\]/g)].map((m) => m[1]),
        ...[...js.matchAll(/(?:Deno\.env\.get|\breadEnv\d*)\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]),
      ]);
      const missing = [...read].filter((v) => !ENV_VARS_READ.includes(v)).sort();
      deepStrictEqual(missing, [], "add these to ENV_VARS_READ in src/ops/permissions.ts");

      const dir = `${tmp}/run`;
      await Deno.mkdir(dir);
      deepStrictEqual([...Deno.readDirSync(dir)], [], "the run dir starts empty");
      await Deno.copyFile(built, `${dir}/raftkv.bundle.js`);
      await smokeCluster([DENO, "run", ...sandboxFlags(dir), "raftkv.bundle.js"], dir);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

// deno compile: attempted before the test is registered, so a run without network can say "ignored" and why.
const compileDir = await Deno.makeTempDir({ prefix: "raftkv-compile-" });
const compiled = await runBuild(["--output", `${compileDir}/dist/raftkv`]);
const compileOutput = compiled.stdout + compiled.stderr;
const noRuntime = compiled.code !== 0 && isRuntimeDownloadError(compileOutput);
if (noRuntime) {
  await Deno.remove(compileDir, { recursive: true });
  console.log(
    "SKIPPED deno compile builds dist/raftkv: `deno compile` could not download its base runtime (denort) " +
      "from dl.deno.land; this machine has no access to it. The build script reported:\n" +
      compileOutput.split("\n").filter((l) => /raftkv build: FAILED|error sending request|dns error/.test(l))
        .map((l) => `    ${l}`).join("\n"),
  );
}

Deno.test({
  name: "deno compile builds dist/raftkv",
  ignore: noRuntime,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    try {
      strictEqual(compiled.code, 0, `deno task build failed:\n${compileOutput}`);
      const bin = `${compileDir}/dist/raftkv`;
      const version = await run(bin, ["--version"], { cwd: compileDir });
      strictEqual(version.code, 0, version.stderr);
      ok(!version.stdout.includes("commit source"), `the binary carries a commit stamp: ${version.stdout}`);
      const dir = `${compileDir}/run`;
      await Deno.mkdir(dir);
      await smokeCluster([bin], dir);
    } finally {
      await Deno.remove(compileDir, { recursive: true });
    }
  },
});
