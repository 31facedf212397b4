// Choosing the next token on the device: one workgroup per row of logits (the algorithm and the
// order of the processors: assembly/sample.ts, the twin). Each thread owns the indices
// lid, lid + 256, ... for the passes over the row, so only the final draw, which walks the row in
// contiguous chunks, needs the scores other threads wrote.
import * as L from '../../assembly/layout.js';
import type { Kernel, KernelCall, View } from '../backend/backend.js';
import { uniformBlock, workgroupReduce } from './wgsl.js';

const WG = 256;

const wgsl = (): string => `
@group(0) @binding(0) var<storage, read> LG: array<f32>;
@group(0) @binding(1) var<storage, read> BIAS: array<f32>;
@group(0) @binding(2) var<storage, read> UN: array<f32>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> HIST: array<i32>;
@group(0) @binding(5) var<storage, read_write> OUT: array<f32>;
${uniformBlock(6, L.SP_WORDS)}
var<workgroup> ri: array<u32, ${WG}>;
${workgroupReduce(WG, true)}

fn key(v: f32) -> u32 { let b = bitcast<u32>(v); return select(b | 0x80000000u, ~b, (b >> 31u) == 1u); }
fn mid(lo: u32, hi: u32) -> u32 { return lo + ((hi - lo) >> 1u) + ((hi - lo) & 1u); }
fn countAll(v: u32, lid: u32) -> u32 {
  ri[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { ri[lid] += ri[lid + s]; }
    workgroupBarrier();
  }
  let r = ri[0];
  workgroupBarrier();
  return r;
}
// the max and its first index: (index, bits of the max)
fn argmaxAll(v: f32, i: u32, lid: u32) -> vec2<u32> {
  sh[lid] = v; ri[lid] = i;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let w = sh[lid + s]; let j = ri[lid + s];
      if (w > sh[lid] || (w == sh[lid] && j < ri[lid])) { sh[lid] = w; ri[lid] = j; }
    }
    workgroupBarrier();
  }
  let r = vec2<u32>(ri[0], bitcast<u32>(sh[0]));
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wid.x;
  let V = u_(${L.SP_V}u);
  let lo0 = u_(${L.SP_OFF}u) + b * V;
  let so = b * V;
  let greedy = u_(${L.SP_GREEDY}u) != 0u; let K = u_(${L.SP_TOPK}u);
  let temp = uf_(${L.SP_TEMP}u); let topP = uf_(${L.SP_TOPP}u); let minP = uf_(${L.SP_MINP}u);
  let rep = uf_(${L.SP_REP}u); let freq = uf_(${L.SP_FREQ}u); let pres = uf_(${L.SP_PRES}u);
  let NEG = -3.4028234e38; // the lowest f32 (constants may not be infinite)

  var rm = NEG;
  for (var i = lid; i < V; i += ${WG}u) { rm = max(rm, LG[lo0 + i]); }
  let rawMax = treeMax(lid, rm);
  var acc = 0.0;
  for (var i = lid; i < V; i += ${WG}u) { acc += exp(LG[lo0 + i] - rawMax); }
  let rawSum = treeSum(lid, acc);

  // the penalized (and tempered) scores, their max and first argmax
  var m = NEG; var arg = 0u;
  for (var i = lid; i < V; i += ${WG}u) {
    var v = LG[lo0 + i];
    let h = HIST[so + i];
    if (rep != 1.0 && h != 0) { v = select(v / rep, v * rep, v < 0.0); }
    if ((h >> 1u) != 0) { v -= freq * f32(h >> 1u) + pres; }
    v += BIAS[i];
    if (!greedy) { v /= temp; }
    S[so + i] = v;
    if (v > m) { m = v; arg = i; }
  }
  let am = argmaxAll(m, arg, lid);
  let best = am.x;
  let mx = bitcast<f32>(am.y);
  var token = best;
  if (!greedy) {
    var tk = 0u;
    if (K > 0u && K < V) {
      var hi = 0xffffffffu;
      for (var it = 0u; it < 32u; it++) {
        let t = mid(tk, hi);
        var c = 0u;
        for (var i = lid; i < V; i += ${WG}u) { c += select(0u, 1u, key(S[so + i]) >= t); }
        let n = countAll(c, lid);
        if (tk < hi) { if (n >= K) { tk = t; } else { hi = t - 1u; } }
      }
    }
    acc = 0.0;
    for (var i = lid; i < V; i += ${WG}u) { let v = S[so + i]; if (key(v) >= tk) { acc += exp(v - mx); } }
    let Z = treeSum(lid, acc);
    var tp = tk;
    if (topP < 1.0) {
      var hi = 0xffffffffu;
      for (var it = 0u; it < 32u; it++) {
        let t = mid(tp, hi);
        var mass = 0.0;
        for (var i = lid; i < V; i += ${WG}u) { let v = S[so + i]; if (key(v) >= t) { mass += exp(v - mx); } }
        let total = treeSum(lid, mass);
        if (tp < hi) { if (total >= topP * Z) { tp = t; } else { hi = t - 1u; } }
      }
    }
    let floor = select(NEG, mx + log(minP), minP > 0.0);
    // the draw: chunk sums in vocab order, then the chunk that passes the target, walked by thread 0
    let C = (V + ${WG - 1}u) / ${WG}u;
    storageBarrier();
    workgroupBarrier();
    acc = 0.0;
    for (var i = lid * C; i < min(V, lid * C + C); i++) { let v = S[so + i]; if (key(v) >= tp && v >= floor) { acc += exp(v - mx); } }
    sh[lid] = acc;
    workgroupBarrier();
    if (lid == 0u) {
      var Zf = 0.0;
      for (var j = 0u; j < ${WG}u; j++) { Zf += sh[j]; }
      let goal = UN[b] * Zf;
      var cum = 0.0;
      var done = false;
      for (var j = 0u; j < ${WG}u && !done; j++) {
        if (cum + sh[j] > goal) {
          for (var i = j * C; i < min(V, j * C + C); i++) {
            let v = S[so + i];
            if (key(v) >= tp && v >= floor) {
              cum += exp(v - mx);
              if (cum > goal) { token = i; done = true; break; }
            }
          }
          done = true;
        } else { cum += sh[j]; }
      }
    }
  }
  if (lid == 0u) {
    OUT[2u * b] = f32(token);
    OUT[2u * b + 1u] = LG[lo0 + token] - rawMax - log(rawSum);
    HIST[so + token] += 2;
  }
}`;

export const sampleKernel: Kernel = { name: 'sample', wgsl, wasm: 'sample' };

export interface SampleParams {
  greedy: boolean;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
}

/**
 * One token per row of `logits` (rows of V from its offset): `scores` (rows, V) scratch, `hist`
 * (rows, V) i32 history, `out` (rows, 2) token and log-probability, `draws` (rows) uniforms in [0, 1).
 */
export function sampleCall(logits: View, bias: View, draws: View, scores: View, hist: View, out: View, rows: number, V: number, p: SampleParams): KernelCall {
  const u = new Uint32Array(L.SP_WORDS);
  const f = new Float32Array(u.buffer);
  u[L.SP_V] = V; u[L.SP_OFF] = logits.offset; u[L.SP_ROWS] = rows;
  u[L.SP_GREEDY] = p.greedy ? 1 : 0; u[L.SP_TOPK] = p.topK;
  f[L.SP_TEMP] = p.temperature; f[L.SP_TOPP] = p.topP; f[L.SP_MINP] = p.minP;
  f[L.SP_REP] = p.repetitionPenalty; f[L.SP_FREQ] = p.frequencyPenalty; f[L.SP_PRES] = p.presencePenalty;
  return { kernel: sampleKernel, variant: '', inputs: [logits, bias, draws], outputs: [scores, hist, out], uniforms: u, grid: [rows, 1, 1], op: 'sample' };
}
