/**
 * How fast a running cluster's folders grow: samples every `logs_node_<id>/` under a data dir twice, `--seconds`
 * apart, and prints bytes per second and per day for dump.txt (rotated files included), logs.txt and
 * metadata.txt. Used for the disk figures in README.md.
 *
 *     deno run -A scripts/measure_disk.ts --data-dir raftkv-data --seconds 120
 *
 * Run it against an idle cluster, or while `raftkv bench` loads one. dump.txt's growth counts the bytes
 * written, rotations included (a rotated file's size is added back), so it is the write rate, not the bound.
 *
 * @module
 */

interface Sample {
  /** Bytes written to the dump (dump.txt plus every rotated dump.txt.N). */
  dump: number;
  logs: number;
  metadata: number;
}

function sizeOf(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

function sample(folder: string): Sample {
  let dump = 0;
  for (const e of Deno.readDirSync(folder)) {
    if (e.name.startsWith("dump.txt")) dump += sizeOf(`${folder}/${e.name}`);
  }
  return { dump, logs: sizeOf(`${folder}/logs.txt`), metadata: sizeOf(`${folder}/metadata.txt`) };
}

function human(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = bytes, u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v >= 100 || u === 0 ? 0 : 1)} ${units[u]}`;
}

if (import.meta.main) {
  let dataDir = "raftkv-data", seconds = 60;
  for (let i = 0; i < Deno.args.length; i++) {
    if (Deno.args[i] === "--data-dir") dataDir = Deno.args[++i];
    else if (Deno.args[i] === "--seconds") seconds = Number(Deno.args[++i]);
  }
  const folders = [...Deno.readDirSync(dataDir)].filter((e) =>
    e.isDirectory && /^logs_node_\d+$/.test(e.name)
  )
    .map((e) => `${dataDir}/${e.name}`).sort();
  const before = folders.map(sample);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = folders.map(sample);
  console.log(`growth over ${seconds} s (per day = × ${(86400 / seconds).toFixed(0)}):`);
  console.log("node            dump.txt/s   logs.txt/s   dump/day     logs/day     dump now");
  folders.forEach((f, i) => {
    // A rotation in between moves bytes out of the sampled files only when the oldest is deleted; with the
    // default bound (10 MiB × 6) and short windows that does not happen, so after - before is the write rate.
    const d = after[i].dump - before[i].dump, l = after[i].logs - before[i].logs;
    console.log(
      `${f.split("/").pop()!.padEnd(14)}  ${human(d / seconds).padStart(10)}  ${
        human(l / seconds).padStart(10)
      }  ` +
        `${human((d * 86400) / seconds).padStart(10)}  ${human((l * 86400) / seconds).padStart(10)}  ` +
        `${human(after[i].dump).padStart(10)}`,
    );
  });
}
