// Fused attention (flash-style): online softmax over K/V tiles staged in workgroup memory, one
// query row per thread, never a (Tq, Tk) matrix; keys a mask rules out for the whole block are
// never loaded (causal and sliding-window bounds). Backward is FlashAttention-2's: dq per query
// row and dk/dv per key row (looping over the query heads sharing it), no atomics.
// AssemblyScript twin: assembly/attention.ts; composed reference: nn/attention.ts.
import * as L from '../../assembly/layout.js';
import type { Kernel, KernelCall, View } from '../backend/backend.js';
import { uniformBlock, workgroupReduce } from './wgsl.js';

const BQ = 64; // query rows (threads) per workgroup
const BK = 16; // keys per tile

/** Head-dim capacity of a variant: private accumulators are sized at compile time. */
export const headDimBucket = (D: number): number => (D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : 256);
export const MAX_HEAD_DIM = 256;

/** A FlexAttention modifier pair compiled into the kernels (WGSL expressions). */
export interface FlexSnippets {
  /** f32 expression of score, b, h, q_idx, kv_idx */
  scoreMod?: string;
  /** its derivative with respect to score (default 1.0: an additive modifier) */
  scoreModGrad?: string;
  /** bool expression of b, h, q_idx, kv_idx */
  maskMod?: string;
}

// kernel variants carry a key into this registry; the WGSL generator reads the snippets back
const SNIPPETS = new Map<string, FlexSnippets>();
export function registerSnippets(sn: FlexSnippets): string {
  const key = `flex${hash(`${sn.scoreMod ?? ''}\u0000${sn.scoreModGrad ?? ''}\u0000${sn.maskMod ?? ''}`)}`;
  SNIPPETS.set(key, sn);
  return key;
}
function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(36);
}

function snippetFns(key: string | undefined): string {
  const sn = key ? SNIPPETS.get(key) : undefined;
  return `
fn param(i: u32) -> f32 { return uf_(${L.FA_P}u + i); }
fn headParam(i: u32) -> f32 { return bitcast<f32>(AUX[u_(${L.FA_OFF_HP}u) + i]); }
fn scoreMod(score: f32, b: u32, h: u32, q_idx: u32, kv_idx: u32) -> f32 { return ${sn?.scoreMod ?? 'score'}; }
fn scoreModGrad(score: f32, b: u32, h: u32, q_idx: u32, kv_idx: u32) -> f32 { return ${sn?.scoreModGrad ?? '1.0'}; }
fn maskMod(b: u32, h: u32, q_idx: u32, kv_idx: u32) -> bool { return ${sn?.maskMod ?? 'true'}; }`;
}

const COMMON = `
fn blockLive(qi: u32, kj: u32) -> bool {
  if ((u_(${L.FA_FLAGS}u) & ${L.FA_BLOCKMASK}u) == 0u) { return true; }
  return AUX[u_(${L.FA_OFF_BM}u) + (qi / ${L.FA_BLOCK}u) * u_(${L.FA_NKB}u) + kj / ${L.FA_BLOCK}u] != 0;
}
fn visible(b: u32, h: u32, qi: u32, kj: u32) -> bool {
  let Tq = u_(${L.FA_TQ}u); let Tk = u_(${L.FA_TK}u); let flags = u_(${L.FA_FLAGS}u); let W = u_(${L.FA_WINDOW}u);
  let qpos = qi + Tk - Tq;
  if ((flags & ${L.FA_CAUSAL}u) != 0u && kj > qpos) { return false; }
  if (W > 0u && kj + W <= qpos) { return false; }
  if ((flags & ${L.FA_SEG}u) != 0u) {
    let sq = AUX[b * Tq + qi];
    let sk = AUX[u_(${L.FA_B}u) * Tq + b * Tk + kj];
    if (sk < 0 || sq != sk) { return false; }
  }
  if ((flags & ${L.FA_MASKMOD}u) != 0u && !maskMod(b, h, qi, kj)) { return false; }
  return true;
}
// the dropout multiplier of pair (b, h, q, kv): 0 or 1 / (1 - p); twin of the AS dropMul
fn dropMul(b: u32, h: u32, qi: u32, kj: u32) -> f32 {
  if ((u_(${L.FA_FLAGS}u) & ${L.FA_DROPOUT}u) == 0u) { return 1.0; }
  var x = (((b * u_(${L.FA_H}u) + h) * u_(${L.FA_TQ}u) + qi) * u_(${L.FA_TK}u) + kj) * 0x9E3779B1u + u_(${L.FA_DROP_SEED}u);
  x ^= x >> 16u; x *= 0x85EBCA6Bu; x ^= x >> 13u; x *= 0xC2B2AE35u; x ^= x >> 16u;
  return select(uf_(${L.FA_DROP_SCALE}u), 0.0, x < u_(${L.FA_DROP_THRESHOLD}u));
}
// score before modifiers: q.k * scale, soft-capped when asked
fn capped(s: f32) -> f32 {
  let cap = uf_(${L.FA_SOFTCAP}u);
  if (cap > 0.0) { return cap * tanh(clamp(s / cap, -15.0, 15.0)); }
  return s;
}
fn capGrad(s: f32) -> f32 {
  let cap = uf_(${L.FA_SOFTCAP}u);
  if (cap > 0.0) { let t = s / cap; return 1.0 - t * t; }
  return 1.0;
}
fn modded(c: f32, b: u32, h: u32, qi: u32, kj: u32) -> f32 {
  if ((u_(${L.FA_FLAGS}u) & ${L.FA_SCOREMOD}u) != 0u) { return scoreMod(c, b, h, qi, kj); }
  return c;
}
// d(final score) / d(q.k * scale)
fn scoreGrad(c: f32, b: u32, h: u32, qi: u32, kj: u32) -> f32 {
  var g = 1.0;
  if ((u_(${L.FA_FLAGS}u) & ${L.FA_SCOREMOD}u) != 0u) { g = scoreModGrad(c, b, h, qi, kj); }
  return g * capGrad(c);
}
// the key range a block of query rows [q0, q1) can see: causal and window bounds
fn keyRange(q0: u32, q1: u32) -> vec2<u32> {
  let Tq = u_(${L.FA_TQ}u); let Tk = u_(${L.FA_TK}u); let flags = u_(${L.FA_FLAGS}u); let W = u_(${L.FA_WINDOW}u);
  var hi = Tk;
  if ((flags & ${L.FA_CAUSAL}u) != 0u) { hi = min(Tk, q1 - 1u + Tk - Tq + 1u); }
  var lo = 0u;
  if (W > 0u && q0 + Tk - Tq + 1u > W) { lo = q0 + Tk - Tq + 1u - W; }
  // tiles start on a tile boundary, so none straddles two blocks of the block mask
  return vec2<u32>(lo / ${BK}u * ${BK}u, hi);
}`;

/** The workgroup stages keys and values [k0, k0 + BK) of its head in Ks and Vs (zeros past Tk). */
// Loops over a head dim run to the variant's MD, a constant, so they unroll and the private rows
// stay in registers (a loop to the runtime D indexes them dynamically, from local memory: on an
// H200 a 512-token prefill's attention took 6x as long). Past D the tiles and rows hold zeros
// (WGSL zero-fills workgroup and private memory; the loads write columns below D only).
const loadKVTile = (MD: number): string => `for (var e = lid; e < ${BK}u * D; e += ${BQ}u) {
      let r = e / D; let c = e % D;
      var kv = 0.0; var vv = 0.0;
      if (k0 + r < Tk) {
        kv = K[u_(${L.FA_OFF_K}u) + (kvBase + k0 + r) * D + c];
        vv = V[u_(${L.FA_OFF_V}u) + (kvBase + k0 + r) * D + c];
      }
      Ks[r * ${MD}u + c] = kv;
      Vs[r * ${MD}u + c] = vv;
    }`;

/** The forward kernels' bindings and shared functions. */
const fwdHeader = (variant: string): string => `
@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> AUX: array<i32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<storage, read_write> LSE: array<f32>;
${uniformBlock(6, L.FA_WORDS)}
${COMMON}
${snippetFns(variant.split('|')[1])}`;

function fwdWgsl(variant: string): string {
  const MD = Number(variant.split('|')[0].slice(1));
  return `
${fwdHeader(variant)}
var<workgroup> Ks: array<f32, ${BK * MD}>;
var<workgroup> Vs: array<f32, ${BK * MD}>;
@compute @workgroup_size(${BQ})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let H = u_(${L.FA_H}u); let Hkv = u_(${L.FA_HKV}u); let Tq = u_(${L.FA_TQ}u); let Tk = u_(${L.FA_TK}u); let D = u_(${L.FA_D}u);
  let bh = wid.y; let b = bh / H; let h = bh % H; let hk = h / (H / Hkv);
  let q0 = wid.x * ${BQ}u;
  let qi = q0 + lid;
  let valid = qi < Tq;
  var qv: array<f32, ${MD}>;
  var acc: array<f32, ${MD}>;
  if (valid) {
    let qb = u_(${L.FA_OFF_Q}u) + (bh * Tq + qi) * D;
    for (var d = 0u; d < D; d++) { qv[d] = Q[qb + d]; }
  }
  let scale = uf_(${L.FA_SCALE}u);
  var m = -3.4028234663852886e38;
  var l = 0.0;
  let kr = keyRange(q0, min(q0 + ${BQ}u, Tq));
  let cap = u_(${L.FA_KV_CAP}u); // a pre-allocated KV cache holds cap rows per head, Tk of them live
  let kvBase = (b * Hkv + hk) * select(Tk, cap, cap > 0u);
  for (var k0 = kr.x; k0 < kr.y; k0 += ${BK}u) {
    if (!blockLive(q0, k0)) { continue; } // uniform: the whole workgroup skips a dead block
    ${loadKVTile(MD)}
    workgroupBarrier();
    if (valid && blockLive(q0, k0)) {
      for (var j = 0u; j < ${BK}u; j++) {
        let kj = k0 + j;
        if (kj >= kr.y) { break; }
        if (!visible(b, h, qi, kj)) { continue; }
        var s = 0.0;
        for (var d = 0u; d < ${MD}u; d++) { s += qv[d] * Ks[j * ${MD}u + d]; }
        s = modded(capped(s * scale), b, h, qi, kj);
        let mn = max(m, s);
        let corr = exp(m - mn);
        let p = exp(s - mn);
        l = l * corr + p; // the undropped sum normalises; only what reaches V is dropped
        let pd = p * dropMul(b, h, qi, kj);
        for (var d = 0u; d < ${MD}u; d++) { acc[d] = acc[d] * corr + pd * Vs[j * ${MD}u + d]; }
        m = mn;
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let ob = (bh * Tq + qi) * D;
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < D; d++) { O[ob + d] = acc[d] * inv; }
    // a row that sees no key gets lse = -inf (log(0)), its output and gradients 0
    LSE[bh * Tq + qi] = select(log(l), m + log(l), l > 0.0);
  }
}`;
}

/**
 * Forward for one query row per (batch, head), as in decoding: the GPU's threads split the keys
 * for the scores and the head dims for the output (reading V rows coalesced), over chunks of DCK
 * keys with the online-softmax rescaling between chunks, instead of one thread walking every key.
 * Same math and masks as fwdWgsl (and the AssemblyScript twin, whose loop serves both shapes).
 */
const DW = 64; // threads
const DCK = 1024; // keys per chunk (their scores sit in workgroup memory)
function decodeWgsl(variant: string): string {
  const MD = Number(variant.split('|')[0].slice(1));
  const per = Math.max(1, MD / DW); // output dims per thread
  const dims = [...Array(per).keys()];
  return `
${fwdHeader(variant)}
var<workgroup> qs: array<f32, ${MD}>;
var<workgroup> sc: array<f32, ${DCK}>;
${workgroupReduce(DW, true)}
const NEG = -3.4028234e38;
@compute @workgroup_size(${DW})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let H = u_(${L.FA_H}u); let Hkv = u_(${L.FA_HKV}u); let Tq = u_(${L.FA_TQ}u); let Tk = u_(${L.FA_TK}u); let D = u_(${L.FA_D}u);
  let bh = wid.y; let b = bh / H; let h = bh % H; let hk = h / (H / Hkv);
  let qb = u_(${L.FA_OFF_Q}u) + bh * Tq * D;
  for (var d = lid; d < D; d += ${DW}u) { qs[d] = Q[qb + d]; }
  workgroupBarrier();
  let scale = uf_(${L.FA_SCALE}u);
  let kr = keyRange(0u, 1u);
  let cap = u_(${L.FA_KV_CAP}u);
  let kvBase = (b * Hkv + hk) * select(Tk, cap, cap > 0u);
  let kOff = u_(${L.FA_OFF_K}u); let vOff = u_(${L.FA_OFF_V}u);
  var m = NEG;
  var l = 0.0;
  ${dims.map((i) => `var o${i} = 0.0;`).join(' ')}
  for (var c0 = kr.x; c0 < kr.y; c0 += ${DCK}u) {
    let c1 = min(c0 + ${DCK}u, kr.y);
    // this chunk's scores, one key per thread at a time (NEG: not visible)
    var cm = NEG;
    for (var j = c0 + lid; j < c1; j += ${DW}u) {
      var s = NEG;
      if (blockLive(0u, j) && visible(b, h, 0u, j)) {
        let kb = kOff + (kvBase + j) * D;
        var dot = 0.0;
        for (var d = 0u; d < D; d++) { dot += qs[d] * K[kb + d]; }
        s = modded(capped(dot * scale), b, h, 0u, j);
      }
      sc[j - c0] = s;
      cm = max(cm, s);
    }
    cm = treeMax(lid, cm);
    let mn = max(m, cm);
    let corr = select(1.0, exp(m - mn), m > NEG);
    var ps = 0.0;
    for (var j = c0 + lid; j < c1; j += ${DW}u) {
      let s = sc[j - c0];
      let p = select(0.0, exp(s - mn), s > NEG);
      ps += p; // the undropped sum normalises; only what reaches V is dropped
      sc[j - c0] = p * dropMul(b, h, 0u, j);
    }
    let cs = treeSum(lid, ps); // its barriers also publish sc to every thread
    l = l * corr + cs;
    ${dims.map((i) => `{
      let d = lid + ${i * DW}u;
      if (d < D) {
        var a = 0.0;
        for (var j = c0; j < c1; j++) { a += sc[j - c0] * V[vOff + (kvBase + j) * D + d]; }
        o${i} = o${i} * corr + a;
      }
    }`).join('\n    ')}
    m = mn;
    workgroupBarrier(); // the next chunk overwrites sc
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  ${dims.map((i) => `if (lid + ${i * DW}u < D) { O[bh * Tq * D + lid + ${i * DW}u] = o${i} * inv; }`).join('\n  ')}
  // a row that sees no key gets lse = -inf (log(0)), its output 0
  if (lid == 0u) { LSE[bh * Tq] = select(log(l), m + log(l), l > 0.0); }
}`;
}

function dqWgsl(variant: string): string {
  const MD = Number(variant.split('|')[0].slice(1));
  return `
@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> AUX: array<i32>;
@group(0) @binding(4) var<storage, read> dO: array<f32>;
@group(0) @binding(5) var<storage, read> ST: array<f32>;
@group(0) @binding(6) var<storage, read_write> dQ: array<f32>;
${uniformBlock(7, L.FA_WORDS)}
${COMMON}
${snippetFns(variant.split('|')[1])}
var<workgroup> Ks: array<f32, ${BK * MD}>;
var<workgroup> Vs: array<f32, ${BK * MD}>;
@compute @workgroup_size(${BQ})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let H = u_(${L.FA_H}u); let Hkv = u_(${L.FA_HKV}u); let Tq = u_(${L.FA_TQ}u); let Tk = u_(${L.FA_TK}u); let D = u_(${L.FA_D}u);
  let bh = wid.y; let b = bh / H; let h = bh % H; let hk = h / (H / Hkv);
  let q0 = wid.x * ${BQ}u;
  let qi = q0 + lid;
  let row = bh * Tq + qi;
  var live = qi < Tq;
  var qv: array<f32, ${MD}>;
  var gv: array<f32, ${MD}>;
  var acc: array<f32, ${MD}>;
  var Lr = 0.0; var Ds = 0.0;
  if (live) {
    let qb = u_(${L.FA_OFF_Q}u) + row * D;
    for (var d = 0u; d < D; d++) { qv[d] = Q[qb + d]; gv[d] = dO[row * D + d]; }
    Lr = ST[2u * row]; Ds = ST[2u * row + 1u];
    live = Lr > -3.4028234663852886e38; // a row that saw no key has no gradient
  }
  let scale = uf_(${L.FA_SCALE}u);
  let kr = keyRange(q0, min(q0 + ${BQ}u, Tq));
  let kvBase = (b * Hkv + hk) * Tk;
  for (var k0 = kr.x; k0 < kr.y; k0 += ${BK}u) {
    if (!blockLive(q0, k0)) { continue; }
    ${loadKVTile(MD)}
    workgroupBarrier();
    if (live) {
      for (var j = 0u; j < ${BK}u; j++) {
        let kj = k0 + j;
        if (kj >= kr.y) { break; }
        if (!visible(b, h, qi, kj)) { continue; }
        var s = 0.0; var dp = 0.0;
        for (var d = 0u; d < ${MD}u; d++) { s += qv[d] * Ks[j * ${MD}u + d]; dp += gv[d] * Vs[j * ${MD}u + d]; }
        let c = capped(s * scale);
        let ds = exp(modded(c, b, h, qi, kj) - Lr) * (dp * dropMul(b, h, qi, kj) - Ds) * scoreGrad(c, b, h, qi, kj) * scale;
        for (var d = 0u; d < ${MD}u; d++) { acc[d] += ds * Ks[j * ${MD}u + d]; }
      }
    }
    workgroupBarrier();
  }
  if (qi < Tq) { for (var d = 0u; d < D; d++) { dQ[row * D + d] = acc[d]; } }
}`;
}

function dkvWgsl(variant: string): string {
  const MD = Number(variant.split('|')[0].slice(1));
  const QT = MD >= 256 ? BK / 2 : BK; // query rows per tile: two tiles of 256 dims fill 32 KiB of workgroup memory
  return `
@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> AUX: array<i32>;
@group(0) @binding(4) var<storage, read> dO: array<f32>;
@group(0) @binding(5) var<storage, read> ST: array<f32>;
@group(0) @binding(6) var<storage, read_write> dK: array<f32>;
@group(0) @binding(7) var<storage, read_write> dV: array<f32>;
${uniformBlock(8, L.FA_WORDS)}
${COMMON}
${snippetFns(variant.split('|')[1])}
// Q and dO tiles (and their rows' lse, Dsum), shared by the workgroup's key rows
var<workgroup> Qs: array<f32, ${QT * MD}>;
var<workgroup> Gs: array<f32, ${QT * MD}>;
var<workgroup> Ss: array<f32, ${2 * QT}>;
@compute @workgroup_size(${BQ})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let H = u_(${L.FA_H}u); let Hkv = u_(${L.FA_HKV}u); let Tq = u_(${L.FA_TQ}u); let Tk = u_(${L.FA_TK}u); let D = u_(${L.FA_D}u);
  let bk = wid.y; let b = bk / Hkv; let hk = bk % Hkv; let G = H / Hkv;
  let kb0 = wid.x * ${BQ}u;
  let kj = kb0 + lid;
  let valid = kj < Tk;
  let krow = bk * Tk + kj;
  var kv: array<f32, ${MD}>;
  var vv: array<f32, ${MD}>;
  var ak: array<f32, ${MD}>;
  var av: array<f32, ${MD}>;
  if (valid) {
    for (var d = 0u; d < D; d++) { kv[d] = K[u_(${L.FA_OFF_K}u) + krow * D + d]; vv[d] = V[u_(${L.FA_OFF_V}u) + krow * D + d]; }
  }
  let scale = uf_(${L.FA_SCALE}u);
  let flags = u_(${L.FA_FLAGS}u); let W = u_(${L.FA_WINDOW}u);
  // the queries that can see any key of this block: causal from its first key, window up to its last
  let kLast = min(kb0 + ${BQ}u, Tk) - 1u;
  var qlo = 0u;
  if ((flags & ${L.FA_CAUSAL}u) != 0u && kb0 + Tq > Tk) { qlo = (kb0 + Tq - Tk) / ${QT}u * ${QT}u; }
  var qhi = Tq;
  if (W > 0u && kLast + W + Tq > Tk) { qhi = min(Tq, kLast + W + Tq - Tk); }
  for (var g = 0u; g < G; g++) {
    let h = hk * G + g;
    let rowBase = (b * H + h) * Tq;
    for (var t0 = qlo; t0 < qhi; t0 += ${QT}u) {
      if (!blockLive(t0, kb0)) { continue; }
      for (var e = lid; e < ${QT}u * D; e += ${BQ}u) {
        let r = e / D; let c = e % D;
        var qx = 0.0; var gx = 0.0;
        if (t0 + r < Tq) {
          qx = Q[u_(${L.FA_OFF_Q}u) + (rowBase + t0 + r) * D + c];
          gx = dO[(rowBase + t0 + r) * D + c];
        }
        Qs[r * ${MD}u + c] = qx;
        Gs[r * ${MD}u + c] = gx;
      }
      if (lid < ${2 * QT}u) {
        let r = lid / 2u;
        var st = -3.4028234663852886e38 * f32(1u - (lid % 2u)); // lse -> lowest, Dsum -> 0 past the end
        if (t0 + r < Tq) { st = ST[2u * (rowBase + t0 + r) + lid % 2u]; }
        Ss[lid] = st;
      }
      workgroupBarrier();
      if (valid) {
        for (var j = 0u; j < ${QT}u; j++) {
          let qi = t0 + j;
          if (qi >= qhi) { break; }
          let Lr = Ss[2u * j];
          if (Lr <= -3.4028234663852886e38 || !visible(b, h, qi, kj)) { continue; }
          var s = 0.0; var dp = 0.0;
          for (var d = 0u; d < ${MD}u; d++) { s += Qs[j * ${MD}u + d] * kv[d]; dp += Gs[j * ${MD}u + d] * vv[d]; }
          let c = capped(s * scale);
          let p = exp(modded(c, b, h, qi, kj) - Lr);
          let dm = dropMul(b, h, qi, kj);
          let ds = p * (dp * dm - Ss[2u * j + 1u]) * scoreGrad(c, b, h, qi, kj) * scale;
          for (var d = 0u; d < ${MD}u; d++) { av[d] += p * dm * Gs[j * ${MD}u + d]; ak[d] += ds * Qs[j * ${MD}u + d]; }
        }
      }
      workgroupBarrier();
    }
  }
  if (valid) { for (var d = 0u; d < D; d++) { dK[krow * D + d] = ak[d]; dV[krow * D + d] = av[d]; } }
}`;
}

export const flashFwdKernel: Kernel = { name: 'flash_attention_fwd', wgsl: (v) => (v.endsWith('|q1') ? decodeWgsl(v) : fwdWgsl(v)), wasm: 'flashFwd' };
export const flashDqKernel: Kernel = { name: 'flash_attention_dq', wgsl: dqWgsl, wasm: 'flashBwdDq' };
export const flashDkvKernel: Kernel = { name: 'flash_attention_dkv', wgsl: dkvWgsl, wasm: 'flashBwdDkv' };
/**
 * The CPU's single-pass backward (dq, dk, dv together): on one thread nothing is gained by the
 * GPU's split into a per-query and a per-key kernel, and one pass computes each pair once.
 * Its GPU counterpart is the dq + dk/dv pair above; both are tested against the composed path.
 */
export const flashBwdCpuKernel: Kernel = {
  name: 'flash_attention_bwd_cpu',
  wgsl: () => {
    throw new Error('flash_attention_bwd_cpu runs on the wasm backend; WebGPU uses flash_attention_dq and flash_attention_dkv');
  },
  wasm: 'flashBwd',
};

export function flashBwdCpuCall(p: FlashParams, q: View, k: View, v: View, aux: View, dO: View, stats: View, dq: View, dk: View, dv: View): KernelCall {
  return {
    kernel: flashBwdCpuKernel, variant: '', inputs: [q, k, v, aux, dO, stats], outputs: [dq, dk, dv], uniforms: uniforms(p, q, k, v),
    grid: [1, 1, 1], op: 'flashAttention.backward',
  };
}

export interface FlashParams {
  B: number; H: number; Hkv: number; Tq: number; Tk: number; D: number;
  scale: number; causal: boolean; segments: boolean; window: number; softcap: number;
  /** FlexAttention: the registered snippets' key, what they use, and where aux holds the block mask and head parameters */
  flex?: { key: string; scoreMod: boolean; maskMod: boolean; blockMask: boolean; offBM: number; offHP: number; nKB: number; params: number[] };
  /** attention dropout: probability and the seed of the call's hash stream */
  dropout?: { p: number; seed: number };
  /** forward only: K/V are a pre-allocated cache of kvCap rows per head (Tk of them live) */
  kvCap?: number;
}

function uniforms(p: FlashParams, q: View, k: View, v: View): Uint32Array {
  const u = new Uint32Array(L.FA_WORDS);
  const f = new Float32Array(u.buffer);
  u[L.FA_B] = p.B; u[L.FA_H] = p.H; u[L.FA_HKV] = p.Hkv; u[L.FA_TQ] = p.Tq; u[L.FA_TK] = p.Tk; u[L.FA_D] = p.D;
  f[L.FA_SCALE] = p.scale;
  const fx = p.flex;
  u[L.FA_FLAGS] = (p.causal ? L.FA_CAUSAL : 0) | (p.segments ? L.FA_SEG : 0) |
    (fx?.scoreMod ? L.FA_SCOREMOD : 0) | (fx?.maskMod ? L.FA_MASKMOD : 0) | (fx?.blockMask ? L.FA_BLOCKMASK : 0);
  if (p.dropout && p.dropout.p > 0) {
    u[L.FA_FLAGS] |= L.FA_DROPOUT;
    u[L.FA_DROP_THRESHOLD] = Math.min(0xffffffff, Math.round(p.dropout.p * 2 ** 32));
    u[L.FA_DROP_SEED] = p.dropout.seed >>> 0;
    f[L.FA_DROP_SCALE] = 1 / (1 - p.dropout.p);
  }
  if (fx) {
    u[L.FA_OFF_BM] = fx.offBM; u[L.FA_OFF_HP] = fx.offHP; u[L.FA_NKB] = fx.nKB;
    fx.params.slice(0, 4).forEach((v, i) => (f[L.FA_P + i] = v));
  }
  u[L.FA_WINDOW] = p.window;
  u[L.FA_OFF_Q] = q.offset; u[L.FA_OFF_K] = k.offset; u[L.FA_OFF_V] = v.offset;
  f[L.FA_SOFTCAP] = p.softcap;
  u[L.FA_KV_CAP] = p.kvCap ?? 0;
  return u;
}

const variant = (p: FlashParams) => `d${headDimBucket(p.D)}${p.flex ? `|${p.flex.key}` : ''}`;

export function flashFwdCall(p: FlashParams, q: View, k: View, v: View, aux: View, o: View, lse: View): KernelCall {
  // one query row (decoding): the schedule that splits keys and dims over the threads
  const one = p.Tq === 1;
  return {
    kernel: flashFwdKernel, variant: variant(p) + (one ? '|q1' : ''), inputs: [q, k, v, aux], outputs: [o, lse], uniforms: uniforms(p, q, k, v),
    grid: [one ? 1 : Math.ceil(p.Tq / BQ), p.B * p.H, 1], op: 'flashAttention',
  };
}

export function flashDqCall(p: FlashParams, q: View, k: View, v: View, aux: View, dO: View, stats: View, dq: View): KernelCall {
  return {
    kernel: flashDqKernel, variant: variant(p), inputs: [q, k, v, aux, dO, stats], outputs: [dq], uniforms: uniforms(p, q, k, v),
    grid: [Math.ceil(p.Tq / BQ), p.B * p.H, 1], op: 'flashAttention.backward',
  };
}

export function flashDkvCall(p: FlashParams, q: View, k: View, v: View, aux: View, dO: View, stats: View, dk: View, dv: View): KernelCall {
  return {
    kernel: flashDkvKernel, variant: variant(p), inputs: [q, k, v, aux, dO, stats], outputs: [dk, dv], uniforms: uniforms(p, q, k, v),
    grid: [Math.ceil(p.Tk / BQ), p.B * p.Hkv, 1], op: 'flashAttention.backward',
  };
}
