// Gather (indexSelect, embedding, torch.gather) and its backward, scatter-add, along the middle
// axis of a contiguous (outer, D, inner) view. Bad indices write zeros and raise the status word.
// WGSL has no float atomics, so scatter-add accumulates with a compare-exchange loop on the bits.
// AssemblyScript twin: assembly/gather.ts.
import * as L from '../../assembly/layout.js';
import { grid1d, type Kernel, type KernelCall, type View } from '../backend/backend.js';
import { GROUP_INDEX, MAIN_ARGS, uniformBlock } from './wgsl.js';

const WG = 256;

const COMMON = `
fn idxAt(full: bool, o: u32, l: u32, i: u32, L: u32, inner: u32) -> i32 {
  if (full) { return I[u_(${L.GA_OFF_IDX}u) + (o * L + l) * inner + i]; }
  return I[u_(${L.GA_OFF_IDX}u) + l];
}`;

function gatherWgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${uniformBlock(3, L.GA_WORDS)}
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>, 4>;
${COMMON}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let t = gi * ${WG}u + lid;
  let outer = u_(${L.GA_OUTER}u); let L = u_(${L.GA_L}u); let inner = u_(${L.GA_INNER}u); let D = u_(${L.GA_D}u);
  if (t >= outer * L * inner) { return; }
  let i = t % inner; let l = (t / inner) % L; let o = t / (inner * L);
  let k = idxAt(u_(${L.GA_MODE}u) == 1u, o, l, i, L, inner);
  if (k < 0 || u32(k) >= D) { atomicMax(&status[0], ${L.ERR_INDEX}u); Y[t] = 0.0; return; }
  Y[t] = X[u_(${L.GA_OFF_IN}u) + (o * D + u32(k)) * inner + i];
}`;
}

function scatterWgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read_write> Y: array<atomic<u32>>;
${uniformBlock(3, L.GA_WORDS)}
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>, 4>;
${COMMON}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let t = gi * ${WG}u + lid;
  let outer = u_(${L.GA_OUTER}u); let L = u_(${L.GA_L}u); let inner = u_(${L.GA_INNER}u); let D = u_(${L.GA_D}u);
  if (t >= outer * L * inner) { return; }
  let i = t % inner; let l = (t / inner) % L; let o = t / (inner * L);
  let k = idxAt(u_(${L.GA_MODE}u) == 1u, o, l, i, L, inner);
  if (k < 0 || u32(k) >= D) { atomicMax(&status[0], ${L.ERR_INDEX}u); return; }
  let v = S[u_(${L.GA_OFF_IN}u) + t];
  let dst = (o * D + u32(k)) * inner + i;
  var old = atomicLoad(&Y[dst]);
  loop {
    let r = atomicCompareExchangeWeak(&Y[dst], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`;
}

export const gatherKernel: Kernel = { name: 'gather', wgsl: gatherWgsl, wasm: 'gather', status: true };
export const scatterAddKernel: Kernel = { name: 'scatter_add', wgsl: scatterWgsl, wasm: 'scatterAdd', status: true };

function uniforms(outer: number, Lr: number, inner: number, D: number, full: boolean, src: View, idx: View): Uint32Array {
  const u = new Uint32Array(L.GA_WORDS);
  u[L.GA_OUTER] = outer; u[L.GA_L] = Lr; u[L.GA_INNER] = inner; u[L.GA_D] = D;
  u[L.GA_MODE] = full ? 1 : 0; u[L.GA_OFF_IN] = src.offset; u[L.GA_OFF_IDX] = idx.offset;
  return u;
}

/** out (outer, L, inner) = x (outer, D, inner) at idx; idx is (L) or, if full, (outer, L, inner). */
export function gatherCall(x: View, idx: View, out: View, outer: number, Lr: number, inner: number, D: number, full: boolean, op: string): KernelCall {
  return {
    kernel: gatherKernel, variant: '', inputs: [x, idx], outputs: [out],
    uniforms: uniforms(outer, Lr, inner, D, full, x, idx),
    grid: grid1d(Math.ceil((outer * Lr * inner) / WG)), op,
  };
}

/** out (outer, D, inner) += src (outer, L, inner) at idx; out must be zeroed first (WebGPU). */
export function scatterAddCall(src: View, idx: View, out: View, outer: number, Lr: number, inner: number, D: number, full: boolean, op: string): KernelCall {
  return {
    kernel: scatterAddKernel, variant: '', inputs: [src, idx], outputs: [out],
    uniforms: uniforms(outer, Lr, inner, D, full, src, idx),
    grid: grid1d(Math.ceil((outer * Lr * inner) / WG)), op,
  };
}
