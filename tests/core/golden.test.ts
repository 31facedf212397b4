// Every op's output and input gradients against PyTorch (tests/golden/generate.py), on each backend.
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { goldenSuite, type Op } from '../helpers/golden.js';

const unary = (f: (x: Tensor) => Tensor): Op => (_a, x) => f(x);
const binary = (f: (x: Tensor, y: Tensor) => Tensor): Op => (_a, x, y) => f(x, y);
const red = (f: (x: Tensor, axes?: number[], o?: any) => Tensor): Op => (a, x) => f(x, a.axes ?? undefined, { keepdim: a.keepdim, correction: a.correction });

const OPS: Record<string, Op> = {
  neg: unary(k.neg), exp: unary(k.exp), log: unary(k.log), sqrt: unary(k.sqrt), rsqrt: unary(k.rsqrt), abs: unary(k.abs),
  tanh: unary(k.tanh), sigmoid: unary(k.sigmoid), relu: unary(k.relu), silu: unary(k.silu), gelu: unary((x) => k.gelu(x)),
  geluTanh: unary((x) => k.gelu(x, 'tanh')), square: unary(k.square), sin: unary(k.sin), cos: unary(k.cos),
  clamp: (a, x) => k.clamp(x, a.min, a.max),
  powScalar: (a, x) => k.pow(x, a.p),
  add: binary(k.add), sub: binary(k.sub), mul: binary(k.mul), div: binary(k.div), pow: binary(k.pow),
  maximum: binary(k.maximum), minimum: binary(k.minimum),
  sum: red(k.sum), mean: red(k.mean), max: red(k.max), min: red(k.min), logsumexp: red(k.logsumexp),
  var: red(k.variance), std: red(k.std),
  argmax: (a, x) => k.argmax(x, a.axis), argmin: (a, x) => k.argmin(x, a.axis),
  softmax: (a, x) => k.softmax(x, a.axis), logSoftmax: (a, x) => k.logSoftmax(x, a.axis),
  matmul: binary(k.matmul),
  linear: (_a, x, w, b) => k.linear(x, w, b),
  permute: (a, x) => k.contiguous(k.permute(x, a.dims)),
  slice: (a, x) => k.slice(x, a.dim, a.start, a.end, a.step),
  select: (a, x) => k.select(x, a.dim, a.index),
  reshape: (a, x) => k.reshape(x, a.shape),
  expand: (a, x) => k.expand(x, a.shape),
  concat: (a, ...xs) => k.concat(xs, a.dim),
  stack: (a, ...xs) => k.stack(xs, a.dim),
  split: (a, x) => k.concat(k.split(x, a.size, a.dim).map((s, i) => k.mul(s, i + 1)), a.dim),
  indexSelect: (a, x, i) => k.indexSelect(x, a.dim, i),
  gather: (a, x, i) => k.gather(x, a.dim, i),
  embedding: (_a, ids, w) => k.embedding(ids, w),
  scatterAdd: (a, x, i, s) => k.scatterAdd(x, a.dim, i, s),
  where: (_a, c, x, y) => k.where(c, x, y),
  maskedFill: (a, x, m) => k.maskedFill(x, m, a.value),
  roundtrip: (a, x) => k.cast(k.cast(x, a.dtype), 'f32'),
  castInt: (_a, x) => k.cast(x, 'i32'),
  crossEntropy: (a, x, t) => k.crossEntropy(x, t, a),
  rmsNorm: (a, x, w) => k.nn.rmsNorm(x, w, a.eps, a.offset),
  layerNorm: (a, x, w, b) => k.nn.layerNorm(x, a.shape, w ?? null, b ?? null, a.eps),
  groupNorm: (a, x, w, b) => k.nn.groupNorm(x, a.groups, w, b, a.eps),
};

goldenSuite('golden vs PyTorch', 'ops.json', OPS);
