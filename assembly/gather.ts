// Gather and scatter-add along one axis; twins of src/kernels/gather.ts. Both return ERR_INDEX
// (and touch nothing out of range) when an index falls outside [0, D).
import { uw } from './common';
import { GA_OUTER, GA_L, GA_INNER, GA_D, GA_MODE, GA_OFF_IN, GA_OFF_IDX, ERR_INDEX } from './layout';

/** out (outer, L, inner) = x (outer, D, inner) at idx along the middle axis. */
export function gather(x: usize, idx: usize, out: usize, u: usize): u32 {
  const outer = <i32>uw(u, GA_OUTER), L = <i32>uw(u, GA_L), inner = <i32>uw(u, GA_INNER), D = <i32>uw(u, GA_D);
  const full = uw(u, GA_MODE) == 1, offIn = <i32>uw(u, GA_OFF_IN), offIdx = <i32>uw(u, GA_OFF_IDX);
  let err: u32 = 0;
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < L; l++) {
      const dst = out + (<usize>((o * L + l) * inner) << 2);
      if (!full) {
        const k = load<i32>(idx + (<usize>(offIdx + l) << 2));
        if (k < 0 || k >= D) { err = ERR_INDEX; memory.fill(dst, 0, <usize>inner << 2); continue; }
        memory.copy(dst, x + (<usize>(offIn + (o * D + k) * inner) << 2), <usize>inner << 2);
      } else {
        for (let i = 0; i < inner; i++) {
          const k = load<i32>(idx + (<usize>(offIdx + (o * L + l) * inner + i) << 2));
          let v: f32 = 0;
          if (k < 0 || k >= D) err = ERR_INDEX;
          else v = load<f32>(x + (<usize>(offIn + (o * D + k) * inner + i) << 2));
          store<f32>(dst + (<usize>i << 2), v);
        }
      }
    }
  }
  return err;
}

/** out (outer, D, inner) = zeros, then += src (outer, L, inner) at idx: the backward of gather. */
export function scatterAdd(src: usize, idx: usize, out: usize, u: usize): u32 {
  const outer = <i32>uw(u, GA_OUTER), L = <i32>uw(u, GA_L), inner = <i32>uw(u, GA_INNER), D = <i32>uw(u, GA_D);
  const full = uw(u, GA_MODE) == 1, offIn = <i32>uw(u, GA_OFF_IN), offIdx = <i32>uw(u, GA_OFF_IDX);
  memory.fill(out, 0, <usize>(outer * D * inner) << 2);
  let err: u32 = 0;
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < L; l++) {
      for (let i = 0; i < inner; i++) {
        const k = full ? load<i32>(idx + (<usize>(offIdx + (o * L + l) * inner + i) << 2)) : load<i32>(idx + (<usize>(offIdx + l) << 2));
        if (k < 0 || k >= D) { err = ERR_INDEX; continue; }
        const p = out + (<usize>((o * D + k) * inner + i) << 2);
        store<f32>(p, load<f32>(p) + load<f32>(src + (<usize>(offIn + (o * L + l) * inner + i) << 2)));
      }
    }
  }
  return err;
}
