import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { LinkProxy } from "./proxy.ts";

/** An echo server on loopback; returns its port and a closer. */
function echoServer(): { port: number; close: () => void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const c of l) {
      conns.add(c);
      (async () => {
        const buf = new Uint8Array(1024);
        try {
          for (;;) {
            const n = await c.read(buf);
            if (n === null) break;
            await c.write(buf.subarray(0, n));
          }
        } catch { /* closed */ }
        conns.delete(c);
        try {
          c.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (l.addr as Deno.NetAddr).port,
    close: () => {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

/** Reads a connection continuously (an abandoned read would swallow later data); `next` waits for some. */
class Receiver {
  readonly #chunks: string[] = [];
  #closed = false;
  #wake: (() => void) | undefined;

  constructor(c: Deno.Conn) {
    (async () => {
      const buf = new Uint8Array(1024);
      try {
        for (;;) {
          const n = await c.read(buf);
          if (n === null) break;
          this.#chunks.push(new TextDecoder().decode(buf.subarray(0, n)));
          this.#wake?.();
        }
      } catch { /* reset */ }
      this.#closed = true;
      this.#wake?.();
    })();
  }

  async next(timeoutMs: number): Promise<string | "timeout" | "closed"> {
    const end = performance.now() + timeoutMs;
    while (this.#chunks.length === 0 && !this.#closed) {
      const left = end - performance.now();
      if (left <= 0) return "timeout";
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#wake = r;
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
    return this.#chunks.shift() ?? "closed";
  }
}

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test({
  name: "proxy: pass, delay, blackhole (held, then delivered), drop",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const echo = echoServer();
    const link = new LinkProxy(1, 2, echo.port);
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: link.port });
      const rc = new Receiver(c);
      await c.write(enc("a"));
      assertEquals(await rc.next(2000), "a");

      link.setMode({ kind: "delay", ms: 150 });
      const t0 = performance.now();
      await c.write(enc("b"));
      assertEquals(await rc.next(2000), "b");
      assert(performance.now() - t0 >= 280, "delayed both ways");

      link.setMode({ kind: "blackhole" });
      await c.write(enc("c"));
      assertEquals(await rc.next(300), "timeout");
      link.setMode({ kind: "pass" });
      assertEquals(await rc.next(2000), "c");

      link.setMode({ kind: "drop" });
      assertEquals(await rc.next(2000), "closed");
      const d = await Deno.connect({ hostname: "127.0.0.1", port: link.port });
      const rd = new Receiver(d);
      await d.write(enc("d")).catch(() => 0);
      assertEquals(await rd.next(2000), "closed");
      d.close();
      try {
        c.close();
      } catch { /* closed */ }

      link.setMode({ kind: "pass" });
      const e = await Deno.connect({ hostname: "127.0.0.1", port: link.port });
      const re = new Receiver(e);
      await e.write(enc("e"));
      assertEquals(await re.next(2000), "e");
      e.close();
    } finally {
      link.close();
      echo.close();
    }
  },
});
