// FlexAttention-style programmable attention: a score modifier (score, b, h, q_idx, kv_idx) and a
// mask modifier (b, h, q_idx, kv_idx), each written once as a WGSL expression (compiled into
// the fused kernels, one cached variant per snippet) and once in JavaScript (the twin the wasm
// kernels call back). Gradients flow through the score modifier by its derivative; blocks the
// mask rules out entirely are skipped, from a block mask computed once per shape.
import { KilnError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { FA_BLOCK } from '../../assembly/layout.js';
import { registerSnippets } from '../kernels/attention.js';
import { flashAttention, type FlexInternals } from './flash.js';
import { alibiSlopes } from './positional.js';
import { isGradEnabled } from '../core/autograd.js';
import { fromValues } from '../core/ops/creation.js';
import { indexSelect } from '../core/ops/index.js';
import { mul } from '../core/ops/pointwise.js';
import { reshape } from '../core/ops/shape.js';
import { documentMask, scaledDotProductAttention } from './attention.js';


export interface ModContext {
  /** per-head (or table) parameters, readable as headParam(i) in WGSL */
  headParams: Float32Array;
}

export interface ScoreMod {
  name: string;
  /** f32 WGSL expression of score, b, h, q_idx, kv_idx (u32); headParam(i) reads headParams */
  wgsl: string;
  /** d/dscore in WGSL (default "1.0": additive modifiers) */
  wgslGrad?: string;
  js: (score: number, b: number, h: number, q: number, kv: number, ctx: ModContext) => number;
  jsGrad?: (score: number, b: number, h: number, q: number, kv: number, ctx: ModContext) => number;
  headParams?: ArrayLike<number>;
  /**
   * A trainable table behind an additive modifier: bias(h, q, kv) = table[index(h, q, kv)]. When
   * it requires grad, flexAttention takes the composed path so the table gets its gradient.
   */
  learned?: { table: Tensor; index: (h: number, q: number, kv: number) => number };
}

export interface MaskMod {
  name: string;
  /** bool WGSL expression of b, h, q_idx, kv_idx (u32) */
  wgsl: string;
  js: (b: number, h: number, q: number, kv: number) => boolean;
  /** the mask depends on b or h: no block mask is precomputed */
  perBatchOrHead?: boolean;
  /** document ids (B, T): handled by the kernels' segment path */
  docIds?: Tensor;
}

export const flex = {
  causal(offset = 0): MaskMod {
    return { name: `causal${offset}`, wgsl: `kv_idx <= q_idx + ${offset}u`, js: (_b, _h, q, kv) => kv <= q + offset };
  },
  slidingWindow(window: number): MaskMod {
    if (!Number.isInteger(window) || window < 1) throw new KilnError('argument', 'flex.slidingWindow', `window must be a positive integer, got ${window}`);
    return { name: `sliding${window}`, wgsl: `kv_idx <= q_idx && q_idx < kv_idx + ${window}u`, js: (_b, _h, q, kv) => kv <= q && q < kv + window };
  },
  /** bidirectional over the first prefixLength tokens, causal after (PrefixLM) */
  prefixLM(prefixLength: number): MaskMod {
    return { name: `prefix${prefixLength}`, wgsl: `kv_idx <= q_idx || kv_idx < ${prefixLength}u`, js: (_b, _h, q, kv) => kv <= q || kv < prefixLength };
  },
  /** packed sequences: tokens attend within their document (docIds (B, T) i32) */
  document(docIds: Tensor): MaskMod {
    return { name: 'document', wgsl: 'true', js: () => true, docIds };
  },
  and(a: MaskMod, b: MaskMod): MaskMod {
    if (a.docIds && b.docIds) throw new KilnError('argument', 'flex.and', 'only one document mask per call');
    return {
      name: `(${a.name}&${b.name})`, wgsl: `(${a.wgsl}) && (${b.wgsl})`, js: (B, h, q, kv) => a.js(B, h, q, kv) && b.js(B, h, q, kv),
      perBatchOrHead: a.perBatchOrHead || b.perBatchOrHead, docIds: a.docIds ?? b.docIds,
    };
  },
  /** ALiBi: score + slope_h * (kv - q), the paper's slopes */
  alibi(numHeads: number): ScoreMod {
    return {
      name: 'alibi', wgsl: 'score + headParam(h) * (f32(kv_idx) - f32(q_idx))',
      js: (s, _b, h, q, kv, c) => s + c.headParams[h] * (kv - q), headParams: alibiSlopes(numHeads),
    };
  },
  /** tanh soft-capping: cap * tanh(score / cap) (Gemma 2, Grok) */
  softcap(cap: number): ScoreMod {
    if (!(cap > 0)) throw new KilnError('argument', 'flex.softcap', `cap must be > 0, got ${cap}`);
    const c = String(cap.toPrecision(9)).includes('.') || String(cap.toPrecision(9)).includes('e') ? cap.toPrecision(9) : `${cap}.0`;
    return {
      name: `softcap${cap}`,
      wgsl: `${c} * tanh(clamp(score / ${c}, -15.0, 15.0))`,
      wgslGrad: `1.0 - tanh(clamp(score / ${c}, -15.0, 15.0)) * tanh(clamp(score / ${c}, -15.0, 15.0))`,
      js: (s) => cap * Math.tanh(s / cap),
      jsGrad: (s) => 1 - Math.tanh(s / cap) ** 2,
    };
  },
  /**
   * A fixed relative position bias: score + table[h][clamp(kv - q, -maxDistance, maxDistance)]
   * with table (H, 2 * maxDistance + 1). The table is a constant here (no gradient to it).
   */
  relativePositionBias(table: ArrayLike<number> | Tensor, numHeads: number, maxDistance: number): ScoreMod {
    const W = 2 * maxDistance + 1;
    const learned = isTensor(table) ? table : null;
    const n = learned ? learned.size : (table as ArrayLike<number>).length;
    if (n !== numHeads * W) throw new KilnError('shape', 'flex.relativePositionBias', `table has ${n} values, expected ${numHeads} x ${W}`);
    const index = (h: number, q: number, kv: number) => h * W + Math.min(Math.max(kv - q, -maxDistance), maxDistance) + maxDistance;
    if (learned) {
      // values for the fused path are read when the call is made (the table may have trained)
      return { ...relposMod(W, maxDistance), learned: { table: learned, index } };
    }
    return { ...relposMod(W, maxDistance), headParams: table as ArrayLike<number> };
  },
};


/** A built-in modifier by name (for configs): a typed error lists the known ones. */
export function builtinMod(name: string, ...args: unknown[]): ScoreMod | MaskMod {
  const f = (flex as unknown as Record<string, (...a: unknown[]) => ScoreMod | MaskMod>)[name];
  if (!f || name === 'and') {
    const known = Object.keys(flex).filter((n) => n !== 'and').join(', ');
    throw new KilnError('argument', 'flexAttention', `unknown built-in modifier '${name}' (known: ${known})`);
  }
  return f(...args);
}


const isTensor = (t: unknown): t is Tensor => typeof (t as Tensor)?.toArray === 'function';

function relposMod(W: number, maxDistance: number): ScoreMod {
  return {
    name: `relpos${maxDistance}`,
    wgsl: `score + headParam(h * ${W}u + u32(clamp(i32(kv_idx) - i32(q_idx), -${maxDistance}, ${maxDistance}) + ${maxDistance}))`,
    js: (s, _b, h, q, kv, c) => s + c.headParams[h * W + Math.min(Math.max(kv - q, -maxDistance), maxDistance) + maxDistance],
  };
}

/** The composed path for a modifier with a trainable table: dense bias and keep-mask, autograd throughout. */
function composedFlex(q: Tensor, k: Tensor, v: Tensor, o: FlexOptions, sm: ScoreMod): Tensor {
  const [B, H, Tq] = q.shape;
  const Tk = k.shape[2];
  const be = q.backend;
  const idx = new Int32Array(H * Tq * Tk);
  for (let h = 0; h < H; h++) for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) idx[(h * Tq + i) * Tk + j] = sm.learned!.index(h, i, j);
  const bias = reshape(indexSelect(reshape(sm.learned!.table, [-1]), 0, fromValues(idx, [idx.length], { backend: be, dtype: 'i32' })), [H, Tq, Tk]);
  let mask: Tensor | null = null;
  const mm = o.maskMod;
  if (mm && mm.wgsl !== 'true') {
    const keep = new Float32Array(B * H * Tq * Tk);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) keep[((b * H + h) * Tq + i) * Tk + j] = mm.js(b, h, i, j) ? 1 : 0;
    mask = fromValues(keep, [B, H, Tq, Tk], { backend: be });
  }
  if (mm?.docIds) {
    const dm = documentMask(mm.docIds);
    mask = mask ? mul(mask, dm) : dm;
  }
  return scaledDotProductAttention(q, k, v, { bias, mask, scale: o.scale });
}

const blockMasks = new Map<string, Int32Array>();

/** 1 for each (query block, key block) holding at least one visible pair. Cached per mask and shape. */
function blockMask(m: MaskMod, Tq: number, Tk: number): Int32Array {
  const key = `${m.wgsl}|${Tq}|${Tk}`;
  let bm = blockMasks.get(key);
  if (bm) return bm;
  const nQB = Math.ceil(Tq / FA_BLOCK);
  const nKB = Math.ceil(Tk / FA_BLOCK);
  bm = new Int32Array(nQB * nKB);
  for (let qb = 0; qb < nQB; qb++) {
    for (let kb = 0; kb < nKB; kb++) {
      let live = 0;
      for (let q = qb * FA_BLOCK; q < Math.min(Tq, (qb + 1) * FA_BLOCK) && !live; q++) {
        for (let kv = kb * FA_BLOCK; kv < Math.min(Tk, (kb + 1) * FA_BLOCK); kv++) {
          if (m.js(0, 0, q, kv)) { live = 1; break; }
        }
      }
      bm[qb * nKB + kb] = live;
    }
  }
  if (blockMasks.size > 64) blockMasks.clear();
  blockMasks.set(key, bm);
  return bm;
}

export interface FlexOptions {
  scoreMod?: ScoreMod | null;
  maskMod?: MaskMod | null;
  /** default 1 / sqrt(headDim) */
  scale?: number;
}

/**
 * Attention with programmable scores and masks on the fused kernels (torch's flex_attention).
 * Shapes as flashAttention: q (B, H, Tq, D), k and v (B, Hkv, Tk, D) -> (B, H, Tq, D).
 */
export function flexAttention(q: Tensor, k: Tensor, v: Tensor, o: FlexOptions = {}): Tensor {
  let sm = o.scoreMod ?? null;
  if (sm?.learned) {
    // a table that trains, or one only the GPU holds, takes the composed path; a frozen table on
    // wasm goes to the fused kernels as head parameters (read without waiting)
    const t = sm.learned.table;
    if ((t.requiresGrad && isGradEnabled()) || !t.backend.readSync) return composedFlex(q, k, v, o, sm);
    sm = { ...sm, headParams: t.toArraySync() as Float32Array };
  }
  const mm = o.maskMod ?? null;
  const codeMask = mm && mm.wgsl !== 'true' ? mm : null;
  const key = registerSnippets({ scoreMod: sm?.wgsl, scoreModGrad: sm?.wgslGrad, maskMod: codeMask?.wgsl });
  const ctx: ModContext = { headParams: Float32Array.from(sm?.headParams ?? []) };
  const flexArgs: FlexInternals = {
    key,
    scoreMod: sm !== null,
    maskMod: codeMask !== null,
    blockMask: codeMask && !codeMask.perBatchOrHead ? blockMask(codeMask, q.shape[2], k.shape[2]) : null,
    headParams: ctx.headParams.length ? ctx.headParams : null,
    host: {
      scoreMod: sm ? (s, b, h, qi, kv) => sm.js(s, b, h, qi, kv, ctx) : (s) => s,
      scoreModGrad: sm?.jsGrad ? (s, b, h, qi, kv) => sm.jsGrad!(s, b, h, qi, kv, ctx) : () => 1,
      maskMod: codeMask ? (b, h, qi, kv) => codeMask.js(b, h, qi, kv) : () => true,
    },
  };
  return flashAttention(q, k, v, { scale: o.scale, docIds: mm?.docIds ?? null }, flexArgs);
}
