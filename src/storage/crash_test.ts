import { FileLogStore } from "./file_store.ts";
import { assert, assertEquals } from "./testing.ts";
import { entryFor } from "./testdata/crash_child.ts";

const CHILD = new URL("./testdata/crash_child.ts", import.meta.url).pathname;

/** Runs the child writer until it has reported `reports` saves, SIGKILLs it, returns every report it printed. */
async function runAndKill(dir: string, reports: number): Promise<number[][]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", "-A", CHILD, dir],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const got: number[][] = [];
  let killed = false;
  let pending = "";
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const errText = (async () => {
    let s = "";
    for (;;) {
      const { value, done } = await stderr.read();
      if (done) return s;
      s += value;
    }
  })();
  // Every line read, even after the kill was sent, reports a save that had resolved.
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      got.push(pending.slice(0, nl).split(" ").map(Number));
      pending = pending.slice(nl + 1);
    }
    if (!killed && got.length >= reports) {
      child.kill("SIGKILL");
      killed = true;
    }
  }
  const status = await child.status;
  const err = await errText;
  assert(killed, `the child exited by itself (${status.code}): ${err}`);
  assertEquals(status.signal, "SIGKILL", err);
  return got;
}

Deno.test("every entry a writer reported saved survives SIGKILL, across repeated crashes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-crash-" });
  try {
    let model: number[] = []; // model[i - 1]: the term of entry i as last reported
    let commit = 0;
    let torn = 0;
    let truncatedInFlight = 0;
    for (let round = 0; round < 4; round++) {
      const reports = await runAndKill(dir, 100 + 40 * round);
      assert(reports.length >= 100, "reports");
      let lastTerm = 0;
      for (const [from, last, term, c] of reports) {
        model.length = from - 1;
        for (let i = from; i <= last; i++) model.push(term);
        commit = Math.max(commit, c);
        lastTerm = term;
      }
      const store = await FileLogStore.open(dir, 1, "crash");
      const st = store.load();
      torn += st.warnings.length;
      const disk = st.entries;
      assert(disk.length >= commit, `round ${round}: ${disk.length} entries on disk, ${commit} committed`);
      for (const e of disk) assertEquals(e, entryFor(e.index, e.term), `round ${round}: entry ${e.index}`);
      // The disk holds the whole reported log (perhaps more: saves that resolved unreported), unless the
      // unreported save in flight truncated it: the child truncates at most 3 entries, never committed ones,
      // and writes the replacements in a newer term.
      let d = 1;
      while (d <= Math.min(disk.length, model.length) && disk[d - 1].term === model[d - 1]) d++;
      assert(d > commit, `round ${round}: entry ${d} differs but ${commit} were committed`);
      if (d <= model.length) {
        assert(d >= model.length - 3, `round ${round}: reported entries ${d}..${model.length} were lost`);
        for (let i = d; i <= disk.length; i++) {
          assert(disk[i - 1].term > lastTerm, `round ${round}: entry ${i} has term ${disk[i - 1].term}`);
        }
        truncatedInFlight++;
      }
      assert(st.commitIndex <= disk.length);
      // The next child continues from the disk; the parent's model follows.
      model = disk.map((e) => e.term);
      commit = st.commitIndex;
      await store.close();
    }
    console.log(`over 4 crashes: ${torn} torn tails repaired, ${truncatedInFlight} truncations in flight`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
