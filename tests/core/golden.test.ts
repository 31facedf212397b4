// Every op's output and input gradients against PyTorch (tests/golden/generate.py), on each backend.
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose, type Tol } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

interface Enc { shape: number[]; dtype: 'f32' | 'i32'; data: number[] }
interface Case {
  name: string; op: string; args: Record<string, any>; inputs: Enc[]; output: Enc;
  upstream?: Enc; grads?: (Enc | null)[]; prep?: Record<string, 't'>; tol?: Tol;
}

// inf and nan travel as strings in the JSON
const fixture = JSON.parse(readFileSync(new URL('../golden/ops.json', import.meta.url), 'utf8'), (_k, v) =>
  v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : v,
) as { cases: Case[] };

type Op = (a: Record<string, any>, ...xs: Tensor[]) => Tensor;
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

describeBackends('golden vs PyTorch', () => {
  it('covers every fixture op', () => {
    for (const c of fixture.cases) expect(OPS[c.op], c.op).toBeTypeOf('function');
  });
  for (const c of fixture.cases) {
    it(c.name, async () => {
      const leaves = c.inputs.map((e) => k.tensor(e.data, { shape: e.shape, dtype: e.dtype, requiresGrad: e.dtype === 'f32' && !!c.grads }));
      const views = leaves.map((t, i) => (c.prep?.[String(i)] === 't' ? k.transpose(t) : t));
      const out = OPS[c.op](c.args, ...views);
      expect(out.shape).toEqual(c.output.shape);
      expect(out.dtype).toBe(c.output.dtype);
      const tol = c.tol ?? {};
      assertClose(await out.toArray(), c.output.data, tol, `${c.name} output`);
      if (!c.grads || !c.upstream) return;
      const up = k.tensor(c.upstream.data, { shape: c.upstream.shape });
      k.sum(k.mul(out, up)).backward();
      for (let i = 0; i < c.grads.length; i++) {
        const g = c.grads[i];
        if (!g) continue;
        expect(leaves[i].grad, `${c.name} grad ${i}`).not.toBeNull();
        expect(leaves[i].grad!.shape).toEqual(g.shape);
        assertClose(await leaves[i].grad!.toArray(), g.data, { atol: (tol.atol ?? 1e-5) * 4, rtol: (tol.rtol ?? 1e-4) * 4 }, `${c.name} grad ${i}`);
      }
    });
  }
});
