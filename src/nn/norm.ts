// Normalisation layers, composed from ops (their gradients come from the ops' rules).
import { KilnError, fmtShape } from '../core/errors.js';
import { record } from '../core/autograd.js';
import { fromValues } from '../core/ops/creation.js';
import { add, cast, mul, rsqrt, sub } from '../core/ops/pointwise.js';
import { mean, sum, variance } from '../core/ops/reduce.js';
import { clone, contiguous, reshape, slice } from '../core/ops/shape.js';
import { backendOf } from '../core/ops/util.js';
import { Tensor } from '../core/tensor.js';
import { normBwdCall, normFwdCall, type NormParams } from '../kernels/norm.js';
import { onesInit, zerosInit, type InitOptions } from './init.js';
import { Module } from './module.js';

/**
 * The fused kernels: y = (x - mean) * rstd * w' + b over the last D elements of each row, with
 * the input gradient from one kernel and dw, db from the saved (mean, rstd).
 */
function fusedNorm(op: string, x: Tensor, D: number, weight: Tensor | null, bias: Tensor | null, eps: number, layer: boolean, offset: boolean): Tensor {
  const be = backendOf(op, x, weight, bias);
  const rows = x.size / D;
  const fresh = (t: Tensor) => (t.isContiguous() && t.offset === 0 && t.dtype === 'f32' ? t : clone(cast(t, 'f32')));
  const xc = contiguous(cast(x, 'f32'));
  const w = weight ? fresh(weight) : null;
  const b = bias ? fresh(bias) : null;
  const dummy = () => fromValues([0], [1], { backend: be });
  const p: NormParams = { rows, D, eps, layer, offset, hasW: !!w, hasB: !!b };
  const y = Tensor.empty(be, x.shape, 'f32');
  const stats = Tensor.empty(be, [rows, 2], 'f32'); // (mean, rstd) per row
  if (rows) be.run(normFwdCall(p, xc, w ?? dummy(), b ?? dummy(), y, stats));
  return record(y, op, [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])], (g) => {
    const gc = fresh(g);
    const dx = Tensor.empty(be, x.shape, 'f32');
    if (rows) be.run(normBwdCall(p, xc, w ?? dummy(), gc, stats, dx));
    const g2 = reshape(gc, [rows, D]);
    const xhat = mul(sub(reshape(xc, [rows, D]), slice(stats, 1, 0, 1)), slice(stats, 1, 1, 2)); // (rows, D)
    const grads: (Tensor | null)[] = [dx];
    if (weight) grads.push(reshape(sum(mul(g2, xhat), 0), weight.shape));
    if (bias) grads.push(reshape(sum(g2, 0), bias.shape));
    return grads;
  });
}

/**
 * RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the last dim (Llama). With offset, the scale
 * is (1 + w) and w starts at 0 (Gemma). Shapes: x (..., D), w (D). fused (default) runs the
 * fused kernels; false composes ops (the reference).
 */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6, offset = false, fused = true): Tensor {
  const D = x.shape[x.ndim - 1];
  if (weight && (weight.ndim !== 1 || weight.shape[0] !== D)) throw new KilnError('shape', 'rmsNorm', `weight ${fmtShape(weight.shape)} does not match the last dim of ${fmtShape(x.shape)}`);
  if (fused) return fusedNorm('rmsNorm', x, D, weight, null, eps, false, offset);
  const y = mul(x, rsqrt(add(mean(mul(x, x), -1, { keepdim: true }), eps)));
  if (!weight) return y;
  return mul(y, offset ? add(weight, 1) : weight);
}

/** LayerNorm over the trailing dims of normalizedShape, population variance (torch). */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5, fused = true): Tensor {
  const k = normalizedShape.length;
  if (k === 0 || k > x.ndim || normalizedShape.some((d, i) => d !== x.shape[x.ndim - k + i])) {
    throw new KilnError('shape', 'layerNorm', `normalized shape ${fmtShape(normalizedShape)} is not the trailing shape of ${fmtShape(x.shape)}`);
  }
  for (const [n, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t && (t.ndim !== k || t.shape.some((d, i) => d !== normalizedShape[i]))) throw new KilnError('shape', 'layerNorm', `${n} ${fmtShape(t.shape)} does not match the normalized shape ${fmtShape(normalizedShape)}`);
  }
  if (fused) return fusedNorm('layerNorm', x, normalizedShape.reduce((a, b) => a * b, 1), weight, bias, eps, true, false);
  const axes = normalizedShape.map((_, i) => x.ndim - k + i);
  const mu = mean(x, axes, { keepdim: true });
  const v = variance(x, axes, { keepdim: true, correction: 0 });
  let y = mul(sub(x, mu), rsqrt(add(v, eps)));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

/** GroupNorm over (N, C, *): channels in numGroups groups, per-channel affine. */
export function groupNorm(x: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5, fused = true): Tensor {
  const [N, C] = x.shape;
  if (x.ndim < 2 || C % numGroups !== 0) throw new KilnError('shape', 'groupNorm', `input ${fmtShape(x.shape)} needs (N, C, ...) with C divisible by ${numGroups} groups`);
  const g = reshape(x, [N, numGroups, -1]); // (N, G, C/G * spatial)
  let y: Tensor;
  if (fused) {
    // each (sample, group) is a row of the fused LayerNorm kernel without affine
    y = reshape(fusedNorm('groupNorm', g, g.shape[2], null, null, eps, true, false), x.shape);
  } else {
    const mu = mean(g, -1, { keepdim: true });
    const v = variance(g, -1, { keepdim: true, correction: 0 });
    y = reshape(mul(sub(g, mu), rsqrt(add(v, eps))), x.shape);
  }
  const chan = [C, ...x.shape.slice(2).map(() => 1)]; // (C, 1, 1, ...) broadcasts over (N, C, ...)
  if (weight) y = mul(y, reshape(weight, chan));
  if (bias) y = add(y, reshape(bias, chan));
  return y;
}

export interface RMSNormConfig extends InitOptions {
  eps?: number;
  /** Gemma's (1 + w) form; w initialised to 0. */
  offset?: boolean;
}

export class RMSNorm extends Module<[x: Tensor], Tensor> {
  readonly eps: number;
  readonly offset: boolean;
  constructor(readonly dim: number, cfg: RMSNormConfig = {}) {
    super();
    this.eps = cfg.eps ?? 1e-6;
    this.offset = cfg.offset ?? false;
    this.registerParameter('weight', this.offset ? zerosInit([dim], cfg) : onesInit([dim], cfg));
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.getParameter('weight'), this.eps, this.offset);
  }
}

export interface LayerNormConfig extends InitOptions {
  eps?: number;
  elementwiseAffine?: boolean;
  bias?: boolean;
}

export class LayerNorm extends Module<[x: Tensor], Tensor> {
  readonly normalizedShape: number[];
  readonly eps: number;
  constructor(normalizedShape: number | readonly number[], cfg: LayerNormConfig = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = cfg.eps ?? 1e-5;
    const affine = cfg.elementwiseAffine ?? true;
    this.registerParameter('weight', affine ? onesInit(this.normalizedShape, cfg) : null);
    this.registerParameter('bias', affine && (cfg.bias ?? true) ? zerosInit(this.normalizedShape, cfg) : null);
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.getParameter('weight'), this.getParameter('bias'), this.eps);
  }
}

export class GroupNorm extends Module<[x: Tensor], Tensor> {
  readonly eps: number;
  constructor(readonly numGroups: number, readonly numChannels: number, cfg: LayerNormConfig = {}) {
    super();
    if (numChannels % numGroups !== 0) throw new KilnError('argument', 'GroupNorm', `${numChannels} channels do not split into ${numGroups} groups`);
    this.eps = cfg.eps ?? 1e-5;
    const affine = cfg.elementwiseAffine ?? true;
    this.registerParameter('weight', affine ? onesInit([numChannels], cfg) : null);
    this.registerParameter('bias', affine ? zerosInit([numChannels], cfg) : null);
  }
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.getParameter('weight'), this.getParameter('bias'), this.eps);
  }
}
