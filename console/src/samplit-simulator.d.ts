// The types of the simulator's wasm-bindgen glue (simulator/src/lib.rs, packaged by
// control-plane/build.rs with wasm-pack into Cargo's OUT_DIR, where the type-check cannot
// see it; console/build.mjs aliases the import to it). Kept in step with the Rust API by
// hand; console/test/simulator.test.mjs drives every member through the real module.
declare module 'samplit-simulator' {
  export default function init(options: { module_or_path: string }): Promise<unknown>;
  export class Simulation {
    constructor(rates: Float64Array, seed: number, minExposures: number, floor: number, refresh: number);
    free(): void;
    run(visitors: number): void;
    readonly visitors: number;
    exposures(thompson: boolean): Float64Array;
    conversions(thompson: boolean): Float64Array;
    regret(thompson: boolean): number;
    propensities(thompson: boolean): Float64Array;
    chanceToBeBest(thompson: boolean): Float64Array;
  }
}
