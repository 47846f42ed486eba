/**
 * Who is calling: the identity carried by a certificate's SAN URI, and what each role may do.
 *
 * - `raftkv://node/3`: node 3. May call the Peer service, as the member it is (a request claiming another
 *   member id is refused), and GET/SET and status like a client; not the operator actions.
 * - `raftkv://client/NAME`: may GET and SET (and future KV operations), and read status.
 * - `raftkv://admin/NAME`: everything a client may, plus transfer leadership, change membership, take
 *   snapshots and dump the log.
 *
 * @module
 */

/**
 * Hosts every node certificate is valid for, besides those given (`raftkv certs issue --hosts`). Here rather
 * than in certs.ts so that a node (expiry.ts) reads it without loading @peculiar/x509.
 */
export const DEFAULT_HOSTS: readonly string[] = ["localhost", "127.0.0.1"];

export type Identity =
  | { readonly role: "node"; readonly nodeId: number }
  | { readonly role: "client" | "admin"; readonly name: string };

/** The actions the server authorizes, one per RPC family. */
export type Action =
  | "peer" // Raft traffic (Peer service)
  | "kv" // GET, SET and future KV operations
  | "status" // Admin.Status (read-only)
  | "transfer-leader"
  | "change-membership"
  | "snapshot"
  | "dump-log";

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** `raftkv://node/3` etc. */
export function identityUri(id: Identity): string {
  return id.role === "node" ? `raftkv://node/${id.nodeId}` : `raftkv://${id.role}/${id.name}`;
}

/** "node 3", "client alice", "admin default": for messages. */
export function describeIdentity(id: Identity): string {
  return id.role === "node" ? `node ${id.nodeId}` : `${id.role} "${id.name}"`;
}

/** Parses a raftkv SAN URI; undefined for any other URI. */
export function parseIdentityUri(uri: string): Identity | undefined {
  const m = /^raftkv:\/\/(node|client|admin)\/([^/]+)$/.exec(uri.trim());
  if (!m) return undefined;
  if (m[1] === "node") {
    if (!/^[1-9]\d{0,9}$/.test(m[2])) return undefined;
    return { role: "node", nodeId: Number(m[2]) };
  }
  if (!NAME_RE.test(m[2])) return undefined;
  return { role: m[1] as "client" | "admin", name: m[2] };
}

/** Checks a client or admin name given on the command line. */
export function validName(name: string): boolean {
  return NAME_RE.test(name);
}

/** Whether `id` may perform `action` (the claimed-member check for Peer is separate: `checkPeerClaim`). */
export function allowed(id: Identity, action: Action): boolean {
  switch (action) {
    case "peer":
      return id.role === "node";
    case "kv":
    case "status":
      return true;
    default:
      return id.role === "admin";
  }
}
