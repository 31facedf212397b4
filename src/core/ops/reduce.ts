// Reductions over any axes, softmax and log-softmax. The reduced axes are moved last (a copy
// only when the layout needs one) and a row kernel reduces (rows, R).
import { pointwiseCall } from '../../kernels/pointwise.js';
import { reduceCall, softmaxCall, type ReduceOp } from '../../kernels/reduce.js';
import { cumsumCall } from '../../kernels/scan.js';
import { record } from '../autograd.js';
import { KilnError, fmtShape } from '../errors.js';
import { normAxes, normAxis, numel, sameShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { cast, div, eq, exp, mul, mulScalar, sqrt, sub } from './pointwise.js';
import { contiguous, expand, permute, reshape } from './shape.js';
import { backendOf, disposeTemps } from './util.js';

export interface ReduceOptions {
  keepdim?: boolean;
}

/** Runs a row reduction over `axes` (no autograd); returns the keepdim-shaped result. */
function reduceRaw(op: ReduceOp, x: Tensor, axes: number[]): Tensor {
  const b = backendOf(op, x);
  const xf = cast(x, 'f32');
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const R = numel(axes.map((a) => x.shape[a]));
  const rows = numel(kept);
  const out = Tensor.empty(b, kept, op === 'argmax' || op === 'argmin' ? 'i32' : 'f32');
  if (rows === 0) return out;
  if (R === 0) {
    if (op !== 'sum') throw new KilnError('shape', op, `cannot reduce over an empty dimension of shape ${fmtShape(x.shape)}`);
    b.run(pointwiseCall('fill', out, [], 0, 0, b.ctx)); // an empty sum is 0
    return out;
  }
  const rest = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const perm = permute(xf, [...rest, ...axes]);
  const rows2d = contiguous(perm);
  b.run(reduceCall(op, rows2d, out, rows, R));
  disposeTemps([x], [xf, perm, rows2d]);
  return out;
}

const squeezeTo = (t: Tensor, x: Tensor, axes: number[], keepdim: boolean): Tensor =>
  keepdim ? t : reshape(t, x.shape.filter((_, i) => !axes.includes(i)));

/** Sum over axes (all when omitted). */
export function sum(x: Tensor, axes?: number | number[], opts: ReduceOptions = {}): Tensor {
  const ax = normAxes('sum', axes, x.ndim);
  const k = record(reduceRaw('sum', x, ax), 'sum', [x], (g) => [expand(g, x.shape)]);
  return squeezeTo(k, x, ax, opts.keepdim ?? false);
}

export function mean(x: Tensor, axes?: number | number[], opts: ReduceOptions = {}): Tensor {
  const ax = normAxes('mean', axes, x.ndim);
  const n = numel(ax.map((a) => x.shape[a]));
  return mulScalar(sum(x, ax, opts), 1 / n);
}

function extreme(op: 'max' | 'min', x: Tensor, axes: number | number[] | undefined, opts: ReduceOptions): Tensor {
  const ax = normAxes(op, axes, x.ndim);
  const k = reduceRaw(op, x, ax);
  // the gradient is shared evenly among tied extremes (torch.amax / amin)
  record(k, op, [x], (g) => {
    const mask = eq(x, k);
    const count = reduceRaw('sum', mask, ax);
    return [mul(mask, div(g, count))];
  });
  return squeezeTo(k, x, ax, opts.keepdim ?? false);
}
export const max = (x: Tensor, axes?: number | number[], opts: ReduceOptions = {}): Tensor => extreme('max', x, axes, opts);
export const min = (x: Tensor, axes?: number | number[], opts: ReduceOptions = {}): Tensor => extreme('min', x, axes, opts);

/** Index of the largest value along one axis (i32; the first on ties). */
export function argmax(x: Tensor, axis = -1, opts: ReduceOptions = {}): Tensor {
  const a = normAxis('argmax', axis, x.ndim);
  return squeezeTo(reduceRaw('argmax', x, [a]), x, [a], opts.keepdim ?? false);
}
export function argmin(x: Tensor, axis = -1, opts: ReduceOptions = {}): Tensor {
  const a = normAxis('argmin', axis, x.ndim);
  return squeezeTo(reduceRaw('argmin', x, [a]), x, [a], opts.keepdim ?? false);
}

export function logsumexp(x: Tensor, axes?: number | number[], opts: ReduceOptions = {}): Tensor {
  const ax = normAxes('logsumexp', axes, x.ndim);
  const k = reduceRaw('logsumexp', x, ax);
  record(k, 'logsumexp', [x], (g) => [mul(g, exp(sub(x, k)))]);
  return squeezeTo(k, x, ax, opts.keepdim ?? false);
}

export interface VarOptions extends ReduceOptions {
  /** Bessel's correction: 1 gives the unbiased estimate (torch's default), 0 the population one. */
  correction?: number;
}

/** Variance over axes, composed from mean (so its gradient comes for free). */
export function variance(x: Tensor, axes?: number | number[], opts: VarOptions = {}): Tensor {
  const ax = normAxes('var', axes, x.ndim);
  const n = numel(ax.map((a) => x.shape[a]));
  const dev = sub(x, mean(x, ax, { keepdim: true }));
  return mulScalar(sum(mul(dev, dev), ax, opts), 1 / Math.max(n - (opts.correction ?? 1), 0));
}

export const std = (x: Tensor, axes?: number | number[], opts: VarOptions = {}): Tensor =>
  sqrt(variance(x, axes, opts));

function softmaxRaw(log: boolean, x: Tensor, axis: number): Tensor {
  const a = normAxis(log ? 'logSoftmax' : 'softmax', axis, x.ndim);
  const b = backendOf('softmax', x);
  const xf = cast(x, 'f32');
  const last = a === x.ndim - 1;
  const order = [...x.shape.keys()].filter((i) => i !== a).concat(a);
  const perm = last ? xf : permute(xf, order);
  const rows2d = contiguous(perm);
  const R = x.shape[a];
  const out = Tensor.empty(b, rows2d.shape, 'f32');
  if (out.size) b.run(softmaxCall(log, rows2d, out, out.size / R, R));
  disposeTemps([x], [xf, perm, rows2d]);
  if (last) return out;
  const back = permute(out, order.map((_, i) => order.indexOf(i)));
  const y = contiguous(back);
  disposeTemps([y], [out, back]);
  return y;
}

/** softmax along `axis`: backward dx = y * (g - sum(g * y)). */
export function softmax(x: Tensor, axis = -1): Tensor {
  const y = softmaxRaw(false, x, axis);
  return record(y, 'softmax', [x], (g) => {
    const gy = mul(g, y);
    return [sub(gy, mul(y, sum(gy, axis, { keepdim: true })))];
  });
}

/** log-softmax along `axis`: backward dx = g - softmax * sum(g). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const y = softmaxRaw(true, x, axis);
  return record(y, 'logSoftmax', [x], (g) => [sub(g, mul(exp(y), sum(g, axis, { keepdim: true })))]);
}

/** Sums a broadcast gradient back to `shape` (the inverse of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  return reshape(sum(g, axes, { keepdim: true }), shape);
}


export interface CumsumOptions {
  /** sum from the end of the axis */
  reverse?: boolean;
  /** each element gets the sum of the elements before it (the first gets 0) */
  exclusive?: boolean;
}

/** Cumulative sum along an axis (torch.cumsum); its gradient is the reverse cumulative sum. */
export function cumsum(x: Tensor, axis: number, opts: CumsumOptions = {}): Tensor {
  const a = normAxis('cumsum', axis, x.ndim);
  const b = backendOf('cumsum', x);
  const xf = cast(x, 'f32');
  const xc = contiguous(xf);
  const out = Tensor.empty(b, x.shape, 'f32');
  const outer = numel(x.shape.slice(0, a));
  const inner = numel(x.shape.slice(a + 1));
  if (out.size) b.run(cumsumCall(xc, out, outer, x.shape[a], inner, opts.reverse ?? false, opts.exclusive ?? false));
  disposeTemps([x], [xf, xc]);
  return record(out, 'cumsum', [x], (g) => [cumsum(g, a, { reverse: !opts.reverse, exclusive: opts.exclusive })]);
}
