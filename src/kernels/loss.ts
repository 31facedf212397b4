// Fused cross-entropy (ignore-index, label smoothing): the forward keeps each row's logsumexp
// for the backward, which writes dlogits = (softmax - target distribution) * scale in one pass.
// AssemblyScript twin: assembly/loss.ts; composed reference: logSoftmax + gather (tests).
import * as L from '../../assembly/layout.js';
import { grid1d, type Kernel, type KernelCall, type View } from '../backend/backend.js';
import { GROUP_INDEX, MAIN_ARGS, uniformBlock, workgroupReduce } from './wgsl.js';

const WG = 256;

function fwdWgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> T: array<i32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> valid: array<f32>;
${uniformBlock(5, L.CE_WORDS)}
@group(0) @binding(6) var<storage, read_write> status: array<atomic<u32>, 4>;
${workgroupReduce(WG, true)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let N = u_(${L.CE_N}u); let C = u_(${L.CE_C}u);
  if (gi >= N) { return; }
  let base = u_(${L.CE_OFF_X}u) + gi * C;
  var m = -3.4028234663852886e38; var sx = 0.0;
  for (var c = lid; c < C; c += ${WG}u) { let v = X[base + c]; m = max(m, v); sx += v; }
  m = treeMax(lid, m);
  sx = treeSum(lid, sx);
  var se = 0.0;
  for (var c = lid; c < C; c += ${WG}u) { se += exp(X[base + c] - m); }
  se = treeSum(lid, se);
  if (lid != 0u) { return; }
  let l = m + log(se);
  lse[gi] = l;
  let t = T[u_(${L.CE_OFF_T}u) + gi];
  let eps = uf_(${L.CE_SMOOTH}u);
  var out = 0.0; var ok = 0.0;
  if (t != ui_(${L.CE_IGNORE}u)) {
    if (t < 0 || u32(t) >= C) { atomicMax(&status[0], ${L.ERR_INDEX}u); }
    else { out = (1.0 - eps) * (l - X[base + u32(t)]) + eps * (l - sx / f32(C)); ok = 1.0; }
  }
  loss[gi] = out;
  valid[gi] = ok;
}`;
}

function bwdWgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> T: array<i32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> dX: array<f32>;
${uniformBlock(5, L.CE_WORDS)}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let N = u_(${L.CE_N}u); let C = u_(${L.CE_C}u);
  let e = gi * ${WG}u + lid;
  if (e >= N * C) { return; }
  let r = e / C; let c = e % C;
  let t = T[u_(${L.CE_OFF_T}u) + r];
  if (t == ui_(${L.CE_IGNORE}u) || t < 0 || u32(t) >= C) { dX[e] = 0.0; return; }
  let eps = uf_(${L.CE_SMOOTH}u);
  let p = exp(X[u_(${L.CE_OFF_X}u) + e] - lse[r]);
  let y = select(0.0, 1.0 - eps, u32(t) == c) + eps / f32(C);
  dX[e] = (p - y) * scale[r];
}`;
}

export const crossEntropyFwdKernel: Kernel = { name: 'cross_entropy_fwd', wgsl: fwdWgsl, wasm: 'crossEntropyFwd', status: true };
export const crossEntropyBwdKernel: Kernel = { name: 'cross_entropy_bwd', wgsl: bwdWgsl, wasm: 'crossEntropyBwd' };

function uniforms(N: number, C: number, ignoreIndex: number, smoothing: number, x: View, t: View): Uint32Array {
  const u = new Uint32Array(L.CE_WORDS);
  u[L.CE_N] = N; u[L.CE_C] = C;
  new Int32Array(u.buffer)[L.CE_IGNORE] = ignoreIndex;
  u[L.CE_OFF_X] = x.offset; u[L.CE_OFF_T] = t.offset;
  new Float32Array(u.buffer)[L.CE_SMOOTH] = smoothing;
  return u;
}

export function crossEntropyFwdCall(x: View, t: View, loss: View, lse: View, valid: View, N: number, C: number, ignoreIndex: number, smoothing: number): KernelCall {
  return {
    kernel: crossEntropyFwdKernel, variant: '', inputs: [x, t], outputs: [loss, lse, valid],
    uniforms: uniforms(N, C, ignoreIndex, smoothing, x, t), grid: grid1d(N), op: 'crossEntropy',
  };
}

export function crossEntropyBwdCall(x: View, t: View, lse: View, scale: View, dx: View, N: number, C: number, ignoreIndex: number, smoothing: number): KernelCall {
  return {
    kernel: crossEntropyBwdKernel, variant: '', inputs: [x, t, lse, scale], outputs: [dx],
    uniforms: uniforms(N, C, ignoreIndex, smoothing, x, t), grid: grid1d(Math.ceil((N * C) / WG)), op: 'crossEntropy.backward',
  };
}
