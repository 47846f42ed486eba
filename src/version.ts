/**
 * The raftkv version. `scripts/build.ts` stamps the commit into `src/build_info.ts` before compiling;
 * from source the commit reads "source".
 *
 * @module
 */
import { BUILD_COMMIT } from "./build_info.ts";

export const VERSION = "0.1.0";
export const COMMIT: string = BUILD_COMMIT;
export const VERSION_LINE = `raftkv ${VERSION} (commit ${COMMIT}, deno ${Deno.version.deno})`;
