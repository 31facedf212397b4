// SGEMM: C (batch, M, N) = A (batch, M, K) @ B (batch, K, N), A and B strided (transposes are
// just strides), C contiguous. GotoBLAS-style: B is packed into NR-wide panels and A into
// MR-tall slivers per (KC x NC) block, and a 4x8 register-blocked SIMD micro-kernel runs over
// them (4 rows x 8 columns: 8 accumulators; a 6x8 block measured 20-30% slower, spilling on
// x86's 16 vector registers); packing absorbs any strides, so the hot loop only ever reads contiguous memory.
import { uw } from './common';
import { MM_BATCH, MM_M, MM_N, MM_K, MM_OFF_A, MM_OFF_B, MM_OFF_C, MM_SA, MM_SB } from './layout';

const MR: i32 = 4;
const NR: i32 = 8;
export const KC: i32 = 256;
export const NC: i32 = 256;
/** Bytes of scratch the host must pass: one packed B block and one packed A sliver. */
export function matmulScratchBytes(): i32 { return (KC * NC + MR * KC) * 4 + 64; }

const TILE = memory.data(MR * NR * 4, 16); // edge tiles are computed here, then copied

export function matmul(a: usize, b: usize, c: usize, u: usize, scratch: usize): void {
  const batch = <i32>uw(u, MM_BATCH), M = <i32>uw(u, MM_M), N = <i32>uw(u, MM_N), K = <i32>uw(u, MM_K);
  const sAb = <i32>uw(u, MM_SA), sAm = <i32>uw(u, MM_SA + 1), sAk = <i32>uw(u, MM_SA + 2);
  const sBb = <i32>uw(u, MM_SB), sBk = <i32>uw(u, MM_SB + 1), sBn = <i32>uw(u, MM_SB + 2);
  const bp = (scratch + 15) & ~(<usize>15);
  const ap = bp + (<usize>(KC * NC) << 2);
  for (let bi = 0; bi < batch; bi++) {
    const A = a + (<usize>(<i32>uw(u, MM_OFF_A) + bi * sAb) << 2);
    const B = b + (<usize>(<i32>uw(u, MM_OFF_B) + bi * sBb) << 2);
    const C = c + (<usize>(<i32>uw(u, MM_OFF_C) + bi * M * N) << 2);
    if (K == 0) { memory.fill(C, 0, <usize>(M * N) << 2); continue; }
    // a row or three (decode, GEMV): packing would cost as much as the product, so stream B
    if (M < MR && sAk == 1 && (sBn == 1 || sBk == 1)) {
      for (let i = 0; i < M; i++) {
        const arow = A + (<usize>(i * sAm) << 2);
        const crow = C + (<usize>(i * N) << 2);
        if (sBn == 1) gemvRows(arow, B, sBk, crow, K, N);
        else gemvCols(arow, B, sBn, crow, K, N);
      }
      continue;
    }
    for (let jc = 0; jc < N; jc += NC) {
      const nc = min(NC, N - jc);
      for (let pc = 0; pc < K; pc += KC) {
        const kc = min(KC, K - pc);
        packB(B, sBk, sBn, pc, jc, kc, nc, bp);
        for (let ic = 0; ic < M; ic += MR) {
          const mr = min(MR, M - ic);
          packA(A, sAm, sAk, ic, pc, mr, kc, ap);
          for (let jr = 0; jr < nc; jr += NR) {
            const nr = min(NR, nc - jr);
            const cp = C + (<usize>(ic * N + jc + jr) << 2);
            micro(kc, ap, bp + (<usize>(jr * kc) << 2), cp, N, mr, nr, pc == 0);
          }
        }
      }
    }
  }
}

// c (N) = a (K) @ B (K, N) with B's rows contiguous: eight rows of B per pass over c, so c's
// loads and stores are amortised over 8 multiply-adds per element.
function gemvRows(a: usize, B: usize, sBk: i32, c: usize, K: i32, N: i32): void {
  memory.fill(c, 0, <usize>N << 2);
  const rs = <usize>sBk << 2;
  let k = 0;
  if (ASC_FEATURE_SIMD) {
    for (; k + 8 <= K; k += 8) {
      const b0 = B + <usize>k * rs;
      const ak = a + (<usize>k << 2);
      const v0 = f32x4.splat(load<f32>(ak)), v1 = f32x4.splat(load<f32>(ak, 4)), v2 = f32x4.splat(load<f32>(ak, 8)), v3 = f32x4.splat(load<f32>(ak, 12));
      const v4 = f32x4.splat(load<f32>(ak, 16)), v5 = f32x4.splat(load<f32>(ak, 20)), v6 = f32x4.splat(load<f32>(ak, 24)), v7 = f32x4.splat(load<f32>(ak, 28));
      let j = 0;
      const r2: usize = 2 * rs, r3: usize = 3 * rs, r4: usize = 4 * rs, r5: usize = 5 * rs, r6: usize = 6 * rs, r7: usize = 7 * rs;
      for (; j + 8 <= N; j += 8) {
        const p = b0 + (<usize>j << 2);
        const o = c + (<usize>j << 2);
        let t = f32x4.add(f32x4.add(f32x4.mul(v0, v128.load(p)), f32x4.mul(v1, v128.load(p + rs))), f32x4.add(f32x4.mul(v2, v128.load(p + r2)), f32x4.mul(v3, v128.load(p + r3))));
        let u = f32x4.add(f32x4.add(f32x4.mul(v4, v128.load(p + r4)), f32x4.mul(v5, v128.load(p + r5))), f32x4.add(f32x4.mul(v6, v128.load(p + r6)), f32x4.mul(v7, v128.load(p + r7))));
        v128.store(o, f32x4.add(v128.load(o), f32x4.add(t, u)));
        t = f32x4.add(f32x4.add(f32x4.mul(v0, v128.load(p, 16)), f32x4.mul(v1, v128.load(p + rs, 16))), f32x4.add(f32x4.mul(v2, v128.load(p + r2, 16)), f32x4.mul(v3, v128.load(p + r3, 16))));
        u = f32x4.add(f32x4.add(f32x4.mul(v4, v128.load(p + r4, 16)), f32x4.mul(v5, v128.load(p + r5, 16))), f32x4.add(f32x4.mul(v6, v128.load(p + r6, 16)), f32x4.mul(v7, v128.load(p + r7, 16))));
        v128.store(o, f32x4.add(v128.load(o, 16), f32x4.add(t, u)), 16);
      }
      for (; j + 4 <= N; j += 4) {
        const p = b0 + (<usize>j << 2);
        const t0 = f32x4.add(f32x4.mul(v0, v128.load(p)), f32x4.mul(v1, v128.load(p + rs)));
        const t1 = f32x4.add(f32x4.mul(v2, v128.load(p + r2)), f32x4.mul(v3, v128.load(p + r3)));
        const t2 = f32x4.add(f32x4.mul(v4, v128.load(p + r4)), f32x4.mul(v5, v128.load(p + r5)));
        const t3 = f32x4.add(f32x4.mul(v6, v128.load(p + r6)), f32x4.mul(v7, v128.load(p + r7)));
        const o = c + (<usize>j << 2);
        v128.store(o, f32x4.add(v128.load(o), f32x4.add(f32x4.add(t0, t1), f32x4.add(t2, t3))));
      }
      for (; j < N; j++) {
        const p = b0 + (<usize>j << 2);
        let t: f32 = 0;
        for (let r = 0; r < 8; r++) t += load<f32>(ak + (<usize>r << 2)) * load<f32>(p + <usize>r * rs);
        store<f32>(c + (<usize>j << 2), load<f32>(c + (<usize>j << 2)) + t);
      }
    }
  }
  for (; k < K; k++) {
    const bk = B + <usize>k * rs;
    const s = load<f32>(a + (<usize>k << 2));
    for (let j = 0; j < N; j++) store<f32>(c + (<usize>j << 2), load<f32>(c + (<usize>j << 2)) + s * load<f32>(bk + (<usize>j << 2)));
  }
}

// c (N) = a (K) @ B (K, N) with B's columns contiguous (x @ W^T): one dot product per weight row,
// rows in order, so the weights are read as one sequential stream (decode is bound by reading
// them: about 1.4x the bandwidth of streaming eight rows side by side), with four accumulators to
// hide the add latency.
function gemvCols(a: usize, B: usize, sBn: i32, c: usize, K: i32, N: i32): void {
  const cs = <usize>sBn << 2;
  for (let j = 0; j < N; j++) {
    const p = B + <usize>j * cs;
    let k = 0;
    let r: f32 = 0;
    if (ASC_FEATURE_SIMD) {
      let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
      for (; k + 16 <= K; k += 16) {
        const o = <usize>k << 2;
        c0 = f32x4.add(c0, f32x4.mul(v128.load(a + o), v128.load(p + o)));
        c1 = f32x4.add(c1, f32x4.mul(v128.load(a + o, 16), v128.load(p + o, 16)));
        c2 = f32x4.add(c2, f32x4.mul(v128.load(a + o, 32), v128.load(p + o, 32)));
        c3 = f32x4.add(c3, f32x4.mul(v128.load(a + o, 48), v128.load(p + o, 48)));
      }
      for (; k + 4 <= K; k += 4) c0 = f32x4.add(c0, f32x4.mul(v128.load(a + (<usize>k << 2)), v128.load(p + (<usize>k << 2))));
      r = hsum(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)));
    }
    for (; k < K; k++) r += load<f32>(a + (<usize>k << 2)) * load<f32>(p + (<usize>k << 2));
    store<f32>(c + (<usize>j << 2), r);
  }
}

@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// B[pc.., jc..] (kc x nc) -> panels of NR columns, each kc x NR row-major, zero-padded.
function packB(B: usize, sBk: i32, sBn: i32, pc: i32, jc: i32, kc: i32, nc: i32, bp: usize): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    const panel = bp + (<usize>(jr * kc) << 2);
    for (let k = 0; k < kc; k++) {
      const src = B + (<usize>((pc + k) * sBk + (jc + jr) * sBn) << 2);
      const dst = panel + (<usize>(k * NR) << 2);
      if (nr == NR && sBn == 1) {
        if (ASC_FEATURE_SIMD) {
          v128.store(dst, v128.load(src));
          v128.store(dst + 16, v128.load(src + 16));
        } else {
          memory.copy(dst, src, NR * 4);
        }
      } else {
        for (let j = 0; j < NR; j++) {
          store<f32>(dst + (<usize>j << 2), j < nr ? load<f32>(src + (<usize>(j * sBn) << 2)) : 0);
        }
      }
    }
  }
}

// A[ic.., pc..] (mr x kc) -> kc x MR slivers (a k's MR values together), zero rows past mr.
function packA(A: usize, sAm: i32, sAk: i32, ic: i32, pc: i32, mr: i32, kc: i32, ap: usize): void {
  for (let i = 0; i < MR; i++) {
    const src = A + (<usize>((ic + i) * sAm + pc * sAk) << 2);
    for (let k = 0; k < kc; k++) store<f32>(ap + (<usize>(k * MR + i) << 2), i < mr ? load<f32>(src + (<usize>(k * sAk) << 2)) : 0);
  }
}

// C[mr x nr] (row stride ldc) (+)= Ap (kc x MR) . Bp (kc x NR)
function micro(kc: i32, ap: usize, bp: usize, c: usize, ldc: i32, mr: i32, nr: i32, first: bool): void {
  const full = mr == MR && nr == NR;
  const out = full ? c : TILE;
  const ld: usize = full ? <usize>ldc << 2 : <usize>NR << 2;
  if (ASC_FEATURE_SIMD) {
    let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
    let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
    for (let k = 0; k < kc; k++) {
      const pb = bp + (<usize>k << 5);
      const pa = ap + (<usize>k << 4);
      const b0 = v128.load(pb), b1 = v128.load(pb, 16);
      // broadcast loads of the sliver's four A values (no lane shuffles)
      const a0 = v128.load32_splat(pa), a1 = v128.load32_splat(pa, 4), a2 = v128.load32_splat(pa, 8), a3 = v128.load32_splat(pa, 12);
      c00 = f32x4.add(c00, f32x4.mul(a0, b0)); c01 = f32x4.add(c01, f32x4.mul(a0, b1));
      c10 = f32x4.add(c10, f32x4.mul(a1, b0)); c11 = f32x4.add(c11, f32x4.mul(a1, b1));
      c20 = f32x4.add(c20, f32x4.mul(a2, b0)); c21 = f32x4.add(c21, f32x4.mul(a2, b1));
      c30 = f32x4.add(c30, f32x4.mul(a3, b0)); c31 = f32x4.add(c31, f32x4.mul(a3, b1));
    }
    if (full && !first) {
      c00 = f32x4.add(c00, v128.load(out)); c01 = f32x4.add(c01, v128.load(out, 16));
      c10 = f32x4.add(c10, v128.load(out + ld)); c11 = f32x4.add(c11, v128.load(out + ld, 16));
      c20 = f32x4.add(c20, v128.load(out + 2 * ld)); c21 = f32x4.add(c21, v128.load(out + 2 * ld, 16));
      c30 = f32x4.add(c30, v128.load(out + 3 * ld)); c31 = f32x4.add(c31, v128.load(out + 3 * ld, 16));
    }
    v128.store(out, c00); v128.store(out, c01, 16);
    v128.store(out + ld, c10); v128.store(out + ld, c11, 16);
    v128.store(out + 2 * ld, c20); v128.store(out + 2 * ld, c21, 16);
    v128.store(out + 3 * ld, c30); v128.store(out + 3 * ld, c31, 16);
  } else {
    for (let i = 0; i < MR; i++) {
      for (let j = 0; j < NR; j++) {
        let s: f32 = 0;
        for (let k = 0; k < kc; k++) s += load<f32>(ap + (<usize>(k * MR + i) << 2)) * load<f32>(bp + (<usize>(k * NR + j) << 2));
        const p = out + <usize>i * ld + (<usize>j << 2);
        store<f32>(p, full && !first ? load<f32>(p) + s : s);
      }
    }
  }
  if (!full) {
    for (let i = 0; i < mr; i++) {
      for (let j = 0; j < nr; j++) {
        const p = c + (<usize>(i * ldc + j) << 2);
        const v = load<f32>(TILE + (<usize>(i * NR + j) << 2));
        store<f32>(p, first ? v : load<f32>(p) + v);
      }
    }
  }
}
