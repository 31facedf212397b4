// Fused attention, the twin of src/kernels/attention.ts: online softmax over the keys, never a
// (Tq, Tk) matrix. Forward writes o and (per query row) lse; backward is FlashAttention-2's:
// dq per query row, dk and dv per key row (looping over the query heads that share it), using
// lse and Dsum = rowsum(dO * O) passed interleaved as stats (B, H, Tq, 2).
import { uw, uf } from './common';
import {
  FA_B, FA_H, FA_HKV, FA_TQ, FA_TK, FA_D, FA_SCALE, FA_FLAGS, FA_WINDOW, FA_OFF_Q, FA_OFF_K, FA_OFF_V, FA_SOFTCAP, FA_CAUSAL, FA_SEG,
  FA_SCOREMOD, FA_MASKMOD, FA_BLOCKMASK, FA_OFF_BM, FA_NKB, FA_BLOCK,
} from './layout';

// FlexAttention modifiers on this backend are the JavaScript twins of the WGSL snippets,
// called through these imports (the host binds the ones of the current call).
@external("env", "kilnScoreMod") declare function hostScoreMod(s: f32, b: i32, h: i32, q: i32, kv: i32): f32;
@external("env", "kilnScoreModGrad") declare function hostScoreModGrad(s: f32, b: i32, h: i32, q: i32, kv: i32): f32;
@external("env", "kilnMaskMod") declare function hostMaskMod(b: i32, h: i32, q: i32, kv: i32): i32;

const ACC = memory.data(4 * 1024, 16); // up to head dim 1024
const KB = 16; // keys per group in the forward
const SC = memory.data(4 * KB, 16); // the group's scores, then probabilities

@inline function f(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }

/** Whether the (query block, key block) holding (qi, kj) has any visible pair (block mask). */
@inline function blockLive(u: usize, aux: usize, qi: i32, kj: i32): bool {
  if (!(uw(u, FA_FLAGS) & FA_BLOCKMASK)) return true;
  const i = <i32>uw(u, FA_OFF_BM) + (qi / FA_BLOCK) * <i32>uw(u, FA_NKB) + kj / FA_BLOCK;
  return load<i32>(aux + (<usize>i << 2)) != 0;
}

/** Whether query qi (of Tq) sees key kj (of Tk) in batch b, head h. */
@inline function visible(u: usize, seg: usize, b: i32, h: i32, qi: i32, kj: i32): bool {
  const Tq = <i32>uw(u, FA_TQ), Tk = <i32>uw(u, FA_TK), flags = uw(u, FA_FLAGS), W = <i32>uw(u, FA_WINDOW);
  const qpos = qi + Tk - Tq;
  if ((flags & FA_CAUSAL) && kj > qpos) return false;
  if (W > 0 && qpos - kj >= W) return false;
  if (flags & FA_SEG) {
    const B = <i32>uw(u, FA_B);
    const sq = load<i32>(seg + (<usize>(b * Tq + qi) << 2));
    const sk = load<i32>(seg + (<usize>(B * Tq + b * Tk + kj) << 2));
    if (sk < 0 || sq != sk) return false;
  }
  if ((flags & FA_MASKMOD) && hostMaskMod(b, h, qi, kj) == 0) return false;
  return true;
}

// vector helpers over head-dim rows: four lanes at a time, then the tail
@inline function dot(a: usize, b: usize, D: i32): f32 {
  let d = 0;
  let s: f32 = 0;
  if (ASC_FEATURE_SIMD) {
    let acc = f32x4.splat(0);
    for (; d + 4 <= D; d += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(a + (<usize>d << 2)), v128.load(b + (<usize>d << 2))));
    s = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
  }
  for (; d < D; d++) s += f(a, d) * f(b, d);
  return s;
}

/** acc = acc * c + p * x */
@inline function scaleAxpy(acc: usize, c: f32, p: f32, x: usize, D: i32): void {
  let d = 0;
  if (ASC_FEATURE_SIMD) {
    const vc = f32x4.splat(c), vp = f32x4.splat(p);
    for (; d + 4 <= D; d += 4) {
      const o = acc + (<usize>d << 2);
      v128.store(o, f32x4.add(f32x4.mul(v128.load(o), vc), f32x4.mul(vp, v128.load(x + (<usize>d << 2)))));
    }
  }
  for (; d < D; d++) store<f32>(acc + (<usize>d << 2), f(acc, d) * c + p * f(x, d));
}

/** the keys [lo, hi) a query row can see under the causal and window bounds */
@inline function keyLo(u: usize, qi: i32): i32 {
  const W = <i32>uw(u, FA_WINDOW);
  const qpos = qi + <i32>uw(u, FA_TK) - <i32>uw(u, FA_TQ);
  return W > 0 ? max(0, qpos - W + 1) : 0;
}
@inline function keyHi(u: usize, qi: i32): i32 {
  const Tk = <i32>uw(u, FA_TK);
  return uw(u, FA_FLAGS) & FA_CAUSAL ? min(Tk, qi + Tk - <i32>uw(u, FA_TQ) + 1) : Tk;
}

/** q.k * scale, soft-capped when asked: the score before any score modifier */
@inline function capped(u: usize, qp: usize, kp: usize, D: i32): f32 {
  let s = dot(qp, kp, D) * uf(u, FA_SCALE);
  const cap = uf(u, FA_SOFTCAP);
  if (cap > 0) s = cap * tanhf(s / cap);
  return s;
}

@inline function modded(u: usize, c: f32, b: i32, h: i32, qi: i32, kj: i32): f32 {
  return uw(u, FA_FLAGS) & FA_SCOREMOD ? hostScoreMod(c, b, h, qi, kj) : c;
}

/** d(final score)/d(q.k * scale), through the soft cap and the score modifier */
@inline function scoreGrad(u: usize, c: f32, b: i32, h: i32, qi: i32, kj: i32): f32 {
  const g = uw(u, FA_FLAGS) & FA_SCOREMOD ? hostScoreModGrad(c, b, h, qi, kj) : f32(1);
  return g * capGrad(u, c);
}

@inline function tanhf(x: f32): f32 {
  const c = min<f32>(max<f32>(x, -15), 15);
  const e = Mathf.exp(f32(2) * c);
  return (e - f32(1)) / (e + f32(1));
}

/** d score / d raw dot (for soft-capping): 1 - tanh^2 */
@inline function capGrad(u: usize, s: f32): f32 {
  const cap = uf(u, FA_SOFTCAP);
  if (cap <= 0) return 1;
  const t = s / cap;
  return f32(1) - t * t;
}

export function flashFwd(q: usize, k: usize, v: usize, seg: usize, o: usize, lse: usize, u: usize): void {
  const B = <i32>uw(u, FA_B), H = <i32>uw(u, FA_H), Hkv = <i32>uw(u, FA_HKV), Tq = <i32>uw(u, FA_TQ), Tk = <i32>uw(u, FA_TK), D = <i32>uw(u, FA_D);
  const G = H / Hkv;
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const hk = h / G;
    for (let qi = 0; qi < Tq; qi++) {
      const qp = q + (<usize>(uw(u, FA_OFF_Q) + ((b * H + h) * Tq + qi) * D) << 2);
      let m: f32 = -Infinity, l: f32 = 0;
      memory.fill(ACC, 0, <usize>D << 2);
      // keys in groups of KB: scores first, one rescale per group, then the group's values
      // accumulated four lanes at a time with the accumulator in a register
      const kvRow = (b * Hkv + hk) * Tk;
      for (let k0 = keyLo(u, qi), hi = keyHi(u, qi); k0 < hi; k0 += KB) {
        const n = min(KB, hi - k0);
        let mb: f32 = -Infinity;
        for (let j = 0; j < n; j++) {
          const kj = k0 + j;
          let sc: f32 = -Infinity;
          if (blockLive(u, seg, qi, kj) && visible(u, seg, b, h, qi, kj)) {
            const kp = k + (<usize>(uw(u, FA_OFF_K) + (kvRow + kj) * D) << 2);
            sc = modded(u, capped(u, qp, kp, D), b, h, qi, kj);
          }
          store<f32>(SC + (<usize>j << 2), sc);
          mb = max<f32>(mb, sc);
        }
        if (mb == -Infinity) continue;
        const mn = max<f32>(m, mb);
        const corr = Mathf.exp(m - mn);
        l *= corr;
        for (let j = 0; j < n; j++) {
          const p = Mathf.exp(load<f32>(SC + (<usize>j << 2)) - mn);
          store<f32>(SC + (<usize>j << 2), p);
          l += p;
        }
        const vBase = v + (<usize>(uw(u, FA_OFF_V) + (kvRow + k0) * D) << 2);
        let d = 0;
        if (ASC_FEATURE_SIMD) {
          const vc = f32x4.splat(corr);
          for (; d + 4 <= D; d += 4) {
            const ap = ACC + (<usize>d << 2);
            let a = f32x4.mul(v128.load(ap), vc);
            for (let j = 0; j < n; j++) a = f32x4.add(a, f32x4.mul(f32x4.splat(load<f32>(SC + (<usize>j << 2))), v128.load(vBase + (<usize>(j * D + d) << 2))));
            v128.store(ap, a);
          }
        }
        for (; d < D; d++) {
          let a = f(ACC, d) * corr;
          for (let j = 0; j < n; j++) a += load<f32>(SC + (<usize>j << 2)) * f(vBase, j * D + d);
          store<f32>(ACC + (<usize>d << 2), a);
        }
        m = mn;
      }
      const op = o + (<usize>(((b * H + h) * Tq + qi) * D) << 2);
      const inv: f32 = l > 0 ? f32(1) / l : 0;
      for (let d = 0; d < D; d++) store<f32>(op + (<usize>d << 2), f(ACC, d) * inv);
      store<f32>(lse + (<usize>((b * H + h) * Tq + qi) << 2), l > 0 ? m + Mathf.log(l) : -Infinity);
    }
  }
}

/** dq (B, H, Tq, D) from dO and stats (lse, Dsum). */
export function flashBwdDq(q: usize, k: usize, v: usize, seg: usize, dO: usize, stats: usize, dq: usize, u: usize): void {
  const B = <i32>uw(u, FA_B), H = <i32>uw(u, FA_H), Hkv = <i32>uw(u, FA_HKV), Tq = <i32>uw(u, FA_TQ), Tk = <i32>uw(u, FA_TK), D = <i32>uw(u, FA_D);
  const G = H / Hkv, scale = uf(u, FA_SCALE);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const hk = h / G;
    for (let qi = 0; qi < Tq; qi++) {
      const row = (b * H + h) * Tq + qi;
      const qp = q + (<usize>(uw(u, FA_OFF_Q) + row * D) << 2);
      const gp = dO + (<usize>(row * D) << 2);
      const L = f(stats, 2 * row), Dsum = f(stats, 2 * row + 1);
      memory.fill(ACC, 0, <usize>D << 2);
      if (L != -Infinity) {
        for (let kj = keyLo(u, qi), hi = keyHi(u, qi); kj < hi; kj++) {
          if (!blockLive(u, seg, qi, kj)) { kj = (kj / FA_BLOCK + 1) * FA_BLOCK - 1; continue; }
          if (!visible(u, seg, b, h, qi, kj)) continue;
          const kp = k + (<usize>(uw(u, FA_OFF_K) + ((b * Hkv + hk) * Tk + kj) * D) << 2);
          const vp = v + (<usize>(uw(u, FA_OFF_V) + ((b * Hkv + hk) * Tk + kj) * D) << 2);
          const c = capped(u, qp, kp, D);
          const p = Mathf.exp(modded(u, c, b, h, qi, kj) - L);
          const ds = p * (dot(gp, vp, D) - Dsum) * scoreGrad(u, c, b, h, qi, kj) * scale;
          scaleAxpy(ACC, 1, ds, kp, D);
        }
      }
      const out = dq + (<usize>(row * D) << 2);
      for (let d = 0; d < D; d++) store<f32>(out + (<usize>d << 2), f(ACC, d));
    }
  }
}

/** dk, dv (B, Hkv, Tk, D): each key row sums over the G query heads that share it. */
export function flashBwdDkv(q: usize, k: usize, v: usize, seg: usize, dO: usize, stats: usize, dk: usize, dv: usize, u: usize): void {
  const B = <i32>uw(u, FA_B), H = <i32>uw(u, FA_H), Hkv = <i32>uw(u, FA_HKV), Tq = <i32>uw(u, FA_TQ), Tk = <i32>uw(u, FA_TK), D = <i32>uw(u, FA_D);
  const G = H / Hkv, scale = uf(u, FA_SCALE);
  const DV = ACC + (<usize>D << 2);
  for (let b = 0; b < B; b++) for (let hk = 0; hk < Hkv; hk++) for (let kj = 0; kj < Tk; kj++) {
    const krow = (b * Hkv + hk) * Tk + kj;
    const kp = k + (<usize>(uw(u, FA_OFF_K) + krow * D) << 2);
    const vp = v + (<usize>(uw(u, FA_OFF_V) + krow * D) << 2);
    memory.fill(ACC, 0, <usize>(2 * D) << 2);
    for (let g = 0; g < G; g++) {
      const h = hk * G + g;
      // the queries that can see key kj under the causal and window bounds
      const off = Tk - Tq;
      const W = <i32>uw(u, FA_WINDOW);
      const qlo = uw(u, FA_FLAGS) & FA_CAUSAL ? max(0, kj - off) : 0;
      const qhi = W > 0 ? min(Tq, kj + W - off) : Tq;
      for (let qi = qlo; qi < qhi; qi++) {
        if (!blockLive(u, seg, qi, kj)) { qi = (qi / FA_BLOCK + 1) * FA_BLOCK - 1; continue; }
        if (!visible(u, seg, b, h, qi, kj)) continue;
        const row = (b * H + h) * Tq + qi;
        const L = f(stats, 2 * row), Dsum = f(stats, 2 * row + 1);
        if (L == -Infinity) continue;
        const qp = q + (<usize>(uw(u, FA_OFF_Q) + row * D) << 2);
        const gp = dO + (<usize>(row * D) << 2);
        const c = capped(u, qp, kp, D);
        const p = Mathf.exp(modded(u, c, b, h, qi, kj) - L);
        const ds = p * (dot(gp, vp, D) - Dsum) * scoreGrad(u, c, b, h, qi, kj) * scale;
        scaleAxpy(DV, 1, p, gp, D);
        scaleAxpy(ACC, 1, ds, qp, D);
      }
    }
    const ko = dk + (<usize>(krow * D) << 2);
    const vo = dv + (<usize>(krow * D) << 2);
    for (let d = 0; d < D; d++) {
      store<f32>(ko + (<usize>d << 2), f(ACC, d));
      store<f32>(vo + (<usize>d << 2), f(DV, d));
    }
  }
}

/**
 * The whole backward in one pass (one thread needs no parallel split): each visible (query,
 * key) pair computes its probability and dS once and feeds dq, dk and dv together.
 */
export function flashBwd(q: usize, k: usize, v: usize, seg: usize, dO: usize, stats: usize, dq: usize, dk: usize, dv: usize, u: usize): void {
  const B = <i32>uw(u, FA_B), H = <i32>uw(u, FA_H), Hkv = <i32>uw(u, FA_HKV), Tq = <i32>uw(u, FA_TQ), Tk = <i32>uw(u, FA_TK), D = <i32>uw(u, FA_D);
  const G = H / Hkv, scale = uf(u, FA_SCALE);
  memory.fill(dk, 0, <usize>(B * Hkv * Tk * D) << 2);
  memory.fill(dv, 0, <usize>(B * Hkv * Tk * D) << 2);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const hk = h / G;
    for (let qi = 0; qi < Tq; qi++) {
      const row = (b * H + h) * Tq + qi;
      const qp = q + (<usize>(uw(u, FA_OFF_Q) + row * D) << 2);
      const gp = dO + (<usize>(row * D) << 2);
      const L = f(stats, 2 * row), Dsum = f(stats, 2 * row + 1);
      memory.fill(ACC, 0, <usize>D << 2);
      if (L != -Infinity) {
        for (let kj = keyLo(u, qi), hi = keyHi(u, qi); kj < hi; kj++) {
          if (!blockLive(u, seg, qi, kj)) { kj = (kj / FA_BLOCK + 1) * FA_BLOCK - 1; continue; }
          if (!visible(u, seg, b, h, qi, kj)) continue;
          const krow = (b * Hkv + hk) * Tk + kj;
          const kp = k + (<usize>(uw(u, FA_OFF_K) + krow * D) << 2);
          const vp = v + (<usize>(uw(u, FA_OFF_V) + krow * D) << 2);
          const c = capped(u, qp, kp, D);
          const p = Mathf.exp(modded(u, c, b, h, qi, kj) - L);
          const ds = p * (dot(gp, vp, D) - Dsum) * scoreGrad(u, c, b, h, qi, kj) * scale;
          scaleAxpy(ACC, 1, ds, kp, D);
          scaleAxpy(dk + (<usize>(krow * D) << 2), 1, ds, qp, D);
          scaleAxpy(dv + (<usize>(krow * D) << 2), 1, p, gp, D);
        }
      }
      const out = dq + (<usize>(row * D) << 2);
      for (let d = 0; d < D; d++) store<f32>(out + (<usize>d << 2), f(ACC, d));
    }
  }
}
