// The one config-driven decoder in four architecture shapes (Llama with GQA, Qwen2, GPT-2,
// Gemma) against PyTorch forwards written from the Hugging Face modeling code: logits and the
// gradient of every parameter, loaded by checkpoint name.
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import * as k from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { assertClose } from '../helpers/assert-close.js';
import { describeBackends } from '../helpers/backends.js';

interface Enc { shape: number[]; dtype: 'f32' | 'i32'; data: number[] }
interface Fixture { name: string; config: k.models.DecoderConfig; inputIds: Enc; weights: Record<string, Enc>; logits: Enc; upstream: Enc; grads: Record<string, Enc>; auxLoss: number | null }
const MODELS = (JSON.parse(readFileSync(new URL('../golden/models.json', import.meta.url), 'utf8')) as { models: Fixture[] }).models;
const t = (e: Enc) => k.tensor(e.data, { shape: e.shape, dtype: e.dtype });

describeBackends('DecoderLM vs PyTorch', () => {
  for (const f of MODELS) {
    it(f.name, async () => {
      const model = new k.models.DecoderLM(f.config, { generator: new k.Generator(0) });
      const sd: Record<string, Tensor> = Object.fromEntries(Object.entries(f.weights).map(([n, e]) => [n, t(e)]));
      model.loadStateDict(sd); // strict: the module tree has exactly the checkpoint's names
      const { logits, auxLoss } = model.call({ inputIds: t(f.inputIds) }) as { logits: Tensor; auxLoss: Tensor | null };
      expect(logits.shape).toEqual(f.logits.shape);
      assertClose(await logits.toArray(), f.logits.data, { atol: 1e-4, rtol: 1e-4 }, 'logits');
      if (f.auxLoss !== null) assertClose([await auxLoss!.item()], [f.auxLoss], { atol: 1e-6 }, 'auxLoss');
      else expect(auxLoss).toBeNull();
      let loss = k.sum(k.mul(logits, t(f.upstream)));
      if (auxLoss) loss = k.add(loss, auxLoss);
      loss.backward();
      for (const [n, p] of model.namedParameters()) {
        expect(p.grad, n).not.toBeNull();
        assertClose(await p.grad!.toArray(), f.grads[n].data, { atol: 2e-4, rtol: 1e-3 }, `grad ${n}`);
      }
    });
  }

  it('incremental decoding with the KV cache equals the full forward', async () => {
    const f = MODELS[0];
    const model = new k.models.DecoderLM(f.config);
    model.loadStateDict(Object.fromEntries(Object.entries(f.weights).map(([n, e]) => [n, t(e)])));
    const ids = t(f.inputIds);
    const full = await k.noGrad(() => (model.call({ inputIds: ids }) as { logits: Tensor }).logits).toArray();
    const first = k.noGrad(() => model.call({ inputIds: k.slice(ids, 1, 0, 3) }) as { logits: Tensor; cache: k.nn.KVCache[] });
    const next = k.noGrad(() => model.call({ inputIds: k.slice(ids, 1, 3, 5), past: first.cache }) as { logits: Tensor });
    const stitched = await k.concat([first.logits, next.logits], 1).toArray();
    assertClose(stitched, full, { atol: 1e-5 });
  });

  it('fused and composed attention agree on a padded batch and on packed documents', async () => {
    const f = MODELS[0];
    const run = async (fused: boolean, inp: Partial<k.models.DecoderInputs>) => {
      const m = new k.models.DecoderLM({ ...f.config, fusedAttention: fused });
      m.loadStateDict(Object.fromEntries(Object.entries(f.weights).map(([n, e]) => [n, t(e)])));
      return (m.call({ inputIds: t(f.inputIds), ...inp }) as { logits: Tensor }).logits.toArray();
    };
    const attentionMask = k.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]); // right padding
    assertClose(await run(true, { attentionMask }), await run(false, { attentionMask }), { atol: 1e-5 }, 'padded');
    const docIds = k.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 2, 2]], { dtype: 'i32' });
    const positionIds = k.tensor([[0, 1, 0, 1, 2], [0, 0, 1, 0, 1]], { dtype: 'i32' }); // restart per document
    assertClose(await run(true, { docIds, positionIds }), await run(false, { docIds, positionIds }), { atol: 1e-5 }, 'packed');
  });

  it('presets build and train one step: the loss falls', async () => {
    for (const [arch, preset] of Object.entries(k.models.ARCHITECTURES)) {
      const m = new k.models.DecoderLM({ ...preset, vocabSize: 17, hiddenSize: 16, numLayers: 2, numHeads: 4, numKVHeads: 2, intermediateSize: 24, maxPositionEmbeddings: 32, slidingWindow: undefined }, { generator: new k.Generator(3) });
      const ids = k.randint(0, 17, [2, 9], { generator: new k.Generator(4) });
      const opt = new k.AdamW(m.trainableParameters(), { lr: 3e-3, weightDecay: 0 });
      const lossOf = () => {
        const { logits } = m.call({ inputIds: k.slice(ids, 1, 0, 8) }) as { logits: Tensor };
        return k.crossEntropy(k.reshape(logits, [-1, 17]), k.reshape(k.contiguous(k.slice(ids, 1, 1, 9)), [-1]));
      };
      const before = await k.noGrad(lossOf).item();
      for (let i = 0; i < 5; i++) k.tidy(() => { opt.zeroGrad(); lossOf().backward(); opt.step(); });
      const after = await k.noGrad(lossOf).item();
      expect(after, arch).toBeLessThan(before);
    }
  });
});
