import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { filePagesChoice, parseSmaps, releasable, releasableMappings } from "./file_pages.ts";
import { LIBC_PATHS } from "./malloc_trim.ts";
import { releaseRunFlags } from "./permissions.ts";

const EXE = "/opt/deno/deno";

/** A /proc/<pid>/smaps excerpt: one mapping per kind the rule must tell apart. */
function mapping(range: string, perms: string, path: string, rssKb: number, anonymousKb: number): string {
  return [
    `${range} ${perms} 00000000 fe:00 5308668                    ${path}`,
    `Size:              ${rssKb + 4} kB`,
    `Rss:               ${rssKb} kB`,
    `Pss:               ${rssKb} kB`,
    `Anonymous:         ${anonymousKb} kB`,
    `VmFlags: rd mr mw me dw sd`,
  ].join("\n");
}

const SMAPS = [
  mapping("55a25e46b000-55a260d21000", "r--p", EXE, 19528, 0), // read-only data: released
  mapping("55a260d22000-55a2648c6000", "r-xp", EXE, 22168, 0), // code: released
  mapping("55a2648c6000-55a264b17000", "r--p", EXE, 2372, 2372), // RELRO: COW'd pages, kept
  mapping("55a264b17000-55a264b27000", "rw-p", EXE, 60, 60), // .data: writable, kept
  mapping("55a264b28000-55a264b51000", "rw-p", EXE, 0, 0), // .bss not yet written: writable, kept
  mapping("55a297ff1000-55a298220000", "rw-p", "[heap]", 2096, 2096),
  mapping("7fbfd10e3000-7fbfd117f000", "rw-p", "", 624, 624),
  mapping("7fbfdaca6000-7fbfdadfc000", "r-xp", "/usr/lib/x86_64-linux-gnu/libc.so.6", 1304, 0), // not the exe
  mapping("7fbfdae00000-7fbfdae10000", "r--p", `${EXE} (deleted)`, 64, 0),
  mapping("7fbfb3dc0000-7fbfb3fe1000", "r-xp", EXE, 1792, 0), // V8's remapped builtins: released
  mapping("7fbfb4000000-7fbfb4001000", "r--p", EXE, 0, 0), // nothing resident: skipped
].join("\n");

Deno.test("smaps is parsed into ranges, permissions, paths and the resident and anonymous sizes", () => {
  const ms = parseSmaps(SMAPS);
  strictEqual(ms.length, 11);
  deepStrictEqual(ms[2], {
    start: 0x55a2648c6000n,
    end: 0x55a264b17000n,
    perms: "r--p",
    path: EXE,
    rssKb: 2372,
    anonymousKb: 2372,
  });
  strictEqual(ms[6].path, "");
});

Deno.test("only the executable's read-only mappings without copy-on-write pages are released", () => {
  const chosen = releasableMappings(SMAPS, [EXE]).map((m) => m.start.toString(16));
  deepStrictEqual(chosen, ["55a25e46b000", "55a260d22000", "7fbfb3dc0000"]);
});

Deno.test("a mapping whose anonymous size smaps did not give is never released", () => {
  const noAnonLine = `55a25e46b000-55a260d21000 r--p 00000000 fe:00 1 ${EXE}\nRss:  100 kB\n`;
  const [m] = parseSmaps(noAnonLine);
  strictEqual(releasable(m, [EXE]), false);
});

Deno.test("the node's choice: dontneed by default, data, keep, pageout or cold by name, anything else refused", () => {
  deepStrictEqual(filePagesChoice(undefined), { advice: "dontneed", scope: "all" });
  deepStrictEqual(filePagesChoice(""), { advice: "dontneed", scope: "all" });
  deepStrictEqual(filePagesChoice("dontneed"), { advice: "dontneed", scope: "all" });
  deepStrictEqual(filePagesChoice("data"), { advice: "dontneed", scope: "data" });
  strictEqual(filePagesChoice("keep"), "keep");
  deepStrictEqual(filePagesChoice("pageout"), { advice: "pageout", scope: "all" });
  deepStrictEqual(filePagesChoice("cold"), { advice: "cold", scope: "all" });
  const r = filePagesChoice("free");
  ok(
    typeof r === "object" && "refused" in r && r.refused.includes("RAFTKV_FILE_PAGES=free"),
    JSON.stringify(r),
  );
});

const glibc = Deno.build.os === "linux" && LIBC_PATHS.some((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/**
 * A child deno process (the release permissions) that starts, releases with `dontneed`, and reports its
 * RssFile before and after, what it advised, the executable's mappings that were not advised (before and
 * after), and a computation done after the release (code and read-only data fault back in).
 */
async function child(): Promise<{
  fileBeforeKb: number;
  fileAfterKb: number;
  advised: { perms: string; anonymousKb: number }[];
  keptBefore: string[];
  keptAfter: string[];
  after: string;
}> {
  const code = `import { openFilePageRelease, parseSmaps, releasable } from ${
    JSON.stringify(new URL("./file_pages.ts", import.meta.url).href)
  };
const p = openFilePageRelease();
if (!p.release) throw new Error(p.unavailable);
const exe = Deno.realPathSync(Deno.execPath());
const rssFile = () => Number(/RssFile:\\s+(\\d+)/.exec(p.readSelf("status"))[1]);
// The executable's other mappings (writable, RELRO): their anonymous (private) pages must be untouched.
const kept = () => parseSmaps(p.readSelf("smaps"))
  .filter((m) => m.path === exe && !releasable(m, [exe]))
  .map((m) => m.start.toString(16) + " " + m.perms + " anon " + m.anonymousKb);
new Intl.DateTimeFormat("de-DE").format(0); // touch a little of everything first
const keptBefore = kept();
const fileBeforeKb = rssFile();
const r = p.release("dontneed");
const fileAfterKb = rssFile();
const keptAfter = kept();
const after = JSON.stringify({ sum: [1, 2, 3].reduce((a, b) => a + b), date: new Intl.DateTimeFormat("en-GB").format(0), re: /a+b/.test("aaab") });
console.log(JSON.stringify({ fileBeforeKb, fileAfterKb, advised: r.advised.map((m) => ({ perms: m.perms, anonymousKb: m.anonymousKb })), keptBefore, keptAfter, after }));`;
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(script, code);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...releaseRunFlags(), script],
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(script));
  strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test({
  name: "in a child process the release lowers RssFile and never touches a writable or copy-on-write mapping",
  ignore: !glibc,
  fn: async () => {
    const r = await child();
    ok(r.advised.length >= 2, `advised ${r.advised.length} mappings`);
    for (const m of r.advised) {
      ok(!m.perms.includes("w"), `advised a writable mapping: ${m.perms}`);
      strictEqual(m.anonymousKb, 0, "advised a mapping holding copy-on-write pages");
    }
    // The executable's code and read-only data are most of RssFile (~45 MiB at start); at least half goes.
    ok(
      r.fileAfterKb < r.fileBeforeKb - 16 * 1024,
      `RssFile ${r.fileBeforeKb} → ${r.fileAfterKb} KiB: less than 16 MiB released`,
    );
    // RELRO and .data kept their private pages (a release of them would have dropped Anonymous to 0).
    ok(r.keptBefore.some((k) => !k.endsWith("anon 0")), `no COW'd mapping seen: ${r.keptBefore.join("; ")}`);
    deepStrictEqual(r.keptAfter, r.keptBefore);
    // And the process runs on: code and data fault back in from the page cache.
    strictEqual(r.after, JSON.stringify({ sum: 6, date: "01/01/1970", re: true }));
  },
});
