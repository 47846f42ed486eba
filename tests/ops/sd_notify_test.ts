/**
 * sd_notify: a process started with `$NOTIFY_SOCKET` (as systemd starts a `Type=notify` unit) delivers
 * `READY=1` to that socket, for a path and for an abstract (`@name`) socket; without the variable it is a
 * no-op. The child runs with the release permissions (src/ops/permissions.ts), not -A, so this also shows
 * that they are enough for sd_notify.
 */
import { ok, strictEqual } from "node:assert/strict";
import { notifySocketPath, sdNotify } from "../../src/ops/sd_notify.ts";
import { releaseRunFlags } from "../../src/ops/permissions.ts";
import { assertIncludes, REPO_PATH, run } from "./helpers.ts";

const CHILD = `${REPO_PATH}/tests/ops/testdata/notify_ready.ts`;

/**
 * Runs the child with NOTIFY_SOCKET=`socketEnv` while `conn` listens; returns the first datagram and the
 * child's output. Fails (with the child's output) if the child exits and nothing arrives.
 */
async function childNotifies(conn: Deno.DatagramConn, socketEnv: string, arg = "ready") {
  const child = run(Deno.execPath(), ["run", ...releaseRunFlags(), CHILD, arg], {
    cwd: REPO_PATH,
    env: { NOTIFY_SOCKET: socketEnv },
    timeoutMs: 60_000,
  });
  const received = conn.receive().then(([bytes]) => new TextDecoder().decode(bytes));
  received.catch(() => {}); // rejects when the test closes the socket after a failure
  const first = await Promise.race([received, child]);
  if (typeof first !== "string") {
    // The child is done: a datagram it sent is already queued, so a short grace is plenty.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 2000)));
    const message = await Promise.race([received, late]);
    clearTimeout(timer);
    if (message === undefined) {
      throw new Error(`the child exited ${first.code} without notifying:\n${first.stdout}${first.stderr}`);
    }
    return { message, out: first };
  }
  return { message: first, out: await child };
}

Deno.test("a process started with NOTIFY_SOCKET sends READY=1 to that socket path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-notify-" });
  const path = `${dir}/notify.sock`;
  const conn = Deno.listenDatagram({ transport: "unixpacket", path });
  try {
    const { message, out } = await childNotifies(conn, path);
    strictEqual(out.code, 0, out.stderr);
    strictEqual(out.stdout.trim(), "true");
    const lines = message.split("\n");
    ok(lines.includes("READY=1"), `got ${JSON.stringify(message)}`);
    ok(lines.some((l) => /^MAINPID=\d+$/.test(l)), `got ${JSON.stringify(message)}`);
  } finally {
    conn.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an abstract NOTIFY_SOCKET written @name reaches the socket named \\0name", async () => {
  const name = `raftkv-test-${crypto.randomUUID()}`;
  const conn = Deno.listenDatagram({ transport: "unixpacket", path: `\0${name}` });
  try {
    const { message, out } = await childNotifies(conn, `@${name}`, "stopping");
    strictEqual(out.code, 0, out.stderr);
    assertIncludes(message, "STOPPING=1");
  } finally {
    conn.close();
  }
});

Deno.test("without NOTIFY_SOCKET notifyReady does nothing and says so", async () => {
  const out = await run(Deno.execPath(), ["run", ...releaseRunFlags(), CHILD], {
    cwd: REPO_PATH,
    env: { NOTIFY_SOCKET: "" },
    timeoutMs: 60_000,
  });
  strictEqual(out.code, 0, out.stderr);
  strictEqual(out.stdout.trim(), "false");
});

Deno.test("a NOTIFY_SOCKET nobody listens on makes sdNotify return false instead of throwing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raftkv-notify-" });
  try {
    strictEqual(await sdNotify("READY=1", `${dir}/nobody.sock`), false);
    strictEqual(await sdNotify("READY=1", "relative/path.sock"), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a leading @ maps to a NUL byte and a path stays as it is", () => {
  strictEqual(notifySocketPath("@/org/freedesktop/systemd1/notify"), "\0/org/freedesktop/systemd1/notify");
  strictEqual(notifySocketPath("/run/systemd/notify"), "/run/systemd/notify");
});
