// Gradient checkpointing: identical gradients with and without, lower peak memory.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const { nn } = k;

class Block extends nn.Module<[Tensor], Tensor> {
  constructor(width: number, g: k.Generator, readonly p = 0, backend?: k.Backend) {
    super();
    this.registerModule('fc', new nn.Linear(width, width, { generator: g, backend }));
    this.registerModule('norm', new nn.RMSNorm(width, { backend }));
  }
  forward(x: Tensor): Tensor {
    const h = k.gelu(this.child<k.nn.Linear>('fc').call(this.child<k.nn.RMSNorm>('norm').call(x)));
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
      const plain = () => blocks.items.reduce((h, b) => b.call(h), input);
      const ref = await grads(blocks, plain);
      const refInput = Array.from(await input.grad!.toArray());
      input.zeroGrad();

      const fn = await grads(blocks, () => blocks.items.reduce((h, b) => k.nn.checkpoint((t) => b.call(t), h), input));
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

  it('selective: kept matmul outputs are replayed, not recomputed; gradients unchanged', async () => {
    const blocks = make();
    const input = x().requiresGrad_();
    const be = k.getBackend();
    const count = (run: () => Tensor) => {
      let matmuls = 0;
      const orig = be.run.bind(be);
      let r: Tensor | null = null;
      k.manualSeed(1);
      r = run();
      be.run = (call) => { if (call.op === 'matmul') matmuls++; orig(call); };
      try { k.sum(k.square(r)).backward(); } finally { delete (be as { run?: unknown }).run; }
      return matmuls;
    };
    const plainRun = () => blocks.items.reduce((h, b) => b.call(h), input);
    const ref = await grads(blocks, plainRun);
    const mmPlain = count(plainRun);
    const mmFull = count(() => nn.checkpointSequential(blocks.items, 4, input));
    const mmSel = count(() => nn.checkpointSequentialWith({ keep: ['matmul'] }, blocks.items, 4, input));
    // 4 linears: 2 matmuls each in backward; a full checkpoint recomputes the 4 forward products
    expect([mmPlain, mmFull, mmSel]).toEqual([8, 12, 8]);
    const sel = await grads(blocks, () => nn.checkpointSequentialWith({ keep: ['matmul'] }, blocks.items, 2, input));
    sel.forEach((g, i) => assertClose(g, ref[i], { atol: 1e-6, rtol: 1e-5 }, `selective, param ${i}`));
    for (const b of blocks) nn.checkpointModule(b, { keep: ['matmul'] });
    const mod = await grads(blocks, plainRun);
    mod.forEach((g, i) => assertClose(g, ref[i], { atol: 1e-6, rtol: 1e-5 }, `selective module, param ${i}`));
  });

  it('selective on a backend that is not the default: the kernels of the inputs\' backend are kept', async () => {
    // the blocks and the input live on the other backend; the default stays this suite's
    const other = await k.createBackend(name === 'wasm' ? 'webgpu' : 'wasm');
    expect(k.getBackend()).not.toBe(other);
    const g = new k.Generator(9);
    const blocks = Array.from({ length: 4 }, () => new Block(16, g, 0, other));
    const input = k.randn([3, 16], { generator: new k.Generator(2), backend: other }).requiresGrad_();
    const params = blocks.flatMap((b) => b.parameters());
    const run = async (fwd: () => Tensor) => {
      for (const p of params) p.zeroGrad();
      let matmuls = 0;
      const out = fwd();
      const orig = other.run.bind(other);
      other.run = (call) => { if (call.op === 'matmul') matmuls++; orig(call); };
      try { k.sum(k.square(out)).backward(); } finally { delete (other as { run?: unknown }).run; }
      return { matmuls, grads: await Promise.all(params.map(async (p) => Array.from(await p.grad!.toArray()))) };
    };
    const plain = await run(() => blocks.reduce((h, b) => b.call(h), input));
    const sel = await run(() => nn.checkpointSequentialWith({ keep: ['matmul'] }, blocks, 4, input));
    // as on the default backend (test above): the 4 forward products are replayed, not recomputed
    expect([plain.matmuls, sel.matmuls]).toEqual([8, 8]);
    sel.grads.forEach((gr, i) => assertClose(gr, plain.grads[i], { atol: 1e-6, rtol: 1e-5 }, `param ${i}`));
  });

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
    const plain = peak(() => blocks.reduce((h, b) => b.call(h), input));
    const ckpt = peak(() => nn.checkpointSequential(blocks, 2, input));
    const sel = peak(() => nn.checkpointSequentialWith({ keep: ['matmul'] }, blocks, 2, input));
    console.log(`selective (keep matmul) peak [${name}]: ${sel} (${(sel / plain).toFixed(2)}x plain)`);
    // kept products cost memory (at most the plain peak); the gain is compute (test above)
    expect(sel).toBeGreaterThanOrEqual(ckpt);
    expect(sel).toBeLessThan(plain);
    // 8 blocks' activations vs 4 segment boundaries plus one segment being recomputed
    console.log(`peak live bytes above baseline [${name}]: plain ${plain}, checkpointed ${ckpt} (${(ckpt / plain).toFixed(2)}x)`);
    expect(ckpt).toBeLessThan(plain * 0.75);
  });
});
