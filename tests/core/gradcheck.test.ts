// Finite differences against every backward rule, on each backend.
import { it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { describeBackends } from '../helpers/backends.js';
import { gradcheck, type GradcheckInput } from '../helpers/gradcheck.js';

const g = new k.Generator(7);
/** values in +-[lo, hi]: kept away from kinks (0 for relu/abs/sign) */
const vals = (n: number, lo = 0.2, hi = 1.5) => Array.from({ length: n }, () => (g.random() < 0.5 ? -1 : 1) * (lo + (hi - lo) * g.random()));
const pos = (n: number) => Array.from({ length: n }, () => 0.3 + 1.5 * g.random());
const inp = (shape: number[], data?: number[]): GradcheckInput => ({ shape, data: data ?? vals(shape.reduce((a, b) => a * b, 1)) });
const idx = (shape: number[], data: number[]): GradcheckInput => ({ shape, data, dtype: 'i32' });

const cube = k.customOp({
  name: 'cube',
  forward: (ctx, x: Tensor) => { ctx.save(x); return k.mul(k.mul(x, x), x); },
  backward: (ctx, gr) => [k.mul(gr, k.mul(k.square(ctx.saved[0]), 3))],
});

const CASES: [string, (...xs: Tensor[]) => Tensor, GradcheckInput[]][] = [
  ['neg', k.neg, [inp([2, 3])]], ['exp', k.exp, [inp([2, 3])]], ['log', k.log, [inp([2, 3], pos(6))]],
  ['sqrt', k.sqrt, [inp([2, 3], pos(6))]], ['rsqrt', k.rsqrt, [inp([2, 3], pos(6))]], ['abs', k.abs, [inp([2, 3])]],
  ['tanh', k.tanh, [inp([2, 3])]], ['sigmoid', k.sigmoid, [inp([2, 3])]], ['relu', k.relu, [inp([2, 3])]],
  ['silu', k.silu, [inp([2, 3])]], ['gelu', (x) => k.gelu(x), [inp([2, 3])]], ['geluTanh', (x) => k.gelu(x, 'tanh'), [inp([2, 3])]],
  ['clamp', (x) => k.clamp(x, -0.9, 0.8), [inp([2, 4], [-1.2, -0.5, 0.3, 1.1, -0.95, 0.6, 0.75, -0.1])]],
  ['powScalar', (x) => k.pow(x, 3), [inp([5])]], ['square', k.square, [inp([4])]], ['sin', k.sin, [inp([4])]], ['cos', k.cos, [inp([4])]],
  ['div scalar', (x) => k.div(x, 4), [inp([3])]], ['sub scalar', (x) => k.sub(x, 4), [inp([3])]],
  ['add bcast', k.add, [inp([2, 1, 3]), inp([4, 1])]], ['sub bcast', k.sub, [inp([3]), inp([2, 3])]],
  ['mul bcast', k.mul, [inp([2, 3]), inp([1, 3])]], ['siluMul (SwiGLU) bcast', k.siluMul, [inp([2, 3]), inp([1, 3])]], ['div bcast', k.div, [inp([2, 3]), inp([3], pos(3))]],
  ['pow', k.pow, [inp([2, 2], pos(4)), inp([2, 2])]],
  ['maximum', k.maximum, [inp([2, 3]), inp([2, 3])]], ['minimum', k.minimum, [inp([3]), inp([2, 3])]],
  ['sum axes', (x) => k.sum(x, [0, 2]), [inp([2, 3, 2])]], ['mean', (x) => k.mean(x, 1, { keepdim: true }), [inp([2, 3])]],
  ['max', (x) => k.max(x, 1), [inp([2, 4])]], ['min', (x) => k.min(x, 0), [inp([3, 2])]],
  ['logsumexp', (x) => k.logsumexp(x, -1), [inp([2, 4])]], ['var', (x) => k.variance(x, 1), [inp([2, 4])]],
  ['std', (x) => k.std(x, 0), [inp([3, 2])]],
  ['softmax', (x) => k.softmax(x, 1), [inp([2, 3, 2])]], ['logSoftmax', (x) => k.logSoftmax(x, -1), [inp([2, 5])]],
  ['matmul', k.matmul, [inp([3, 4]), inp([4, 2])]], ['matmul batched bcast', k.matmul, [inp([2, 1, 2, 3]), inp([3, 3, 2])]],
  ['matmul vec', k.matmul, [inp([3]), inp([3, 2])]], ['matmul A^T', (a, b) => k.matmul(k.transpose(a), b), [inp([4, 3]), inp([4, 2])]],
  ['linear', k.linear, [inp([2, 3]), inp([4, 3]), inp([4])]],
  ['permute', (x) => k.permute(x, [2, 0, 1]), [inp([2, 3, 2])]], ['transpose+reshape', (x) => k.reshape(k.transpose(x), [6]), [inp([2, 3])]],
  ['slice', (x) => k.slice(x, 1, 1, 4, 2), [inp([2, 5])]], ['select', (x) => k.select(x, 0, 1), [inp([3, 2])]],
  ['expand', (x) => k.expand(x, [3, 2, 4]), [inp([2, 1])]], ['concat', (a, b) => k.concat([a, b], 1), [inp([2, 1]), inp([2, 3])]],
  ['stack', (a, b) => k.stack([a, b], 0), [inp([3]), inp([3])]],
  ['split', (x) => { const [a, b] = k.split(x, [1, 2], 0); return k.add(k.mul(a, 2), k.sum(b, 0, { keepdim: true })); }, [inp([3, 2])]],
  ['indexSelect', (x, i) => k.indexSelect(x, 0, i), [inp([4, 2]), idx([3], [3, 0, 3])]],
  ['gather', (x, i) => k.gather(x, 1, i), [inp([2, 3]), idx([2, 2], [2, 0, 1, 1])]],
  ['embedding', (i, w) => k.embedding(i, w), [idx([2, 2], [1, 0, 1, 2]), inp([3, 2])]],
  ['scatterAdd', (x, i, s) => k.scatterAdd(x, 0, i, s), [inp([3, 2]), idx([2, 2], [0, 2, 0, 0]), inp([2, 2])]],
  ['where', (c, a, b) => k.where(c, a, b), [inp([2, 3], [1, 0, 0, 1, 1, 0]), inp([2, 3]), inp([3])]],
  ['maskedFill', (x, m) => k.maskedFill(x, m, 2), [inp([2, 3]), inp([1, 3], [0, 1, 0])]],
  ['crossEntropy', (x, t) => k.crossEntropy(x, t, { labelSmoothing: 0.1 }), [inp([3, 4]), idx([3], [1, -100, 3])]],
  ['crossEntropy sum', (x, t) => k.crossEntropy(x, t, { reduction: 'sum' }), [inp([2, 3]), idx([2], [0, 2])]],
  ['crossEntropy none', (x, t) => k.crossEntropy(x, t, { reduction: 'none' }), [inp([3, 3]), idx([3], [2, 0, 1])]],
  ['cast f16 roundtrip', (x) => k.cast(k.cast(x, 'f16'), 'f32'), [inp([3], [0.5, -0.25, 1.5])]],
  ['customOp cube', (x) => cube(x), [inp([4])]],
  ['cumsum', (x) => k.cumsum(x, 1), [inp([2, 4])]],
  ['cumsum reverse exclusive', (x) => k.cumsum(x, 0, { reverse: true, exclusive: true }), [inp([3, 2])]],
  ['topk values', (x) => k.topk(x, 2).values, [inp([2, 5])]],
];

describeBackends('gradcheck', () => {
  for (const [name, fn, inputs] of CASES) {
    it(name, async () => {
      // cast round trips lose precision: a wider step keeps the difference quotient exact
      await gradcheck(fn, inputs, name.startsWith('cast') ? { eps: 0.125 } : {});
    });
  }
});
