// Matmul against Q8_0 weights, dequantized on the fly: y (M, N) = x (M, K) @ W^T where row n of
// W is K/32 blocks of 32 int8 (packed four to a word) times the block's f32 scale. The weights
// stay quantized in memory. Each block is widened to f32 once (SIMD) and used for every row of x.
// WGSL twin: src/kernels/quant.ts.
import { uw } from './common';
import { QM_K, QM_M, QM_N, QM_OFF_X } from './layout';

@inline function dot4(acc: v128, w: v128, xp: usize): v128 {
  return f32x4.add(acc, f32x4.mul(w, v128.load(xp)));
}

export function qmatmul8(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  const M = <i32>uw(u, QM_M), N = <i32>uw(u, QM_N), K = <i32>uw(u, QM_K);
  const xb0 = x + (<usize>uw(u, QM_OFF_X) << 2);
  const nb = K >> 5;
  for (let n = 0; n < N; n++) {
    const q = qs + <usize>n * <usize>K; // K int8 per row
    const sc = scales + (<usize>(n * nb) << 2);
    for (let m = 0; m < M; m++) store<f32>(y + (<usize>(m * N + n) << 2), 0);
    for (let b = 0; b < nb; b++) {
      const s = load<f32>(sc + (<usize>b << 2));
      const qb = q + (<usize>b << 5);
      if (ASC_FEATURE_SIMD) {
        // 32 int8 -> 8 x f32x4, scaled
        const lo = v128.load(qb), hi = v128.load(qb, 16);
        const sv = f32x4.splat(s);
        const l0 = i16x8.extend_low_i8x16_s(lo), l1 = i16x8.extend_high_i8x16_s(lo);
        const h0 = i16x8.extend_low_i8x16_s(hi), h1 = i16x8.extend_high_i8x16_s(hi);
        const w0 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l0)));
        const w1 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l0)));
        const w2 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l1)));
        const w3 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l1)));
        const w4 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h0)));
        const w5 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h0)));
        const w6 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h1)));
        const w7 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h1)));
        for (let m = 0; m < M; m++) {
          const xk = xb0 + (<usize>(m * K + (b << 5)) << 2);
          let a = f32x4.mul(w0, v128.load(xk));
          a = dot4(a, w1, xk + 16); a = dot4(a, w2, xk + 32); a = dot4(a, w3, xk + 48);
          a = dot4(a, w4, xk + 64); a = dot4(a, w5, xk + 80); a = dot4(a, w6, xk + 96); a = dot4(a, w7, xk + 112);
          const o = y + (<usize>(m * N + n) << 2);
          store<f32>(o, load<f32>(o) + ((f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3))));
        }
      } else {
        for (let m = 0; m < M; m++) {
          const xk = xb0 + (<usize>(m * K + (b << 5)) << 2);
          let t: f32 = 0;
          for (let j = 0; j < 32; j++) t += <f32>load<i8>(qb + j) * load<f32>(xk + (<usize>j << 2));
          const o = y + (<usize>(m * N + n) << 2);
          store<f32>(o, load<f32>(o) + t * s);
        }
      }
    }
  }
}

// Q4_0 as llama.cpp lays it out: per block of 32, 16 bytes of nibbles (byte j holds elements j
// (low) and j + 16 (high), each minus 8) and one scale (f32 here).
export function qmatmul4(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  const M = <i32>uw(u, QM_M), N = <i32>uw(u, QM_N), K = <i32>uw(u, QM_K);
  const xb0 = x + (<usize>uw(u, QM_OFF_X) << 2);
  const nb = K >> 5;
  for (let n = 0; n < N; n++) {
    const q = qs + (<usize>n * <usize>K >> 1); // K/2 bytes per row
    const sc = scales + (<usize>(n * nb) << 2);
    for (let m = 0; m < M; m++) store<f32>(y + (<usize>(m * N + n) << 2), 0);
    for (let b = 0; b < nb; b++) {
      const s = load<f32>(sc + (<usize>b << 2));
      const qb = q + (<usize>b << 4);
      if (ASC_FEATURE_SIMD) {
        const raw = v128.load(qb);
        const eight = i8x16.splat(8);
        const lo = i8x16.sub(v128.and(raw, i8x16.splat(15)), eight); // elements 0..15
        const hi = i8x16.sub(i8x16.shr_u(raw, 4), eight); // elements 16..31
        const sv = f32x4.splat(s);
        const l0 = i16x8.extend_low_i8x16_s(lo), l1 = i16x8.extend_high_i8x16_s(lo);
        const h0 = i16x8.extend_low_i8x16_s(hi), h1 = i16x8.extend_high_i8x16_s(hi);
        const w0 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l0)));
        const w1 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l0)));
        const w2 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l1)));
        const w3 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l1)));
        const w4 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h0)));
        const w5 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h0)));
        const w6 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h1)));
        const w7 = f32x4.mul(sv, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h1)));
        for (let m = 0; m < M; m++) {
          const xk = xb0 + (<usize>(m * K + (b << 5)) << 2);
          let a = f32x4.mul(w0, v128.load(xk));
          a = dot4(a, w1, xk + 16); a = dot4(a, w2, xk + 32); a = dot4(a, w3, xk + 48);
          a = dot4(a, w4, xk + 64); a = dot4(a, w5, xk + 80); a = dot4(a, w6, xk + 96); a = dot4(a, w7, xk + 112);
          const o = y + (<usize>(m * N + n) << 2);
          store<f32>(o, load<f32>(o) + ((f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3))));
        }
      } else {
        for (let m = 0; m < M; m++) {
          const xk = xb0 + (<usize>(m * K + (b << 5)) << 2);
          let t: f32 = 0;
          for (let j = 0; j < 16; j++) {
            const v = <i32>load<u8>(qb + j);
            t += <f32>((v & 15) - 8) * load<f32>(xk + (<usize>j << 2)) + <f32>((v >> 4) - 8) * load<f32>(xk + (<usize>(j + 16) << 2));
          }
          const o = y + (<usize>(m * N + n) << 2);
          store<f32>(o, load<f32>(o) + t * s);
        }
      }
    }
  }
}
