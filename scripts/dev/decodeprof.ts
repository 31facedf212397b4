import * as k from '../../src/index.js';
import { generateTokens } from '../../src/generation/generate.js';
const b = await k.createBackend('wasm'); k.use(b);
const model = new k.models.DecoderLM({ vocabSize: 32000, hiddenSize: 640, numLayers: 12, numHeads: 10, numKVHeads: 5, intermediateSize: 1728, maxPositionEmbeddings: 1024 }, { generator: new k.Generator(1) }).eval();
const ids = Array.from({ length: 16 }, (_, i) => i);
for await (const _ of generateTokens(model, ids, { greedy: true, maxTokens: 4 }));
const t0 = performance.now(); let n = 0;
for await (const _ of generateTokens(model, ids, { greedy: true, maxTokens: 64 })) n++;
console.log('ms/token', ((performance.now() - t0) / n).toFixed(2));
