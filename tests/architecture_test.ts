/**
 * The layout is the architecture: these tests keep the Raft core pure and the layers pointing one way.
 */
const ROOT = new URL("../", import.meta.url);

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await sourceFiles(path));
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(path);
  }
  return out;
}

function importsOf(text: string): string[] {
  return [...text.matchAll(/(?:import|export)[^"']*?from\s*["']([^"']+)["']/g)].map((m) => m[1]);
}

Deno.test("the Raft core imports nothing outside src/raft/", async () => {
  const offenders: string[] = [];
  for (const file of await sourceFiles("src/raft")) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    for (const spec of importsOf(text)) {
      if (!spec.startsWith("./")) offenders.push(`${file}: imports ${spec}`);
    }
  }
  if (offenders.length > 0) throw new Error(`impure core:\n${offenders.join("\n")}`);
});

Deno.test("the Raft core reads no clock, draws no randomness and does no I/O", async () => {
  const forbidden =
    /\bDate\.now\b|\bnew Date\b|\bsetTimeout\b|\bsetInterval\b|\bMath\.random\b|\bDeno\.|\bperformance\.now\b|\bfetch\(|\bconsole\./;
  const offenders: string[] = [];
  for (const file of await sourceFiles("src/raft")) {
    const lines = (await Deno.readTextFile(new URL(file, ROOT))).split("\n");
    lines.forEach((line, i) => {
      const code = line.replace(/\/\*.*?\*\//g, "").replace(/\/\/.*$/, "").replace(/^\s*\*.*$/, "");
      if (forbidden.test(code)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  if (offenders.length > 0) throw new Error(`impure core:\n${offenders.join("\n")}`);
});

Deno.test("the state machine depends only on the core's types", async () => {
  for (const file of await sourceFiles("src/kv")) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    for (const spec of importsOf(text)) {
      if (!spec.startsWith("./") && !spec.startsWith("../raft/")) throw new Error(`${file} imports ${spec}`);
    }
  }
});

Deno.test("the clock-sanity detector reads no clock of its own and imports nothing", async () => {
  const forbidden = /\bDate\.now\b|\bnew Date\b|\bsetTimeout\b|\bperformance\.now\b|\bDeno\./;
  const offenders: string[] = [];
  for (const file of await sourceFiles("src/clock")) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    for (const spec of importsOf(text)) {
      if (!spec.startsWith("./")) offenders.push(`${file}: imports ${spec}`);
    }
    text.split("\n").forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, "").replace(/^\s*\*.*$/, "");
      if (forbidden.test(code)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  if (offenders.length > 0) throw new Error(`impure clock sanity:\n${offenders.join("\n")}`);
});
