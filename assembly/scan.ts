// Cumulative sums along the middle axis of (outer, L, inner); twin of src/kernels/scan.ts.
import { uw } from './common';
import { SC_OUTER, SC_L, SC_INNER, SC_REVERSE, SC_EXCLUSIVE, SC_OFF } from './layout';

export function cumsum(x: usize, out: usize, u: usize): void {
  const outer = <i32>uw(u, SC_OUTER), L = <i32>uw(u, SC_L), inner = <i32>uw(u, SC_INNER);
  const rev = uw(u, SC_REVERSE) == 1, excl = uw(u, SC_EXCLUSIVE) == 1, off = <i32>uw(u, SC_OFF);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let s: f32 = 0;
      for (let j = 0; j < L; j++) {
        const l = rev ? L - 1 - j : j;
        const e = (o * L + l) * inner + i;
        const v = load<f32>(x + (<usize>(off + e) << 2));
        if (excl) { store<f32>(out + (<usize>e << 2), s); s += v; }
        else { s += v; store<f32>(out + (<usize>e << 2), s); }
      }
    }
  }
}
