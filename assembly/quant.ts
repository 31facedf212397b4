// Matmul against quantized weights, dequantized on the fly: y (M, N) = x (M, K) @ W^T where row n
// of W is K/32 blocks of 32 small integers times the block's f32 scale; the weights stay quantized
// in memory. Q8_0: 32 int8 per block. Q4_0 (llama.cpp's layout): 16 bytes per block, byte j
// holding elements j (low nibble) and j + 16 (high), each minus 8. Each block is widened to f32
// once (SIMD) and used for every row of x. WGSL twin: src/kernels/quant.ts.
import { uw } from './common';
import { QM_K, QM_M, QM_N, QM_OFF_X } from './layout';

@inline function dot4(acc: v128, w: v128, xp: usize): v128 {
  return f32x4.add(acc, f32x4.mul(w, v128.load(xp)));
}

@inline function widen(v: v128, high: bool, sv: v128): v128 {
  return f32x4.mul(sv, f32x4.convert_i32x4_s(high ? i32x4.extend_high_i16x8_s(v) : i32x4.extend_low_i16x8_s(v)));
}

/** Adds block b of weight row n (elements 0..15 in lo, 16..31 in hi, as int8) times scale s to every row's y. */
@inline function blockRows(lo: v128, hi: v128, s: f32, xb0: usize, y: usize, M: i32, N: i32, K: i32, n: i32, b: i32): void {
  const sv = f32x4.splat(s);
  const l0 = i16x8.extend_low_i8x16_s(lo), l1 = i16x8.extend_high_i8x16_s(lo);
  const h0 = i16x8.extend_low_i8x16_s(hi), h1 = i16x8.extend_high_i8x16_s(hi);
  const w0 = widen(l0, false, sv), w1 = widen(l0, true, sv), w2 = widen(l1, false, sv), w3 = widen(l1, true, sv);
  const w4 = widen(h0, false, sv), w5 = widen(h0, true, sv), w6 = widen(h1, false, sv), w7 = widen(h1, true, sv);
  for (let m = 0; m < M; m++) {
    const xk = xb0 + (<usize>(m * K + (b << 5)) << 2);
    let a = f32x4.mul(w0, v128.load(xk));
    a = dot4(a, w1, xk + 16); a = dot4(a, w2, xk + 32); a = dot4(a, w3, xk + 48);
    a = dot4(a, w4, xk + 64); a = dot4(a, w5, xk + 80); a = dot4(a, w6, xk + 96); a = dot4(a, w7, xk + 112);
    const o = y + (<usize>(m * N + n) << 2);
    store<f32>(o, load<f32>(o) + ((f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3))));
  }
}

/** The block's element j as an integer (scalar builds). */
@inline function element(qb: usize, j: i32, four: bool): i32 {
  if (!four) return <i32>load<i8>(qb + j);
  const v = <i32>load<u8>(qb + (j & 15));
  return (j < 16 ? v & 15 : v >> 4) - 8;
}

function qmatmul(x: usize, qs: usize, scales: usize, y: usize, u: usize, four: bool): void {
  const M = <i32>uw(u, QM_M), N = <i32>uw(u, QM_N), K = <i32>uw(u, QM_K);
  const xb0 = x + (<usize>uw(u, QM_OFF_X) << 2);
  const nb = K >> 5;
  const blockBytes = four ? 16 : 32;
  for (let n = 0; n < N; n++) {
    const q = qs + <usize>n * <usize>(nb * blockBytes);
    const sc = scales + (<usize>(n * nb) << 2);
    for (let m = 0; m < M; m++) store<f32>(y + (<usize>(m * N + n) << 2), 0);
    for (let b = 0; b < nb; b++) {
      const s = load<f32>(sc + (<usize>b << 2));
      const qb = q + <usize>(b * blockBytes);
      if (ASC_FEATURE_SIMD) {
        if (four) {
          const raw = v128.load(qb);
          const eight = i8x16.splat(8);
          blockRows(i8x16.sub(v128.and(raw, i8x16.splat(15)), eight), i8x16.sub(i8x16.shr_u(raw, 4), eight), s, xb0, y, M, N, K, n, b);
        } else blockRows(v128.load(qb), v128.load(qb, 16), s, xb0, y, M, N, K, n, b);
        continue;
      }
      for (let m = 0; m < M; m++) {
        const xk = xb0 + (<usize>(m * K + (b << 5)) << 2);
        let t: f32 = 0;
        for (let j = 0; j < 32; j++) t += <f32>element(qb, j, four) * load<f32>(xk + (<usize>j << 2));
        const o = y + (<usize>(m * N + n) << 2);
        store<f32>(o, load<f32>(o) + t * s);
      }
    }
  }
}

export function qmatmul8(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  qmatmul(x, qs, scales, y, u, false);
}

export function qmatmul4(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  qmatmul(x, qs, scales, y, u, true);
}
