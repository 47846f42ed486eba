/**
 * The raw peer transport's wire format (see README.md): a handshake, then length-prefixed PeerFrames.
 *
 * - Hello (dialler → listener, 8 bytes): `RKVP`, version (u8), flags (u8, 0), reserved (u16, 0).
 * - Reply (listener → dialler, 8 + n bytes): `RKVP`, version (u8), status (u8: 0 accepted, else refused),
 *   n (u16 BE), then n bytes of UTF-8 saying why it was refused.
 * - Then, both ways: a u32 BE length (≤ the frame limit) and that many bytes of a protobuf `PeerFrame`.
 *
 * Pure: no sockets here, so torn frames, oversized frames and bad magic are tested byte by byte.
 *
 * @module
 */

import * as pb from "../../gen/raftkv.ts";

/** "RKVP": the first bytes each side sends. */
export const MAGIC = new Uint8Array([0x52, 0x4b, 0x56, 0x50]);
/** The wire version this code speaks. */
export const VERSION = 1;
export const HELLO_BYTES = 8;
/** A reply's fixed part (before its message). */
export const REPLY_HEADER_BYTES = 8;
/** A refusal's message is cut to this many bytes. */
export const REPLY_MESSAGE_MAX_BYTES = 1024;
/** The length prefix of a frame. */
export const LENGTH_BYTES = 4;

/** Reply statuses. */
export const Status = {
  ACCEPTED: 0,
  /** The hello did not start with the magic or spoke another version. */
  BAD_HELLO: 1,
  /** The listener has `maxConnections` open already. */
  BUSY: 2,
  /** TLS: no valid client certificate, or not a node's. */
  UNAUTHENTICATED: 3,
  /** The listener is shutting down. */
  CLOSING: 4,
} as const;

/** What went wrong on the wire, typed for tests and logs. */
export type RawFrameErrorKind =
  | "badMagic"
  | "badVersion"
  | "frameTooLarge"
  | "refused"
  | "malformed"
  | "handshakeTimeout";

/** A wire-format violation or a refusal: the connection it happened on is closed. */
export class RawFrameError extends Error {
  override readonly name = "RawFrameError";
  constructor(readonly kind: RawFrameErrorKind, message: string) {
    super(message);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The dialler's hello. */
export function encodeHello(version = VERSION): Uint8Array {
  const out = new Uint8Array(HELLO_BYTES);
  out.set(MAGIC, 0);
  out[4] = version;
  return out;
}

/** True when `bytes` start like an HTTP/2 client preface ("PRI * HTTP/2.0"): a gRPC client dialled this port. */
function looksLikeHttp2(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && decoder.decode(bytes.subarray(0, 4)) === "PRI ";
}

/** True when `bytes` start like a TLS record (a handshake or an alert, version 3.x). */
function looksLikeTls(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && (bytes[0] === 0x16 || bytes[0] === 0x15) && bytes[1] === 0x03;
}

/** Checks a hello (exactly HELLO_BYTES bytes); throws a RawFrameError naming what arrived instead. */
export function checkHello(bytes: Uint8Array): void {
  if (!startsWithMagic(bytes)) {
    const what = looksLikeHttp2(bytes)
      ? "an HTTP/2 preface: a gRPC client dialled the raw peer port (clients use the node's address)"
      : looksLikeTls(bytes)
      ? "a TLS handshake: the peer runs TLS and this node runs without TLS (--insecure); start every node " +
        "the same way"
      : `bytes ${hex(bytes.subarray(0, 8))}`;
    throw new RawFrameError("badMagic", `not a raftkv raw peer hello: got ${what}`);
  }
  if (bytes[4] !== VERSION) {
    throw new RawFrameError(
      "badVersion",
      `raw peer protocol version ${bytes[4]} is not spoken here (this node speaks ${VERSION})`,
    );
  }
}

/** The listener's reply: accepted, or refused with a reason. */
export function encodeReply(status: number, message = ""): Uint8Array {
  let text = encoder.encode(message);
  if (text.length > REPLY_MESSAGE_MAX_BYTES) text = text.subarray(0, REPLY_MESSAGE_MAX_BYTES);
  const out = new Uint8Array(REPLY_HEADER_BYTES + text.length);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  out[5] = status;
  new DataView(out.buffer).setUint16(6, text.length);
  out.set(text, REPLY_HEADER_BYTES);
  return out;
}

/**
 * Parses a reply from the start of `bytes`: undefined while incomplete; otherwise the status, the message and
 * how many bytes it took. Throws a RawFrameError when the bytes are not a raw peer reply (e.g. the address is a
 * gRPC port answering in HTTP/2).
 */
export function parseReply(
  bytes: Uint8Array,
  address: string,
): { status: number; message: string; bytes: number } | undefined {
  const head = Math.min(bytes.length, MAGIC.length);
  for (let i = 0; i < head; i++) {
    if (bytes[i] !== MAGIC[i]) {
      if (looksLikeTls(bytes)) {
        throw new RawFrameError(
          "badMagic",
          `${address} answered with TLS: the peer requires TLS and this node runs without TLS (--insecure); ` +
            `start every node the same way`,
        );
      }
      throw new RawFrameError(
        "badMagic",
        `${address} is not a raftkv raw peer port: it answered ${hex(bytes.subarray(0, 8))} ` +
          `(is it a gRPC port, or does the other node run "peerTransport": "grpc"?)`,
      );
    }
  }
  if (bytes.length < REPLY_HEADER_BYTES) return undefined;
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(6);
  if (bytes.length < REPLY_HEADER_BYTES + n) return undefined;
  if (bytes[4] !== VERSION) {
    throw new RawFrameError(
      "badVersion",
      `${address} speaks raw peer protocol version ${bytes[4]}, this node ${VERSION}`,
    );
  }
  return {
    status: bytes[5],
    message: decoder.decode(bytes.subarray(REPLY_HEADER_BYTES, REPLY_HEADER_BYTES + n)),
    bytes: REPLY_HEADER_BYTES + n,
  };
}

function startsWithMagic(bytes: Uint8Array): boolean {
  if (bytes.length < MAGIC.length) return false;
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return false;
  return true;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ") || "nothing";
}

/** One PeerFrame as bytes on the wire (length prefix included). */
export function encodeFrame(frame: pb.PeerFrame): Uint8Array {
  const body = pb.PeerFrame.encode(frame).finish();
  const out = new Uint8Array(LENGTH_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, LENGTH_BYTES);
  return out;
}

/**
 * Cuts a byte stream into frame bodies, whatever the chunks: a frame may arrive torn across many chunks, and a
 * chunk may hold many frames. A length over `maxFrameBytes` throws at once (before its body is buffered).
 */
export class FrameReader {
  readonly #maxFrameBytes: number;
  /** Bytes received and not yet returned, in arrival order (joined only once a frame is complete). */
  #chunks: Uint8Array[] = [];
  #total = 0;
  /** Bytes needed before the next frame can be complete (its length prefix, then all of it). */
  #need = LENGTH_BYTES;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.#total;
  }

  /**
   * Appends `chunk` and returns the complete frame bodies it finished (possibly none). A body may be a view of
   * `chunk`: decode it before the chunk's memory is reused.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (chunk.length === 0) return [];
    this.#chunks.push(chunk);
    this.#total += chunk.length;
    if (this.#total < this.#need) return []; // a torn frame: wait for the rest without copying
    const buf = this.#chunks.length === 1 ? chunk : concat(this.#chunks, this.#total);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const frames: Uint8Array[] = [];
    let at = 0;
    this.#need = LENGTH_BYTES;
    while (buf.length - at >= LENGTH_BYTES) {
      const n = view.getUint32(at);
      if (n > this.#maxFrameBytes) {
        throw new RawFrameError(
          "frameTooLarge",
          `a frame of ${n} bytes is over the limit of ${this.#maxFrameBytes} bytes (maxMessageBytes)`,
        );
      }
      if (buf.length - at < LENGTH_BYTES + n) {
        this.#need = LENGTH_BYTES + n;
        break;
      }
      frames.push(buf.subarray(at + LENGTH_BYTES, at + LENGTH_BYTES + n));
      at += LENGTH_BYTES + n;
    }
    const rest = buf.length - at;
    this.#chunks = rest === 0 ? [] : [buf.subarray(at)];
    this.#total = rest;
    return frames;
  }
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Decodes a frame body; throws a RawFrameError("malformed") for bytes that are not a PeerFrame. */
export function decodeFrame(body: Uint8Array): pb.PeerFrame {
  try {
    return pb.PeerFrame.decode(body);
  } catch (e) {
    throw new RawFrameError("malformed", `a frame is not a PeerFrame: ${(e as Error).message}`);
  }
}
