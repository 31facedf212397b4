// Fused norm kernels against the composed ops (outputs, input and parameter gradients), and
// finite differences through the fused backward.
import { it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';
import { gradcheck } from '../helpers/gradcheck.js';

const { nn } = k;

describeBackends('fused norms', () => {
  const cases: [string, number[], (x: Tensor, w: Tensor, b: Tensor, fused: boolean) => Tensor][] = [
    ['rmsNorm', [5, 3, 257], (x, w, _b, f) => nn.rmsNorm(x, w, 1e-6, false, f)],
    ['rmsNorm (1 + w)', [7, 16], (x, w, _b, f) => nn.rmsNorm(x, w, 1e-6, true, f)],
    ['rmsNorm, long rows (a workgroup per row)', [3, 1000], (x, w, _b, f) => nn.rmsNorm(x, w, 1e-6, false, f)],
    ['layerNorm, long rows (a workgroup per row)', [2, 777], (x, w, b, f) => nn.layerNorm(x, [777], w, b, 1e-5, f)],
    ['layerNorm', [3, 65], (x, w, b, f) => nn.layerNorm(x, [65], w, b, 1e-5, f)],
    ['layerNorm over two axes', [2, 3, 4, 5], (x, w, b, f) => nn.layerNorm(x, [4, 5], k.reshape(w, [4, 5]), k.reshape(b, [4, 5]), 1e-5, f)],
    ['layerNorm without affine', [4, 9], (x, _w, _b, f) => nn.layerNorm(x, [9], null, null, 1e-5, f)],
    ['groupNorm', [2, 6, 3, 5], (x, w, b, f) => nn.groupNorm(x, 3, k.slice(w, 0, 0, 6), k.slice(b, 0, 0, 6), 1e-5, f)],
  ];
  for (const [name, shape, fn] of cases) {
    it(name, async () => {
      const g = new k.Generator(6);
      const D = name.includes('two axes') ? 20 : name === 'groupNorm' ? 6 : shape[shape.length - 1];
      const xd = k.add(k.mul(k.randn(shape, { generator: g }), 2), 0.5);
      const wd = k.add(k.randn([D], { generator: g }), 1);
      const bd = k.randn([D], { generator: g });
      const up = k.randn(shape, { generator: g });
      const run = async (fused: boolean) => {
        const [x, w, b] = [xd, wd, bd].map((t) => k.clone(t).requiresGrad_());
        k.sum(k.mul(fn(x, w, b, fused), up)).backward();
        const y = await fn(x, w, b, fused).toArray();
        return [y, await x.grad!.toArray(), w.grad ? await w.grad.toArray() : [], b.grad ? await b.grad.toArray() : []];
      };
      const fused = await run(true);
      const ref = await run(false);
      ['y', 'dx', 'dw', 'db'].forEach((n, i) => assertClose(fused[i], ref[i], { atol: 2e-5, rtol: 1e-4 }, n));
    });
  }
  it('gradcheck through the fused backward', async () => {
    const g = new k.Generator(2);
    const d = (n: number) => Array.from({ length: n }, () => g.normal());
    await gradcheck((x, w) => nn.rmsNorm(x, w), [{ shape: [3, 5], data: d(15) }, { shape: [5], data: d(5) }]);
    await gradcheck((x, w, b) => nn.layerNorm(x, [4], w, b), [{ shape: [2, 4], data: d(8) }, { shape: [4], data: d(4) }, { shape: [4], data: d(4) }]);
  });
});
