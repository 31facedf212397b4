// Positions: rotary embeddings (RoPE) with the Hugging Face scaling types, ALiBi, learned.
// Frequencies and the cos/sin tables are computed on the host in float64 (as the reference does
// its inverse frequencies); one fused kernel rotates q or k, reading the tables at each row's
// position id, so packed sequences with restarting positions cost nothing extra.
import type { Backend } from '../backend/backend.js';
import { record } from '../core/autograd.js';
import { KilnError, fmtShape } from '../core/errors.js';
import { fromValues } from '../core/ops/creation.js';
import { cast } from '../core/ops/pointwise.js';
import { contiguous } from '../core/ops/shape.js';
import { disposeTemps } from '../core/ops/util.js';
import { keep, Tensor } from '../core/tensor.js';
import { ropeCall } from '../kernels/rope.js';
import { normal, type InitOptions } from './init.js';
import { Module } from './module.js';
import { embedding } from '../core/ops/index.js';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number; originalMaxPositionEmbeddings?: number }
  | { type: 'yarn'; factor: number; originalMaxPositionEmbeddings: number; betaFast?: number; betaSlow?: number; mscale?: number; mscaleAllDim?: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface RopeConfig {
  /** head dim */
  headDim: number;
  /** dims that rotate (partial rotary: the rest pass through); default headDim */
  rotaryDim?: number;
  theta?: number;
  maxPositionEmbeddings?: number;
  scaling?: RopeScaling | null;
  /** 'half': rotate-half (Llama, NeoX); 'interleaved': pairs (x0, x1), (x2, x3) (GPT-J) */
  layout?: 'half' | 'interleaved';
  /** rotaryDim / 2 divisors of the inverse frequencies: llama.cpp's rope_freqs tensor, how Llama 3.1 GGUF files carry llama3 scaling */
  freqFactors?: ArrayLike<number> | null;
}

/**
 * Inverse frequencies (rotaryDim / 2) and the attention scaling factor for a config, following
 * transformers' ROPE_INIT_FUNCTIONS. seqLen matters only for 'dynamic'.
 */
export function ropeInvFreq(cfg: RopeConfig, seqLen = 0): { invFreq: Float64Array; attentionScaling: number } {
  const dim = cfg.rotaryDim ?? cfg.headDim;
  if (dim % 2 !== 0) throw new KilnError('argument', 'RotaryEmbedding', `the rotary dimension must be even, got ${dim}`);
  if (dim > cfg.headDim) throw new KilnError('argument', 'RotaryEmbedding', `rotary dimension ${dim} exceeds the head dim ${cfg.headDim}`);
  let base = cfg.theta ?? 10000;
  const s = cfg.scaling ?? null;
  // values that can only make NaN or zeros (loaders say which file and key: models/config.ts)
  if (!(base > 0 && Number.isFinite(base))) throw new KilnError('argument', 'RotaryEmbedding', `theta must be a finite number > 0, got ${base}`);
  if (s && !(s.factor > 0 && Number.isFinite(s.factor))) throw new KilnError('argument', 'RotaryEmbedding', `${s.type} scaling needs a finite factor > 0, got ${s.factor}`);
  if (s?.type === 'llama3' && !(s.lowFreqFactor > 0 && s.highFreqFactor > s.lowFreqFactor && s.originalMaxPositionEmbeddings > 0)) {
    throw new KilnError('argument', 'RotaryEmbedding', `llama3 scaling needs 0 < lowFreqFactor < highFreqFactor and originalMaxPositionEmbeddings > 0, got ${s.lowFreqFactor}, ${s.highFreqFactor}, ${s.originalMaxPositionEmbeddings}`);
  }
  const maxPos = cfg.maxPositionEmbeddings ?? 2048;
  if (s?.type === 'dynamic') {
    const orig = s.originalMaxPositionEmbeddings ?? maxPos;
    if (seqLen > orig) base *= ((s.factor * seqLen) / orig - (s.factor - 1)) ** (dim / (dim - 2));
  }
  const half = dim / 2;
  let inv = Float64Array.from({ length: half }, (_, i) => 1 / base ** ((2 * i) / dim));
  const ff = cfg.freqFactors;
  if (ff) {
    if (ff.length !== half || !Array.from(ff).every((f) => f > 0 && Number.isFinite(f))) throw new KilnError('argument', 'RotaryEmbedding', `freqFactors must be ${half} finite numbers > 0, got ${ff.length}`);
    inv = inv.map((f, i) => f / ff[i]);
  }
  let attentionScaling = 1;
  if (s?.type === 'linear') inv = inv.map((f) => f / s.factor);
  else if (s?.type === 'llama3') {
    const lowWl = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWl = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    inv = inv.map((f) => {
      const wl = (2 * Math.PI) / f;
      if (wl < highWl) return f;
      if (wl > lowWl) return f / s.factor;
      const smooth = (s.originalMaxPositionEmbeddings / wl - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return (1 - smooth) * (f / s.factor) + smooth * f;
    });
  } else if (s?.type === 'yarn') {
    const betaFast = s.betaFast ?? 32;
    const betaSlow = s.betaSlow ?? 1;
    const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
    attentionScaling = s.mscale && s.mscaleAllDim ? getMscale(s.factor, s.mscale) / getMscale(s.factor, s.mscaleAllDim) : getMscale(s.factor);
    const corrDim = (rot: number) => (dim * Math.log(s.originalMaxPositionEmbeddings / (rot * 2 * Math.PI))) / (2 * Math.log(base));
    let low = Math.max(Math.floor(corrDim(betaFast)), 0);
    let high = Math.min(Math.ceil(corrDim(betaSlow)), dim - 1);
    if (low === high) high += 0.001;
    const interp = inv.map((f) => f / s.factor);
    inv = inv.map((f, i) => {
      const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
      const extrapolationFactor = 1 - ramp;
      return interp[i] * (1 - extrapolationFactor) + f * extrapolationFactor;
    });
  }
  return { invFreq: inv, attentionScaling };
}

/**
 * The rotation itself, one fused kernel each way: x (B, H, T, D) at positionIds (B, T) or (T),
 * with cos / sin tables (positions, rd) holding each frequency at both dims of its pair
 * (RotaryEmbedding builds them); dims past rd pass through. The gradient is the inverse rotation.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, positionIds: Tensor, rd: number, interleaved = false): Tensor {
  const [B, , T, D] = x.shape;
  const p = positionIds;
  if (x.ndim !== 4 || rd > D || rd % 2) throw new KilnError('shape', 'rope', `x must be (B, H, T, D) with an even rotary dim <= D, got ${fmtShape(x.shape)} and ${rd}`);
  if (p.dtype !== 'i32' || !((p.ndim === 1 && p.shape[0] === T) || (p.ndim === 2 && p.shape[0] === B && p.shape[1] === T))) {
    throw new KilnError('shape', 'rope', `positionIds must be (B, T) = (${B}, ${T}) or (T) i32, got ${p.dtype}${fmtShape(p.shape)}`);
  }
  const be = x.backend;
  const run = (src: Tensor, inverse: boolean): Tensor => {
    const sf = cast(src, 'f32');
    const pc = contiguous(p);
    const y = Tensor.empty(be, src.shape, 'f32');
    if (y.size) be.run(ropeCall(sf, cos, sin, pc, y, rd, interleaved, inverse));
    disposeTemps([src, p], [sf, pc]);
    return y;
  };
  return record(run(x, false), 'rope', [x], (g) => [run(g, true)]);
}

/** Positions the tables cover before anything asks for more (min maxPositionEmbeddings): 4 MB at rd 128. */
const ROPE_PREBUILT = 4096;

/**
 * Rotary position embedding. Shapes: x (B, H, T, headDim), positionIds (B, T) or (T) i32.
 * Caches cos/sin tables for the positions used: min(maxPositionEmbeddings, 4096) to begin with,
 * grown (doubling) to what reserve() or apply's maxPosition ask for, so a 2^26-position config
 * costs nothing until a sequence that long runs. A position id outside the tables is an index error.
 */
export class RotaryEmbedding {
  readonly rotaryDim: number;
  readonly layout: 'half' | 'interleaved';
  private table: { cos: Tensor; sin: Tensor; len: number; backend: Backend } | null = null;
  private reserved = 0;
  constructor(readonly cfg: RopeConfig) {
    this.rotaryDim = cfg.rotaryDim ?? cfg.headDim;
    this.layout = cfg.layout ?? 'half';
    ropeInvFreq(cfg); // validates
  }

  /** cos and sin (len, rotaryDim) in this layout's order, computed in float64. */
  private tables(backend: Backend, len: number): { cos: Tensor; sin: Tensor } {
    const dynamic = this.cfg.scaling?.type === 'dynamic';
    if (this.table && this.table.backend === backend && this.table.len >= len && !dynamic) return this.table;
    const n = dynamic ? len : Math.max(len, Math.min(2 * (this.table?.len ?? 0), this.cfg.maxPositionEmbeddings ?? 2048));
    const { invFreq, attentionScaling } = ropeInvFreq(this.cfg, len);
    const d = this.rotaryDim;
    const cos = new Float32Array(n * d);
    const sin = new Float32Array(n * d);
    for (let p = 0; p < n; p++) {
      for (let i = 0; i < d / 2; i++) {
        const a = p * invFreq[i];
        const c = Math.cos(a) * attentionScaling;
        const s = Math.sin(a) * attentionScaling;
        // half: [f0..f(d/2-1), f0..f(d/2-1)]; interleaved: [f0, f0, f1, f1, ...]
        const j0 = this.layout === 'half' ? i : 2 * i;
        const j1 = this.layout === 'half' ? i + d / 2 : 2 * i + 1;
        cos[p * d + j0] = c; cos[p * d + j1] = c;
        sin[p * d + j0] = s; sin[p * d + j1] = s;
      }
    }
    this.table?.cos.dispose();
    this.table?.sin.dispose();
    this.table = { cos: keep(fromValues(cos, [n, d], { backend })), sin: keep(fromValues(sin, [n, d], { backend })), len: n, backend };
    return this.table;
  }

  /**
   * Rotates x (B, H, T, headDim) at positionIds (B, T) or (T). maxPosition: one more than the
   * largest position id (default: what reserve() asked for, at least min(maxPositionEmbeddings,
   * 4096)); dynamic NTK scaling rescales for it, as transformers does for the longest sequence seen.
   */
  apply(x: Tensor, positionIds: Tensor, maxPosition?: number): Tensor {
    const need = maxPosition ?? Math.max(this.reserved, Math.min(this.cfg.maxPositionEmbeddings ?? 2048, ROPE_PREBUILT));
    const { cos, sin } = this.tables(x.backend, need);
    return rope(x, cos, sin, positionIds, this.rotaryDim, this.layout === 'interleaved');
  }

  /** Makes later apply() calls cover positions below `len` (DecoderLM: cached + new tokens). */
  reserve(len: number): void {
    this.reserved = Math.max(this.reserved, len);
  }

  dispose(): void {
    this.table?.cos.dispose();
    this.table?.sin.dispose();
    this.table = null;
  }
}

/**
 * ALiBi slopes (Press et al.): a geometric sequence for the closest power of two, with the
 * interleaved extra slopes for other head counts, as in the paper's code and BLOOM.
 */
export function alibiSlopes(numHeads: number): number[] {
  const pow2 = (n: number) => {
    const start = 2 ** -(2 ** -(Math.log2(n) - 3));
    return Array.from({ length: n }, (_, i) => start * start ** i);
  };
  if (Number.isInteger(Math.log2(numHeads))) return pow2(numHeads);
  const closest = 2 ** Math.floor(Math.log2(numHeads));
  return [...pow2(closest), ...pow2(2 * closest).filter((_, i) => i % 2 === 0).slice(0, numHeads - closest)];
}

/** ALiBi bias (H, Tq, Tk): slope_h * (k - q), queries at positions offset.. offset+Tq. */
export function alibiBias(numHeads: number, Tq: number, Tk: number, opts: { offset?: number; backend?: Backend } = {}): Tensor {
  const slopes = alibiSlopes(numHeads);
  const off = opts.offset ?? Tk - Tq;
  const v = new Float32Array(numHeads * Tq * Tk);
  for (let h = 0; h < numHeads; h++) for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) v[(h * Tq + i) * Tk + j] = slopes[h] * (j - (i + off));
  return fromValues(v, [numHeads, Tq, Tk], { backend: opts.backend });
}

/** Learned absolute positions (GPT-2's wpe): a (maxPositions, dim) table looked up by position id. */
export class LearnedPositionalEmbedding extends Module<[positionIds: Tensor], Tensor> {
  constructor(readonly maxPositions: number, readonly dim: number, cfg: InitOptions & { std?: number } = {}) {
    super();
    this.registerParameter('weight', normal([maxPositions, dim], 0, cfg.std ?? 0.02, cfg));
  }
  forward(positionIds: Tensor): Tensor {
    return embedding(positionIds, this.getParameter('weight')!);
  }
}

