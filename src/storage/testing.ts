/**
 * Tiny assertion helpers for the storage tests (no @std here).
 *
 * @module
 */

import { StorageError, type StorageErrorCode } from "./errors.ts";

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    if (!deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s !== undefined && s.length > 600 ? `${s.slice(0, 600)}…` : String(s);
}

export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

export function assertEquals(actual: unknown, expected: unknown, msg = ""): void {
  if (!deepEqual(actual, expected)) {
    throw new Error(`${msg ? msg + ": " : ""}expected ${show(expected)}, got ${show(actual)}`);
  }
}

/** Asserts that `fn` throws (or rejects with) a StorageError of `code` whose message includes each of `parts`. */
export async function assertStorageError(
  fn: () => unknown,
  code: StorageErrorCode,
  ...parts: string[]
): Promise<StorageError> {
  let caught: unknown = undefined;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof StorageError)) {
    throw new Error(
      `expected StorageError ${code}, got ${caught === undefined ? "no error" : String(caught)}`,
    );
  }
  if (caught.code !== code) throw new Error(`expected code ${code}, got ${caught.code}: ${caught.message}`);
  for (const p of parts) {
    if (!caught.message.includes(p)) {
      throw new Error(`expected the message to include ${show(p)}: ${caught.message}`);
    }
  }
  return caught;
}

/** A small deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Strings that break naive line formats. */
export const TRICKY_STRINGS: readonly string[] = [
  "",
  " ",
  "a b",
  "first name",
  "Jon Snow\nthe 2nd",
  "\t",
  "\r\n",
  "\\",
  '"',
  '"quoted"',
  'back\\slash and "quote"',
  "ключ",
  "值",
  "😀",
  "a😀b",
  "\u2028",
  "\u00a0nbsp",
  "\ufeffbom",
  "\u0000nul",
  "\u007fdel",
  "\u0085nel",
  "lone \ud800 high",
  "lone \udc00 low",
  "\ud800",
  "#",
  "#deadbeef",
  "x #0000abcd",
  "@c=x",
  "s=1",
  "NO-OP",
  "SET a b 1",
  "1",
  "-5",
  "x".repeat(5000),
];
