// Several adapters on one base: new adapters combined from existing ones (PEFT's
// add_weighted_adapter, peft/tuners/lora/model.py, with the fixes of PEFT #3111 and #3449: the svd
// path scales each ΔW once, and the new adapter never inherits use_rslora), and hot-swapping an
// adapter's weights in place (PEFT's hotswap_adapter). Combination runs on the host in Float64:
// adapters are small, and reading them once beats a kernel per step.
import { KilnError } from '../core/errors.js';
import { defaultGenerator, type Generator } from '../core/ops/creation.js';
import type { LoraConfig } from './config.js';
import { loadAdapter, type LoadAdapterOptions } from './io.js';
import type { LoraLinear } from './lora.js';
import type { PeftModel } from './model.js';

/** PEFT's merge methods (utils/merge_utils.py) applied to the A and the B tensors separately, or, with _svd, to the ΔWs before the SVD. */
const TASK_METHODS = ['linear', 'ties', 'dare_linear', 'dare_ties', 'magnitude_prune'] as const;
export type TaskMethod = (typeof TASK_METHODS)[number];
const SVD_TYPES = ['svd', 'ties_svd', 'dare_linear_svd', 'dare_ties_svd', 'magnitude_prune_svd'] as const;
export type CombinationType = TaskMethod | 'cat' | (typeof SVD_TYPES)[number];

export interface WeightedAdapterOptions {
  /** 'linear' (equal ranks; √|w·s| on A and B, the sign on A, as PEFT: cross terms included), 'cat' (ranks add up; exactly Σ w·s·B·A) or 'svd' (Σ w·s·B·A truncated to svdRank); ties, dare_linear, dare_ties, magnitude_prune and their _svd forms as PEFT's; default 'svd' as PEFT. One adapter is always 'linear'. */
  combinationType?: CombinationType;
  /** svd types: the new rank (default: the largest of the adapters' ranks) */
  svdRank?: number;
  /** ties, dare, magnitude_prune: the fraction of values kept (1 or more: no pruning) */
  density?: number;
  /** ties: the elected sign per element from the sum of values ('total', PEFT's default) or of signs ('frequency') */
  majoritySignMethod?: 'total' | 'frequency';
  /** dare: draws the random masks (default: the default generator) */
  generator?: Generator;
}

type MergeOptions = Pick<WeightedAdapterOptions, 'density' | 'majoritySignMethod' | 'generator'>;

/**
 * PEFT's task-tensor merges (merge_utils.py) on host arrays of one shape: linear Σ w·t; magnitude_prune
 * the same after keeping each tensor's top density·n magnitudes; dare_linear after random masks
 * rescaled by 1/density; ties and dare_ties elect a sign per element (from the pruned, unweighted
 * tensors) and average the weighted values that agree with it.
 */
export function mergeTaskTensors(method: TaskMethod, tensors: Float64Array[], weights: number[], o: MergeOptions = {}): Float64Array {
  const n = tensors[0].length;
  const density = o.density ?? 1;
  let ts = tensors;
  if (method !== 'linear' && density < 1) {
    const g = o.generator ?? defaultGenerator;
    ts = ts.map((t) => {
      if (method.startsWith('dare')) return t.map((v) => (g.random() < density ? v / density : 0));
      const keep = Math.floor(density * n);
      const order = Array.from(t.keys()).sort((x, y) => Math.abs(t[y]) - Math.abs(t[x]));
      const out = new Float64Array(n);
      for (const i of order.slice(0, keep)) out[i] = t[i];
      return out;
    });
  }
  const out = new Float64Array(n);
  if (method === 'ties' || method === 'dare_ties') {
    for (let i = 0; i < n; i++) {
      let m = 0;
      for (const t of ts) m += o.majoritySignMethod === 'frequency' ? Math.sign(t[i]) : t[i];
      const elected = m >= 0 ? 1 : -1;
      let sum = 0;
      let count = 0;
      ts.forEach((t, j) => {
        if (Math.sign(t[i]) === elected) {
          sum += weights[j] * t[i];
          count++;
        }
      });
      out[i] = sum / Math.max(count, 1);
    }
  } else {
    ts.forEach((t, j) => {
      for (let i = 0; i < n; i++) out[i] += weights[j] * t[i];
    });
  }
  return out;
}

/** The largest rank an adapter has anywhere (PEFT sizes the new adapter by it). */
const maxRank = (c: LoraConfig): number => Math.max(c.r, ...Object.values(c.rank_pattern));

/**
 * Adds adapter `newName` made of `adapters` weighted by `weights` (PEFT's add_weighted_adapter).
 * Its config is the first adapter's with r = lora_alpha = the new rank (scaling 1: every source's
 * scaling is folded into the new A and B), use_rslora off, no rank or alpha patterns, and the union
 * of the targets. It is added inactive and frozen, like PEFT's. Unlike PEFT, an existing newName is
 * an error (PEFT returns silently) and DoRA sources are refused (PEFT would drop their magnitudes).
 */
export async function addWeightedAdapter(peft: PeftModel, adapters: string[], weights: number[], newName: string, opts: WeightedAdapterOptions = {}): Promise<void> {
  const op = 'addWeightedAdapter';
  if (!Array.isArray(adapters) || !adapters.length) throw new KilnError('argument', op, 'adapters must be a non-empty list of adapter names');
  if (!Array.isArray(weights) || weights.length !== adapters.length) throw new KilnError('argument', op, `weights must have one number per adapter (${adapters.length}), got ${JSON.stringify(weights)}`);
  weights.forEach((w, i) => {
    if (typeof w !== 'number' || !Number.isFinite(w)) throw new KilnError('argument', op, `weights[${i}] must be a finite number, got ${String(w)}`);
  });
  for (const a of adapters) if (!peft.peftConfig.has(a)) throw new KilnError('argument', op, `no adapter named '${a}' (adapters: ${[...peft.peftConfig.keys()].join(', ')})`);
  if (peft.peftConfig.has(newName)) throw new KilnError('argument', op, `an adapter named '${newName}' exists already`);
  const type = adapters.length === 1 ? 'linear' : opts.combinationType ?? 'svd';
  const isSvd = (SVD_TYPES as readonly string[]).includes(type);
  if (!isSvd && type !== 'cat' && !(TASK_METHODS as readonly string[]).includes(type)) throw new KilnError('argument', op, `combinationType must be one of ${[...TASK_METHODS, 'cat', ...SVD_TYPES].join(', ')}; got ${JSON.stringify(opts.combinationType)}`);
  const method = (isSvd ? (type === 'svd' ? 'linear' : type.slice(0, -4)) : type) as TaskMethod;
  if (method !== 'linear' && type !== 'cat' && (typeof opts.density !== 'number' || !(opts.density >= 0) || !Number.isFinite(opts.density))) throw new KilnError('argument', op, `combinationType '${type}' needs density, a number from 0 to 1 (the fraction kept), got ${String(opts.density)}`);
  if (opts.majoritySignMethod !== undefined && !['total', 'frequency'].includes(opts.majoritySignMethod)) throw new KilnError('argument', op, `majoritySignMethod must be 'total' or 'frequency', got ${JSON.stringify(opts.majoritySignMethod)}`);
  if (opts.svdRank !== undefined && (!Number.isInteger(opts.svdRank) || opts.svdRank < 1)) throw new KilnError('argument', op, `svdRank must be a positive integer, got ${String(opts.svdRank)}`);
  const configs = adapters.map((a) => peft.peftConfig.get(a)!);
  configs.forEach((c, i) => {
    if (c.use_dora) throw new KilnError('argument', op, `adapter '${adapters[i]}' uses DoRA: its magnitude vector cannot be combined`);
  });
  const ranks = configs.map(maxRank);
  if (!isSvd && type !== 'cat' && new Set(ranks).size !== 1) throw new KilnError('argument', op, `combinationType '${type}' needs adapters of one rank, got ${adapters.map((a, i) => `${a}: ${ranks[i]}`).join(', ')}`);
  const newRank = type === 'cat' ? ranks.reduce((x, y) => x + y, 0) : isSvd ? opts.svdRank ?? Math.max(...ranks) : ranks[0];
  const tm = configs.map((c) => c.target_modules);
  let targets: string[] | string;
  if (tm.every((t) => Array.isArray(t))) targets = [...new Set((tm as string[][]).flat())].sort();
  else if (tm.every((t) => typeof t === 'string')) targets = tm.map((t) => `(${t})`).join('|');
  else throw new KilnError('argument', op, `the adapters' target_modules mix lists and regexes (${JSON.stringify(tm)}): PEFT cannot combine them either`);

  // every layer's new A and B, computed before the model changes
  const layers = peft.loraLayers();
  const planned = new Map<LoraLinear, [Float64Array, Float64Array]>();
  for (const [path, l] of layers) {
    const srcs = adapters.map((a, i) => [a, weights[i]] as const).filter(([a]) => l.adapters.has(a));
    if (!srcs.length) continue;
    const [out, inF] = [l.outFeatures, l.inFeatures];
    const parts = await Promise.all(srcs.map(async ([a, w]) => ({
      r: l.adapters.get(a)!.r, s: l.adapters.get(a)!.scaling, ws: w * l.adapters.get(a)!.scaling,
      A: Float64Array.from(await l.A(a).weight.toArray()), B: Float64Array.from(await l.B(a).weight.toArray()),
    })));
    let k: number;
    let a: Float64Array;
    let b: Float64Array;
    if (!isSvd && type !== 'cat') {
      k = parts[0].r;
      if (parts.some((p) => p.r !== k)) throw new KilnError('shape', op, `${path}: combinationType '${type}' needs one rank per layer, this layer has ${parts.map((q) => q.r).join(' and ')}`);
      // √|w·s| on A and B, the sign on A only, or it cancels (PEFT)
      const root = parts.map((p) => Math.sqrt(Math.abs(p.ws)));
      a = mergeTaskTensors(method, parts.map((p) => p.A), parts.map((p, i) => (p.ws < 0 ? -root[i] : root[i])), opts);
      b = mergeTaskTensors(method, parts.map((p) => p.B), root, opts);
    } else if (type === 'svd' || type === 'cat') {
      // cat: A rows stacked with w·s folded in, B columns side by side: B_cat·A_cat = Σ w·s·B·A
      const R = parts.reduce((x, p) => x + p.r, 0);
      const Ac = new Float64Array(R * inF);
      const Bc = new Float64Array(out * R);
      let k0 = 0;
      for (const p of parts) {
        for (let i = 0; i < p.r * inF; i++) Ac[k0 * inF + i] = p.ws * p.A[i];
        for (let o = 0; o < out; o++) for (let j = 0; j < p.r; j++) Bc[o * R + k0 + j] = p.B[o * p.r + j];
        k0 += p.r;
      }
      [a, b, k] = type === 'cat' ? [Ac, Bc, R] : lowRankSvd(Bc, Ac, out, R, inF, newRank);
    } else {
      // the other svd types prune elementwise: the dense ΔW = s·B·A of each, merged, then a dense SVD
      const deltas = parts.map((p) => {
        const d = new Float64Array(out * inF);
        for (let o = 0; o < out; o++) for (let j = 0; j < p.r; j++) {
          const bj = p.s * p.B[o * p.r + j];
          if (bj) for (let i = 0; i < inF; i++) d[o * inF + i] += bj * p.A[j * inF + i];
        }
        return d;
      });
      const merged = mergeTaskTensors(method, deltas, srcs.map(([, w]) => w), opts);
      const { U, S, V } = svdJacobi(merged, out, inF);
      const p = S.length;
      k = Math.min(newRank, p);
      a = new Float64Array(k * inF);
      b = new Float64Array(out * k);
      for (let j = 0; j < k; j++) for (let i = 0; i < inF; i++) a[j * inF + i] = V[i * p + j];
      for (let o = 0; o < out; o++) for (let j = 0; j < k; j++) b[o * k + j] = U[o * p + j] * S[j];
    }
    // a (k, in), b (out, k) into the first k of newRank ranks (the rest stays zero, as PEFT's slices)
    const A = new Float64Array(newRank * inF);
    const B = new Float64Array(out * newRank);
    A.set(a.subarray(0, k * inF));
    for (let o = 0; o < out; o++) for (let j = 0; j < k; j++) B[o * newRank + j] = b[o * k + j];
    planned.set(l, [A, B]);
  }

  const c0 = configs[0];
  peft.addAdapter(newName, {
    ...c0, r: newRank, lora_alpha: newRank, use_rslora: false, rank_pattern: {}, alpha_pattern: {}, target_modules: targets, init_lora_weights: false,
  }, { init: false });
  for (const [, l] of peft.loraLayers()) {
    if (!l.adapters.has(newName)) continue;
    const [A, B] = planned.get(l) ?? [new Float64Array(newRank * l.inFeatures), new Float64Array(l.outFeatures * newRank)];
    l.writeAdapter(newName, A, B);
  }
}

/**
 * The truncated SVD of ΔW = B·A (B (out, R), A (R, in)) without forming ΔW's SVD at full size:
 * B = Q·Rb (thin QR), then the SVD of the small Rb·A (R, in) by one-sided Jacobi, so the cost is
 * O((out + in)·R²). Returns [A' (k, in) = Vᵀ rows, B' (out, k) = U·S columns, k], k = min(rank, R).
 */
export function lowRankSvd(B: Float64Array, A: Float64Array, out: number, R: number, inF: number, rank: number): [Float64Array, Float64Array, number] {
  const { Q, Rm } = thinQr(B, out, R);
  const M = new Float64Array(R * inF); // Rb·A (R, in)
  for (let i = 0; i < R; i++) for (let j = 0; j < R; j++) {
    const r = Rm[i * R + j];
    if (r) for (let c = 0; c < inF; c++) M[i * inF + c] += r * A[j * inF + c];
  }
  const { U, S, V } = svdJacobi(M, R, inF); // M = U·diag(S)·Vᵀ, U (R, n), V (in, n), n = min(R, in)
  const n = S.length;
  const k = Math.min(rank, n);
  const a = new Float64Array(k * inF);
  const b = new Float64Array(out * k);
  for (let j = 0; j < k; j++) for (let c = 0; c < inF; c++) a[j * inF + c] = V[c * n + j];
  for (let o = 0; o < out; o++) for (let j = 0; j < k; j++) {
    let s = 0;
    for (let i = 0; i < R; i++) s += Q[o * R + i] * U[i * n + j];
    b[o * k + j] = s * S[j];
  }
  return [a, b, k];
}

/** Modified Gram-Schmidt, twice for stability: X (m, n) = Q (m, n) · R (n, n); a dependent column gets a zero Q column. */
function thinQr(X: Float64Array, m: number, n: number): { Q: Float64Array; Rm: Float64Array } {
  const Q = Float64Array.from(X);
  const Rm = new Float64Array(n * n);
  let scale = 0;
  for (const v of X) scale = Math.max(scale, Math.abs(v));
  for (let j = 0; j < n; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        let d = 0;
        for (let r = 0; r < m; r++) d += Q[r * n + i] * Q[r * n + j];
        Rm[i * n + j] += d;
        for (let r = 0; r < m; r++) Q[r * n + j] -= d * Q[r * n + i];
      }
    }
    let nrm = 0;
    for (let r = 0; r < m; r++) nrm += Q[r * n + j] ** 2;
    nrm = Math.sqrt(nrm);
    Rm[j * n + j] = nrm;
    const zero = nrm <= 1e-13 * scale * Math.sqrt(m);
    for (let r = 0; r < m; r++) Q[r * n + j] = zero ? 0 : Q[r * n + j] / nrm;
    if (zero) Rm[j * n + j] = 0;
  }
  return { Q, Rm };
}

/**
 * SVD of M (m, n) by one-sided Jacobi on Mᵀ's columns: rotations make the rows of M orthogonal,
 * their norms are the singular values. Returns U (m, p), S (p) descending, V (n, p), p = min(m, n).
 */
export function svdJacobi(M: Float64Array, m: number, n: number): { U: Float64Array; S: Float64Array; V: Float64Array } {
  if (m > n) {
    // work on Mᵀ (n, m): Mᵀ = U'·S·V'ᵀ  =>  M = V'·S·U'ᵀ
    const T = new Float64Array(n * m);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) T[j * m + i] = M[i * n + j];
    const r = svdJacobi(T, n, m);
    return { U: r.V, S: r.S, V: r.U };
  }
  // m <= n: rotate the m rows of W = M (each of length n); Ur accumulates the rotations (m, m)
  const W = Float64Array.from(M);
  const Ur = new Float64Array(m * m);
  for (let i = 0; i < m; i++) Ur[i * m + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < m - 1; p++) for (let q = p + 1; q < m; q++) {
      let a = 0;
      let b = 0;
      let g = 0;
      for (let c = 0; c < n; c++) {
        const x = W[p * n + c];
        const y = W[q * n + c];
        a += x * x;
        b += y * y;
        g += x * y;
      }
      if (Math.abs(g) <= 1e-15 * Math.sqrt(a * b) || g === 0) continue;
      off = Math.max(off, Math.abs(g) / Math.sqrt(a * b));
      const zeta = (b - a) / (2 * g);
      const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
      const cs = 1 / Math.sqrt(1 + t * t);
      const sn = cs * t;
      for (let c = 0; c < n; c++) {
        const x = W[p * n + c];
        const y = W[q * n + c];
        W[p * n + c] = cs * x - sn * y;
        W[q * n + c] = sn * x + cs * y;
      }
      for (let r = 0; r < m; r++) {
        const x = Ur[r * m + p];
        const y = Ur[r * m + q];
        Ur[r * m + p] = cs * x - sn * y;
        Ur[r * m + q] = sn * x + cs * y;
      }
    }
    if (off < 1e-15) break;
  }
  // M = Ur·W (Ur orthogonal), rows of W orthogonal: W_i = S_i·V_iᵀ
  const norms = Array.from({ length: m }, (_, i) => {
    let s = 0;
    for (let c = 0; c < n; c++) s += W[i * n + c] ** 2;
    return Math.sqrt(s);
  });
  const order = norms.map((_, i) => i).sort((x, y) => norms[y] - norms[x]);
  const U = new Float64Array(m * m);
  const S = new Float64Array(m);
  const V = new Float64Array(n * m);
  order.forEach((src, j) => {
    S[j] = norms[src];
    for (let r = 0; r < m; r++) U[r * m + j] = Ur[r * m + src];
    if (norms[src] > 0) for (let c = 0; c < n; c++) V[c * m + j] = W[src * n + c] / norms[src];
  });
  return { U, S, V };
}

/**
 * Replaces adapter `name`'s weights with those of the adapter in `source` (anything loadAdapter
 * reads), in place: the same Tensor objects and buffers, no module rebuilt (PEFT's hotswap_adapter).
 * The new adapter must target the same layers with the same ranks; its scaling (lora_alpha) and
 * dropout replace the old ones. Everything is checked before the adapter changes; on a mismatch
 * it is left as it was.
 */
export async function hotswapAdapter(peft: PeftModel, name: string, source: Parameters<typeof loadAdapter>[1], opts: LoadAdapterOptions = {}): Promise<void> {
  const op = 'hotswapAdapter';
  const old = peft.peftConfig.get(name);
  if (!old) throw new KilnError('argument', op, `no adapter named '${name}' (adapters: ${[...peft.peftConfig.keys()].join(', ') || 'none'})`);
  const merged = peft.loraLayers().find(([, l]) => l.merged.includes(name));
  if (merged) throw new KilnError('argument', op, `adapter '${name}' is merged into ${merged[0]}: unmerge() first`);
  const active = peft.activeAdapter;
  let tmp = `${name}__hotswap`;
  while (peft.peftConfig.has(tmp)) tmp += '_';
  // loadAdapter checks the file against the model (keys, shapes, config) and loads it beside the old
  // adapter; the values are then copied over the old adapter's and the temporary one deleted
  await loadAdapter(peft, source, tmp, opts);
  try {
    const c = peft.peftConfig.get(tmp)!;
    const where = typeof source === 'string' ? source : 'the new adapter';
    for (const [what, x] of [['the new adapter', c], [`adapter '${name}'`, old]] as const) {
      if (x.use_dora || x.bias !== 'none' || x.modules_to_save?.length) throw new KilnError('config', op, `${where}: ${what} has DoRA, a bias or modules_to_save; hot-swap replaces LoRA A and B only`);
    }
    const pairs = peft.loraLayers().filter(([, l]) => l.adapters.has(tmp) || l.adapters.has(name));
    for (const [path, l] of pairs) {
      const [a, b] = [l.adapters.get(name), l.adapters.get(tmp)];
      if (!a || !b) throw new KilnError('config', op, `${where}: ${b ? `targets ${path}, which adapter '${name}' does not` : `does not target ${path}, which adapter '${name}' does`}`);
      if (a.r !== b.r) throw new KilnError('shape', op, `${where}: ${path} has rank ${b.r}, adapter '${name}' has rank ${a.r}`);
    }
    const values = await Promise.all(pairs.map(async ([, l]) => [await l.A(tmp).weight.toArray(), await l.B(tmp).weight.toArray()] as const));
    // all checked: write
    pairs.forEach(([, l], i) => {
      l.writeAdapter(name, values[i][0], values[i][1]);
      const s = l.adapters.get(name)!;
      const n = l.adapters.get(tmp)!;
      l.adapters.set(name, { ...s, alpha: n.alpha, scaling: n.scaling, dropout: n.dropout });
    });
    peft.peftConfig.set(name, { ...c, inference_mode: old.inference_mode });
  } finally {
    peft.deleteAdapter(tmp);
    peft.setAdapter(active);
  }
}
