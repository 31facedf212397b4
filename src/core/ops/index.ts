// Indexing ops: gather, indexSelect, embedding, scatterAdd. All map onto one gather kernel and
// one scatter-add kernel over a (outer, D, inner) view; each is the other's backward.
import { gatherCall, scatterAddCall } from '../../kernels/gather.js';
import { record } from '../autograd.js';
import { storageBytes } from '../dtype.js';
import { KilnError, fmtShape } from '../errors.js';
import { normAxis, numel } from '../shape.js';
import { Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { arange } from './creation.js';
import { add, cast, eq, where } from './pointwise.js';
import { argmax } from './reduce.js';
import { concat, contiguous, reshape } from './shape.js';
import { backendOf, disposeTemps } from './util.js';

function checkIndex(op: string, index: Tensor): void {
  if (index.dtype !== 'i32') throw new KilnError('dtype', op, `index must be i32, got ${index.dtype}`);
}

/** (outer, D, inner) split of x around dim. */
const around = (x: Tensor, a: number): [number, number, number] => [numel(x.shape.slice(0, a)), x.shape[a], numel(x.shape.slice(a + 1))];

function gatherRaw(op: string, x: Tensor, a: number, index: Tensor, full: boolean, outShape: number[]): Tensor {
  const b = backendOf(op, x, index);
  const xf = cast(x, 'f32');
  const xc = contiguous(xf);
  const ic = contiguous(index);
  const [outer, D, inner] = around(xc, a);
  const L = full ? index.shape[a] : index.size;
  const out = Tensor.empty(b, outShape, 'f32');
  if (out.size) b.run(gatherCall(xc, ic, out, outer, L, inner, D, full, op));
  disposeTemps([x, index], [xf, xc, ic]);
  return out;
}

function scatterRaw(op: string, src: Tensor, a: number, index: Tensor, full: boolean, shape: readonly number[]): Tensor {
  const b = backendOf(op, src, index);
  const sf = cast(src, 'f32');
  const sc = contiguous(sf);
  const ic = contiguous(index);
  const out = Tensor.empty(b, shape, 'f32');
  const outer = numel(shape.slice(0, a));
  const D = shape[a];
  const inner = numel(shape.slice(a + 1));
  const L = full ? index.shape[a] : index.size;
  b.zero(out.storage, 0, storageBytes('f32', out.size));
  if (sc.size) b.run(scatterAddCall(sc, ic, out, outer, L, inner, D, full, op));
  disposeTemps([src, index], [sf, sc, ic]);
  return out;
}

/** Rows of x along dim picked by a 1-D i32 index (torch.index_select). */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  checkIndex('indexSelect', index);
  if (index.ndim !== 1) throw new KilnError('shape', 'indexSelect', `index must be 1-D, got ${fmtShape(index.shape)}`);
  const a = normAxis('indexSelect', dim, x.ndim);
  const shape = [...x.shape];
  shape[a] = index.size;
  const y = gatherRaw('indexSelect', x, a, index, false, shape);
  return record(y, 'indexSelect', [x], (g) => [scatterRaw('indexSelect.backward', g, a, index, false, x.shape)]);
}

/** torch.gather: out[..i..] = x[..index[..i..]..] along dim; index has x's rank and dims. */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  checkIndex('gather', index);
  const a = normAxis('gather', dim, x.ndim);
  if (index.ndim !== x.ndim || index.shape.some((d, i) => i !== a && d !== x.shape[i])) {
    throw new KilnError('shape', 'gather', `index ${fmtShape(index.shape)} must match input ${fmtShape(x.shape)} outside dim ${dim}`);
  }
  const y = gatherRaw('gather', x, a, index, true, [...index.shape]);
  return record(y, 'gather', [x], (g) => [scatterRaw('gather.backward', g, a, index, true, x.shape)]);
}

/** out = x, then out[..index[..i..]..] += src[..i..] along dim (torch.scatter_add). */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  checkIndex('scatterAdd', index);
  const a = normAxis('scatterAdd', dim, x.ndim);
  if (index.ndim !== x.ndim || index.shape.some((d, i) => d !== src.shape[i] || (i !== a && d !== x.shape[i]))) {
    throw new KilnError('shape', 'scatterAdd', `index ${fmtShape(index.shape)} must equal src ${fmtShape(src.shape)} and match input ${fmtShape(x.shape)} outside dim ${dim}`);
  }
  const scattered = scatterRaw('scatterAdd', src, a, index, true, x.shape);
  record(scattered, 'scatterAdd', [src], (g) => [gatherRaw('scatterAdd.backward', g, a, index, true, [...index.shape])]);
  return add(x, scattered);
}

/** Looks up rows of weight (V, H) for i32 ids of any shape: (..., H) (torch.nn.functional.embedding). */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (weight.ndim !== 2) throw new KilnError('shape', 'embedding', `weight must be (num_embeddings, dim), got ${fmtShape(weight.shape)}`);
  const flat = indexSelect(weight, 0, reshape(ids, [ids.size]));
  return reshape(flat, [...ids.shape, weight.shape[1]]);
}

/**
 * The k largest entries along the last axis, in descending order (first index on ties):
 * values (differentiable, via gather) and i32 indices. Made of k argmax passes: meant for
 * small k (MoE routing, sampling), each pass O(rows * n).
 */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const n = x.shape[x.ndim - 1];
  if (!Number.isInteger(k) || k < 1 || k > n) throw new KilnError('argument', 'topk', `k must be in [1, ${n}], got ${k}`);
  const b = backendOf('topk', x);
  const picks: Tensor[] = [];
  noGrad(() => {
    const cols = arange(n, undefined, 1, { backend: b }); // (n)
    let work = cast(x, 'f32');
    for (let j = 0; j < k; j++) {
      const idx = argmax(work, -1, { keepdim: true }); // (..., 1) i32
      picks.push(idx);
      if (j + 1 < k) work = where(eq(cols, idx), -Infinity, work); // knock out the pick
    }
  });
  const indices = k === 1 ? picks[0] : concat(picks, -1);
  return { values: gather(x, x.ndim - 1, indices), indices };
}
