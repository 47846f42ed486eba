// Rewritten by scripts/build.ts when compiling a release binary; keep this default committed.
export const BUILD_COMMIT: string = "source";
