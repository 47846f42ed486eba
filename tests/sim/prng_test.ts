import { EventQueue } from "./heap.ts";
import { Prng } from "./prng.ts";
import { assert, assertEquals } from "./assert.ts";

Deno.test("the same seed yields the same sequence and another seed a different one", () => {
  const a = new Prng(42), b = new Prng(42), c = new Prng(43);
  const xs = Array.from({ length: 8 }, () => a.u32());
  assertEquals(Array.from({ length: 8 }, () => b.u32()), xs);
  assert(Array.from({ length: 8 }, () => c.u32()).some((x, i) => x !== xs[i]));
});

Deno.test("a forked stream does not depend on how much the parent drew", () => {
  const a = new Prng(7), b = new Prng(7);
  for (let i = 0; i < 100; i++) b.float();
  assertEquals(a.fork("net").u32(), b.fork("net").u32());
  assert(a.fork("net").u32() !== a.fork("clients").u32());
});

Deno.test("int, range, chance and pick stay within their bounds and cover them", () => {
  const r = new Prng(1);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const n = r.int(3, 7);
    assert(n >= 3 && n <= 7 && Number.isInteger(n));
    seen.add(n);
    const f = r.range(-1, 1);
    assert(f >= -1 && f < 1);
  }
  assertEquals([...seen].sort(), [3, 4, 5, 6, 7]);
  assert(!r.chance(0) && r.chance(1));
  let heads = 0;
  for (let i = 0; i < 10_000; i++) if (r.chance(0.3)) heads++;
  assert(heads > 2700 && heads < 3300, `chance(0.3) gave ${heads}/10000`);
  assertEquals(r.shuffle([1, 2, 3, 4]).sort(), [1, 2, 3, 4]);
  assertEquals(r.weighted([["a", 0], ["b", 1]]), "b");
});

Deno.test("the event queue pops by time and, at equal times, in insertion order", () => {
  const q = new EventQueue<string>();
  q.push(5, "c");
  q.push(1, "a");
  q.push(5, "d");
  q.push(3, "b");
  q.push(5, "e");
  const out: string[] = [];
  while (q.size > 0) out.push(q.pop()!.item);
  assertEquals(out, ["a", "b", "c", "d", "e"]);
  assertEquals(q.peekMs(), Infinity);
});
