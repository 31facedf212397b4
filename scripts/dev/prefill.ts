import * as k from '../../src/index.js';
const b = await k.createBackend('wasm'); k.use(b);
const model = new k.models.DecoderLM({ vocabSize: 32000, hiddenSize: 640, numLayers: 12, numHeads: 10, numKVHeads: 5, intermediateSize: 1728, maxPositionEmbeddings: 1024 }, { generator: new k.Generator(1) }).eval();
const ids = k.tensor([Array.from({ length: 128 }, (_, i) => i)], { dtype: 'i32' });
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  k.tidy(() => { const c = model.allocateCache(1, 160); const o = k.noGrad(() => model.call({ inputIds: ids, past: c, logitsToKeep: 1 }) as any); o.logits.toArraySync(); });
  console.log('prefill ms', (performance.now() - t0).toFixed(0));
}
