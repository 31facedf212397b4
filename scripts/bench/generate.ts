// Generation benchmark (bundled and run by scripts/bench.mjs): prefill and decode tokens/s and
// the device's peak live bytes, for the conformance checkpoints (tiny) and a ~100M-parameter
// random Llama-shaped model, on wasm and WebGPU. Greedy decoding through the KV cache.
import { join } from 'node:path';
import * as k from '../../src/index.js';
import { generateTokens } from '../../src/generation/generate.js';
import { loadModel } from '../../src/models/load.js';

const root = new URL('../..', import.meta.url).pathname;

async function measure(model: k.models.DecoderLM, backend: k.Backend, prompt: number, decode: number) {
  const ids = Array.from({ length: prompt }, (_, i) => (i * 7 + 3) % model.config.vocabSize);
  backend.resetPeak();
  const base = backend.memory().liveBytes;
  const t0 = performance.now();
  let tFirst = 0;
  let n = 0;
  for await (const _ of generateTokens(model, ids, { greedy: true, maxTokens: decode })) {
    if (!n) tFirst = performance.now();
    n++;
  }
  const t1 = performance.now();
  return {
    prefillTokS: +(prompt / ((tFirst - t0) / 1000)).toFixed(1),
    decodeTokS: n > 1 ? +((n - 1) / ((t1 - tFirst) / 1000)).toFixed(2) : null,
    peakMiB: +((backend.memory().peakLiveBytes - base) / 2 ** 20).toFixed(1),
  };
}

export async function* generateBench(backends: string[]): AsyncGenerator<Record<string, unknown>> {
  for (const name of backends) {
    const backend = await k.createBackend(name as k.BackendName);
    k.use(backend);
    for (const arch of ['llama', 'gpt2', 'mixtral']) {
      const { model } = await loadModel(join(root, 'tests/golden/checkpoints', arch), { backend });
      yield { bench: 'generate', backend: name, model: `tiny ${arch}`, params: [...model.namedParameters()].reduce((a, [, p]) => a + p.size, 0), prompt: 16, decode: 16, ...(await measure(model, backend, 16, 16)) };
    }
    const cfg = { vocabSize: 32000, hiddenSize: 640, numLayers: 12, numHeads: 10, numKVHeads: 5, intermediateSize: 1728, maxPositionEmbeddings: 1024, tieWordEmbeddings: false };
    const model = new k.models.DecoderLM(cfg, { backend, generator: new k.Generator(1) }).eval();
    const params = [...model.namedParameters()].reduce((a, [, p]) => a + p.size, 0);
    yield { bench: 'generate', backend: name, model: 'llama-shaped ~100M (random)', params, prompt: 128, decode: 16, ...(await measure(model, backend, 128, 16)) };
    for (const [, p] of model.namedParameters()) p.dispose();
  }
}
