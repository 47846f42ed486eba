/**
 * systemd's readiness protocol (`sd_notify(3)`) without libsystemd: one datagram such as `READY=1` sent to
 * the socket named by `$NOTIFY_SOCKET`. A unit with `Type=notify` counts as started only once the service
 * says `READY=1`, so `systemctl start raftkv` returns when the node serves, not when the process exists.
 *
 * Outside systemd (`$NOTIFY_SOCKET` unset) every call is a no-op that returns `false`. Sending never throws:
 * a failure to notify must not stop a node that otherwise works; it is reported through the return value.
 *
 * Needs `--unstable-net` (deno.json `"unstable": ["net"]`) for `Deno.listenDatagram` with a unix transport,
 * plus `--allow-env=NOTIFY_SOCKET` and read/write permission (for the socket paths).
 *
 * @module
 */

/** `$NOTIFY_SOCKET` as a path Deno can use: a leading `@` names an abstract socket (`\0` in the kernel). */
export function notifySocketPath(raw: string): string {
  return raw.startsWith("@") ? `\0${raw.slice(1)}` : raw;
}

function notifySocketFromEnv(): string | undefined {
  try {
    const raw = Deno.env.get("NOTIFY_SOCKET");
    return raw === undefined || raw === "" ? undefined : raw;
  } catch {
    return undefined; // no env permission: behave as outside systemd
  }
}

/**
 * Sends one notification (newline-separated `KEY=VALUE` assignments) to `$NOTIFY_SOCKET`.
 * Resolves `false` when the variable is unset or the datagram could not be sent.
 */
export async function sdNotify(
  state: string,
  socket: string | undefined = notifySocketFromEnv(),
): Promise<boolean> {
  if (socket === undefined) return false;
  const path = notifySocketPath(socket);
  if (!path.startsWith("/") && !path.startsWith("\0")) return false; // sd_notify accepts only these two forms
  let conn: Deno.DatagramConn | undefined;
  try {
    // The sender binds to a fresh abstract name (no file to clean up). Autobinding (an empty path) would do,
    // but Deno's permission check refuses an empty path unless the process runs with -A.
    const self = `\0raftkv-notify-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    conn = Deno.listenDatagram({ transport: "unixpacket", path: self });
    await conn.send(new TextEncoder().encode(state), { transport: "unixpacket", path });
    return true;
  } catch {
    return false;
  } finally {
    try {
      conn?.close();
    } catch {
      // already closed
    }
  }
}

/** `READY=1` (plus `MAINPID` and a status line): the node serves. */
export function notifyReady(status = "serving"): Promise<boolean> {
  return sdNotify(`READY=1\nMAINPID=${Deno.pid}\nSTATUS=${status}`);
}

/** `STOPPING=1`: the node began a graceful stop (e.g. a leadership hand-off). */
export function notifyStopping(status = "stopping"): Promise<boolean> {
  return sdNotify(`STOPPING=1\nSTATUS=${status}`);
}
