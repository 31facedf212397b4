// Tiled matmul. Each workgroup computes a (wgy*tm) x (wgx*tn) tile of C, staging K-slices of A and
// B in workgroup memory; each thread keeps a tm x tn register block and reads both operands from
// workgroup memory as vec4. A and B are strided views (a transpose is only strides), C is
// contiguous. Tile sizes come from the adapter (chooseTile); shapes travel as uniforms, so one
// pipeline serves every shape. AssemblyScript twin: assembly/matmul.ts.
import * as L from '../../assembly/layout.js';
import { KilnError, fmtShape } from '../core/errors.js';
import type { Kernel, KernelCall, KernelContext, View } from '../backend/backend.js';
import { uniformBlock } from './wgsl.js';

function wgsl(_variant: string, ctx: KernelContext): string {
  const { wgx, wgy, tm, tn, bk } = ctx.tile;
  const BM = wgy * tm;
  const BN = wgx * tn;
  const threads = wgx * wgy;
  const loadsA = (BM * bk) / threads;
  const loadsB = (bk * BN) / threads;
  return `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${uniformBlock(3, L.MM_WORDS)}
const BM = ${BM}u;
const BN = ${BN}u;
const BK = ${bk}u;
// As[k][m/4] and Bs[k][n/4]: a thread's 4 rows (or 4 columns) are one vec4 read
var<workgroup> As: array<vec4<f32>, ${(bk * BM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(bk * BN) / 4}>;
@compute @workgroup_size(${wgx}, ${wgy})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = u_(${L.MM_M}u); let N = u_(${L.MM_N}u); let K = u_(${L.MM_K}u);
  let b = wid.z;
  let aBase = u_(${L.MM_OFF_A}u) + b * u_(${L.MM_SA}u);
  let sAm = u_(${L.MM_SA + 1}u); let sAk = u_(${L.MM_SA + 2}u);
  let bBase = u_(${L.MM_OFF_B}u) + b * u_(${L.MM_SB}u);
  let sBk = u_(${L.MM_SB + 1}u); let sBn = u_(${L.MM_SB + 2}u);
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  var acc: array<vec4<f32>, ${tm}>;
  for (var k0 = 0u; k0 < K; k0 += BK) {
    for (var j = 0u; j < ${loadsA}u; j++) {
      let e = lid + j * ${threads}u;
      let m = e / BK; let k = e % BK; // consecutive threads walk k: coalesced for row-major A
      var v = 0.0;
      if (m0 + m < M && k0 + k < K) { v = A[aBase + (m0 + m) * sAm + (k0 + k) * sAk]; }
      As[k * ${BM / 4}u + m / 4u][m % 4u] = v;
    }
    for (var j = 0u; j < ${loadsB}u; j++) {
      let e = lid + j * ${threads}u;
      let k = e / BN; let n = e % BN; // consecutive threads walk n: coalesced for row-major B
      var v = 0.0;
      if (k0 + k < K && n0 + n < N) { v = B[bBase + (k0 + k) * sBk + (n0 + n) * sBn]; }
      Bs[k * ${BN / 4}u + n / 4u][n % 4u] = v;
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a = As[k * ${BM / 4}u + lid3.y];
      let bv = Bs[k * ${BN / 4}u + lid3.x];
${Array.from({ length: tm }, (_, i) => `      acc[${i}] += a[${i}] * bv;`).join('\n')}
    }
    workgroupBarrier();
  }
  let cBase = u_(${L.MM_OFF_C}u) + b * M * N;
  for (var i = 0u; i < ${tm}u; i++) {
    let m = m0 + lid3.y * ${tm}u + i;
    if (m >= M) { break; }
    for (var j = 0u; j < ${tn}u; j++) {
      let n = n0 + lid3.x * ${tn}u + j;
      if (n < N) { C[cBase + m * N + n] = acc[i][j]; }
    }
  }
}`;
}

export const matmulKernel: Kernel = { name: 'matmul', wgsl, wasm: 'matmul', wasmScratch: 'matmulScratchBytes' };

/**
 * c (batch, M, N), contiguous in any shape of that size, = a (batch, M, K) @ b (batch, K, N). a and b are 3-D views whose batch dim is
 * already broadcast (stride 0 where shared).
 */
export function matmulCall(a: View, b: View, c: View, ctx: KernelContext): KernelCall {
  const [batch, M, K] = a.shape;
  const N = b.shape[2];
  if (b.shape[0] !== batch || b.shape[1] !== K || c.shape.reduce((x, y) => x * y, 1) !== batch * M * N) {
    throw new KilnError('shape', 'matmul', `kernel shapes ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} -> ${fmtShape(c.shape)} do not agree`);
  }
  const u = new Uint32Array(L.MM_WORDS);
  u[L.MM_BATCH] = batch; u[L.MM_M] = M; u[L.MM_N] = N; u[L.MM_K] = K;
  u[L.MM_OFF_A] = a.offset; u[L.MM_OFF_B] = b.offset; u[L.MM_OFF_C] = c.offset;
  u.set(a.strides, L.MM_SA);
  u.set(b.strides, L.MM_SB);
  const { wgx, wgy, tm, tn } = ctx.tile;
  return {
    kernel: matmulKernel,
    variant: `${wgx}x${wgy}`,
    inputs: [a, b],
    outputs: [c],
    uniforms: u,
    grid: [Math.max(1, Math.ceil(N / (wgx * tn))), Math.max(1, Math.ceil(M / (wgy * tm))), batch],
    op: 'matmul',
  };
}
