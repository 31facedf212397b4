// Matmul against Q8_0 weights, dequantized on the fly: y (M, N) = x (M, K) @ W^T where row n of
// W is K/32 blocks of 32 int8 (packed four to a word) times the block's f32 scale. The weights
// stay quantized in memory. WGSL twin: src/kernels/quant.ts.
import { uw } from './common';
import { QM_K, QM_M, QM_N, QM_OFF_X } from './layout';

export function qmatmul8(x: usize, qs: usize, scales: usize, y: usize, u: usize): void {
  const M = <i32>uw(u, QM_M), N = <i32>uw(u, QM_N), K = <i32>uw(u, QM_K);
  const xb0 = x + (<usize>uw(u, QM_OFF_X) << 2);
  const nb = K >> 5;
  for (let n = 0; n < N; n++) {
    const q = qs + <usize>n * <usize>K; // K int8 per row
    const sc = scales + (<usize>(n * nb) << 2);
    for (let m = 0; m < M; m++) {
      const xb = xb0 + (<usize>(m * K) << 2);
      let acc: f32 = 0;
      for (let b = 0; b < nb; b++) {
        let s: f32 = 0;
        const qb = q + (<usize>b << 5);
        const xk = xb + (<usize>b << 7);
        for (let j = 0; j < 32; j++) s += <f32>load<i8>(qb + j) * load<f32>(xk + (<usize>j << 2));
        acc += s * load<f32>(sc + (<usize>b << 2));
      }
      store<f32>(y + (<usize>(m * N + n) << 2), acc);
    }
  }
}
