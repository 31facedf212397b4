// Fused RMSNorm / LayerNorm over rows; twin of src/kernels/norm.ts.
//   forward:  y = (x - mean) * rstd * w' + b, stats = (mean, rstd) per row (mean 0 for RMSNorm)
//   backward: dx = rstd * (g w' - [mean(g w') for LayerNorm] - xhat * mean(g w' xhat))
import { uw, uf } from './common';
import { NM_ROWS, NM_D, NM_EPS, NM_LAYER, NM_OFFSET, NM_HAS_W, NM_HAS_B, NM_OFF_X } from './layout';

@inline function at(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
@inline function scaleOf(u: usize, w: usize, i: i32): f32 {
  if (!uw(u, NM_HAS_W)) return 1;
  const v = at(w, i);
  return uw(u, NM_OFFSET) ? f32(1) + v : v;
}

export function normFwd(x: usize, w: usize, b: usize, y: usize, stats: usize, u: usize): void {
  const rows = <i32>uw(u, NM_ROWS), D = <i32>uw(u, NM_D), eps = uf(u, NM_EPS), layer = uw(u, NM_LAYER) == 1, off = <i32>uw(u, NM_OFF_X);
  const hasB = uw(u, NM_HAS_B) == 1;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>(off + r * D) << 2);
    let mean: f32 = 0;
    if (layer) { for (let i = 0; i < D; i++) mean += at(xr, i); mean /= <f32>D; }
    let v: f32 = 0;
    for (let i = 0; i < D; i++) { const d = at(xr, i) - mean; v += d * d; }
    const rstd = f32(1) / Mathf.sqrt(v / <f32>D + eps);
    const yr = y + (<usize>(r * D) << 2);
    for (let i = 0; i < D; i++) store<f32>(yr + (<usize>i << 2), (at(xr, i) - mean) * rstd * scaleOf(u, w, i) + (hasB ? at(b, i) : 0));
    store<f32>(stats + (<usize>(2 * r) << 2), mean);
    store<f32>(stats + (<usize>(2 * r + 1) << 2), rstd);
  }
}

export function normBwd(x: usize, w: usize, g: usize, stats: usize, dx: usize, u: usize): void {
  const rows = <i32>uw(u, NM_ROWS), D = <i32>uw(u, NM_D), layer = uw(u, NM_LAYER) == 1, off = <i32>uw(u, NM_OFF_X);
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>(off + r * D) << 2);
    const gr = g + (<usize>(r * D) << 2);
    const mean = at(stats, 2 * r), rstd = at(stats, 2 * r + 1);
    let sgw: f32 = 0, sgwx: f32 = 0;
    for (let i = 0; i < D; i++) {
      const gw = at(gr, i) * scaleOf(u, w, i);
      sgw += gw;
      sgwx += gw * (at(xr, i) - mean) * rstd;
    }
    const mgw: f32 = layer ? sgw / <f32>D : 0, mgwx = sgwx / <f32>D;
    const o = dx + (<usize>(r * D) << 2);
    for (let i = 0; i < D; i++) {
      const xhat = (at(xr, i) - mean) * rstd;
      store<f32>(o + (<usize>i << 2), rstd * (at(gr, i) * scaleOf(u, w, i) - mgw - xhat * mgwx));
    }
  }
}
