// The fused attention op (flash-style kernels in src/kernels/attention.ts) with its backward.
import { isGradEnabled, record } from '../core/autograd.js';
import { KilnError, fmtShape } from '../core/errors.js';
import { defaultGenerator, fromValues, zeros as zerosOf } from '../core/ops/creation.js';
import { cast, mul, where } from '../core/ops/pointwise.js';
import { sum } from '../core/ops/reduce.js';
import { clone, concat, contiguous, reshape, stack } from '../core/ops/shape.js';
import { backendOf } from '../core/ops/util.js';
import { Tensor } from '../core/tensor.js';
import { MAX_HEAD_DIM, flashBwdCpuCall, flashDkvCall, flashDqCall, flashFwdCall, type FlashParams } from '../kernels/attention.js';
import { FA_BLOCK } from '../../assembly/layout.js';
import { WasmBackend, type HostFunctions } from '../backend/wasm/wasm-backend.js';

export interface FlashOptions {
  isCausal?: boolean;
  slidingWindow?: number;
  /** default 1 / sqrt(headDim) */
  scale?: number;
  /** tanh soft-capping of scores: cap * tanh(s / cap) (Gemma 2) */
  softcap?: number;
  /** (B, Tk) 1 for tokens, 0 for padding keys */
  keyPadding?: Tensor | null;
  /** (B, T) document ids of packed sequences (Tq = Tk): tokens attend within their document */
  docIds?: Tensor | null;
  /** wasm: run the GPU-shaped dq and dk/dv twins instead of the single-pass backward (tests) */
  splitBackward?: boolean;
  /** attention dropout probability: the mask is a hash of (seed, b, h, q, kv), regenerated in backward */
  dropoutP?: number;
  /** the dropout stream's seed (default: drawn from the default generator, so manualSeed reproduces it) */
  seed?: number;
  /** inference with a pre-allocated KV cache: k and v are (B, Hkv, capacity, D), the first kvLength rows live */
  kvLength?: number;
}

/** The dropout multiplier flashAttention applies to pair (b, h, q, kv): the same hash as the kernels. */
export function flashDropMul(p: number, seed: number, H: number, Tq: number, Tk: number, b: number, h: number, q: number, kv: number): number {
  let x = (Math.imul(((b * H + h) * Tq + q) * Tk + kv, 0x9e3779b1) + (seed >>> 0)) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x = (x ^ (x >>> 13)) >>> 0;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return x < Math.min(0xffffffff, Math.round(p * 2 ** 32)) ? 0 : 1 / (1 - p);
}

/** Segment ids (B*Tq then B*Tk, i32): a key is visible when its id equals the query's and is >= 0. */
function segments(B: number, Tq: number, Tk: number, o: FlashOptions, be: Tensor['backend']): Tensor | null {
  if (!o.keyPadding && !o.docIds) return null;
  if (o.docIds && (o.docIds.shape[0] !== B || o.docIds.shape[1] !== Tq || Tq !== Tk)) {
    throw new KilnError('shape', 'flashAttention', `docIds ${fmtShape(o.docIds.shape)} must be (B, T) = (${B}, ${Tq}) with Tq = Tk`);
  }
  if (o.keyPadding && (o.keyPadding.shape[0] !== B || o.keyPadding.shape[1] !== Tk)) {
    throw new KilnError('shape', 'flashAttention', `keyPadding ${fmtShape(o.keyPadding.shape)} must be (B, Tk) = (${B}, ${Tk})`);
  }
  const zeros = (n: number) => zerosOf([B, n / B], { backend: be }); // cleared on the device, not uploaded (decoding calls this per token)
  const sq = o.docIds ? cast(o.docIds, 'f32') : zeros(B * Tq);
  let sk = o.docIds ? cast(o.docIds, 'f32') : zeros(B * Tk);
  if (o.keyPadding) sk = where(o.keyPadding, sk, -1);
  return cast(concat([reshape(sq, [B * Tq]), reshape(sk, [B * Tk])], 0), 'i32');
}

/** What a FlexAttention call adds to the fused kernels (see nn/flex.ts). */
export interface FlexInternals {
  key: string;
  scoreMod: boolean;
  maskMod: boolean;
  /** (nQB * nKB) 1/0 per (query block, key block), or null */
  blockMask: Int32Array | null;
  headParams: Float32Array | null;
  host: HostFunctions;
}

/**
 * softmax(q k^T * scale) v by fused kernels that never hold a (Tq, Tk) matrix: memory grows
 * linearly in T. Shapes: q (B, H, Tq, D), k and v (B, Hkv, Tk, D), H a multiple of Hkv (GQA,
 * MQA) -> (B, H, Tq, D). Queries sit at the end of the keys (KV cache: Tq <= Tk). A query row
 * that sees no key gets zeros (and no gradient).
 */
export function flashAttention(q: Tensor, k: Tensor, v: Tensor, o: FlashOptions = {}, flex?: FlexInternals): Tensor {
  const be = backendOf('flashAttention', q, k, v);
  const [B, H, Tq, D] = q.shape;
  const [, Hkv, cap] = k.shape;
  // a pre-allocated KV cache: k and v hold cap rows per head, the first kvLength of them live
  const Tk = o.kvLength ?? cap;
  if (o.kvLength !== undefined) {
    if (!(Number.isInteger(o.kvLength) && o.kvLength >= 0 && o.kvLength <= cap)) throw new KilnError('shape', 'flashAttention', `kvLength ${o.kvLength} must be within the cache's ${cap} rows`);
    if (isGradEnabled() && (k.requiresGrad || v.requiresGrad || q.requiresGrad)) throw new KilnError('grad', 'flashAttention', 'a pre-allocated KV cache (kvLength) is for inference: call it under noGrad');
    if (!k.isContiguous() || !v.isContiguous()) throw new KilnError('shape', 'flashAttention', 'a pre-allocated KV cache must be contiguous (B, Hkv, capacity, D)');
  }
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4 || k.shape[0] !== B || k.shape[3] !== D || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new KilnError('shape', 'flashAttention', `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} must be (B, H, Tq, D) and (B, Hkv, Tk, D) alike`);
  }
  if (H % Hkv !== 0) throw new KilnError('shape', 'flashAttention', `${H} query heads are not a multiple of ${Hkv} key/value heads`);
  if (D > MAX_HEAD_DIM) throw new KilnError('shape', 'flashAttention', `head dim ${D} exceeds the fused kernel's ${MAX_HEAD_DIM}; use scaledDotProductAttention`);
  if (Tq > Tk) throw new KilnError('shape', 'flashAttention', `more queries (${Tq}) than keys (${Tk})`);
  if (o.dropoutP !== undefined && !(o.dropoutP >= 0 && o.dropoutP < 1)) throw new KilnError('argument', 'flashAttention', `dropoutP must be in [0, 1), got ${o.dropoutP}`);
  const seg = segments(B, Tq, Tk, o, be);
  // aux (i32): segment ids, then the block mask, then the head parameters' f32 bits
  const segLen = seg ? seg.size : 0;
  const bmLen = flex?.blockMask?.length ?? 0;
  const parts: Tensor[] = [];
  if (seg) parts.push(seg);
  if (flex?.blockMask) parts.push(fromValues(flex.blockMask, [bmLen], { backend: be, dtype: 'i32' }));
  if (flex?.headParams) parts.push(fromValues(new Int32Array(flex.headParams.buffer, flex.headParams.byteOffset, flex.headParams.length), [flex.headParams.length], { backend: be, dtype: 'i32' }));
  const aux = parts.length === 0 ? fromValues(new Int32Array(1), [1], { backend: be, dtype: 'i32' }) : parts.length === 1 ? parts[0] : concat(parts, 0);
  const p: FlashParams = {
    B, H, Hkv, Tq, Tk, D,
    scale: o.scale ?? 1 / Math.sqrt(D), causal: o.isCausal ?? false, segments: seg !== null,
    window: o.slidingWindow ?? 0, softcap: o.softcap ?? 0, kvCap: o.kvLength !== undefined ? cap : 0,
    dropout: o.dropoutP ? { p: o.dropoutP, seed: o.seed ?? defaultGenerator.nextU32() } : undefined,
    flex: flex && {
      key: flex.key, scoreMod: flex.scoreMod, maskMod: flex.maskMod, blockMask: bmLen > 0,
      offBM: segLen, offHP: segLen + bmLen, nKB: Math.ceil(Tk / FA_BLOCK), params: [],
    },
  };
  const setHost = () => {
    if (flex && be instanceof WasmBackend) be.host = flex.host;
  };
  const qc = contiguous(cast(q, 'f32'));
  const kc = contiguous(cast(k, 'f32'));
  const vc = contiguous(cast(v, 'f32'));
  const out = Tensor.empty(be, [B, H, Tq, D], 'f32');
  const lse = Tensor.empty(be, [B, H, Tq], 'f32');
  setHost();
  if (out.size) be.run(flashFwdCall(p, qc, kc, vc, aux, out, lse));
  return record(out, 'flashAttention', [q, k, v], (g) => {
    const dO = g.isContiguous() && g.offset === 0 ? g : clone(g); // the kernels read dO from element 0
    const stats = contiguous(stack([lse, sum(mul(dO, out), -1)], -1)); // (B, H, Tq, 2): lse, rowsum(dO * O)
    const dq = Tensor.empty(be, [B, H, Tq, D], 'f32');
    const dk = Tensor.empty(be, [B, Hkv, Tk, D], 'f32');
    const dv = Tensor.empty(be, [B, Hkv, Tk, D], 'f32');
    setHost();
    if (be.name === 'wasm' && !o.splitBackward) {
      if (dq.size) be.run(flashBwdCpuCall(p, qc, kc, vc, aux, dO, stats, dq, dk, dv));
    } else {
      if (dq.size) be.run(flashDqCall(p, qc, kc, vc, aux, dO, stats, dq));
      if (dk.size) be.run(flashDkvCall(p, qc, kc, vc, aux, dO, stats, dk, dv));
    }
    return [dq, dk, dv];
  });
}
