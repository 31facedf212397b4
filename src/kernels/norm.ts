// Fused RMSNorm / LayerNorm, forward and input gradient. Rows up to LONG_ROW elements take one
// thread each (no barriers: best for many short rows and for CPU adapters); longer rows take a
// workgroup each, with the row sums reduced in workgroup memory (coalesced reads, full occupancy
// for LLM hidden sizes). AssemblyScript twin: assembly/norm.ts; composed reference: nn/norm.ts.
import * as L from '../../assembly/layout.js';
import { grid1d, type Kernel, type KernelCall, type View } from '../backend/backend.js';
import { GROUP_INDEX, MAIN_ARGS, uniformBlock, workgroupReduce } from './wgsl.js';

const WG = 64;
const GWG = 256;
export const LONG_ROW = 512;

const SCALE = `
fn scaleOf(i: u32) -> f32 {
  if (u_(${L.NM_HAS_W}u) == 0u) { return 1.0; }
  return select(W[i], 1.0 + W[i], u_(${L.NM_OFFSET}u) == 1u);
}`;

function fwdGroupWgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> S: array<f32>;
${uniformBlock(5, L.NM_WORDS)}
${SCALE}
${workgroupReduce(GWG)}
@compute @workgroup_size(${GWG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let r = gi;
  let rows = u_(${L.NM_ROWS}u); let D = u_(${L.NM_D}u);
  if (r >= rows) { return; }
  let xb = u_(${L.NM_OFF_X}u) + r * D;
  var part = 0.0;
  if (u_(${L.NM_LAYER}u) == 1u) { for (var i = lid; i < D; i += ${GWG}u) { part += X[xb + i]; } }
  let mean = treeSum(lid, part) / f32(D);
  part = 0.0;
  for (var i = lid; i < D; i += ${GWG}u) { let d = X[xb + i] - mean; part += d * d; }
  let rstd = 1.0 / sqrt(treeSum(lid, part) / f32(D) + uf_(${L.NM_EPS}u));
  let hasB = u_(${L.NM_HAS_B}u) == 1u;
  for (var i = lid; i < D; i += ${GWG}u) {
    var b = 0.0;
    if (hasB) { b = Bias[i]; }
    Y[r * D + i] = (X[xb + i] - mean) * rstd * scaleOf(i) + b;
  }
  if (lid == 0u) { S[2u * r] = mean; S[2u * r + 1u] = rstd; }
}`;
}

function bwdGroupWgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> dX: array<f32>;
${uniformBlock(5, L.NM_WORDS)}
${SCALE}
${workgroupReduce(GWG)}
@compute @workgroup_size(${GWG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let r = gi;
  let rows = u_(${L.NM_ROWS}u); let D = u_(${L.NM_D}u);
  if (r >= rows) { return; }
  let xb = u_(${L.NM_OFF_X}u) + r * D;
  let mean = S[2u * r]; let rstd = S[2u * r + 1u];
  var pgw = 0.0; var pgwx = 0.0;
  for (var i = lid; i < D; i += ${GWG}u) {
    let gw = G[r * D + i] * scaleOf(i);
    pgw += gw;
    pgwx += gw * (X[xb + i] - mean) * rstd;
  }
  let sgw = treeSum(lid, pgw);
  let sgwx = treeSum(lid, pgwx);
  let mgw = select(0.0, sgw / f32(D), u_(${L.NM_LAYER}u) == 1u);
  let mgwx = sgwx / f32(D);
  for (var i = lid; i < D; i += ${GWG}u) {
    let xhat = (X[xb + i] - mean) * rstd;
    dX[r * D + i] = rstd * (G[r * D + i] * scaleOf(i) - mgw - xhat * mgwx);
  }
}`;
}

function fwdWgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> S: array<f32>;
${uniformBlock(5, L.NM_WORDS)}
${SCALE}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let r = gi * ${WG}u + lid;
  let rows = u_(${L.NM_ROWS}u); let D = u_(${L.NM_D}u);
  if (r >= rows) { return; }
  let xb = u_(${L.NM_OFF_X}u) + r * D;
  var mean = 0.0;
  if (u_(${L.NM_LAYER}u) == 1u) { for (var i = 0u; i < D; i++) { mean += X[xb + i]; } mean /= f32(D); }
  var v = 0.0;
  for (var i = 0u; i < D; i++) { let d = X[xb + i] - mean; v += d * d; }
  let rstd = 1.0 / sqrt(v / f32(D) + uf_(${L.NM_EPS}u));
  let hasB = u_(${L.NM_HAS_B}u) == 1u;
  for (var i = 0u; i < D; i++) {
    var b = 0.0;
    if (hasB) { b = Bias[i]; }
    Y[r * D + i] = (X[xb + i] - mean) * rstd * scaleOf(i) + b;
  }
  S[2u * r] = mean;
  S[2u * r + 1u] = rstd;
}`;
}

function bwdWgsl(): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> dX: array<f32>;
${uniformBlock(5, L.NM_WORDS)}
${SCALE}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let r = gi * ${WG}u + lid;
  let rows = u_(${L.NM_ROWS}u); let D = u_(${L.NM_D}u);
  if (r >= rows) { return; }
  let xb = u_(${L.NM_OFF_X}u) + r * D;
  let mean = S[2u * r]; let rstd = S[2u * r + 1u];
  var sgw = 0.0; var sgwx = 0.0;
  for (var i = 0u; i < D; i++) {
    let gw = G[r * D + i] * scaleOf(i);
    sgw += gw;
    sgwx += gw * (X[xb + i] - mean) * rstd;
  }
  let mgw = select(0.0, sgw / f32(D), u_(${L.NM_LAYER}u) == 1u);
  let mgwx = sgwx / f32(D);
  for (var i = 0u; i < D; i++) {
    let xhat = (X[xb + i] - mean) * rstd;
    dX[r * D + i] = rstd * (G[r * D + i] * scaleOf(i) - mgw - xhat * mgwx);
  }
}`;
}

export const normFwdKernel: Kernel = { name: 'norm_fwd', wgsl: (v) => (v === 'group' ? fwdGroupWgsl() : fwdWgsl()), wasm: 'normFwd' };
export const normBwdKernel: Kernel = { name: 'norm_bwd', wgsl: (v) => (v === 'group' ? bwdGroupWgsl() : bwdWgsl()), wasm: 'normBwd' };

const long = (p: NormParams) => p.D > LONG_ROW;
const grid = (p: NormParams) => grid1d(long(p) ? p.rows : Math.ceil(p.rows / WG));

export interface NormParams { rows: number; D: number; eps: number; layer: boolean; offset: boolean; hasW: boolean; hasB: boolean }

function uniforms(p: NormParams, x: View): Uint32Array {
  const u = new Uint32Array(L.NM_WORDS);
  u[L.NM_ROWS] = p.rows; u[L.NM_D] = p.D;
  new Float32Array(u.buffer)[L.NM_EPS] = p.eps;
  u[L.NM_LAYER] = p.layer ? 1 : 0; u[L.NM_OFFSET] = p.offset ? 1 : 0;
  u[L.NM_HAS_W] = p.hasW ? 1 : 0; u[L.NM_HAS_B] = p.hasB ? 1 : 0; u[L.NM_OFF_X] = x.offset;
  return u;
}

export function normFwdCall(p: NormParams, x: View, w: View, b: View, y: View, stats: View): KernelCall {
  return { kernel: normFwdKernel, variant: long(p) ? 'group' : 'thread', inputs: [x, w, b], outputs: [y, stats], uniforms: uniforms(p, x), grid: grid(p), op: p.layer ? 'layerNorm' : 'rmsNorm' };
}

export function normBwdCall(p: NormParams, x: View, w: View, g: View, stats: View, dx: View): KernelCall {
  return { kernel: normBwdKernel, variant: long(p) ? 'group' : 'thread', inputs: [x, w, g, stats], outputs: [dx], uniforms: uniforms(p, x), grid: grid(p), op: p.layer ? 'layerNorm.backward' : 'rmsNorm.backward' };
}
