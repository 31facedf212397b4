// Pointwise ops and their backward rules. Forward: one kernel from the pointwise table;
// backward: built from the same ops (the derivative rows of the table keep it to two kernels).
import { pointwiseCall } from '../../kernels/pointwise.js';
import type { PointwiseOp } from '../../kernels/pointwise-table.js';
import { gradOps, record } from '../autograd.js';
import { isFloat, type DType } from '../dtype.js';
import { KilnError } from '../errors.js';
import { broadcastShapes } from '../shape.js';
import { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { backendOf, broadcastView } from './util.js';

/** Runs one pointwise kernel (no autograd). Output dtype f32 unless given. */
export function pointwise(op: PointwiseOp, ins: readonly Tensor[], p0 = 0, p1 = 0, outDtype: DType = 'f32', shape?: readonly number[]): Tensor {
  const b = backendOf(op, ...ins);
  let outShape = shape ?? [];
  if (!shape) for (const t of ins) outShape = broadcastShapes(op, outShape, t.shape);
  const out = Tensor.empty(b, outShape, outDtype);
  if (out.size > 0) b.run(pointwiseCall(op, out, ins.map((t) => broadcastView(t, outShape)), p0, p1, b.ctx));
  return out;
}

type Scalar = number;
type UnaryGrad = (g: Tensor, x: Tensor, y: Tensor, p0: number, p1: number) => Tensor;

const zeroGrad: UnaryGrad = (g) => pointwise('mulScalar', [g], 0);
const times = (d: PointwiseOp): UnaryGrad => (g, x, _y, p0, p1) => mul(g, pointwise(d, [x], p0, p1));

/** d(op)/dx for each differentiable unary op. */
const UNARY_GRAD: Partial<Record<PointwiseOp, UnaryGrad>> = {
  identity: (g) => g,
  neg: (g) => neg(g),
  exp: (g, _x, y) => mul(g, y),
  log: (g, x) => div(g, x),
  sqrt: (g, _x, y) => div(mulScalar(g, 0.5), y),
  rsqrt: (g, _x, y) => mul(g, mulScalar(pointwise('powScalar', [y], 3), -0.5)),
  abs: times('sign'),
  tanh: times('tanhGrad'),
  sigmoid: times('sigmoidGrad'),
  relu: (g, x) => mul(g, pointwise('gtScalar', [x], 0)),
  silu: times('siluGrad'),
  geluTanh: times('geluTanhGrad'),
  gelu: times('geluGrad'),
  clamp: times('clampMask'),
  addScalar: (g) => g,
  mulScalar: (g, _x, _y, p0) => mulScalar(g, p0),
  powScalar: (g, x, _y, p0) => mul(g, mulScalar(pointwise('powScalar', [x], p0 - 1), p0)),
  rsubScalar: (g) => neg(g),
  rdivScalar: (g, x, _y, p0) => mul(g, mulScalar(pointwise('powScalar', [x], -2), -p0)),
  square: (g, x) => mul(g, mulScalar(x, 2)),
  sign: zeroGrad,
  round: zeroGrad,
  floor: zeroGrad,
  ceil: zeroGrad,
  sin: times('cos'),
  cos: (g, x) => neg(mul(g, pointwise('sin', [x]))),
};

/** Unary op with autograd. */
export function unary(op: PointwiseOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  const y = pointwise(op, [x], p0, p1);
  const rule = UNARY_GRAD[op];
  if (!rule) return y;
  return record(y, op, [x], (g) => [rule(g, x, y, p0, p1)]);
}

type BinaryGrad = (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor, Tensor];
/** 1 where `win` holds, 0.5 on ties, else 0 (eq * eq == eq). */
function tieSplit(win: PointwiseOp, a: Tensor, b: Tensor): Tensor {
  const e = pointwise('eq', [a, b]);
  return pointwise('addcmul', [pointwise(win, [a, b]), e, e], 0.5);
}

const BINARY_GRAD: Partial<Record<PointwiseOp, BinaryGrad>> = {
  add: (g) => [g, g],
  sub: (g) => [g, neg(g)],
  mul: (g, a, b) => [mul(g, b), mul(g, a)],
  siluMul: (g, a, b) => [mul(g, mul(b, pointwise('siluGrad', [a]))), mul(g, pointwise('silu', [a]))],
  div: (g, _a, b, y) => [div(g, b), neg(div(mul(g, y), b))],
  pow: (g, a, b, y) => [mul(g, pointwise('powGradBase', [a, b])), mul(g, mul(y, pointwise('log', [a])))],
  // ties split the gradient evenly, as torch.maximum / torch.minimum
  maximum: (g, a, b) => [mul(g, tieSplit('gt', a, b)), mul(g, tieSplit('lt', a, b))],
  minimum: (g, a, b) => [mul(g, tieSplit('lt', a, b)), mul(g, tieSplit('gt', a, b))],
};

/** Binary broadcasting op with autograd; a number operand becomes the scalar form of the op. */
export function binary(op: PointwiseOp, a: Tensor, b: Tensor): Tensor {
  const y = pointwise(op, [a, b]);
  const rule = BINARY_GRAD[op];
  if (!rule) return y;
  return record(y, op, [a, b], (g) => {
    const [ga, gb] = rule(g, a, b, y);
    return [a.requiresGrad ? sumTo(ga, a.shape) : null, b.requiresGrad ? sumTo(gb, b.shape) : null];
  });
}

// ---- the public pointwise ops (torch names) ----
export const add = (a: Tensor, b: Tensor | Scalar): Tensor => (typeof b === 'number' ? unary('addScalar', a, b) : binary('add', a, b));
export const sub = (a: Tensor, b: Tensor | Scalar): Tensor => (typeof b === 'number' ? unary('addScalar', a, -b) : binary('sub', a, b));
export const mul = (a: Tensor, b: Tensor | Scalar): Tensor => (typeof b === 'number' ? unary('mulScalar', a, b) : binary('mul', a, b));
export const div = (a: Tensor, b: Tensor | Scalar): Tensor => (typeof b === 'number' ? unary('mulScalar', a, 1 / b) : binary('div', a, b));
export const pow = (a: Tensor, b: Tensor | Scalar): Tensor => (typeof b === 'number' ? unary('powScalar', a, b) : binary('pow', a, b));
export const maximum = (a: Tensor, b: Tensor): Tensor => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor): Tensor => binary('minimum', a, b);
export const mulScalar = (a: Tensor, s: number): Tensor => unary('mulScalar', a, s);
/** s - a */
export const rsub = (a: Tensor, s: number): Tensor => unary('rsubScalar', a, s);
export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
/** silu(a) * b in one kernel (SwiGLU's gate times up). */
export const siluMul = (a: Tensor, b: Tensor): Tensor => binary('siluMul', a, b);
/** GELU; approximate 'tanh' is the GPT-2 form, 'none' the exact erf form (torch's default). */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => unary(approximate === 'tanh' ? 'geluTanh' : 'gelu', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const sign = (x: Tensor): Tensor => unary('sign', x);
export const round = (x: Tensor): Tensor => unary('round', x);
export const floor = (x: Tensor): Tensor => unary('floor', x);
export const ceil = (x: Tensor): Tensor => unary('ceil', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export function clamp(x: Tensor, min = -Infinity, max = Infinity): Tensor {
  if (min > max) throw new KilnError('argument', 'clamp', `min ${min} is greater than max ${max}`);
  return unary('clamp', x, min, max);
}

// comparisons give 0/1 f32 masks and no gradient
const cmp = (op: PointwiseOp, sop: PointwiseOp) => (a: Tensor, b: Tensor | Scalar): Tensor =>
  typeof b === 'number' ? pointwise(sop, [a], b) : pointwise(op, [a, b]);
export const gt = cmp('gt', 'gtScalar');
export const lt = cmp('lt', 'ltScalar');
export const eq = cmp('eq', 'eqScalar');
export const ge = (a: Tensor, b: Tensor): Tensor => pointwise('ge', [a, b]);

/** cond ? a : b elementwise, broadcasting all three; cond is nonzero-means-true. */
export function where(cond: Tensor, a: Tensor | Scalar, b: Tensor | Scalar): Tensor {
  const be = backendOf('where', cond, typeof a === 'number' ? null : a, typeof b === 'number' ? null : b);
  const ta = typeof a === 'number' ? full(be, a) : a;
  const tb = typeof b === 'number' ? full(be, b) : b;
  const y = pointwise('where', [cond, ta, tb]);
  return record(y, 'where', [ta, tb], (g) => {
    const zero = full(be, 0);
    return [
      ta.requiresGrad ? sumTo(pointwise('where', [cond, g, zero], 0, 0, 'f32', y.shape), ta.shape) : null,
      tb.requiresGrad ? sumTo(pointwise('where', [cond, zero, g], 0, 0, 'f32', y.shape), tb.shape) : null,
    ];
  });
}

/** x with value where mask is nonzero (torch.masked_fill). */
export const maskedFill = (x: Tensor, mask: Tensor, value: number): Tensor => where(mask, value, x);

/** A 0-d tensor holding v. */
function full(b: ReturnType<typeof backendOf>, v: number): Tensor {
  const t = Tensor.empty(b, [], 'f32');
  b.run(pointwiseCall('fill', t, [], v, 0, b.ctx));
  return t;
}

/**
 * Converts dtype (f32 <-> f16/bf16 packed, ints truncate toward zero). Differentiable between
 * floats; gradients stay f32 (the grad of an f16/bf16 leaf is f32, a master-precision grad).
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const y = pointwise('identity', [x], 0, 0, dtype, x.shape);
  if (!isFloat(dtype) || !isFloat(x.dtype)) return y;
  return record(y, 'cast', [x], (g) => [g]);
}

gradOps.add = (a, b) => pointwise('add', [a, b]);
