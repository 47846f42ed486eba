import { registerLogStoreContract } from "./log_store_contract.ts";
import { MemoryDisk, MemoryLogStore } from "./memory_store.ts";
import { assertEquals, assertStorageError } from "./testing.ts";

registerLogStoreContract("MemoryLogStore", () => {
  const disk = new MemoryDisk();
  return Promise.resolve({
    open: () => Promise.resolve().then(() => MemoryLogStore.open(disk)),
    dispose: () => Promise.resolve(),
  });
});

Deno.test("MemoryLogStore: a simulated crash cuts the open store off and keeps what it saved", async () => {
  const disk = new MemoryDisk();
  const s = MemoryLogStore.open(disk);
  await s.save({
    hardState: { term: 1, votedFor: 1 },
    appendFrom: 1,
    entries: [{ index: 1, term: 1, command: { op: "noop" } }],
  });
  disk.crash();
  await assertStorageError(() => s.save({ entries: [] }), "closed", "crash");
  const r = MemoryLogStore.open(disk);
  assertEquals(r.load().entries, [{ index: 1, term: 1, command: { op: "noop" } }]);
  await s.close(); // the cut-off store's close does not release the new holder
  await assertStorageError(() => MemoryLogStore.open(disk), "locked");
  await r.close();
});
