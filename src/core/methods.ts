// Tensor methods, torch-style: thin aliases of the functional ops, attached here so the op
// modules and the Tensor class do not import each other.
import { backward, type BackwardOptions } from './autograd.js';
import type { DType } from './dtype.js';
import * as C from './ops/creation.js';
import * as I from './ops/index.js';
import * as M from './ops/matmul.js';
import * as P from './ops/pointwise.js';
import * as R from './ops/reduce.js';
import * as S from './ops/shape.js';
import { Tensor, type GradHook } from './tensor.js';

type T = Tensor;
type Num = Tensor | number;
type Axes = number | number[];

declare module './tensor.js' {
  interface Tensor {
    add(b: Num): T; sub(b: Num): T; mul(b: Num): T; div(b: Num): T; pow(b: Num): T;
    neg(): T; exp(): T; log(): T; sqrt(): T; rsqrt(): T; abs(): T; tanh(): T; sigmoid(): T; relu(): T; silu(): T;
    gelu(approximate?: 'none' | 'tanh'): T; square(): T; sign(): T; round(): T; floor(): T; ceil(): T; sin(): T; cos(): T;
    clamp(min?: number, max?: number): T; maximum(b: T): T; minimum(b: T): T;
    gt(b: Num): T; lt(b: Num): T; eq(b: Num): T;
    sum(axes?: Axes, opts?: R.ReduceOptions): T; mean(axes?: Axes, opts?: R.ReduceOptions): T;
    max(axes?: Axes, opts?: R.ReduceOptions): T; min(axes?: Axes, opts?: R.ReduceOptions): T;
    argmax(axis?: number, opts?: R.ReduceOptions): T; argmin(axis?: number, opts?: R.ReduceOptions): T;
    logsumexp(axes?: Axes, opts?: R.ReduceOptions): T; var(axes?: Axes, opts?: R.VarOptions): T; std(axes?: Axes, opts?: R.VarOptions): T;
    softmax(axis?: number): T; logSoftmax(axis?: number): T;
    matmul(b: T): T;
    reshape(shape: readonly number[]): T; view(shape: readonly number[]): T; permute(dims: readonly number[]): T;
    transpose(d0?: number, d1?: number): T; slice(dim: number, start?: number, end?: number, step?: number): T;
    select(dim: number, index: number): T; unsqueeze(dim: number): T; squeeze(dims?: number | number[]): T;
    flatten(startDim?: number, endDim?: number): T; expand(shape: readonly number[]): T; contiguous(): T; clone(): T;
    split(sizes: number | readonly number[], dim?: number): T[]; chunk(chunks: number, dim?: number): T[];
    cast(dtype: DType): T;
    gather(dim: number, index: T): T; indexSelect(dim: number, index: T): T; maskedFill(mask: T, value: number): T;
    /** Accumulates d(this)/d(leaf) into every leaf's .grad (this must be a scalar unless grad is given). */
    backward(grad?: T, opts?: BackwardOptions): void;
    /** A view of the same data cut off from the graph. */
    detach(): T;
    /** Keeps this non-leaf tensor's .grad after backward. */
    retainGrad(): T;
    /** fn(grad) runs when this tensor's grad is computed; returning a tensor replaces the grad. */
    registerHook(fn: GradHook): () => void;
    requiresGrad_(on?: boolean): T;
    /** Frees .grad. */
    zeroGrad(): void;
  }
}

const p = Tensor.prototype;
p.add = function (b) { return P.add(this, b); };
p.sub = function (b) { return P.sub(this, b); };
p.mul = function (b) { return P.mul(this, b); };
p.div = function (b) { return P.div(this, b); };
p.pow = function (b) { return P.pow(this, b); };
p.neg = function () { return P.neg(this); };
p.exp = function () { return P.exp(this); };
p.log = function () { return P.log(this); };
p.sqrt = function () { return P.sqrt(this); };
p.rsqrt = function () { return P.rsqrt(this); };
p.abs = function () { return P.abs(this); };
p.tanh = function () { return P.tanh(this); };
p.sigmoid = function () { return P.sigmoid(this); };
p.relu = function () { return P.relu(this); };
p.silu = function () { return P.silu(this); };
p.gelu = function (a) { return P.gelu(this, a); };
p.square = function () { return P.square(this); };
p.sign = function () { return P.sign(this); };
p.round = function () { return P.round(this); };
p.floor = function () { return P.floor(this); };
p.ceil = function () { return P.ceil(this); };
p.sin = function () { return P.sin(this); };
p.cos = function () { return P.cos(this); };
p.clamp = function (lo, hi) { return P.clamp(this, lo, hi); };
p.maximum = function (b) { return P.maximum(this, b); };
p.minimum = function (b) { return P.minimum(this, b); };
p.gt = function (b) { return P.gt(this, b); };
p.lt = function (b) { return P.lt(this, b); };
p.eq = function (b) { return P.eq(this, b); };
p.sum = function (a, o) { return R.sum(this, a, o); };
p.mean = function (a, o) { return R.mean(this, a, o); };
p.max = function (a, o) { return R.max(this, a, o); };
p.min = function (a, o) { return R.min(this, a, o); };
p.argmax = function (a, o) { return R.argmax(this, a, o); };
p.argmin = function (a, o) { return R.argmin(this, a, o); };
p.logsumexp = function (a, o) { return R.logsumexp(this, a, o); };
p.var = function (a, o) { return R.variance(this, a, o); };
p.std = function (a, o) { return R.std(this, a, o); };
p.softmax = function (a) { return R.softmax(this, a); };
p.logSoftmax = function (a) { return R.logSoftmax(this, a); };
p.matmul = function (b) { return M.matmul(this, b); };
p.reshape = function (s) { return S.reshape(this, s); };
p.view = function (s) { return S.view(this, s); };
p.permute = function (d) { return S.permute(this, d); };
p.transpose = function (a, b) { return S.transpose(this, a, b); };
p.slice = function (d, s, e, st) { return S.slice(this, d, s, e, st); };
p.select = function (d, i) { return S.select(this, d, i); };
p.unsqueeze = function (d) { return S.unsqueeze(this, d); };
p.squeeze = function (d) { return S.squeeze(this, d); };
p.flatten = function (s, e) { return S.flatten(this, s, e); };
p.expand = function (s) { return S.expand(this, s); };
p.contiguous = function () { return S.contiguous(this); };
p.clone = function () { return S.clone(this); };
p.split = function (s, d) { return S.split(this, s, d); };
p.chunk = function (c, d) { return S.chunk(this, c, d); };
p.cast = function (d) { return P.cast(this, d); };
p.gather = function (d, i) { return I.gather(this, d, i); };
p.indexSelect = function (d, i) { return I.indexSelect(this, d, i); };
p.maskedFill = function (m, v) { return P.maskedFill(this, m, v); };
p.backward = function (g, o) { backward(this, g, o); };
p.detach = function () { return this._view(this.shape, this.strides, this.offset); };
p.retainGrad = function () { this._retainGrad = true; return this; };
p.registerHook = function (fn) {
  this._hooks.push(fn);
  return () => { this._hooks = this._hooks.filter((h) => h !== fn); };
};
p.requiresGrad_ = function (on = true) { this.requiresGrad = on; return this; };
p.zeroGrad = function () { this.grad?.dispose(); this.grad = null; };

