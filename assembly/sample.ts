// Choosing the next token on the device (WGSL twin: src/kernels/sample.ts), one row of logits at
// a time, in transformers' order: repetition penalty (tokens of the prompt or output), frequency
// and presence penalties (output counts), logit bias, then, unless greedy, temperature, top-k,
// top-p and min-p, then the token where the running sum of the kept probabilities, in vocab
// order, passes u (a uniform draw the host makes from its seeded generator). Thresholds are
// found by bisection over order-preserving keys of the f32 scores, so the kept set is exact and
// the same on both backends. Writes (token, log-probability under the raw logits) per row and
// counts the token into the row's history (2 per output, 1 for "in the prompt").
import { uf, uw } from './common';
import { SP_FREQ, SP_GREEDY, SP_MINP, SP_OFF, SP_PRES, SP_REP, SP_ROWS, SP_TEMP, SP_TOPK, SP_TOPP, SP_V } from './layout';

/** An unsigned key that orders like the float (-inf lowest). */
@inline function key(v: f32): u32 {
  const b = reinterpret<u32>(v);
  return b >> 31 ? ~b : b | 0x80000000;
}

@inline function mid(lo: u32, hi: u32): u32 { return lo + ((hi - lo) >> 1) + ((hi - lo) & 1); }

export function sample(lg: usize, bias: usize, un: usize, s: usize, hist: usize, out: usize, u: usize): void {
  const V = <i32>uw(u, SP_V), rows = <i32>uw(u, SP_ROWS);
  const greedy = uw(u, SP_GREEDY) != 0, K = uw(u, SP_TOPK);
  const temp = uf(u, SP_TEMP), topP = uf(u, SP_TOPP), minP = uf(u, SP_MINP);
  const rep = uf(u, SP_REP), freq = uf(u, SP_FREQ), pres = uf(u, SP_PRES);
  for (let b = 0; b < rows; b++) {
    const L = lg + (<usize>(<i32>uw(u, SP_OFF) + b * V) << 2);
    const S = s + (<usize>(b * V) << 2);
    const H = hist + (<usize>(b * V) << 2);
    let rawMax = f32.NEGATIVE_INFINITY;
    for (let i = 0; i < V; i++) rawMax = max(rawMax, load<f32>(L + (<usize>i << 2)));
    let rawSum: f64 = 0;
    for (let i = 0; i < V; i++) rawSum += <f64>Mathf.exp(load<f32>(L + (<usize>i << 2)) - rawMax);
    // the penalized (and tempered) scores, their max and first argmax
    let m = f32.NEGATIVE_INFINITY;
    let best = 0;
    for (let i = 0; i < V; i++) {
      let v = load<f32>(L + (<usize>i << 2));
      const h = load<i32>(H + (<usize>i << 2));
      if (rep != 1 && h != 0) v = v < 0 ? v * rep : v / rep;
      if (h >> 1) v -= freq * <f32>(h >> 1) + pres;
      v += load<f32>(bias + (<usize>i << 2));
      if (!greedy) v /= temp;
      store<f32>(S + (<usize>i << 2), v);
      if (v > m) { m = v; best = i; }
    }
    let token = best;
    if (!greedy) {
      // top-k: the largest key t with at least K scores at or above it
      let tk: u32 = 0;
      if (K > 0 && K < <u32>V) {
        let hi: u32 = 0xffffffff;
        for (let it = 0; it < 32; it++) {
          const t = mid(tk, hi);
          let c: u32 = 0;
          for (let i = 0; i < V; i++) c += <u32>(key(load<f32>(S + (<usize>i << 2))) >= t);
          if (tk < hi) { if (c >= K) tk = t; else hi = t - 1; }
        }
      }
      let Z: f64 = 0;
      for (let i = 0; i < V; i++) {
        const v = load<f32>(S + (<usize>i << 2));
        if (key(v) >= tk) Z += <f64>Mathf.exp(v - m);
      }
      // top-p: the largest key t whose scores at or above it hold at least topP of the mass
      let tp: u32 = tk;
      if (topP < 1) {
        let hi: u32 = 0xffffffff;
        for (let it = 0; it < 32; it++) {
          const t = mid(tp, hi);
          let mass: f64 = 0;
          for (let i = 0; i < V; i++) {
            const v = load<f32>(S + (<usize>i << 2));
            if (key(v) >= t) mass += <f64>Mathf.exp(v - m);
          }
          if (tp < hi) { if (mass >= <f64>topP * Z) tp = t; else hi = t - 1; }
        }
      }
      // min-p: scores below max + log(minP) go
      const floor = minP > 0 ? m + Mathf.log(minP) : f32.NEGATIVE_INFINITY;
      let Zf: f64 = 0;
      for (let i = 0; i < V; i++) {
        const v = load<f32>(S + (<usize>i << 2));
        if (key(v) >= tp && v >= floor) Zf += <f64>Mathf.exp(v - m);
      }
      const target = <f64>load<f32>(un + (<usize>b << 2)) * Zf;
      let cum: f64 = 0; // sums in f64: the host reference's precision
      for (let i = 0; i < V; i++) {
        const v = load<f32>(S + (<usize>i << 2));
        if (key(v) >= tp && v >= floor) {
          cum += <f64>Mathf.exp(v - m);
          if (cum > target) { token = i; break; }
        }
      }
    }
    store<f32>(out + (<usize>(2 * b) << 2), <f32>token);
    store<f32>(out + (<usize>(2 * b + 1) << 2), load<f32>(L + (<usize>token << 2)) - rawMax - <f32>Math.log(rawSum));
    store<i32>(H + (<usize>token << 2), load<i32>(H + (<usize>token << 2)) + 2);
  }
}
