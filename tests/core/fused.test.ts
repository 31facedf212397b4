// Fused kernels against their composed references built from primitive ops.
import { it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

/** Cross-entropy from logSoftmax + gather + masked mean, with label smoothing. */
function composedCrossEntropy(x: Tensor, t: Tensor, ignore: number, eps: number): Tensor {

  const lp = k.logSoftmax(x, -1);
  const valid = k.where(k.eq(k.cast(t, 'f32'), ignore), 0, 1); // (N)
  const safeT = k.cast(k.mul(k.cast(t, 'f32'), valid), 'i32');
  const nll = k.neg(k.reshape(k.gather(lp, 1, k.reshape(safeT, [-1, 1])), [-1]));
  const smooth = k.neg(k.mean(lp, -1));
  const per = k.add(k.mul(nll, 1 - eps), k.mul(smooth, eps));

  return k.div(k.sum(k.mul(per, valid)), k.sum(valid));
}

describeBackends('fused vs composed', () => {
  for (const eps of [0, 0.2]) {
    it(`crossEntropy (labelSmoothing ${eps}): loss and dlogits`, async () => {
      const g = new k.Generator(5);
      const data = Array.from(await k.mul(k.randn([9, 37], { generator: g }), 4).toArray());
      const tgt = k.tensor(Int32Array.from([3, -100, 36, 0, 7, 7, -100, 20, 1]));
      const run = async (f: (x: Tensor) => Tensor) => {
        const x = k.tensor(data, { shape: [9, 37], requiresGrad: true });
        const loss = f(x);
        loss.backward();
        return { loss: await loss.item(), grad: await x.grad!.toArray() };
      };
      const fused = await run((x) => k.crossEntropy(x, tgt, { labelSmoothing: eps }));
      const comp = await run((x) => composedCrossEntropy(x, tgt, -100, eps));
      assertClose([fused.loss], [comp.loss], { atol: 1e-5 });
      assertClose(fused.grad, comp.grad, { atol: 1e-6 });
    });
  }
});
