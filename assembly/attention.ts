// Fused attention, the twin of src/kernels/attention.ts: online softmax over the keys, never a
// (Tq, Tk) matrix. Forward writes o and (per query row) lse; backward is FlashAttention-2's:
// dq per query row, dk and dv per key row (looping over the query heads that share it), using
// lse and Dsum = rowsum(dO * O) passed interleaved as stats (B, H, Tq, 2).
import { uw, uf } from './common';
import {
  FA_B, FA_H, FA_HKV, FA_TQ, FA_TK, FA_D, FA_KV_CAP, FA_SCALE, FA_FLAGS, FA_WINDOW, FA_OFF_Q, FA_OFF_K, FA_OFF_V, FA_SOFTCAP, FA_CAUSAL, FA_SEG,
  FA_SCOREMOD, FA_MASKMOD, FA_BLOCKMASK, FA_OFF_BM, FA_NKB, FA_BLOCK, FA_DROPOUT, FA_DROP_THRESHOLD, FA_DROP_SEED, FA_DROP_SCALE,
} from './layout';

// FlexAttention modifiers on this backend are the JavaScript twins of the WGSL snippets,
// called through these imports (the host binds the ones of the current call).
@external("env", "kilnScoreMod") declare function hostScoreMod(s: f32, b: i32, h: i32, q: i32, kv: i32): f32;
@external("env", "kilnScoreModGrad") declare function hostScoreModGrad(s: f32, b: i32, h: i32, q: i32, kv: i32): f32;
@external("env", "kilnMaskMod") declare function hostMaskMod(b: i32, h: i32, q: i32, kv: i32): i32;

const ACC = memory.data(4 * 1024, 16); // up to head dim 1024

// the call's parameters, read once from the uniforms into globals: the per-pair helpers below
// would otherwise reload them from memory for every (query, key) pair
let gTq: i32 = 0, gTk: i32 = 0, gB: i32 = 0, gH: i32 = 0, gFlags: u32 = 0, gW: i32 = 0, gScale: f32 = 1, gCap: f32 = 0, gOffBM: i32 = 0, gNKB: i32 = 0;
let gDropT: u32 = 0, gDropSeed: u32 = 0, gDropScale: f32 = 1;
function loadParams(u: usize): void {
  gTq = <i32>uw(u, FA_TQ); gTk = <i32>uw(u, FA_TK); gB = <i32>uw(u, FA_B); gH = <i32>uw(u, FA_H); gFlags = uw(u, FA_FLAGS); gW = <i32>uw(u, FA_WINDOW);
  gScale = uf(u, FA_SCALE); gCap = uf(u, FA_SOFTCAP); gOffBM = <i32>uw(u, FA_OFF_BM); gNKB = <i32>uw(u, FA_NKB);
  gDropT = uw(u, FA_DROP_THRESHOLD); gDropSeed = uw(u, FA_DROP_SEED); gDropScale = uf(u, FA_DROP_SCALE);
}

/** The dropout multiplier of pair (b, h, q, kv): 0 or 1 / (1 - p); the twin of the WGSL dropKeep. */
@inline function dropMul(b: i32, h: i32, qi: i32, kj: i32): f32 {
  if (!(gFlags & FA_DROPOUT)) return 1;
  let x: u32 = <u32>(((b * gH + h) * gTq + qi) * gTk + kj) * 0x9E3779B1 + gDropSeed;
  x ^= x >> 16; x *= 0x85EBCA6B; x ^= x >> 13; x *= 0xC2B2AE35; x ^= x >> 16;
  return x < gDropT ? f32(0) : gDropScale;
}
const KB = 16; // keys per group in the forward
const SC = memory.data(4 * KB, 16); // the group's scores, then probabilities
const MB = memory.data(4 * 16, 16); // running max per row of a query block
const LB = memory.data(4 * 16, 16); // running sum per row of a query block
/**
 * out[i * KB + j] = a_i . b_j for i < na, j < nb (rows of length D, strides sa and sb floats):
 * 2 x 4 register blocks, so each loaded vector feeds several products.
 */
function blockDots(a: usize, sa: i32, na: i32, b: usize, sb: i32, nb: i32, D: i32, out: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD && (D & 3) == 0) {
    for (; i + 2 <= na; i += 2) {
      const a0 = a + (<usize>(i * sa) << 2), a1 = a0 + (<usize>sa << 2);
      let j = 0;
      for (; j + 4 <= nb; j += 4) {
        const b0 = b + (<usize>(j * sb) << 2), b1 = b0 + (<usize>sb << 2), b2 = b1 + (<usize>sb << 2), b3 = b2 + (<usize>sb << 2);
        let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
        let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
        for (let d = 0; d < D; d += 4) {
          const o = <usize>d << 2;
          const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
          let y = v128.load(b0 + o);
          c00 = f32x4.add(c00, f32x4.mul(x0, y)); c10 = f32x4.add(c10, f32x4.mul(x1, y));
          y = v128.load(b1 + o);
          c01 = f32x4.add(c01, f32x4.mul(x0, y)); c11 = f32x4.add(c11, f32x4.mul(x1, y));
          y = v128.load(b2 + o);
          c02 = f32x4.add(c02, f32x4.mul(x0, y)); c12 = f32x4.add(c12, f32x4.mul(x1, y));
          y = v128.load(b3 + o);
          c03 = f32x4.add(c03, f32x4.mul(x0, y)); c13 = f32x4.add(c13, f32x4.mul(x1, y));
        }
        const r0 = out + (<usize>(i * KB + j) << 2), r1 = r0 + (<usize>KB << 2);
        store<f32>(r0, hsum4(c00)); store<f32>(r0, hsum4(c01), 4); store<f32>(r0, hsum4(c02), 8); store<f32>(r0, hsum4(c03), 12);
        store<f32>(r1, hsum4(c10)); store<f32>(r1, hsum4(c11), 4); store<f32>(r1, hsum4(c12), 8); store<f32>(r1, hsum4(c13), 12);
      }
      for (; j < nb; j++) {
        const bj = b + (<usize>(j * sb) << 2);
        store<f32>(out + (<usize>(i * KB + j) << 2), dot(a0, bj, D));
        store<f32>(out + (<usize>((i + 1) * KB + j) << 2), dot(a1, bj, D));
      }
    }
  }
  for (; i < na; i++) {
    const ai = a + (<usize>(i * sa) << 2);
    for (let j = 0; j < nb; j++) store<f32>(out + (<usize>(i * KB + j) << 2), dot(ai, b + (<usize>(j * sb) << 2), D));
  }
}

@inline function hsum4(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * Whether every (query, key) of the block is visible: no per-pair data masks, and the block lies
 * wholly inside the causal and window bounds. Such blocks skip the per-pair checks.
 */
@inline function blockFull(q0: i32, nq: i32, k0: i32, nk: i32): bool {
  if (gFlags & (FA_SEG | FA_MASKMOD | FA_BLOCKMASK)) return false;
  const off = gTk - gTq;
  if ((gFlags & FA_CAUSAL) && k0 + nk - 1 > q0 + off) return false;
  if (gW > 0 && q0 + nq - 1 + off - k0 >= gW) return false;
  return true;
}

/** e^x in four lanes: Cody-Waite reduction and a degree-6 polynomial (relative error < 2e-7); -inf gives 0. */
@inline function exp4(x: v128): v128 {
  const xc = f32x4.max(x, f32x4.splat(-87.3));
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.4426950408889634)));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693145751953125)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(1.428606765330187e-6)));
  let p = f32x4.splat(1.0 / 720.0);
  p = f32x4.add(f32x4.splat(1.0 / 120.0), f32x4.mul(r, p));
  p = f32x4.add(f32x4.splat(1.0 / 24.0), f32x4.mul(r, p));
  p = f32x4.add(f32x4.splat(1.0 / 6.0), f32x4.mul(r, p));
  p = f32x4.add(f32x4.splat(0.5), f32x4.mul(r, p));
  p = f32x4.add(f32x4.splat(1.0), f32x4.mul(r, p));
  p = f32x4.add(f32x4.splat(1.0), f32x4.mul(r, p));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  const y = f32x4.mul(p, scale);
  return v128.bitselect(f32x4.splat(0), y, f32x4.eq(x, f32x4.splat(-Infinity)));
}

/** row[j] = exp(row[j] - sub) for j < n (in place); returns their sum. */
function expRow(row: usize, n: i32, sub: f32): f32 {
  let j = 0;
  let total: f32 = 0;
  if (ASC_FEATURE_SIMD) {
    const vs = f32x4.splat(sub);
    let acc = f32x4.splat(0);
    for (; j + 4 <= n; j += 4) {
      const e = exp4(f32x4.sub(v128.load(row + (<usize>j << 2)), vs));
      v128.store(row + (<usize>j << 2), e);
      acc = f32x4.add(acc, e);
    }
    total = hsum4(acc);
  }
  for (; j < n; j++) {
    const e = Mathf.exp(load<f32>(row + (<usize>j << 2)) - sub);
    store<f32>(row + (<usize>j << 2), e);
    total += e;
  }
  return total;
}

/**
 * acc[i] += sum_j P[i * KB + j] * X[j] for i < na, j < nb (acc rows stride D, X rows stride D):
 * a small GEMM with 4 x 8 register blocks (4 rows of acc, two vectors of 4 lanes); rows and
 * lanes past the blocks fall back to vector-at-a-time loops.
 */
function blockPV(P: usize, na: i32, nb: i32, X: usize, acc: usize, D: i32): void {
  let i0 = 0;
  if (ASC_FEATURE_SIMD && (D & 7) == 0) {
    for (; i0 + 4 <= na; i0 += 4) {
      const a0 = acc + (<usize>(i0 * D) << 2), a1 = a0 + (<usize>D << 2), a2 = a1 + (<usize>D << 2), a3 = a2 + (<usize>D << 2);
      const p0 = P + (<usize>(i0 * KB) << 2), p1 = p0 + (<usize>KB << 2), p2 = p1 + (<usize>KB << 2), p3 = p2 + (<usize>KB << 2);
      for (let d = 0; d < D; d += 8) {
        const o = <usize>d << 2;
        let c00 = v128.load(a0 + o), c01 = v128.load(a0 + o, 16), c10 = v128.load(a1 + o), c11 = v128.load(a1 + o, 16);
        let c20 = v128.load(a2 + o), c21 = v128.load(a2 + o, 16), c30 = v128.load(a3 + o), c31 = v128.load(a3 + o, 16);
        for (let j = 0; j < nb; j++) {
          const xp = X + (<usize>(j * D) << 2) + o;
          const x0 = v128.load(xp), x1 = v128.load(xp, 16);
          const jo = <usize>j << 2;
          let w = v128.load32_splat(p0 + jo);
          c00 = f32x4.add(c00, f32x4.mul(w, x0)); c01 = f32x4.add(c01, f32x4.mul(w, x1));
          w = v128.load32_splat(p1 + jo);
          c10 = f32x4.add(c10, f32x4.mul(w, x0)); c11 = f32x4.add(c11, f32x4.mul(w, x1));
          w = v128.load32_splat(p2 + jo);
          c20 = f32x4.add(c20, f32x4.mul(w, x0)); c21 = f32x4.add(c21, f32x4.mul(w, x1));
          w = v128.load32_splat(p3 + jo);
          c30 = f32x4.add(c30, f32x4.mul(w, x0)); c31 = f32x4.add(c31, f32x4.mul(w, x1));
        }
        v128.store(a0 + o, c00); v128.store(a0 + o, c01, 16); v128.store(a1 + o, c10); v128.store(a1 + o, c11, 16);
        v128.store(a2 + o, c20); v128.store(a2 + o, c21, 16); v128.store(a3 + o, c30); v128.store(a3 + o, c31, 16);
      }
    }
  }
  for (let i = i0; i < na; i++) {
    const a = acc + (<usize>(i * D) << 2);
    const pr = P + (<usize>(i * KB) << 2);
    for (let j = 0; j < nb; j++) scaleAxpy(a, 1, load<f32>(pr + (<usize>j << 2)), X + (<usize>(j * D) << 2), D);
  }
}

/** dst[j * KB + i] = src[i * KB + j]: a block's transpose, so key rows can take blockPV too. */
function transposeBlock(src: usize, dst: usize, na: i32, nb: i32): void {
  for (let i = 0; i < na; i++) for (let j = 0; j < nb; j++) store<f32>(dst + (<usize>(j * KB + i) << 2), load<f32>(src + (<usize>(i * KB + j) << 2)));
}

const QB = 16; // query rows per block in the backward
const DQ = memory.data(4 * QB * 1024, 16); // the block's dq rows
const PB = memory.data(4 * QB * KB, 16); // P (QB x KB)
const DSB = memory.data(4 * QB * KB, 16); // dS (QB x KB)
const TB = memory.data(4 * QB * KB, 16); // a transposed block
const CB = memory.data(4 * KB, 16); // a row's capped scores (the score modifier's derivative needs them)



@inline function f(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }

/** Whether the (query block, key block) holding (qi, kj) has any visible pair (block mask). */
@inline function blockLive(u: usize, aux: usize, qi: i32, kj: i32): bool {
  if (!(gFlags & FA_BLOCKMASK)) return true;
  const i = gOffBM + (qi / FA_BLOCK) * gNKB + kj / FA_BLOCK;
  return load<i32>(aux + (<usize>i << 2)) != 0;
}

/** Whether query qi (of Tq) sees key kj (of Tk) in batch b, head h. */
@inline function visible(u: usize, seg: usize, b: i32, h: i32, qi: i32, kj: i32): bool {
  const Tq = gTq, Tk = gTk, flags = gFlags, W = gW;
  const qpos = qi + Tk - Tq;
  if ((flags & FA_CAUSAL) && kj > qpos) return false;
  if (W > 0 && qpos - kj >= W) return false;
  if (flags & FA_SEG) {
    const B = gB;
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
  const qpos = qi + gTk - gTq;
  return gW > 0 ? max(0, qpos - gW + 1) : 0;
}
@inline function keyHi(u: usize, qi: i32): i32 {
  return gFlags & FA_CAUSAL ? min(gTk, qi + gTk - gTq + 1) : gTk;
}

/** q.k * scale, soft-capped when asked: the score before any score modifier */
@inline function capped(u: usize, qp: usize, kp: usize, D: i32): f32 {
  let s = dot(qp, kp, D) * gScale;
  if (gCap > 0) s = gCap * tanhf(s / gCap);
  return s;
}

@inline function modded(u: usize, c: f32, b: i32, h: i32, qi: i32, kj: i32): f32 {
  return gFlags & FA_SCOREMOD ? hostScoreMod(c, b, h, qi, kj) : c;
}

/** d(final score)/d(q.k * scale), through the soft cap and the score modifier */
@inline function scoreGrad(u: usize, c: f32, b: i32, h: i32, qi: i32, kj: i32): f32 {
  const g = gFlags & FA_SCOREMOD ? hostScoreModGrad(c, b, h, qi, kj) : f32(1);
  return g * capGrad(u, c);
}

@inline function tanhf(x: f32): f32 {
  const c = min<f32>(max<f32>(x, -15), 15);
  const e = Mathf.exp(f32(2) * c);
  return (e - f32(1)) / (e + f32(1));
}

/** d score / d raw dot (for soft-capping): 1 - tanh^2 */
@inline function capGrad(u: usize, s: f32): f32 {
  const cap = gCap;
  if (cap <= 0) return 1;
  const t = s / cap;
  return f32(1) - t * t;
}

export function flashFwd(q: usize, k: usize, v: usize, seg: usize, o: usize, lse: usize, u: usize): void {
  loadParams(u);
  const B = <i32>uw(u, FA_B), H = <i32>uw(u, FA_H), Hkv = <i32>uw(u, FA_HKV), Tq = <i32>uw(u, FA_TQ), Tk = <i32>uw(u, FA_TK), D = <i32>uw(u, FA_D);
  const G = H / Hkv;
  const offQ = <i32>uw(u, FA_OFF_Q), offK = <i32>uw(u, FA_OFF_K), offV = <i32>uw(u, FA_OFF_V);
  // blocks of QB query rows x KB keys: scores by register-blocked dots, then per row an online
  // softmax step (one rescale per block) and the block's values accumulated into the row
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const hk = h / G;
    const cap = <i32>uw(u, FA_KV_CAP);
    const kvRow = (b * Hkv + hk) * (cap > 0 ? cap : Tk);
    for (let q0 = 0; q0 < Tq; q0 += QB) {
      const nq = min(QB, Tq - q0);
      const row0 = (b * H + h) * Tq + q0;
      memory.fill(DQ, 0, <usize>(nq * D) << 2);
      for (let i = 0; i < nq; i++) { store<f32>(MB + (<usize>i << 2), -Infinity); store<f32>(LB + (<usize>i << 2), 0); }
      const kLo = keyLo(u, q0), kHi = keyHi(u, q0 + nq - 1);
      for (let k0 = kLo; k0 < kHi; k0 += KB) {
        const nk = min(KB, kHi - k0);
        blockDots(q + (<usize>(offQ + row0 * D) << 2), D, nq, k + (<usize>(offK + (kvRow + k0) * D) << 2), D, nk, D, PB);
        const vBase = v + (<usize>(offV + (kvRow + k0) * D) << 2);
        const full = blockFull(q0, nq, k0, nk);
        for (let i = 0; i < nq; i++) {
          const qi = q0 + i;
          let mb: f32 = -Infinity;
          for (let j = 0; j < nk; j++) {
            const kj = k0 + j;
            const at = PB + (<usize>(i * KB + j) << 2);
            let sc: f32 = -Infinity;
            if (full || (blockLive(u, seg, qi, kj) && visible(u, seg, b, h, qi, kj))) {
              let c = load<f32>(at) * gScale;
              if (gCap > 0) c = gCap * tanhf(c / gCap);
              sc = modded(u, c, b, h, qi, kj);
            }
            store<f32>(at, sc);
            mb = max<f32>(mb, sc);
          }
          if (mb == -Infinity) {
            memory.fill(PB + (<usize>(i * KB) << 2), 0, <usize>nk << 2); // contributes nothing to P @ V
            continue;
          }
          const m = load<f32>(MB + (<usize>i << 2));
          const mn = max<f32>(m, mb);
          const corr = Mathf.exp(m - mn);
          const l = load<f32>(LB + (<usize>i << 2)) * corr + expRow(PB + (<usize>(i * KB) << 2), nk, mn);
          store<f32>(MB + (<usize>i << 2), mn);
          store<f32>(LB + (<usize>i << 2), l);
          if (gFlags & FA_DROPOUT) {
            // l keeps the undropped sum; only what reaches V is dropped
            for (let j = 0; j < nk; j++) {
              const at = PB + (<usize>(i * KB + j) << 2);
              store<f32>(at, load<f32>(at) * dropMul(b, h, qi, k0 + j));
            }
          }
          // rescale the row's accumulator; the block's P @ V is added below for all rows at once
          if (corr != 1) scaleAxpy(DQ + (<usize>(i * D) << 2), corr, 0, DQ, D);
        }
        blockPV(PB, nq, nk, vBase, DQ, D);
      }
      for (let i = 0; i < nq; i++) {
        const l = load<f32>(LB + (<usize>i << 2)), m = load<f32>(MB + (<usize>i << 2));
        const inv: f32 = l > 0 ? f32(1) / l : 0;
        const op = o + (<usize>((row0 + i) * D) << 2);
        for (let d = 0; d < D; d++) store<f32>(op + (<usize>d << 2), f(DQ + (<usize>(i * D) << 2), d) * inv);
        store<f32>(lse + (<usize>(row0 + i) << 2), l > 0 ? m + Mathf.log(l) : -Infinity);
      }
    }
  }
}

/** dq (B, H, Tq, D) from dO and stats (lse, Dsum). */
export function flashBwdDq(q: usize, k: usize, v: usize, seg: usize, dO: usize, stats: usize, dq: usize, u: usize): void {
  loadParams(u);
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
          const ds = p * (dot(gp, vp, D) * dropMul(b, h, qi, kj) - Dsum) * scoreGrad(u, c, b, h, qi, kj) * scale;
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
  loadParams(u);
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
        const dm = dropMul(b, h, qi, kj);
        const ds = p * (dot(gp, vp, D) * dm - Dsum) * scoreGrad(u, c, b, h, qi, kj) * scale;
        scaleAxpy(DV, 1, p * dm, gp, D);
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
 * The whole backward in one pass over (16 query x 16 key) blocks: each visible pair computes P
 * and dS once; dq, dk and dv then accumulate block-wise with the running sums in registers, so
 * each accumulator row is loaded and stored once per block instead of once per pair.
 */
export function flashBwd(q: usize, k: usize, v: usize, seg: usize, dO: usize, stats: usize, dq: usize, dk: usize, dv: usize, u: usize): void {
  loadParams(u);
  const B = <i32>uw(u, FA_B), H = <i32>uw(u, FA_H), Hkv = <i32>uw(u, FA_HKV), Tq = <i32>uw(u, FA_TQ), Tk = <i32>uw(u, FA_TK), D = <i32>uw(u, FA_D);
  const G = H / Hkv, scale = uf(u, FA_SCALE);
  const offQ = <i32>uw(u, FA_OFF_Q), offK = <i32>uw(u, FA_OFF_K), offV = <i32>uw(u, FA_OFF_V);
  memory.fill(dk, 0, <usize>(B * Hkv * Tk * D) << 2);
  memory.fill(dv, 0, <usize>(B * Hkv * Tk * D) << 2);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const hk = h / G;
    const kvRow = (b * Hkv + hk) * Tk;
    for (let q0 = 0; q0 < Tq; q0 += QB) {
      const nq = min(QB, Tq - q0);
      const row0 = (b * H + h) * Tq + q0;
      memory.fill(DQ, 0, <usize>(nq * D) << 2);
      const kLo = keyLo(u, q0), kHi = keyHi(u, q0 + nq - 1);
      for (let k0 = kLo; k0 < kHi; k0 += KB) {
        const nk = min(KB, kHi - k0);
        // raw dots for the whole block: S = Q K^T into PB, dP = dO V^T into DSB
        blockDots(q + (<usize>(offQ + row0 * D) << 2), D, nq, k + (<usize>(offK + (kvRow + k0) * D) << 2), D, nk, D, PB);
        blockDots(dO + (<usize>(row0 * D) << 2), D, nq, v + (<usize>(offV + (kvRow + k0) * D) << 2), D, nk, D, DSB);
        let any = false;
        const full = blockFull(q0, nq, k0, nk);
        for (let i = 0; i < nq; i++) {
          const qi = q0 + i, row = row0 + i;
          const L = f(stats, 2 * row), Dsum = f(stats, 2 * row + 1);
          // final scores (-inf where not visible), then P = exp(score - lse) four at a time
          for (let j = 0; j < nk; j++) {
            const kj = k0 + j;
            const at = PB + (<usize>(i * KB + j) << 2);
            let sc: f32 = -Infinity;
            if (L != -Infinity && (full || (blockLive(u, seg, qi, kj) && visible(u, seg, b, h, qi, kj)))) {
              let c = load<f32>(at) * gScale;
              if (gCap > 0) c = gCap * tanhf(c / gCap);
              store<f32>(CB + (<usize>j << 2), c);
              sc = modded(u, c, b, h, qi, kj);
              any = true;
            }
            store<f32>(at, sc);
          }
          if (L == -Infinity) {
            memory.fill(PB + (<usize>(i * KB) << 2), 0, <usize>nk << 2);
            memory.fill(DSB + (<usize>(i * KB) << 2), 0, <usize>nk << 2);
            continue;
          }
          expRow(PB + (<usize>(i * KB) << 2), nk, L);
          for (let j = 0; j < nk; j++) {
            const at = <usize>(i * KB + j) << 2;
            const p = load<f32>(PB + at);
            let ds: f32 = 0;
            if (p != 0) {
              const kj = k0 + j;
              const dm = dropMul(b, h, qi, kj);
              ds = p * (load<f32>(DSB + at) * dm - Dsum) * scoreGrad(u, load<f32>(CB + (<usize>j << 2)), b, h, qi, kj) * scale;
              store<f32>(PB + at, p * dm); // dv takes the dropped probabilities
            }
            store<f32>(DSB + at, ds);
          }
        }
        if (!any) continue;
        // the block's three small products, GEMM-style: dq += dS K, dk += dS^T Q, dv += P^T dO
        const kBase = k + (<usize>(offK + (kvRow + k0) * D) << 2);
        blockPV(DSB, nq, nk, kBase, DQ, D);
        transposeBlock(DSB, TB, nq, nk);
        blockPV(TB, nk, nq, q + (<usize>(offQ + row0 * D) << 2), dk + (<usize>((kvRow + k0) * D) << 2), D);
        transposeBlock(PB, TB, nq, nk);
        blockPV(TB, nk, nq, dO + (<usize>(row0 * D) << 2), dv + (<usize>((kvRow + k0) * D) << 2), D);
      }
      memory.copy(dq + (<usize>(row0 * D) << 2), DQ, <usize>(nq * D) << 2);
    }
  }
}
