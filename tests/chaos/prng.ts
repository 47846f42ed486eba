/**
 * The chaos schedule draws from the simulator's seeded generator, so a seed means the same kind of thing in
 * both places.
 *
 * @module
 */
export { Prng as Rng } from "../sim/prng.ts";
