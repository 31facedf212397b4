// Gradient checkpointing: identical gradients with and without, lower peak memory.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const { nn } = k;

class Block extends nn.Module {
  constructor(width: number, g: k.Generator, readonly p = 0) {
    super();
    this.registerModule('fc', new nn.Linear(width, width, { generator: g }));
    this.registerModule('norm', new nn.RMSNorm(width));
  }
  forward(x: Tensor): Tensor {
    const h = k.gelu(this.child('fc').call(this.child('norm').call(x)) as Tensor);
    return k.add(x, this.p ? nn.dropout(h, this.p) : h);
  }
}

async function grads(m: k.nn.Module, run: () => Tensor): Promise<number[][]> {
  m.zeroGrad();
  k.manualSeed(123);
  k.sum(k.square(run())).backward();
  return Promise.all(m.parameters().map(async (p) => Array.from(await p.grad!.toArray())));
}

describeBackends('gradient checkpointing', ({ name }) => {
  const make = (p = 0) => {
    const g = new k.Generator(9);
    return new nn.ModuleList(Array.from({ length: 4 }, () => new Block(16, g, p)));
  };
  const x = () => k.randn([3, 16], { generator: new k.Generator(2) });

  for (const p of [0, 0.3]) {
    it(`function, module and sequential forms give the same gradients${p ? ' (with dropout: the RNG is replayed)' : ''}`, async () => {
      const blocks = make(p);
      const input = x().requiresGrad_();
      const plain = () => blocks.items.reduce((h, b) => b.call(h) as Tensor, input);
      const ref = await grads(blocks, plain);
      const refInput = Array.from(await input.grad!.toArray());
      input.zeroGrad();

      const fn = await grads(blocks, () => blocks.items.reduce((h, b) => k.nn.checkpoint((t) => b.call(t) as Tensor, h), input));
      fn.forEach((g, i) => assertClose(g, ref[i], { atol: 1e-6, rtol: 1e-5 }, `function form, param ${i}`));
      assertClose(await input.grad!.toArray(), refInput, { atol: 1e-6, rtol: 1e-5 }, 'input grad');

      for (const b of blocks) nn.checkpointModule(b);
      const mod = await grads(blocks, plain);
      mod.forEach((g, i) => assertClose(g, ref[i], { atol: 1e-6, rtol: 1e-5 }, `module form, param ${i}`));
      for (const b of blocks) nn.checkpointModule(b, false);

      const seq = await grads(blocks, () => nn.checkpointSequential(blocks.items, 2, input));
      seq.forEach((g, i) => assertClose(g, ref[i], { atol: 1e-6, rtol: 1e-5 }, `sequential form, param ${i}`));
    });
  }

  it('lowers the peak of live bytes during forward and backward', async () => {
    const g = new k.Generator(1);
    const blocks = Array.from({ length: 8 }, () => new Block(128, g));
    const input = k.randn([64, 128], { generator: g });
    const be = k.getBackend();
    const peak = (run: () => Tensor) => {
      k.tidy(() => {
        be.resetPeak();
        k.sum(run()).backward();
      });
      return be.memory().peakLiveBytes - be.memory().liveBytes;
    };
    const plain = peak(() => blocks.reduce((h, b) => b.call(h) as Tensor, input));
    const ckpt = peak(() => nn.checkpointSequential(blocks, 2, input));
    // 8 blocks' activations vs 4 segment boundaries plus one segment being recomputed
    console.log(`peak live bytes above baseline [${name}]: plain ${plain}, checkpointed ${ckpt} (${(ckpt / plain).toFixed(2)}x)`);
    expect(ckpt).toBeLessThan(plain * 0.75);
  });
});
