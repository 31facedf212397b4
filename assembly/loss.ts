// Fused cross-entropy with ignore-index and label smoothing; twin of src/kernels/loss.ts.
//   loss_r = (1 - eps) * (lse_r - x_{r,t}) + eps * (lse_r - mean_c x_{r,c}),  0 where t == ignore
import { uw, uf } from './common';
import { CE_N, CE_C, CE_IGNORE, CE_OFF_X, CE_OFF_T, CE_SMOOTH, ERR_INDEX } from './layout';

export function crossEntropyFwd(x: usize, t: usize, loss: usize, lse: usize, valid: usize, u: usize): u32 {
  const N = <i32>uw(u, CE_N), C = <i32>uw(u, CE_C), ignore = <i32>uw(u, CE_IGNORE);
  const offX = <i32>uw(u, CE_OFF_X), offT = <i32>uw(u, CE_OFF_T), eps = uf(u, CE_SMOOTH);
  let err: u32 = 0;
  for (let r = 0; r < N; r++) {
    const row = x + (<usize>(offX + r * C) << 2);
    let m: f32 = -Infinity, sum: f32 = 0;
    for (let c = 0; c < C; c++) { const v = load<f32>(row + (<usize>c << 2)); m = max<f32>(m, v); sum += v; }
    let s: f32 = 0;
    for (let c = 0; c < C; c++) s += Mathf.exp(load<f32>(row + (<usize>c << 2)) - m);
    const l = m + Mathf.log(s);
    store<f32>(lse + (<usize>r << 2), l);
    const tr = load<i32>(t + (<usize>(offT + r) << 2));
    let out: f32 = 0, ok: f32 = 0;
    if (tr != ignore) {
      if (tr < 0 || tr >= C) err = ERR_INDEX;
      else {
        const xt = load<f32>(row + (<usize>tr << 2));
        out = (f32(1) - eps) * (l - xt) + eps * (l - sum / <f32>C);
        ok = 1;
      }
    }
    store<f32>(loss + (<usize>r << 2), out);
    store<f32>(valid + (<usize>r << 2), ok);
  }
  return err;
}

/** dx = (softmax(x) - ((1 - eps) onehot(t) + eps / C)) * scale[r] on rows whose target is kept. */
export function crossEntropyBwd(x: usize, t: usize, lse: usize, scale: usize, dx: usize, u: usize): void {
  const N = <i32>uw(u, CE_N), C = <i32>uw(u, CE_C), ignore = <i32>uw(u, CE_IGNORE);
  const offX = <i32>uw(u, CE_OFF_X), offT = <i32>uw(u, CE_OFF_T), eps = uf(u, CE_SMOOTH);
  for (let r = 0; r < N; r++) {
    const row = x + (<usize>(offX + r * C) << 2);
    const o = dx + (<usize>(r * C) << 2);
    const tr = load<i32>(t + (<usize>(offT + r) << 2));
    if (tr == ignore || tr < 0 || tr >= C) { memory.fill(o, 0, <usize>C << 2); continue; }
    const l = load<f32>(lse + (<usize>r << 2));
    for (let c = 0; c < C; c++) {
      const p = Mathf.exp(load<f32>(row + (<usize>c << 2)) - l);
      const y = (c == tr ? f32(1) - eps : f32(0)) + eps / <f32>C;
      store<f32>(o + (<usize>c << 2), (p - y) * load<f32>(scale + (<usize>r << 2)));
    }
  }
}
