// The module tree: checkpoint names, state dicts, freezing, hooks, and initialisation schemes.
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

const { nn } = k;

/** A miniature Llama-shaped tree: model.embed_tokens, model.layers.N.{self_attn.q_proj, mlp.down_proj, input_layernorm}, lm_head. */
class Block extends nn.Module {
  constructor(g: k.Generator) {
    super();
    const attn = this.registerModule('self_attn', new (class extends nn.Module { forward() { return null; } })());
    attn.registerModule('q_proj', new nn.Linear(4, 4, { bias: false, generator: g }));
    const mlp = this.registerModule('mlp', new (class extends nn.Module { forward() { return null; } })());
    mlp.registerModule('down_proj', new nn.Linear(6, 4, { bias: false, generator: g }));
    this.registerModule('input_layernorm', new nn.RMSNorm(4));
  }
  forward(x: Tensor): Tensor {
    return x;
  }
}
class Tiny extends nn.Module {
  readonly layers: k.nn.ModuleList<Block>;
  constructor(g = new k.Generator(0)) {
    super();
    const model = this.registerModule('model', new (class extends nn.Module { forward() { return null; } })());
    model.registerModule('embed_tokens', new nn.Embedding(10, 4, { generator: g }));
    this.layers = model.registerModule('layers', new nn.ModuleList([new Block(g), new Block(g)]));
    this.registerModule('lm_head', new nn.Linear(4, 10, { bias: false, generator: g }));
  }
  forward(x: Tensor): Tensor {
    return x;
  }
}

describeBackends('nn.Module', () => {
  it('names parameters by their Hugging Face checkpoint paths', () => {
    const names = [...new Tiny().namedParameters()].map(([n, p]) => `${n} ${p.shape.join('x')}`);
    expect(names).toEqual([
      'model.embed_tokens.weight 10x4',
      'model.layers.0.self_attn.q_proj.weight 4x4', 'model.layers.0.mlp.down_proj.weight 4x6', 'model.layers.0.input_layernorm.weight 4',
      'model.layers.1.self_attn.q_proj.weight 4x4', 'model.layers.1.mlp.down_proj.weight 4x6', 'model.layers.1.input_layernorm.weight 4',
      'lm_head.weight 10x4',
    ]);
  });

  it('stateDict round-trips into a fresh module, converting float dtypes', async () => {
    const a = new Tiny(new k.Generator(1));
    const b = new Tiny(new k.Generator(2));
    const sd = a.stateDict();
    const halfSd = Object.fromEntries(Object.entries(sd).map(([n, t]) => [n, n === 'lm_head.weight' ? k.cast(t, 'bf16') : t]));
    b.loadStateDict(halfSd);
    for (const [n, t] of Object.entries(b.stateDict())) {
      const want = Array.from(await halfSd[n].toArray());
      assertClose(await t.toArray(), want, { atol: 0, rtol: 0 }, n);
      expect(t.dtype).toBe('f32');
    }
  });

  it('loadStateDict names missing, unexpected and mismatched keys and loads nothing then', async () => {
    const m = new Tiny();
    const before = Array.from(await m.stateDict()['lm_head.weight'].toArray());
    const sd = { ...m.stateDict() };
    delete (sd as Record<string, Tensor>)['model.layers.1.mlp.down_proj.weight'];
    (sd as Record<string, Tensor>)['model.norm.weight'] = k.ones([4]);
    expect(() => m.loadStateDict(sd)).toThrow(/missing keys: model.layers.1.mlp.down_proj.weight; unexpected keys: model.norm.weight/);
    const bad = { ...new Tiny().stateDict(), 'lm_head.weight': k.zeros([4, 10]), 'model.embed_tokens.weight': k.zeros([10, 4]) };
    expect(() => m.loadStateDict(bad)).toThrow(/lm_head.weight: checkpoint shape \[4, 10\] does not match the module's \[10, 4\]/);
    // the embedding listed before it was not half-loaded
    expect(Array.from(await m.stateDict()['lm_head.weight'].toArray())).toEqual(before);
    const r = m.loadStateDict({ 'lm_head.weight': k.ones([10, 4]) }, { strict: false });
    expect(r.missing.length).toBe(7);
    expect(Array.from(await m.stateDict()['lm_head.weight'].toArray()).every((v) => v === 1)).toBe(true);
  });

  it('freezes and unfreezes by glob or RegExp, between steps too', () => {
    const m = new Tiny();
    m.freeze();
    m.unfreeze('model.layers.*.self_attn.**');
    expect(m.trainableParameters().length).toBe(2);
    m.unfreeze(/lm_head/);
    m.freeze('**.q_proj.weight');
    expect([...m.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n)).toEqual(['lm_head.weight']);
  });

  it('frozen parameters get no gradient', async () => {
    const lin = new nn.Linear(3, 2, { generator: new k.Generator(4) });
    lin.freeze('bias');
    k.sum(lin.call(k.ones([5, 3]))).backward();
    expect(lin.bias!.grad).toBeNull();
    assertClose(await lin.weight.grad!.toArray(), new Array(6).fill(5));
  });

  it('forward pre/post hooks capture and replace; backward hooks see the output gradient', async () => {
    const lin = new nn.Linear(2, 2, { generator: new k.Generator(5) });
    const seen: number[][] = [];
    const offPre = lin.registerForwardPreHook((_m, args) => [k.mul(args[0], 2)]);
    const offPost = lin.registerForwardHook((_m, _a, out) => { seen.push([...out.shape]); return k.mul(out, 0); });
    const y = lin.call(k.ones([1, 2]));
    expect(seen).toEqual([[1, 2]]);
    assertClose(await y.toArray(), [0, 0]);
    offPre(); offPost();
    const grads: number[][] = [];
    lin.registerBackwardHook((_m, g) => { grads.push([...g.shape]); return k.mul(g, 3); });
    k.sum(lin.call(k.ones([1, 2]))).backward();
    expect(grads).toEqual([[1, 2]]);
    assertClose(await lin.bias!.grad!.toArray(), [3, 3]);
  });

  it('train and eval propagate through the tree', () => {
    const m = new Tiny().eval();
    expect([...m.namedModules()].every(([, x]) => !x.training)).toBe(true);
    m.train();
    expect(m.layers.at(1).training).toBe(true);
  });
});

it('initialisation schemes: seeded, with the documented statistics', async () => {
  k.use(await k.createBackend('wasm'));
  const g = () => new k.Generator(11);
  const stats = (t: Tensor) => {
    const v = Array.from(t.toArraySync());
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    return { mean, std, min: Math.min(...v), max: Math.max(...v) };
  };
  expect(Array.from(nn.normal([8], 0, 1, { generator: g() }).toArraySync())).toEqual(Array.from(nn.normal([8], 0, 1, { generator: g() }).toArraySync()));
  const n = stats(nn.normal([200, 100], 0.5, 2, { generator: g() }));
  expect(Math.abs(n.mean - 0.5)).toBeLessThan(0.05);
  expect(Math.abs(n.std - 2)).toBeLessThan(0.05);
  const xu = stats(nn.xavierUniform([300, 200], 1, { generator: g() }));
  const bound = Math.sqrt(6 / 500);
  expect(xu.max).toBeLessThanOrEqual(bound);
  expect(Math.abs(xu.std - bound / Math.sqrt(3))).toBeLessThan(0.002);
  expect(Math.abs(stats(nn.xavierNormal([300, 200], 1, { generator: g() })).std - Math.sqrt(2 / 500))).toBeLessThan(0.002);
  expect(Math.abs(stats(nn.kaimingNormal([300, 200], { nonlinearity: 'relu', generator: g() })).std - Math.sqrt(2 / 200))).toBeLessThan(0.003);
  const ku = stats(nn.kaimingUniform([256, 64], { a: Math.sqrt(5), generator: g() }));
  expect(ku.max).toBeLessThanOrEqual(1 / Math.sqrt(64));
  const tn = stats(nn.truncatedNormal([10000], 0, 1, -0.5, 0.5, { generator: g() }));
  expect(tn.min).toBeGreaterThanOrEqual(-0.5);
  expect(tn.max).toBeLessThanOrEqual(0.5);
  expect(Math.abs(stats(nn.scaledNormal([400, 100], 0.02, 8, { generator: g() })).std - 0.02 / 4)).toBeLessThan(3e-4);
  for (const shape of [[6, 10], [10, 6]]) {
    const q = nn.orthogonal(shape, 1, { generator: g() });
    const qq = shape[0] <= shape[1] ? k.matmul(q, k.transpose(q)) : k.matmul(k.transpose(q), q);
    const eye = Array.from({ length: 36 }, (_, i) => (i % 7 === 0 ? 1 : 0));
    assertClose(qq.toArraySync(), eye, { atol: 1e-5 });
  }
});

it('bad transformer configuration is a typed error naming the module', () => {
  expect(() => new nn.Attention({ hiddenSize: 16, numHeads: 4, numKVHeads: 3 })).toThrow(/Attention: numHeads 4 is not divisible by numKVHeads 3/);
  expect(() => new nn.Attention({ hiddenSize: 10, numHeads: 4 })).toThrow(/Attention: hidden size 10 does not split into 4 heads/);
  expect(() => new nn.RotaryEmbedding({ headDim: 8, rotaryDim: 3 })).toThrow(/RotaryEmbedding: the rotary dimension must be even, got 3/);
  expect(() => new nn.GatedMLP({ hiddenSize: 4, intermediateSize: 8, act: 'swish' as never })).toThrow(/MLP: unknown activation 'swish'/);
  expect(() => new nn.GroupNorm(4, 6)).toThrow(/GroupNorm: 6 channels do not split into 4 groups/);
});

describeBackends('RoPE position ids', () => {
  it('outside the cos / sin tables are an index error (both backends), wrong shapes a shape error', async () => {
    const rope = new nn.RotaryEmbedding({ headDim: 8, maxPositionEmbeddings: 16 });
    const x = k.randn([1, 2, 2, 8]);
    const run = async (pos: number[]) => rope.apply(x, k.tensor(pos, { dtype: 'i32' })).toArray();
    await expect(run([0, 16])).rejects.toMatchObject({ code: 'index' });
    await expect(run([-1, 3])).rejects.toMatchObject({ code: 'index' });
    expect((await run([0, 15])).length).toBe(32);
    expect(() => rope.apply(x, k.tensor([0, 1, 2], { dtype: 'i32' }))).toThrow(/rope: positionIds must be \(B, T\) = \(1, 2\)/);
  });
});

/** A decoder layer that does nothing: hidden states pass through, the cache is an empty one. */
class SkipLayer extends nn.Module<[Tensor, k.models.LayerInputs], k.models.DecoderLayerOutput> {
  forward(x: Tensor, inp: k.models.LayerInputs): k.models.DecoderLayerOutput {
    return { hiddenStates: x, cache: inp.past ?? { key: k.zeros([x.shape[0], 2, 0, 4]), value: k.zeros([x.shape[0], 2, 0, 4]) }, auxLoss: null };
  }
}

describeBackends('module surgery and call()', () => {
  const cfg: k.models.DecoderConfig = { vocabSize: 17, hiddenSize: 16, numLayers: 3, numHeads: 4, numKVHeads: 2, intermediateSize: 24, maxPositionEmbeddings: 32 };
  const moeCfg: k.models.DecoderConfig = { ...cfg, numLayers: 2, moe: { numExperts: 4, topK: 2, zLossCoef: 0.01 } };
  const ids = () => k.tensor([[1, 5, 9, 2, 7], [3, 3, 16, 0, 4]], { dtype: 'i32' });
  const lm = (c = cfg, seed = 3) => new k.models.DecoderLM(c, { generator: new k.Generator(seed) });
  const err = (f: () => unknown, re: RegExp) => {
    let e: unknown = null;
    try { f(); } catch (x) { e = x; }
    expect(e).toBeInstanceOf(k.KilnError);
    expect((e as Error).message).toMatch(re);
  };

  it('registerModule refuses a taken name; replaceModule swaps one child and names a missing one', () => {
    const m = new Tiny();
    const model = m.child('model');
    err(() => model.registerModule('embed_tokens', new nn.Embedding(10, 4)), /registerModule.*'embed_tokens' is already a module.*use replaceModule/);
    const lin = new nn.Linear(2, 2);
    err(() => lin.registerModule('weight', new nn.RMSNorm(2)), /'weight' is already a parameter of this Linear/);
    lin.registerBuffer('scale', k.ones([2]));
    err(() => lin.registerModule('scale', new nn.RMSNorm(2)), /'scale' is already a buffer/);
    err(() => new nn.RMSNorm(2).registerParameter('x.y', null), /RMSNorm.registerParameter: invalid name 'x.y'/);
    err(() => model.replaceModule('norm', new nn.RMSNorm(4)), /replaceModule.*no child module named 'norm' \(children: embed_tokens, layers\)/);
    err(() => m.layers.registerModule('extra', new nn.RMSNorm(4)), /ModuleList.registerModule: .*the next is '2', got 'extra'/);
    const emb = new nn.Embedding(10, 4);
    const old = model.replaceModule('embed_tokens', emb);
    expect(old).toBeInstanceOf(nn.Embedding);
    expect(old).not.toBe(emb);
    expect(model.child('embed_tokens')).toBe(emb);
    // same name, same place in the tree: checkpoint names and their order are unchanged
    expect([...m.namedParameters()][0]).toEqual(['model.embed_tokens.weight', emb.weight]);
  });

  it('a ModuleList block replaced by name changes what forward runs: logits of the model without that block', async () => {
    const m = lm();
    const before = Array.from(await k.noGrad(() => m.call({ inputIds: ids() })).logits.toArray());
    const skip = new SkipLayer();
    const list = m.child('model').child<k.nn.ModuleList>('layers');
    const old = list.replaceModule('1', skip);
    // one store: items, at(), iteration, length and the named tree agree
    expect([m.layers.at(1), m.layers.items[1], [...m.layers][1], m.layers.at(-2)]).toEqual([skip, skip, skip, skip]);
    expect(m.layers.length).toBe(3);
    expect([...m.namedModules()].some(([n]) => n.startsWith('model.layers.1.'))).toBe(false);
    err(() => m.layers.at(3), /index 3 is out of range for 3 modules/);
    // reference: a 2-layer model holding the weights of layers 0 and 2
    const two = lm({ ...cfg, numLayers: 2 }, 5);
    const sd = m.stateDict();
    two.loadStateDict(Object.fromEntries(Object.entries(sd).map(([n, t]) => [n.replace('model.layers.2.', 'model.layers.1.'), t])));
    const want = Array.from(await k.noGrad(() => two.call({ inputIds: ids() })).logits.toArray());
    const got = Array.from(await k.noGrad(() => m.call({ inputIds: ids() })).logits.toArray());
    assertClose(got, want, { atol: 1e-5 }, 'skipped block');
    expect(Math.max(...got.map((v, i) => Math.abs(v - before[i])))).toBeGreaterThan(1e-3);
    list.replaceModule('1', old);
    assertClose(await k.noGrad(() => m.call({ inputIds: ids() })).logits.toArray(), before, { atol: 0, rtol: 0 }, 'block restored');
  });

  it('hooks on self_attn fire for every layer of a DecoderLM forward and backward, and their replacement is used', async () => {
    const m = lm();
    const seen = { pre: 0, post: 0, bwd: 0 };
    const shapes: number[][] = [];
    for (const layer of m.layers) {
      const attn = layer.child<k.nn.Attention>('self_attn');
      attn.registerForwardPreHook(() => void seen.pre++);
      attn.registerForwardHook((_m, _a, out) => { seen.post++; shapes.push([...out.output.shape, ...out.cache.key.shape]); });
      attn.registerBackwardHook((_m, g) => { seen.bwd++; shapes.push([...g.shape]); });
    }
    k.sum(m.call({ inputIds: ids() }).logits).backward();
    expect(seen).toEqual({ pre: 3, post: 3, bwd: 3 });
    expect(shapes.slice(0, 3)).toEqual([[2, 5, 16, 2, 2, 5, 4], [2, 5, 16, 2, 2, 5, 4], [2, 5, 16, 2, 2, 5, 4]]);
    expect(shapes.slice(3)).toEqual([[2, 5, 16], [2, 5, 16], [2, 5, 16]]);
    // a forward hook that zeroes attention's output = a model whose o_proj weights are zero
    const hooked = lm();
    for (const layer of hooked.layers) layer.child<k.nn.Attention>('self_attn').registerForwardHook((_m, _a, out) => ({ ...out, output: k.mul(out.output, 0) }));
    const zeroed = lm();
    for (const layer of zeroed.layers) layer.child('self_attn').child<k.nn.Linear>('o_proj').setParameter('weight', k.zeros([16, 16]));
    assertClose(await k.noGrad(() => hooked.call({ inputIds: ids() })).logits.toArray(), await k.noGrad(() => zeroed.call({ inputIds: ids() })).logits.toArray(), { atol: 1e-6 });
  });

  for (const [what, c] of [['self_attn of a dense model', cfg], ['whole MoE layers (aux loss through the checkpoint)', moeCfg]] as const) {
    it(`checkpointModule on ${what}: attention is recomputed in backward; logits, caches, aux loss and gradients unchanged`, async () => {
      const m = lm(c);
      let qCalls = 0;
      for (const layer of m.layers) layer.child('self_attn').child('q_proj').registerForwardHook(() => void qCalls++);
      const run = async () => {
        m.zeroGrad();
        qCalls = 0;
        const out = m.call({ inputIds: ids() });
        const loss = out.auxLoss ? k.add(k.sum(k.square(out.logits)), k.mul(out.auxLoss, 100)) : k.sum(k.square(out.logits));
        loss.backward();
        return {
          calls: qCalls,
          logits: Array.from(await out.logits.toArray()),
          cache: await Promise.all(out.cache.flatMap((c) => [c.key, c.value]).map(async (t) => Array.from(await t.toArray()))),
          aux: out.auxLoss ? await out.auxLoss.item() : null,
          grads: await Promise.all(m.parameters().map(async (p) => Array.from(await p.grad!.toArray()))),
        };
      };
      const plain = await run();
      for (const layer of m.layers) nn.checkpointModule(c.moe ? layer : layer.child('self_attn'));
      const ck = await run();
      const L = c.numLayers;
      expect([plain.calls, ck.calls]).toEqual([L, 2 * L]);
      assertClose(ck.logits, plain.logits, { atol: 1e-6 }, 'logits');
      ck.cache.forEach((t, i) => assertClose(t, plain.cache[i], { atol: 0, rtol: 0 }, `cache ${i}`));
      if (c.moe) expect(ck.aux).toBeCloseTo(plain.aux!, 6);
      ck.grads.forEach((g, i) => assertClose(g, plain.grads[i], { atol: 1e-5, rtol: 1e-4 }, `grad ${[...m.namedParameters()][i][0]}`));
      // without grad (generation) nothing is recomputed
      qCalls = 0;
      const ref = k.noGrad(() => m.call({ inputIds: ids() }));
      expect(qCalls).toBe(L);
      // with grad, a pre-allocated cache comes back as itself (written in place), not a copy
      const past = m.allocateCache(2, 8);
      const out = m.call({ inputIds: ids(), past });
      expect(out.cache.map((c, i) => c.key === past[i].key && c.value === past[i].value && c.length === 5)).toEqual(out.cache.map(() => true));
      assertClose(await out.logits.toArray(), await ref.logits.toArray(), { atol: 1e-6 }, 'logits with a pre-allocated cache');
      // a checkpointed sequence chains tensor-to-tensor modules only
      err(() => nn.checkpointSequential([m.layers.at(0)], 1, k.zeros([2, 5, 16]).requiresGrad_(), {}), /block 0 \(DecoderLayer\) returned object, not a tensor/);
    });
  }
});
