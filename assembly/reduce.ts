// Row-wise reductions and softmax over a contiguous (rows, R) view; the WGSL twins are in
// src/kernels/reduce.ts.
import { uw } from './common';
import { RD_ROWS, RD_R, RD_OP, RD_OFF, REDUCE_SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_ARGMAX, REDUCE_LSE, REDUCE_ARGMIN } from './layout';

@inline function at(x: usize, i: i32): f32 { return load<f32>(x + (<usize>i << 2)); }

export function reduceRows(x: usize, out: usize, u: usize): void {
  const rows = <i32>uw(u, RD_ROWS), R = <i32>uw(u, RD_R), op = uw(u, RD_OP), off = <i32>uw(u, RD_OFF);
  for (let r = 0; r < rows; r++) {
    const base = off + r * R;
    let v: f32 = 0;
    if (op == REDUCE_SUM) {
      // four partial sums: faster and closer to a pairwise sum than one running total
      let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
      let i = 0;
      for (; i + 4 <= R; i += 4) { s0 += at(x, base + i); s1 += at(x, base + i + 1); s2 += at(x, base + i + 2); s3 += at(x, base + i + 3); }
      for (; i < R; i++) s0 += at(x, base + i);
      v = (s0 + s1) + (s2 + s3);
    } else if (op == REDUCE_MAX || op == REDUCE_MIN || op == REDUCE_ARGMAX || op == REDUCE_ARGMIN) {
      const isMax = op == REDUCE_MAX || op == REDUCE_ARGMAX;
      let best = at(x, base);
      let bi = 0;
      for (let i = 1; i < R; i++) {
        const y = at(x, base + i);
        // NaN wins, as in torch; ties keep the first index
        if (isNaN(best)) break;
        if (isNaN(y) || (isMax ? y > best : y < best)) { best = y; bi = i; }
      }
      if (op == REDUCE_ARGMAX || op == REDUCE_ARGMIN) { store<i32>(out + (<usize>r << 2), bi); continue; }
      v = best;
    } else if (op == REDUCE_LSE) {
      let m = at(x, base);
      for (let i = 1; i < R; i++) m = max<f32>(m, at(x, base + i));
      if (m == -Infinity) { v = -Infinity; } else {
        let s: f32 = 0;
        for (let i = 0; i < R; i++) s += Mathf.exp(at(x, base + i) - m);
        v = m + Mathf.log(s);
      }
    }
    store<f32>(out + (<usize>r << 2), v);
  }
}

/** softmax (op 0) or log-softmax (op 1) over each row. */
export function softmaxRows(x: usize, out: usize, u: usize): void {
  const rows = <i32>uw(u, RD_ROWS), R = <i32>uw(u, RD_R), log = uw(u, RD_OP), off = <i32>uw(u, RD_OFF);
  for (let r = 0; r < rows; r++) {
    const base = off + r * R;
    let m: f32 = -Infinity;
    for (let i = 0; i < R; i++) m = max<f32>(m, at(x, base + i));
    let s: f32 = 0;
    for (let i = 0; i < R; i++) s += Mathf.exp(at(x, base + i) - m);
    const o = out + (<usize>(r * R) << 2);
    if (log) {
      const lse = m + Mathf.log(s);
      for (let i = 0; i < R; i++) store<f32>(o + (<usize>i << 2), at(x, base + i) - lse);
    } else {
      const inv = f32(1) / s;
      for (let i = 0; i < R; i++) store<f32>(o + (<usize>i << 2), Mathf.exp(at(x, base + i) - m) * inv);
    }
  }
}
