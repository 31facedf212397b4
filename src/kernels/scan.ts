// Cumulative sum along the middle axis of a contiguous (outer, L, inner) view: one thread per
// (outer, inner) line, walking L in order. AssemblyScript twin: assembly/scan.ts.
import * as L from '../../assembly/layout.js';
import { grid1d, type Kernel, type KernelCall, type View } from '../backend/backend.js';
import { GROUP_INDEX, MAIN_ARGS, uniformBlock } from './wgsl.js';

const WG = 64;

function wgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
${uniformBlock(2, L.SC_WORDS)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let t = gi * ${WG}u + lid;
  let outer = u_(${L.SC_OUTER}u); let Ln = u_(${L.SC_L}u); let inner = u_(${L.SC_INNER}u);
  if (t >= outer * inner) { return; }
  let o = t / inner; let i = t % inner;
  let rev = u_(${L.SC_REVERSE}u) == 1u; let excl = u_(${L.SC_EXCLUSIVE}u) == 1u; let off = u_(${L.SC_OFF}u);
  var s = 0.0;
  for (var j = 0u; j < Ln; j++) {
    let l = select(j, Ln - 1u - j, rev);
    let e = (o * Ln + l) * inner + i;
    let v = X[off + e];
    if (excl) { Y[e] = s; s += v; } else { s += v; Y[e] = s; }
  }
}`;
}

export const cumsumKernel: Kernel = { name: 'cumsum', wgsl, wasm: 'cumsum' };

export function cumsumCall(x: View, out: View, outer: number, Ln: number, inner: number, reverse: boolean, exclusive: boolean): KernelCall {
  const u = new Uint32Array(L.SC_WORDS);
  u[L.SC_OUTER] = outer; u[L.SC_L] = Ln; u[L.SC_INNER] = inner;
  u[L.SC_REVERSE] = reverse ? 1 : 0; u[L.SC_EXCLUSIVE] = exclusive ? 1 : 0; u[L.SC_OFF] = x.offset;
  return { kernel: cumsumKernel, variant: '', inputs: [x], outputs: [out], uniforms: u, grid: grid1d(Math.ceil((outer * inner) / WG)), op: 'cumsum' };
}
