// Layout ops. Views (reshape of viewable layouts, permute, transpose, slice, expand, squeeze)
// share storage; copies go through the pointwise identity kernel, which reads and writes views.
import { pointwiseCall } from '../../kernels/pointwise.js';
import { gradOps, record } from '../autograd.js';
import { isFloat, storageBytes } from '../dtype.js';
import { KilnError, fmtShape } from '../errors.js';
import { broadcastShapes, inferShape, normAxis, sameShape, viewStrides } from '../shape.js';
import { Tensor } from '../tensor.js';
import { cast } from './pointwise.js';
import { sumTo } from './reduce.js';
import { backendOf } from './util.js';

/** Copies src into the (possibly strided) view dst. */
function copyInto(dst: Tensor, src: Tensor): void {
  const b = backendOf('copy', dst, src);
  if (src.size) b.run(pointwiseCall('identity', dst, [src], 0, 0, b.ctx));
}

/**
 * Writes src into dst[..., start : start + n, ...] along `axis`, in place (no autograd): how a
 * pre-allocated KV cache takes each step's keys and values.
 */
export function writeSlice(dst: Tensor, src: Tensor, axis: number, start: number): void {
  const a = normAxis('writeSlice', axis, dst.ndim);
  const n = src.shape[a];
  if (src.ndim !== dst.ndim || src.shape.some((d, i) => i !== a && d !== dst.shape[i]) || start < 0 || start + n > dst.shape[a]) {
    throw new KilnError('shape', 'writeSlice', `cannot write ${fmtShape(src.shape)} into ${fmtShape(dst.shape)} at ${start} along axis ${a}`);
  }
  copyInto(slice(dst, a, start, start + n), src.dtype === dst.dtype ? src : cast(src, dst.dtype));
}

/** A contiguous tensor with x's data: x itself when already contiguous. */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous()) return x;
  return record(rawCopy(x), 'contiguous', [x], (g) => [g]);
}

function rawCopy(x: Tensor): Tensor {
  const out = Tensor.empty(backendOf('contiguous', x), x.shape, x.dtype);
  copyInto(out, x);
  return out;
}

/** A fresh copy (torch.clone). */
export function clone(x: Tensor): Tensor {
  return record(rawCopy(x), 'clone', [x], (g) => [g]);
}

Tensor.prototype.contiguousData = function (this: Tensor): Tensor {
  return this.isContiguous() ? this : rawCopy(this);
};

/** Reshape: a view when the layout allows, else a copy (torch.reshape). One dim may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const to = inferShape('reshape', x.shape, shape);
  if (sameShape(to, x.shape)) return x;
  const st = viewStrides(x.shape, x.strides, to);
  const y = st ? x._view(to, st, x.offset) : reshape(rawCopy(x), to);
  return record(y, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

/** Reshape that never copies: throws when the layout does not allow a view (torch.view). */
export function view(x: Tensor, shape: readonly number[]): Tensor {
  const to = inferShape('view', x.shape, shape);
  const st = viewStrides(x.shape, x.strides, to);
  if (!st) throw new KilnError('shape', 'view', `a tensor of shape ${fmtShape(x.shape)} with strides ${fmtShape(x.strides)} cannot be viewed as ${fmtShape(to)}; use reshape()`);
  return record(x._view(to, st, x.offset), 'view', [x], (g) => [reshape(g, x.shape)]);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const d = dims.map((a) => normAxis('permute', a, x.ndim));
  if (d.length !== x.ndim || new Set(d).size !== d.length) {
    throw new KilnError('shape', 'permute', `dims ${fmtShape(dims)} are not a permutation of ${x.ndim} axes`);
  }
  if (d.every((a, i) => a === i)) return x;
  const y = x._view(d.map((a) => x.shape[a]), d.map((a) => x.strides[a]), x.offset);
  const inv = d.map((_, i) => d.indexOf(i));
  return record(y, 'permute', [x], (g) => [permute(g, inv)]);
}

export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  const a = normAxis('transpose', d0, x.ndim);
  const b = normAxis('transpose', d1, x.ndim);
  const p = [...x.shape.keys()];
  [p[a], p[b]] = [p[b], p[a]];
  return permute(x, p);
}

/** x[start:end:step] along dim, as a view (Python slice semantics, negative indices allowed). */
export function slice(x: Tensor, dim: number, start = 0, end = Infinity, step = 1): Tensor {
  const a = normAxis('slice', dim, x.ndim);
  if (!Number.isInteger(step) || step < 1) throw new KilnError('argument', 'slice', `step must be a positive integer, got ${step}`);
  const n = x.shape[a];
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start);
  const e = Math.max(clampIdx(end), s);
  const len = Math.ceil((e - s) / step);
  const shape = [...x.shape];
  shape[a] = len;
  const strides = [...x.strides];
  strides[a] = x.strides[a] * step;
  const y = x._view(shape, strides, x.offset + s * x.strides[a]);
  return record(y, 'slice', [x], (g) => {
    const z = zerosF32(x);
    copyInto(slice(z, a, s, e, step), g);
    return [z];
  });
}

function zerosF32(like: Tensor): Tensor {
  const b = backendOf('zeros', like);
  const z = Tensor.empty(b, like.shape, 'f32');
  b.zero(z.storage, 0, storageBytes('f32', z.size));
  return z;
}

/** x[..., i, ...] along dim, removing that dim. */
export function select(x: Tensor, dim: number, index: number): Tensor {
  const a = normAxis('select', dim, x.ndim);
  const n = x.shape[a];
  const i = index < 0 ? index + n : index;
  if (i < 0 || i >= n) throw new KilnError('index', 'select', `index ${index} is out of range for dim ${dim} of size ${n}`);
  return squeeze(slice(x, a, i, i + 1), a);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const a = normAxis('unsqueeze', dim, x.ndim + 1);
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

/** Removes size-1 dims (all, or the ones given). */
export function squeeze(x: Tensor, dims?: number | number[]): Tensor {
  const ds = dims === undefined ? x.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0) : (typeof dims === 'number' ? [dims] : dims).map((d) => normAxis('squeeze', d, x.ndim));
  return reshape(x, x.shape.filter((d, i) => !(ds.includes(i) && d === 1)));
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normAxis('flatten', startDim, x.ndim);
  const e = normAxis('flatten', endDim, x.ndim);
  return reshape(x, [...x.shape.slice(0, s), -1, ...x.shape.slice(e + 1)]);
}

/** Broadcasts x to shape as a view (stride 0 on new dims); -1 keeps a dim. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const off = shape.length - x.ndim;
  const to = shape.map((d, i) => (d === -1 ? x.shape[i - off] : d));
  if (off < 0 || !sameShape(broadcastShapes('expand', x.shape, to), to)) {
    throw new KilnError('shape', 'expand', `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  if (sameShape(to, x.shape)) return x;
  const strides = to.map((_, i) => (i < off || x.shape[i - off] === 1 ? 0 : x.strides[i - off]));
  return record(x._view(to, strides, x.offset), 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

/** Concatenates along dim (torch.cat). */
export function concat(ts: readonly Tensor[], dim = 0): Tensor {
  if (!ts.length) throw new KilnError('argument', 'concat', 'needs at least one tensor');
  const a = normAxis('concat', dim, ts[0].ndim);
  const dtype = ts[0].dtype;
  for (const t of ts) {
    if (t.ndim !== ts[0].ndim || t.shape.some((d, i) => i !== a && d !== ts[0].shape[i])) {
      throw new KilnError('shape', 'concat', `shapes ${ts.map((x) => fmtShape(x.shape)).join(', ')} differ outside dim ${dim}`);
    }
    if (t.dtype !== dtype) throw new KilnError('dtype', 'concat', `dtypes differ: ${ts.map((x) => x.dtype).join(', ')}`);
  }
  const b = backendOf('concat', ...ts);
  // packed halves can only be written word-aligned: assemble those in f32, then pack
  if ((dtype === 'f16' || dtype === 'bf16') && !(b.ctx.f16 && dtype === 'f16')) return cast(concat(ts.map((t) => cast(t, 'f32')), a), dtype);
  const shape = [...ts[0].shape];
  shape[a] = ts.reduce((s, t) => s + t.shape[a], 0);
  const out = Tensor.empty(b, shape, dtype);
  let at = 0;
  for (const t of ts) {
    const dst = out._view(t.shape, out.strides, at * out.strides[a]);
    copyInto(dst, t);
    dst.dispose();
    at += t.shape[a];
  }
  if (!isFloat(dtype)) return out;
  return record(out, 'concat', ts, (g) => {
    let s = 0;
    return ts.map((t) => {
      const gi = slice(g, a, s, s + t.shape[a]);
      s += t.shape[a];
      return gi;
    });
  });
}

/** Splits into pieces of `size` (the last may be smaller) or of the listed sizes (torch.split). */
export function split(x: Tensor, sizes: number | readonly number[], dim = 0): Tensor[] {
  const a = normAxis('split', dim, x.ndim);
  const n = x.shape[a];
  const list = typeof sizes === 'number' ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes)) : sizes;
  if (list.reduce((s, v) => s + v, 0) !== n) throw new KilnError('shape', 'split', `sizes ${fmtShape(list)} do not add up to ${n} (dim ${dim} of ${fmtShape(x.shape)})`);
  let s = 0;
  return list.map((len) => slice(x, a, s, (s += len)));
}

export const chunk = (x: Tensor, chunks: number, dim = 0): Tensor[] => split(x, Math.ceil(x.shape[normAxis('chunk', dim, x.ndim)] / chunks), dim);

export function stack(ts: readonly Tensor[], dim = 0): Tensor {
  if (!ts.length) throw new KilnError('argument', 'stack', 'needs at least one tensor');
  const a = normAxis('stack', dim, ts[0].ndim + 1);
  return concat(ts.map((t) => unsqueeze(t, a)), a);
}

gradOps.clone = (t) => rawCopy(t);
