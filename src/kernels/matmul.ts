// Tiled matmul. Each workgroup computes a (wgy*tm) x (wgx*tn) tile of C, staging K-slices of A and
// B in workgroup memory; each thread keeps a tm x tn register block and reads both operands from
// workgroup memory as vec4. A and B are strided views (a transpose is only strides), C is
// contiguous. Tile sizes come from the adapter (chooseTile); shapes travel as uniforms, so one
// pipeline serves every shape. AssemblyScript twin: assembly/matmul.ts.
import * as L from '../../assembly/layout.js';
import { KilnError, fmtShape } from '../core/errors.js';
import type { Kernel, KernelCall, KernelContext, View } from '../backend/backend.js';
import { uniformBlock } from './wgsl.js';

// A few rows (decode-time GEMV): one thread per output column, each streaming its column of B
// (coalesced across threads when B's rows are contiguous); no tiles, no barriers.
const GEMV_ROWS = 4;
const GEMV_WG = 64;
function gemvWgsl(): string {
  const rows = [...Array(GEMV_ROWS).keys()];
  return `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${uniformBlock(3, L.MM_WORDS)}
@compute @workgroup_size(${GEMV_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = u_(${L.MM_M}u); let N = u_(${L.MM_N}u); let K = u_(${L.MM_K}u);
  let n = wid.x * ${GEMV_WG}u + lid;
  if (n >= N) { return; }
  let b = wid.z;
  let aBase = u_(${L.MM_OFF_A}u) + b * u_(${L.MM_SA}u);
  let sAm = u_(${L.MM_SA + 1}u); let sAk = u_(${L.MM_SA + 2}u);
  let bCol = u_(${L.MM_OFF_B}u) + b * u_(${L.MM_SB}u) + n * u_(${L.MM_SB + 2}u);
  let sBk = u_(${L.MM_SB + 1}u);
  ${rows.map((i) => `var acc${i} = 0.0;`).join(' ')}
  for (var k = 0u; k < K; k++) {
    let bv = B[bCol + k * sBk];
    let ak = aBase + k * sAk;
${rows.map((i) => `    if (${i}u < M) { acc${i} += A[ak + ${i}u * sAm] * bv; }`).join('\n')}
  }
  let cBase = u_(${L.MM_OFF_C}u) + b * M * N + n;
${rows.map((i) => `  if (${i}u < M) { C[cBase + ${i}u * N] = acc${i}; }`).join('\n')}
}`;
}

// A few rows against B's columns contiguous (x @ W^T, every Linear): a workgroup per GEMVT_COLS
// outputs, its threads striding along K together, so each weight row is read coalesced, then
// summed across the workgroup. (The column-per-thread kernel above would stride by K there.)
const GEMVT_COLS = 4;
const GEMVT_WG = 128;
function gemvtWgsl(): string {
  const rows = [...Array(GEMV_ROWS).keys()];
  const cols = [...Array(GEMVT_COLS).keys()];
  const accs = rows.flatMap((r) => cols.map((c) => [r, c]));
  return `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${uniformBlock(3, L.MM_WORDS)}
var<workgroup> red: array<f32, ${GEMVT_WG * GEMV_ROWS * GEMVT_COLS}>;
@compute @workgroup_size(${GEMVT_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = u_(${L.MM_M}u); let N = u_(${L.MM_N}u); let K = u_(${L.MM_K}u);
  let n0 = wid.x * ${GEMVT_COLS}u;
  let b = wid.z;
  let aBase = u_(${L.MM_OFF_A}u) + b * u_(${L.MM_SA}u);
  let sAm = u_(${L.MM_SA + 1}u); let sAk = u_(${L.MM_SA + 2}u);
  let bBase = u_(${L.MM_OFF_B}u) + b * u_(${L.MM_SB}u);
  let sBn = u_(${L.MM_SB + 2}u);
  ${accs.map(([r, c]) => `var a${r}_${c} = 0.0;`).join(' ')}
  // columns past N read column N - 1 (in bounds) and are never stored
  ${cols.map((c) => `let col${c} = bBase + min(n0 + ${c}u, N - 1u) * sBn;`).join(' ')}
  for (var k = lid; k < K; k += ${GEMVT_WG}u) {
    ${cols.map((c) => `let b${c} = B[col${c} + k];`).join(' ')}
    let ak = aBase + k * sAk;
${rows.map((r) => `    if (${r}u < M) { let x = A[ak + ${r}u * sAm]; ${cols.map((c) => `a${r}_${c} += x * b${c};`).join(' ')} }`).join('\n')}
  }
  ${accs.map(([r, c], i) => `red[${i}u * ${GEMVT_WG}u + lid] = a${r}_${c};`).join(' ')}
  workgroupBarrier();
  for (var s = ${GEMVT_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) {
      for (var i = 0u; i < ${accs.length}u; i++) { red[i * ${GEMVT_WG}u + lid] += red[i * ${GEMVT_WG}u + lid + s]; }
    }
    workgroupBarrier();
  }
  if (lid < ${accs.length}u) {
    let r = lid / ${GEMVT_COLS}u; let c = lid % ${GEMVT_COLS}u;
    if (r < M && n0 + c < N) { C[u_(${L.MM_OFF_C}u) + b * M * N + r * N + n0 + c] = red[lid * ${GEMVT_WG}u]; }
  }
}`;
}

function wgsl(variant: string, ctx: KernelContext): string {
  if (variant === 'gemv') return gemvWgsl();
  if (variant === 'gemvt') return gemvtWgsl();
  const { wgx, wgy, tm, tn, bk } = ctx.tile;
  // layout hints: A rows / B rows contiguous and 16-byte aligned -> one vec4 global load each
  const a4 = variant.includes('a4');
  const b4 = variant.includes('b4');
  // B's columns contiguous and aligned (x @ W^T): vec4 loads along k, spread into the n-major tile
  const bt4 = variant.includes('bt4');
  const BM = wgy * tm;
  const BN = wgx * tn;
  const threads = wgx * wgy;
  const K4 = bk / 4;
  const loadsA = (BM * K4) / threads; // vec4s of A per thread per K tile
  const loadsB = (bk * (BN / 4)) / threads;
  const rows = Array.from({ length: tm }, (_, i) => i);
  const kks = [0, 1, 2, 3];
  // unrolled inner product: a (4 rows, vec4 along k) times b (4 k, vec4 along n)
  const fma = kks
    .map((kk) => `      let b${kk} = Bs[(k4 * 4u + ${kk}u) * ${BN / 4}u + lid3.x];`)
    .concat(rows.map((i) => `      let a${i} = As[(lid3.y * ${tm}u + ${i}u) * ${K4}u + k4];`))
    .concat(rows.map((i) => `      acc${i} += ${kks.map((kk) => `a${i}.${'xyzw'[kk]} * b${kk}`).join(' + ')};`))
    .join('\n');
  const store = rows
    .map((i) => `  { let m = m0 + lid3.y * ${tm}u + ${i}u;
    if (m < M) {
${kks.map((j) => `      if (nc + ${j}u < N) { C[cBase + m * N + nc + ${j}u] = acc${i}.${'xyzw'[j]}; }`).join('\n')}
    } }`)
    .join('\n');
  return `
@group(0) @binding(0) var<storage, read> A: array<${a4 ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(1) var<storage, read> B: array<${b4 || bt4 ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${uniformBlock(3, L.MM_WORDS)}
// As[m][k/4] holds vec4s along k, Bs[k][n/4] vec4s along n: each thread stages whole vec4s
// (consecutive elements in row-major A and B, so global reads coalesce) and reads them back
// as vec4 in the inner product.
var<workgroup> As: array<vec4<f32>, ${BM * K4}>;
var<workgroup> Bs: array<vec4<f32>, ${bk * (BN / 4)}>;
@compute @workgroup_size(${wgx}, ${wgy})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = u_(${L.MM_M}u); let N = u_(${L.MM_N}u); let K = u_(${L.MM_K}u);
  let b = wid.z;
  let aBase = u_(${L.MM_OFF_A}u) + b * u_(${L.MM_SA}u);
  let sAm = u_(${L.MM_SA + 1}u); let sAk = u_(${L.MM_SA + 2}u);
  let bBase = u_(${L.MM_OFF_B}u) + b * u_(${L.MM_SB}u);
  let sBk = u_(${L.MM_SB + 1}u); let sBn = u_(${L.MM_SB + 2}u);
  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  var acc0 = vec4<f32>(); var acc1 = vec4<f32>(); var acc2 = vec4<f32>(); var acc3 = vec4<f32>();
  for (var k0 = 0u; k0 < K; k0 += ${bk}u) {
    for (var j = 0u; j < ${loadsA}u; j++) {
      let e = lid + j * ${threads}u;
      let m = e / ${K4}u; let k = k0 + (e % ${K4}u) * 4u;
      let row = aBase + (m0 + m) * sAm;
      var v = vec4<f32>();
      if (m0 + m < M) {
${a4 ? '        if (k < K) { v = A[(row + k) / 4u]; }' : `        if (k < K) { v.x = A[row + k * sAk]; }
        if (k + 1u < K) { v.y = A[row + (k + 1u) * sAk]; }
        if (k + 2u < K) { v.z = A[row + (k + 2u) * sAk]; }
        if (k + 3u < K) { v.w = A[row + (k + 3u) * sAk]; }`}
      }
      As[e] = v;
    }
${bt4 ? `    for (var j = 0u; j < ${loadsB}u; j++) {
      let e = lid + j * ${threads}u;
      let n = e / ${K4}u; let k = (e % ${K4}u) * 4u;
      var v = vec4<f32>();
      if (n0 + n < N && k0 + k < K) { v = B[(bBase + (n0 + n) * sBn + k0 + k) / 4u]; }
      let q = n / 4u; let c = n % 4u;
      Bs[k * ${BN / 4}u + q][c] = v.x;
      Bs[(k + 1u) * ${BN / 4}u + q][c] = v.y;
      Bs[(k + 2u) * ${BN / 4}u + q][c] = v.z;
      Bs[(k + 3u) * ${BN / 4}u + q][c] = v.w;
    }` : `    for (var j = 0u; j < ${loadsB}u; j++) {
      let e = lid + j * ${threads}u;
      let k = e / ${BN / 4}u; let n = n0 + (e % ${BN / 4}u) * 4u;
      let row = bBase + (k0 + k) * sBk;
      var v = vec4<f32>();
      if (k0 + k < K) {
${b4 ? '        if (n < N) { v = B[(row + n) / 4u]; }' : `        if (n < N) { v.x = B[row + n * sBn]; }
        if (n + 1u < N) { v.y = B[row + (n + 1u) * sBn]; }
        if (n + 2u < N) { v.z = B[row + (n + 2u) * sBn]; }
        if (n + 3u < N) { v.w = B[row + (n + 3u) * sBn]; }`}
      }
      Bs[e] = v;
    }`}
    workgroupBarrier();
    for (var k4 = 0u; k4 < ${K4}u; k4++) {
${fma}
    }
    workgroupBarrier();
  }
  let cBase = u_(${L.MM_OFF_C}u) + b * M * N;
  let nc = n0 + lid3.x * ${tn}u;
${store}
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
  if (M <= GEMV_ROWS) {
    // B's columns contiguous (x @ W^T) on a GPU: threads share each column; else a column per
    // thread (on CPU adapters too, where the workgroup's reduction costs 10x: measured)
    const t = !ctx.cpu && b.strides[1] === 1 && N > 1;
    return {
      kernel: matmulKernel, variant: t ? 'gemvt' : 'gemv', inputs: [a, b], outputs: [c], uniforms: u,
      grid: [Math.max(1, t ? Math.ceil(N / GEMVT_COLS) : Math.ceil(N / GEMV_WG)), 1, batch], op: 'matmul',
    };
  }
  const al = (x: number) => x % 4 === 0;
  const a4 = a.strides[2] === 1 && al(K) && al(a.strides[1]) && al(a.strides[0]) && al(a.offset);
  const b4 = b.strides[2] === 1 && al(N) && al(b.strides[1]) && al(b.strides[0]) && al(b.offset);
  const bt4 = !b4 && b.strides[1] === 1 && al(K) && al(b.strides[2]) && al(b.strides[0]) && al(b.offset);
  return {
    kernel: matmulKernel,
    variant: `${wgx}x${wgy}${a4 ? '|a4' : ''}${b4 ? '|b4' : ''}${bt4 ? '|bt4' : ''}`,
    inputs: [a, b],
    outputs: [c],
    uniforms: u,
    grid: [Math.max(1, Math.ceil(N / (wgx * tn))), Math.max(1, Math.ceil(M / (wgy * tm))), batch],
    op: 'matmul',
  };
}
