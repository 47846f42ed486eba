/**
 * `deno task install --bin-dir DIR` with a DIR it cannot install into (a file, a path through a file, a folder
 * it may not write, one it may not create) stops before building, with one line naming the path, why, and what
 * to pass instead, and exits 1: no uncaught stack trace.
 */
import { ok, rejects, strictEqual } from "node:assert/strict";
import { InstallError, prepareBinDir } from "../../scripts/install.ts";
import { REPO_PATH, run } from "./helpers.ts";

/** A folder this process may not write in: as root (which ignores modes) one of sysfs's, else a 0555 folder. */
async function unwritableDir(tmp: string): Promise<string> {
  if (Deno.uid() === 0) return "/sys/fs";
  const dir = `${tmp}/readonly`;
  await Deno.mkdir(dir);
  await Deno.chmod(dir, 0o555);
  return dir;
}

async function withTemp(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-install-bad-" });
  try {
    await f(dir);
  } finally {
    await Deno.chmod(dir, 0o755);
    await Deno.remove(dir, { recursive: true });
  }
}

/** The refusal's message (and that it is one). */
async function refusal(binDir: string): Promise<string> {
  let message = "";
  await rejects(prepareBinDir(binDir), (e) => {
    ok(e instanceof InstallError, String(e));
    message = e.message;
    return true;
  });
  ok(!message.includes("\n"), message);
  return message;
}

Deno.test("install --bin-dir naming an existing file exits 1 with one line naming it and what to pass, before building", async () => {
  await withTemp(async (tmp) => {
    const file = `${tmp}/raftkv`;
    await Deno.writeTextFile(file, "#!/bin/sh\n");
    const r = await run(Deno.execPath(), ["run", "-A", "scripts/install.ts", "--bin-dir", file], {
      cwd: REPO_PATH,
      timeoutMs: 60_000,
    });
    strictEqual(r.code, 1, r.stderr);
    strictEqual(
      r.stderr,
      `raftkv install: --bin-dir ${file} is a file, not a folder: pass the folder to put the raftkv command ` +
        `in, e.g. --bin-dir ${tmp}\n`,
    );
    strictEqual(await Deno.readTextFile(file), "#!/bin/sh\n"); // left alone
  });
});

Deno.test("install --bin-dir below a file is refused naming the file in the way", async () => {
  await withTemp(async (tmp) => {
    await Deno.writeTextFile(`${tmp}/notes`, "x");
    strictEqual(
      await refusal(`${tmp}/notes/bin`),
      `--bin-dir ${tmp}/notes/bin cannot be created: ${tmp}/notes is a file, not a folder; ` +
        `pass a folder path (default: $HOME/.local/bin)`,
    );
  });
});

Deno.test("install --bin-dir in a folder it may not write is refused naming the folder", async () => {
  await withTemp(async (tmp) => {
    const ro = await unwritableDir(tmp);
    strictEqual(
      await refusal(ro),
      `--bin-dir ${ro} is not writable (Permission denied): pass a folder you can write to ` +
        `(default: $HOME/.local/bin)`,
    );
    const missing = `${ro}/raftkv-bin/sub`;
    const m = await refusal(missing);
    ok(
      m.startsWith(`--bin-dir ${missing} does not exist and cannot be created in ${ro} (`) &&
        m.endsWith("): pass a folder you can write to (default: $HOME/.local/bin)"),
      m,
    );
  });
});

Deno.test("install --bin-dir with missing parents creates them, and refuses a raftkv folder in the way", async () => {
  await withTemp(async (tmp) => {
    const dir = `${tmp}/a/b/bin`;
    strictEqual(await prepareBinDir(dir), `created ${dir}`);
    ok((await Deno.stat(dir)).isDirectory);
    strictEqual(await prepareBinDir(dir), undefined); // already there: nothing to say
    await Deno.mkdir(`${dir}/raftkv`);
    strictEqual(
      await refusal(dir),
      `--bin-dir ${dir}: ${dir}/raftkv is a folder, which the launcher cannot replace: remove it or pass ` +
        `another --bin-dir`,
    );
  });
});
