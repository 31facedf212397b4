// Memory stays flat across training steps; WebGPU batches dispatches into few submits.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

describeBackends('memory', (ctx) => {
  const { name } = ctx;
  it('a tidy whose function throws frees what it made, and keeps what was kept', () => {
    const before = ctx.backend.memory().liveBuffers;
    let kept: k.Tensor | null = null;
    const fail = new Error('step failed');
    expect(() => k.tidy(() => {
      k.add(k.ones([4]), k.ones([4]));
      kept = k.keep(k.zeros([2]));
      throw fail;
    })).toThrow(fail);
    expect(ctx.backend.memory().liveBuffers).toBe(before + 1);
    kept!.dispose();
    expect(ctx.backend.memory().liveBuffers).toBe(before);
  });

  it('1,000 training steps inside tidy keep live buffers and bytes flat', async () => {
    const gen = new k.Generator(3);
    const w1 = k.mul(k.randn([8, 16], { generator: gen }), 0.3).requiresGrad_();
    const b1 = k.zeros([16], { requiresGrad: true });
    const w2 = k.mul(k.randn([16, 4], { generator: gen }), 0.3).requiresGrad_();
    const x = k.randn([32, 8], { generator: gen });
    const y = k.randint(0, 4, [32], { generator: gen });
    const opt = new k.AdamW([w1, b1, w2], { lr: 1e-2 });
    const step = () =>
      k.tidy(() => {
        opt.zeroGrad();
        const loss = k.crossEntropy(k.matmul(k.gelu(k.add(k.matmul(x, w1), b1)), w2), y);
        loss.backward();
        opt.step();
        return loss;
      });
    const losses: number[] = [];
    let after10 = k.getBackend().memory();
    for (let i = 0; i < 1000; i++) {
      const loss = step();
      if (i % 100 === 0 || i === 999) losses.push(await loss.item());
      loss.dispose();
      if (i === 9) after10 = { ...k.getBackend().memory() };
    }
    const end = k.getBackend().memory();
    expect(end.liveBuffers).toBe(after10.liveBuffers);
    expect(end.liveBytes).toBe(after10.liveBytes);
    // the pool reuses buffers instead of growing
    expect(end.pooledBytes + end.liveBytes).toBeLessThanOrEqual((after10.pooledBytes + after10.liveBytes) * 1.5);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
  });

  it('dispose frees storage once every view is gone', () => {
    const before = k.getBackend().memory().liveBuffers;
    const a = k.zeros([64]);
    const v = k.slice(a, 0, 8, 16);
    a.dispose();
    expect(k.getBackend().memory().liveBuffers).toBe(before + 1);
    v.dispose();
    expect(k.getBackend().memory().liveBuffers).toBe(before);
    expect(() => k.add(a, 1)).toThrow(k.KilnError);
    expect(() => k.add(a, 1)).toThrow(/disposed/);
  });

  if (name === 'webgpu') {
    it('records many ops and submits once at readback', async () => {
      const be = k.getBackend() as k.WebGPUBackend;
      let x = k.tensor([1, 2, 3, 4]);
      await be.sync();
      const before = be.submits;
      for (let i = 0; i < 100; i++) x = k.add(k.mul(x, 1.01), 0.1);
      const out = await x.toArray();
      expect(be.submits - before).toBe(1);
      let ref = [1, 2, 3, 4];
      for (let i = 0; i < 100; i++) ref = ref.map((v) => Math.fround(Math.fround(v * Math.fround(1.01)) + Math.fround(0.1)));
      assertClose(out, ref, { rtol: 1e-5 });
    });
  }
});
