// Attention: the composed reference (matmul + softmax, any mask or bias), masks, and the
// attention module with MHA / GQA / MQA. Grouped heads never copy K and V: queries are viewed
// as (B, Hkv, G, Tq, D) and the matmul broadcasts each K/V head over its G query heads.
import { KilnError, fmtShape } from '../core/errors.js';
import { Generator, defaultGenerator, fromValues } from '../core/ops/creation.js';
import { matmul } from '../core/ops/matmul.js';
import { add, cast, eq, mul, where } from '../core/ops/pointwise.js';
import { softmax } from '../core/ops/reduce.js';
import { concat, reshape, slice, transpose, unsqueeze, writeSlice } from '../core/ops/shape.js';
import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../core/tensor.js';
import type { InitOptions } from './init.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import type { RotaryEmbedding } from './positional.js';
import { flashAttention } from './flash.js';
import { MAX_HEAD_DIM } from '../kernels/attention.js';

/** The most negative f32: masked scores use it (as transformers does), so a fully masked row gives uniform weights, not NaN. */
export const MASKED = -3.4028234663852886e38;

/** Inverted dropout: zeroes elements with probability p and scales the rest by 1 / (1 - p). */
export function dropout(x: Tensor, p: number, opts: { generator?: Generator; training?: boolean } = {}): Tensor {
  if (p < 0 || p >= 1) throw new KilnError('argument', 'dropout', `p must be in [0, 1), got ${p}`);
  if (p === 0 || opts.training === false) return x;
  const g = opts.generator ?? defaultGenerator;
  const keepScale = 1 / (1 - p);
  const m = fromValues(Float32Array.from({ length: x.size }, () => (g.random() < p ? 0 : keepScale)), x.shape, { backend: x.backend });
  return mul(x, m);
}

/** (Tq, Tk) keep-mask (1 = attend): causal with queries at the end of the keys, optionally a sliding window. */
export function causalMask(Tq: number, Tk: number, opts: { slidingWindow?: number; backend?: Backend } = {}): Tensor {
  const off = Tk - Tq;
  const w = opts.slidingWindow ?? Infinity;
  const v = new Float32Array(Tq * Tk);
  for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) v[i * Tk + j] = j <= i + off && i + off - j < w ? 1 : 0;
  return fromValues(v, [Tq, Tk], { backend: opts.backend });
}

/** (B, 1, 1, Tk) keep-mask from a (B, Tk) attention_mask of 1s (tokens) and 0s (padding). */
export const paddingMask = (attentionMask: Tensor): Tensor => unsqueeze(unsqueeze(cast(attentionMask, 'f32'), 1), 1);

/** (B, 1, T, T) keep-mask: tokens attend only within their own document (packed sequences). */
export function documentMask(docIds: Tensor): Tensor {
  const d = cast(docIds, 'f32');
  return unsqueeze(eq(unsqueeze(d, -1), unsqueeze(d, -2)), 1);
}

export interface SDPAOptions {
  /** keep-mask broadcastable to (B, H, Tq, Tk): nonzero attends */
  mask?: Tensor | null;
  /** additive score bias broadcastable to (B, H, Tq, Tk) (ALiBi, relative positions) */
  bias?: Tensor | null;
  isCausal?: boolean;
  slidingWindow?: number;
  /** default 1 / sqrt(headDim) */
  scale?: number;
  dropoutP?: number;
  generator?: Generator;
}

/**
 * softmax(q k^T * scale + bias, masked) v. Shapes: q (B, H, Tq, D), k (B, Hkv, Tk, D),
 * v (B, Hkv, Tk, Dv) with H a multiple of Hkv (GQA; Hkv = 1 is MQA) -> (B, H, Tq, Dv).
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: SDPAOptions = {}): Tensor {
  const [B, H, Tq, D] = q.shape;
  const [Bk, Hkv, Tk, Dk] = k.shape;
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4 || Bk !== B || Dk !== D || v.shape[0] !== B || v.shape[1] !== Hkv || v.shape[2] !== Tk) {
    throw new KilnError('shape', 'scaledDotProductAttention', `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} do not fit (B, H, T, D) with shared B and matching k/v`);
  }
  if (H % Hkv !== 0) throw new KilnError('shape', 'scaledDotProductAttention', `${H} query heads are not a multiple of ${Hkv} key/value heads`);
  const G = H / Hkv;
  const Dv = v.shape[3];
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const qg = reshape(q, [B, Hkv, G, Tq, D]); // (B, Hkv, G, Tq, D)
  const kt = unsqueeze(transpose(k), 2); // (B, Hkv, 1, D, Tk)
  let s = reshape(mul(matmul(qg, kt), scale), [B, H, Tq, Tk]); // (B, H, Tq, Tk)
  if (opts.bias) s = add(s, opts.bias);
  let keepMask = opts.mask ?? null;
  if (opts.isCausal || opts.slidingWindow) {
    const c = causalMask(Tq, Tk, { slidingWindow: opts.slidingWindow, backend: q.backend });
    keepMask = keepMask ? mul(keepMask, c) : c;
  }
  if (keepMask) s = where(keepMask, s, MASKED);
  let p = softmax(s, -1);
  if (opts.dropoutP) p = dropout(p, opts.dropoutP, { generator: opts.generator });
  const o = matmul(reshape(p, [B, Hkv, G, Tq, Tk]), unsqueeze(v, 2)); // (B, Hkv, G, Tq, Dv)
  return reshape(o, [B, H, Tq, Dv]);
}

export interface AttentionConfig extends InitOptions {
  hiddenSize: number;
  numHeads: number;
  /** default numHeads (MHA); fewer is GQA, 1 is MQA */
  numKVHeads?: number;
  /** default hiddenSize / numHeads; may differ (Gemma) */
  headDim?: number;
  /** bias on q, k, v projections (Qwen2) */
  qkvBias?: boolean;
  oBias?: boolean;
  slidingWindow?: number;
  attentionDropout?: number;
  /** score scale, default 1 / sqrt(headDim) */
  scale?: number;
  /** tanh soft-capping of attention scores (Gemma 2) */
  softcap?: number;
  /**
   * Use the fused kernels (default true) whenever the inputs allow: no dense mask or bias
   * tensor; otherwise the composed path runs. Dropout runs inside the fused kernels.
   */
  fused?: boolean;
}

/**
 * Keys and values of the tokens seen so far. Grown by concatenation: (B, Hkv, Tpast, D). Or
 * pre-allocated (generation): (B, Hkv, capacity, D) written in place, `length` rows live.
 */
export interface KVCache {
  key: Tensor;
  value: Tensor;
  length?: number;
}

export interface AttentionInputs {
  /** (B, T) or (T) i32 positions for RoPE */
  positionIds?: Tensor;
  rope?: RotaryEmbedding | null;
  /** (B, Tk) 1 for tokens, 0 for padding keys */
  keyPadding?: Tensor | null;
  /** (B, T) document ids of packed sequences: tokens attend within their document */
  docIds?: Tensor | null;
  /** any other keep-mask broadcastable to (B, H, Tq, Tk) (composed path) */
  mask?: Tensor | null;
  bias?: Tensor | null;
  /** causal masking (default true) */
  causal?: boolean;
  past?: KVCache | null;
}

/** What attention produces: its output and the keys and values to pass as `past` next time. */
export interface AttentionOutput {
  /** (B, T, hidden) */
  output: Tensor;
  /** (B, Hkv, Tpast + T, D) */
  cache: KVCache;
}

/**
 * Multi-head attention with q_proj, k_proj, v_proj, o_proj as in Llama-family checkpoints.
 * Shapes: x (B, T, hidden) -> (B, T, hidden); the returned cache holds (B, Hkv, Tpast + T, D).
 */
export class Attention extends Module<[x: Tensor, inp?: AttentionInputs], AttentionOutput> {
  readonly numHeads: number;
  readonly numKVHeads: number;
  readonly headDim: number;
  constructor(readonly cfg: AttentionConfig) {
    super();
    this.numHeads = cfg.numHeads;
    this.numKVHeads = cfg.numKVHeads ?? cfg.numHeads;
    this.headDim = cfg.headDim ?? cfg.hiddenSize / cfg.numHeads;
    if (!Number.isInteger(this.headDim) || this.headDim <= 0) {
      throw new KilnError('argument', 'Attention', `hidden size ${cfg.hiddenSize} does not split into ${cfg.numHeads} heads; set headDim`);
    }
    if (this.numHeads % this.numKVHeads !== 0) {
      throw new KilnError('argument', 'Attention', `numHeads ${this.numHeads} is not divisible by numKVHeads ${this.numKVHeads}`);
    }
    const lin = (i: number, o: number, bias: boolean) => new Linear(i, o, { ...cfg, bias });
    const qkvBias = cfg.qkvBias ?? false;
    this.registerModule('q_proj', lin(cfg.hiddenSize, this.numHeads * this.headDim, qkvBias));
    this.registerModule('k_proj', lin(cfg.hiddenSize, this.numKVHeads * this.headDim, qkvBias));
    this.registerModule('v_proj', lin(cfg.hiddenSize, this.numKVHeads * this.headDim, qkvBias));
    this.registerModule('o_proj', lin(this.numHeads * this.headDim, cfg.hiddenSize, cfg.oBias ?? false));
  }

  forward(x: Tensor, inp: AttentionInputs = {}): AttentionOutput {
    const [B, T] = x.shape;
    const heads = (t: Tensor, h: number) => transpose(reshape(t, [B, T, h, this.headDim]), 1, 2); // (B, h, T, D)
    let q = heads(this.child<Linear>('q_proj').call(x), this.numHeads);
    let k = heads(this.child<Linear>('k_proj').call(x), this.numKVHeads);
    let v = heads(this.child<Linear>('v_proj').call(x), this.numKVHeads);
    if (inp.rope) {
      if (!inp.positionIds) throw new KilnError('argument', 'Attention', 'RoPE needs positionIds');
      q = inp.rope.apply(q, inp.positionIds);
      k = inp.rope.apply(k, inp.positionIds);
    }
    const dropoutP = this.training ? this.cfg.attentionDropout ?? 0 : 0;
    const isCausal = inp.causal ?? true;
    const fused = (this.cfg.fused ?? true) && !inp.mask && !inp.bias && this.headDim <= MAX_HEAD_DIM;
    const past = inp.past;
    let cache: KVCache;
    let kvLength: number | undefined;
    if (past && past.length !== undefined) {
      // pre-allocated: this step's rows are written in place; attention reads the live rows
      const cap = past.key.shape[2];
      if (past.length + T > cap) throw new KilnError('shape', 'Attention', `the KV cache holds ${cap} positions; ${past.length} are used and ${T} more do not fit`);
      writeSlice(past.key, k, 2, past.length);
      writeSlice(past.value, v, 2, past.length);
      kvLength = past.length + T;
      cache = { key: past.key, value: past.value, length: kvLength };
      if (fused) {
        k = past.key;
        v = past.value;
      } else {
        k = slice(past.key, 2, 0, kvLength);
        v = slice(past.value, 2, 0, kvLength);
      }
    } else {
      if (past) {
        k = concat([past.key, k], 2);
        v = concat([past.value, v], 2);
      }
      cache = { key: k, value: v };
    }
    let o: Tensor;
    if (fused) {
      o = flashAttention(q, k, v, { isCausal, slidingWindow: this.cfg.slidingWindow, scale: this.cfg.scale, softcap: this.cfg.softcap, keyPadding: inp.keyPadding, docIds: inp.docIds, dropoutP, kvLength });
    } else {
      if (this.cfg.softcap) throw new KilnError('argument', 'Attention', 'soft-capping needs the fused path (no dense mask or bias)');
      let mask = inp.mask ?? null;
      const extra = [inp.keyPadding ? paddingMask(inp.keyPadding) : null, inp.docIds ? documentMask(inp.docIds) : null];
      for (const m of extra) if (m) mask = mask ? mul(mask, m) : m;
      o = scaledDotProductAttention(q, k, v, { mask, bias: inp.bias, isCausal, slidingWindow: this.cfg.slidingWindow, scale: this.cfg.scale, dropoutP });
    }
    const merged = reshape(transpose(o, 1, 2), [B, T, this.numHeads * this.headDim]); // (B, T, H*D)
    return { output: this.child<Linear>('o_proj').call(merged), cache };
  }
}

