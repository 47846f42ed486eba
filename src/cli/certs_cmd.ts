/**
 * `raftkv certs`: a cluster CA and its certificates, without openssl.
 *
 * ```text
 * certs init  --dir DIR --nodes 1,2,3 [--hosts h1,h2] [--force]   CA + node-<id>, client, admin certificates
 * certs issue --dir DIR --node 6 [--hosts h1,h2]                  one more node certificate
 * certs issue --dir DIR --client NAME | --admin NAME              one more client / admin certificate
 * ```
 * The CA key is written to DIR/ca/ca.key (folder 0700, key 0600), apart from what nodes receive; every key is
 * 0600. Node certificates are valid for localhost and 127.0.0.1 besides `--hosts`.
 *
 * @module
 */
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import {
  certPaths,
  CertsError,
  DEFAULT_HOSTS,
  type Identity,
  initCerts,
  issueCert,
  validName,
} from "../security/mod.ts";
import { CliError, EXIT_USAGE, positiveIntOption } from "./common.ts";

function idList(value: string): number[] {
  const ids = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (ids.length === 0 || ids.some((s) => !/^[1-9]\d*$/.test(s))) {
    throw new InvalidArgumentError(`"${value}" is not a list of node ids such as 1,2,3`);
  }
  return [...new Set(ids.map(Number))];
}

function hostList(value: string, previous: string[] = []): string[] {
  const hosts = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const h of hosts) {
    if (!/^[A-Za-z0-9.:-]+$/.test(h)) {
      throw new InvalidArgumentError(`"${h}" is not a host name or IP address`);
    }
  }
  return [...previous, ...hosts];
}

function nameOption(value: string): string {
  if (!validName(value)) {
    throw new InvalidArgumentError(`"${value}" must be 1-64 characters of A-Z a-z 0-9 . _ -`);
  }
  return value;
}

async function wrap<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof CertsError) throw new CliError(e.message, EXIT_USAGE, { cause: e });
    throw e;
  }
}

export function certsCommand() {
  const certs = new Command("certs").description("create the cluster CA and certificates (mutual TLS)");
  certs.addCommand(
    new Command("init")
      .description("create a CA and certificates for the nodes, a client and an admin")
      .requiredOption("--dir <dir>", "folder to write to (the CA key goes to <dir>/ca/)")
      .requiredOption("--nodes <ids>", "node ids, e.g. 1,2,3", idList)
      .option(
        "--hosts <list>",
        `extra host names / IPs for node certificates (always ${DEFAULT_HOSTS.join(", ")})`,
        hostList,
      )
      .option("--force", "replace an existing CA (every certificate it signed stops being trusted)")
      .action(async (o) => {
        await Deno.mkdir(o.dir, { recursive: true });
        const files = await wrap(() => initCerts(o.dir, { nodes: o.nodes, hosts: o.hosts, force: o.force }));
        console.log(`wrote ${files.length} files in ${o.dir}:`);
        for (const f of files) console.log(`  ${f}`);
        console.log(`keep ${certPaths.caKey(o.dir)} off the nodes: only "raftkv certs issue" needs it`);
      }),
  );
  certs.addCommand(
    new Command("issue")
      .description("issue one more certificate with the CA in --dir")
      .requiredOption("--dir <dir>", "the folder holding ca.crt and ca/ca.key")
      .option("--node <id>", "a node certificate for member <id>", positiveIntOption)
      .option("--client <name>", "a client certificate (GET/SET)", nameOption)
      .option("--admin <name>", "an admin certificate (transfer leadership, dump the log, …)", nameOption)
      .option("--hosts <list>", "extra host names / IPs (node certificates)", hostList)
      .option("--days <n>", "validity in days (default 730)", positiveIntOption)
      .action(async (o) => {
        const chosen = [o.node !== undefined, o.client !== undefined, o.admin !== undefined].filter(Boolean);
        if (chosen.length !== 1) {
          throw new CliError("give exactly one of --node, --client, --admin", EXIT_USAGE);
        }
        const id: Identity = o.node !== undefined
          ? { role: "node", nodeId: o.node }
          : o.client !== undefined
          ? { role: "client", name: o.client }
          : { role: "admin", name: o.admin! };
        const notBefore = new Date(Date.now() - 3600 * 1000);
        const notAfter = o.days ? new Date(notBefore.getTime() + o.days * 24 * 3600 * 1000) : undefined;
        const files = await wrap(() => issueCert(o.dir, id, { hosts: o.hosts, notBefore, notAfter }));
        console.log(`wrote ${files.cert} and ${files.key}`);
      }),
  );
  return certs;
}
