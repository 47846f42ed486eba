/**
 * The systemd unit: `systemd-analyze verify` accepts it without a single warning, the fields a node needs
 * are there, `installUnit` writes the files and names the systemctl commands, and the commander subcommand
 * prints the unit.
 */
import { deepStrictEqual, match, ok as assert, rejects, strictEqual } from "node:assert/strict";
import {
  INSTALLED_CONFIG_PATH,
  installUnit,
  prepareUnit,
  quoteExecArg,
  renderUnit,
  systemdUnitCommand,
  UnitOptionsError,
} from "../../src/ops/systemd.ts";
import { assertIncludes, onPath, REPO_PATH, run } from "./helpers.ts";

/** The unit as section → key → values (keys may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      current = new Map();
      sections.set(s[1], current);
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line);
    assert(kv && current, `unexpected unit line: ${line}`);
    current.set(kv[1], [...(current.get(kv[1]) ?? []), kv[2]]);
  }
  return sections;
}

function field(unit: Map<string, Map<string, string[]>>, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.join("\n");
}

/** Writes `text` as raftkv.service in `dir` and runs systemd-analyze verify on it. */
async function verify(dir: string, text: string, name = "raftkv.service") {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return await run("systemd-analyze", ["verify", path], { timeoutMs: 60_000 });
}

/** A temp dir with an executable named raftkv (a copy of /bin/true) for ExecStart to point at. */
async function tempWithBinary(): Promise<{ dir: string; binary: string }> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-systemd-" });
  const binary = `${dir}/raftkv`;
  await Deno.copyFile("/bin/true", binary);
  await Deno.chmod(binary, 0o755);
  return { dir, binary };
}

const haveAnalyze = await onPath("systemd-analyze");
if (!haveAnalyze) {
  console.log("systemd_test: systemd-analyze is missing: install it with `apt-get install -y systemd`");
}

Deno.test("systemd-analyze verify accepts the unit of node 2 without any warning", async () => {
  assert(haveAnalyze, "systemd-analyze is not installed (apt-get install -y systemd)");
  const { dir, binary } = await tempWithBinary();
  try {
    const unit = renderUnit({ id: 2, configPath: INSTALLED_CONFIG_PATH, binaryPath: binary });
    const r = await verify(dir, unit);
    strictEqual(r.stderr.trim(), "", `systemd-analyze verify warned:\n${r.stderr}\nunit:\n${unit}`);
    strictEqual(r.code, 0, `systemd-analyze verify exited ${r.code}:\n${r.stdout}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemd-analyze verify reports a bad value only on stderr and exits 0, which is why the check reads stderr", async () => {
  assert(haveAnalyze, "systemd-analyze is not installed (apt-get install -y systemd)");
  const { dir, binary } = await tempWithBinary();
  try {
    const bad = renderUnit({ id: 2, configPath: INSTALLED_CONFIG_PATH, binaryPath: binary })
      .replace("RestartSec=1", "RestartSec=soon");
    const r = await verify(dir, bad);
    strictEqual(r.code, 0, "systemd-analyze exits 0 on bad values; the test relies on stderr");
    assertIncludes(r.stderr, "soon");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a binary path with spaces and a percent sign is quoted so systemd-analyze still accepts the unit", async () => {
  assert(haveAnalyze, "systemd-analyze is not installed (apt-get install -y systemd)");
  const { dir } = await tempWithBinary();
  try {
    const odd = `${dir}/my bin 100%`;
    await Deno.mkdir(odd);
    await Deno.copyFile("/bin/true", `${odd}/raftkv`);
    await Deno.chmod(`${odd}/raftkv`, 0o755);
    const unit = renderUnit({ id: 3, configPath: "/etc/raft kv/cluster.json", binaryPath: `${odd}/raftkv` });
    assertIncludes(
      unit,
      `ExecStart="${dir}/my bin 100%%/raftkv" node --id 3 --config "/etc/raft kv/cluster.json"`,
    );
    const r = await verify(dir, unit);
    strictEqual(r.stderr.trim(), "", `systemd-analyze verify warned:\n${r.stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the unit runs the node as a notify service under the raftkv user with a sandbox and a hand-off stop", () => {
  const unit = parseUnit(renderUnit({ id: 2, configPath: "/etc/raftkv/cluster.json" }));
  const u = (key: string) => field(unit, "Unit", key);
  const s = (key: string) => field(unit, "Service", key);
  strictEqual(
    s("ExecStart"),
    "/usr/local/bin/raftkv node --id 2 --config /etc/raftkv/cluster.json --data-dir /var/lib/raftkv --quiet",
  );
  strictEqual(s("Type"), "notify");
  strictEqual(s("ExecReload"), "/bin/kill -HUP $MAINPID", "systemctl reload rereads the certificates");
  strictEqual(s("Restart"), "on-failure");
  strictEqual(s("RestartSec"), "1");
  strictEqual(s("User"), "raftkv");
  strictEqual(s("Group"), "raftkv");
  strictEqual(s("StateDirectory"), "raftkv");
  strictEqual(s("WorkingDirectory"), "/var/lib/raftkv");
  strictEqual(s("ReadWritePaths"), "/var/lib/raftkv");
  strictEqual(s("NoNewPrivileges"), "yes");
  strictEqual(s("ProtectSystem"), "strict");
  strictEqual(s("ProtectHome"), "yes");
  strictEqual(s("PrivateTmp"), "yes");
  strictEqual(s("LimitNOFILE"), "65536");
  strictEqual(s("KillSignal"), "SIGTERM");
  assert(Number(s("TimeoutStopSec")) >= 30, "TimeoutStopSec must leave time for a leadership hand-off");
  strictEqual(s("MemoryDenyWriteExecute"), undefined, "V8's JIT needs writable-executable memory");
  match(u("Documentation") ?? "", /^https:\/\//);
  strictEqual(u("After"), "network-online.target");
  strictEqual(u("Wants"), "network-online.target");
  strictEqual(field(unit, "Install", "WantedBy"), "multi-user.target");
});

Deno.test("the unit starts the node with glibc limited to two malloc arenas (MALLOC_ARENA_MAX, read only at start)", () => {
  const unit = renderUnit({ id: 2, configPath: "/etc/raftkv/cluster.json" });
  match(unit, /^Environment=MALLOC_ARENA_MAX=2$/m);
  match(unit, /^Environment=MALLOC_MMAP_THRESHOLD_=65536$/m);
  match(unit, /^Environment=NO_COLOR=1$/m);
});

Deno.test("a data dir outside /var/lib gets no StateDirectory but is writable and the working directory", () => {
  const unit = parseUnit(
    renderUnit({ id: 1, configPath: "/etc/raftkv/cluster.json", dataDir: "/srv/raftkv/" }),
  );
  strictEqual(field(unit, "Service", "StateDirectory"), undefined);
  strictEqual(field(unit, "Service", "ReadWritePaths"), "/srv/raftkv");
  strictEqual(field(unit, "Service", "WorkingDirectory"), "/srv/raftkv");
  assertIncludes(field(unit, "Service", "ExecStart")!, "--data-dir /srv/raftkv --quiet");
});

Deno.test("renderUnit refuses options that cannot make a working unit, naming the option", () => {
  const bad: [Parameters<typeof renderUnit>[0], string][] = [
    [{ id: 0, configPath: "/etc/raftkv/cluster.json" }, "id"],
    [{ id: 1, configPath: "cluster.json" }, "configPath"],
    [{ id: 1, configPath: "/c.json", binaryPath: "raftkv" }, "binaryPath"],
    [{ id: 1, configPath: "/c.json", user: "Root Admin" }, "user"],
    [{ id: 1, configPath: "/c.json", dataDir: "data" }, "dataDir"],
  ];
  for (const [opts, name] of bad) {
    try {
      renderUnit(opts);
      throw new Error(`accepted ${JSON.stringify(opts)}`);
    } catch (e) {
      assert(e instanceof UnitOptionsError, String(e));
      assertIncludes(e.message, name);
    }
  }
});

Deno.test("ExecStart words are escaped the way systemd reads them", () => {
  strictEqual(quoteExecArg("/usr/local/bin/raftkv"), "/usr/local/bin/raftkv");
  strictEqual(quoteExecArg("a b"), '"a b"');
  strictEqual(quoteExecArg("50%"), "50%%");
  strictEqual(quoteExecArg("$HOME"), "$$HOME");
  strictEqual(quoteExecArg('say "hi"'), '"say \\"hi\\""');
  strictEqual(quoteExecArg(""), '""');
});

async function writeConfig(dir: string, ids: number[]): Promise<string> {
  const path = `${dir}/cluster.json`;
  const nodes = ids.map((id) => ({ id, address: `10.0.0.${id}:7101` }));
  await Deno.writeTextFile(path, JSON.stringify({ clusterId: "t", nodes }, null, 2));
  return path;
}

Deno.test("installUnit writes the unit and the config and returns daemon-reload then enable --now", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-install-" });
  try {
    const configPath = await writeConfig(dir, [1, 2, 3]);
    const root = `${dir}/root`;
    const r = await installUnit({ id: 2, configPath, rootDir: root, createUser: false });
    strictEqual(r.unitPath, `${root}/etc/systemd/system/raftkv.service`);
    strictEqual(r.configPath, `${root}/etc/raftkv/cluster.json`);
    strictEqual(r.userCreated, false);
    deepStrictEqual(r.commands, [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "raftkv"]]);
    strictEqual(await Deno.readTextFile(r.configPath), await Deno.readTextFile(configPath));
    const unit = await Deno.readTextFile(r.unitPath);
    strictEqual(unit, renderUnit({ id: 2, configPath: "/etc/raftkv/cluster.json" }));
    strictEqual((await Deno.stat(r.unitPath)).mode! & 0o777, 0o644);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemd-unit warns when the installed node would find no TLS files, or reads relative ones from /etc/raftkv", async () => {
  // The unit passes no --cacert/--cert/--key: a config without "tls" gave a unit whose node refuses to start
  // ("TLS is on by default and --cacert, --cert, --key are missing"), found only in journalctl.
  const dir = await Deno.makeTempDir({ prefix: "raftkv-install-" });
  try {
    const configPath = await writeConfig(dir, [1, 2, 3]);
    const bare = await prepareUnit({ id: 2, configPath });
    assert(
      bare.warnings.some((w) => /names no "tls" files: the node will not start/.test(w)),
      bare.warnings.join("\n"),
    );
    const raw = JSON.parse(await Deno.readTextFile(configPath));
    raw.tls = { cacert: "certs/ca.crt", cert: "/etc/raftkv/certs/node-{id}.crt", key: "certs/node-{id}.key" };
    await Deno.writeTextFile(configPath, JSON.stringify(raw));
    const relative = (await prepareUnit({ id: 2, configPath })).warnings.filter((w) => /tls\./.test(w));
    deepStrictEqual(relative.map((w) => /^tls\.(\w+) /.exec(w)?.[1]), ["cacert", "key"]);
    match(relative[1], /reads \/etc\/raftkv\/certs\/node-2\.key/);
    raw.tls = { cacert: "/etc/raftkv/certs/ca.crt", cert: "/c/node-{id}.crt", key: "/c/node-{id}.key" };
    await Deno.writeTextFile(configPath, JSON.stringify(raw));
    const absolute = await prepareUnit({ id: 2, configPath });
    assert(!absolute.warnings.some((w) => /tls/.test(w)), absolute.warnings.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("installUnit refuses a config that does not list the node id", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-install-" });
  try {
    const configPath = await writeConfig(dir, [1, 2, 3]);
    await rejects(
      () => installUnit({ id: 7, configPath, rootDir: `${dir}/root`, createUser: false }),
      (e) => e instanceof UnitOptionsError && e.message.includes("node id 7 is not in"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node added after bootstrap gets a unit that runs it with --join --address (issue 11)", async () => {
  const unit = parseUnit(
    renderUnit({ id: 6, configPath: "/etc/raftkv/cluster.json", joinAddress: "10.0.0.9:7101" }),
  );
  strictEqual(
    field(unit, "Service", "ExecStart"),
    "/usr/local/bin/raftkv node --id 6 --config /etc/raftkv/cluster.json --data-dir /var/lib/raftkv --quiet " +
      "--join --address 10.0.0.9:7101",
  );
  const dir = await Deno.makeTempDir({ prefix: "raftkv-install-" });
  try {
    const configPath = await writeConfig(dir, [1, 2, 3]);
    const r = await installUnit({
      id: 6,
      configPath,
      rootDir: `${dir}/root`,
      createUser: false,
      joinAddress: "10.0.0.9:7101",
    });
    assert(r.unitPath.endsWith("raftkv.service"));
    await rejects(
      () => installUnit({ id: 2, configPath, rootDir: `${dir}/root`, createUser: false, joinAddress: "h:1" }),
      (e) => e instanceof UnitOptionsError && e.message.includes("--join is for new ids only"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the systemd-unit subcommand prints the unit for the given id and binary", async () => {
  const cmd = systemdUnitCommand();
  strictEqual(cmd.name(), "systemd-unit");
  const dir = await Deno.makeTempDir({ prefix: "raftkv-unit-cli-" });
  try {
    const configPath = await writeConfig(dir, [1, 2, 3, 4]);
    const cli = ["run", "-A", `${REPO_PATH}/tests/ops/testdata/systemd_unit_cli.ts`];
    const r = await run(Deno.execPath(), [
      ...cli,
      "--id",
      "4",
      "--config",
      configPath,
      "--binary",
      "/opt/raftkv/bin/raftkv",
    ], { cwd: REPO_PATH });
    strictEqual(r.code, 0, r.stderr);
    strictEqual(
      r.stdout,
      renderUnit({ id: 4, configPath: "/etc/raftkv/cluster.json", binaryPath: "/opt/raftkv/bin/raftkv" }),
    );
    const bad = await run(Deno.execPath(), [...cli, "--id", "zero", "--config", "/c.json"], {
      cwd: REPO_PATH,
    });
    assert(bad.code !== 0, "a non-numeric --id must fail");
    assertIncludes(bad.stderr, "positive integer");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("raftkv systemd-unit resolves a relative --config, refuses an id it lacks, prints what --install writes, and warns about hidden paths", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-unit-edges-" });
  try {
    await writeConfig(dir, [1, 2, 3]);
    const raftkv = (args: string[]) =>
      run(Deno.execPath(), ["run", "-A", `${REPO_PATH}/mod.ts`, "systemd-unit", ...args], {
        cwd: REPO_PATH,
        env: { INIT_CWD: dir },
      });
    // A relative --config, as typed in `dir` (INIT_CWD under deno task).
    const printed = await raftkv([
      "--id",
      "2",
      "--config",
      "cluster.json",
      "--binary",
      "/usr/local/bin/raftkv",
    ]);
    strictEqual(printed.code, 0, printed.stderr);
    assert(!printed.stderr.includes("absolute path"), printed.stderr);
    assertIncludes(printed.stderr, `${dir}/cluster.json`);
    const root = `${dir}/root`;
    await installUnit({ id: 2, configPath: `${dir}/cluster.json`, rootDir: root, createUser: false });
    strictEqual(printed.stdout, await Deno.readTextFile(`${root}/etc/systemd/system/raftkv.service`));

    const missing = await raftkv(["--id", "9", "--config", "cluster.json"]);
    strictEqual(missing.code, 2, "an id the config lacks is a usage error");
    assertIncludes(missing.stderr, `node id 9 is not in ${dir}/cluster.json (ids: 1, 2, 3)`);

    const hidden = await raftkv([
      "--id",
      "1",
      "--config",
      "cluster.json",
      "--binary",
      "/home/me/raftkv",
      "--data-dir",
      "/tmp/raftkv-data",
    ]);
    strictEqual(hidden.code, 0, hidden.stderr);
    assertIncludes(hidden.stderr, "warning: --binary /home/me/raftkv will not be reachable by the service");
    assertIncludes(
      hidden.stderr,
      "warning: --data-dir /tmp/raftkv-data will not be reachable by the service",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
