// Row reductions (sum, max, min, argmax, argmin, logsumexp) and softmax / log-softmax over a
// contiguous (rows, R) view: one workgroup per row, a strided pass per thread, then a tree in
// workgroup memory. AssemblyScript twin: assembly/reduce.ts.
import * as L from '../../assembly/layout.js';
import { grid1d, type Kernel, type KernelCall, type View } from '../backend/backend.js';
import { GROUP_INDEX, MAIN_ARGS, uniformBlock, workgroupReduce } from './wgsl.js';

const WG = 256;

/** Workgroup tree reduction helpers over sh (values) and si (indices). */
const TREE = `${workgroupReduce(WG)}
var<workgroup> si: array<u32, ${WG}>;
const LOWEST = -3.4028234663852886e38; // sentinel start; -inf data still compares below it
fn better(op: u32, v: f32, i: u32, w: f32, j: u32) -> bool {
  // max-like ops prefer larger (NaN first), min-like smaller; ties keep the lower index;
  // the index 0xffffffff marks a thread that saw no element and always loses
  if (j == 0xffffffffu) { return i != 0xffffffffu; }
  if (i == 0xffffffffu) { return false; }
  if (v != v) { return !(w != w) || i < j; }
  if (w != w) { return false; }
  if (op == ${L.REDUCE_MIN}u || op == ${L.REDUCE_ARGMIN}u) { return v < w || (v == w && i < j); }
  return v > w || (v == w && i < j);
}
fn treeBest(op: u32, lid: u32, v: f32, i: u32) -> u32 {
  sh[lid] = v; si[lid] = i;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s && better(op, sh[lid + s], si[lid + s], sh[lid], si[lid])) { sh[lid] = sh[lid + s]; si[lid] = si[lid + s]; }
    workgroupBarrier();
  }
  let r = si[0];
  workgroupBarrier();
  return r;
}
// max over a row (NaN wins), all threads get it
fn rowMax(base: u32, R: u32, lid: u32) -> f32 {
  var best = LOWEST; var bi = 0xffffffffu;
  for (var i = lid; i < R; i += ${WG}u) {
    let v = X[base + i];
    if (better(${L.REDUCE_MAX}u, v, i, best, bi)) { best = v; bi = i; }
  }
  let j = treeBest(${L.REDUCE_MAX}u, lid, best, bi);
  return X[base + j];
}`;

// Short rows: one thread per row, no workgroup memory or barriers (barriers dominate on CPU
// adapters, and a 256-thread workgroup would idle on a 32-element row anyway).
const SHORT_ROW = 128;
const TWG = 64;

function reduceThreadWgsl(argOut: boolean): string {
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<${argOut ? 'i32' : 'f32'}>;
${uniformBlock(2, L.RD_WORDS)}
@compute @workgroup_size(${TWG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let r = gi * ${TWG}u + lid;
  let rows = u_(${L.RD_ROWS}u); let R = u_(${L.RD_R}u); let op = u_(${L.RD_OP}u);
  if (r >= rows) { return; }
  let base = u_(${L.RD_OFF}u) + r * R;
  if (op == ${L.REDUCE_SUM}u) {
    var s = 0.0;
    for (var i = 0u; i < R; i++) { s += X[base + i]; }
    ${argOut ? '' : 'Y[r] = s;'}
    return;
  }
  var m = X[base];
  var mi = 0u;
  let isMin = op == ${L.REDUCE_MIN}u || op == ${L.REDUCE_ARGMIN}u;
  for (var i = 1u; i < R; i++) {
    let v = X[base + i];
    if (m != m) { break; } // NaN wins
    if (v != v || select(v > m, v < m, isMin)) { m = v; mi = i; }
  }
  if (op == ${L.REDUCE_LSE}u) {
    var s = 0.0;
    if (m >= -3.4028234663852886e38) { for (var i = 0u; i < R; i++) { s += exp(X[base + i] - m); } }
    ${argOut ? '' : 'Y[r] = select(m + log(s), m, m < -3.4028234663852886e38);'}
    return;
  }
  ${argOut ? 'Y[r] = i32(mi);' : 'Y[r] = m;'}
}`;
}

function reduceWgsl(variant: string): string {
  if (variant.endsWith('thread')) return reduceThreadWgsl(variant.startsWith('arg'));
  const argOut = variant === 'arg';
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<${argOut ? 'i32' : 'f32'}>;
${uniformBlock(2, L.RD_WORDS)}
${TREE}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let rows = u_(${L.RD_ROWS}u); let R = u_(${L.RD_R}u); let op = u_(${L.RD_OP}u);
  if (gi >= rows) { return; }
  let base = u_(${L.RD_OFF}u) + gi * R;
  var out = 0.0;
  if (op == ${L.REDUCE_SUM}u) {
    var s = 0.0;
    for (var i = lid; i < R; i += ${WG}u) { s += X[base + i]; }
    out = treeSum(lid, s);
  } else if (op == ${L.REDUCE_LSE}u) {
    let m = rowMax(base, R, lid);
    var s = 0.0;
    if (m >= LOWEST) { for (var i = lid; i < R; i += ${WG}u) { s += exp(X[base + i] - m); } }
    let t = treeSum(lid, s);
    out = select(m + log(t), m, m < LOWEST); // a row of -inf gives -inf
  } else {
    var best = 0.0; var bi = 0xffffffffu;
    for (var i = lid; i < R; i += ${WG}u) {
      let v = X[base + i];
      if (better(op, v, i, best, bi)) { best = v; bi = i; }
    }
    let j = treeBest(op, lid, best, bi);
    ${argOut ? 'if (lid == 0u) { Y[gi] = i32(j); } return;' : 'out = X[base + j];'}
  }
  ${argOut ? '' : 'if (lid == 0u) { Y[gi] = out; }'}
}`;
}

function softmaxWgsl(variant: string): string {
  if (variant === 'thread') {
    return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
${uniformBlock(2, L.RD_WORDS)}
@compute @workgroup_size(${TWG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let r = gi * ${TWG}u + lid;
  let rows = u_(${L.RD_ROWS}u); let R = u_(${L.RD_R}u); let isLog = u_(${L.RD_OP}u);
  if (r >= rows) { return; }
  let base = u_(${L.RD_OFF}u) + r * R;
  var m = X[base];
  for (var i = 1u; i < R; i++) { m = max(m, X[base + i]); }
  var s = 0.0;
  for (var i = 0u; i < R; i++) { s += exp(X[base + i] - m); }
  let lse = m + log(s);
  let inv = 1.0 / s;
  for (var i = 0u; i < R; i++) {
    let x = X[base + i];
    Y[r * R + i] = select(exp(x - m) * inv, x - lse, isLog == 1u);
  }
}`;
  }
  return `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
${uniformBlock(2, L.RD_WORDS)}
${TREE}
@compute @workgroup_size(${WG})
fn main(${MAIN_ARGS}) {
  ${GROUP_INDEX}
  let rows = u_(${L.RD_ROWS}u); let R = u_(${L.RD_R}u); let isLog = u_(${L.RD_OP}u);
  if (gi >= rows) { return; }
  let base = u_(${L.RD_OFF}u) + gi * R;
  let m = rowMax(base, R, lid);
  var s = 0.0;
  for (var i = lid; i < R; i += ${WG}u) { s += exp(X[base + i] - m); }
  let t = treeSum(lid, s);
  let lse = m + log(t);
  let inv = 1.0 / t;
  for (var i = lid; i < R; i += ${WG}u) {
    let x = X[base + i];
    Y[gi * R + i] = select(exp(x - m) * inv, x - lse, isLog == 1u);
  }
}`;
}

export const reduceKernel: Kernel = { name: 'reduce_rows', wgsl: reduceWgsl, wasm: 'reduceRows' };
export const softmaxKernel: Kernel = { name: 'softmax_rows', wgsl: (v) => softmaxWgsl(v), wasm: 'softmaxRows' };

export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin' | 'logsumexp';
const CODES: Record<ReduceOp, number> = {
  sum: L.REDUCE_SUM, max: L.REDUCE_MAX, min: L.REDUCE_MIN, argmax: L.REDUCE_ARGMAX, argmin: L.REDUCE_ARGMIN, logsumexp: L.REDUCE_LSE,
};

function rowsUniforms(rows: number, R: number, op: number, off: number): Uint32Array {
  const u = new Uint32Array(L.RD_WORDS);
  u[L.RD_ROWS] = rows; u[L.RD_R] = R; u[L.RD_OP] = op; u[L.RD_OFF] = off;
  return u;
}

/** out (rows) = op over each row of x, a contiguous (rows, R) f32 view. */
export function reduceCall(op: ReduceOp, x: View, out: View, rows: number, R: number): KernelCall {
  const short = R <= SHORT_ROW;
  return {
    kernel: reduceKernel,
    variant: (op === 'argmax' || op === 'argmin' ? 'arg' : 'val') + (short ? '-thread' : ''),
    inputs: [x], outputs: [out],
    uniforms: rowsUniforms(rows, R, CODES[op], x.offset),
    grid: grid1d(short ? Math.ceil(rows / TWG) : rows), op,
  };
}

/** out (rows, R) = softmax or log-softmax of each row of x. */
export function softmaxCall(log: boolean, x: View, out: View, rows: number, R: number): KernelCall {
  const short = R <= SHORT_ROW;
  return {
    kernel: softmaxKernel, variant: short ? 'thread' : 'group', inputs: [x], outputs: [out],
    uniforms: rowsUniforms(rows, R, log ? 1 : 0, x.offset),
    grid: grid1d(short ? Math.ceil(rows / TWG) : rows), op: log ? 'logSoftmax' : 'softmax',
  };
}
