import { ok, strictEqual } from "node:assert/strict";
import { LIBC_PATHS, openMallocTrim } from "./malloc_trim.ts";
import { releaseRunFlags } from "./permissions.ts";

const glibc = Deno.build.os === "linux" && LIBC_PATHS.some((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** What openMallocTrim says in a child process run with `flags`: `trim:<true|false>` or `unavailable:<why>`. */
async function probe(flags: string[]): Promise<string> {
  const code = `import { openMallocTrim } from ${
    JSON.stringify(new URL("./malloc_trim.ts", import.meta.url).href)
  };
const m = openMallocTrim();
console.log(m.trim ? "trim:" + typeof m.trim() : "unavailable:" + m.unavailable);`;
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(script, code);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, script],
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(script));
  const text = new TextDecoder().decode(out.stdout).trim();
  strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  return text;
}

Deno.test({
  name: "with the release permissions a glibc Linux node gets a working malloc_trim",
  ignore: !glibc,
  fn: async () => {
    strictEqual(await probe(releaseRunFlags()), "trim:boolean");
  },
});

Deno.test("without FFI permission it says why instead of prompting or throwing", async () => {
  const said = await probe(["--allow-read"]);
  ok(said.startsWith("unavailable:"), said);
  if (Deno.build.os === "linux") ok(said.includes("--allow-ffi"), said);
});

Deno.test({
  name: "in this process (all permissions) the trim runs and reports whether it gave memory back",
  ignore: !glibc,
  fn: () => {
    const m = openMallocTrim();
    strictEqual(m.unavailable, undefined);
    strictEqual(typeof m.trim?.(), "boolean");
  },
});
