import * as k from '../../src/index.js';
import { loadModel } from '../../src/models/load.js';
k.use(await k.createBackend('wasm'));
const m = new k.models.DecoderLM({ vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 4, numKVHeads: 2, intermediateSize: 24, maxPositionEmbeddings: 32 }, { dtype: 'f16' });
for (const [n, p] of m.namedParameters()) { console.log(n, p.dtype); break; }
const { logits } = m.call({ inputIds: k.tensor([[1, 2, 3]], { dtype: 'i32' }) }) as any;
console.log(logits.dtype, (await logits.toArray()).slice(0, 4));
