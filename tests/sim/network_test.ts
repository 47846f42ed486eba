import { drawClocks, SimClock } from "./clock.ts";
import { Network, type NetworkOptions } from "./network.ts";
import { Prng } from "./prng.ts";
import { assert, assertEquals } from "./assert.ts";

const perfect: NetworkOptions = {
  latencyMsMin: 1,
  latencyMsMax: 2,
  tailChance: 0,
  tailMeanMs: 10,
  lossChance: 0,
  duplicateChance: 0,
  clientLossChance: 0,
};

Deno.test("a one-way cut blocks one direction only, and healing restores it", () => {
  const net = new Network(3, perfect, new Prng(1));
  net.cut(1, 2);
  assertEquals(net.nodeDelays(1, 2), []);
  assertEquals(net.nodeDelays(2, 1).length, 1);
  assertEquals(net.describeCuts(), "1->2");
  net.isolate(3);
  assertEquals(net.describeCuts(), "1->2 1<->3 2<->3");
  net.heal();
  assertEquals(net.nodeDelays(1, 2).length, 1);
  assert(!net.disturbed);
});

Deno.test("node partitions never cut clients off; a client block does", () => {
  const net = new Network(3, perfect, new Prng(1));
  net.isolate(1);
  assert(net.clientDelay(1) !== undefined);
  net.clientBlocked.add(1);
  assertEquals(net.clientDelay(1), undefined);
});

Deno.test("latency stays within its base range without a tail, slow links add to it, duplicates happen", () => {
  const net = new Network(2, { ...perfect, duplicateChance: 0.5 }, new Prng(3));
  let dups = 0;
  for (let i = 0; i < 1000; i++) {
    const d = net.nodeDelays(1, 2);
    if (d.length === 2) dups++;
    for (const x of d) assert(x >= 1 && x < 2);
  }
  assert(dups > 400 && dups < 600);
  net.slow(1, 2, 100);
  for (const x of net.nodeDelays(1, 2)) assert(x >= 101 && x < 102);
});

Deno.test("clocks in budget run at rates within [1, 1+ε]; the drift control goes far outside", () => {
  const clocks = drawClocks(new Prng(9), 7, 0.01, false);
  assert(Math.min(...clocks.map((c) => c.minRate)) >= 1 && Math.max(...clocks.map((c) => c.maxRate)) <= 1.01);
  const wild = drawClocks(new Prng(9), 5, 0.01, true);
  assert(Math.min(...wild.map((c) => c.minRate)) < 0.8 && Math.max(...wild.map((c) => c.maxRate)) > 1);
});

Deno.test("a piecewise clock is continuous and monotonic, and real() inverts local()", () => {
  const c = new SimClock(1000, [{ fromRealMs: 0, rate: 1 }, { fromRealMs: 100, rate: 2 }, {
    fromRealMs: 300,
    rate: 0.5,
  }]);
  assertEquals(c.local(0), 1000);
  assertEquals(c.local(100), 1100);
  assertEquals(c.local(300), 1500);
  assertEquals(c.local(400), 1550);
  for (const t of [0, 50, 100, 250, 300, 1234.5]) assert(Math.abs(c.real(c.local(t)) - t) < 1e-9);
  assertEquals(SimClock.constant(5, 1.005).real(5), 0);
});
