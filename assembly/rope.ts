// Rotary position embedding, fused (WGSL twin: src/kernels/rope.ts): y = x * cos + rotate(x) *
// sin at each row's position id, with cos and sin looked up in tables of (positions, rd) that
// hold each frequency at both of its pair's dims. rotate: halves (x1, x2) -> (-x2, x1), or
// interleaved pairs (a, b) -> (-b, a). Dims past rd pass through. The backward is the same
// kernel with sin negated (the inverse rotation). A position id outside the tables gives zeros
// and ERR_INDEX.
import { uf, uw } from './common';
import { ERR_INDEX, RP_B, RP_D, RP_H, RP_INTERLEAVED, RP_NPOS, RP_OFF_P, RP_OFF_X, RP_RD, RP_SIGN, RP_SPB, RP_SX, RP_T } from './layout';

export function rope(x: usize, cs: usize, sn: usize, pos: usize, y: usize, u: usize): u32 {
  const B = <i32>uw(u, RP_B), H = <i32>uw(u, RP_H), T = <i32>uw(u, RP_T), D = <i32>uw(u, RP_D), rd = <i32>uw(u, RP_RD);
  const offX = <i32>uw(u, RP_OFF_X), s0 = <i32>uw(u, RP_SX), s1 = <i32>uw(u, RP_SX + 1), s2 = <i32>uw(u, RP_SX + 2), s3 = <i32>uw(u, RP_SX + 3);
  const offP = <i32>uw(u, RP_OFF_P), spb = <i32>uw(u, RP_SPB), inter = uw(u, RP_INTERLEAVED) != 0, sign = uf(u, RP_SIGN);
  const half = rd >> 1, npos = <i32>uw(u, RP_NPOS);
  let o = y;
  let err: u32 = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const p = load<i32>(pos + (<usize>(offP + b * spb + t) << 2));
        if (p < 0 || p >= npos) { err = ERR_INDEX; memory.fill(o, 0, <usize>D << 2); o += <usize>D << 2; continue; }
        const row = offX + b * s0 + h * s1 + t * s2;
        const tc = cs + (<usize>(p * rd) << 2), ts = sn + (<usize>(p * rd) << 2);
        for (let d = 0; d < D; d++) {
          const v = load<f32>(x + (<usize>(row + d * s3) << 2));
          if (d >= rd) { store<f32>(o, v); o += 4; continue; }
          // the pair's other dim, and the sign rotate() gives it
          const partner = inter ? d ^ 1 : d < half ? d + half : d - half;
          const first = inter ? (d & 1) == 0 : d < half;
          const w = load<f32>(x + (<usize>(row + partner * s3) << 2));
          const r = first ? -w : w;
          store<f32>(o, v * load<f32>(tc + (<usize>d << 2)) + sign * r * load<f32>(ts + (<usize>d << 2)));
          o += 4;
        }
      }
    }
  }
  return err;
}
