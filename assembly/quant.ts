// Matmul against quantized weights, dequantized on the fly: y (M, N) = x (M, K) @ W^T with W kept
// in llama.cpp's block formats (repacked word-aligned by src/nn/quant.ts). Every format is walked
// as sub-blocks of 32 weights, w = scale * q - min, widened to f32 once (SIMD) and used for every
// row of x. WGSL twin: src/kernels/quant.ts.
//   Q8_0: blocks of 32 int8, one f32 scale.
//   Q4_0: blocks of 32 as 16 bytes, byte j holding elements j (low nibble) and j + 16, minus 8.
//   Q4_K: super-blocks of 256: 8 scale bytes, 8 min bytes (6-bit values), 128 bytes of nibbles
//         (bytes 32c..32c+31 hold sub-block 2c low, 2c+1 high); f32 d and dmin:
//         w = d * scale[s] * q - dmin * min[s].
//   Q6_K: super-blocks of 256: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8
//         scales (one per 16 weights); f32 d: w = d * scale * (q - 32).
import { uw } from './common';
import { QM_K, QM_M, QM_N, QM_OFF_X, QM_TYPE } from './layout';

const Q8: i32 = 0;
const Q4: i32 = 1;
const Q4K: i32 = 2;
const Q6K: i32 = 3;

const W = memory.data(4 * 32, 16); // scalar builds: one sub-block's 32 weights

@inline function dot4(acc: v128, w: v128, xp: usize): v128 {
  return f32x4.add(acc, f32x4.mul(w, v128.load(xp)));
}

@inline function widen(v: v128, high: bool, sv: v128, mv: v128, withMin: bool): v128 {
  const f = f32x4.mul(sv, f32x4.convert_i32x4_s(high ? i32x4.extend_high_i16x8_s(v) : i32x4.extend_low_i16x8_s(v)));
  return withMin ? f32x4.sub(f, mv) : f;
}

/**
 * Adds sub-block `sub` of weight row n to every row's y: elements 0..15 are the int8 lanes of lo
 * times sLo, 16..31 those of hi times sHi, each minus mn (when withMin).
 */
@inline function subRows(lo: v128, hi: v128, sLo: f32, sHi: f32, mn: f32, withMin: bool, xb0: usize, y: usize, M: i32, N: i32, K: i32, n: i32, sub: i32): void {
  const svl = f32x4.splat(sLo), svh = f32x4.splat(sHi), mv = f32x4.splat(mn);
  const l0 = i16x8.extend_low_i8x16_s(lo), l1 = i16x8.extend_high_i8x16_s(lo);
  const h0 = i16x8.extend_low_i8x16_s(hi), h1 = i16x8.extend_high_i8x16_s(hi);
  const w0 = widen(l0, false, svl, mv, withMin), w1 = widen(l0, true, svl, mv, withMin), w2 = widen(l1, false, svl, mv, withMin), w3 = widen(l1, true, svl, mv, withMin);
  const w4 = widen(h0, false, svh, mv, withMin), w5 = widen(h0, true, svh, mv, withMin), w6 = widen(h1, false, svh, mv, withMin), w7 = widen(h1, true, svh, mv, withMin);
  for (let m = 0; m < M; m++) {
    const xk = xb0 + (<usize>(m * K + (sub << 5)) << 2);
    let a = f32x4.mul(w0, v128.load(xk));
    a = dot4(a, w1, xk + 16); a = dot4(a, w2, xk + 32); a = dot4(a, w3, xk + 48);
    a = dot4(a, w4, xk + 64); a = dot4(a, w5, xk + 80); a = dot4(a, w6, xk + 96); a = dot4(a, w7, xk + 112);
    const o = y + (<usize>(m * N + n) << 2);
    store<f32>(o, load<f32>(o) + ((f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3))));
  }
}

/** Scalar builds: sub-block `sub` of row n, dequantized into W, added to every row's y. */
function subRowsScalar(xb0: usize, y: usize, M: i32, N: i32, K: i32, n: i32, sub: i32): void {
  for (let m = 0; m < M; m++) {
    const xk = xb0 + (<usize>(m * K + (sub << 5)) << 2);
    let t: f32 = 0;
    for (let j = 0; j < 32; j++) t += load<f32>(W + (<usize>j << 2)) * load<f32>(xk + (<usize>j << 2));
    const o = y + (<usize>(m * N + n) << 2);
    store<f32>(o, load<f32>(o) + t);
  }
}

/** Q8_0 / Q4_0 block b of row n (qb: its integers, s: its scale). */
@inline function block32(qb: usize, s: f32, four: bool, xb0: usize, y: usize, M: i32, N: i32, K: i32, n: i32, b: i32): void {
  if (ASC_FEATURE_SIMD) {
    if (four) {
      const raw = v128.load(qb);
      const eight = i8x16.splat(8);
      subRows(i8x16.sub(v128.and(raw, i8x16.splat(15)), eight), i8x16.sub(i8x16.shr_u(raw, 4), eight), s, s, 0, false, xb0, y, M, N, K, n, b);
    } else subRows(v128.load(qb), v128.load(qb, 16), s, s, 0, false, xb0, y, M, N, K, n, b);
    return;
  }
  for (let j = 0; j < 32; j++) {
    let q: i32;
    if (four) {
      const v = <i32>load<u8>(qb + (j & 15));
      q = (j < 16 ? v & 15 : v >> 4) - 8;
    } else q = <i32>load<i8>(qb + j);
    store<f32>(W + (<usize>j << 2), s * <f32>q);
  }
  subRowsScalar(xb0, y, M, N, K, n, b);
}

/** Q4_K super-block b of row n (blk: its 144 bytes; d, dmin: its f32 scales). */
@inline function blockQ4K(blk: usize, d: f32, dmin: f32, xb0: usize, y: usize, M: i32, N: i32, K: i32, n: i32, b: i32): void {
  for (let c = 0; c < 4; c++) {
    const q = blk + 16 + (c << 5);
    for (let h = 0; h < 2; h++) {
      const s = (c << 1) + h;
      const sc = d * <f32>load<u8>(blk + s);
      const mn = dmin * <f32>load<u8>(blk + 8 + s);
      if (ASC_FEATURE_SIMD) {
        const r0 = v128.load(q), r1 = v128.load(q, 16);
        const lo = h ? i8x16.shr_u(r0, 4) : v128.and(r0, i8x16.splat(15));
        const hi = h ? i8x16.shr_u(r1, 4) : v128.and(r1, i8x16.splat(15));
        subRows(lo, hi, sc, sc, mn, true, xb0, y, M, N, K, n, (b << 3) + s);
        continue;
      }
      for (let j = 0; j < 32; j++) {
        const v = <i32>load<u8>(q + j);
        store<f32>(W + (<usize>j << 2), sc * <f32>(h ? v >> 4 : v & 15) - mn);
      }
      subRowsScalar(xb0, y, M, N, K, n, (b << 3) + s);
    }
  }
}

/** Q6_K super-block b of row n (blk: its 208 bytes; d: its f32 scale). */
@inline function blockQ6K(blk: usize, d: f32, xb0: usize, y: usize, M: i32, N: i32, K: i32, n: i32, b: i32): void {
  for (let half = 0; half < 2; half++) {
    const ql = blk + (half << 6);
    const qh = blk + 128 + (half << 5);
    const scs = blk + 192 + (half << 3);
    for (let s = 0; s < 4; s++) {
      // sub-block s: low nibbles (s < 2) or high (s >= 2) of ql[32 (s & 1) ..], bits 2s..2s+1 of qh
      const qlp = ql + ((s & 1) << 5);
      const sLo = d * <f32>load<i8>(scs + (s << 1));
      const sHi = d * <f32>load<i8>(scs + (s << 1) + 1);
      const sub = (b << 3) + (half << 2) + s;
      if (ASC_FEATURE_SIMD) {
        const m15 = i8x16.splat(15), m3 = i8x16.splat(3), k32 = i8x16.splat(32);
        const a0 = v128.load(qlp), a1 = v128.load(qlp, 16);
        const n0 = s >= 2 ? i8x16.shr_u(a0, 4) : v128.and(a0, m15);
        const n1 = s >= 2 ? i8x16.shr_u(a1, 4) : v128.and(a1, m15);
        const h0 = i8x16.shl(v128.and(i8x16.shr_u(v128.load(qh), s << 1), m3), 4);
        const h1 = i8x16.shl(v128.and(i8x16.shr_u(v128.load(qh, 16), s << 1), m3), 4);
        subRows(i8x16.sub(v128.or(n0, h0), k32), i8x16.sub(v128.or(n1, h1), k32), sLo, sHi, 0, false, xb0, y, M, N, K, n, sub);
        continue;
      }
      for (let j = 0; j < 32; j++) {
        const lv = <i32>load<u8>(qlp + j);
        const q = ((s >= 2 ? lv >> 4 : lv & 15) | (((<i32>load<u8>(qh + j) >> (s << 1)) & 3) << 4)) - 32;
        store<f32>(W + (<usize>j << 2), (j < 16 ? sLo : sHi) * <f32>q);
      }
      subRowsScalar(xb0, y, M, N, K, n, sub);
    }
  }
}

@inline function qmatmul(x: usize, qs: usize, scales: usize, y: usize, u: usize, type: i32): void {
  const M = <i32>uw(u, QM_M), N = <i32>uw(u, QM_N), K = <i32>uw(u, QM_K);
  const xb0 = x + (<usize>uw(u, QM_OFF_X) << 2);
  const superBlocks = type == Q4K || type == Q6K;
  const nb = superBlocks ? K >> 8 : K >> 5;
  const blockBytes = type == Q8 ? 32 : type == Q4 ? 16 : type == Q4K ? 144 : 208;
  const scalesPerBlock = type == Q4K ? 2 : 1;
  for (let n = 0; n < N; n++) {
    const q = qs + <usize>n * <usize>(nb * blockBytes);
    const sc = scales + (<usize>(n * nb * scalesPerBlock) << 2);
    for (let m = 0; m < M; m++) store<f32>(y + (<usize>(m * N + n) << 2), 0);
    for (let b = 0; b < nb; b++) {
      const qb = q + <usize>(b * blockBytes);
      const s = load<f32>(sc + (<usize>(b * scalesPerBlock) << 2));
      if (type == Q4K) blockQ4K(qb, s, load<f32>(sc + (<usize>(b * 2 + 1) << 2)), xb0, y, M, N, K, n, b);
      else if (type == Q6K) blockQ6K(qb, s, xb0, y, M, N, K, n, b);
      else block32(qb, s, type == Q4, xb0, y, M, N, K, n, b);
    }
  }
}

export function qmatmul8(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  qmatmul(x, qs, scales, y, u, Q8);
}

export function qmatmul4(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  qmatmul(x, qs, scales, y, u, Q4);
}

export function qmatmulQ4K(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  qmatmul(x, qs, scales, y, u, Q4K);
}

export function qmatmulQ6K(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  qmatmul(x, qs, scales, y, u, Q6K);
}

/** Weight (n, k), dequantized (for matmuls of many rows, and the gradient dx = dy @ dequant(W)). */
@inline function element(qs: usize, scales: usize, type: i32, K: i32, n: i32, k: i32): f32 {
  if (type == Q8 || type == Q4) {
    const b = n * (K >> 5) + (k >> 5), j = k & 31;
    const s = load<f32>(scales + (<usize>b << 2));
    if (type == Q8) return s * <f32>load<i8>(qs + <usize>(b * 32 + j));
    const v = <i32>load<u8>(qs + <usize>(b * 16 + (j & 15)));
    return s * <f32>((j < 16 ? v & 15 : v >> 4) - 8);
  }
  const b = n * (K >> 8) + (k >> 8), e = k & 255;
  if (type == Q4K) {
    const blk = qs + <usize>(b * 144);
    const c = e >> 6, h = (e >> 5) & 1, sub = (c << 1) + h;
    const v = <i32>load<u8>(blk + 16 + (c << 5) + (e & 31));
    const d = load<f32>(scales + (<usize>(b * 2) << 2)), dmin = load<f32>(scales + (<usize>(b * 2 + 1) << 2));
    return d * <f32>load<u8>(blk + sub) * <f32>(h ? v >> 4 : v & 15) - dmin * <f32>load<u8>(blk + 8 + sub);
  }
  const blk = qs + <usize>(b * 208);
  const half = e >> 7, s = (e >> 5) & 3, l = e & 31;
  const lv = <i32>load<u8>(blk + (half << 6) + ((s & 1) << 5) + l);
  const q = ((s >= 2 ? lv >> 4 : lv & 15) | (((<i32>load<u8>(blk + 128 + (half << 5) + l) >> (s << 1)) & 3) << 4)) - 32;
  return load<f32>(scales + (<usize>b << 2)) * <f32>load<i8>(blk + 192 + (half << 3) + (s << 1) + (l >> 4)) * <f32>q;
}

@inline function dequantAll(qs: usize, scales: usize, y: usize, N: i32, K: i32, type: i32): void {
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) store<f32>(y + (<usize>(n * K + k) << 2), element(qs, scales, type, K, n, k));
  }
}

export function qdequant(qs: usize, scales: usize, y: usize, u: usize): void {
  const N = <i32>uw(u, QM_N), K = <i32>uw(u, QM_K), type = <i32>uw(u, QM_TYPE);
  // one loop per format, so each inlines its own element()
  if (type == Q8) dequantAll(qs, scales, y, N, K, Q8);
  else if (type == Q4) dequantAll(qs, scales, y, N, K, Q4);
  else if (type == Q4K) dequantAll(qs, scales, y, N, K, Q4K);
  else dequantAll(qs, scales, y, N, K, Q6K);
}
