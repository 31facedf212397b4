// matmul with torch semantics (1-D operands, broadcast batch dims), and linear.
import { matmulCall } from '../../kernels/matmul.js';
import { record } from '../autograd.js';
import { KilnError, fmtShape } from '../errors.js';
import { broadcastShapes, numel } from '../shape.js';
import { Tensor } from '../tensor.js';
import { add, cast } from './pointwise.js';
import { sumTo } from './reduce.js';
import { contiguous, expand, squeeze, transpose, unsqueeze } from './shape.js';
import { backendOf, disposeTemps } from './util.js';

/** Views t (batch..., r, c) as 3-D (B, r, c), copying only when the batch dims cannot merge. */
function as3d(t: Tensor): Tensor {
  const nb = t.ndim - 2;
  const B = numel(t.shape.slice(0, nb));
  // batch dims of size > 1 merge when each one's stride steps over the next (or all are 0)
  const dims = [...Array(nb).keys()].filter((i) => t.shape[i] !== 1);
  const merges = dims.every((d, k) => k === dims.length - 1 || t.strides[d] === t.strides[dims[k + 1]] * t.shape[dims[k + 1]]);
  const allZero = dims.every((d) => t.strides[d] === 0);
  const src = merges || allZero ? t : contiguous(t);
  const bStride = dims.length ? src.strides[dims[dims.length - 1]] : 0;
  const v = src._view([B, t.shape[nb], t.shape[nb + 1]], [bStride, src.strides[nb], src.strides[nb + 1]], src.offset);
  if (src !== t) src.dispose();
  return v;
}

function matmulRaw(a: Tensor, b: Tensor): Tensor {
  const be = backendOf('matmul', a, b);
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const [M, K] = a.shape.slice(-2);
  const N = b.shape[b.ndim - 1];
  const af = cast(a, 'f32');
  const bf = cast(b, 'f32');
  const ae = expand(af, [...batch, M, K]);
  const bE = expand(bf, [...batch, K, N]);
  const a3 = as3d(ae);
  const b3 = as3d(bE);
  const out = Tensor.empty(be, [...batch, M, N], 'f32');
  if (out.size) be.run(matmulCall(a3, b3, out, be.ctx));
  disposeTemps([a, b], [af, bf, ae, bE, a3, b3]);
  return out;
}

/** Whether the last two dims are a transposed contiguous matrix (column-major). */
const isTransposed = (t: Tensor): boolean => t.ndim >= 2 && t.strides[t.ndim - 2] === 1 && t.strides[t.ndim - 1] === t.shape[t.ndim - 2] && t.shape[t.ndim - 1] > 1;

/**
 * Matrix product with torch.matmul semantics: (..., M, K) @ (..., K, N) with broadcast batch
 * dims; a 1-D operand is a vector. Transposed operands are read through their strides.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new KilnError('shape', 'matmul', `both operands need at least one dim, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (a.ndim === 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.ndim === 1) return squeeze(matmul(a, unsqueeze(b, -1)), -1);
  const K = a.shape[a.ndim - 1];
  if (b.shape[b.ndim - 2] !== K) {
    throw new KilnError('shape', 'matmul', `inner dims differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} (${K} vs ${b.shape[b.ndim - 2]})`);
  }
  const y = matmulRaw(a, b);
  return record(y, 'matmul', [a, b], (g) => [
    a.requiresGrad ? sumTo(matmulRaw(g, transpose(b)), a.shape) : null, // dA = g @ B^T
    // dB = A^T @ g; when B is a transposed view (x @ W^T, every Linear), compute (g^T @ A)^T so
    // the gradient lands in W's own layout and needs no strided copy on the way to W.grad
    b.requiresGrad ? sumTo(isTransposed(b) ? transpose(matmulRaw(transpose(g), a)) : matmulRaw(transpose(a), g), b.shape) : null,
  ]);
}

/** y = x @ weight^T + bias, weight (out, in) as in torch.nn.Linear and Hugging Face checkpoints. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new KilnError('shape', 'linear', `input ${fmtShape(x.shape)} does not fit weight ${fmtShape(weight.shape)} (expects last dim ${weight.shape[1]})`);
  }
  const y = matmul(x, transpose(weight));
  return bias ? add(y, bias) : y;
}

