/**
 * `raftkv admin status --watch` in a real terminal (tmux): the table is redrawn in place (the screen shows one
 * table, whose contents change), a killed leader shows up as unreachable, and Ctrl-C ends it with exit 0.
 *
 * The exit status is printed by the shell that ran the watch (`watch exited with status N`), not read from
 * tmux: tmux marks a pane dead when its terminal closes and learns the status from SIGCHLD, and tmux 3.3 built
 * with libutempter sets SIGCHLD to SIG_DFL while it waits for its utmp helper on that same close, so a watch
 * exiting then is never reaped and `#{pane_dead_status}` stays empty (seen in 13 of 13 local runs under
 * load: the process was a zombie of the tmux server, exit status 0, the server's strace showed the lost signal).
 */
import { ok, strictEqual } from "node:assert/strict";
import { IT, withCluster } from "../integration/harness.ts";
import { onPath, poll, REPO_PATH, run } from "./helpers.ts";

const HAVE_TMUX = await onPath("tmux");

Deno.test(
  "admin status --watch redraws one table in place in a terminal and stops on Ctrl-C",
  { ...IT, ignore: !HAVE_TMUX },
  async () => {
    await withCluster({ nodes: 3, name: "watch" }, async (c) => {
      const leader = await c.leader();
      const sock = `raftkv-watch-${Deno.pid}`;
      const tmux = (...args: string[]) => run("tmux", ["-L", sock, ...args], { timeoutMs: 10_000 });
      const cmd = [
        Deno.execPath(),
        "run",
        "-A",
        `${REPO_PATH}/mod.ts`,
        "admin",
        "status",
        "--config",
        c.configPath,
      ]
        .concat(["--watch", "--interval", "200ms"])
        .map((w) => `'${w}'`).join(" ");
      // The shell catches SIGINT (the watch gets the default disposition back) so that it outlives Ctrl-C.
      const shell = "trap : INT; NO_COLOR=1 " + cmd + '; echo "watch exited with status $?"';
      const started = await tmux("new-session", "-d", "-s", "w", "-x", "160", "-y", "40", shell);
      strictEqual(started.code, 0, started.stderr);
      try {
        await tmux("set-option", "-t", "w", "remain-on-exit", "on");
        const screen = async () => (await tmux("capture-pane", "-p", "-t", "w")).stdout;
        const first = await poll(
          "the table on screen",
          async () => {
            const s = await screen();
            return s.includes("LEASE_MS") && s.includes(`leader: node ${leader.id}`) ? s : undefined;
          },
          20_000,
          100,
        );
        ok(first.includes("LAG"), `the watch view shows replication lag:\n${first}`);
        const stamp = (s: string) => /^\d{4}-\d\d-\d\dT[\d:.]+Z/m.exec(s)?.[0];
        // Several refreshes later: still exactly one table on the screen, with a newer time stamp.
        const later = await poll(
          "a later refresh",
          async () => {
            const s = await screen();
            return stamp(s) !== undefined && stamp(s) !== stamp(first) ? s : undefined;
          },
          10_000,
          100,
        );
        strictEqual(later.split("\n").filter((l) => l.startsWith("ID ")).length, 1, `one table:\n${later}`);

        await c.kill(leader.id);
        const down = await poll(
          "the killed leader to show as unreachable",
          async () => {
            const s = await screen();
            const row = s.split("\n").find((l) => l.trimStart().startsWith(`${leader.id} `));
            return row && / no /.test(row) && /leader: node \d/.test(s) &&
                !s.includes(`leader: node ${leader.id}`)
              ? s
              : undefined;
          },
          20_000,
          100,
        );
        strictEqual(down.split("\n").filter((l) => l.startsWith("ID ")).length, 1, `one table:\n${down}`);

        await tmux("send-keys", "-t", "w", "C-c");
        const exited = await poll(
          "the watch to exit",
          async () => /watch exited with status (\d+)/.exec(await screen())?.[1],
          10_000,
          100,
        );
        // 130 would be a death by SIGINT, 134 an abort (SIGABRT), and so on.
        strictEqual(exited, "0", `exit status 0 after Ctrl-C; the pane showed:\n${await screen()}`);
      } finally {
        await tmux("kill-server");
      }
    });
  },
);
